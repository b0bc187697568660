package cluster

import (
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

	"helm.sh/helm/v4/pkg/chart/loader/archive"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
	helmregistry "helm.sh/helm/v4/pkg/registry"
	repov1 "helm.sh/helm/v4/pkg/repo/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-gitops/kubectl-gitops/internal/chartrepo"
	"github.com/kubectl-gitops/kubectl-gitops/internal/config"
	"github.com/kubectl-gitops/kubectl-gitops/internal/helmrelease"
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
	return chartOf(t, "demo", files)
}

// chartOf loads the chart made of files (contents by path).
func chartOf(t *testing.T, name string, files map[string]string) *chart.Chart {
	t.Helper()
	var buffered []*archive.BufferedFile
	for path, data := range files {
		buffered = append(buffered, &archive.BufferedFile{Name: path, Data: []byte(data)})
	}
	ch, err := loader.LoadFiles(buffered)
	if err != nil {
		t.Fatalf("loading the %s chart: %v", name, err)
	}
	return ch
}

func demoRelease(t *testing.T, ns string, values map[string]any) helmrelease.Release {
	return helmrelease.Release{Name: "demo", Namespace: ns, Chart: demoChart(t), Values: values}
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
		res, err := c.HelmApply(ctx, *rel, HelmOptions{})
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
