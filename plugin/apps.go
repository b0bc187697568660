package plugin

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-gitops/kubectl-gitops/internal/cluster"
	"github.com/kubectl-gitops/kubectl-gitops/internal/config"
)

// split turns the repository folder into one target per app, in the order of
// apps (the file's, or dependency order); any other target is itself.
func (t *target) split(apps []config.App) []*target {
	if !t.all {
		return []*target{t}
	}
	out := make([]*target, 0, len(apps))
	for i := range apps {
		one := *t
		one.all, one.app = false, &apps[i]
		one.arg = apps[i].Name
		one.path = ""
		if apps[i].Source == nil {
			one.path = filepath.Join(t.repo.Dir, apps[i].Path)
		}
		out = append(out, &one)
	}
	return out
}

// targets is split in the file's order of apps.
func (t *target) targets() []*target {
	if !t.all {
		return []*target{t}
	}
	return t.split(t.repo.Apps)
}

// name names a target in messages: "app NAME" or the path given.
func (t *target) name() string {
	if t.app != nil {
		return "app " + t.app.Name
	}
	return t.arg
}

// namespace is where a set's namespaced objects (and its inventory, and a
// Helm app's release) go when they name none: -n, else the app's namespace,
// else the kubeconfig context's, else "default".
func (f *Flags) namespace(app *config.App) string {
	if f.Kube.Namespace != nil && *f.Kube.Namespace != "" {
		return *f.Kube.Namespace
	}
	if app != nil && app.Namespace != "" {
		return app.Namespace
	}
	if ns, _, err := f.Kube.ToRawKubeConfigLoader().Namespace(); err == nil && ns != "" {
		return ns
	}
	return metav1.NamespaceDefault
}

// inventoryRef names the inventory of an app, or of a path given a --name;
// a path without one has none (nothing is labelled or pruned).
func (f *Flags) inventoryRef(app *config.App, name string) cluster.InventoryRef {
	ref := cluster.InventoryRef{Namespace: f.namespace(app)}
	switch {
	case app != nil:
		ref.App = app.Name
	case name != "":
		ref.App = name
	}
	return ref
}

// useAppContext switches to the kubeconfig context the targets' apps name as
// their cluster, unless --context is given. One run talks to one cluster.
func (f *Flags) useAppContext(targets []*target) error {
	if f.Kube.Context != nil && *f.Kube.Context != "" {
		return nil
	}
	name := ""
	for _, t := range targets {
		if t.app == nil || t.app.Cluster == "" {
			continue
		}
		if name != "" && t.app.Cluster != name {
			return fmt.Errorf("the apps live in different clusters (%s, %s): run one app at a time, or pass --context", name, t.app.Cluster)
		}
		name = t.app.Cluster
	}
	if name != "" {
		f.Kube.Context = &name
	}
	return nil
}

// pruneFlags are --prune and --prune-confirm, shared by diff and apply.
type pruneFlags struct {
	Prune        bool
	PruneConfirm bool
	pruneGiven   bool
}

// complete records whether --prune was given, so the app's setting applies
// otherwise.
func (p *pruneFlags) complete(cmd *cobra.Command) {
	p.pruneGiven = cmd.Flags().Changed("prune")
}

// prune is --prune when given, else the app's setting.
func (p *pruneFlags) prune(app *config.App) bool {
	if p.pruneGiven || app == nil {
		return p.Prune
	}
	return app.Prune
}
