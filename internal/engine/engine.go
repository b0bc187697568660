// Package engine is the one app pipeline of kubectl-gitops: an app of
// gitops.yaml, or a path, is rendered (in the sandbox unless the input is
// trusted), planned against its cluster (a diff.ChangeSet), applied, or
// reported on. The plugin's diff, apply and status and every job of the bot
// call it; nothing else assembles these steps.
//
// The engine owns the decisions those steps share: the namespace rule, the
// inventory of a unit, the prune default, Helm release versus server-side
// apply, and the release a Helm app maps to. Package cluster keeps the API
// server's verbs and takes objects.
package engine

import (
	"context"

	"github.com/kubectl-gitops/kubectl-gitops/internal/cluster"
	"github.com/kubectl-gitops/kubectl-gitops/internal/config"
	"github.com/kubectl-gitops/kubectl-gitops/internal/sandbox"
	"github.com/kubectl-gitops/kubectl-gitops/render"
)

// Renderer renders paths and the apps of a repository. sandbox.Runner
// renders in a child process without network and with bounded time,
// memory and output; Trusted renders in this process.
type Renderer interface {
	Path(ctx context.Context, path string, opts render.Options) (*render.Result, error)
	// Apps renders apps of repo in order; a result per app.
	Apps(ctx context.Context, repo *config.Repository, apps []sandbox.AppRender, opts render.AppOptions) []sandbox.AppResult
}

var _ Renderer = sandbox.Runner{}

// Trusted renders in this process: for trees the user trusts (the plugin's
// --sandbox=false), never for a pull request.
type Trusted struct{}

// Path renders path as render.Path does.
func (Trusted) Path(ctx context.Context, path string, opts render.Options) (*render.Result, error) {
	return render.Path(ctx, path, opts)
}

// Apps renders each app as render.App does.
func (Trusted) Apps(ctx context.Context, repo *config.Repository, apps []sandbox.AppRender, opts render.AppOptions) []sandbox.AppResult {
	out := make([]sandbox.AppResult, len(apps))
	for i, a := range apps {
		o := opts
		if a.Namespace != "" {
			o.Namespace = a.Namespace
		}
		out[i].Result, out[i].Err = render.App(ctx, repo, a.App, o)
	}
	return out
}

// Engine runs the pipeline for the units of one cluster.
type Engine struct {
	// Cluster is planned against and applied to; Render needs none.
	Cluster *cluster.Client
	// Renderer renders the units (default: Trusted).
	Renderer Renderer
	// Options are the render options of apps: the folder reads are
	// confined to, and the fetchers of Git sources and charts, which hold
	// the allowlist and any credentials. Each unit's namespace overrides
	// Options.Namespace.
	Options render.AppOptions
	// DisableLookup keeps a Helm chart's lookup function from reading the
	// cluster: a chart from a pull request could otherwise copy live
	// objects into its preview.
	DisableLookup bool
}

func (e *Engine) renderer() Renderer {
	if e.Renderer == nil {
		return Trusted{}
	}
	return e.Renderer
}
