package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubectl-gitops/kubectl-gitops/internal/diff"
)

// inventoryRecord is what the ApplySet parent records: the group-kinds and
// namespaces to list members in, and the last applied revision.
type inventoryRecord struct {
	groupKinds []schema.GroupKind
	namespaces []string
	revision   string
	appliedAt  time.Time
	provenance Provenance
}

// recordOf records the set's group-kinds and namespaces, and those of extra
// objects (members that stay in the cluster).
func recordOf(ref InventoryRef, items []*item, extra []*unstructured.Unstructured) inventoryRecord {
	var rec inventoryRecord
	for _, it := range items {
		rec.groupKinds = append(rec.groupKinds, it.ref.GroupKind())
		if it.ref.Namespace != "" {
			rec.namespaces = append(rec.namespaces, it.ref.Namespace)
		}
	}
	for _, m := range extra {
		r := diff.RefOf(m)
		rec.groupKinds = append(rec.groupKinds, r.GroupKind())
		if r.Namespace != "" {
			rec.namespaces = append(rec.namespaces, r.Namespace)
		}
	}
	rec.namespaces = append(rec.namespaces, ref.Namespace)
	return rec
}

// merge adds other's group-kinds and namespaces.
func (r *inventoryRecord) merge(other inventoryRecord) {
	r.groupKinds = append(r.groupKinds, other.groupKinds...)
	r.namespaces = append(r.namespaces, other.namespaces...)
}

// writeInventory records rec on the app's ApplySet parent Secret, creating it
// when missing. Every field we own is written each time, since server-side
// apply removes the fields a manager stops sending.
func (c *Client) writeInventory(ctx context.Context, ref InventoryRef, rec inventoryRecord) error {
	var additional []string
	seen := map[string]bool{ref.Namespace: true}
	for _, ns := range rec.namespaces {
		if !seen[ns] {
			seen[ns] = true
			additional = append(additional, ns)
		}
	}
	sort.Strings(additional)
	ann := map[string]any{
		AnnotationTooling:              Tooling,
		AnnotationContainsGroupKinds:   FormatGroupKinds(rec.groupKinds),
		AnnotationAdditionalNamespaces: strings.Join(additional, ","),
		AnnotationApp:                  ref.App,
	}
	if rec.revision != "" {
		ann[AnnotationRevision] = rec.revision
	}
	if !rec.appliedAt.IsZero() {
		ann[AnnotationAppliedAt] = rec.appliedAt.UTC().Format(time.RFC3339)
	}
	for k, v := range rec.provenance.annotations() {
		ann[k] = v
	}
	parent := map[string]any{
		"apiVersion": "v1",
		"kind":       "Secret",
		"metadata": map[string]any{
			"name":        ref.Name(),
			"namespace":   ref.Namespace,
			"labels":      map[string]any{LabelApplySetID: ref.ID()},
			"annotations": ann,
		},
		"type": "Opaque",
	}
	body, err := json.Marshal(parent)
	if err != nil {
		return err
	}
	force := true
	_, err = c.dynamic.Resource(secretGVR).Namespace(ref.Namespace).Patch(ctx, ref.Name(), types.ApplyPatchType, body,
		metav1.PatchOptions{FieldManager: c.fieldManager, Force: &force})
	if err != nil {
		return fmt.Errorf("writing the inventory Secret %s/%s: %w", ref.Namespace, ref.Name(), err)
	}
	return nil
}

// remaining are the old members that stay in the cluster although they left
// the set: all of them without prune, else those prune skipped or failed to
// delete. They stay in the inventory so a later prune finds them.
func remaining(inv *Inventory, items []*item, pruned []ObjectResult, prune bool) []*unstructured.Unstructured {
	inSet := make(map[string]bool, len(items))
	for _, it := range items {
		inSet[it.ref.Key()] = true
	}
	gone := map[string]bool{}
	if prune {
		for _, p := range pruned {
			if p.Err == nil && p.Skipped == "" && p.Action == diff.Deleted {
				gone[p.Ref.Key()] = true
			}
		}
	}
	var out []*unstructured.Unstructured
	for _, m := range inv.Members {
		key := diff.RefOf(m).Key()
		if !inSet[key] && !gone[key] {
			out = append(out, m)
		}
	}
	return out
}
