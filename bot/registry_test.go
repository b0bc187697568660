package bot

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/registrytest"
)

// TestRegistryCredentialsFromSecrets reads pull Secrets through a real API
// server: the bot's namespace's Secrets of type dockerconfigjson, with the
// docker config file's and the environment's; read again when they
// rotate; a missing Secret, one of the wrong type or with bad content
// fails the check naming it, never a value, and no credentials are used
// until it is fixed.
func TestRegistryCredentialsFromSecrets(t *testing.T) {
	env.Require(t)
	const canary = "canary-pull-5e1b"
	ns := env.Namespace(t)
	secrets := env.Clientset.CoreV1().Secrets(ns)
	dockerConfig := func(host, user, pass string) []byte {
		return fmt.Appendf(nil, `{"auths":{%q:{"auth":%q}}}`, host, base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
	}
	put := func(name string, typ corev1.SecretType, data map[string][]byte) {
		t.Helper()
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, Type: typ, Data: data}
		if _, err := secrets.Create(t.Context(), s, metav1.CreateOptions{}); err == nil {
			return
		}
		cur, err := secrets.Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		cur.Data = data
		if _, err := secrets.Update(t.Context(), cur, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(file, dockerConfig("registry.example.com", "file", "f"), 0o600); err != nil {
		t.Fatal(err)
	}
	put("registry", corev1.SecretTypeDockerConfigJson, map[string][]byte{corev1.DockerConfigJsonKey: dockerConfig("ghcr.io", "robot", "one")})
	put("quay", corev1.SecretTypeDockerConfigJson, map[string][]byte{corev1.DockerConfigJsonKey: dockerConfig("quay.io", "q", "two")})

	cfg, err := ParseConfig([]byte(imagesBase+fmt.Sprintf("clusters: {test: {kubeconfig: /nowhere}}\ndefaultCluster: test\nstate: {namespace: %s}\nimages: {dockerConfig: %s, pullSecrets: [registry, quay]}\n", ns, file)), lookup(map[string]string{"T": "t"}))
	if err != nil {
		t.Fatal(err)
	}
	u, err := NewImageUpdater(*cfg, &State{pullSecrets: pullSecrets{client: env.Clientset, namespace: ns}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	check := func(repo, want, wantErr string) {
		t.Helper()
		now = now.Add(time.Minute)
		err := u.registry.refresh(t.Context(), now)
		switch {
		case wantErr != "":
			if err == nil || !strings.Contains(err.Error(), wantErr) || strings.Contains(err.Error(), canary) {
				t.Errorf("refresh: %v, want an error containing %q without the canary", err, wantErr)
			}
			if _, rerr := u.Scanner.Keychain.Resolve(mustRepo(t, repo)); rerr == nil {
				t.Error("credentials resolved after a failed refresh")
			}
			if s := fmt.Sprintf("%v %#v", u.Scanner.Keychain, u.Scanner.Keychain); strings.Contains(s, canary) {
				t.Errorf("the keychain prints %q", s)
			}
			return
		case err != nil:
			t.Fatalf("refresh: %v", err)
		}
		if got := registrytest.Credential(t, u.Scanner.Keychain, repo); got != want {
			t.Errorf("%s resolves to %q, want %q", repo, got, want)
		}
	}
	check("ghcr.io/acme/app", "robot:one", "")
	check("quay.io/acme/app", "q:two", "")
	check("registry.example.com/acme/app", "file:f", "")
	check("docker.io/acme/app", "", "")

	put("registry", corev1.SecretTypeDockerConfigJson, map[string][]byte{corev1.DockerConfigJsonKey: dockerConfig("ghcr.io", "robot", "rotated")})
	check("ghcr.io/acme/app", "robot:rotated", "")

	put("registry", corev1.SecretTypeDockerConfigJson, map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{"ghcr.io":{"username":"` + canary + `","password":7}}}`)})
	check("ghcr.io/acme/app", "", "Secret "+ns+"/registry: .dockerconfigjson")
	if err := secrets.Delete(t.Context(), "quay", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	put("registry", corev1.SecretTypeDockerConfigJson, map[string][]byte{corev1.DockerConfigJsonKey: dockerConfig("ghcr.io", "robot", "three")})
	check("ghcr.io/acme/app", "", "Secret "+ns+"/quay not found; create it with kubectl create secret docker-registry quay -n "+ns)
	put("quay", corev1.SecretTypeOpaque, map[string][]byte{"password": []byte(canary)})
	check("quay.io/acme/app", "", "Secret "+ns+"/quay is of type Opaque, not kubernetes.io/dockerconfigjson")
	if err := secrets.Delete(t.Context(), "quay", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	put("quay", corev1.SecretTypeDockerConfigJson, map[string][]byte{corev1.DockerConfigJsonKey: dockerConfig("quay.io", "q", "back")})
	check("ghcr.io/acme/app", "robot:three", "")
	check("quay.io/acme/app", "q:back", "")

	// Within registryRefresh the credentials read are used as they are.
	put("registry", corev1.SecretTypeDockerConfigJson, map[string][]byte{corev1.DockerConfigJsonKey: dockerConfig("ghcr.io", "robot", "four")})
	if err := u.registry.refresh(t.Context(), now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := registrytest.Credential(t, u.Scanner.Keychain, "ghcr.io/acme/app"); got != "robot:three" {
		t.Errorf("within the refresh interval: %q, want robot:three", got)
	}
}

// TestRegistryCredentialsFileRotates: the docker config file is read again
// too, as the kubelet rotates a Secret mounted as a directory (a symlink
// swapped).
func TestRegistryCredentialsFileRotates(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "config.json")
	write := func(generation int, content string) {
		t.Helper()
		data := filepath.Join(dir, fmt.Sprintf("data-%d", generation))
		if err := os.WriteFile(data, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(data, link+".tmp"); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(link+".tmp", link); err != nil {
			t.Fatal(err)
		}
	}
	write(1, `{"auths":{"ghcr.io":{"username":"robot","password":"one"}}}`)
	cfg, err := ParseConfig([]byte(imagesBase+"images: {dockerConfig: "+link+"}\n"), lookup(map[string]string{"T": "t"}))
	if err != nil {
		t.Fatal(err)
	}
	u, err := NewImageUpdater(*cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i, want := range []string{"robot:one", "robot:two"} {
		if i > 0 {
			write(i+1, `{"auths":{"ghcr.io":{"username":"robot","password":"two"}}}`)
		}
		now = now.Add(time.Minute)
		if err := u.registry.refresh(t.Context(), now); err != nil {
			t.Fatal(err)
		}
		if got := registrytest.Credential(t, u.Scanner.Keychain, "ghcr.io/acme/app"); got != want {
			t.Errorf("generation %d: %q, want %q", i+1, got, want)
		}
	}
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := u.registry.refresh(t.Context(), now.Add(time.Minute)); err == nil || !strings.Contains(err.Error(), "reading the docker config") {
		t.Errorf("a missing file: %v", err)
	}
}

func mustRepo(t *testing.T, repo string) name.Repository {
	t.Helper()
	r, err := name.NewRepository(repo)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
