package render

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/kubectl-gitops/kubectl-gitops/internal/config"
)

// Result.Files names what a render read, relative to the root: the bot
// decides with it which apps a change touches.
func TestResultFiles(t *testing.T) {
	cm := func(name string) string {
		return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\n"
	}
	root := writeTree(t, map[string]string{
		"bases/common/kustomization.yaml": "resources: [cm.yaml]\n",
		"bases/common/cm.yaml":            cm("common"),
		"bases/unused/cm.yaml":            cm("unused"),
		"apps/web/kustomization.yaml":     "resources: [../../bases/common, web.yaml]\n",
		"apps/web/web.yaml":               cm("web"),
		"apps/plain/a.yaml":               cm("a"),
		"apps/plain/sub/b.yaml":           cm("b"),
		"charts/site/Chart.yaml":          "apiVersion: v2\nname: site\nversion: 0.1.0\n",
		"charts/site/templates/cm.yaml":   "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Values.name }}\n",
		"values/prod.yaml":                "name: prod\n",
		"values/unused.yaml":              "name: unused\n",
	})
	repo := &config.Repository{Dir: root}
	tests := []struct {
		app  config.App
		want []string
	}{
		{config.App{Name: "web", Path: "apps/web"}, []string{
			"apps/web/kustomization.yaml", "apps/web/web.yaml", "bases/common/cm.yaml", "bases/common/kustomization.yaml"}},
		{config.App{Name: "plain", Path: "apps/plain"}, []string{"apps/plain/a.yaml", "apps/plain/sub/b.yaml"}},
		{config.App{Name: "site", Helm: &config.Helm{Chart: "charts/site", ValuesFiles: []string{"values/prod.yaml"}}}, []string{
			"charts/site/Chart.yaml", "charts/site/templates/cm.yaml", "values/prod.yaml"}},
	}
	for _, tt := range tests {
		t.Run(tt.app.Name, func(t *testing.T) {
			res, err := App(t.Context(), repo, tt.app, AppOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(res.Files, tt.want) {
				t.Errorf("Files = %q, want %q", res.Files, tt.want)
			}
		})
	}

	// A single file rendered on its own.
	res, err := Path(t.Context(), filepath.Join(root, "apps/plain/a.yaml"), Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"apps/plain/a.yaml"}; !slices.Equal(res.Files, want) {
		t.Errorf("Files = %q, want %q", res.Files, want)
	}
}
