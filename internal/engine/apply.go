package engine

import (
	"context"
	"errors"
	"time"

	"github.com/kubectl-gitops/kubectl-gitops/internal/cluster"
	"github.com/kubectl-gitops/kubectl-gitops/internal/diff"
)

// ApplyOptions choose how a unit is applied.
type ApplyOptions struct {
	// Revision is recorded on the inventory, and on a Helm release's
	// revision description.
	Revision string
	// Provenance is recorded on the inventory with Revision, and named in
	// a Helm release revision's description.
	Provenance cluster.Provenance
	// Description is a Helm release revision's description (`helm
	// history`); Revision is appended.
	Description string
	// Prune overrides the unit's prune setting (see Unit.Prune).
	Prune           *bool
	PruneAllowEmpty bool
	PruneConfirm    bool
	// DryRun validates on the server and persists nothing; a Helm app is
	// planned instead.
	DryRun         bool
	ForceConflicts bool
	Force          bool
	// Wait waits until every applied object is Current, for Timeout (see
	// Unit.WaitTimeout).
	Wait    bool
	Timeout time.Duration
	// Progress is told of each object as it is applied or pruned, and
	// WaitProgress of each status seen while waiting.
	Progress     func(cluster.ObjectResult)
	WaitProgress func(cluster.ObjectStatus)
}

// ApplyResult is what applying a unit did: Objects for server-side apply,
// Helm (or HelmPlan for a dry run) for a Helm release.
type ApplyResult struct {
	Inventory cluster.InventoryRef
	Objects   *cluster.ApplyResult
	Helm      *cluster.HelmResult
	HelmPlan  *diff.ChangeSet
}

// Apply applies r: a Helm app as a Helm release (Helm keeps its own record
// of what it applied, so there is no inventory and no prune; a failed
// upgrade is rolled back), anything else with server-side apply as the
// unit's ApplySet, pruning only once every object applied. The result is
// complete as far as it got, even with an error.
func (e *Engine) Apply(ctx context.Context, r *Rendered, opts ApplyOptions) (*ApplyResult, error) {
	if e.Cluster == nil {
		return nil, errors.New("no cluster to apply to")
	}
	if err := e.Prepare(ctx, r); err != nil {
		return nil, err
	}
	res := &ApplyResult{Inventory: r.Inventory()}
	if r.Release != nil {
		var err error
		if opts.DryRun {
			res.HelmPlan, err = e.Plan(ctx, r, PlanOptions{})
			return res, err
		}
		description := opts.Description
		if opts.Revision != "" {
			description += " at " + ShortRevision(opts.Revision)
		}
		if pr := opts.Provenance.PullRequest; pr != "" {
			description += " from " + pr
		}
		res.Helm, err = e.Cluster.HelmApply(ctx, *r.Release, cluster.HelmOptions{
			ForceConflicts: opts.ForceConflicts,
			Description:    description,
			Wait:           opts.Wait,
			Timeout:        r.WaitTimeout(opts.Timeout),
		})
		return res, err
	}
	copts := cluster.ApplyOptions{
		Inventory:       res.Inventory,
		Revision:        opts.Revision,
		Provenance:      opts.Provenance,
		Prune:           r.Prune(opts.Prune),
		PruneAllowEmpty: opts.PruneAllowEmpty,
		PruneConfirm:    opts.PruneConfirm,
		DryRun:          opts.DryRun,
		ForceConflicts:  opts.ForceConflicts,
		Force:           opts.Force,
		Progress:        opts.Progress,
	}
	if opts.Wait {
		copts.Wait = &cluster.WaitOptions{Timeout: r.WaitTimeout(opts.Timeout), Progress: opts.WaitProgress}
	}
	var err error
	res.Objects, err = e.Cluster.Apply(ctx, r.Result.Objects, copts)
	return res, err
}

// ShortRevision shortens a full Git commit hash to 12 characters; any
// other revision is kept.
func ShortRevision(rev string) string {
	if len(rev) != 40 {
		return rev
	}
	for _, r := range rev {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return rev
		}
	}
	return rev[:12]
}
