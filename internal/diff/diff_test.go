package diff

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// obj parses one YAML manifest.
func obj(t *testing.T, manifest string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(manifest), &u.Object); err != nil {
		t.Fatalf("parse manifest: %v", err)
	}
	return u
}

// cm is a valid ConfigMap; data is one key=value pair.
func cm(t *testing.T, ns, name, value string) *unstructured.Unstructured {
	t.Helper()
	u := obj(t, "apiVersion: v1\nkind: ConfigMap\n")
	u.SetName(name)
	u.SetNamespace(ns)
	u.Object["data"] = map[string]any{"key": value}
	return u
}

func deployment(t *testing.T, apiVersion string, replicas int, image string) *unstructured.Unstructured {
	t.Helper()
	u := obj(t, `
apiVersion: `+apiVersion+`
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels: {app: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx
        ports: [{containerPort: 80}]
`)
	if err := unstructured.SetNestedField(u.Object, int64(replicas), "spec", "replicas"); err != nil {
		t.Fatal(err)
	}
	cs, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
	cs[0].(map[string]any)["image"] = image
	if err := unstructured.SetNestedSlice(u.Object, cs, "spec", "template", "spec", "containers"); err != nil {
		t.Fatal(err)
	}
	return u
}

func list(objs ...*unstructured.Unstructured) []*unstructured.Unstructured { return objs }

func TestRefString(t *testing.T) {
	tests := []struct {
		ref  Ref
		want string
	}{
		{Ref{Group: "apps", Version: "v1", Kind: "Deployment", Namespace: "ns", Name: "web"}, "apps/Deployment/ns/web"},
		{Ref{Version: "v1", Kind: "ConfigMap", Namespace: "ns", Name: "cfg"}, "ConfigMap/ns/cfg"},
		{Ref{Version: "v1", Kind: "Namespace", Name: "ns"}, "Namespace/ns"},
		{Ref{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRole", Name: "view"}, "rbac.authorization.k8s.io/ClusterRole/view"},
	}
	for _, tt := range tests {
		if got := tt.ref.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.ref, got, tt.want)
		}
	}
}

func TestObjects(t *testing.T) {
	type result struct {
		Ref    string
		Action Action
	}
	tests := []struct {
		name          string
		before, after []*unstructured.Unstructured
		want          []result
	}{
		{
			name: "empty",
		},
		{
			name:  "created",
			after: list(cm(t, "a", "x", "1")),
			want:  []result{{"ConfigMap/a/x", Created}},
		},
		{
			name:   "deleted",
			before: list(cm(t, "a", "x", "1")),
			want:   []result{{"ConfigMap/a/x", Deleted}},
		},
		{
			name:   "unchanged",
			before: list(cm(t, "a", "x", "1")),
			after:  list(cm(t, "a", "x", "1")),
			want:   []result{{"ConfigMap/a/x", Unchanged}},
		},
		{
			name:   "configured",
			before: list(cm(t, "a", "x", "1")),
			after:  list(cm(t, "a", "x", "2")),
			want:   []result{{"ConfigMap/a/x", Configured}},
		},
		{
			name:   "matched by group not version",
			before: list(deployment(t, "apps/v1beta1", 1, "nginx")),
			after:  list(deployment(t, "apps/v1", 1, "nginx")),
			// apiVersion itself differs, so the object is configured,
			// not deleted and created.
			want: []result{{"apps/Deployment/shop/web", Configured}},
		},
		{
			name:   "different groups are different objects",
			before: list(deployment(t, "extensions/v1beta1", 1, "nginx")),
			after:  list(deployment(t, "apps/v1", 1, "nginx")),
			want: []result{
				{"apps/Deployment/shop/web", Created},
				{"extensions/Deployment/shop/web", Deleted},
			},
		},
		{
			name:   "namespaces keep objects apart",
			before: list(cm(t, "a", "x", "1"), cm(t, "b", "x", "1")),
			after:  list(cm(t, "b", "x", "1"), cm(t, "c", "x", "1")),
			want: []result{
				{"ConfigMap/a/x", Deleted},
				{"ConfigMap/b/x", Unchanged},
				{"ConfigMap/c/x", Created},
			},
		},
		{
			name:   "cluster-scoped",
			before: list(obj(t, "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n")),
			after:  list(obj(t, "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {team: a}}\n")),
			want:   []result{{"Namespace/shop", Configured}},
		},
		{
			name: "sorted by group, kind, namespace, name",
			after: list(
				cm(t, "b", "y", "1"),
				deployment(t, "apps/v1", 1, "nginx"),
				cm(t, "b", "x", "1"),
				obj(t, "apiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n"),
				cm(t, "a", "z", "1"),
			),
			want: []result{
				{"ConfigMap/a/z", Created},
				{"ConfigMap/b/x", Created},
				{"ConfigMap/b/y", Created},
				{"Namespace/b", Created},
				{"apps/Deployment/shop/web", Created},
			},
		},
		{
			name: "server-owned fields are ignored",
			before: list(obj(t, `
apiVersion: v1
kind: ConfigMap
metadata:
  name: x
  namespace: a
  uid: 0b0e
  resourceVersion: "42"
  generation: 3
  creationTimestamp: "2024-01-01T00:00:00Z"
  managedFields: [{manager: kubectl, operation: Apply}]
  annotations: {}
data: {key: "1"}
status: {phase: whatever}
`)),
			after: list(cm(t, "a", "x", "1")),
			want:  []result{{"ConfigMap/a/x", Unchanged}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs, err := Objects(tt.before, tt.after, Options{})
			if err != nil {
				t.Fatal(err)
			}
			var got []result
			for _, c := range cs.Changes {
				got = append(got, result{c.Ref.String(), c.Action})
				if (c.Diff == "") != (c.Action == Unchanged) {
					t.Errorf("%s %s: diff %q", c.Ref, c.Action, c.Diff)
				}
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("changes (-want +got):\n%s", d)
			}
		})
	}
}

func TestObjectsDoesNotModifyInputs(t *testing.T) {
	before := deployment(t, "apps/v1", 1, "nginx")
	before.SetResourceVersion("7")
	after := deployment(t, "apps/v1", 2, "nginx")
	wantB, wantA := before.DeepCopy(), after.DeepCopy()
	if _, err := Objects(list(before), list(after), Options{}); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(wantB.Object, before.Object) + cmp.Diff(wantA.Object, after.Object); d != "" {
		t.Errorf("Objects modified its inputs (-want +got):\n%s", d)
	}
}

func TestObjectsErrors(t *testing.T) {
	tests := []struct {
		name          string
		before, after []*unstructured.Unstructured
		want          []string
	}{
		{
			name:   "duplicate in before",
			before: list(cm(t, "a", "x", "1"), cm(t, "a", "x", "2")),
			want:   []string{"duplicate object ConfigMap/a/x in before"},
		},
		{
			name:  "duplicate across versions in after",
			after: list(deployment(t, "apps/v1", 1, "a"), deployment(t, "apps/v1beta1", 1, "b")),
			want:  []string{"duplicate object apps/Deployment/shop/web in after"},
		},
		{
			name:   "all problems reported",
			before: list(cm(t, "a", "x", "1"), cm(t, "a", "x", "1")),
			after:  list(nil, obj(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {generateName: x-}\n")),
			want: []string{
				"duplicate object ConfigMap/a/x in before",
				"after object 0 is nil",
				"after object 1 (ConfigMap) has no kind or name",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Objects(tt.before, tt.after, Options{})
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestPairDeployment(t *testing.T) {
	c, err := Pair(deployment(t, "apps/v1", 1, "nginx:1.27"), deployment(t, "apps/v1", 3, "nginx:1.28"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Action != Configured {
		t.Fatalf("action = %s, want configured", c.Action)
	}
	for _, line := range []string{
		"--- before/apps/Deployment/shop/web",
		"+++ after/apps/Deployment/shop/web",
		"-  replicas: 1",
		"+  replicas: 3",
		"-      - image: nginx:1.27",
		"+      - image: nginx:1.28",
	} {
		if !hasLine(c.Diff, line) {
			t.Errorf("diff lacks line %q:\n%s", line, c.Diff)
		}
	}
}

func TestPairContext(t *testing.T) {
	b, a := deployment(t, "apps/v1", 1, "nginx"), deployment(t, "apps/v1", 2, "nginx")
	count := func(opts Options) int {
		c, err := Pair(b, a, opts)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Count(c.Diff, "\n ")
	}
	if n := count(Options{Context: -1}); n != 0 {
		t.Errorf("context -1: %d context lines, want 0", n)
	}
	if n := count(Options{Context: 1}); n != 2 {
		t.Errorf("context 1: %d context lines, want 2", n)
	}
	if n := count(Options{}); n != 2*DefaultContext {
		t.Errorf("default context: %d context lines, want %d", n, 2*DefaultContext)
	}
}

func TestPairCreatedDeleted(t *testing.T) {
	c, err := Pair(nil, cm(t, "a", "x", "1"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Action != Created || c.Before != nil || c.After == nil || !hasLine(c.Diff, "--- /dev/null") || !hasLine(c.Diff, "+  key: \"1\"") {
		t.Errorf("created: %+v", c)
	}
	c, err = Pair(cm(t, "a", "x", "1"), nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Action != Deleted || c.After != nil || !hasLine(c.Diff, "+++ /dev/null") || !hasLine(c.Diff, "-  key: \"1\"") {
		t.Errorf("deleted: %+v", c)
	}
	if _, err := Pair(nil, nil, Options{}); err == nil {
		t.Error("Pair(nil, nil): no error")
	}
}

func TestPairManagedFields(t *testing.T) {
	b := cm(t, "a", "x", "1")
	a := cm(t, "a", "x", "1")
	a.SetManagedFields(nil)
	a.Object["metadata"].(map[string]any)["managedFields"] = []any{map[string]any{"manager": "gitops", "operation": "Apply"}}
	c, err := Pair(b, a, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Action != Unchanged {
		t.Errorf("managed fields hidden: action %s, want unchanged", c.Action)
	}
	c, err = Pair(b, a, Options{ShowManagedFields: true})
	if err != nil {
		t.Fatal(err)
	}
	if c.Action != Configured || !hasLine(c.Diff, "+  - manager: gitops") {
		t.Errorf("managed fields shown: action %s, diff:\n%s", c.Action, c.Diff)
	}
}

func TestSummary(t *testing.T) {
	cs, err := Objects(
		list(cm(t, "a", "del", "1"), cm(t, "a", "same", "1"), cm(t, "a", "mod", "1")),
		list(cm(t, "a", "new", "1"), cm(t, "a", "same", "1"), cm(t, "a", "mod", "2")),
		Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(Summary{Created: 1, Configured: 1, Deleted: 1, Unchanged: 1}, cs.Summary()); d != "" {
		t.Errorf("Summary() (-want +got):\n%s", d)
	}
	if !cs.HasChanges() {
		t.Error("HasChanges() = false")
	}
	cs, _ = Objects(list(cm(t, "a", "same", "1")), list(cm(t, "a", "same", "1")), Options{})
	if cs.HasChanges() {
		t.Error("HasChanges() = true for unchanged objects")
	}
}

func hasLine(text, line string) bool {
	for l := range strings.Lines(text) {
		if strings.TrimSuffix(l, "\n") == line {
			return true
		}
	}
	return false
}

// TestPairHunkLineNumbers guards the hunk headers of a diff with several hunks
// where an earlier hunk adds lines: the later hunk's "+" start must move too.
func TestPairHunkLineNumbers(t *testing.T) {
	before := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "numbers", "namespace": "default"},
		"data":     map[string]any{},
	}}
	data := before.Object["data"].(map[string]any)
	for i := 10; i < 40; i++ {
		data[fmt.Sprintf("k%d", i)] = fmt.Sprintf("v%d", i)
	}
	after := before.DeepCopy()
	adata := after.Object["data"].(map[string]any)
	adata["k12"] = "changed"
	adata["k15a"], adata["k15b"] = "new", "new"
	adata["k35"] = "changed"

	c, err := Pair(before, after, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var headers []string
	for _, line := range strings.Split(c.Diff, "\n") {
		if strings.HasPrefix(line, "@@") {
			headers = append(headers, line)
		}
	}
	// data is line 2 of the YAML, k12 line 5 and k35 line 28; the first hunk adds two lines.
	want := []string{"@@ -2,10 +2,12 @@", "@@ -25,7 +27,7 @@"}
	if strings.Join(headers, "|") != strings.Join(want, "|") {
		t.Errorf("hunk headers = %q, want %q\n%s", headers, want, c.Diff)
	}
}

// TestObjectsTotalWork: many objects, each within MaxWork, cannot add up
// to a slow diff: once MaxTotalWork is spent the rest say that they differ
// without lines, while a small change still shows its hunk.
func TestObjectsTotalWork(t *testing.T) {
	lines := func(prefix string) string {
		var b strings.Builder
		for i := range 2000 {
			fmt.Fprintf(&b, "%s-%d\n", prefix, i)
		}
		return b.String()
	}
	var before, after []*unstructured.Unstructured
	for i := range 10 {
		name := fmt.Sprintf("big-%02d", i)
		before = append(before, cm(t, "ns", name, lines("a")))
		after = append(after, cm(t, "ns", name, lines("b")))
	}
	before = append(before, cm(t, "ns", "small", "one"))
	after = append(after, cm(t, "ns", "small", "two"))

	for _, tt := range []struct {
		name              string
		maxWork, maxTotal int
		wantTooLarge      bool
	}{
		{"unbounded", 1 << 40, 1 << 40, false},
		{"total budget", 1 << 40, 30_000_000, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cs, err := Objects(before, after, Options{MaxWork: tt.maxWork, MaxTotalWork: tt.maxTotal})
			if err != nil {
				t.Fatal(err)
			}
			if len(cs.Changes) != 11 {
				t.Fatalf("%d changes, want 11", len(cs.Changes))
			}
			tooLarge := 0
			for _, c := range cs.Changes {
				if strings.Contains(c.Diff, "values differ (too large to show") {
					tooLarge++
				}
				if c.Ref.Name == "small" && !strings.Contains(c.Diff, "-  key: one\n+  key: two\n") {
					t.Errorf("the small change shows no hunk:\n%s", c.Diff)
				}
			}
			if got := tooLarge > 0; got != tt.wantTooLarge {
				t.Errorf("%d of 10 large objects too large to show; want some: %v", tooLarge, tt.wantTooLarge)
			}
		})
	}
}
