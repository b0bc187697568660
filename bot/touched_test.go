package bot

import (
	"slices"
	"testing"

	"github.com/kubectl-gitops/kubectl-gitops/internal/config"
)

func touchedNames(base, head *config.Repository, changed []string, files map[string][]string) []string {
	var out []string
	for _, a := range Touched(base, head, changed, files) {
		out = append(out, a.Name)
	}
	return out
}

func TestTouched(t *testing.T) {
	repo := func(apps ...config.App) *config.Repository { return &config.Repository{Apps: apps} }
	web := config.App{Name: "web", Path: "apps/web", Namespace: "shop", Line: 4}
	api := config.App{Name: "api", Path: "apps/api", Line: 8}
	chart := config.App{Name: "chart", Helm: &config.Helm{Chart: "charts/site", ValuesFiles: []string{"values/prod.yaml"}}}
	remote := config.App{Name: "remote", Helm: &config.Helm{Chart: "nginx", Repo: "https://charts.example.com"}}
	sourced := config.App{Name: "sourced", Source: &config.GitSource{Git: "https://example.com/x.git", Ref: "v1", Path: "apps/web"}}
	base := repo(web, api, chart, remote, sourced)
	moved := web
	moved.Line = 40
	renamedNS := web
	renamedNS.Namespace = "store"

	tests := []struct {
		name    string
		base    *config.Repository
		head    *config.Repository
		changed []string
		files   map[string][]string
		want    []string
	}{
		{name: "a file in the app's folder", base: base, head: base, changed: []string{"apps/web/deploy.yaml"}, want: []string{"web"}},
		{name: "a sibling folder with the same prefix", base: base, head: base, changed: []string{"apps/web-old/deploy.yaml"}},
		{name: "a file the render read outside the folder", base: base, head: base, changed: []string{"bases/common/cm.yaml"},
			files: map[string][]string{"api": {"apps/api/kustomization.yaml", "bases/common/cm.yaml"}}, want: []string{"api"}},
		{name: "a chart folder and a values file", base: base, head: base, changed: []string{"charts/site/templates/cm.yaml"}, want: []string{"chart"}},
		{name: "a values file", base: base, head: base, changed: []string{"./values/prod.yaml"}, want: []string{"chart"}},
		{name: "the entry changed", base: base, head: repo(renamedNS, api, chart, remote, sourced), changed: []string{"gitops.yaml"}, want: []string{"web"}},
		{name: "the entry only moved in the file", base: base, head: repo(api, moved, chart, remote, sourced), changed: []string{"gitops.yaml"}},
		{name: "a new app", base: repo(web), head: repo(web, api), changed: []string{"gitops.yaml"}, want: []string{"api"}},
		{name: "no base file", head: repo(web, api), want: []string{"web", "api"}},
		{name: "an app with a source ignores repository paths", base: base, head: base, changed: []string{"apps/web/x.yaml"}, want: []string{"web"}},
		{name: "nothing", base: base, head: base, changed: []string{"README.md"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := touchedNames(tt.base, tt.head, tt.changed, tt.files)
			if !slices.Equal(got, tt.want) {
				t.Errorf("touched %v, want %v", got, tt.want)
			}
		})
	}
}
