package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kubectl-gitops/kubectl-gitops/internal/diff"
)

// ApplyOptions configure Apply.
type ApplyOptions struct {
	// Inventory names the app's ApplySet parent. Its Namespace is required:
	// namespaced objects without one go there. With no App, the set has no
	// inventory: objects are not labelled and nothing can be pruned.
	Inventory InventoryRef
	// Revision is recorded on the inventory after a successful apply (the
	// Git commit the objects were rendered from).
	Revision string
	// Provenance is recorded with Revision: the approved change the
	// objects come from.
	Provenance Provenance

	// Prune deletes inventory members that are no longer in the set, after
	// every object applied.
	Prune bool
	// PruneAllowEmpty lets an empty set prune every member of an existing
	// inventory; without it Apply refuses, because an empty render is far
	// more often a mistake (a wrong path, a broken overlay) than an intent.
	PruneAllowEmpty bool
	// PruneConfirm lets prune delete Namespaces, CustomResourceDefinitions
	// and PersistentVolumes, whose deletion takes data with it.
	PruneConfirm bool

	// DryRun sends every request as a server-side dry run: nothing is
	// persisted and the inventory is not written.
	DryRun bool
	// ForceConflicts takes over fields owned by other field managers.
	ForceConflicts bool
	// Force deletes and recreates objects whose change touches an immutable
	// field.
	Force bool

	// Wait, when set, waits for the applied objects to become Current.
	Wait *WaitOptions

	// Progress is told about each object as it is applied, recreated,
	// pruned or left unpruned, one call at a time. Failures are returned,
	// not reported here.
	Progress func(ObjectResult)
	// Now stamps the inventory (default time.Now).
	Now func() time.Time
}

// ErrEmptyPrune is wrapped by the error Apply returns when an empty set would
// prune a whole inventory.
var ErrEmptyPrune = errors.New("refusing to prune every object of the inventory")

// Stages of a staged apply.
const (
	stageDefinitions = iota // Namespaces and CustomResourceDefinitions
	stageObjects
)

// crdEstablishTimeout bounds the wait for a new CRD to be served.
const crdEstablishTimeout = time.Minute

var crdGK = schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}

// item is one object of the set, ready to apply.
type item struct {
	obj        *unstructured.Unstructured
	ref        diff.Ref
	stage      int
	namespaced bool
	// newKind says the kind is defined by a CRD in the same set and was not
	// served when the apply started.
	newKind bool
	result  ObjectResult
}

// Apply applies objs with server-side apply as the app's ApplySet: it records
// the union of the old and new group-kinds and namespaces on the inventory
// parent first, applies Namespaces and CRDs and waits for them to be served,
// applies everything else with bounded concurrency, and only when every
// object applied, prunes (Prune) and records the final set. The returned
// result is complete even with an error; failures are an *ApplyError.
func (c *Client) Apply(ctx context.Context, objs []*unstructured.Unstructured, opts ApplyOptions) (*ApplyResult, error) {
	ref := opts.Inventory
	if ref.Namespace == "" {
		return nil, errors.New("apply needs a namespace for objects that name none (and for the inventory)")
	}
	noInventory := ref.App == ""
	if noInventory && opts.Prune {
		return nil, errors.New("pruning needs an inventory: apply an app of gitops.yaml, or name the set with --name")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	items, err := c.prepare(objs, ref)
	if err != nil {
		return nil, err
	}
	inv := &Inventory{Ref: ref}
	if !noInventory {
		if inv, err = c.ReadInventory(ctx, ref); err != nil {
			return nil, err
		}
	}
	res := &ApplyResult{DryRun: opts.DryRun}
	if len(items) == 0 && opts.Prune && len(inv.Members) > 0 && !opts.PruneAllowEmpty {
		return res, fmt.Errorf("%w: the set to apply is empty but inventory %s/%s of app %s holds %d objects; check the path and the render, or pass --prune-allow-empty to delete them all",
			ErrEmptyPrune, ref.Namespace, ref.Name(), ref.App, len(inv.Members))
	}

	ap, err := c.newApplier(opts)
	if err != nil {
		return nil, err
	}
	ap.members = make(map[string]*unstructured.Unstructured, len(inv.Members))
	for _, m := range inv.Members {
		ap.members[diff.RefOf(m).Key()] = m
	}

	if !opts.DryRun && !noInventory {
		if err := ap.ensureNamespace(ctx, ref.Namespace, items); err != nil {
			return res, err
		}
		union := recordOf(ref, items, nil)
		union.merge(inventoryRecord{groupKinds: inv.GroupKinds, namespaces: inv.Namespaces})
		union.revision, union.appliedAt, union.provenance = inv.Revision, inv.AppliedAt, inv.Provenance
		if err := c.writeInventory(ctx, ref, union); err != nil {
			return res, err
		}
	}

	var defs, rest []*item
	for _, it := range items {
		if it.stage == stageDefinitions {
			defs = append(defs, it)
		} else {
			rest = append(rest, it)
		}
	}
	ap.run(ctx, defs)
	if err := ap.settleDefinitions(ctx, defs); err != nil {
		return ap.finish(res, items), err
	}
	ap.run(ctx, rest)
	res = ap.finish(res, items)
	if aerr := applyError(res); aerr != nil {
		return res, aerr
	}

	var pruneErr error
	if opts.Prune {
		res.Pruned, pruneErr = ap.prune(ctx, inv, items)
	}
	if !opts.DryRun && !noInventory {
		final := recordOf(ref, items, remaining(inv, items, res.Pruned, opts.Prune))
		final.revision, final.appliedAt, final.provenance = opts.Revision, opts.Now(), opts.Provenance
		if err := c.writeInventory(ctx, ref, final); err != nil {
			return res, errors.Join(pruneErr, fmt.Errorf("every object applied, but recording the final inventory failed: %w; apply again", err))
		}
		res.InventoryWritten = true
	}
	if pruneErr != nil {
		return res, pruneErr
	}

	if opts.Wait != nil && !opts.DryRun {
		live := make([]*unstructured.Unstructured, 0, len(items))
		for _, it := range items {
			if it.result.live != nil {
				live = append(live, it.result.live)
			}
		}
		res.Wait, err = c.Wait(ctx, live, *opts.Wait)
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// prepare copies the set, defaults the namespace of namespaced objects to
// the inventory's, labels each object as a member of the ApplySet and sorts
// it into its stage. Kinds the cluster does not serve yet must be defined by
// a CRD of the same set.
func (c *Client) prepare(objs []*unstructured.Unstructured, ref InventoryRef) ([]*item, error) {
	crdScopes := map[schema.GroupKind]string{}
	for _, o := range objs {
		if o.GroupVersionKind().GroupKind() == crdGK {
			group, _, _ := unstructured.NestedString(o.Object, "spec", "group")
			kind, _, _ := unstructured.NestedString(o.Object, "spec", "names", "kind")
			scope, _, _ := unstructured.NestedString(o.Object, "spec", "scope")
			crdScopes[schema.GroupKind{Group: group, Kind: kind}] = scope
		}
	}
	type scope struct {
		namespaced, newKind bool
		err                 error
	}
	scopes := map[schema.GroupVersionKind]scope{}
	seen := map[string]bool{}
	id := ref.ID()
	var errs []error
	items := make([]*item, 0, len(objs))
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		if gvk.Kind == "" || gvk.Version == "" || o.GetName() == "" {
			errs = append(errs, fmt.Errorf("an object without apiVersion, kind or name (%s %q) cannot be applied", gvk, o.GetName()))
			continue
		}
		s, ok := scopes[gvk]
		if !ok {
			m, err := c.mapping(gvk)
			switch {
			case err == nil:
				s.namespaced = m.Scope.Name() == meta.RESTScopeNameNamespace
			case IsNoKind(err) && crdScopes[gvk.GroupKind()] != "":
				s.namespaced, s.newKind = crdScopes[gvk.GroupKind()] == "Namespaced", true
			default:
				s.err = err
			}
			scopes[gvk] = s
		}
		if s.err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", o.GetName(), s.err))
			continue
		}
		obj := o.DeepCopy()
		switch {
		case s.namespaced && obj.GetNamespace() == "":
			obj.SetNamespace(ref.Namespace)
		case !s.namespaced:
			obj.SetNamespace("")
		}
		labels := obj.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		if ref.App != "" {
			labels[LabelPartOf] = id
		}
		obj.SetLabels(labels)
		// Apply requests must not carry what the server owns.
		diff.DropServerFields(obj)

		it := &item{obj: obj, ref: diff.RefOf(obj), namespaced: s.namespaced, newKind: s.newKind, stage: stageObjects}
		if gk := gvk.GroupKind(); gk == crdGK || gk == (schema.GroupKind{Kind: "Namespace"}) {
			it.stage = stageDefinitions
		}
		if seen[it.ref.Key()] {
			errs = append(errs, fmt.Errorf("%s%s appears twice in the set; keep one", it.ref.KubectlName(), namespaceSuffix(it.ref)))
			continue
		}
		seen[it.ref.Key()] = true
		it.result.Ref = it.ref
		items = append(items, it)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("nothing was applied: %w", errors.Join(errs...))
	}
	return items, nil
}
