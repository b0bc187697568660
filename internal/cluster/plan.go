package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kubectl-gitops/kubectl-gitops/internal/diff"
)

// DiffError is what went wrong with one object of a Diff; the other objects
// are still compared. Its message never holds a Secret's values.
type DiffError struct {
	Ref diff.Ref
	Err error
}

func (e *DiffError) Error() string { return e.Ref.Qualified() + ": " + e.Err.Error() }
func (e *DiffError) Unwrap() error { return e.Err }

// liveListThreshold is the number of objects of one kind in one namespace
// from which their live state is read with one LIST rather than a GET each.
const liveListThreshold = 4

// PlanOptions configure Plan.
type PlanOptions struct {
	// Options choose how objects are compared and shown.
	diff.Options
	// Prune previews what apply with prune would delete: the inventory's
	// members that are no longer rendered. Without it they are left out,
	// as apply leaves them in the cluster.
	Prune bool
	// PruneConfirm previews the deletion of Namespaces,
	// CustomResourceDefinitions and PersistentVolumes too; without it they
	// show as deleted with a note that apply keeps them.
	PruneConfirm bool
}

// Diff is Plan with the prune preview on: what apply with prune would do.
func (c *Client) Diff(ctx context.Context, objs []*unstructured.Unstructured, inv InventoryRef, opts diff.Options) (*diff.ChangeSet, error) {
	return c.Plan(ctx, objs, inv, PlanOptions{Options: opts, Prune: true})
}

// Plan previews what applying objs would change in the cluster: one
// server-side apply dry-run per object gives the "after", the live object the
// "before", and the app's inventory the objects that apply would prune.
//
// objs are not modified. When inv names an app (inv.App is set), every
// object is labelled part of the app's ApplySet, as apply labels it, and
// with opts.Prune the members no longer rendered show as deleted.
// Namespaced objects without a namespace take inv's namespace, or without
// an app the kubeconfig context's, as apply would place them.
//
// Live objects that kubectl-gitops does not manage (neither labelled part of
// inv nor having FieldManager among their field managers) are never shown:
// they appear as configured with a note naming the managers ownership would
// be taken from, and no diff. An object whose Namespace or
// CustomResourceDefinition is created by the same change cannot be dry-run;
// it shows as created from the rendered object, with a note.
//
// Plan returns the changes it could compute and, joined, a *DiffError
// for each object it could not (a field-manager conflict is a
// *ConflictError); the changes are valid even when the error is not nil.
// When the cluster cannot be reached at all the error is an
// *UnreachableError and the ChangeSet is nil.
func (c *Client) Plan(ctx context.Context, objs []*unstructured.Unstructured, inv InventoryRef, opts PlanOptions) (*diff.ChangeSet, error) {
	p := &plan{
		c:            c,
		inv:          inv,
		opts:         opts.Options,
		prune:        opts.Prune,
		pruneConfirm: opts.PruneConfirm,
		crds:         map[schema.GroupKind]*unstructured.Unstructured{},
		live:         map[string]*unstructured.Unstructured{},
		fetched:      map[string]error{},
	}
	if err := p.prepare(objs); err != nil {
		return nil, err
	}
	if err := p.run(ctx); err != nil {
		return nil, err
	}
	return p.assemble(ctx)
}

// plan holds one Plan's state.
type plan struct {
	c    *Client
	inv  InventoryRef
	opts diff.Options
	// prune and pruneConfirm are PlanOptions'.
	prune, pruneConfirm bool

	// desired are the prepared copies of the rendered objects; results
	// are their dry-runs, index for index.
	desired []*unstructured.Unstructured
	results []DryRunResult
	kinds   map[schema.GroupVersionKind]kindMapping
	// crds are the rendered CustomResourceDefinitions by the kind they
	// define.
	crds map[schema.GroupKind]*unstructured.Unstructured
	errs []error

	inventory *Inventory
	invErr    error
	members   map[string]*unstructured.Unstructured

	mu sync.Mutex
	// live holds the live objects read by key; fetched records which keys
	// were looked up (nil: read, found or not) and the error otherwise.
	live    map[string]*unstructured.Unstructured
	fetched map[string]error
}

// prepare validates and copies the rendered objects, sets their namespace
// from their kind's scope and labels them with the inventory.
func (p *plan) prepare(objs []*unstructured.Unstructured) error {
	for _, obj := range objs {
		if obj != nil && isCRD(obj) {
			group, _, _ := unstructured.NestedString(obj.Object, "spec", "group")
			kind, _, _ := unstructured.NestedString(obj.Object, "spec", "names", "kind")
			if group != "" && kind != "" {
				p.crds[schema.GroupKind{Group: group, Kind: kind}] = obj
			}
		}
	}
	var valid []*unstructured.Unstructured
	for i, obj := range objs {
		if obj == nil {
			p.errs = append(p.errs, fmt.Errorf("object %d is nil", i))
			continue
		}
		if obj.GetKind() == "" || obj.GetName() == "" || obj.GetAPIVersion() == "" {
			p.errs = append(p.errs, fmt.Errorf("object %d (%s) has no apiVersion, kind or name: set all three", i, diff.RefOf(obj).Qualified()))
			continue
		}
		valid = append(valid, obj)
	}
	p.kinds = p.c.mappings(valid)
	for _, km := range p.kinds {
		if km.err != nil && isUnreachable(km.err) {
			return &UnreachableError{Host: p.c.Host(), Err: km.err}
		}
	}
	// Like apply: an app's objects default to the app's namespace, where its
	// inventory lives; a path's to the kubeconfig context's.
	defaultNS := p.inv.Namespace
	if p.inv.App == "" || defaultNS == "" {
		defaultNS = p.c.defaultNamespace()
	}
	seen := map[string]bool{}
	for _, src := range valid {
		obj := src.DeepCopy()
		// A dry-run must not carry what the server owns, as apply's
		// requests do not.
		diff.DropServerFields(obj)
		if namespaced, known := p.namespaced(obj); known && namespaced && obj.GetNamespace() == "" {
			obj.SetNamespace(defaultNS)
		} else if known && !namespaced {
			obj.SetNamespace("")
		}
		if p.inv.App != "" {
			labels := obj.GetLabels()
			if labels == nil {
				labels = map[string]string{}
			}
			labels[LabelPartOf] = p.inv.ID()
			obj.SetLabels(labels)
		}
		ref := diff.RefOf(obj)
		if seen[ref.Key()] {
			p.errs = append(p.errs, &DiffError{Ref: ref, Err: errors.New("rendered twice: each group, kind, namespace and name may appear once")})
			continue
		}
		seen[ref.Key()] = true
		p.desired = append(p.desired, obj)
	}
	return nil
}

// namespaced tells whether obj's kind is namespaced: from discovery, else
// from a CustomResourceDefinition in the same change. known is false for a
// kind neither knows; such objects stay as rendered.
func (p *plan) namespaced(obj *unstructured.Unstructured) (namespaced, known bool) {
	if km := p.kinds[obj.GroupVersionKind()]; km.err == nil && km.mapping != nil {
		return km.mapping.Scope.Name() == meta.RESTScopeNameNamespace, true
	}
	if crd, ok := p.crds[obj.GroupVersionKind().GroupKind()]; ok {
		scope, _, _ := unstructured.NestedString(crd.Object, "spec", "scope")
		return scope != "Cluster", true
	}
	return false, false
}

// run reads the inventory and dry-runs every object, reading live objects
// at the same time where that is known to be needed.
func (p *plan) run(ctx context.Context) error {
	p.results = make([]DryRunResult, len(p.desired))
	var invDone chan struct{}
	var fetches []fetchTask
	if p.inv.App != "" {
		// The inventory's members are the live state of the objects we
		// manage; read it next to the dry-runs and fetch only the rest.
		invDone = make(chan struct{})
		go func() {
			defer close(invDone)
			p.inventory, p.invErr = p.c.ReadInventory(ctx, p.inv)
		}()
	} else {
		// Without an inventory every existing object's live state is
		// needed: read it next to the dry-runs.
		all := make([]int, len(p.desired))
		for i := range all {
			all[i] = i
		}
		fetches = p.fetchTasks(all)
	}
	// The reads go first: a LIST is one long request that should overlap
	// the dry-runs, not trail after them.
	n := len(fetches)
	p.c.forEach(ctx, n+len(p.desired), func(ctx context.Context, i int) {
		if i < n {
			p.fetch(ctx, fetches[i])
			return
		}
		obj := p.desired[i-n]
		p.results[i-n] = p.c.dryRun(ctx, obj, p.kinds[obj.GroupVersionKind()])
	})
	if invDone != nil {
		<-invDone
		if p.invErr != nil && isUnreachable(p.invErr) && ctx.Err() == nil {
			return &UnreachableError{Host: p.c.Host(), Err: p.invErr}
		}
		if p.invErr != nil {
			p.errs = append(p.errs, p.invErr)
		}
		p.members = map[string]*unstructured.Unstructured{}
		if p.inventory != nil {
			for _, m := range p.inventory.Members {
				p.members[diff.RefOf(m).Key()] = m
			}
		}
		// Existing objects that are not members (or are members read in
		// another version) still need their live state: to diff them, or
		// to find out whom they belong to.
		var need []int
		for i, obj := range p.desired {
			r := p.results[i]
			exists := (r.Err == nil && !r.Created) || isConflict(r.Err)
			if !exists {
				continue
			}
			if m, ok := p.members[diff.RefOf(obj).Key()]; ok && m.GetAPIVersion() == obj.GetAPIVersion() {
				continue
			}
			need = append(need, i)
		}
		fetches = p.fetchTasks(need)
		p.c.forEach(ctx, len(fetches), func(ctx context.Context, i int) { p.fetch(ctx, fetches[i]) })
	}
	for i := range p.results {
		if p.results[i].Object == nil {
			p.results[i] = DryRunResult{Object: p.desired[i], Err: fmt.Errorf("not dry-run: %w", context.Cause(ctx))}
		}
	}
	var unreachable error
	for _, r := range p.results {
		if r.Err != nil && isUnreachable(r.Err) && ctx.Err() == nil {
			unreachable = r.Err
			break
		}
	}
	if unreachable != nil {
		return &UnreachableError{Host: p.c.Host(), Err: unreachable}
	}
	return nil
}

// defaultNamespace is the namespace of objects that name none: the
// kubeconfig context's (or -n), else "default".
func (c *Client) defaultNamespace() string {
	if c.getter != nil {
		if ns, _, err := c.getter.ToRawKubeConfigLoader().Namespace(); err == nil && ns != "" {
			return ns
		}
	}
	return metav1.NamespaceDefault
}

func isCRD(obj *unstructured.Unstructured) bool {
	gk := obj.GroupVersionKind().GroupKind()
	return gk == schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}
}
