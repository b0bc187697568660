package plugin

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/kubectl-gitops/kubectl-gitops/internal/config"
	"github.com/kubectl-gitops/kubectl-gitops/internal/engine"
	"github.com/kubectl-gitops/kubectl-gitops/internal/sandbox"
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
// Helm app's release) go when they name none: engine.Namespace with -n as
// the override and the kubeconfig context's namespace as the fallback.
func (f *Flags) namespace(app *config.App) string {
	override := ""
	if f.Kube.Namespace != nil {
		override = *f.Kube.Namespace
	}
	fallback := ""
	if override == "" && (app == nil || app.Namespace == "") {
		if ns, _, err := f.Kube.ToRawKubeConfigLoader().Namespace(); err == nil {
			fallback = ns
		}
	}
	return engine.Namespace(app, override, fallback)
}

// units are the engine's units of targets; name is --name, the inventory of
// a path that is no app.
func (f *Flags) units(targets []*target, name string) []engine.Unit {
	out := make([]engine.Unit, len(targets))
	for i, t := range targets {
		out[i] = engine.Unit{Repo: t.repo, App: t.app, Path: t.path, Root: t.root, Name: name, Namespace: f.namespace(t.app)}
	}
	return out
}

// engine is the pipeline for t's repository: rendering in the sandbox
// unless --sandbox=false, with the repository's fetchers. Its cluster is
// set once the renders succeeded.
func (f *Flags) engine(t *target) (*engine.Engine, error) {
	e := &engine.Engine{}
	if f.Sandbox {
		e.Renderer = sandbox.Runner{}
	}
	opts, err := f.appOptions(t)
	if err != nil {
		return nil, err
	}
	e.Options = opts
	return e, nil
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

// pruneOverride is --prune when given; nil leaves it to the app.
func (p *pruneFlags) pruneOverride() *bool {
	if !p.pruneGiven {
		return nil
	}
	prune := p.Prune
	return &prune
}
