package engine

import (
	"errors"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kubectl-gitops/kubectl-gitops/internal/config"
	"github.com/kubectl-gitops/kubectl-gitops/render"
)

func TestPlanHash(t *testing.T) {
	const canary = "CANARY-plan-hash-31b7"
	cm := func(name, value string) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": name, "namespace": "shop"},
			"data":     map[string]any{"key": value},
		}}
	}
	secret := func(value string) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "v1", "kind": "Secret",
			"metadata":   map[string]any{"name": "db", "namespace": "shop"},
			"stringData": map[string]any{"password": value},
		}}
	}
	web := &config.App{Name: "web"}
	pruning := &config.App{Name: "web", Prune: true}
	rendered := func(app *config.App, ns string, objs ...*unstructured.Unstructured) *Rendered {
		return &Rendered{Unit: Unit{App: app, Namespace: ns}, Result: &render.Result{Objects: objs}}
	}
	base := rendered(web, "shop", cm("a", "1"), cm("b", "2"), secret(canary+"-one"))
	hash := func(r *Rendered) string {
		t.Helper()
		h, err := PlanHash(r)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	want := hash(base)
	if !strings.HasPrefix(want, "sha256:") || len(want) != len("sha256:")+64 || strings.Contains(want, canary) {
		t.Fatalf("PlanHash = %q, want sha256:<64 hex digits>", want)
	}
	for name, tt := range map[string]struct {
		r    *Rendered
		same bool
	}{
		"the same render":         {rendered(web, "shop", cm("a", "1"), cm("b", "2"), secret(canary+"-one")), true},
		"another order":           {rendered(web, "shop", secret(canary+"-one"), cm("b", "2"), cm("a", "1")), true},
		"a changed value":         {rendered(web, "shop", cm("a", "1"), cm("b", "3"), secret(canary+"-one")), false},
		"a changed Secret value":  {rendered(web, "shop", cm("a", "1"), cm("b", "2"), secret(canary+"-two")), false},
		"an object less":          {rendered(web, "shop", cm("a", "1"), secret(canary+"-one")), false},
		"an object more":          {rendered(web, "shop", cm("a", "1"), cm("b", "2"), cm("c", "3"), secret(canary+"-one")), false},
		"prune turned on":         {rendered(pruning, "shop", cm("a", "1"), cm("b", "2"), secret(canary+"-one")), false},
		"another inventory space": {rendered(web, "other", cm("a", "1"), cm("b", "2"), secret(canary+"-one")), false},
		"a Helm release instead":  {rendered(&config.App{Name: "web", Helm: &config.Helm{}}, "shop", cm("a", "1"), cm("b", "2"), secret(canary+"-one")), false},
		"values moved between neighbours": {
			rendered(web, "shop", cm("a", "12"), cm("b", ""), secret(canary+"-one")), false,
		},
	} {
		t.Run(name, func(t *testing.T) {
			if got := hash(tt.r); (got == want) != tt.same {
				t.Errorf("PlanHash = %s, base %s; want same: %v", got, want, tt.same)
			}
		})
	}
	failed := &Rendered{Err: errors.New("render failed")}
	if _, err := PlanHash(failed); err == nil {
		t.Error("PlanHash of a failed render: no error")
	}
}
