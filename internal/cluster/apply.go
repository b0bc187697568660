package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/kubectl-gitops/kubectl-gitops/internal/clock"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

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

// ObjectResult is what Apply did with one object.
type ObjectResult struct {
	Ref ObjectRef
	// Action is Created, Configured or Unchanged for applied objects and
	// Deleted for pruned ones; empty when nothing was done.
	Action diff.Action
	// Recreated says a change of an immutable field was applied by
	// deleting and creating the object (Force).
	Recreated bool
	// Skipped says why an inventory member left the set but was not
	// pruned.
	Skipped string
	// Unvalidated says a dry run could not ask the server about the object
	// because its namespace or kind is created by the same apply.
	Unvalidated string
	// Attempted is false for objects that were never sent because the
	// apply stopped first (the API server went away, or ctx ended).
	Attempted bool
	// Err is why the object failed.
	Err error
	// Warnings are the API server's warnings for the request.
	Warnings []string
	// DryRun says the result comes from a server-side dry run.
	DryRun bool

	// live is the object as the API server returned it.
	live *unstructured.Unstructured
}

// Line is the object's progress line, in kubectl's words:
// "deployment.apps/web serverside-applied", "configmap/settings unchanged",
// "secret/old pruned".
func (r ObjectResult) Line() string {
	var verb string
	switch {
	case r.Err != nil:
		verb = "failed: " + r.Err.Error()
	case r.Skipped != "":
		verb = "not pruned: " + r.Skipped
	case r.Action == diff.Deleted:
		verb = "pruned"
	case r.Recreated:
		verb = "recreated"
	case r.Action == diff.Unchanged:
		verb = "unchanged"
	case r.Action == diff.Created || r.Action == diff.Configured:
		verb = "serverside-applied"
	default:
		verb = "not attempted"
	}
	if r.Unvalidated != "" {
		verb += " (not validated: " + r.Unvalidated + ")"
	}
	if r.DryRun {
		verb += " (server dry run)"
	}
	return r.Ref.KubectlName() + " " + verb
}

// KubectlName names the object as kubectl's progress lines do:
// kind.group/name, in lower case.
func (r ObjectRef) KubectlName() string {
	kind := strings.ToLower(r.Kind)
	if r.Group != "" {
		kind += "." + r.Group
	}
	return kind + "/" + r.Name
}

// ApplyResult is the outcome of Apply.
type ApplyResult struct {
	// Objects are the results of the set, in the order they were staged.
	Objects []ObjectResult
	// Pruned are the inventory members that left the set: deleted, skipped
	// or failed.
	Pruned []ObjectResult
	// Wait holds the last status of each waited-for object.
	Wait []ObjectStatus
	// InventoryWritten says the final inventory was recorded.
	InventoryWritten bool
	DryRun           bool
}

// ApplySummary counts an ApplyResult.
type ApplySummary struct {
	Created, Configured, Unchanged, Recreated int
	Failed, NotAttempted                      int
	Pruned, PruneSkipped, PruneFailed         int
}

// Summary counts the results per outcome.
func (r *ApplyResult) Summary() ApplySummary {
	var s ApplySummary
	if r == nil {
		return s
	}
	for _, o := range r.Objects {
		switch {
		case !o.Attempted:
			s.NotAttempted++
		case o.Err != nil:
			s.Failed++
		case o.Recreated:
			s.Recreated++
		case o.Action == diff.Created:
			s.Created++
		case o.Action == diff.Configured:
			s.Configured++
		case o.Action == diff.Unchanged:
			s.Unchanged++
		}
	}
	for _, o := range r.Pruned {
		switch {
		case o.Err != nil:
			s.PruneFailed++
		case o.Skipped != "":
			s.PruneSkipped++
		case o.Action == diff.Deleted:
			s.Pruned++
		}
	}
	return s
}

// String is a one-line summary for people.
func (s ApplySummary) String() string {
	parts := []string{
		fmt.Sprintf("%d created", s.Created),
		fmt.Sprintf("%d configured", s.Configured),
		fmt.Sprintf("%d unchanged", s.Unchanged),
	}
	for _, p := range []struct {
		n    int
		what string
	}{{s.Recreated, "recreated"}, {s.Failed, "failed"}, {s.NotAttempted, "not attempted"},
		{s.Pruned, "pruned"}, {s.PruneSkipped, "not pruned"}, {s.PruneFailed, "failed to prune"}} {
		if p.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", p.n, p.what))
		}
	}
	return strings.Join(parts, ", ")
}

// ApplyError is returned when some objects failed or were not attempted.
// The inventory then holds the old members and every object that applied,
// and nothing was pruned; running the apply again converges.
type ApplyError struct {
	Applied, Total int
	Failed         []ObjectResult
	NotAttempted   []ObjectRef
}

func (e *ApplyError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "applied %d of %d objects", e.Applied, e.Total)
	if len(e.Failed) > 0 {
		fmt.Fprintf(&b, "; %d failed:", len(e.Failed))
		for _, f := range e.Failed {
			fmt.Fprintf(&b, "\n  %s: %v", f.Ref.KubectlName()+namespaceSuffix(f.Ref), f.Err)
		}
	}
	if n := len(e.NotAttempted); n > 0 {
		fmt.Fprintf(&b, "\n%d not attempted (the apply stopped first):", n)
		for i, r := range e.NotAttempted {
			if i == 10 {
				fmt.Fprintf(&b, " and %d more", n-i)
				break
			}
			fmt.Fprintf(&b, " %s%s", r.KubectlName(), namespaceSuffix(r))
		}
	}
	b.WriteString("\nnothing was pruned; the inventory keeps the old objects and those applied: fix the errors and apply again")
	return b.String()
}

// Unwrap returns the per-object errors.
func (e *ApplyError) Unwrap() []error {
	errs := make([]error, 0, len(e.Failed))
	for _, f := range e.Failed {
		errs = append(errs, f.Err)
	}
	return errs
}

func namespaceSuffix(r ObjectRef) string {
	if r.Namespace == "" {
		return ""
	}
	return " (namespace " + r.Namespace + ")"
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
	ref        ObjectRef
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
		ap.members[RefOf(m).Key()] = m
	}

	if !opts.DryRun && !noInventory {
		if err := ap.ensureNamespace(ctx, ref.Namespace, items); err != nil {
			return res, err
		}
		union := recordOf(ref, items, nil)
		union.merge(inventoryRecord{groupKinds: inv.GroupKinds, namespaces: inv.Namespaces})
		union.revision, union.appliedAt = inv.Revision, inv.AppliedAt
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
		final.revision, final.appliedAt = opts.Revision, opts.Now()
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
		// Apply requests must not carry server-owned metadata.
		obj.SetManagedFields(nil)
		obj.SetResourceVersion("")
		obj.SetUID("")
		obj.SetCreationTimestamp(metav1.Time{})
		unstructured.RemoveNestedField(obj.Object, "status")

		it := &item{obj: obj, ref: RefOf(obj), namespaced: s.namespaced, newKind: s.newKind, stage: stageObjects}
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

// applier holds the state of one Apply call.
type applier struct {
	c       *Client
	rest    rest.Interface
	opts    ApplyOptions
	members map[string]*unstructured.Unstructured

	progressMu sync.Mutex
	// newNamespaces and newKinds are what a dry run "created": objects in
	// them cannot be validated by the server.
	newNamespaces map[string]bool
	mu            sync.Mutex
}

// newApplier makes a REST client that reports whether an apply created its
// object, which the dynamic client does not tell.
func (c *Client) newApplier(opts ApplyOptions) (*applier, error) {
	cfg := dynamic.ConfigFor(c.config) // its serializer decodes API errors
	cfg.ContentType = "application/json"
	cfg.AcceptContentTypes = "application/json"
	cfg.GroupVersion = nil
	cfg.APIPath = "/"
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating a client for %s: %w", cfg.Host, err)
	}
	rc, err := rest.UnversionedRESTClientForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, fmt.Errorf("creating a client for %s: %w", cfg.Host, err)
	}
	return &applier{c: c, rest: rc, opts: opts, newNamespaces: map[string]bool{}}, nil
}

func (a *applier) report(r ObjectResult) {
	if a.opts.Progress == nil {
		return
	}
	a.progressMu.Lock()
	defer a.progressMu.Unlock()
	a.opts.Progress(r)
}

// run applies items with bounded concurrency. When the API server stops
// answering, it stops starting new requests: the rest are not attempted.
func (a *applier) run(ctx context.Context, items []*item) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a.c.forEach(ctx, len(items), func(ctx context.Context, i int) {
		it := items[i]
		if ctx.Err() != nil || it.result.Attempted {
			return
		}
		it.result = a.applyOne(ctx, it)
		if it.result.Err != nil {
			if isUnreachable(it.result.Err) {
				cancel()
			}
			return
		}
		a.report(it.result)
	})
}

// applyOne applies one object, recreating it on an immutable-field error when
// Force is set.
func (a *applier) applyOne(ctx context.Context, it *item) ObjectResult {
	r := ObjectResult{Ref: it.ref, Attempted: true, DryRun: a.opts.DryRun}
	if a.opts.DryRun {
		if why := a.unvalidated(it); why != "" {
			r.Action, r.Unvalidated = diff.Created, why
			return r
		}
	}
	m, err := a.c.mapping(it.obj.GroupVersionKind())
	if err != nil {
		r.Err = err
		return r
	}
	live, created, warnings, err := a.ssa(ctx, m, it.obj)
	r.Warnings = warnings
	if err != nil && isImmutable(err) {
		if !a.opts.Force {
			r.Err = immutableError(it, err)
			return r
		}
		live, created, err = a.recreate(ctx, m, it)
		r.Recreated = err == nil
	}
	if err != nil {
		r.Err = describe(it, err)
		return r
	}
	r.live = live
	switch {
	case created || r.Recreated:
		r.Action = diff.Created
		if r.Recreated {
			r.Action = diff.Configured
		}
		if created && it.ref.Kind == "Namespace" && it.ref.Group == "" && a.opts.DryRun {
			a.mu.Lock()
			a.newNamespaces[it.ref.Name] = true
			a.mu.Unlock()
		}
	case a.unchanged(it, live):
		r.Action = diff.Unchanged
	default:
		r.Action = diff.Configured
	}
	return r
}

// unvalidated says why a dry run cannot send an object: its namespace or its
// kind would be created by this apply, so the server would only answer "not
// found".
func (a *applier) unvalidated(it *item) string {
	if it.newKind {
		return "its CustomResourceDefinition is created by this apply"
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if it.namespaced && a.newNamespaces[it.ref.Namespace] {
		return "its namespace is created by this apply"
	}
	return ""
}

// unchanged reports whether the apply left the object as it was: its
// resourceVersion did not move (a dry run keeps it anyway, so there the
// objects are compared).
func (a *applier) unchanged(it *item, live *unstructured.Unstructured) bool {
	before, ok := a.members[it.ref.Key()]
	if !ok {
		return false
	}
	if !a.opts.DryRun {
		return before.GetResourceVersion() == live.GetResourceVersion()
	}
	x, y := before.DeepCopy(), live.DeepCopy()
	x.SetResourceVersion("")
	y.SetResourceVersion("")
	return equality.Semantic.DeepEqual(x.Object, y.Object)
}

// ssa sends one server-side apply request.
func (a *applier) ssa(ctx context.Context, m *meta.RESTMapping, obj *unstructured.Unstructured) (*unstructured.Unstructured, bool, []string, error) {
	body, err := json.Marshal(obj.Object)
	if err != nil {
		return nil, false, nil, err
	}
	req := a.rest.Patch(types.ApplyPatchType).
		AbsPath(segments(m, obj.GetNamespace(), obj.GetName())...).
		Param("fieldManager", a.c.fieldManager).
		Body(body)
	if a.opts.ForceConflicts {
		req = req.Param("force", "true")
	}
	if a.opts.DryRun {
		req = req.Param("dryRun", metav1.DryRunAll)
	}
	var created bool
	result := req.Do(ctx).WasCreated(&created)
	var warnings []string
	for _, w := range result.Warnings() {
		warnings = append(warnings, w.Text)
	}
	raw, err := result.Raw()
	if err != nil {
		// Error, unlike Raw, decodes the API's Status into a StatusError.
		return nil, false, warnings, result.Error()
	}
	live := &unstructured.Unstructured{}
	if err := live.UnmarshalJSON(raw); err != nil {
		return nil, false, warnings, fmt.Errorf("decoding the API server's answer: %w", err)
	}
	return live, created, warnings, nil
}

// recreate deletes the object, waits until it is gone and applies it again.
func (a *applier) recreate(ctx context.Context, m *meta.RESTMapping, it *item) (*unstructured.Unstructured, bool, error) {
	ri := a.c.resourceIn(m, it.obj.GetNamespace())
	if a.opts.DryRun {
		err := ri.Delete(ctx, it.obj.GetName(), metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}})
		return nil, false, err
	}
	policy := metav1.DeletePropagationBackground
	err := ri.Delete(ctx, it.obj.GetName(), metav1.DeleteOptions{PropagationPolicy: &policy})
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, false, fmt.Errorf("deleting it to recreate it: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		_, err := ri.Get(ctx, it.obj.GetName(), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			break
		}
		if err != nil && !isTransient(err) {
			return nil, false, fmt.Errorf("waiting for it to be deleted before recreating it: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil, false, fmt.Errorf("deleted, but still present after a minute (a finalizer?); recreate it by hand: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
	live, _, _, err := a.ssa(ctx, m, it.obj)
	if err != nil {
		return nil, false, fmt.Errorf("deleted, but creating it again failed: %w", err)
	}
	return live, true, nil
}

// ensureNamespace makes sure the inventory's namespace exists before the
// parent is written there: it applies the set's Namespace object for it
// first, or fails saying what to do.
func (a *applier) ensureNamespace(ctx context.Context, ns string, items []*item) error {
	_, err := a.c.dynamic.Resource(namespaceGVR).Get(ctx, ns, metav1.GetOptions{})
	if err == nil {
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return fmt.Errorf("checking namespace %s for the inventory: %w", ns, err)
	}
	for _, it := range items {
		if it.ref.Group == "" && it.ref.Kind == "Namespace" && it.ref.Name == ns {
			a.run(ctx, []*item{it})
			if it.result.Err != nil {
				return fmt.Errorf("creating namespace %s for the inventory: %w", ns, it.result.Err)
			}
			return nil
		}
	}
	return fmt.Errorf("namespace %s, where the inventory of app %s is kept, does not exist: create it, add it to the app, or choose another with -n", ns, a.opts.Inventory.App)
}

var namespaceGVR = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}

// settleDefinitions waits until the applied CRDs are Established and their
// kinds map, so the second stage can apply their objects.
func (a *applier) settleDefinitions(ctx context.Context, defs []*item) error {
	if a.opts.DryRun {
		return nil
	}
	var kinds []schema.GroupVersionKind
	var names []string
	for _, it := range defs {
		if it.ref.GroupKind() != crdGK || it.result.Err != nil || !it.result.Attempted {
			continue
		}
		names = append(names, it.ref.Name)
		group, _, _ := unstructured.NestedString(it.obj.Object, "spec", "group")
		kind, _, _ := unstructured.NestedString(it.obj.Object, "spec", "names", "kind")
		versions, _, _ := unstructured.NestedSlice(it.obj.Object, "spec", "versions")
		for _, v := range versions {
			vm, _ := v.(map[string]any)
			if name, _ := vm["name"].(string); name != "" && vm["served"] != false {
				kinds = append(kinds, schema.GroupVersionKind{Group: group, Version: name, Kind: kind})
			}
		}
	}
	if len(names) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, crdEstablishTimeout)
	defer cancel()
	crds := a.c.dynamic.Resource(schema.GroupVersionResource{Group: crdGK.Group, Version: "v1", Resource: "customresourcedefinitions"})
	for _, name := range names {
		for {
			crd, err := crds.Get(ctx, name, metav1.GetOptions{})
			if err == nil && hasCondition(crd, "Established", "True") {
				break
			}
			if err != nil && !isTransient(err) && !apierrors.IsNotFound(err) {
				return fmt.Errorf("waiting for CustomResourceDefinition %s to be established: %w", name, err)
			}
			if clock.Sleep(ctx, 100*time.Millisecond) != nil {
				return fmt.Errorf("CustomResourceDefinition %s was not established within %s; its objects were not applied", name, crdEstablishTimeout)
			}
		}
	}
	// Discovery lags a little behind Established.
	for {
		a.c.resetOnce.Lock()
		a.c.mapper.Reset()
		a.c.resetOnce.Unlock()
		var missing []string
		for _, gvk := range kinds {
			if _, err := a.c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
				missing = append(missing, gvk.String())
			}
		}
		if len(missing) == 0 {
			return nil
		}
		if clock.Sleep(ctx, 200*time.Millisecond) != nil {
			return fmt.Errorf("the API server does not serve %s within %s of applying their CustomResourceDefinitions", strings.Join(missing, ", "), crdEstablishTimeout)
		}
	}
}

// finish collects the items' results.
func (a *applier) finish(res *ApplyResult, items []*item) *ApplyResult {
	res.Objects = make([]ObjectResult, 0, len(items))
	for _, it := range items {
		if !it.result.Attempted {
			it.result.Ref = it.ref
		}
		res.Objects = append(res.Objects, it.result)
	}
	return res
}

func applyError(res *ApplyResult) error {
	e := &ApplyError{Total: len(res.Objects)}
	for _, o := range res.Objects {
		switch {
		case !o.Attempted:
			e.NotAttempted = append(e.NotAttempted, o.Ref)
		case o.Err != nil:
			e.Failed = append(e.Failed, o)
		default:
			e.Applied++
		}
	}
	if len(e.Failed) == 0 && len(e.NotAttempted) == 0 {
		return nil
	}
	sort.Slice(e.Failed, func(i, j int) bool { return e.Failed[i].Ref.Key() < e.Failed[j].Ref.Key() })
	return e
}

// segments is the REST path of an object.
func segments(m *meta.RESTMapping, namespace, name string) []string {
	gvr := m.Resource
	segs := []string{"api"}
	if gvr.Group != "" {
		segs = []string{"apis", gvr.Group}
	}
	segs = append(segs, gvr.Version)
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		segs = append(segs, "namespaces", namespace)
	}
	return append(segs, gvr.Resource, name)
}

// isImmutable reports whether err says a field may not change.
func isImmutable(err error) bool {
	if !apierrors.IsInvalid(err) {
		return false
	}
	msg := strings.ToLower(err.Error())
	for _, s := range []string{"immutable", "may not change once set", "cannot change", "updates to statefulset spec for fields other than"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// immutableError names the object and the immutable fields, and says how to
// go on.
func immutableError(it *item, err error) error {
	var fields []string
	var st apierrors.APIStatus
	if errors.As(err, &st) && st.Status().Details != nil {
		for _, c := range st.Status().Details.Causes {
			if c.Field != "" && !slices.Contains(fields, c.Field) {
				fields = append(fields, c.Field)
			}
		}
	}
	what := "an immutable field"
	if len(fields) > 0 {
		what = "immutable field " + strings.Join(fields, ", ")
	}
	return &objectError{Ref: it.ref, Err: err, msg: fmt.Sprintf("cannot change %s (%s); re-run with --force to delete and recreate the object",
		what, maskSecret(it.obj, statusMessage(err)))}
}

// describe turns an API error into a message that names the object and says
// what to do, with Secret values masked.
func describe(it *item, err error) error {
	var st apierrors.APIStatus
	msg := maskSecret(it.obj, err.Error())
	switch {
	case apierrors.IsConflict(err) && errors.As(err, &st) && hasCause(st.Status(), metav1.CauseTypeFieldManagerConflict):
		msg = maskSecret(it.obj, statusMessage(err)) + "; another field manager owns these fields: re-run with --force-conflicts to take them over"
	case apierrors.IsForbidden(err):
		msg += "; check your RBAC permissions for this kind and namespace"
	case apierrors.IsNotFound(err) && it.namespaced:
		msg += fmt.Sprintf("; does namespace %s exist? Add a Namespace object to the app", it.ref.Namespace)
	case isUnreachable(err):
		msg = "the API server did not answer: " + msg
	}
	return &objectError{Ref: it.ref, Err: err, msg: msg}
}

// objectError is a failure of one object. Its message never carries a
// Secret's values.
type objectError struct {
	Ref ObjectRef
	Err error
	msg string
}

func (e *objectError) Error() string { return e.msg }
func (e *objectError) Unwrap() error { return e.Err }

func statusMessage(err error) string {
	var st apierrors.APIStatus
	if errors.As(err, &st) && st.Status().Message != "" {
		return st.Status().Message
	}
	return err.Error()
}

func hasCause(st metav1.Status, t metav1.CauseType) bool {
	if st.Details == nil {
		return false
	}
	for _, c := range st.Details.Causes {
		if c.Type == t {
			return true
		}
	}
	return false
}

// maskSecret replaces the values of a Secret (as written, and decoded) in msg.
func maskSecret(obj *unstructured.Unstructured, msg string) string {
	if obj.GetKind() != "Secret" || obj.GroupVersionKind().Group != "" {
		return msg
	}
	var values []string
	for _, field := range []string{"data", "stringData"} {
		m, _, _ := unstructured.NestedMap(obj.Object, field)
		for _, v := range m {
			s, ok := v.(string)
			if !ok || s == "" {
				continue
			}
			values = append(values, s)
			if field == "data" {
				if dec, err := decodeBase64(s); err == nil && len(dec) > 0 {
					values = append(values, dec)
				}
			}
		}
	}
	// Longest first, so a value that contains another is masked whole.
	sort.Slice(values, func(i, j int) bool { return len(values[i]) > len(values[j]) })
	for _, v := range values {
		msg = strings.ReplaceAll(msg, v, "***")
	}
	return msg
}

// isTransient reports errors worth polling through.
func isTransient(err error) bool {
	return isUnreachable(err) || apierrors.IsTooManyRequests(err) || apierrors.IsServerTimeout(err) ||
		apierrors.IsTimeout(err) || apierrors.IsServiceUnavailable(err)
}

func hasCondition(obj *unstructured.Unstructured, typ, status string) bool {
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == typ && m["status"] == status {
			return true
		}
	}
	return false
}

// resourceIn is the dynamic client of a mapping in a namespace.
func (c *Client) resourceIn(m *meta.RESTMapping, namespace string) dynamic.ResourceInterface {
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return c.dynamic.Resource(m.Resource).Namespace(namespace)
	}
	return c.dynamic.Resource(m.Resource)
}
