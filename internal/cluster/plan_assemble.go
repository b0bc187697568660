package cluster

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kubectl-gitops/kubectl-gitops/internal/diff"
)

// assemble turns the dry-runs, live objects and inventory into changes.
func (p *plan) assemble(ctx context.Context) (*diff.ChangeSet, error) {
	cs := &diff.ChangeSet{}
	var objErrs []*DiffError
	fail := func(obj *unstructured.Unstructured, err error) {
		objErrs = append(objErrs, &DiffError{Ref: diff.RefOf(obj), Err: diff.RedactSecretError(obj, err)})
	}
	add := func(ch diff.Change, err error, obj *unstructured.Unstructured) {
		if err != nil {
			fail(obj, err)
			return
		}
		cs.Changes = append(cs.Changes, ch)
	}

	nsCreated := map[string]bool{}
	crdOK := map[schema.GroupKind]bool{}
	for _, r := range p.results {
		obj := r.Object
		if r.Err != nil {
			continue
		}
		if r.Created && obj.GroupVersionKind().GroupKind() == (schema.GroupKind{Kind: "Namespace"}) {
			nsCreated[obj.GetName()] = true
		}
		if isCRD(obj) {
			for gk, crd := range p.crds {
				if crd.GetName() == obj.GetName() {
					crdOK[gk] = true
				}
			}
		}
	}

	for i, obj := range p.desired {
		r := p.results[i]
		key := diff.RefOf(obj).Key()
		if r.Err != nil {
			if note := p.deferred(obj, r.Err, nsCreated, crdOK); note != "" {
				ch, err := diff.Pair(nil, obj, p.opts)
				ch.Message = note
				add(ch, err, obj)
				continue
			}
			if isConflict(r.Err) {
				if live, _ := p.liveOf(key, obj); live != nil && !p.ours(live) {
					cs.Changes = append(cs.Changes, p.takeOver(obj, live))
				}
			}
			fail(obj, r.Err)
			continue
		}
		if r.Created {
			ch, err := diff.Pair(nil, r.Merged, p.opts)
			add(ch, err, obj)
			continue
		}
		live, err := p.liveOf(key, obj)
		if err != nil {
			// Without the live object its owner is unknown: show nothing
			// of it.
			fail(obj, fmt.Errorf("reading the live object: %w", err))
			continue
		}
		if live == nil {
			// Deleted between the dry-run and the read: applying would
			// create it.
			ch, err := diff.Pair(nil, r.Merged, p.opts)
			add(ch, err, obj)
			continue
		}
		if !p.ours(live) {
			cs.Changes = append(cs.Changes, p.takeOver(obj, live))
			continue
		}
		if ch, ok := diff.PairUnchanged(live, r.Merged, p.opts); ok {
			cs.Changes = append(cs.Changes, ch)
			continue
		}
		ch, err := diff.Pair(live, r.Merged, p.opts)
		add(ch, err, obj)
	}

	var errs []error
	errs = append(errs, p.errs...)
	errs = append(errs, p.prunePreview(cs, len(objErrs) > 0 || len(p.errs) > 0)...)

	slices.SortFunc(cs.Changes, func(a, b diff.Change) int {
		return cmp.Or(
			cmp.Compare(a.Ref.Group, b.Ref.Group),
			cmp.Compare(a.Ref.Kind, b.Ref.Kind),
			cmp.Compare(a.Ref.Namespace, b.Ref.Namespace),
			cmp.Compare(a.Ref.Name, b.Ref.Name),
		)
	})
	sort.Slice(objErrs, func(i, j int) bool { return objErrs[i].Ref.Key() < objErrs[j].Ref.Key() })
	all := make([]error, 0, len(objErrs)+len(errs))
	for _, e := range objErrs {
		all = append(all, e)
	}
	all = append(all, errs...)
	if err := ctx.Err(); err != nil {
		all = append(all, fmt.Errorf("diff interrupted: %w", err))
	}
	return cs, errors.Join(all...)
}

// prunePreview adds the inventory members that are no longer rendered as
// deleted, when pruning. Like apply, it prunes nothing when anything failed;
// it then returns an error saying what it left out.
func (p *plan) prunePreview(cs *diff.ChangeSet, failed bool) []error {
	if !p.prune || p.inventory == nil || !p.inventory.Exists {
		return nil
	}
	rendered := make(map[string]bool, len(p.desired))
	for _, obj := range p.desired {
		rendered[diff.RefOf(obj).Key()] = true
	}
	var stale []*unstructured.Unstructured
	for _, m := range p.inventory.Members {
		if !rendered[diff.RefOf(m).Key()] && m.GetAnnotations()[AnnotationPrune] != PruneDisabled {
			stale = append(stale, m)
		}
	}
	if len(stale) == 0 {
		return nil
	}
	if failed {
		return []error{fmt.Errorf("prune preview skipped: %d objects of inventory %s/%s are no longer rendered and would be deleted once the errors above are fixed (apply never prunes after an error)",
			len(stale), p.inv.Namespace, p.inv.Name())}
	}
	var errs []error
	for _, m := range stale {
		ch, err := diff.Pair(m, nil, p.opts)
		if err != nil {
			errs = append(errs, &DiffError{Ref: diff.RefOf(m), Err: diff.RedactSecretError(m, err)})
			continue
		}
		switch {
		case len(p.desired) == 0:
			ch.Message = "the render is empty: apply prunes every object only when told to allow it (--prune-allow-empty)"
		case needsPruneConfirmation(m) && !p.pruneConfirm:
			ch.Message = "no longer rendered, but apply deletes a " + m.GetKind() + " only with --prune-confirm"
		default:
			ch.Message = "no longer rendered: apply prunes it"
		}
		cs.Changes = append(cs.Changes, ch)
	}
	return errs
}

// needsPruneConfirmation lists the kinds whose deletion takes data or
// other objects with it; apply deletes them only with PruneConfirm.
func needsPruneConfirmation(obj *unstructured.Unstructured) bool {
	gk := obj.GroupVersionKind().GroupKind()
	return gk == schema.GroupKind{Kind: "Namespace"} || gk == schema.GroupKind{Kind: "PersistentVolume"} || isCRD(obj)
}

// deferred explains why an object whose dry-run failed is still shown as
// created: its Namespace or CustomResourceDefinition is created by the same
// change, so the server could not dry-run it yet. It returns "" otherwise.
func (p *plan) deferred(obj *unstructured.Unstructured, err error, nsCreated map[string]bool, crdOK map[schema.GroupKind]bool) string {
	gk := obj.GroupVersionKind().GroupKind()
	if IsNoKind(err) && crdOK[gk] {
		return fmt.Sprintf("not dry-run: its CustomResourceDefinition %s is part of this change and not served yet; shown as rendered", p.crds[gk].GetName())
	}
	if ns := obj.GetNamespace(); ns != "" && nsCreated[ns] && apierrors.IsNotFound(err) {
		return fmt.Sprintf("not dry-run: its namespace %s is created by this change; shown as rendered", ns)
	}
	if ns := obj.GetNamespace(); ns != "" && namespaceMissing(err, ns) {
		return fmt.Sprintf("not dry-run: its namespace %s does not exist yet (another app must create it first, or apply fails); shown as rendered", ns)
	}
	return ""
}

// namespaceMissing reports whether err says namespace ns does not exist.
func namespaceMissing(err error, ns string) bool {
	var status apierrors.APIStatus
	if !apierrors.IsNotFound(err) || !errors.As(err, &status) {
		return false
	}
	d := status.Status().Details
	return d != nil && d.Kind == "namespaces" && d.Name == ns
}

// ours reports whether kubectl-gitops manages live: it is labelled part of
// this diff's inventory, or — when it belongs to no other inventory — our
// field manager owns some of its fields.
func (p *plan) ours(live *unstructured.Unstructured) bool {
	if p.inv.App != "" {
		switch live.GetLabels()[LabelPartOf] {
		case p.inv.ID():
			return true
		case "":
		default:
			return false
		}
	}
	for _, mf := range live.GetManagedFields() {
		if mf.Manager == p.c.fieldManager {
			return true
		}
	}
	return false
}

// takeOver is the entry for an object that exists but is not ours: it
// names whom applying would take it from and shows nothing of its content,
// so a manifest named like a live object cannot exfiltrate it.
func (p *plan) takeOver(obj, live *unstructured.Unstructured) diff.Change {
	var managers []string
	seen := map[string]bool{}
	for _, mf := range live.GetManagedFields() {
		if mf.Manager != p.c.fieldManager && !seen[mf.Manager] {
			seen[mf.Manager] = true
			managers = append(managers, mf.Manager)
		}
	}
	sort.Strings(managers)
	from := strings.Join(managers, ", ")
	if from == "" {
		from = "no field manager"
	}
	if id := live.GetLabels()[LabelPartOf]; id != "" && id != p.inv.ID() {
		from += " (and ApplySet " + id + ")"
	}
	return diff.Change{
		Ref:     diff.RefOf(obj),
		Action:  diff.Configured,
		Before:  metadataOnly(live),
		After:   metadataOnly(obj),
		Message: "would take ownership from " + from + "; the live object is not managed by kubectl-gitops, so its content is not shown",
	}
}

// metadataOnly is obj reduced to its identity.
func metadataOnly(obj *unstructured.Unstructured) *unstructured.Unstructured {
	out := &unstructured.Unstructured{Object: map[string]any{}}
	out.SetAPIVersion(obj.GetAPIVersion())
	out.SetKind(obj.GetKind())
	out.SetName(obj.GetName())
	if ns := obj.GetNamespace(); ns != "" {
		out.SetNamespace(ns)
	}
	return out
}
