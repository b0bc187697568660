package cluster

import (
	"context"
	"errors"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	"github.com/kubectl-gitops/kubectl-gitops/internal/diff"
)

// AppStatus is an app's state in the cluster: what was applied last, whether
// the cluster still matches the tree, and the health of what was applied.
type AppStatus struct {
	Inventory InventoryRef
	// Applied is false when the app has never been applied.
	Applied   bool
	Revision  string
	AppliedAt time.Time
	// Provenance is the approved change of the last apply, if the bot
	// synced it.
	Provenance Provenance
	// Drift counts what applying the tree now would change; InSync is true
	// when it would change nothing. DriftErr holds per-object errors of the
	// dry-run, if any; the counts cover the rest.
	Drift    diff.Summary
	InSync   bool
	DriftErr error
	// Objects is the number of inventory members; Health counts them by
	// kstatus verdict and Unhealthy lists those not Current.
	Objects   int
	Health    map[status.Status]int
	Unhealthy []ObjectStatus
}

// Healthy reports whether every member is Current.
func (s *AppStatus) Healthy() bool { return len(s.Unhealthy) == 0 }

// Status reads an app's inventory, judges its members' health with kstatus,
// and dry-runs objs (the tree rendered now) to tell in sync from drifted.
func (c *Client) Status(ctx context.Context, objs []*unstructured.Unstructured, ref InventoryRef) (*AppStatus, error) {
	inv, err := c.ReadInventory(ctx, ref)
	if err != nil {
		return nil, err
	}
	st := &AppStatus{
		Inventory:  ref,
		Applied:    inv.Exists,
		Revision:   inv.Revision,
		AppliedAt:  inv.AppliedAt,
		Provenance: inv.Provenance,
		Objects:    len(inv.Members),
		Health:     map[status.Status]int{},
	}
	for _, m := range inv.Members {
		s := compute(m)
		st.Health[s.Status]++
		if s.Status != status.CurrentStatus {
			st.Unhealthy = append(st.Unhealthy, s)
		}
	}
	cs, err := c.Diff(ctx, objs, ref, diff.Options{})
	var unreachable *UnreachableError
	if errors.As(err, &unreachable) || cs == nil {
		return nil, err
	}
	st.Drift = cs.Summary()
	st.InSync = !cs.HasChanges() && err == nil
	st.DriftErr = err
	return st, nil
}
