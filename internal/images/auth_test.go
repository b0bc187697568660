package images_test

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/kubectl-gitops/kubectl-gitops/internal/images"
)

// credential is what a keychain gives a repository, "" for anonymous.
func credential(t *testing.T, kc authn.Keychain, repo string) string {
	t.Helper()
	r, err := name.NewRepository(repo)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := kc.Resolve(r)
	if err != nil {
		t.Fatal(err)
	}
	if auth == authn.Anonymous {
		return ""
	}
	a, err := auth.Authorization()
	if err != nil {
		t.Fatal(err)
	}
	if a.IdentityToken != "" {
		return "token " + a.IdentityToken
	}
	return a.Username + ":" + a.Password
}

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
		DockerConfig:     file,
		DockerConfigJSON: []byte(secret),
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
		if got := credential(t, kc, repo); got != want {
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
	if got := credential(t, kc, "ghcr.io/acme/app"); got != "" {
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
		{"not JSON", images.Credentials{DockerConfigJSON: []byte(`{"auths": {"ghcr.io": {"password": "` + canary + `"}` + canary)},
			"the Secret's .dockerconfigjson: not a docker config: not JSON (syntax error at byte"},
		{"a field of the wrong type", images.Credentials{DockerConfigJSON: []byte(`{"auths": {"ghcr.io": {"username": "` + canary + `", "password": 7}}}`)},
			`auths["ghcr.io"]: field password is a JSON number, not a string`},
		{"auth not base64", images.Credentials{DockerConfigJSON: []byte(`{"auths": {"ghcr.io": {"auth": "` + canary + `!!"}}}`)},
			`auths["ghcr.io"]: its auth field is not base64 of username:password`},
		{"auth without a colon", images.Credentials{DockerConfigJSON: []byte(`{"auths": {"ghcr.io": {"auth": "` + base64.StdEncoding.EncodeToString([]byte(canary)) + `"}}}`)},
			`auths["ghcr.io"]: its auth field is not base64 of username:password`},
		{"auths not an object", images.Credentials{DockerConfigJSON: []byte(`{"auths": "` + canary + `"}`)},
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
		DockerConfigJSON: []byte(one),
		Getenv:           env(map[string]string{images.EnvRegistryHost: "ghcr.io", images.EnvRegistryUsername: "env", images.EnvRegistryPassword: "e"}),
	}.Keychain()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("secret:s", credential(t, kc, "ghcr.io/acme/app")); diff != "" {
		t.Errorf("the Secret before the environment (-want +got):\n%s", diff)
	}
}

// TestReloadingKeychainFollowsTheFile: credentials rotated in the docker
// config file (as the kubelet rotates a mounted Secret, by swapping a
// symlink) are used from the next Resolve; a file that goes bad fails with
// its name and no value, and the credentials read before are not used.
func TestReloadingKeychainFollowsTheFile(t *testing.T) {
	const canary = "canary-7f3a9c2e"
	dir := t.TempDir()
	link := filepath.Join(dir, "config.json")
	generation := 0
	write := func(content string) {
		t.Helper()
		generation++
		data := filepath.Join(dir, fmt.Sprintf("data-%d", generation))
		if err := os.WriteFile(data, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		tmp := link + ".tmp"
		if err := os.Symlink(data, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, link); err != nil {
			t.Fatal(err)
		}
	}
	write(fmt.Sprintf(`{"auths":{"ghcr.io":{"auth":%q}}}`, basic("robot", "one")))
	kc, err := images.Credentials{DockerConfig: link}.ReloadingKeychain()
	if err != nil {
		t.Fatal(err)
	}
	if got := credential(t, kc, "ghcr.io/acme/app"); got != "robot:one" {
		t.Errorf("first read = %q, want robot:one", got)
	}

	write(fmt.Sprintf(`{"auths":{"ghcr.io":{"auth":%q},"quay.io":{"username":"q","password":"two"}}}`, basic("robot", "two")))
	if got := credential(t, kc, "ghcr.io/acme/app"); got != "robot:two" {
		t.Errorf("after the rotation = %q, want robot:two", got)
	}
	if got := credential(t, kc, "quay.io/acme/app"); got != "q:two" {
		t.Errorf("a registry added by the rotation = %q, want q:two", got)
	}
	if s := fmt.Sprint(kc); s != "registry credentials for [ghcr.io quay.io]" {
		t.Errorf("printed = %q", s)
	}

	// Bad bytes, then a missing file: errors that name the file, never a
	// value, and no fallback to the credentials read before.
	repo, _ := name.NewRepository("ghcr.io/acme/app")
	write(`{"auths":{"ghcr.io":{"username":"` + canary + `","password":7}}}`)
	if _, err := kc.Resolve(repo); err == nil || !strings.Contains(err.Error(), link) || strings.Contains(err.Error(), canary) {
		t.Errorf("a bad file: err = %v, want one naming %s without the canary", err, link)
	}
	if s := fmt.Sprintf("%v %#v", kc, kc); strings.Contains(s, canary) || strings.Contains(s, "two") {
		t.Errorf("printed = %q, shows a secret", s)
	}
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if _, err := kc.Resolve(repo); err == nil || !strings.Contains(err.Error(), "docker config") {
		t.Errorf("a missing file: err = %v, want one about the docker config", err)
	}

	// Restored: read again.
	write(fmt.Sprintf(`{"auths":{"ghcr.io":{"auth":%q}}}`, basic("robot", "three")))
	if got := credential(t, kc, "ghcr.io/acme/app"); got != "robot:three" {
		t.Errorf("after the restore = %q, want robot:three", got)
	}
}

// TestReloadingKeychainWithoutAFile is Keychain when no file is named.
func TestReloadingKeychainWithoutAFile(t *testing.T) {
	kc, err := images.Credentials{Getenv: env(map[string]string{images.EnvRegistryHost: "ghcr.io", images.EnvRegistryUsername: "u", images.EnvRegistryPassword: "p"})}.ReloadingKeychain()
	if err != nil {
		t.Fatal(err)
	}
	if got := credential(t, kc, "ghcr.io/acme/app"); got != "u:p" {
		t.Errorf("credential = %q, want u:p", got)
	}
	if _, err := (images.Credentials{DockerConfig: filepath.Join(t.TempDir(), "missing.json")}).ReloadingKeychain(); err == nil {
		t.Error("a missing file at the start: no error")
	}
}
