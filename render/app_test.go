package render

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

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
