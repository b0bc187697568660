package cluster

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/dynamic"

	"github.com/kubectl-gitops/kubectl-gitops/internal/diff"
)

// DiffError is what went wrong with one object of a Diff; the other objects
// are still compared. Its message never holds a Secret's values.
type DiffError struct {
	Ref ObjectRef
	Err error
}

func (e *DiffError) Error() string { return e.Ref.String() + ": " + e.Err.Error() }
func (e *DiffError) Unwrap() error { return e.Err }

// UnreachableError says the API server could not be reached at all; no
// object was compared.
type UnreachableError struct {
	Host string
	Err  error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach the cluster at %s: %v; check --kubeconfig and --context and that the API server is up (render works offline)", e.Host, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

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
		dyn:          c.dynamic,
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
	dyn  dynamic.Interface // unthrottled, for dry-runs and reads
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

// serverOwned are metadata fields a rendered object must not carry into an
// apply: a resourceVersion would make the apply conditional, managedFields
// are refused, and the rest are the server's.
var serverOwned = []string{"resourceVersion", "uid", "generation", "creationTimestamp", "managedFields", "selfLink"}

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
			p.errs = append(p.errs, fmt.Errorf("object %d (%s) has no apiVersion, kind or name: set all three", i, RefOf(obj)))
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
		if md, ok := obj.Object["metadata"].(map[string]any); ok {
			for _, f := range serverOwned {
				delete(md, f)
			}
		}
		delete(obj.Object, "status")
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
		ref := RefOf(obj)
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
		p.results[i-n] = p.c.dryRun(ctx, p.dyn, obj, p.kinds[obj.GroupVersionKind()])
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
				p.members[RefOf(m).Key()] = m
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
			if m, ok := p.members[RefOf(obj).Key()]; ok && m.GetAPIVersion() == obj.GetAPIVersion() {
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

// fetchTask reads the live state of objects of one kind in one namespace:
// all of them with one LIST, or the named ones with a GET each.
type fetchTask struct {
	mapping   *meta.RESTMapping
	gvk       schema.GroupVersionKind
	namespace string
	list      bool
	keys      []string // the keys the task answers for
	name      string   // for a GET
}

// fetchTasks plans the reads of the live state of desired[idx…].
func (p *plan) fetchTasks(idx []int) []fetchTask {
	type bucket struct {
		gvk schema.GroupVersionKind
		ns  string
	}
	groups := map[bucket][]int{}
	var order []bucket
	for _, i := range idx {
		obj := p.desired[i]
		km := p.kinds[obj.GroupVersionKind()]
		if km.err != nil {
			continue
		}
		b := bucket{obj.GroupVersionKind(), obj.GetNamespace()}
		if _, ok := groups[b]; !ok {
			order = append(order, b)
		}
		groups[b] = append(groups[b], i)
	}
	var tasks []fetchTask
	for _, b := range order {
		m := p.kinds[b.gvk].mapping
		members := groups[b]
		if len(members) >= liveListThreshold {
			t := fetchTask{mapping: m, gvk: b.gvk, namespace: b.ns, list: true}
			for _, i := range members {
				t.keys = append(t.keys, RefOf(p.desired[i]).Key())
			}
			tasks = append(tasks, t)
			continue
		}
		for _, i := range members {
			obj := p.desired[i]
			tasks = append(tasks, fetchTask{mapping: m, gvk: b.gvk, namespace: b.ns, name: obj.GetName(), keys: []string{RefOf(obj).Key()}})
		}
	}
	return tasks
}

// fetch runs one fetchTask and records what it found.
func (p *plan) fetch(ctx context.Context, t fetchTask) {
	ri := resourceIn(p.dyn, t.mapping, t.namespace)
	found := map[string]*unstructured.Unstructured{}
	var err error
	if t.list {
		var list *unstructured.UnstructuredList
		list, err = ri.List(ctx, metav1.ListOptions{})
		if err == nil {
			for i := range list.Items {
				item := &list.Items[i]
				if item.GetAPIVersion() == "" {
					item.SetGroupVersionKind(t.gvk)
				}
				found[RefOf(item).Key()] = item
			}
		}
	} else {
		var obj *unstructured.Unstructured
		obj, err = ri.Get(ctx, t.name, metav1.GetOptions{})
		switch {
		case err == nil:
			found[RefOf(obj).Key()] = obj
		case apierrors.IsNotFound(err):
			err = nil
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, k := range t.keys {
		p.fetched[k] = err
		if obj, ok := found[k]; ok && err == nil {
			p.live[k] = obj
		}
	}
}

// assemble turns the dry-runs, live objects and inventory into changes.
func (p *plan) assemble(ctx context.Context) (*diff.ChangeSet, error) {
	cs := &diff.ChangeSet{}
	var objErrs []*DiffError
	fail := func(ref ObjectRef, err error) { objErrs = append(objErrs, &DiffError{Ref: ref, Err: err}) }
	add := func(ch diff.Change, err error, ref ObjectRef) {
		if err != nil {
			fail(ref, err)
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
		ref := RefOf(obj)
		key := ref.Key()
		if r.Err != nil {
			if note := p.deferred(obj, r.Err, nsCreated, crdOK); note != "" {
				ch, err := diff.Pair(nil, obj, p.opts)
				ch.Message = note
				add(ch, err, ref)
				continue
			}
			if isConflict(r.Err) {
				if live, _ := p.liveOf(key, obj); live != nil && !p.ours(live) {
					cs.Changes = append(cs.Changes, p.takeOver(obj, live))
				}
			}
			fail(ref, r.Err)
			continue
		}
		if r.Created {
			ch, err := diff.Pair(nil, r.Merged, p.opts)
			add(ch, err, ref)
			continue
		}
		live, err := p.liveOf(key, obj)
		if err != nil {
			// Without the live object its owner is unknown: show nothing
			// of it.
			fail(ref, fmt.Errorf("reading the live object: %w", err))
			continue
		}
		if live == nil {
			// Deleted between the dry-run and the read: applying would
			// create it.
			ch, err := diff.Pair(nil, r.Merged, p.opts)
			add(ch, err, ref)
			continue
		}
		if !p.ours(live) {
			cs.Changes = append(cs.Changes, p.takeOver(obj, live))
			continue
		}
		if ch, ok := p.unchanged(live, r.Merged); ok {
			cs.Changes = append(cs.Changes, ch)
			continue
		}
		ch, err := diff.Pair(live, r.Merged, p.opts)
		add(ch, err, ref)
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
		rendered[RefOf(obj).Key()] = true
	}
	var stale []*unstructured.Unstructured
	for _, m := range p.inventory.Members {
		if !rendered[RefOf(m).Key()] && m.GetAnnotations()[AnnotationPrune] != PruneDisabled {
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
			errs = append(errs, &DiffError{Ref: RefOf(m), Err: err})
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

// ignoredMetadata are the metadata fields diff.Pair leaves out.
var ignoredMetadata = map[string]bool{"resourceVersion": true, "uid": true, "generation": true, "creationTimestamp": true, "selfLink": true, "managedFields": true}

// unchanged is a fast path for the common case of an object that applying
// would not change: when the dry-run result equals the live object apart
// from what diff.Pair ignores, Pair would find them equal too, so the two
// YAML renderings and the line diff (most of a large diff's CPU time) are
// skipped. It returns false whenever it is not sure.
func (p *plan) unchanged(live, merged *unstructured.Unstructured) (diff.Change, bool) {
	if len(live.Object) != len(merged.Object) {
		return diff.Change{}, false
	}
	for k, v := range live.Object {
		switch k {
		case "status":
			continue
		case "metadata":
			lm, _ := v.(map[string]any)
			mm, _ := merged.Object[k].(map[string]any)
			if lm == nil || mm == nil || !sameExcept(lm, mm, p.ignored()) {
				return diff.Change{}, false
			}
		default:
			w, ok := merged.Object[k]
			if !ok || !reflect.DeepEqual(v, w) {
				return diff.Change{}, false
			}
		}
	}
	b, a := strip(live, p.ignored()), strip(merged, p.ignored())
	if !p.opts.ShowSecrets {
		b, a = diff.MaskSecrets(b, a)
	}
	return diff.Change{Ref: diff.RefOf(merged), Action: diff.Unchanged, Before: b, After: a}, true
}

func (p *plan) ignored() map[string]bool {
	if !p.opts.ShowManagedFields {
		return ignoredMetadata
	}
	m := maps.Clone(ignoredMetadata)
	delete(m, "managedFields")
	return m
}

// sameExcept compares two metadata maps, leaving out the ignored keys.
func sameExcept(a, b map[string]any, ignored map[string]bool) bool {
	for k, v := range a {
		if ignored[k] {
			continue
		}
		if w, ok := b[k]; !ok || !reflect.DeepEqual(v, w) {
			return false
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok && !ignored[k] {
			return false
		}
	}
	return true
}

// strip copies obj without status and the ignored metadata, as diff.Pair
// reports the sides it compared.
func strip(obj *unstructured.Unstructured, ignored map[string]bool) *unstructured.Unstructured {
	out := &unstructured.Unstructured{Object: make(map[string]any, len(obj.Object))}
	for k, v := range obj.Object {
		switch k {
		case "status":
		case "metadata":
			md, _ := v.(map[string]any)
			m := make(map[string]any, len(md))
			for mk, mv := range md {
				if !ignored[mk] {
					m[mk] = runtime.DeepCopyJSONValue(mv)
				}
			}
			out.Object[k] = m
		default:
			out.Object[k] = runtime.DeepCopyJSONValue(v)
		}
	}
	return out
}

// liveOf returns the live object for key as read from the inventory or by
// fetch; nil when it does not exist.
func (p *plan) liveOf(key string, obj *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err, ok := p.fetched[key]; ok {
		return p.live[key], err
	}
	if m, ok := p.members[key]; ok && m.GetAPIVersion() == obj.GetAPIVersion() {
		return m, nil
	}
	return nil, fmt.Errorf("live object of %s was not read", key)
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

func isConflict(err error) bool {
	var ce *ConflictError
	return errors.As(err, &ce)
}

// isUnreachable reports whether err is a transport failure (connection
// refused or reset, a broken stream, a dial or TLS error) rather than an
// answer of the API server; an ended context is not one. Shared by dry-run
// and apply.
func isUnreachable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		return false
	}
	var ue *url.Error
	var ne net.Error
	return errors.As(err, &ue) || errors.As(err, &ne) || utilnet.IsConnectionRefused(err) ||
		utilnet.IsConnectionReset(err) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}
