package cluster

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/loader/archive"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
	helmregistry "helm.sh/helm/v4/pkg/registry"
	repov1 "helm.sh/helm/v4/pkg/repo/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-gitops/kubectl-gitops/internal/chartrepo"
	"github.com/kubectl-gitops/kubectl-gitops/internal/config"
	"github.com/kubectl-gitops/kubectl-gitops/internal/diff"
	"github.com/kubectl-gitops/kubectl-gitops/internal/report"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/testenv"
	"github.com/kubectl-gitops/kubectl-gitops/render"
)

// helmCanary is a secret value that must never appear in a diff.
const helmCanary = "canary-s3cr3t-value"

// demoChart is a small chart with a ConfigMap, a Secret and a pre-install /
// pre-upgrade hook. With invalid: true the ConfigMap gets a data key the
// API server rejects, so an upgrade fails after its hook ran.
func demoChart(t *testing.T) *chart.Chart {
	t.Helper()
	files := map[string]string{
		"Chart.yaml":  "apiVersion: v2\nname: demo\nversion: 0.1.0\nappVersion: \"1.0\"\n",
		"values.yaml": "greeting: hello\ninvalid: false\ndb:\n  password: \"\"\n",
		"templates/configmap.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-config
data:
  greeting: {{ .Values.greeting | quote }}
{{- if .Values.invalid }}
  "bad key!": "refused by the API server"
{{- end }}
`,
		"templates/secret.yaml": `apiVersion: v1
kind: Secret
metadata:
  name: {{ .Release.Name }}-db
stringData:
  password: {{ .Values.db.password | quote }}
`,
		"templates/hook.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-hook
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-delete-policy: before-hook-creation
data:
  greeting: {{ .Values.greeting | quote }}
`,
	}
	var buffered []*archive.BufferedFile
	for name, data := range files {
		buffered = append(buffered, &archive.BufferedFile{Name: name, Data: []byte(data)})
	}
	ch, err := loader.LoadFiles(buffered)
	if err != nil {
		t.Fatalf("loading the demo chart: %v", err)
	}
	return ch
}

func demoRelease(t *testing.T, ns string, values map[string]any) HelmRelease {
	return HelmRelease{Name: "demo", Namespace: ns, Chart: demoChart(t), Values: values}
}

// helmCLI runs the real helm binary against the test control plane, with
// its own configuration folders.
func helmCLI(t *testing.T, args ...string) []byte {
	t.Helper()
	bin := testenv.Tool(t, "helm")
	home := t.TempDir()
	cmd := exec.Command(bin, append(args, "--kubeconfig", env.Kubeconfig)...)
	cmd.Env = append(os.Environ(),
		"HELM_CONFIG_HOME="+home+"/config",
		"HELM_CACHE_HOME="+home+"/cache",
		"HELM_DATA_HOME="+home+"/data",
	)
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, ee.Stderr)
		}
		t.Fatalf("helm %s: %v", strings.Join(args, " "), err)
	}
	return out
}

type helmListEntry struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Revision  string `json:"revision"`
	Status    string `json:"status"`
	Chart     string `json:"chart"`
}

type helmHistoryEntry struct {
	Revision    int    `json:"revision"`
	Status      string `json:"status"`
	Description string `json:"description"`
}

func helmHistory(t *testing.T, ns, name string) []helmHistoryEntry {
	t.Helper()
	var hist []helmHistoryEntry
	if err := json.Unmarshal(helmCLI(t, "history", name, "-n", ns, "-o", "json"), &hist); err != nil {
		t.Fatalf("decoding helm history: %v", err)
	}
	return hist
}

func configMapData(t *testing.T, ns, name string) map[string]string {
	t.Helper()
	cm, err := env.Clientset.CoreV1().ConfigMaps(ns).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("reading ConfigMap %s/%s: %v", ns, name, err)
	}
	return cm.Data
}

func TestHelmApplyInstallUpgradeRollback(t *testing.T) {
	for _, wait := range []bool{false, true} {
		t.Run(fmt.Sprintf("wait=%v", wait), func(t *testing.T) { testHelmApplyInstallUpgradeRollback(t, wait) })
	}
}

func testHelmApplyInstallUpgradeRollback(t *testing.T, wait bool) {
	ns := env.Namespace(t)
	c := newClient(t, Options{})
	ctx := t.Context()

	if _, err := c.HelmStatus(ctx, "demo", ns); !errors.Is(err, ErrNoHelmRelease) {
		t.Fatalf("HelmStatus before install: err = %v, want ErrNoHelmRelease", err)
	}

	// Install.
	res, err := c.HelmApply(ctx, demoRelease(t, ns, map[string]any{"greeting": "hello"}), HelmOptions{Description: "gitops apply abc123"})
	if err != nil {
		t.Fatalf("install: %v", err)
	}
	if !res.Installed || res.Revision != 1 || res.Status != "deployed" || res.Chart != "demo" || res.ChartVersion != "0.1.0" {
		t.Fatalf("install result = %+v, want installed revision 1 deployed demo 0.1.0", res)
	}
	var list []helmListEntry
	if err := json.Unmarshal(helmCLI(t, "list", "-n", ns, "-o", "json"), &list); err != nil {
		t.Fatalf("decoding helm list: %v", err)
	}
	if len(list) != 1 || list[0].Name != "demo" || list[0].Namespace != ns || list[0].Revision != "1" || list[0].Status != "deployed" || list[0].Chart != "demo-0.1.0" {
		t.Fatalf("helm list = %+v, want demo revision 1 deployed", list)
	}
	if got := configMapData(t, ns, "demo-config")["greeting"]; got != "hello" {
		t.Errorf("greeting = %q after install, want hello", got)
	}
	if got := configMapData(t, ns, "demo-hook")["greeting"]; got != "hello" {
		t.Errorf("hook greeting = %q after install, want hello (the hook ran)", got)
	}

	// Upgrade with changed values.
	res, err = c.HelmApply(ctx, demoRelease(t, ns, map[string]any{"greeting": "hi"}), HelmOptions{})
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	if res.Installed || res.Revision != 2 || res.Status != "deployed" {
		t.Fatalf("upgrade result = %+v, want upgraded revision 2 deployed", res)
	}
	hist := helmHistory(t, ns, "demo")
	if len(hist) != 2 || hist[0].Status != "superseded" || hist[0].Description != "gitops apply abc123" || hist[1].Status != "deployed" {
		t.Fatalf("helm history = %+v, want revision 1 superseded (with our description) and 2 deployed", hist)
	}
	if got := configMapData(t, ns, "demo-config")["greeting"]; got != "hi" {
		t.Errorf("greeting = %q after upgrade, want hi", got)
	}

	// An upgrade the API server rejects rolls back to revision 2: by our
	// hand without waiting, by Helm's own rollback-on-failure with waiting.
	_, err = c.HelmApply(ctx, demoRelease(t, ns, map[string]any{"greeting": "broken", "invalid": true}), HelmOptions{Wait: wait})
	if err == nil {
		t.Fatal("upgrade with an invalid object succeeded, want an error")
	}
	if !strings.Contains(err.Error(), "rolled back") || !strings.Contains(err.Error(), "bad key!") {
		t.Errorf("error = %v, want it to say the release was rolled back and name the invalid key", err)
	}
	st, err := c.HelmStatus(ctx, "demo", ns)
	if err != nil {
		t.Fatal(err)
	}
	if st.Revision != 4 || st.Status != "deployed" || st.Description != "Rollback to 2" {
		t.Errorf("status after the failed upgrade = %+v, want revision 4 deployed \"Rollback to 2\"", st)
	}
	hist = helmHistory(t, ns, "demo")
	if len(hist) != 4 || hist[2].Status != "failed" || hist[3].Status != "deployed" || hist[3].Description != "Rollback to 2" {
		t.Fatalf("helm history = %+v, want revision 3 failed and 4 deployed as a rollback to 2", hist)
	}
	if got := configMapData(t, ns, "demo-config"); got["greeting"] != "hi" {
		t.Errorf("ConfigMap after rollback = %v, want greeting hi (revision 2)", got)
	}
}

func TestHelmApplyMaxHistory(t *testing.T) {
	ns := env.Namespace(t)
	c := newClient(t, Options{})
	for i, g := range []string{"a", "b", "c", "d"} {
		if _, err := c.HelmApply(t.Context(), demoRelease(t, ns, map[string]any{"greeting": g}), HelmOptions{MaxHistory: 2}); err != nil {
			t.Fatalf("apply %d: %v", i, err)
		}
	}
	hist := helmHistory(t, ns, "demo")
	if len(hist) != 2 || hist[1].Revision != 4 {
		t.Fatalf("helm history = %+v, want the last 2 of 4 revisions", hist)
	}
}

func TestHelmApplyNamespaceFromClient(t *testing.T) {
	ns := env.Namespace(t)
	c := newClient(t, Options{})
	// The test client sets no namespace: releases without one go to
	// "default" (checked on the helper, not by installing there).
	if got := c.helmNamespace(""); got != "default" {
		t.Errorf("helmNamespace(\"\") = %q, want default", got)
	}
	if got := c.helmNamespace(ns); got != ns {
		t.Errorf("helmNamespace(%q) = %q", ns, got)
	}
}

func changeOf(t *testing.T, cs *diff.ChangeSet, ref string) diff.Change {
	t.Helper()
	for _, c := range cs.Changes {
		if c.Ref.String() == ref {
			return c
		}
	}
	var refs []string
	for _, c := range cs.Changes {
		refs = append(refs, c.Ref.String()+" "+string(c.Action))
	}
	t.Fatalf("no change for %s in %v", ref, refs)
	return diff.Change{}
}

func TestHelmDiff(t *testing.T) {
	ns := env.Namespace(t)
	c := newClient(t, Options{})
	ctx := t.Context()
	release := "helm.sh/Release/" + ns + "/demo"

	// No release yet: everything is created, hooks and values included,
	// and nothing is written.
	cs, err := c.HelmDiff(ctx, demoRelease(t, ns, map[string]any{"greeting": "hello"}), HelmDiffOptions{})
	if err != nil {
		t.Fatalf("diff before install: %v", err)
	}
	for _, ref := range []string{"ConfigMap/" + ns + "/demo-config", "ConfigMap/" + ns + "/demo-hook", "Secret/" + ns + "/demo-db", release} {
		if got := changeOf(t, cs, ref).Action; got != diff.Created {
			t.Errorf("%s: %s, want created", ref, got)
		}
	}
	if len(cs.Changes) != 4 {
		t.Errorf("diff before install has %d changes, want 4", len(cs.Changes))
	}
	if _, err := c.HelmStatus(ctx, "demo", ns); !errors.Is(err, ErrNoHelmRelease) {
		t.Fatalf("the diff installed something: HelmStatus err = %v", err)
	}

	first := map[string]any{"greeting": "hello", "db": map[string]any{"password": helmCanary + "-1"}}
	if _, err := c.HelmApply(ctx, demoRelease(t, ns, first), HelmOptions{}); err != nil {
		t.Fatalf("install: %v", err)
	}

	// Same chart and values: no changes.
	cs, err = c.HelmDiff(ctx, demoRelease(t, ns, first), HelmDiffOptions{})
	if err != nil {
		t.Fatalf("diff of the deployed release: %v", err)
	}
	if cs.HasChanges() {
		t.Errorf("diff of the deployed release has changes: %+v", cs.Changes)
	}
	if got, want := changeOf(t, cs, release).After.Object["values"], (map[string]any{"greeting": "hello", "db": map[string]any{"password": "***"}}); !jsonEqual(got, want) {
		t.Errorf("unchanged values = %v, want %v", got, want)
	}

	// Changed values: the ConfigMap, the hook, the Secret and the values
	// change, with every secret masked.
	second := map[string]any{"greeting": "hi", "db": map[string]any{"password": helmCanary + "-2"}}
	cs, err = c.HelmDiff(ctx, demoRelease(t, ns, second), HelmDiffOptions{})
	if err != nil {
		t.Fatalf("diff of an upgrade: %v", err)
	}
	for _, ref := range []string{"ConfigMap/" + ns + "/demo-config", "ConfigMap/" + ns + "/demo-hook", "Secret/" + ns + "/demo-db", release} {
		if got := changeOf(t, cs, ref).Action; got != diff.Configured {
			t.Errorf("%s: %s, want configured", ref, got)
		}
	}
	cm := changeOf(t, cs, "ConfigMap/"+ns+"/demo-config")
	if !strings.Contains(cm.Diff, `-  greeting: hello`) || !strings.Contains(cm.Diff, `+  greeting: hi`) {
		t.Errorf("ConfigMap diff does not show the greeting change:\n%s", cm.Diff)
	}
	rel := changeOf(t, cs, release)
	for _, line := range []string{"-    password: '*** (before)'", "+    password: '*** (after)'", "-  greeting: '*** (before)'", "+  greeting: hi"} {
		if !strings.Contains(rel.Diff, line+"\n") {
			t.Errorf("values diff lacks %q:\n%s", line, rel.Diff)
		}
	}
	for _, c := range cs.Changes {
		if strings.Contains(c.Diff, helmCanary) {
			t.Errorf("%s: the diff shows a secret value:\n%s", c.Ref, c.Diff)
		}
	}
	hist := helmHistory(t, ns, "demo")
	if len(hist) != 1 {
		t.Errorf("the diff changed the release history: %+v", hist)
	}
	if got := configMapData(t, ns, "demo-config")["greeting"]; got != "hello" {
		t.Errorf("the diff changed the live ConfigMap: greeting = %q", got)
	}

	// Values without secret-looking keys are shown.
	third := map[string]any{"greeting": "hey"}
	if _, err := c.HelmApply(ctx, demoRelease(t, ns, third), HelmOptions{}); err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	cs, err = c.HelmDiff(ctx, demoRelease(t, ns, map[string]any{"greeting": "howdy"}), HelmDiffOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rel = changeOf(t, cs, release)
	if !strings.Contains(rel.Diff, "-  greeting: '*** (before)'") || !strings.Contains(rel.Diff, "+  greeting: howdy") {
		t.Errorf("values diff does not show the greeting change, masking the release's value:\n%s", rel.Diff)
	}
	// A dry-run of an upgrade the API server would reject is not an error
	// here: the objects are compared as the release records them.
	if _, err := c.HelmDiff(ctx, demoRelease(t, ns, map[string]any{"invalid": true}), HelmDiffOptions{DisableLookup: true}); err != nil {
		t.Errorf("diff of an invalid upgrade: %v", err)
	}
}

// TestHelmDiffClusterValues stores a release whose values hold a DSN and a
// webhook URL that the repository does not have (set by hand with helm):
// no output of the diff shows them, while the repository's values show as
// they are.
func TestHelmDiffClusterValues(t *testing.T) {
	ns := env.Namespace(t)
	c := newClient(t, Options{})
	ctx := t.Context()
	const (
		dsn     = "postgres://app:canary-dsn-pw@db.internal:5432/app"
		webhook = "https://hooks.example.com/services/canary-webhook-token"
	)
	stored := map[string]any{
		"greeting": "hello",
		"dsn":      dsn,
		"alerts":   map[string]any{"url": webhook, "channels": []any{"#ops", webhook}},
		"replicas": 2,
	}
	if _, err := c.HelmApply(ctx, demoRelease(t, ns, stored), HelmOptions{}); err != nil {
		t.Fatalf("install: %v", err)
	}
	repo := map[string]any{"greeting": "hello", "replicas": 3, "alerts": map[string]any{"channels": []any{"#ops"}}, "image": "repo-visible:1.0"}
	cs, err := c.HelmDiff(ctx, demoRelease(t, ns, repo), HelmDiffOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rel := changeOf(t, cs, "helm.sh/Release/"+ns+"/demo")
	wantBefore := map[string]any{
		"greeting": "hello",
		"dsn":      "***",
		"alerts":   map[string]any{"url": "***", "channels": []any{"#ops", "***"}},
		"replicas": "*** (before)",
	}
	if got := rel.Before.Object["values"]; !jsonEqual(got, wantBefore) {
		t.Errorf("stored values shown as %v, want %v", got, wantBefore)
	}
	if got := rel.After.Object["values"]; !jsonEqual(got, repo) {
		t.Errorf("repository values shown as %v, want %v", got, repo)
	}
	for _, f := range report.Formats() {
		var buf bytes.Buffer
		if err := report.Write(&buf, cs, report.Options{Format: f}); err != nil {
			t.Fatal(err)
		}
		out := buf.String()
		for _, canary := range []string{"canary-dsn-pw", "canary-webhook-token", "db.internal", "hooks.example.com"} {
			if strings.Contains(out, canary) {
				t.Errorf("%s output shows %q from the stored release", f, canary)
			}
		}
		for _, shown := range []string{"repo-visible:1.0", "#ops"} {
			if !strings.Contains(out, shown) {
				t.Errorf("%s output lacks the repository's %q", f, shown)
			}
		}
	}
}

func TestHelmMask(t *testing.T) {
	tests := []struct {
		name                  string
		before, after         any
		wantBefore, wantAfter any
	}{
		{
			name:       "equal values are shown",
			before:     map[string]any{"a": "x", "n": 1.0},
			after:      map[string]any{"a": "x", "n": 1.0},
			wantBefore: map[string]any{"a": "x", "n": 1.0},
			wantAfter:  map[string]any{"a": "x", "n": 1.0},
		},
		{
			name:       "cluster-only values are masked",
			before:     map[string]any{"dsn": "postgres://u:p@h/db", "nested": map[string]any{"url": "https://x"}},
			after:      map[string]any{},
			wantBefore: map[string]any{"dsn": "***", "nested": map[string]any{"url": "***"}},
			wantAfter:  map[string]any{},
		},
		{
			name:       "changed values: the cluster's masked, the repository's shown",
			before:     map[string]any{"url": "https://old.internal"},
			after:      map[string]any{"url": "https://new.example"},
			wantBefore: map[string]any{"url": "*** (before)"},
			wantAfter:  map[string]any{"url": "https://new.example"},
		},
		{
			name:       "secret-looking keys are masked on both sides",
			before:     map[string]any{"db": map[string]any{"password": "a", "user": "app"}, "apiKey": "k"},
			after:      map[string]any{"db": map[string]any{"password": "b", "user": "app"}, "apiKey": "k"},
			wantBefore: map[string]any{"db": map[string]any{"password": "*** (before)", "user": "app"}, "apiKey": "***"},
			wantAfter:  map[string]any{"db": map[string]any{"password": "*** (after)", "user": "app"}, "apiKey": "***"},
		},
		{
			name:       "lists item by item",
			before:     []any{"same", "cluster", "more"},
			after:      []any{"same", "repo"},
			wantBefore: []any{"same", "*** (before)", "***"},
			wantAfter:  []any{"same", "repo"},
		},
		{
			name:       "a map replacing a value",
			before:     map[string]any{"db": "postgres://u:p@h/db"},
			after:      map[string]any{"db": map[string]any{"host": "h", "token": "t"}},
			wantBefore: map[string]any{"db": "*** (before)"},
			wantAfter:  map[string]any{"db": map[string]any{"host": "h", "token": "***"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, a := helmMask(tt.before, tt.after, true, true, false)
			if !jsonEqual(b, tt.wantBefore) || !jsonEqual(a, tt.wantAfter) {
				t.Errorf("helmMask = %v, %v; want %v, %v", b, a, tt.wantBefore, tt.wantAfter)
			}
		})
	}
}

func TestHelmDiffLookup(t *testing.T) {
	ns := env.Namespace(t)
	c := newClient(t, Options{})
	ch := demoChart(t)
	ch.Templates = append(ch.Templates, &common.File{Name: "templates/lookup.yaml", Data: []byte(`apiVersion: v1
kind: ConfigMap
metadata:
  name: lookup
data:
  found: {{ dig "metadata" "name" "none" (lookup "v1" "Namespace" "" .Release.Namespace) | quote }}
`)})
	rel := HelmRelease{Name: "demo", Namespace: ns, Chart: ch}
	for _, tc := range []struct {
		disable bool
		want    string
	}{{false, ns}, {true, "none"}} {
		cs, err := c.HelmDiff(t.Context(), rel, HelmDiffOptions{DisableLookup: tc.disable})
		if err != nil {
			t.Fatal(err)
		}
		got := changeOf(t, cs, "ConfigMap/"+ns+"/lookup").After.Object["data"].(map[string]any)["found"]
		if got != tc.want {
			t.Errorf("DisableLookup=%v: lookup found %v, want %s", tc.disable, got, tc.want)
		}
	}
}

// TestHelmDiffTemplateFuncs: the SDK's own render of a release from an
// untrusted change (outside the sandbox) gets render's capped functions, so
// a template that asks for a 3 GB string is refused before it is made,
// while the chart's ordinary functions still work.
func TestHelmDiffTemplateFuncs(t *testing.T) {
	ns := env.Namespace(t)
	c := newClient(t, Options{})
	bomb := demoChart(t)
	bomb.Templates = append(bomb.Templates, &common.File{Name: "templates/bomb.yaml", Data: []byte(`apiVersion: v1
kind: ConfigMap
metadata:
  name: bomb
data:
  x: {{ repeat 3000000000 "x" | quote }}
`)})
	funcs := render.HelmFuncs(t.Context(), render.Limits{})
	_, err := c.HelmDiff(t.Context(), HelmRelease{Name: "demo", Namespace: ns, Chart: bomb}, HelmDiffOptions{DisableLookup: true, TemplateFuncs: funcs})
	if err == nil || !strings.Contains(err.Error(), "repeat") {
		t.Fatalf("HelmDiff of a chart repeating a string 3e9 times = %v, want a refusal naming repeat", err)
	}

	cs, err := c.HelmDiff(t.Context(), HelmRelease{Name: "demo", Namespace: ns, Chart: demoChart(t)}, HelmDiffOptions{DisableLookup: true, TemplateFuncs: funcs})
	if err != nil {
		t.Fatalf("HelmDiff of the demo chart with capped functions: %v", err)
	}
	if !cs.HasChanges() {
		t.Error("HelmDiff of a release not yet installed shows no changes")
	}
}

// serveChartRepo serves the archives of chart demo at each version as an
// HTTP chart repository at <url>/charts.
func serveChartRepo(t *testing.T, versions ...string) string {
	t.Helper()
	files := map[string][]byte{}
	idx := repov1.NewIndexFile()
	for _, v := range versions {
		ch := demoChart(t)
		ch.Metadata.Version = v
		data := packageDemo(t, ch)
		sum := sha256.Sum256(data)
		files["demo-"+v+".tgz"] = data
		if err := idx.MustAdd(ch.Metadata, "demo-"+v+".tgz", "", hex.EncodeToString(sum[:])); err != nil {
			t.Fatal(err)
		}
	}
	idx.SortEntries()
	index := filepath.Join(t.TempDir(), "index.yaml")
	if err := idx.WriteFile(index, 0o644); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(index)
	if err != nil {
		t.Fatal(err)
	}
	files["index.yaml"] = data
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, ok := files[strings.TrimPrefix(r.URL.Path, "/charts/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(data)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/charts"
}

func packageDemo(t *testing.T, ch *chart.Chart) []byte {
	t.Helper()
	file, err := chartutil.Save(ch, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestHelmApplyRemoteCharts installs a Helm app from an HTTP chart
// repository with a version range, then upgrades it to a chart from an OCI
// registry, end to end: gitops.yaml app → render.AppRelease (chart fetched
// and cached by chartrepo) → HelmApply.
func TestHelmApplyRemoteCharts(t *testing.T) {
	ns := env.Namespace(t)
	c := newClient(t, Options{})
	ctx := t.Context()
	repoURL := serveChartRepo(t, "0.1.0", "0.2.0", "1.0.0")

	reg := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(reg.Close)
	host := strings.TrimPrefix(reg.URL, "http://")
	pusher, err := helmregistry.NewClient(helmregistry.ClientOptPlainHTTP(), helmregistry.ClientOptCredentialsFile(filepath.Join(t.TempDir(), "config.json")))
	if err != nil {
		t.Fatal(err)
	}
	oci := demoChart(t)
	oci.Metadata.Version = "0.3.0"
	if _, err := pusher.Push(packageDemo(t, oci), host+"/charts/demo:0.3.0"); err != nil {
		t.Fatalf("pushing the chart: %v", err)
	}

	fetcher := &chartrepo.Fetcher{CacheDir: t.TempDir(), Keychain: authn.NewMultiKeychain()}
	opts := render.AppOptions{FetchChart: func(ctx context.Context, repo, chart, version string) (string, error) {
		ch, err := fetcher.Fetch(ctx, repo, chart, version)
		if err != nil {
			return "", err
		}
		return ch.Dir, nil
	}}
	repo := &config.Repository{Dir: t.TempDir()}
	apply := func(h *config.Helm) *HelmResult {
		t.Helper()
		app := config.App{Name: "demo", Namespace: ns, Helm: h}
		rel, err := render.AppRelease(ctx, repo, app, opts)
		if err != nil {
			t.Fatal(err)
		}
		res, err := c.HelmApply(ctx, HelmRelease{Name: rel.Name, Namespace: rel.Namespace, Chart: rel.Chart, Values: rel.Values}, HelmOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}

	res := apply(&config.Helm{Repo: repoURL, Chart: "demo", Version: "0.x", Values: map[string]any{"greeting": "from http"}})
	if res.ChartVersion != "0.2.0" || res.Revision != 1 {
		t.Errorf("install from the HTTP repository = %+v, want chart 0.2.0 revision 1", res)
	}
	res = apply(&config.Helm{Chart: "oci://" + host + "/charts/demo", Version: ">=0.3.0 <1.0.0", Values: map[string]any{"greeting": "from oci"}})
	if res.ChartVersion != "0.3.0" || res.Revision != 2 {
		t.Errorf("upgrade from the OCI registry = %+v, want chart 0.3.0 revision 2", res)
	}
	var list []helmListEntry
	if err := json.Unmarshal(helmCLI(t, "list", "-n", ns, "-o", "json"), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Chart != "demo-0.3.0" || list[0].Revision != "2" {
		t.Errorf("helm list = %+v, want demo-0.3.0 at revision 2", list)
	}
	if got := configMapData(t, ns, "demo-config")["greeting"]; got != "from oci" {
		t.Errorf("greeting = %q, want from oci", got)
	}
}
