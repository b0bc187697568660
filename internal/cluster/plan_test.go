package cluster

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-gitops/kubectl-gitops/internal/diff"
)

// The helpers of this file start with "plan" so they cannot collide with
// the apply tests' helpers in the same package.

// planObj decodes one YAML object, with {{ns}} replaced by ns.
func planObj(t *testing.T, ns, doc string) *unstructured.Unstructured {
	t.Helper()
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(strings.ReplaceAll(doc, "{{ns}}", ns)), &obj.Object); err != nil {
		t.Fatalf("bad test object: %v\n%s", err, doc)
	}
	return obj
}

func planCM(ns, name, value string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: %s, namespace: %s}\ndata: {key: %q}\n", name, ns, value)
}

// planApply server-side applies objs as manager, labelled part of the
// inventory id when id is set, as a previous apply would have left them.
func planApply(t *testing.T, c *Client, manager, id string, objs ...*unstructured.Unstructured) {
	t.Helper()
	ctx := context.Background()
	for _, o := range objs {
		obj := o.DeepCopy()
		if id != "" {
			labels := obj.GetLabels()
			if labels == nil {
				labels = map[string]string{}
			}
			labels[LabelPartOf] = id
			obj.SetLabels(labels)
		}
		m, err := c.mapping(obj.GroupVersionKind())
		if err != nil {
			t.Fatalf("mapping %s: %v", obj.GroupVersionKind(), err)
		}
		data, err := obj.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		force := true
		if _, err := c.resourceFor(m, obj.GetNamespace()).Patch(ctx, obj.GetName(), types.ApplyPatchType, data,
			metav1.PatchOptions{FieldManager: manager, Force: &force}); err != nil {
			t.Fatalf("applying %s: %v", diff.RefOf(obj), err)
		}
	}
}

// planInventory writes an inventory parent by hand, as apply leaves it.
func planInventory(t *testing.T, ref InventoryRef, gks ...schema.GroupKind) {
	t.Helper()
	s := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Secret"}}
	s.SetName(ref.Name())
	s.SetNamespace(ref.Namespace)
	s.SetLabels(map[string]string{LabelApplySetID: ref.ID()})
	s.SetAnnotations(map[string]string{
		AnnotationTooling:            Tooling,
		AnnotationContainsGroupKinds: FormatGroupKinds(gks),
	})
	if _, err := env.Dynamic.Resource(secretGVR).Namespace(ref.Namespace).Create(context.Background(), s, metav1.CreateOptions{}); err != nil {
		t.Fatalf("writing the inventory: %v", err)
	}
}

// planChanges indexes a ChangeSet by the object's name.
func planChanges(t *testing.T, cs *diff.ChangeSet) map[string]diff.Change {
	t.Helper()
	out := map[string]diff.Change{}
	for _, c := range cs.Changes {
		if _, dup := out[c.Ref.Name]; dup {
			t.Fatalf("object %s appears twice", c.Ref)
		}
		out[c.Ref.Name] = c
	}
	return out
}

func planLive(t *testing.T, c *Client, obj *unstructured.Unstructured) *unstructured.Unstructured {
	t.Helper()
	m, err := c.mapping(obj.GroupVersionKind())
	if err != nil {
		t.Fatal(err)
	}
	live, err := c.resourceFor(m, obj.GetNamespace()).Get(context.Background(), obj.GetName(), metav1.GetOptions{})
	if err != nil {
		t.Fatalf("reading %s: %v", diff.RefOf(obj), err)
	}
	return live
}

// TestDiffActions covers the four actions against an app applied before:
// unchanged, configured, created, and deleted (prune preview), and checks
// that the dry-run persisted nothing (AP-11).
func TestDiffActions(t *testing.T) {
	ns := env.Namespace(t)
	c := newClient(t, Options{})
	ref := InventoryRef{App: "shop", Namespace: ns}
	same := planObj(t, ns, planCM("{{ns}}", "same", "one"))
	changed := planObj(t, ns, planCM("{{ns}}", "changed", "old"))
	gone := planObj(t, ns, planCM("{{ns}}", "gone", "x"))
	web := planObj(t, ns, `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: "{{ns}}"}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx:1.27}]}
`)
	planApply(t, c, FieldManager, ref.ID(), same, changed, gone, web)
	planInventory(t, ref, schema.GroupKind{Kind: "ConfigMap"}, schema.GroupKind{Group: "apps", Kind: "Deployment"})
	before := planLive(t, c, changed).GetResourceVersion()

	// Rendered objects carry no namespace for web: the app's namespace
	// applies, as in apply.
	webRendered := web.DeepCopy()
	webRendered.SetNamespace("")
	rendered := []*unstructured.Unstructured{
		same,
		planObj(t, ns, planCM("{{ns}}", "changed", "new")),
		planObj(t, ns, planCM("{{ns}}", "fresh", "hello")),
		webRendered,
	}
	cs, err := c.Diff(context.Background(), rendered, ref, diff.Options{})
	if err != nil {
		t.Fatalf("Diff: %v", err)
	}
	got := planChanges(t, cs)
	want := map[string]diff.Action{"same": diff.Unchanged, "changed": diff.Configured, "fresh": diff.Created, "gone": diff.Deleted, "web": diff.Unchanged}
	for name, action := range want {
		if got[name].Action != action {
			t.Errorf("%s: action %q, want %q\n%s", name, got[name].Action, action, got[name].Diff)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d changes, want %d: %v", len(got), len(want), got)
	}
	if d := got["changed"].Diff; !strings.Contains(d, "-  key: old") || !strings.Contains(d, "+  key: new") {
		t.Errorf("configured diff should show the value change:\n%s", d)
	}
	if d := got["fresh"].Diff; !strings.Contains(d, "+  key: hello") || !strings.Contains(d, LabelPartOf) {
		t.Errorf("created diff should show the object, labelled with the inventory:\n%s", d)
	}
	if got["gone"].Before == nil || got["gone"].After != nil {
		t.Errorf("deleted entry should have only a before side")
	}
	// Order: sorted by group, kind, namespace, name.
	var order []string
	for _, ch := range cs.Changes {
		order = append(order, ch.Ref.Name)
	}
	if strings.Join(order, ",") != "changed,fresh,gone,same,web" {
		t.Errorf("order %v", order)
	}

	// Nothing was persisted.
	if rv := planLive(t, c, changed).GetResourceVersion(); rv != before {
		t.Errorf("resourceVersion of changed moved from %s to %s: the dry-run persisted", before, rv)
	}
	if v, _, _ := unstructured.NestedString(planLive(t, c, changed).Object, "data", "key"); v != "old" {
		t.Errorf("changed holds %q after the diff, want old", v)
	}
	m, _ := c.mapping(same.GroupVersionKind())
	if _, err := c.resourceFor(m, ns).Get(context.Background(), "fresh", metav1.GetOptions{}); err == nil {
		t.Errorf("fresh exists after the diff: the dry-run persisted")
	}
}

// TestDiffWithoutInventory diffs objects of a path (no app): everything
// applied by kubectl-gitops is compared, server defaults show on both sides
// so an applied tree shows no change, and nothing is pruned.
func TestDiffWithoutInventory(t *testing.T) {
	ns := env.Namespace(t)
	c := newClient(t, Options{})
	var objs []*unstructured.Unstructured
	for i := range 6 { // above the LIST threshold
		objs = append(objs, planObj(t, ns, planCM("{{ns}}", fmt.Sprintf("cm-%d", i), "v")))
	}
	svc := planObj(t, ns, `apiVersion: v1
kind: Service
metadata: {name: web, namespace: "{{ns}}"}
spec: {ports: [{port: 80}], selector: {app: web}}
`)
	objs = append(objs, svc)
	planApply(t, c, FieldManager, "", objs...)

	cs, err := c.Diff(context.Background(), objs, InventoryRef{}, diff.Options{})
	if err != nil {
		t.Fatalf("Diff: %v", err)
	}
	if cs.HasChanges() {
		t.Errorf("an applied tree shows changes: %+v", cs.Summary())
		for _, ch := range cs.Changes {
			if ch.Action != diff.Unchanged {
				t.Logf("%s %s\n%s", ch.Action, ch.Ref, ch.Diff)
			}
		}
	}
	if s := cs.Summary(); s.Unchanged != 7 {
		t.Errorf("summary %+v, want 7 unchanged", s)
	}

	objs[0] = planObj(t, ns, planCM("{{ns}}", "cm-0", "w"))
	cs, err = c.Diff(context.Background(), objs, InventoryRef{}, diff.Options{})
	if err != nil {
		t.Fatalf("Diff: %v", err)
	}
	if s := cs.Summary(); s.Configured != 1 || s.Unchanged != 6 {
		t.Errorf("summary %+v, want 1 configured", s)
	}
}

// TestDiffSecretMasked: a changed Secret shows as changed, its values never.
func TestDiffSecretMasked(t *testing.T) {
	const old, new = "CANARY-old-5d1e", "CANARY-new-93ab"
	ns := env.Namespace(t)
	c := newClient(t, Options{})
	ref := InventoryRef{App: "creds", Namespace: ns}
	secret := func(v string) *unstructured.Unstructured {
		return planObj(t, ns, fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata: {name: creds, namespace: {{ns}}}\ndata: {password: %s, user: %s}\n",
			base64.StdEncoding.EncodeToString([]byte(v)), base64.StdEncoding.EncodeToString([]byte("admin-user"))))
	}
	planApply(t, c, FieldManager, ref.ID(), secret(old))
	planInventory(t, ref, schema.GroupKind{Kind: "Secret"})

	rendered := secret(new)
	rendered.Object["stringData"] = map[string]any{"token": "CANARY-string-77"}
	cs, err := c.Diff(context.Background(), []*unstructured.Unstructured{rendered}, ref, diff.Options{})
	if err != nil {
		t.Fatalf("Diff: %v", err)
	}
	ch := planChanges(t, cs)["creds"]
	if ch.Action != diff.Configured {
		t.Fatalf("action %q, want configured", ch.Action)
	}
	for _, want := range []string{"password: '*** (before)'", "password: '*** (after)'", "token: '***'"} {
		if !strings.Contains(ch.Diff, want) {
			t.Errorf("diff lacks %q:\n%s", want, ch.Diff)
		}
	}
	planNoLeak(t, cs, err, "CANARY", base64.StdEncoding.EncodeToString([]byte(old)), base64.StdEncoding.EncodeToString([]byte(new)), "admin-user")
}

// planNoLeak fails when any part of a diff's outcome holds one of leaks.
func planNoLeak(t *testing.T, cs *diff.ChangeSet, err error, leaks ...string) {
	t.Helper()
	var all strings.Builder
	for _, ch := range cs.Changes {
		all.WriteString(ch.Diff + ch.Message)
		for _, o := range []*unstructured.Unstructured{ch.Before, ch.After} {
			if o != nil {
				b, _ := o.MarshalJSON()
				all.Write(b)
			}
		}
	}
	if err != nil {
		all.WriteString(err.Error())
	}
	for _, leak := range leaks {
		if strings.Contains(all.String(), leak) {
			t.Errorf("the diff leaks %q:\n%s", leak, all.String())
		}
	}
}

// TestDiffConflict: a field another manager took over is reported as a
// conflict naming the field and the manager, not forced; the other objects
// are still compared.
func TestDiffConflict(t *testing.T) {
	ns := env.Namespace(t)
	c := newClient(t, Options{})
	ref := InventoryRef{App: "conflict", Namespace: ns}
	settings := planObj(t, ns, planCM("{{ns}}", "settings", "ours"))
	other := planObj(t, ns, planCM("{{ns}}", "other", "a"))
	planApply(t, c, FieldManager, ref.ID(), settings, other)
	planInventory(t, ref, schema.GroupKind{Kind: "ConfigMap"})
	// kubectl edit takes .data.key over.
	m, _ := c.mapping(settings.GroupVersionKind())
	patch := []byte(`{"data":{"key":"edited"}}`)
	if _, err := c.resourceFor(m, ns).Patch(context.Background(), "settings", types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}

	cs, err := c.Diff(context.Background(), []*unstructured.Unstructured{
		planObj(t, ns, planCM("{{ns}}", "settings", "mine")),
		planObj(t, ns, planCM("{{ns}}", "other", "b")),
	}, ref, diff.Options{})
	var de *DiffError
	var ce *ConflictError
	if !errors.As(err, &de) || !errors.As(err, &ce) {
		t.Fatalf("want a conflict error, got %v", err)
	}
	if de.Ref.Name != "settings" {
		t.Errorf("error names %s, want settings", de.Ref)
	}
	if len(ce.Conflicts) != 1 || ce.Conflicts[0].Field != ".data.key" || ce.Conflicts[0].Manager != "kubectl-edit" {
		t.Errorf("conflicts %+v, want .data.key by kubectl-edit", ce.Conflicts)
	}
	for _, want := range []string{"settings", ".data.key", `"kubectl-edit"`, "--force-conflicts"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	got := planChanges(t, cs)
	if _, ok := got["settings"]; ok {
		t.Errorf("our own conflicting object should be an error only, got %+v", got["settings"])
	}
	if got["other"].Action != diff.Configured {
		t.Errorf("other: %q, want configured despite the error", got["other"].Action)
	}
	if v, _, _ := unstructured.NestedString(planLive(t, c, settings).Object, "data", "key"); v != "edited" {
		t.Errorf("the conflict was forced: data.key = %q", v)
	}
}

// TestDiffUnmanaged is SEC-05: manifests named like live objects that
// kubectl-gitops does not manage show metadata only, never the live values.
func TestDiffUnmanaged(t *testing.T) {
	const canary = "CANARY-live-c0ffee"
	ns := env.Namespace(t)
	c := newClient(t, Options{})
	ref := InventoryRef{App: "intruder", Namespace: ns}
	liveCM := planObj(t, ns, fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: db, namespace: {{ns}}, annotations: {note: %s}}\ndata: {password: %s, other: %s}\n", canary, canary, canary))
	liveSecret := planObj(t, ns, fmt.Sprintf("apiVersion: v1\nkind: Secret\nmetadata: {name: token, namespace: {{ns}}}\nstringData: {token: %s}\n", canary))
	for _, o := range []*unstructured.Unstructured{liveCM, liveSecret} {
		m, _ := c.mapping(o.GroupVersionKind())
		if _, err := c.resourceFor(m, ns).Create(context.Background(), o, metav1.CreateOptions{FieldManager: "kubectl-create"}); err != nil {
			t.Fatal(err)
		}
	}
	// Another app's object, applied by kubectl-gitops into another inventory.
	foreign := planObj(t, ns, planCM("{{ns}}", "foreign", canary))
	planApply(t, c, FieldManager, InventoryRef{App: "other", Namespace: ns}.ID(), foreign)

	rendered := []*unstructured.Unstructured{
		// A new key only: no conflict, the server would merge.
		planObj(t, ns, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: db, namespace: {{ns}}}\ndata: {extra: x}\n"),
		// The same key with another value: a conflict too.
		planObj(t, ns, "apiVersion: v1\nkind: Secret\nmetadata: {name: token, namespace: {{ns}}}\ndata: {token: Z3Vlc3M=}\n"),
		planObj(t, ns, planCM("{{ns}}", "foreign", "mine")),
	}
	cs, err := c.Diff(context.Background(), rendered, ref, diff.Options{ShowSecrets: true})
	planNoLeak(t, cs, err, canary, base64.StdEncoding.EncodeToString([]byte(canary)))
	got := planChanges(t, cs)
	for name, manager := range map[string]string{"db": "kubectl-create", "token": "kubectl-create", "foreign": "ApplySet"} {
		ch, ok := got[name]
		if !ok {
			t.Errorf("%s: no entry", name)
			continue
		}
		if ch.Action != diff.Configured || ch.Diff != "" || !strings.Contains(ch.Message, "would take ownership from") || !strings.Contains(ch.Message, manager) {
			t.Errorf("%s: want a metadata-only entry taking ownership from %s, got %s %q %q", name, manager, ch.Action, ch.Message, ch.Diff)
		}
	}
	// The Secret's value conflicts with kubectl-create: an error too.
	var ce *ConflictError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "token") {
		t.Errorf("want a conflict for the Secret, got %v", err)
	}
}

// TestDiffNewDefinitions: a CRD and its custom resource, and a Namespace
// and an object in it, in one change: the dependants show as created.
func TestDiffNewDefinitions(t *testing.T) {
	ns := env.Namespace(t)
	c := newClient(t, Options{})
	group := strings.ReplaceAll(ns, "-", "") + ".example.com"
	crd := planObj(t, ns, strings.ReplaceAll(`apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.GROUP}
spec:
  group: GROUP
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
`, "GROUP", group))
	cr := planObj(t, ns, "apiVersion: "+group+"/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: 3}\n")
	newNS := planObj(t, ns, "apiVersion: v1\nkind: Namespace\nmetadata: {name: {{ns}}-new}\n")
	inNew := planObj(t, ns, planCM("{{ns}}-new", "settings", "v"))
	existing := planObj(t, ns, planCM("{{ns}}", "plain", "v"))

	cs, err := c.Diff(context.Background(), []*unstructured.Unstructured{cr, inNew, crd, newNS, existing}, InventoryRef{App: "defs", Namespace: ns}, diff.Options{})
	if err != nil {
		t.Fatalf("Diff: %v", err)
	}
	got := planChanges(t, cs)
	for _, name := range []string{"widgets." + group, "w1", ns + "-new", "settings", "plain"} {
		if got[name].Action != diff.Created {
			t.Errorf("%s: %q, want created (%s)", name, got[name].Action, got[name].Message)
		}
	}
	if m := got["w1"].Message; !strings.Contains(m, "CustomResourceDefinition widgets."+group) {
		t.Errorf("w1 note %q should name its CRD", m)
	}
	if got["w1"].Ref.Namespace != ns {
		t.Errorf("w1 should take the app's namespace (its CRD is namespaced), got %q", got["w1"].Ref.Namespace)
	}
	if m := got["settings"].Message; !strings.Contains(m, "namespace "+ns+"-new is created") {
		t.Errorf("settings note %q should name its namespace", m)
	}
	if got["plain"].Message != "" {
		t.Errorf("a plain created object has no note, got %q", got["plain"].Message)
	}
}

// TestDiffObjectErrors: one bad object is reported by name; the rest are
// still compared and the prune preview is withheld.
func TestDiffObjectErrors(t *testing.T) {
	ns := env.Namespace(t)
	c := newClient(t, Options{})
	ref := InventoryRef{App: "errs", Namespace: ns}
	gone := planObj(t, ns, planCM("{{ns}}", "gone", "x"))
	planApply(t, c, FieldManager, ref.ID(), gone)
	planInventory(t, ref, schema.GroupKind{Kind: "ConfigMap"})

	const canary = "CANARY-bad-secret-value"
	rendered := []*unstructured.Unstructured{
		planObj(t, ns, planCM("{{ns}}", "good", "v")),
		planObj(t, ns, planCM("{{ns}}", "Bad_Name", "v")),
		planObj(t, ns, "apiVersion: v1\nkind: Secret\nmetadata: {name: bad, namespace: {{ns}}}\ntype: kubernetes.io/tls\nstringData: {other: "+canary+"}\n"),
		planObj(t, ns, "apiVersion: nope.example.com/v1\nkind: Gadget\nmetadata: {name: g}\n"),
	}
	cs, err := c.Diff(context.Background(), rendered, ref, diff.Options{})
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{"ConfigMap/" + ns + "/Bad_Name", "Secret/" + ns + "/bad", "Gadget.nope.example.com", "prune preview skipped: 1 objects"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	planNoLeak(t, cs, err, canary, base64.StdEncoding.EncodeToString([]byte(canary)))
	got := planChanges(t, cs)
	if got["good"].Action != diff.Created || len(got) != 1 {
		t.Errorf("want only good, created; got %v", got)
	}
}

// TestDiffUnreachable: no API server at the address: one clear error.
func TestDiffUnreachable(t *testing.T) {
	env.Require(t)
	flags := genericclioptions.NewConfigFlags(false)
	server, cacheDir := "https://127.0.0.1:1", t.TempDir()
	flags.APIServer, flags.CacheDir = &server, &cacheDir
	c, err := New(flags, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Diff(context.Background(), []*unstructured.Unstructured{planObj(t, "x", planCM("x", "a", "b"))}, InventoryRef{App: "a", Namespace: "x"}, diff.Options{})
	var ue *UnreachableError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "--kubeconfig") {
		t.Errorf("want an UnreachableError with a hint, got %v", err)
	}
}

// TestDryRunResults checks the lower-level DryRun: created flag and order.
func TestDryRunResults(t *testing.T) {
	ns := env.Namespace(t)
	c := newClient(t, Options{})
	existing := planObj(t, ns, planCM("{{ns}}", "existing", "a"))
	planApply(t, c, FieldManager, "", existing)
	res := c.DryRun(context.Background(), []*unstructured.Unstructured{
		planObj(t, ns, planCM("{{ns}}", "new", "a")),
		planObj(t, ns, planCM("{{ns}}", "existing", "b")),
	})
	if len(res) != 2 || res[0].Err != nil || res[1].Err != nil {
		t.Fatalf("results %+v", res)
	}
	if !res[0].Created || res[1].Created {
		t.Errorf("created flags %v %v, want true false", res[0].Created, res[1].Created)
	}
	if v, _, _ := unstructured.NestedString(res[1].Merged.Object, "data", "key"); v != "b" {
		t.Errorf("merged data.key %q, want b", v)
	}
}
