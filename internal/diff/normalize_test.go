package diff

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestPairUnchanged: the shortcut for unchanged objects agrees with Pair
// and masks like it.
func TestPairUnchanged(t *testing.T) {
	live := obj(t, "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: ns, resourceVersion: '5', uid: u1, managedFields: [{manager: a}]}\ndata: {k: c2VjcmV0}\nstatus: {x: 1}\n")
	merged := live.DeepCopy()
	merged.SetResourceVersion("6")
	merged.SetManagedFields([]metav1.ManagedFieldsEntry{{Manager: "b"}})
	ch, ok := PairUnchanged(live, merged, Options{})
	if !ok || ch.Action != Unchanged {
		t.Fatalf("equal objects: ok %v, %q", ok, ch.Action)
	}
	pair, _ := Pair(live, merged, Options{})
	if pair.Action != Unchanged {
		t.Errorf("Pair disagrees: %q", pair.Action)
	}
	if d := cmp.Diff(pair, ch); d != "" {
		t.Errorf("the fast path's change differs from Pair's (-Pair +PairUnchanged):\n%s", d)
	}
	if v, _, _ := unstructured.NestedString(ch.After.Object, "data", "k"); v != Mask {
		t.Errorf("the fast path must mask Secrets, got data.k %q", v)
	}
	if ch.Before.GetResourceVersion() != "" || ch.Before.Object["status"] != nil {
		t.Errorf("the fast path must normalize like Pair: %v", ch.Before.Object)
	}
	if _, ok := PairUnchanged(live, merged, Options{ShowManagedFields: true}); ok {
		t.Errorf("with managed fields shown, different managers are a change")
	}
	changed := live.DeepCopy()
	changed.Object["data"] = map[string]any{"k": "b3RoZXI="}
	if _, ok := PairUnchanged(live, changed, Options{}); ok {
		t.Errorf("different data taken as unchanged")
	}
	extra := live.DeepCopy()
	extra.SetLabels(map[string]string{"a": "b"})
	if _, ok := PairUnchanged(live, extra, Options{}); ok {
		t.Errorf("a new label taken as unchanged")
	}
}

// TestDropServerFields: what an apply request must not carry goes, the
// rest stays.
func TestDropServerFields(t *testing.T) {
	got := obj(t, `apiVersion: v1
kind: ConfigMap
metadata:
  name: x
  namespace: ns
  labels: {a: b}
  resourceVersion: "5"
  uid: u1
  generation: 2
  creationTimestamp: "2025-01-01T00:00:00Z"
  selfLink: /api/v1/namespaces/ns/configmaps/x
  managedFields: [{manager: a}]
data: {k: v}
status: {x: 1}
`)
	DropServerFields(got)
	want := obj(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: ns, labels: {a: b}}\ndata: {k: v}\n")
	if d := cmp.Diff(want.Object, got.Object); d != "" {
		t.Errorf("DropServerFields (-want +got):\n%s", d)
	}
}
