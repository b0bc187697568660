package engine

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kubectl-gitops/kubectl-gitops/internal/cluster"
	"github.com/kubectl-gitops/kubectl-gitops/internal/config"
	"github.com/kubectl-gitops/kubectl-gitops/internal/sandbox"
	"github.com/kubectl-gitops/kubectl-gitops/render"
)

func TestNamespace(t *testing.T) {
	withNS := &config.App{Name: "web", Namespace: "shop"}
	without := &config.App{Name: "web"}
	tests := []struct {
		name               string
		app                *config.App
		override, fallback string
		want               string
	}{
		{"-n wins over the app", withNS, "other", "ctx", "other"},
		{"the app's namespace", withNS, "", "ctx", "shop"},
		{"the context's for an app without", without, "", "ctx", "ctx"},
		{"default for an app without", without, "", "", "default"},
		{"a path takes the context's", nil, "", "ctx", "ctx"},
		{"a path with -n", nil, "other", "ctx", "other"},
		{"a path on its own", nil, "", "", "default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Namespace(tt.app, tt.override, tt.fallback); got != tt.want {
				t.Errorf("Namespace = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestUnitDecisions(t *testing.T) {
	yes, no := true, false
	pruning := &config.App{Name: "web", Prune: true, Wait: &config.Wait{Timeout: config.Duration{Duration: time.Minute}}}
	keeping := &config.App{Name: "db"}
	helm := &config.App{Name: "chart", Helm: &config.Helm{}}
	tests := []struct {
		name        string
		unit        Unit
		prune       *bool
		wantPrune   bool
		wantInv     cluster.InventoryRef
		wantTimeout time.Duration
		wantHelm    bool
	}{
		{"the app's prune", Unit{App: pruning, Namespace: "shop"}, nil, true, cluster.InventoryRef{App: "web", Namespace: "shop"}, time.Minute, false},
		{"--prune=false over the app's", Unit{App: pruning, Namespace: "shop"}, &no, false, cluster.InventoryRef{App: "web", Namespace: "shop"}, time.Minute, false},
		{"--prune over an app that keeps", Unit{App: keeping, Namespace: "db"}, &yes, true, cluster.InventoryRef{App: "db", Namespace: "db"}, config.DefaultWaitTimeout, false},
		{"a path keeps by default", Unit{Path: "/tree", Namespace: "default"}, nil, false, cluster.InventoryRef{Namespace: "default"}, config.DefaultWaitTimeout, false},
		{"a named path", Unit{Path: "/tree", Name: "demo", Namespace: "demo"}, &yes, true, cluster.InventoryRef{App: "demo", Namespace: "demo"}, config.DefaultWaitTimeout, false},
		{"a Helm app", Unit{App: helm, Namespace: "charts"}, nil, false, cluster.InventoryRef{App: "chart", Namespace: "charts"}, config.DefaultWaitTimeout, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.unit.Prune(tt.prune); got != tt.wantPrune {
				t.Errorf("Prune = %v, want %v", got, tt.wantPrune)
			}
			if diff := cmp.Diff(tt.wantInv, tt.unit.Inventory()); diff != "" {
				t.Errorf("Inventory (-want +got):\n%s", diff)
			}
			if got := tt.unit.WaitTimeout(0); got != tt.wantTimeout {
				t.Errorf("WaitTimeout(0) = %v, want %v", got, tt.wantTimeout)
			}
			if got := tt.unit.WaitTimeout(time.Second); got != time.Second {
				t.Errorf("WaitTimeout(1s) = %v, want the override", got)
			}
			if got := tt.unit.IsHelm(); got != tt.wantHelm {
				t.Errorf("IsHelm = %v, want %v", got, tt.wantHelm)
			}
		})
	}
}

func TestShortRevision(t *testing.T) {
	for in, want := range map[string]string{
		"0123456789abcdef0123456789abcdef01234567": "0123456789ab",
		"0123456789ABCDEF0123456789ABCDEF01234567": "0123456789ABCDEF0123456789ABCDEF01234567",
		"v1.2.3": "v1.2.3",
		"":       "",
	} {
		if got := ShortRevision(in); got != want {
			t.Errorf("ShortRevision(%q) = %q, want %q", in, got, want)
		}
	}
}

// countingRenderer records the batches it is asked for and renders them
// in this process.
type countingRenderer struct {
	Trusted
	batches [][]sandbox.AppRender
}

func (c *countingRenderer) Apps(ctx context.Context, repo *config.Repository, apps []sandbox.AppRender, opts render.AppOptions) []sandbox.AppResult {
	c.batches = append(c.batches, apps)
	return c.Trusted.Apps(ctx, repo, apps, opts)
}

// TestRenderBatchesApps checks that the apps of one repository render in
// one batch, each in its unit's namespace, that a failing app fails alone,
// and that paths render on their own.
func TestRenderBatchesApps(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("gitops.yaml", `apiVersion: gitops.kubectl.dev/v1alpha1
kind: Repository
apps:
  - {name: web, path: web, namespace: shop}
  - {name: broken, path: broken}
  - {name: db, path: db}
`)
	write("web/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\n")
	write("db/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: db}\n")
	write("broken/kustomization.yaml", "resources: [missing.yaml]\n")
	write("plain/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: plain}\n")
	repo, err := config.Load(filepath.Join(dir, "gitops.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	r := &countingRenderer{}
	e := &Engine{Renderer: r, Options: render.AppOptions{Root: dir}}
	units := []Unit{
		AppUnit(repo, &repo.Apps[0], "shop"),
		AppUnit(repo, &repo.Apps[1], "default"),
		{Path: filepath.Join(dir, "plain"), Root: dir, Namespace: "loose"},
		AppUnit(repo, &repo.Apps[2], "other"),
	}
	got := e.Render(context.Background(), units)
	if len(r.batches) != 1 || len(r.batches[0]) != 3 {
		t.Fatalf("batches = %v, want the three apps in one", r.batches)
	}
	if ns := r.batches[0][2].Namespace; ns != "other" {
		t.Errorf("db rendered for namespace %q, want its unit's", ns)
	}
	if got[1].Err == nil {
		t.Errorf("app broken rendered; want its error")
	}
	for _, i := range []int{0, 2, 3} {
		if got[i].Err != nil {
			t.Fatalf("%s: %v", got[i].Unit, got[i].Err)
		}
	}
	for i, want := range map[int]string{0: "shop", 2: "loose", 3: "other"} {
		if ns := got[i].Result.Objects[0].GetNamespace(); ns != want {
			t.Errorf("%s: object in namespace %q, want %q", got[i].Unit, ns, want)
		}
	}
}
