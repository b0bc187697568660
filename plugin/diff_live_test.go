package plugin

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"helm.sh/helm/v4/pkg/kube"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-gitops/kubectl-gitops/internal/cluster"
	"github.com/kubectl-gitops/kubectl-gitops/internal/sandbox"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/testenv"
)

// env is the package's real control plane for the live diff; the offline
// tests ignore it.
var env *testenv.Env

func TestMain(m *testing.M) {
	// As cmd/kubectl-gitops does: this binary is also the render sandbox.
	if len(os.Args) > 1 && os.Args[1] == sandbox.Command {
		os.Exit(sandbox.Main())
	}
	// As cmd/kubectl-gitops does: Helm applies under its own manager.
	kube.ManagedFieldsManager = cluster.HelmFieldManager
	os.Exit(testenv.Run(m, &env))
}

// live runs `kubectl gitops args…` against the test control plane, with a
// discovery cache of the test's own.
func live(t *testing.T, dir string, args ...string) (int, string, string) {
	t.Helper()
	env.Require(t)
	return run(t, dir, append(args, "--kubeconfig", env.Kubeconfig, "--cache-dir", t.TempDir(), "--color", "never")...)
}

var (
	cmGVR     = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	secretGVR = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
	deployGVR = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
)

// liveApply server-side applies every object of the YAML files in dir as
// kubectl-gitops would, labelled part of inv when it names an app, 16 at a
// time.
func liveApply(t *testing.T, dir string, inv cluster.InventoryRef) {
	t.Helper()
	var objs []*unstructured.Unstructured
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range strings.Split(string(data), "\n---\n") {
			obj := &unstructured.Unstructured{}
			if err := yaml.Unmarshal([]byte(doc), &obj.Object); err != nil {
				t.Fatal(err)
			}
			if inv.App != "" {
				obj.SetLabels(map[string]string{cluster.LabelPartOf: inv.ID()})
			}
			objs = append(objs, obj)
		}
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	errs := make(chan error, len(objs))
	for _, obj := range objs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			gvr := map[string]schema.GroupVersionResource{"ConfigMap": cmGVR, "Secret": secretGVR, "Deployment": deployGVR}[obj.GetKind()]
			data, _ := obj.MarshalJSON()
			force := true
			_, err := env.Dynamic.Resource(gvr).Namespace(obj.GetNamespace()).Patch(context.Background(), obj.GetName(), types.ApplyPatchType, data,
				metav1.PatchOptions{FieldManager: cluster.FieldManager, Force: &force})
			if err != nil {
				errs <- fmt.Errorf("applying %s: %w", obj.GetName(), err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func liveCM(ns, name, value string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s\n  namespace: %s\ndata:\n  key: %q\n", name, ns, value)
}

func liveDeployment(ns, name string, replicas int) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
  namespace: %[2]s
spec:
  replicas: %[3]d
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata: {labels: {app: %[1]s}}
    spec:
      containers: [{name: app, image: "nginx:1.27", ports: [{containerPort: 80}]}]
`, name, ns, replicas)
}

// TestDiffLiveMustShow: 300 ConfigMaps and 300 Deployments applied; an
// unchanged tree exits 0, one changed object exits 1 and is the only one
// named.
func TestDiffLiveMustShow(t *testing.T) {
	ns := env.Namespace(t)
	dir := t.TempDir()
	for i := range 300 {
		write(t, dir, fmt.Sprintf("cm-%03d.yaml", i), liveCM(ns, fmt.Sprintf("cm-%03d", i), fmt.Sprint("value-", i)))
		write(t, dir, fmt.Sprintf("deploy-%03d.yaml", i), liveDeployment(ns, fmt.Sprintf("app-%03d", i), 1))
	}
	liveApply(t, dir, cluster.InventoryRef{})

	code, out, errOut := live(t, dir, "diff", ".")
	if code != ExitOK {
		t.Fatalf("unchanged tree: exit %d, want 0\nstdout: %.2000s\nstderr: %s", code, out, errOut)
	}
	if !strings.Contains(out, "no changes") || !strings.Contains(out, "600 unchanged") {
		t.Errorf("unchanged tree report:\n%s", out)
	}

	write(t, dir, "deploy-137.yaml", liveDeployment(ns, "app-137", 3))
	code, out, errOut = live(t, dir, "diff", ".")
	if code != ExitChanges {
		t.Fatalf("one change: exit %d, want 1\nstdout: %.2000s\nstderr: %s", code, out, errOut)
	}
	if errOut != "" {
		t.Errorf("stderr should be empty: %s", errOut)
	}
	var headers []string
	for line := range strings.Lines(out) {
		if line = strings.TrimSpace(line); strings.HasSuffix(line, " configured") || strings.HasSuffix(line, " created") || strings.HasSuffix(line, " deleted") {
			headers = append(headers, line)
		}
	}
	if want := "~ apps/Deployment/" + ns + "/app-137 configured"; len(headers) != 1 || headers[0] != want {
		t.Errorf("changed objects %q, want exactly %q\n%s", headers, want, out)
	}
	for _, want := range []string{"-  replicas: 1", "+  replicas: 3", "0 created, 1 configured, 0 deleted, 599 unchanged"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

// TestDiffLiveApp diffs an app of gitops.yaml against its inventory: a
// Secret whose value changed (masked in every format), an object no longer
// rendered (deleted), and a manifest named like an unmanaged live
// ConfigMap and Secret (metadata only: the canaries never print).
func TestDiffLiveApp(t *testing.T) {
	const (
		oldValue = "CANARY-old-4b1d"
		newValue = "CANARY-new-8e2f"
		canary   = "CANARY-unmanaged-a11ce"
	)
	ns := env.Namespace(t)
	repo := t.TempDir()
	write(t, repo, "gitops.yaml", "apiVersion: gitops.kubectl.dev/v1alpha1\nkind: Repository\napps:\n  - name: shop\n    path: apps/shop\n    namespace: "+ns+"\n    prune: true\n")
	inv := cluster.InventoryRef{App: "shop", Namespace: ns}

	// What the last apply left: a Secret and a ConfigMap since removed.
	applied := t.TempDir()
	write(t, applied, "secret.yaml", liveSecret(ns, "creds", oldValue))
	write(t, applied, "old.yaml", liveCM(ns, "old", "x"))
	liveApply(t, applied, inv)
	liveInventory(t, inv, "ConfigMap,Secret")
	// Objects someone else made.
	for _, doc := range []string{liveCM(ns, "db", canary), liveSecret(ns, "token", canary)} {
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &obj.Object); err != nil {
			t.Fatal(err)
		}
		gvr := map[string]schema.GroupVersionResource{"ConfigMap": cmGVR, "Secret": secretGVR}[obj.GetKind()]
		if _, err := env.Dynamic.Resource(gvr).Namespace(ns).Create(context.Background(), obj, metav1.CreateOptions{FieldManager: "helm"}); err != nil {
			t.Fatal(err)
		}
	}

	// The app now: the Secret changed, old gone, and manifests named like
	// the unmanaged objects, without namespace (the app's applies).
	write(t, repo, "apps/shop/secret.yaml", liveSecret("", "creds", newValue))
	write(t, repo, "apps/shop/db.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: db}\ndata: {extra: x}\n")
	write(t, repo, "apps/shop/token.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: token}\ndata: {other: eA==}\n")

	leaks := []string{"CANARY", b64(oldValue), b64(newValue), b64(canary)}
	for _, format := range []string{"text", "markdown", "json"} {
		code, out, errOut := live(t, repo, "diff", "shop", "-o", format)
		if code != ExitChanges {
			t.Fatalf("%s: exit %d, want 1\nstdout: %s\nstderr: %s", format, code, out, errOut)
		}
		for _, leak := range leaks {
			if strings.Contains(out+errOut, leak) {
				t.Errorf("%s output leaks %q:\nstdout: %s\nstderr: %s", format, leak, out, errOut)
			}
		}
		for _, want := range []string{"*** (before)", "*** (after)", "creds", "old", "would take ownership from helm", "db", "token", "deleted"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s output lacks %q:\n%s", format, want, out)
			}
		}
	}
	code, out, _ := live(t, repo, "diff", "shop")
	if !strings.Contains(out, "0 created, 3 configured, 1 deleted, 0 unchanged") {
		t.Errorf("summary (exit %d):\n%s", code, out)
	}
	// The repository's folder diffs every app, each against its inventory.
	code, out, errOut := live(t, repo, "diff", ".")
	if code != ExitChanges || !strings.Contains(out, "0 created, 3 configured, 1 deleted, 0 unchanged") {
		t.Errorf("whole repository: exit %d\n%s\n%s", code, out, errOut)
	}
	// Without pruning, apply would leave old alone: so does the preview.
	code, out, _ = live(t, repo, "diff", "shop", "--prune=false")
	if !strings.Contains(out, "0 created, 3 configured, 0 deleted, 0 unchanged") || strings.Contains(out, "ConfigMap/"+ns+"/old") {
		t.Errorf("--prune=false (exit %d):\n%s", code, out)
	}
}

func liveSecret(ns, name, value string) string {
	meta := "name: " + name
	if ns != "" {
		meta += "\n  namespace: " + ns
	}
	return "apiVersion: v1\nkind: Secret\nmetadata:\n  " + meta + "\ndata:\n  password: " + b64(value) + "\n"
}

// liveInventory writes an inventory parent by hand, as apply leaves it.
func liveInventory(t *testing.T, inv cluster.InventoryRef, kinds string) {
	t.Helper()
	s := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Secret"}}
	s.SetName(inv.Name())
	s.SetNamespace(inv.Namespace)
	s.SetLabels(map[string]string{cluster.LabelApplySetID: inv.ID()})
	s.SetAnnotations(map[string]string{cluster.AnnotationTooling: cluster.Tooling, cluster.AnnotationContainsGroupKinds: kinds})
	if _, err := env.Dynamic.Resource(secretGVR).Namespace(inv.Namespace).Create(context.Background(), s, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestDiffLiveErrors: objects that cannot be compared are named on stderr
// with exit 2; the others are still reported, conflicts are not forced.
func TestDiffLiveErrors(t *testing.T) {
	ns := env.Namespace(t)
	applied := t.TempDir()
	write(t, applied, "settings.yaml", liveCM(ns, "settings", "ours"))
	// Labelled, as apply labels: kubectl-gitops keeps managing the label
	// when kubectl edit takes the data over.
	liveApply(t, applied, cluster.InventoryRef{App: "errors", Namespace: ns})
	patch := []byte(`{"data":{"key":"edited"}}`)
	if _, err := env.Dynamic.Resource(cmGVR).Namespace(ns).Patch(context.Background(), "settings", types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	write(t, dir, "settings.yaml", liveCM(ns, "settings", "mine"))
	write(t, dir, "bad.yaml", liveCM(ns, "Not_A_Name", "x"))
	write(t, dir, "good.yaml", liveCM(ns, "good", "x"))
	write(t, dir, "secret.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: tls, namespace: "+ns+"}\ntype: kubernetes.io/tls\nstringData: {other: CANARY-tls-0042}\n")
	code, out, errOut := live(t, dir, "diff", ".")
	if code != ExitError {
		t.Fatalf("exit %d, want 2\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	for _, want := range []string{"ConfigMap/" + ns + "/Not_A_Name", "ConfigMap/" + ns + "/settings", ".data.key", `"kubectl-edit"`, "Secret/" + ns + "/tls"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if !strings.Contains(out, "+ ConfigMap/"+ns+"/good created") || strings.Contains(out, "settings") {
		t.Errorf("stdout should report good only:\n%s", out)
	}
	if strings.Contains(out+errOut, "CANARY") {
		t.Errorf("a Secret value leaked:\n%s\n%s", out, errOut)
	}
}

// TestDiffLiveNoCluster is CLI-06: rendering works offline, the live diff
// fails with exit 2 and says what to do.
func TestDiffLiveNoCluster(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "cm.yaml", liveCM("default", "settings", "x"))
	write(t, dir, "unreachable.kubeconfig", `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`)
	for name, args := range map[string][]string{
		"unreachable": {"diff", "cm.yaml", "--kubeconfig", "unreachable.kubeconfig"},
		"missing":     {"diff", "cm.yaml", "--kubeconfig", "missing.kubeconfig"},
	} {
		code, out, errOut := run(t, dir, append(args, "--cache-dir", t.TempDir())...)
		if code != ExitError || out != "" || !strings.Contains(errOut, "--kubeconfig") {
			t.Errorf("%s: exit %d, want 2 and a hint\nstdout: %s\nstderr: %s", name, code, out, errOut)
		}
	}
	if code, out, _ := run(t, dir, "render", "cm.yaml"); code != ExitOK || !strings.Contains(out, "settings") {
		t.Errorf("render should work offline: exit %d", code)
	}
}
