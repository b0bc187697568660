package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kubectl-gitops/kubectl-gitops/internal/cluster"
	"github.com/kubectl-gitops/kubectl-gitops/internal/diff"
)

// Sync states of an app.
const (
	InSync  = "InSync"
	Drifted = "Drifted"
	// Unknown is the state when the tree could not be rendered or
	// dry-run.
	Unknown = "Unknown"
)

// Status is an app's state in its cluster: what was applied last, whether
// the cluster still matches the tree, and the health of its objects.
type Status struct {
	App       string    `json:"app"`
	Namespace string    `json:"namespace"`
	Kind      string    `json:"kind"` // "inventory" or "helm"
	Applied   bool      `json:"applied"`
	Revision  string    `json:"revision,omitempty"`
	AppliedAt time.Time `json:"appliedAt,omitzero"`
	// PullRequest, ApprovedBy and PlanHash are the approved change the bot
	// synced last (cluster.Provenance); empty after a plain apply.
	PullRequest string   `json:"pullRequest,omitempty"`
	ApprovedBy  []string `json:"approvedBy,omitempty"`
	PlanHash    string   `json:"planHash,omitempty"`
	// Sync is InSync, Drifted or Unknown.
	Sync      string       `json:"sync"`
	Drift     diff.Summary `json:"drift"`
	Health    string       `json:"health"`
	Objects   int          `json:"objects"`
	Unhealthy []string     `json:"unhealthy,omitempty"`
	Suspended bool         `json:"suspended"`
	Error     string       `json:"error,omitempty"`
}

// Status reads the state of r's app: its Helm release, or its inventory and
// the kstatus health of its members, and dry-runs the render to tell in
// sync from drifted. What could not be read is the error, with the status
// filled as far as it got (Sync Unknown).
func (e *Engine) Status(ctx context.Context, r *Rendered) (Status, error) {
	if r.App == nil {
		return Status{}, fmt.Errorf("%s is not an app: status reports apps", r)
	}
	st := Status{App: r.App.Name, Namespace: r.Namespace, Suspended: r.App.Suspend, Kind: "inventory", Sync: Unknown, Health: "Unknown"}
	if e.Cluster == nil {
		return st, errors.New("no cluster to read the status from")
	}
	if err := e.Prepare(ctx, r); err != nil {
		return st, fmt.Errorf("rendering: %w", err)
	}
	if r.Release != nil {
		st.Kind = "helm"
		return e.helmStatus(ctx, r, st)
	}
	cs, err := e.Cluster.Status(ctx, r.Result.Objects, r.Inventory())
	if err != nil {
		return st, err
	}
	st.Applied, st.Revision, st.AppliedAt = cs.Applied, cs.Revision, cs.AppliedAt
	st.PullRequest, st.ApprovedBy, st.PlanHash = cs.Provenance.PullRequest, cs.Provenance.Approvers, cs.Provenance.PlanHash
	st.Drift, st.Objects = cs.Drift, cs.Objects
	st.Sync = syncState(cs.InSync, cs.DriftErr)
	if cs.DriftErr != nil {
		st.Error = cs.DriftErr.Error()
	}
	switch {
	case !cs.Applied:
		st.Health = "NotApplied"
	case cs.Healthy():
		st.Health = "Healthy"
	default:
		st.Health = "Progressing"
		for _, u := range cs.Unhealthy {
			st.Unhealthy = append(st.Unhealthy, u.String())
			if u.Status == "Failed" {
				st.Health = "Degraded"
			}
		}
	}
	return st, nil
}

// helmStatus reads a Helm app's release and plans its upgrade.
func (e *Engine) helmStatus(ctx context.Context, r *Rendered, st Status) (Status, error) {
	st.Namespace = r.Release.Namespace
	res, err := e.Cluster.HelmStatus(ctx, r.Release.Name, r.Release.Namespace)
	switch {
	case errors.Is(err, cluster.ErrNoHelmRelease):
		st.Health = "NotApplied"
	case err != nil:
		return st, err
	default:
		st.Applied, st.Revision, st.AppliedAt = true, fmt.Sprintf("helm revision %d", res.Revision), res.Updated
		st.Health = "Healthy"
		if res.Status != "deployed" {
			st.Health = "Degraded"
			st.Unhealthy = []string{fmt.Sprintf("release %s/%s is %s", res.Namespace, res.Name, res.Status)}
		}
	}
	cs, err := e.Plan(ctx, r, PlanOptions{})
	if err != nil {
		return st, err
	}
	st.Drift = cs.Summary()
	st.Sync = syncState(!cs.HasChanges(), nil)
	return st, nil
}

func syncState(inSync bool, err error) string {
	switch {
	case err != nil:
		return Unknown
	case inSync:
		return InSync
	}
	return Drifted
}
