package bot

import (
	"fmt"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kubectl-gitops/kubectl-gitops/internal/config"
	"github.com/kubectl-gitops/kubectl-gitops/internal/engine"
	"github.com/kubectl-gitops/kubectl-gitops/render"
)

func TestPlanCache(t *testing.T) {
	c := newPlanCache(3)
	for i := range 4 {
		c.put("acme/shop", fmt.Sprintf("sha%d", i), "web", fmt.Sprintf("hash%d", i))
	}
	if _, ok := c.get("acme/shop", "sha0", "web"); ok {
		t.Error("the oldest entry outlived the bound")
	}
	for i := 1; i < 4; i++ {
		if h, ok := c.get("acme/shop", fmt.Sprintf("sha%d", i), "web"); !ok || h != fmt.Sprintf("hash%d", i) {
			t.Errorf("sha%d: %q, %v", i, h, ok)
		}
	}
	c.put("acme/shop", "sha3", "web", "other")
	if h, _ := c.get("acme/shop", "sha3", "web"); h != "hash3" {
		t.Errorf("a recorded hash changed to %q: a commit's plan never changes", h)
	}
	if _, ok := c.get("acme/other", "sha3", "web"); ok {
		t.Error("a hash leaked across repositories")
	}

	web, db := &config.App{Name: "web"}, &config.App{Name: "db"}
	cm := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "a"}}}
	c.record("acme/shop", "head", []engine.Rendered{
		{Unit: engine.Unit{App: web, Namespace: "shop"}, Result: &render.Result{Objects: []*unstructured.Unstructured{cm}}},
		{Unit: engine.Unit{App: db, Namespace: "shop"}, Err: fmt.Errorf("render failed")},
	})
	if h, ok := c.get("acme/shop", "head", "web"); !ok || h == "" {
		t.Error("the rendered app's plan was not recorded")
	}
	if _, ok := c.get("acme/shop", "head", "db"); ok {
		t.Error("a failed render has a plan")
	}
}
