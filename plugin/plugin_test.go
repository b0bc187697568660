package plugin

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"
)

const shop = "../testdata/examples/shop"

// run runs `kubectl gitops args…` in dir and returns its exit code and streams.
func run(t *testing.T, dir string, args ...string) (int, string, string) {
	t.Helper()
	if dir != "" {
		t.Chdir(dir)
	}
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	code := Execute(context.Background(), streams, args)
	return code, out.String(), errOut.String()
}

func TestRenderApp(t *testing.T) {
	code, out, errOut := run(t, shop, "render", "web")
	if code != 0 {
		t.Fatalf("exit %d, stderr: %s", code, errOut)
	}
	for _, want := range []string{
		"kind: Deployment", "replicas: 3", // the overlay's patch
		"image: ghcr.io/example/web:1.4.2", // the app's image override
		"team: storefront",                 // the app's in-line JSON6902 patch
		"namespace: shop",                  // the app's namespace
	} {
		if !strings.Contains(out, want) {
			t.Errorf("render web: output lacks %q:\n%s", want, out)
		}
	}
}

func TestRenderJSONChart(t *testing.T) {
	code, out, errOut := run(t, shop, "render", "cache", "-o", "json", "-n", "demo")
	if code != 0 {
		t.Fatalf("exit %d, stderr: %s", code, errOut)
	}
	var list struct {
		Kind  string `json:"kind"`
		Items []struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name, Namespace string
			} `json:"metadata"`
			Spec map[string]any `json:"spec"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if list.Kind != "List" || len(list.Items) != 2 {
		t.Fatalf("want a List of 2 objects, got %s with %d", list.Kind, len(list.Items))
	}
	for _, item := range list.Items {
		if item.Metadata.Namespace != "demo" || item.Metadata.Name != "cache" {
			t.Errorf("%s: name/namespace = %s/%s, want cache in demo (-n overrides the app)", item.Kind, item.Metadata.Name, item.Metadata.Namespace)
		}
		if item.Kind == "Deployment" && item.Spec["replicas"] != float64(2) {
			t.Errorf("replicas = %v, want 2 from the app's values", item.Spec["replicas"])
		}
	}
}

func TestRenderErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown app", []string{"render", "nope"}, "neither a path nor an app"},
		{"bad output", []string{"render", "web", "-o", "xml"}, `unknown output format "xml"`},
		{"no argument", []string{"render"}, "accepts 1 arg"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(t, shop, tt.args...)
			if code != ExitError {
				t.Errorf("exit %d, want %d", code, ExitError)
			}
			if out != "" {
				t.Errorf("stdout should be empty on error, got %q", out)
			}
			if !strings.Contains(errOut, tt.want) {
				t.Errorf("stderr %q lacks %q", errOut, tt.want)
			}
		})
	}
}

// TestDiffExitCodes follows diff(1): 0 same, 1 different, 2 trouble.
func TestDiffExitCodes(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.yaml", cm("settings", "one"))
	write(t, dir, "b.yaml", cm("settings", "two"))
	write(t, dir, "bad.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [\n")

	for _, tt := range []struct {
		args []string
		code int
	}{
		{[]string{"diff", "a.yaml", "a.yaml"}, ExitOK},
		{[]string{"diff", "a.yaml", "b.yaml"}, ExitChanges},
		{[]string{"diff", "a.yaml", "missing.yaml"}, ExitError},
		{[]string{"diff", "a.yaml", "bad.yaml"}, ExitError},
	} {
		code, out, errOut := run(t, dir, tt.args...)
		if code != tt.code {
			t.Errorf("%v: exit %d, want %d\nstdout: %s\nstderr: %s", tt.args, code, tt.code, out, errOut)
		}
	}
}

// TestDiffSecretsMasked diffs two trees whose Secret changed and checks that no
// format prints the value, plain or base64.
func TestDiffSecretsMasked(t *testing.T) {
	const before, after = "CANARY-before-7f3a9c", "CANARY-after-51be02"
	dir := t.TempDir()
	write(t, dir, "a/secret.yaml", secret(before))
	write(t, dir, "b/secret.yaml", secret(after))
	write(t, dir, "a/web.yaml", deployment(1))
	write(t, dir, "b/web.yaml", deployment(3))

	for _, format := range []string{"text", "markdown", "json"} {
		code, out, errOut := run(t, dir, "diff", "a", "b", "-o", format)
		if code != ExitChanges {
			t.Fatalf("%s: exit %d, want 1; stderr %s", format, code, errOut)
		}
		for _, leak := range []string{before, after, b64(before), b64(after), "CANARY"} {
			if strings.Contains(out+errOut, leak) {
				t.Errorf("%s output leaks %q:\n%s", format, leak, out)
			}
		}
		for _, want := range []string{"*** (before)", "*** (after)", "Secret", "replicas"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s output lacks %q:\n%s", format, want, out)
			}
		}
	}
	code, out, _ := run(t, dir, "diff", "a", "b", "--show-secrets")
	if code != ExitChanges || !strings.Contains(out, b64(after)) {
		t.Errorf("--show-secrets should print the value; exit %d:\n%s", code, out)
	}
}

// TestDiffRepositories diffs two whole repositories: every app of each side.
func TestDiffRepositories(t *testing.T) {
	v2 := filepath.Join(t.TempDir(), "shop")
	copyTree(t, shop, v2)
	path := filepath.Join(v2, "apps/web/overlays/prod/kustomization.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	write(t, v2, "apps/web/overlays/prod/kustomization.yaml", strings.Replace(string(data), "replicas: 3", "replicas: 5", 1))

	abs, err := filepath.Abs(shop)
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, "", "diff", abs, v2, "--color", "never")
	if code != ExitChanges {
		t.Fatalf("exit %d, want 1; stderr: %s", code, errOut)
	}
	if !strings.Contains(out, "apps/Deployment/shop/web") || !strings.Contains(out, "+  replicas: 5") {
		t.Errorf("diff should name the one changed Deployment:\n%s", out)
	}
	if strings.Contains(out, "Deployment/shop-staging/web") {
		t.Errorf("unchanged staging app reported:\n%s", out)
	}
	if !strings.Contains(out, "0 created, 1 configured, 0 deleted") {
		t.Errorf("summary wrong:\n%s", out)
	}
}

// TestRenderRefusesUnsafe shows the safety defaults through the command.
func TestRenderRefusesUnsafe(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	write(t, outside, "secret.yaml", cm("stolen", "x"))
	write(t, dir, "repo/.git/HEAD", "ref: refs/heads/main\n")
	write(t, dir, "repo/app/kustomization.yaml", "resources:\n- http://127.0.0.1:1/x.yaml\n")
	if err := os.Symlink(filepath.Join(outside, "secret.yaml"), filepath.Join(dir, "repo/plain-link.yaml")); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := run(t, filepath.Join(dir, "repo"), "render", "app")
	if code != ExitError || !strings.Contains(errOut, "kustomization.yaml") || !strings.Contains(errOut, "http://127.0.0.1:1/x.yaml") {
		t.Errorf("http resource: exit %d, stderr %s", code, errOut)
	}
	code, out, errOut := run(t, filepath.Join(dir, "repo"), "render", "plain-link.yaml")
	if code != ExitError || strings.Contains(out, "stolen") || !strings.Contains(errOut, "plain-link.yaml") {
		t.Errorf("symlink out of the repository: exit %d, stdout %s, stderr %s", code, out, errOut)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := run(t, "", "version", "-o", "json")
	var info map[string]string
	if code != 0 || json.Unmarshal([]byte(out), &info) != nil || info["version"] == "" {
		t.Errorf("version -o json: exit %d, %q", code, out)
	}
}

func TestCompletion(t *testing.T) {
	code, out, _ := run(t, shop, "__complete", "render", "-o", "")
	if code != 0 || !strings.Contains(out, ":") {
		t.Errorf("cobra completion: exit %d, %q", code, out)
	}
	code, out, _ = run(t, "", "completion", "bash")
	if code != 0 || !strings.Contains(out, "bash completion") {
		t.Errorf("completion bash: exit %d", code)
	}
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		write(t, to, rel, string(data))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func cm(name, value string) string {
	return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\n  namespace: default\ndata:\n  key: " + value + "\n"
}

func secret(value string) string {
	return "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\n  namespace: default\ndata:\n  password: " + b64(value) + "\n"
}

func deployment(replicas int) string {
	return strings.ReplaceAll(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
spec:
  replicas: N
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx}]
`, "N", string(rune('0'+replicas)))
}
