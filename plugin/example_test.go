package plugin

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubectl-gitops/kubectl-gitops/internal/engine"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/gittest"
)

// TestExampleRepository walks the README's example repository through its
// life against the real API server: apply every app (plain YAML, Kustomize,
// a Helm release) in dependency order, see no diff, change a Deployment and
// the chart's values and see exactly those changes, apply them, remove a
// Secret and see apply prune it, and read status along the way.
func TestExampleRepository(t *testing.T) {
	env.Require(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	files := map[string]string{}
	err := filepath.WalkDir(shop, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		rel, _ := filepath.Rel(shop, path)
		files[rel] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	repo := gittest.NewRepo(t, files)
	kube := []string{"--kubeconfig", env.Kubeconfig}
	gitops := func(args ...string) (int, string, string) {
		t.Helper()
		return run(t, repo.Dir, append(args, kube...)...)
	}
	status := func() map[string]engine.Status {
		t.Helper()
		code, out, errOut := gitops("status", "-o", "json")
		if code != 0 {
			t.Fatalf("status: exit %d: %s", code, errOut)
		}
		var rows []engine.Status
		if err := json.Unmarshal([]byte(out), &rows); err != nil {
			t.Fatalf("status -o json: %v\n%s", err, out)
		}
		byApp := map[string]engine.Status{}
		for _, r := range rows {
			byApp[r.App] = r
		}
		return byApp
	}

	if st := status(); st["web"].Applied || st["web"].Sync != "Drifted" || st["cache"].Health != "NotApplied" {
		t.Errorf("status before the first apply: %+v", st)
	}

	code, out, errOut := gitops("apply", ".")
	if code != 0 {
		t.Fatalf("apply: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if i, j := strings.Index(out, "app config"), strings.Index(out, "app web:"); i < 0 || j < i {
		t.Errorf("apply should apply config (the dependency) before web:\n%s", out)
	}
	if !strings.Contains(out, "Helm release shop/cache revision 1 deployed") {
		t.Errorf("the chart app should be installed as a Helm release:\n%s", out)
	}
	if code, out, errOut := gitops("diff", "."); code != 0 {
		t.Fatalf("diff right after apply: exit %d\n%s%s", code, out, errOut)
	}
	head := repo.Head(t)
	for app, row := range status() {
		if row.Sync != "InSync" || !row.Applied || row.Error != "" {
			t.Errorf("status of %s after apply: %+v", app, row)
		}
		if row.Kind == "inventory" && row.Revision != head {
			t.Errorf("status of %s: revision %q, want the applied commit %s", app, row.Revision, head)
		}
	}

	// A pull request's worth of change: more replicas, and new chart values.
	prod := filepath.Join(repo.Dir, "apps/web/overlays/prod/kustomization.yaml")
	replace(t, prod, "replicas: 3", "replicas: 4")
	replace(t, filepath.Join(repo.Dir, "gitops.yaml"), "values: {replicaCount: 2}", "values: {replicaCount: 3}")
	code, out, errOut = gitops("diff", ".", "-o", "json")
	if code != ExitChanges {
		t.Fatalf("diff after the change: exit %d\n%s%s", code, out, errOut)
	}
	var report struct {
		Changes []struct{ Kind, Namespace, Name, Action string }
	}
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Fatal(err)
	}
	var changed []string
	for _, c := range report.Changes {
		if c.Action != "unchanged" {
			changed = append(changed, c.Kind+"/"+c.Namespace+"/"+c.Name+" "+c.Action)
		}
	}
	want := []string{"Deployment/shop/cache configured", "Deployment/shop/web configured", "Release/shop/cache configured"}
	if strings.Join(changed, ", ") != strings.Join(want, ", ") {
		t.Errorf("changes = %v, want %v", changed, want)
	}
	if st := status(); st["web"].Sync != "Drifted" || st["web"].Drift.Configured != 1 || st["config"].Sync != "InSync" {
		t.Errorf("status after the change: web %+v, config %+v", st["web"], st["config"])
	}
	if code, out, errOut := gitops("apply", "."); code != 0 {
		t.Fatalf("apply of the change: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := gitops("diff", "."); code != 0 {
		t.Fatalf("diff after applying the change: exit %d\n%s%s", code, out, errOut)
	}

	// The Secret leaves the tree: apply prunes it (the config app prunes).
	settings := filepath.Join(repo.Dir, "apps/config/settings.yaml")
	data, err := os.ReadFile(settings)
	if err != nil {
		t.Fatal(err)
	}
	head, _, _ = strings.Cut(string(data), "---\napiVersion: v1\nkind: Secret")
	if err := os.WriteFile(settings, []byte(head), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = gitops("diff", "config")
	if code != ExitChanges || !strings.Contains(out, "- Secret/shop/payment-api deleted") || strings.Contains(out, "demo-token") {
		t.Errorf("diff should preview the prune, masked: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut = gitops("apply", "config"); code != 0 || !strings.Contains(errOut, "secret/payment-api pruned") {
		t.Errorf("apply should prune the Secret: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, _ := gitops("diff", "."); code != 0 {
		t.Errorf("diff after the prune: exit %d", code)
	}
}

func replace(t *testing.T, path, old, new string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), old) {
		t.Fatalf("%s has no %q", path, old)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(data), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}
