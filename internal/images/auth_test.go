package images_test

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kubectl-gitops/kubectl-gitops/internal/images"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/registrytest"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func basic(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}

func TestKeychainSourcesInOrder(t *testing.T) {
	file := filepath.Join(t.TempDir(), "config.json")
	config := fmt.Sprintf(`{
		"auths": {
			"https://index.docker.io/v1/": {"auth": %q},
			"ghcr.io": {"username": "file-user", "password": "file-pass"},
			"quay.io": {},
			"http://registry.test:5000/v2/": {"auth": %q},
			"ghcr.io/acme": {"auth": %q}
		},
		"credsStore": "desktop"
	}`, basic("hub-user", "hub-pass"), basic("local", "local-pass"), basic("acme-bot", "acme-pass"))
	if err := os.WriteFile(file, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	secret := fmt.Sprintf(`{"auths":{"ghcr.io":{"auth":%q},"quay.io":{"auth":%q},"gcr.io":{"username":"<token>","identitytoken":"gcr-token"}}}`,
		basic("secret-user", "secret-pass"), basic("quay-bot", "quay-pass"))
	kc, err := images.Credentials{
		DockerConfig: file,
		Secrets:      []images.PullSecret{{Name: "gitops-bot/registry", DockerConfigJSON: []byte(secret)}},
		Getenv: env(map[string]string{
			images.EnvRegistryHost: "Registry.Example.com", images.EnvRegistryUsername: "env-user", images.EnvRegistryPassword: "env-pass",
		}),
	}.Keychain()
	if err != nil {
		t.Fatal(err)
	}
	for repo, want := range map[string]string{
		"nginx":                        "hub-user:hub-pass", // Docker Hub's legacy key
		"docker.io/acme/tools":         "hub-user:hub-pass",
		"ghcr.io/other/app":            "file-user:file-pass", // the file before the Secret
		"ghcr.io/acme/app":             "acme-bot:acme-pass",  // a repository prefix before its host
		"quay.io/acme/app":             "quay-bot:quay-pass",  // the file's empty entry (a credential helper's) skipped
		"gcr.io/project/app":           "token gcr-token",     // an identity token
		"registry.test:5000/app":       "local:local-pass",    // scheme and /v2/ dropped from the key
		"registry.example.com/app/web": "env-user:env-pass",   // the environment, host case-insensitive
		"public.ecr.aws/acme/app":      "",                    // anonymous
		"ghcr.io/acmecorp/app":         "file-user:file-pass", // a prefix matches whole path segments
		"registry.test/app":            "",                    // the port is part of the host
		"index.docker.io/library/bash": "hub-user:hub-pass",
		"registry.example.com/x":       "env-user:env-pass",
		"gcr.io/other":                 "token gcr-token",
		"quay.io/other":                "quay-bot:quay-pass",
		"registry.test:5000/a/b/c":     "local:local-pass",
		"ghcr.io/acme":                 "acme-bot:acme-pass",
		"ghcr.io/acme/deep/er":         "acme-bot:acme-pass",
	} {
		if got := registrytest.Credential(t, kc, repo); got != want {
			t.Errorf("%s: %q, want %q", repo, got, want)
		}
	}
	shown := fmt.Sprintf("%v %+v %#v %s", kc, kc, kc, kc)
	for _, secret := range []string{"pass", "gcr-token", basic("hub-user", "hub-pass")} {
		if strings.Contains(shown, secret) {
			t.Errorf("printing the keychain shows %q: %s", secret, shown)
		}
	}
	if !strings.Contains(shown, "ghcr.io/acme") {
		t.Errorf("printing the keychain should name its hosts: %s", shown)
	}
}

func TestKeychainWithoutSources(t *testing.T) {
	kc, err := images.Credentials{Getenv: env(nil)}.Keychain()
	if err != nil {
		t.Fatal(err)
	}
	if got := registrytest.Credential(t, kc, "ghcr.io/acme/app"); got != "" {
		t.Errorf("no sources: %q, want anonymous", got)
	}
}

func TestKeychainErrorsShowNoSecret(t *testing.T) {
	const canary = "canary-Qm3-pw"
	missing := filepath.Join(t.TempDir(), "missing.json")
	for _, tc := range []struct {
		name string
		c    images.Credentials
		want string
	}{
		{"missing file", images.Credentials{DockerConfig: missing}, "reading the docker config: open " + missing},
		{"not JSON", images.Credentials{Secrets: sec([]byte(`{"auths": {"ghcr.io": {"password": "` + canary + `"}` + canary))},
			"Secret gitops-bot/registry: .dockerconfigjson: not a docker config: not JSON (syntax error at byte"},
		{"a field of the wrong type", images.Credentials{Secrets: sec([]byte(`{"auths": {"ghcr.io": {"username": "` + canary + `", "password": 7}}}`))},
			`auths["ghcr.io"]: field password is a JSON number, not a string`},
		{"auth not base64", images.Credentials{Secrets: sec([]byte(`{"auths": {"ghcr.io": {"auth": "` + canary + `!!"}}}`))},
			`auths["ghcr.io"]: its auth field is not base64 of username:password`},
		{"auth without a colon", images.Credentials{Secrets: sec([]byte(`{"auths": {"ghcr.io": {"auth": "` + base64.StdEncoding.EncodeToString([]byte(canary)) + `"}}}`))},
			`auths["ghcr.io"]: its auth field is not base64 of username:password`},
		{"auths not an object", images.Credentials{Secrets: sec([]byte(`{"auths": "` + canary + `"}`))},
			"field auths is a JSON string"},
		{"username without host", images.Credentials{Getenv: env(map[string]string{images.EnvRegistryUsername: "u", images.EnvRegistryPassword: canary})},
			"GITOPS_REGISTRY_USERNAME and GITOPS_REGISTRY_PASSWORD is set without GITOPS_REGISTRY_HOST; set GITOPS_REGISTRY_HOST to the registry host"},
		{"host without password", images.Credentials{Getenv: env(map[string]string{images.EnvRegistryHost: "ghcr.io", images.EnvRegistryUsername: "u"})},
			"GITOPS_REGISTRY_HOST=ghcr.io needs both GITOPS_REGISTRY_USERNAME and GITOPS_REGISTRY_PASSWORD"},
		{"host not a host", images.Credentials{Getenv: env(map[string]string{images.EnvRegistryHost: "ghcr io", images.EnvRegistryUsername: "u", images.EnvRegistryPassword: canary})},
			`GITOPS_REGISTRY_HOST="ghcr io" is not a registry host`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.c.Keychain()
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%q should say %q", err, tc.want)
			}
			if strings.Contains(err.Error(), canary) || strings.Contains(fmt.Sprintf("%#v", err), canary) {
				t.Errorf("the error shows the secret: %v", err)
			}
		})
	}
}

func TestKeychainPrefersTheFirstSource(t *testing.T) {
	one := fmt.Sprintf(`{"auths":{"ghcr.io":{"auth":%q}}}`, basic("secret", "s"))
	kc, err := images.Credentials{
		Secrets: sec([]byte(one)),
		Getenv:  env(map[string]string{images.EnvRegistryHost: "ghcr.io", images.EnvRegistryUsername: "env", images.EnvRegistryPassword: "e"}),
	}.Keychain()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("secret:s", registrytest.Credential(t, kc, "ghcr.io/acme/app")); diff != "" {
		t.Errorf("the Secret before the environment (-want +got):\n%s", diff)
	}
}

// sec is one pull Secret, gitops-bot/registry, holding b.
func sec(b []byte) []images.PullSecret {
	return []images.PullSecret{{Name: "gitops-bot/registry", DockerConfigJSON: b}}
}
