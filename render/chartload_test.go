package render

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

func TestHelmSymlinkLoop(t *testing.T) {
	root, chartDir := helmFixture(t)
	symlink(t, chartDir, filepath.Join(chartDir, "config", "loop"))
	_, err := Helm(t.Context(), chartDir, Options{Root: root})
	if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "symlink loop") {
		t.Fatalf("err = %v, want a symlink loop refusal", err)
	}
}

// TestHelmMissingDependency: RS-10, a dependency that is not vendored is an
// error that says what to do, and nothing is fetched.
func TestHelmMissingDependency(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.NotFound(w, r)
	}))
	defer srv.Close()
	root := writeTree(t, map[string]string{
		"chart/Chart.yaml": "apiVersion: v2\nname: web\nversion: 1.0.0\ndependencies:\n" +
			"  - name: redis\n    version: 1.0.0\n    repository: " + srv.URL + "\n" +
			"  - name: oci-dep\n    version: 1.0.0\n    repository: oci://" + strings.TrimPrefix(srv.URL, "http://") + "/charts\n",
		"chart/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\n",
	})
	_, err := Helm(t.Context(), filepath.Join(root, "chart"), Options{Root: root})
	if err == nil {
		t.Fatal("render succeeded, want a missing dependency error")
	}
	for _, msg := range []string{"redis, oci-dep", "missing from web/charts", "helm dependency build", "commit charts/"} {
		if !strings.Contains(err.Error(), msg) {
			t.Errorf("error %q does not contain %q", err, msg)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the repository server got %d requests, want 0", n)
	}
}

func TestHelmMissingNestedDependency(t *testing.T) {
	root := writeTree(t, map[string]string{
		"chart/Chart.yaml":             "apiVersion: v2\nname: web\nversion: 1.0.0\ndependencies:\n  - name: mid\n    version: 1.0.0\n",
		"chart/charts/mid/Chart.yaml":  "apiVersion: v2\nname: mid\nversion: 1.0.0\ndependencies:\n  - name: leaf\n    version: 1.0.0\n    repository: https://charts.example.com\n",
		"chart/templates/NOTES.txt":    "hi",
		"chart/charts/mid/values.yaml": "a: 1\n",
	})
	_, err := Helm(t.Context(), filepath.Join(root, "chart"), Options{Root: root})
	if err == nil || !strings.Contains(err.Error(), "leaf are in Chart.yaml but missing from web/charts/mid/charts") {
		t.Fatalf("err = %v, want leaf missing from the mid subchart", err)
	}
}

func TestHelmLibraryChart(t *testing.T) {
	root := writeTree(t, map[string]string{
		"chart/Chart.yaml": "apiVersion: v2\nname: lib\nversion: 1.0.0\ntype: library\n",
	})
	_, err := Helm(t.Context(), filepath.Join(root, "chart"), Options{Root: root})
	if err == nil || !strings.Contains(err.Error(), "is a library chart") {
		t.Fatalf("err = %v, want a library chart refusal", err)
	}
}
