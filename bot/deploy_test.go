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
	for _, kind := range []string{"Deployment", "Service", "ServiceAccount", "ConfigMap", "ClusterRole", "ClusterRoleBinding"} {
		if kinds[kind] != 1 {
			t.Errorf("deploy/base has %d %s, want 1", kinds[kind], kind)
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
