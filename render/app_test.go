package render

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kubectl-gitops/kubectl-gitops/internal/config"
)

// remoteChart is a chart folder outside the repository, standing in for
// one the chart fetcher unpacked into its cache.
func remoteChart(t *testing.T) string {
	t.Helper()
	return writeTree(t, map[string]string{
		"Chart.yaml":  "apiVersion: v2\nname: web\nversion: 1.4.2\n",
		"values.yaml": "replicas: 1\ngreeting: hello\n",
		"templates/configmap.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}
data:
  replicas: {{ .Values.replicas | quote }}
  greeting: {{ .Values.greeting | quote }}
  namespace: {{ .Release.Namespace }}
`,
	})
}

// fetchCall records a call of the chart fetch hook.
type fetchCall struct{ repo, chart, version string }

func fakeChartFetch(dir string, calls *[]fetchCall) ChartFetchFunc {
	return func(_ context.Context, repo, chart, version string) (string, error) {
		*calls = append(*calls, fetchCall{repo, chart, version})
		return dir, nil
	}
}

func remoteApp() config.App {
	return config.App{
		Name:      "web",
		Namespace: "shop",
		Helm: &config.Helm{
			Repo:        "https://charts.example.com/stable",
			Chart:       "web",
			Version:     "1.4.x",
			Values:      map[string]any{"greeting": "hi"},
			ValuesFiles: []string{"envs/prod/web.yaml"},
		},
	}
}

func TestAppRemoteChart(t *testing.T) {
	root := writeTree(t, map[string]string{"envs/prod/web.yaml": "replicas: 3\ngreeting: from file\n"})
	repo := &config.Repository{Dir: root}
	var calls []fetchCall
	res, err := App(t.Context(), repo, remoteApp(), AppOptions{FetchChart: fakeChartFetch(remoteChart(t), &calls)})
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 1 || calls[0] != (fetchCall{"https://charts.example.com/stable", "web", "1.4.x"}) {
		t.Errorf("fetch calls = %+v", calls)
	}
	if len(res.Objects) != 1 {
		t.Fatalf("objects = %v, want the ConfigMap", ids(res.Objects))
	}
	cm := res.Objects[0]
	data, _, _ := unstructuredMap(cm.Object, "data")
	want := map[string]any{"replicas": "3", "greeting": "hi", "namespace": "shop"}
	for k, v := range want {
		if data[k] != v {
			t.Errorf("data.%s = %v, want %v (values file, then in-line values)", k, data[k], v)
		}
	}
	if cm.GetNamespace() != "shop" || cm.GetName() != "web" {
		t.Errorf("ConfigMap is %s/%s, want shop/web", cm.GetNamespace(), cm.GetName())
	}
}

func TestAppOCIChart(t *testing.T) {
	repo := &config.Repository{Dir: t.TempDir()}
	app := config.App{Name: "web", Helm: &config.Helm{Chart: "oci://registry.example.com/charts/web", Version: "1.4.2"}}
	var calls []fetchCall
	if _, err := App(t.Context(), repo, app, AppOptions{FetchChart: fakeChartFetch(remoteChart(t), &calls)}); err != nil {
		t.Fatal(err)
	}
	if len(calls) != 1 || calls[0] != (fetchCall{"", "oci://registry.example.com/charts/web", "1.4.2"}) {
		t.Errorf("fetch calls = %+v", calls)
	}
}

func TestAppRemoteChartErrors(t *testing.T) {
	root := writeTree(t, map[string]string{"envs/prod/web.yaml": "replicas: 3\n"})
	outside := writeTree(t, map[string]string{"secrets.yaml": "password: hunter2\n"})
	repo := &config.Repository{Dir: root}
	chartDir := remoteChart(t)

	t.Run("no fetcher", func(t *testing.T) {
		_, err := App(t.Context(), repo, remoteApp(), AppOptions{})
		if err == nil || !strings.Contains(err.Error(), "no chart fetcher") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("fetch fails", func(t *testing.T) {
		boom := errors.New("registry down")
		_, err := App(t.Context(), repo, remoteApp(), AppOptions{FetchChart: func(context.Context, string, string, string) (string, error) { return "", boom }})
		if !errors.Is(err, boom) || !strings.Contains(err.Error(), "fetching chart https://charts.example.com/stable/web 1.4.x") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("values file outside the repository", func(t *testing.T) {
		app := remoteApp()
		rel, _ := filepath.Rel(root, filepath.Join(outside, "secrets.yaml"))
		app.Helm.ValuesFiles = []string{rel}
		var calls []fetchCall
		_, err := App(t.Context(), repo, app, AppOptions{FetchChart: fakeChartFetch(chartDir, &calls)})
		if !errors.Is(err, ErrUnsafe) {
			t.Fatalf("err = %v, want ErrUnsafe", err)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("the error quotes the file: %v", err)
		}
	})
}

func TestAppReleaseLocalChart(t *testing.T) {
	root, _ := helmFixture(t)
	repo := &config.Repository{Dir: root}
	app := config.App{
		Name:      "app",
		Namespace: "prod",
		Helm: &config.Helm{
			Chart:       "charts/app",
			ValuesFiles: []string{"envs/prod/values-app.yaml"},
			Values:      map[string]any{"replicas": 5},
		},
	}
	rel, err := AppRelease(t.Context(), repo, app, AppOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rel.Name != "app" || rel.Namespace != "prod" || rel.Chart.Name() != "app" || rel.Chart.Metadata.Version != "1.2.3" {
		t.Errorf("release = %s/%s chart %s %s", rel.Namespace, rel.Name, rel.Chart.Name(), rel.Chart.Metadata.Version)
	}
	if rel.Values["replicas"] != 5 {
		t.Errorf("replicas = %v, want 5 (in-line values over the file)", rel.Values["replicas"])
	}
	if env, _ := rel.Values["env"].(map[string]any); env["REGION"] != "eu-west-1" {
		t.Errorf("values from the file missing: %v", rel.Values)
	}
	if _, ok := rel.Values["image"]; ok {
		t.Errorf("chart defaults are in the user values: %v", rel.Values)
	}
	var deps []string
	for _, d := range rel.Chart.Dependencies() {
		deps = append(deps, d.Name())
	}
	if strings.Join(deps, ",") != "disabled,packed,sub" {
		t.Errorf("dependencies = %v, want the vendored ones", deps)
	}

	// The namespace option overrides the app's, and releaseName the name.
	app.Helm.ReleaseName = "app-prod"
	rel, err = AppRelease(t.Context(), repo, app, AppOptions{Namespace: "other"})
	if err != nil {
		t.Fatal(err)
	}
	if rel.Name != "app-prod" || rel.Namespace != "other" {
		t.Errorf("release = %s/%s, want other/app-prod", rel.Namespace, rel.Name)
	}
}

func TestAppReleaseRemoteChart(t *testing.T) {
	root := writeTree(t, map[string]string{"envs/prod/web.yaml": "replicas: 3\n"})
	var calls []fetchCall
	rel, err := AppRelease(t.Context(), &config.Repository{Dir: root}, remoteApp(), AppOptions{FetchChart: fakeChartFetch(remoteChart(t), &calls)})
	if err != nil {
		t.Fatal(err)
	}
	if rel.Chart.Name() != "web" || fmt.Sprint(rel.Values["replicas"]) != "3" || rel.Values["greeting"] != "hi" || len(calls) != 1 {
		t.Errorf("release chart %s values %v calls %v", rel.Chart.Name(), rel.Values, calls)
	}
}

func TestAppReleaseRefuses(t *testing.T) {
	root, _ := helmFixture(t)
	repo := &config.Repository{Dir: root}
	for name, tc := range map[string]struct {
		app  config.App
		want string
	}{
		"not helm":        {config.App{Name: "a", Path: "charts/app"}, "not a Helm app"},
		"patches":         {config.App{Name: "a", Helm: &config.Helm{Chart: "charts/app"}, Patches: []config.Patch{{Patch: "{}"}}}, "in-line patches"},
		"images":          {config.App{Name: "a", Helm: &config.Helm{Chart: "charts/app"}, Images: []config.Image{{Name: "x", NewTag: "1"}}}, "image overrides"},
		"chart escapes":   {config.App{Name: "a", Helm: &config.Helm{Chart: "../../etc"}}, "not in or below"},
		"missing fetcher": {config.App{Name: "a", Helm: &config.Helm{Chart: "oci://r.example.com/c"}}, "no chart fetcher"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := AppRelease(t.Context(), repo, tc.app, AppOptions{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// unstructuredMap returns obj[field] as a map.
func unstructuredMap(obj map[string]any, field string) (map[string]any, bool, error) {
	m, ok := obj[field].(map[string]any)
	return m, ok, nil
}

// customizeManifests are the objects every form of app in
// TestAppPatchesBeforeNamespace renders: one Deployment without a namespace,
// one with its own, and a cluster-scoped object.
var customizeManifests = map[string]string{
	"podinfo.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: podinfo
  labels: {app: podinfo}
spec:
  replicas: 1
  selector: {matchLabels: {app: podinfo}}
  template:
    metadata: {labels: {app: podinfo}}
    spec:
      containers: [{name: podinfo, image: "ghcr.io/stefanprodan/podinfo:6.7.0"}]
`,
	"backend.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: backend
  namespace: other
  labels: {app: backend}
spec:
  replicas: 1
  selector: {matchLabels: {app: backend}}
  template:
    metadata: {labels: {app: backend}}
    spec:
      containers: [{name: backend, image: "ghcr.io/stefanprodan/podinfo:6.7.0"}]
`,
	"clusterrole.yaml": `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: podinfo-reader
  labels: {app: podinfo}
rules: []
`,
}

// customizeApps returns the forms of an app that render customizeManifests:
// plain YAML and a kustomize overlay in the repository, a kustomization in a
// third-party Git source and a local Helm chart, with the repository and
// the fetcher of the source.
func customizeApps(t *testing.T) (map[string]config.App, *config.Repository, FetchFunc) {
	t.Helper()
	files := map[string]string{
		"apps/overlay/kustomization.yaml": "resources: [../base]\ncommonAnnotations: {team: web}\n",
		"apps/base/kustomization.yaml":    "resources: [podinfo.yaml, backend.yaml, clusterrole.yaml]\n",
		"charts/podinfo/Chart.yaml":       "apiVersion: v2\nname: podinfo\nversion: 6.7.0\n",
	}
	source := map[string]string{"kustomize/kustomization.yaml": files["apps/base/kustomization.yaml"]}
	for name, content := range customizeManifests {
		files["apps/plain/"+name] = content
		files["apps/base/"+name] = content
		files["charts/podinfo/templates/"+name] = content
		source["kustomize/"+name] = content
	}
	repo := &config.Repository{Dir: writeTree(t, files)}
	src := writeTree(t, source)
	fetch := func(context.Context, string, string) (string, error) { return src, nil }
	apps := map[string]config.App{
		"plain":     {Path: "apps/plain"},
		"kustomize": {Path: "apps/overlay"},
		"source":    {Source: &config.GitSource{Git: "https://example.com/stefanprodan/podinfo.git", Ref: "6.7.0", Path: "kustomize"}},
		"helm":      {Helm: &config.Helm{Chart: "charts/podinfo"}},
	}
	for form, app := range apps {
		app.Name, app.Namespace = "podinfo", "demo"
		apps[form] = app
	}
	return apps, repo, fetch
}

// customized is what TestAppPatchesBeforeNamespace looks at in an object.
type customized struct {
	Namespace string
	Replicas  int64
	Image     string
	Rules     int
}

func summarize(objs []*unstructured.Unstructured) map[string]*customized {
	out := map[string]*customized{}
	for _, o := range objs {
		var c customized
		c.Namespace = o.GetNamespace()
		c.Replicas, _, _ = unstructured.NestedInt64(o.Object, "spec", "replicas")
		if containers, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers"); len(containers) > 0 {
			c.Image, _, _ = unstructured.NestedString(containers[0].(map[string]any), "image")
		}
		rules, _, _ := unstructured.NestedSlice(o.Object, "rules")
		c.Rules = len(rules)
		out[o.GetKind()+"/"+o.GetName()] = &c
	}
	return out
}

// TestAppPatchesBeforeNamespace: an app's patches and image overrides apply
// before its namespace default, as in a kustomization (and so a Flux
// Kustomization with targetNamespace), and a patch or target that names the
// namespace an object will end up in selects it too. The default never
// replaces a namespace an object has, and cluster-scoped objects get none.
func TestAppPatchesBeforeNamespace(t *testing.T) {
	const (
		smpPodinfo = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: podinfo\nspec:\n  replicas: 3\n"
		smpInDemo  = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: podinfo\n  namespace: demo\nspec:\n  replicas: 3\n"
		// Flux's documentation names no object in a patch with a target.
		smpNotUsed = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: not-used\nspec:\n  replicas: 3\n"
		jsonPatch  = "- op: replace\n  path: /spec/replicas\n  value: 3\n"
		addRule    = "- op: add\n  path: /rules/-\n  value: {apiGroups: [\"\"], resources: [pods], verbs: [get]}\n"
	)
	podinfo3 := func(m map[string]*customized) { m["Deployment/podinfo"].Replicas = 3 }
	backend3 := func(m map[string]*customized) { m["Deployment/backend"].Replicas = 3 }
	for name, tc := range map[string]struct {
		patches []config.Patch
		images  []config.Image
		want    func(map[string]*customized) // changes to the objects as rendered without patches
		wantErr string
	}{
		"strategic merge, name only":             {patches: []config.Patch{{Patch: smpPodinfo}}, want: podinfo3},
		"strategic merge, the app's namespace":   {patches: []config.Patch{{Patch: smpInDemo}}, want: podinfo3},
		"strategic merge, target kind and name":  {patches: []config.Patch{{Target: &config.Selector{Kind: "Deployment", Name: "podinfo"}, Patch: smpPodinfo}}, want: podinfo3},
		"strategic merge, target with namespace": {patches: []config.Patch{{Target: &config.Selector{Kind: "Deployment", Name: "podinfo", Namespace: "demo"}, Patch: smpInDemo}}, want: podinfo3},
		"strategic merge, target name only":      {patches: []config.Patch{{Target: &config.Selector{Name: "podinfo"}, Patch: smpNotUsed}}, want: podinfo3},
		"json6902, target kind and name":         {patches: []config.Patch{{Target: &config.Selector{Kind: "Deployment", Name: "podinfo"}, Patch: jsonPatch}}, want: podinfo3},
		"json6902, target with namespace":        {patches: []config.Patch{{Target: &config.Selector{Group: "apps", Version: "v1", Kind: "Deployment", Name: "podinfo", Namespace: "demo"}, Patch: jsonPatch}}, want: podinfo3},
		"json6902, target name only":             {patches: []config.Patch{{Target: &config.Selector{Name: "podinfo"}, Patch: jsonPatch}}, want: podinfo3},
		"json6902, target kind and labels":       {patches: []config.Patch{{Target: &config.Selector{Kind: "Deployment", LabelSelector: "app=podinfo"}, Patch: jsonPatch}}, want: podinfo3},
		"json6902, target namespace selects only the objects in it": {
			patches: []config.Patch{{Target: &config.Selector{Kind: "Deployment", Namespace: "demo"}, Patch: jsonPatch}},
			want:    podinfo3,
		},
		"json6902, target kind selects every namespace": {
			patches: []config.Patch{{Target: &config.Selector{Kind: "Deployment"}, Patch: jsonPatch}},
			want:    func(m map[string]*customized) { podinfo3(m); backend3(m) },
		},
		"an object's own namespace, named": {
			patches: []config.Patch{{Patch: "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: backend\n  namespace: other\nspec:\n  replicas: 3\n"}},
			want:    backend3,
		},
		"an object's own namespace, selected by name": {
			patches: []config.Patch{{Target: &config.Selector{Kind: "Deployment", Name: "backend"}, Patch: jsonPatch}},
			want:    backend3,
		},
		"an object's own namespace, not named": {
			// As in kustomize: without a target, a patch names the object's id.
			patches: []config.Patch{{Patch: "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: backend\nspec:\n  replicas: 3\n"}},
			wantErr: "no resource matches strategic merge patch",
		},
		"an object's own namespace, named as the app's": {
			patches: []config.Patch{{Patch: "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: backend\n  namespace: demo\nspec:\n  replicas: 3\n"}},
			wantErr: "no resource matches strategic merge patch",
		},
		"another namespace than the app's": {
			patches: []config.Patch{{Patch: "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: podinfo\n  namespace: elsewhere\nspec:\n  replicas: 3\n"}},
			wantErr: "no resource matches strategic merge patch",
		},
		"cluster-scoped, strategic merge": {
			patches: []config.Patch{{Patch: "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: podinfo-reader\nrules: [{apiGroups: [\"\"], resources: [pods], verbs: [get]}]\n"}},
			want:    func(m map[string]*customized) { m["ClusterRole/podinfo-reader"].Rules = 1 },
		},
		"cluster-scoped, json6902": {
			patches: []config.Patch{{Target: &config.Selector{Kind: "ClusterRole", Name: "podinfo-reader"}, Patch: addRule}},
			want:    func(m map[string]*customized) { m["ClusterRole/podinfo-reader"].Rules = 1 },
		},
		"cluster-scoped, target with the app's namespace": {
			// A cluster-scoped object is in no namespace, now or later.
			patches: []config.Patch{{Target: &config.Selector{Kind: "ClusterRole", Namespace: "demo"}, Patch: addRule}},
			want:    func(map[string]*customized) {},
		},
		"images": {
			images: []config.Image{{Name: "ghcr.io/stefanprodan/podinfo", NewTag: "6.7.1"}},
			want: func(m map[string]*customized) {
				m["Deployment/podinfo"].Image = "ghcr.io/stefanprodan/podinfo:6.7.1"
				m["Deployment/backend"].Image = "ghcr.io/stefanprodan/podinfo:6.7.1"
			},
		},
		"a patch sets the namespace": {
			patches: []config.Patch{{Target: &config.Selector{Kind: "Deployment", Name: "podinfo"}, Patch: "- {op: add, path: /metadata/namespace, value: special}\n"}},
			want:    func(m map[string]*customized) { m["Deployment/podinfo"].Namespace = "special" },
		},
	} {
		t.Run(name, func(t *testing.T) {
			apps, repo, fetch := customizeApps(t)
			for form, app := range apps {
				t.Run(form, func(t *testing.T) {
					want := map[string]*customized{
						"Deployment/podinfo":         {Namespace: "demo", Replicas: 1, Image: "ghcr.io/stefanprodan/podinfo:6.7.0"},
						"Deployment/backend":         {Namespace: "other", Replicas: 1, Image: "ghcr.io/stefanprodan/podinfo:6.7.0"},
						"ClusterRole/podinfo-reader": {},
					}
					app.Patches, app.Images = tc.patches, tc.images
					res, err := App(t.Context(), repo, app, AppOptions{Fetch: fetch})
					if tc.wantErr != "" {
						if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
							t.Fatalf("err = %v, want %q", err, tc.wantErr)
						}
						return
					}
					if err != nil {
						t.Fatal(err)
					}
					tc.want(want)
					if diff := cmp.Diff(want, summarize(res.Objects)); diff != "" {
						t.Errorf("objects (-want +got):\n%s", diff)
					}
					for _, o := range res.Objects {
						for k := range o.GetAnnotations() {
							if strings.HasPrefix(k, "internal.config.kubernetes.io/") {
								t.Errorf("%s %s keeps kustomize's build annotation %s", o.GetKind(), o.GetName(), k)
							}
						}
					}
				})
			}
		})
	}
}

// TestCustomizeLeavesReferences: the future namespace that customize gives
// kustomize as a previous id of each object does not make kustomize rewrite
// the references between objects (RoleBinding subjects, roleRefs, names in
// a pod template), which it does for ids that changed.
func TestCustomizeLeavesReferences(t *testing.T) {
	const objects = `apiVersion: v1
kind: ServiceAccount
metadata: {name: app}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: app, namespace: other}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: app}
rules: []
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: app}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: app}
subjects:
- {kind: ServiceAccount, name: app, namespace: demo}
- {kind: ServiceAccount, name: app}
- {kind: ServiceAccount, name: app, namespace: other}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: app}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: app}
subjects:
- {kind: ServiceAccount, name: app, namespace: demo}
- {kind: ServiceAccount, name: app}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: env}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: app}
spec:
  template:
    spec:
      serviceAccountName: app
      containers: [{name: app, image: nginx, envFrom: [{configMapRef: {name: env}}]}]
`
	d, err := decodeObjects("objects.yaml", []byte(objects))
	if err != nil {
		t.Fatal(err)
	}
	var want []*unstructured.Unstructured
	for _, obj := range d.objects {
		want = append(want, obj.DeepCopy())
	}
	if err := unstructured.SetNestedSlice(want[2].Object, []any{map[string]any{"verbs": []any{"get"}}}, "rules"); err != nil {
		t.Fatal(err)
	}
	addRule := config.Patch{Target: &config.Selector{Kind: "Role"}, Patch: "- {op: add, path: /rules/-, value: {verbs: [get]}}\n"}
	got, err := customize(d.objects, "demo", []config.Patch{addRule}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("objects (-want +got):\n%s", diff)
	}
}

// TestKustomizePanicIsAnError feeds kustomize objects whose previous-id
// annotations disagree, which makes it panic: the render fails with an
// error naming the input, and the renders after it still run (the lock
// over kyaml's globals is released).
func TestKustomizePanicIsAnError(t *testing.T) {
	bad := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: odd\n  annotations:\n" +
		"    internal.config.kubernetes.io/previousNames: a,b,c\n" +
		"    internal.config.kubernetes.io/previousKinds: ConfigMap\n" +
		"    internal.config.kubernetes.io/previousNamespaces: x\n"
	for name, files := range map[string]map[string]string{
		"kustomization": {"kustomization.yaml": "resources: [cm.yaml]\nnamePrefix: p-\n", "cm.yaml": bad},
		"app patches": {
			"gitops.yaml": "apiVersion: gitops.kubectl.dev/v1alpha1\nkind: Repository\napps:\n  - name: web\n    path: web\n    namespace: demo\n" +
				"    patches:\n      - patch: |\n          apiVersion: v1\n          kind: ConfigMap\n          metadata: {name: odd, namespace: other}\n          data: {k: v}\n",
			// With a namespace of its own, the object keeps its annotations.
			"web/cm.yaml": strings.Replace(bad, "  name: odd\n", "  name: odd\n  namespace: other\n", 1),
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := writeTree(t, files)
			ctx := context.Background()
			var err error
			if _, ok := files["gitops.yaml"]; ok {
				repo, lerr := config.Load(filepath.Join(dir, "gitops.yaml"))
				if lerr != nil {
					t.Fatal(lerr)
				}
				_, err = App(ctx, repo, repo.Apps[0], AppOptions{Root: dir})
			} else {
				_, err = Path(ctx, dir, Options{Root: dir})
			}
			if err == nil || !strings.Contains(err.Error(), "kustomize failed on this input") {
				t.Errorf("error = %v; want kustomize's panic as the render's error", err)
			}
			next := writeTree(t, map[string]string{"kustomization.yaml": "resources: [cm.yaml]\n", "cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fine}\n"})
			done := make(chan error, 1)
			go func() {
				_, err := Path(ctx, next, Options{Root: next})
				done <- err
			}()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("the next render: %v", err)
				}
			case <-time.After(time.Minute):
				t.Fatal("the next render hangs: the kyaml lock was left held")
			}
		})
	}
}
