package bot

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/kubectl-gitops/kubectl-gitops/render"
)

// TestDeployBase keeps deploy/base working: it renders, and the bot accepts
// the configuration it ships.
func TestDeployBase(t *testing.T) {
	base := filepath.Join("..", "deploy", "base")
	res, err := render.Kustomize(context.Background(), base, render.Options{Root: base})
	if err != nil {
		t.Fatalf("deploy/base does not render: %v", err)
	}
	kinds := map[string]int{}
	for _, obj := range res.Objects {
		kinds[obj.GetKind()]++
		if obj.GetKind() != "Namespace" && obj.GetKind() != "ClusterRole" && obj.GetKind() != "ClusterRoleBinding" && obj.GetNamespace() != "gitops-bot" {
			t.Errorf("%s %s is not in namespace gitops-bot", obj.GetKind(), obj.GetName())
		}
	}
	for kind, n := range map[string]int{"Deployment": 1, "Service": 1, "ServiceAccount": 1, "ConfigMap": 1,
		"ClusterRole": 2, "ClusterRoleBinding": 2, "Role": 1, "RoleBinding": 1} {
		if kinds[kind] != n {
			t.Errorf("deploy/base has %d %s, want %d", kinds[kind], kind, n)
		}
	}
	data, err := os.ReadFile(filepath.Join(base, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig(data, func(name string) (string, bool) { return "from-" + name, true })
	if err != nil {
		t.Fatalf("deploy/base/config.yaml: %v", err)
	}
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("deploy/base/config.yaml: %v", err)
	}
}
