package engine

import (
	"context"
	"errors"

	"github.com/kubectl-gitops/kubectl-gitops/internal/cluster"
	"github.com/kubectl-gitops/kubectl-gitops/internal/diff"
	"github.com/kubectl-gitops/kubectl-gitops/render"
)

// PlanOptions choose what a plan shows.
type PlanOptions struct {
	// Diff chooses how objects are compared and shown.
	Diff diff.Options
	// Prune overrides the unit's prune setting (see Unit.Prune): with
	// pruning on, the inventory's objects no longer rendered show as
	// deleted.
	Prune *bool
	// PruneConfirm previews the pruning of Namespaces, CRDs and
	// PersistentVolumes, as apply with PruneConfirm does.
	PruneConfirm bool
}

// Plan previews what applying r would change in the cluster; nothing is
// persisted. Objects are server-side applied as a dry run and compared with
// the live ones; a Helm app is compared with its deployed release (its
// objects, hooks included, and values), everything created when there is
// none. The changes are valid even when the error is not nil (see
// cluster.Plan); an unreachable cluster is a *cluster.UnreachableError.
func (e *Engine) Plan(ctx context.Context, r *Rendered, opts PlanOptions) (*diff.ChangeSet, error) {
	if e.Cluster == nil {
		return nil, errors.New("no cluster to plan against")
	}
	if err := e.Prepare(ctx, r); err != nil {
		return nil, err
	}
	if r.Release != nil {
		return e.Cluster.HelmDiff(ctx, *r.Release, cluster.HelmDiffOptions{
			Diff:          opts.Diff,
			DisableLookup: e.DisableLookup,
			// Helm's SDK renders the chart again here, outside the
			// sandbox: the same capped template functions apply.
			TemplateFuncs: render.HelmFuncs(ctx, e.Options.Limits),
		})
	}
	return e.Cluster.Plan(ctx, r.Result.Objects, r.Inventory(), cluster.PlanOptions{
		Options:      opts.Diff,
		Prune:        r.Prune(opts.Prune),
		PruneConfirm: opts.PruneConfirm,
	})
}
