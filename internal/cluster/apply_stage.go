package cluster

import (
	"context"
	"encoding/json"
	"fmt"
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

	"github.com/kubectl-gitops/kubectl-gitops/internal/clock"
	"github.com/kubectl-gitops/kubectl-gitops/internal/diff"
)

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
	ctx = withObject(ctx, it.obj)
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
	// A warning (an admission policy's, say) may quote the object.
	for _, w := range warnings {
		r.Warnings = append(r.Warnings, redactorOf(ctx).Text(w))
	}
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
	ri := a.c.resourceFor(m, it.obj.GetNamespace())
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
