package cluster

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kubectl-gitops/kubectl-gitops/internal/diff"
)

// AnnotationPrune set to PruneDisabled on a live object keeps prune from
// deleting it, like Flux's kustomize.toolkit.fluxcd.io/prune: disabled.
const (
	AnnotationPrune = "gitops.kubectl.dev/prune"
	PruneDisabled   = "disabled"
)

// confirmKinds are deleted by prune only with PruneConfirm: deleting them
// takes everything in them (a namespace's objects, a CRD's objects, a
// volume's data) along.
var confirmKinds = map[schema.GroupKind]string{
	{Kind: "Namespace"}:        "Namespaces",
	crdGK:                      "CustomResourceDefinitions",
	{Kind: "PersistentVolume"}: "PersistentVolumes",
}

// prune deletes the inventory's members that left the set, other objects
// first and Namespaces and CRDs last, each only if it is still the object
// that was listed. Objects already gone count as pruned.
func (a *applier) prune(ctx context.Context, inv *Inventory, items []*item) ([]ObjectResult, error) {
	inSet := make(map[string]bool, len(items))
	for _, it := range items {
		inSet[it.ref.Key()] = true
	}
	var first, last []*unstructured.Unstructured
	var out []ObjectResult
	for _, m := range inv.Members {
		ref := diff.RefOf(m)
		if inSet[ref.Key()] {
			continue
		}
		if why := a.keep(m); why != "" {
			r := ObjectResult{Ref: ref, Skipped: why, DryRun: a.opts.DryRun}
			a.report(r)
			out = append(out, r)
			continue
		}
		if _, ok := confirmKinds[ref.GroupKind()]; ok {
			last = append(last, m)
		} else {
			first = append(first, m)
		}
	}
	var errs []error
	for _, batch := range [][]*unstructured.Unstructured{first, last} {
		results := make([]ObjectResult, len(batch))
		a.c.forEach(ctx, len(batch), func(ctx context.Context, i int) {
			results[i] = a.delete(ctx, batch[i])
			if results[i].Err == nil {
				a.report(results[i])
			}
		})
		for i, r := range results {
			if r.Ref == (diff.Ref{}) {
				r = ObjectResult{Ref: diff.RefOf(batch[i]), Err: fmt.Errorf("not attempted: %w", ctx.Err())}
			}
			if r.Err != nil {
				errs = append(errs, r.Err)
			}
			out = append(out, r)
		}
	}
	if len(errs) > 0 {
		return out, fmt.Errorf("every object applied, but pruning failed; the objects not deleted stay in the inventory: %w", errors.Join(errs...))
	}
	return out, nil
}

// keep says why a member must not be pruned, or "".
func (a *applier) keep(m *unstructured.Unstructured) string {
	ref := diff.RefOf(m)
	if m.GetAnnotations()[AnnotationPrune] == PruneDisabled {
		return "annotation " + AnnotationPrune + ": " + PruneDisabled
	}
	if ref.GroupKind() == (schema.GroupKind{Kind: "Namespace"}) && ref.Name == a.opts.Inventory.Namespace {
		return "it holds the inventory"
	}
	if what, ok := confirmKinds[ref.GroupKind()]; ok && !a.opts.PruneConfirm {
		return what + " are pruned only with --prune-confirm"
	}
	return ""
}

// delete deletes one member in the background, only if its UID is still the
// one listed.
func (a *applier) delete(ctx context.Context, m *unstructured.Unstructured) ObjectResult {
	ref := diff.RefOf(m)
	r := ObjectResult{Ref: ref, Attempted: true, DryRun: a.opts.DryRun}
	mapping, err := a.c.mapping(m.GroupVersionKind())
	if IsNoKind(err) {
		// The kind is gone, and its objects with it.
		r.Action = diff.Deleted
		return r
	}
	if err != nil {
		r.Err = &objectError{Ref: ref, Err: err, msg: diff.RedactSecretText(m, fmt.Sprintf("%s%s: %v", ref.KubectlName(), namespaceSuffix(ref), err))}
		return r
	}
	policy := metav1.DeletePropagationBackground
	uid := m.GetUID()
	opts := metav1.DeleteOptions{PropagationPolicy: &policy, Preconditions: &metav1.Preconditions{UID: &uid}}
	if a.opts.DryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	err = a.c.resourceFor(mapping, m.GetNamespace()).Delete(withObject(ctx, m), m.GetName(), opts)
	switch {
	case err == nil, apierrors.IsNotFound(err):
		r.Action = diff.Deleted
	case apierrors.IsConflict(err):
		// The UID precondition failed: someone replaced the object since
		// it was listed; leave the new one alone.
		r.Skipped = "it was replaced by another object of the same name since it was listed"
	default:
		r.Err = &objectError{Ref: ref, Err: err, msg: diff.RedactSecretText(m, fmt.Sprintf("%s%s: deleting: %v", ref.KubectlName(), namespaceSuffix(ref), err))}
	}
	return r
}
