package plugin

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/gittest"
)

// TestRenderGitSource renders an app whose manifests live in a third-party
// Git repository, served over smart HTTP: the engine fetches the pinned tag,
// applies the app's in-line patch, image override and namespace, and a second
// render is served from the cache by commit without touching the network.
func TestRenderGitSource(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	vendor := gittest.NewRepo(t, map[string]string{
		"deploy/kustomization.yaml": "resources: [deployment.yaml]\n",
		"deploy/deployment.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: podinfo
spec:
  replicas: 1
  selector: {matchLabels: {app: podinfo}}
  template:
    metadata: {labels: {app: podinfo}}
    spec:
      containers: [{name: podinfo, image: ghcr.io/stefanprodan/podinfo:6.7.0}]
`,
	})
	vendor.Tag(t, "6.7.0")
	// A later commit on the branch must not leak into the pinned render.
	vendor.Commit(t, map[string]string{"deploy/extra.yaml": cm("unpinned", "x")}, "after the tag")
	srv := gittest.Serve(t, map[string]*gittest.Repo{"podinfo": vendor})

	repo := t.TempDir()
	write(t, repo, ".git/HEAD", "ref: refs/heads/main\n")
	write(t, repo, "gitops.yaml", `apiVersion: gitops.kubectl.dev/v1alpha1
kind: Repository
sources:
  allow: [`+srv.URL("")+`]
apps:
  - name: podinfo
    namespace: podinfo
    source:
      git: `+srv.URL("podinfo")+`
      ref: 6.7.0
      path: deploy
    patches:
      - target: {kind: Deployment, name: podinfo}
        patch: |
          - op: replace
            path: /spec/replicas
            value: 3
    images: [{name: ghcr.io/stefanprodan/podinfo, newTag: 6.7.1}]
`)

	code, out, errOut := run(t, repo, "render", "podinfo")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"replicas: 3", "podinfo:6.7.1", "namespace: podinfo"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "unpinned") {
		t.Errorf("render used a commit after the pinned tag:\n%s", out)
	}

	requests := srv.Requests()
	if code, again, errOut := run(t, repo, "render", "podinfo"); code != 0 || again != out {
		t.Fatalf("second render: exit %d, %s; output changed: %v", code, errOut, again != out)
	}
	// Resolving a tag asks the server which commit it names (one ls-remote);
	// the commit's content then comes from the cache.
	if got := srv.Requests() - requests; got > 2 {
		t.Errorf("second render made %d requests; the fetched commit should come from the cache", got)
	}
}

// TestRenderGitSourceNotAllowed refuses a source outside sources.allow
// before any request.
func TestRenderGitSourceNotAllowed(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	vendor := gittest.NewRepo(t, map[string]string{"a.yaml": cm("a", "b")})
	srv := gittest.Serve(t, map[string]*gittest.Repo{"vendor": vendor})
	repo := t.TempDir()
	write(t, repo, "gitops.yaml", `apiVersion: gitops.kubectl.dev/v1alpha1
kind: Repository
apps:
  - name: vendor
    source: {git: `+srv.URL("vendor")+`, ref: main}
`)
	write(t, filepath.Join(repo, ".git"), "HEAD", "ref: refs/heads/main\n")
	// No allowlist in the file: the CLI trusts the file's own sources.
	if code, _, errOut := run(t, repo, "render", "vendor"); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	write(t, repo, "gitops.yaml", `apiVersion: gitops.kubectl.dev/v1alpha1
kind: Repository
sources:
  allow: [https://example.com/]
apps:
  - name: vendor
    source: {git: `+srv.URL("vendor")+`, ref: main}
`)
	before := srv.Requests()
	code, _, errOut := run(t, repo, "render", "vendor")
	if code != ExitError || !strings.Contains(errOut, "allow") {
		t.Errorf("source outside sources.allow: exit %d, stderr %s", code, errOut)
	}
	if srv.Requests() != before {
		t.Errorf("a refused source made %d requests", srv.Requests()-before)
	}
}
