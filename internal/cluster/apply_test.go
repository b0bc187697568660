package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/kubectl-gitops/kubectl-gitops/internal/clock"
	"github.com/kubectl-gitops/kubectl-gitops/internal/diff"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/testenv"
)

// Builders: valid by default; each test changes what it is about.

func obj(apiVersion, kind, ns, name string, fields map[string]any) *unstructured.Unstructured {
	o := map[string]any{"apiVersion": apiVersion, "kind": kind, "metadata": map[string]any{"name": name}}
	if ns != "" {
		o["metadata"].(map[string]any)["namespace"] = ns
	}
	for k, v := range fields {
		o[k] = v
	}
	return &unstructured.Unstructured{Object: o}
}

func configMap(ns, name string, data map[string]any) *unstructured.Unstructured {
	if data == nil {
		data = map[string]any{"key": name}
	}
	return obj("v1", "ConfigMap", ns, name, map[string]any{"data": data})
}

func deployment(ns, name string) *unstructured.Unstructured {
	labels := map[string]any{"app": name}
	return obj("apps/v1", "Deployment", ns, name, map[string]any{"spec": map[string]any{
		"replicas": int64(1),
		"selector": map[string]any{"matchLabels": labels},
		"template": map[string]any{
			"metadata": map[string]any{"labels": labels},
			"spec": map[string]any{"containers": []any{
				map[string]any{"name": "app", "image": "registry.example/app:1.0"},
			}},
		},
	}})
}

func namespaceObj(name string) *unstructured.Unstructured {
	return obj("v1", "Namespace", "", name, nil)
}

var (
	cmGVR     = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	deployGVR = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
)

func bigSet(ns string, n int) []*unstructured.Unstructured {
	objs := make([]*unstructured.Unstructured, 0, 2*n)
	for i := range n {
		objs = append(objs, configMap(ns, fmt.Sprintf("cm-%03d", i), nil), deployment(ns, fmt.Sprintf("web-%03d", i)))
	}
	return objs
}

func mustApply(t *testing.T, c *Client, objs []*unstructured.Unstructured, opts ApplyOptions) *ApplyResult {
	t.Helper()
	res, err := c.Apply(context.Background(), objs, opts)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return res
}

func memberKeys(t *testing.T, c *Client, ref InventoryRef) []string {
	t.Helper()
	inv, err := c.ReadInventory(context.Background(), ref)
	if err != nil {
		t.Fatalf("ReadInventory: %v", err)
	}
	keys := make([]string, 0, len(inv.Members))
	for _, m := range inv.Members {
		keys = append(keys, diff.RefOf(m).Key())
	}
	return keys
}

func keysOf(objs []*unstructured.Unstructured, defaultNS string) []string {
	keys := make([]string, 0, len(objs))
	for _, o := range objs {
		r := diff.RefOf(o)
		if r.Namespace == "" && r.Kind != "Namespace" && r.Kind != "CustomResourceDefinition" {
			r.Namespace = defaultNS
		}
		keys = append(keys, r.Key())
	}
	sort.Strings(keys)
	return keys
}

func TestApplyStagedInventoryPrune(t *testing.T) {
	ns := env.Namespace(t)
	c := newClient(t, Options{})
	ref := InventoryRef{App: "big", Namespace: ns}
	objs := bigSet(ns, 300)
	ctx := context.Background()

	var lines []string
	res := mustApply(t, c, objs, ApplyOptions{Inventory: ref, Revision: "abc123",
		Progress: func(r ObjectResult) { lines = append(lines, r.Line()) }})
	if s := res.Summary(); s.Created != 600 || s.Failed != 0 {
		t.Fatalf("first apply: %s, want 600 created", s)
	}
	if len(lines) != 600 || !slices.Contains(lines, "deployment.apps/web-007 serverside-applied") || !slices.Contains(lines, "configmap/cm-007 serverside-applied") {
		t.Errorf("progress lines: %d, e.g. %q", len(lines), lines[:3])
	}
	for _, gvr := range []schema.GroupVersionResource{cmGVR, deployGVR} {
		list, err := env.Dynamic.Resource(gvr).Namespace(ns).List(ctx, metav1.ListOptions{LabelSelector: LabelPartOf + "=" + ref.ID()})
		if err != nil || len(list.Items) != 300 {
			t.Fatalf("%s labelled part-of: %d, %v; want 300", gvr.Resource, len(list.Items), err)
		}
		for _, item := range list.Items {
			if !managedBy(&item, FieldManager) {
				t.Fatalf("%s/%s is not managed by %s: %v", gvr.Resource, item.GetName(), FieldManager, item.GetManagedFields())
			}
		}
	}
	parent, err := env.Dynamic.Resource(secretGVR).Namespace(ns).Get(ctx, ref.Name(), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ann := parent.GetAnnotations()
	if ann[AnnotationContainsGroupKinds] != "ConfigMap,Deployment.apps" || ann[AnnotationRevision] != "abc123" ||
		ann[AnnotationTooling] != Tooling || ann[AnnotationAppliedAt] == "" || parent.GetLabels()[LabelApplySetID] != ref.ID() {
		t.Errorf("parent labels %v annotations %v", parent.GetLabels(), ann)
	}
	if d := cmp.Diff(keysOf(objs, ns), memberKeys(t, c, ref)); d != "" {
		t.Fatalf("inventory members (-want +got):\n%s", d)
	}

	// A re-apply changes nothing.
	lines = nil
	res = mustApply(t, c, objs, ApplyOptions{Inventory: ref, Revision: "abc123",
		Progress: func(r ObjectResult) { lines = append(lines, r.Line()) }})
	if s := res.Summary(); s.Unchanged != 600 {
		t.Fatalf("re-apply: %s, want 600 unchanged", s)
	}
	if !slices.Contains(lines, "configmap/cm-001 unchanged") {
		t.Errorf("re-apply progress lacks 'configmap/cm-001 unchanged': %q", lines[:3])
	}

	// Without one ConfigMap, prune deletes exactly that one.
	removed := objs[10] // cm-005
	rest := append(append([]*unstructured.Unstructured{}, objs[:10]...), objs[11:]...)
	res = mustApply(t, c, rest, ApplyOptions{Inventory: ref, Prune: true})
	if s := res.Summary(); s.Pruned != 1 || s.Unchanged != 599 {
		t.Fatalf("apply with prune: %s, want 1 pruned and 599 unchanged", s)
	}
	if res.Pruned[0].Ref.Name != removed.GetName() || res.Pruned[0].Line() != "configmap/cm-005 pruned" {
		t.Errorf("pruned %v", res.Pruned[0].Line())
	}
	if _, err := env.Dynamic.Resource(cmGVR).Namespace(ns).Get(ctx, removed.GetName(), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("%s still there after prune: %v", removed.GetName(), err)
	}
	if got := memberKeys(t, c, ref); len(got) != 599 {
		t.Errorf("inventory after prune: %d members, want 599", len(got))
	}
}

func managedBy(o *unstructured.Unstructured, manager string) bool {
	for _, mf := range o.GetManagedFields() {
		if mf.Manager == manager && mf.Operation == metav1.ManagedFieldsOperationApply {
			return true
		}
	}
	return false
}

func TestApplyConflictAndForceConflicts(t *testing.T) {
	ns := env.Namespace(t)
	c := newClient(t, Options{})
	ref := InventoryRef{App: "conflict", Namespace: ns}
	ctx := context.Background()
	mustApply(t, c, []*unstructured.Unstructured{configMap(ns, "settings", map[string]any{"color": "blue"})}, ApplyOptions{Inventory: ref})

	// Someone takes the field with another manager, as kubectl edit would.
	other := configMap(ns, "settings", map[string]any{"color": "red"})
	body, _ := other.MarshalJSON()
	force := true
	if _, err := env.Dynamic.Resource(cmGVR).Namespace(ns).Patch(ctx, "settings", types.ApplyPatchType, body,
		metav1.PatchOptions{FieldManager: "kubectl-edit", Force: &force}); err != nil {
		t.Fatal(err)
	}

	want := []*unstructured.Unstructured{configMap(ns, "settings", map[string]any{"color": "green"})}
	_, err := c.Apply(ctx, want, ApplyOptions{Inventory: ref})
	var aerr *ApplyError
	if !errors.As(err, &aerr) || len(aerr.Failed) != 1 {
		t.Fatalf("apply over another manager's field: %v, want one failed object", err)
	}
	t.Log(err)
	for _, s := range []string{"configmap/settings", "kubectl-edit", ".data.color", "--force-conflicts"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("conflict error lacks %q:\n%v", s, err)
		}
	}

	res := mustApply(t, c, want, ApplyOptions{Inventory: ref, ForceConflicts: true})
	if res.Summary().Configured != 1 {
		t.Errorf("force-conflicts: %s", res.Summary())
	}
	live, _ := env.Dynamic.Resource(cmGVR).Namespace(ns).Get(ctx, "settings", metav1.GetOptions{})
	if v, _, _ := unstructured.NestedString(live.Object, "data", "color"); v != "green" {
		t.Errorf("color = %q after --force-conflicts, want green", v)
	}
}

func TestApplyImmutableAndForce(t *testing.T) {
	ns := env.Namespace(t)
	c := newClient(t, Options{})
	ref := InventoryRef{App: "immutable", Namespace: ns}
	ctx := context.Background()
	frozen := func(v string) *unstructured.Unstructured {
		o := configMap(ns, "frozen", map[string]any{"v": v})
		o.Object["immutable"] = true
		return o
	}
	mustApply(t, c, []*unstructured.Unstructured{frozen("1")}, ApplyOptions{Inventory: ref})
	before, _ := env.Dynamic.Resource(cmGVR).Namespace(ns).Get(ctx, "frozen", metav1.GetOptions{})

	_, err := c.Apply(ctx, []*unstructured.Unstructured{frozen("2")}, ApplyOptions{Inventory: ref})
	if err == nil {
		t.Fatal("changing an immutable ConfigMap succeeded without --force")
	}
	t.Log(err)
	for _, s := range []string{"configmap/frozen", "immutable field data", "--force"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("immutable error lacks %q:\n%v", s, err)
		}
	}

	var lines []string
	res := mustApply(t, c, []*unstructured.Unstructured{frozen("2")}, ApplyOptions{Inventory: ref, Force: true,
		Progress: func(r ObjectResult) { lines = append(lines, r.Line()) }})
	if s := res.Summary(); s.Recreated != 1 || strings.Join(lines, "") != "configmap/frozen recreated" {
		t.Fatalf("force: %s, progress %q", s, lines)
	}
	after, _ := env.Dynamic.Resource(cmGVR).Namespace(ns).Get(ctx, "frozen", metav1.GetOptions{})
	if after.GetUID() == before.GetUID() {
		t.Error("the object was not recreated (same UID)")
	}
	if v, _, _ := unstructured.NestedString(after.Object, "data", "v"); v != "2" || after.GetLabels()[LabelPartOf] != ref.ID() {
		t.Errorf("recreated object: v=%q labels=%v", v, after.GetLabels())
	}
}

func crd(group, kind, plural string) *unstructured.Unstructured {
	return obj("apiextensions.k8s.io/v1", "CustomResourceDefinition", "", plural+"."+group, map[string]any{"spec": map[string]any{
		"group": group,
		"scope": "Namespaced",
		"names": map[string]any{"kind": kind, "plural": plural, "singular": strings.ToLower(kind), "listKind": kind + "List"},
		"versions": []any{map[string]any{
			"name": "v1", "served": true, "storage": true,
			"schema": map[string]any{"openAPIV3Schema": map[string]any{
				"type": "object", "x-kubernetes-preserve-unknown-fields": true,
			}},
		}},
	}})
}

func TestApplyCRDNamespaceAndObjectsInOneSet(t *testing.T) {
	c := newClient(t, Options{})
	ctx := context.Background()
	suffix := strings.ToLower(strings.ReplaceAll(time.Now().Format("150405.000000"), ".", ""))
	group := "t" + suffix + ".example.com"
	nsName := "staged-" + suffix
	// The inventory lives in a namespace the set itself creates.
	ref := InventoryRef{App: "staged", Namespace: nsName}
	widget := obj(group+"/v1", "Widget", nsName, "w1", map[string]any{"spec": map[string]any{"size": int64(3)}})
	objs := []*unstructured.Unstructured{
		widget, // listed first: staging must still put its CRD and namespace first
		configMap(nsName, "settings", nil),
		crd(group, "Widget", "widgets"),
		namespaceObj(nsName),
	}
	t.Cleanup(func() {
		_ = env.Dynamic.Resource(namespaceGVR).Delete(context.Background(), nsName, metav1.DeleteOptions{})
		_ = env.Dynamic.Resource(schema.GroupVersionResource{Group: crdGK.Group, Version: "v1", Resource: "customresourcedefinitions"}).
			Delete(context.Background(), "widgets."+group, metav1.DeleteOptions{})
	})

	res := mustApply(t, c, objs, ApplyOptions{Inventory: ref})
	if s := res.Summary(); s.Created != 4 {
		t.Fatalf("%s, want 4 created", s)
	}
	w, err := env.Dynamic.Resource(schema.GroupVersionResource{Group: group, Version: "v1", Resource: "widgets"}).Namespace(nsName).Get(ctx, "w1", metav1.GetOptions{})
	if err != nil || w.GetLabels()[LabelPartOf] != ref.ID() {
		t.Fatalf("widget: %v %v", err, w)
	}
	if d := cmp.Diff(keysOf(objs, nsName), memberKeys(t, c, ref)); d != "" {
		t.Errorf("members (-want +got):\n%s", d)
	}

	// Namespaces and CRDs are not pruned without confirmation.
	res, err = c.Apply(ctx, []*unstructured.Unstructured{namespaceObj(nsName)}, ApplyOptions{Inventory: ref, Prune: true})
	if err != nil {
		t.Fatal(err)
	}
	s := res.Summary()
	if s.Pruned != 2 || s.PruneSkipped != 1 {
		t.Fatalf("prune: %s, want the ConfigMap and Widget pruned and the CRD skipped", s)
	}
	for _, p := range res.Pruned {
		if p.Ref.Kind == "CustomResourceDefinition" && !strings.Contains(p.Line(), "--prune-confirm") {
			t.Errorf("skipped CRD line: %q", p.Line())
		}
	}
	if got := memberKeys(t, c, ref); len(got) != 2 {
		t.Errorf("members after prune: %v, want the Namespace and the (skipped) CRD", got)
	}
}

func TestApplyDryRunPersistsNothing(t *testing.T) {
	ns := env.Namespace(t)
	c := newClient(t, Options{})
	ref := InventoryRef{App: "dry", Namespace: ns}
	ctx := context.Background()
	objs := []*unstructured.Unstructured{configMap(ns, "a", nil), deployment(ns, "web")}

	res := mustApply(t, c, objs, ApplyOptions{Inventory: ref, DryRun: true})
	if s := res.Summary(); s.Created != 2 || res.InventoryWritten {
		t.Fatalf("dry run on an empty namespace: %s, inventory written %v", s, res.InventoryWritten)
	}
	if !strings.HasSuffix(res.Objects[0].Line(), "(server dry run)") {
		t.Errorf("dry-run line %q", res.Objects[0].Line())
	}
	if _, err := env.Dynamic.Resource(cmGVR).Namespace(ns).Get(ctx, "a", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("dry run created the ConfigMap: %v", err)
	}
	if _, err := env.Dynamic.Resource(secretGVR).Namespace(ns).Get(ctx, ref.Name(), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("dry run wrote the inventory: %v", err)
	}

	mustApply(t, c, objs, ApplyOptions{Inventory: ref, Revision: "r1"})
	snapshot := func() map[string]string {
		out := map[string]string{}
		for _, gvr := range []schema.GroupVersionResource{cmGVR, deployGVR, secretGVR} {
			list, _ := env.Dynamic.Resource(gvr).Namespace(ns).List(ctx, metav1.ListOptions{})
			for _, i := range list.Items {
				out[gvr.Resource+"/"+i.GetName()] = i.GetResourceVersion()
			}
		}
		return out
	}
	before := snapshot()
	changed := []*unstructured.Unstructured{configMap(ns, "a", map[string]any{"key": "new"})} // and web to prune
	res = mustApply(t, c, changed, ApplyOptions{Inventory: ref, DryRun: true, Prune: true, Revision: "r2"})
	if s := res.Summary(); s.Configured != 1 || s.Pruned != 1 {
		t.Fatalf("dry run of a change: %s, want 1 configured and 1 pruned", s)
	}
	if after := snapshot(); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("dry run changed resourceVersions:\n%v\n%v", before, after)
	}
	unchanged := mustApply(t, c, objs, ApplyOptions{Inventory: ref, DryRun: true})
	if s := unchanged.Summary(); s.Unchanged != 2 {
		t.Errorf("dry run of the applied set: %s, want 2 unchanged", s)
	}
}

func TestPruneRefusals(t *testing.T) {
	ns := env.Namespace(t)
	c := newClient(t, Options{})
	ref := InventoryRef{App: "refuse", Namespace: ns}
	ctx := context.Background()
	keep := configMap(ns, "keep", nil)
	keep.SetAnnotations(map[string]string{AnnotationPrune: PruneDisabled})
	objs := []*unstructured.Unstructured{configMap(ns, "a", nil), configMap(ns, "b", nil), keep}
	mustApply(t, c, objs, ApplyOptions{Inventory: ref})

	t.Run("empty set", func(t *testing.T) {
		_, err := c.Apply(ctx, nil, ApplyOptions{Inventory: ref, Prune: true})
		if !errors.Is(err, ErrEmptyPrune) || !strings.Contains(err.Error(), "--prune-allow-empty") {
			t.Fatalf("empty set with prune: %v", err)
		}
		if got := memberKeys(t, c, ref); len(got) != 3 {
			t.Fatalf("members after a refused prune: %v", got)
		}
	})

	t.Run("failed apply", func(t *testing.T) {
		bad := configMap("no-such-namespace-"+strings.ToLower(ns), "x", nil)
		res, err := c.Apply(ctx, []*unstructured.Unstructured{objs[0], bad}, ApplyOptions{Inventory: ref, Prune: true})
		var aerr *ApplyError
		if !errors.As(err, &aerr) || len(aerr.Failed) != 1 || !strings.Contains(err.Error(), "nothing was pruned") {
			t.Fatalf("apply with a failing object: %v", err)
		}
		if len(res.Pruned) != 0 {
			t.Fatalf("pruned after a failed apply: %v", res.Pruned)
		}
		if _, err := env.Dynamic.Resource(cmGVR).Namespace(ns).Get(ctx, "b", metav1.GetOptions{}); err != nil {
			t.Fatalf("b was pruned after a failed apply: %v", err)
		}
	})

	t.Run("opt-out annotation", func(t *testing.T) {
		res := mustApply(t, c, objs[:1], ApplyOptions{Inventory: ref, Prune: true})
		if s := res.Summary(); s.Pruned != 1 || s.PruneSkipped != 1 {
			t.Fatalf("%s, want b pruned and keep skipped", s)
		}
		if _, err := env.Dynamic.Resource(cmGVR).Namespace(ns).Get(ctx, "keep", metav1.GetOptions{}); err != nil {
			t.Fatalf("keep was pruned: %v", err)
		}
	})

	t.Run("allow empty", func(t *testing.T) {
		res, err := c.Apply(ctx, nil, ApplyOptions{Inventory: ref, Prune: true, PruneAllowEmpty: true})
		if err != nil {
			t.Fatal(err)
		}
		if s := res.Summary(); s.Pruned != 1 || s.PruneSkipped != 1 {
			t.Fatalf("%s, want a pruned and keep skipped", s)
		}
	})
}

func TestPrunePersistentVolumeNeedsConfirm(t *testing.T) {
	ns := env.Namespace(t)
	c := newClient(t, Options{})
	ref := InventoryRef{App: "pv", Namespace: ns}
	pvName := "pv-" + strings.ToLower(ns)
	pv := obj("v1", "PersistentVolume", "", pvName, map[string]any{"spec": map[string]any{
		"capacity":    map[string]any{"storage": "1Gi"},
		"accessModes": []any{"ReadWriteOnce"},
		"hostPath":    map[string]any{"path": "/tmp/pv"},
	}})
	t.Cleanup(func() {
		_ = env.Dynamic.Resource(schema.GroupVersionResource{Version: "v1", Resource: "persistentvolumes"}).Delete(context.Background(), pvName, metav1.DeleteOptions{})
	})
	mustApply(t, c, []*unstructured.Unstructured{pv, configMap(ns, "a", nil)}, ApplyOptions{Inventory: ref})
	res := mustApply(t, c, []*unstructured.Unstructured{configMap(ns, "a", nil)}, ApplyOptions{Inventory: ref, Prune: true})
	if s := res.Summary(); s.PruneSkipped != 1 || !strings.Contains(res.Pruned[0].Line(), "PersistentVolumes are pruned only with --prune-confirm") {
		t.Fatalf("%s %v", s, res.Pruned)
	}
	res = mustApply(t, c, []*unstructured.Unstructured{configMap(ns, "a", nil)}, ApplyOptions{Inventory: ref, Prune: true, PruneConfirm: true})
	if s := res.Summary(); s.Pruned != 1 {
		t.Fatalf("with confirm: %s", s)
	}
	if got := memberKeys(t, c, ref); len(got) != 1 {
		t.Errorf("members %v", got)
	}
}

func TestApplyWait(t *testing.T) {
	ns := env.Namespace(t)
	c := newClient(t, Options{})
	ctx := context.Background()
	svc := obj("v1", "Service", ns, "web", map[string]any{"spec": map[string]any{
		"type": "ClusterIP", "ports": []any{map[string]any{"port": int64(80)}}, "selector": map[string]any{"app": "web"},
	}})
	objs := []*unstructured.Unstructured{configMap(ns, "a", nil), svc, deployment(ns, "web")}

	t.Run("ready", func(t *testing.T) {
		ref := InventoryRef{App: "wait", Namespace: ns}
		// envtest runs no controllers: play the deployment controller.
		done := make(chan error, 1)
		go func() { done <- markAvailable(ctx, env.Dynamic, ns, "web") }()
		var current []string
		var mu sync.Mutex
		res, err := c.Apply(ctx, objs, ApplyOptions{Inventory: ref, Wait: &WaitOptions{
			Timeout: 30 * time.Second, Interval: 100 * time.Millisecond,
			Progress: func(s ObjectStatus) { mu.Lock(); current = append(current, s.String()); mu.Unlock() },
		}})
		if err != nil {
			t.Fatalf("apply --wait: %v", err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if len(res.Wait) != 3 {
			t.Fatalf("wait statuses: %v", res.Wait)
		}
		for _, s := range res.Wait {
			if s.Status != "Current" {
				t.Errorf("%s", s)
			}
		}
	})

	t.Run("timeout", func(t *testing.T) {
		ref := InventoryRef{App: "wait-timeout", Namespace: ns}
		stuck := []*unstructured.Unstructured{configMap(ns, "b", nil), deployment(ns, "stuck")}
		res, err := c.Apply(ctx, stuck, ApplyOptions{Inventory: ref, Wait: &WaitOptions{Timeout: 2 * time.Second, Interval: 200 * time.Millisecond}})
		var werr *WaitError
		if !errors.As(err, &werr) || !werr.TimedOut || len(werr.Pending) != 1 {
			t.Fatalf("want a timeout naming one object, got %v", err)
		}
		for _, s := range []string{"timed out after 2s", "deployment.apps/stuck", "InProgress"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("wait error lacks %q:\n%v", s, err)
			}
		}
		if !res.InventoryWritten {
			t.Error("the inventory was not written before waiting")
		}
	})
}

// markAvailable waits for the Deployment and writes the status its
// controller would once its pods are ready.
func markAvailable(ctx context.Context, dyn dynamic.Interface, ns, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	ri := dyn.Resource(deployGVR).Namespace(ns)
	for {
		d, err := ri.Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			d.Object["status"] = map[string]any{
				"observedGeneration": d.GetGeneration(),
				"replicas":           int64(1), "updatedReplicas": int64(1), "readyReplicas": int64(1), "availableReplicas": int64(1),
				"conditions": []any{
					map[string]any{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
					map[string]any{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"},
				},
			}
			_, err = ri.UpdateStatus(ctx, d, metav1.UpdateOptions{})
			return err
		}
		if !apierrors.IsNotFound(err) {
			return err
		}
		if err := clock.Sleep(ctx, 50*time.Millisecond); err != nil {
			return fmt.Errorf("deployment %s never appeared", name)
		}
	}
}

// TestApplyAPIServerStopsMidApply stops the kube-apiserver of a control plane
// of its own while an apply is half done, starts it again on the same etcd
// and checks that the inventory holds the old objects and those applied, that
// nothing was pruned, and that running the apply again converges.
func TestApplyAPIServerStopsMidApply(t *testing.T) {
	env.Require(t)
	var te *envtest.Environment
	// A second control plane on a busy machine (go test runs packages in
	// parallel, each with its own) can lose a race for its ports; envtest's
	// own retries are quick, so try twice more, and say what the API server
	// printed when it still fails.
	for attempt := 1; ; attempt++ {
		var out bytes.Buffer
		te = &envtest.Environment{
			BinaryAssetsDirectory:    testenv.AssetsDir(),
			ControlPlaneStartTimeout: 60 * time.Second,
			ControlPlaneStopTimeout:  30 * time.Second,
		}
		api := te.ControlPlane.GetAPIServer()
		api.Out, api.Err = &out, &out
		_, err := te.Start()
		if err == nil {
			break
		}
		_ = te.Stop()
		if attempt == 3 {
			tail := out.String()
			if len(tail) > 4000 {
				tail = tail[len(tail)-4000:]
			}
			t.Fatalf("starting a second control plane: %v\nkube-apiserver said:\n%s", err, tail)
		}
		t.Logf("starting a second control plane (attempt %d): %v", attempt, err)
		time.Sleep(2 * time.Second)
	}
	t.Cleanup(func() { _ = te.Stop() })
	ctx := context.Background()
	clientOf := func() (*Client, dynamic.Interface) {
		t.Helper()
		user, err := te.ControlPlane.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
		if err != nil {
			t.Fatalf("adding a user: %v", err)
		}
		kubeconfig, err := user.KubeConfig()
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), "kubeconfig")
		if err := os.WriteFile(file, kubeconfig, 0o600); err != nil {
			t.Fatal(err)
		}
		flags := genericclioptions.NewConfigFlags(true)
		cacheDir := t.TempDir()
		flags.KubeConfig, flags.CacheDir = &file, &cacheDir
		c, err := New(flags, Options{Concurrency: 4})
		if err != nil {
			t.Fatal(err)
		}
		return c, c.dynamic
	}
	c, _ := clientOf()
	ns := "outage"
	ref := InventoryRef{App: "outage", Namespace: ns}

	var old []*unstructured.Unstructured
	for i := range 20 {
		old = append(old, configMap(ns, fmt.Sprintf("old-%02d", i), nil))
	}
	mustApply(t, c, append([]*unstructured.Unstructured{namespaceObj(ns)}, old...), ApplyOptions{Inventory: ref})

	// The new set keeps half the old objects and adds 400 new ones.
	next := append([]*unstructured.Unstructured{namespaceObj(ns)}, old[:10]...)
	for i := range 200 {
		next = append(next, configMap(ns, fmt.Sprintf("new-%03d", i), nil), deployment(ns, fmt.Sprintf("new-%03d", i)))
	}
	const stopAfter = 100
	var (
		mu      sync.Mutex
		applied []string
		trigger = make(chan struct{})
		stopped = make(chan struct{})
	)
	go func() {
		<-trigger
		if err := te.ControlPlane.APIServer.Stop(); err != nil {
			t.Errorf("stopping kube-apiserver: %v", err)
		}
		close(stopped)
	}()
	res, err := c.Apply(ctx, next, ApplyOptions{Inventory: ref, Prune: true, Progress: func(r ObjectResult) {
		mu.Lock()
		applied = append(applied, r.Ref.Key())
		n := len(applied)
		mu.Unlock()
		if n == stopAfter {
			close(trigger)
		}
		if n >= stopAfter {
			<-stopped // hold every worker until the API server is gone
		}
	}})
	var aerr *ApplyError
	if !errors.As(err, &aerr) {
		t.Fatalf("apply through an outage: %v, want an *ApplyError", err)
	}
	if len(aerr.NotAttempted) == 0 || aerr.Applied != len(applied) || len(res.Pruned) != 0 {
		t.Fatalf("applied %d (progress %d), failed %d, not attempted %d, pruned %d",
			aerr.Applied, len(applied), len(aerr.Failed), len(aerr.NotAttempted), len(res.Pruned))
	}
	for _, s := range []string{"did not answer", "not attempted", "nothing was pruned"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("outage error lacks %q:\n%.2000s", s, err)
		}
	}
	t.Logf("outage: %d applied, %d failed, %d not attempted", aerr.Applied, len(aerr.Failed), len(aerr.NotAttempted))

	if err := te.ControlPlane.APIServer.Start(); err != nil {
		t.Fatalf("restarting kube-apiserver: %v", err)
	}
	c, dyn := clientOf()

	// The inventory is the old set and what applied.
	want := map[string]bool{}
	for _, k := range keysOf(old, ns) {
		want[k] = true
	}
	for _, k := range applied {
		if !strings.Contains(k, "/Namespace/") {
			want[k] = true
		}
	}
	got := memberKeys(t, c, ref)
	var gotNoNS []string
	for _, k := range got {
		if !strings.Contains(k, "/Namespace/") {
			gotNoNS = append(gotNoNS, k)
		}
	}
	if len(gotNoNS) != len(want) {
		t.Fatalf("inventory after the outage: %d members, want old ∪ applied = %d", len(gotNoNS), len(want))
	}
	for _, k := range gotNoNS {
		if !want[k] {
			t.Errorf("unexpected member %s", k)
		}
	}
	parent, err := dyn.Resource(secretGVR).Namespace(ns).Get(ctx, ref.Name(), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if gk := parent.GetAnnotations()[AnnotationContainsGroupKinds]; gk != "ConfigMap,Deployment.apps,Namespace" {
		t.Errorf("contains-group-kinds after the outage = %q, want old ∪ new", gk)
	}

	// A re-run converges: everything applied, the dropped old objects pruned.
	res = mustApply(t, c, next, ApplyOptions{Inventory: ref, Prune: true})
	if s := res.Summary(); s.Pruned != 10 || s.Failed != 0 || s.Created+s.Configured+s.Unchanged != len(next) {
		t.Fatalf("re-run: %s", s)
	}
	if d := cmp.Diff(keysOf(next, ns), memberKeys(t, c, ref)); d != "" {
		t.Fatalf("inventory after the re-run (-want +got):\n%s", d)
	}
	res = mustApply(t, c, next, ApplyOptions{Inventory: ref, Prune: true})
	if s := res.Summary(); s.Unchanged != len(next) {
		t.Errorf("third run: %s, want all unchanged", s)
	}
}
