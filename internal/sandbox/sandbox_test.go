//go:build linux

package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/diff"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/kubectl-gitops/kubectl-gitops/internal/config"
	"github.com/kubectl-gitops/kubectl-gitops/render"
)

// Test-only children: the same limits and network refusal as Main, other
// work.
const (
	probeCommand  = "__gitops-render-test-probe"
	krustyCommand = "__gitops-render-test-krusty"
	burnCommand   = "__gitops-render-test-burn"
)

func TestMain(m *testing.M) {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case Command:
			os.Exit(Main())
		case probeCommand:
			os.Exit(serve(os.Args[2:], probeNetwork))
		case krustyCommand:
			os.Exit(serve(os.Args[2:], krustyBuild))
		case burnCommand:
			os.Exit(serve(os.Args[2:], burnCPU))
		}
	}
	os.Exit(m.Run())
}

// probeNetwork tries, in the child, every way out it knows to the address
// in req.Path and reports each outcome as a warning "name: ok" or
// "name: failed: …".
func probeNetwork(ctx context.Context, req *Request) (*render.Result, error) {
	url := req.Path
	host := strings.TrimPrefix(url, "http://")
	host = host[:strings.IndexByte(host, '/')]
	res := &render.Result{}
	note := func(name string, err error) {
		if err != nil {
			res.Warnings = append(res.Warnings, name+": failed: "+err.Error())
			return
		}
		res.Warnings = append(res.Warnings, name+": ok")
	}
	get := func(c *http.Client) error {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	note("http.Get", get(http.DefaultClient))
	note("http.Client{}", get(&http.Client{}))
	conn, err := net.Dial("tcp", host)
	if err == nil {
		conn.Close()
	}
	note("net.Dial", err)
	_, err = net.DefaultResolver.LookupHost(ctx, "example.com")
	note("LookupHost", err)
	for _, kv := range os.Environ() {
		res.Warnings = append(res.Warnings, "env: "+kv)
	}
	return res, nil
}

// burnCPU uses 600ms of CPU time, then answers a ConfigMap named after the
// app.
func burnCPU(_ context.Context, req *Request) (*render.Result, error) {
	start, err := cpuUsed()
	if err != nil {
		return nil, err
	}
	for used := start; used-start < 600*time.Millisecond; {
		if used, err = cpuUsed(); err != nil {
			return nil, err
		}
	}
	obj := &unstructured.Unstructured{}
	obj.SetAPIVersion("v1")
	obj.SetKind("ConfigMap")
	obj.SetName(req.App)
	return &render.Result{Objects: []*unstructured.Unstructured{obj}}, nil
}

// krustyBuild runs kustomize on req.Path with its own defaults and no
// pre-build check at all: what the render would do if the check missed
// something.
func krustyBuild(_ context.Context, req *Request) (*render.Result, error) {
	resMap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), req.Path)
	if err != nil {
		return nil, err
	}
	res := &render.Result{}
	for _, r := range resMap.Resources() {
		m, err := r.Map()
		if err != nil {
			return nil, err
		}
		res.Objects = append(res.Objects, &unstructured.Unstructured{Object: m})
	}
	return res, nil
}

// writeTree writes files (path → content) under a new folder.
func writeTree(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// secretServer is a loopback server holding a secret; it counts every
// connection made to it.
func secretServer(t *testing.T) (url string, conns *atomic.Int64) {
	t.Helper()
	conns = &atomic.Int64{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "aws-secret-access-key-0123456789")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL + "/creds", conns
}

const secretBody = "aws-secret-access-key-0123456789"

func TestNoNetworkInTheChild(t *testing.T) {
	tests := []struct {
		name   string
		runner Runner
	}{
		{"namespaces where allowed", Runner{command: probeCommand}},
		{"without namespaces", Runner{command: probeCommand, noNamespaces: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			url, conns := secretServer(t)
			res, err := tc.runner.Run(t.Context(), &Request{Path: url})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("namespaces: %q, socket filter: %v", res.Namespaces, res.SocketFilter)
			if !res.SocketFilter && (runtime.GOARCH == "amd64" || runtime.GOARCH == "arm64") {
				t.Error("no socket filter in the render process")
			}
			want := []string{"http.Get", "http.Client{}", "LookupHost"}
			if res.Namespaces != "" || res.SocketFilter {
				// Only the kernel stops a dialer built by hand.
				want = append(want, "net.Dial")
			}
			outcome := map[string]string{}
			for _, w := range res.Warnings {
				name, rest, _ := strings.Cut(w, ": ")
				outcome[name] = rest
			}
			for _, name := range want {
				if !strings.HasPrefix(outcome[name], "failed") {
					t.Errorf("%s in the render process: %q, want it to fail", name, outcome[name])
				}
			}
			if n := conns.Load(); n != 0 {
				t.Errorf("the server saw %d connections, want none", n)
			}
		})
	}
}

// fetchingKustomization is a tree whose ConfigMap generator, given as a
// builtin plugin config file, would put the body of url into a ConfigMap.
func fetchingKustomization(t *testing.T, url string) string {
	return writeTree(t, map[string]string{
		"kustomization.yaml": "generators: [gen.yaml]\n",
		"gen.yaml": `apiVersion: builtin
kind: ConfigMapGenerator
metadata: {name: stolen}
items: []
files: [creds=` + url + `]
`,
	})
}

func TestRemoteFetchByKustomizeIsRefused(t *testing.T) {
	url, conns := secretServer(t)
	dir := fetchingKustomization(t, url)
	tests := []struct {
		name string
		run  func() (*render.Result, error)
	}{
		{"kustomize without any check", func() (*render.Result, error) {
			res, err := Runner{command: krustyCommand}.Run(t.Context(), &Request{Path: dir})
			if err != nil {
				return nil, err
			}
			return res.Result, nil
		}},
		{"render.Path", func() (*render.Result, error) {
			return Runner{}.Path(t.Context(), dir, render.Options{})
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := tc.run()
			if err == nil {
				t.Fatalf("the render succeeded with %d objects; want the fetch to fail", len(res.Objects))
			}
			if strings.Contains(err.Error(), secretBody) {
				t.Errorf("the error shows the server's body: %v", err)
			}
			if n := conns.Load(); n != 0 {
				t.Errorf("the server saw %d connections, want none", n)
			}
		})
	}
}

// chart writes a chart whose one template is body.
func chart(t *testing.T, body string) string {
	return writeTree(t, map[string]string{
		"Chart.yaml":        "apiVersion: v2\nname: bomb\nversion: 0.1.0\n",
		"templates/cm.yaml": body,
	})
}

// doubling builds a string of 2^40 bytes.
const doubling = `{{- $s := "x" }}{{- range $i := list 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 }}{{- $s = print $s $s }}{{- end }}
apiVersion: v1
kind: ConfigMap
metadata: {name: bomb}
data: {n: "{{ len $s }}"}
`

// spin loops 10^10 times without allocating.
var spin = `{{- $l := list 0 1 2 3 4 5 6 7 8 9 }}` + strings.Repeat(`{{- range $l }}`, 10) + strings.Repeat(`{{- end }}`, 10) + `
apiVersion: v1
kind: ConfigMap
metadata: {name: spin}
`

func benignTree(t *testing.T) string {
	return writeTree(t, map[string]string{
		"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fine}\ndata: {a: b}\n",
	})
}

func TestLimitsStopTheRender(t *testing.T) {
	big := writeTree(t, map[string]string{
		"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata: {a: " + strings.Repeat("x", 64<<10) + "}\n",
	})
	tests := []struct {
		name   string
		runner Runner
		path   string
		want   LimitError
		text   string
	}{
		{"memory", Runner{Memory: 256 << 20}, chart(t, doubling),
			LimitError{Limit: LimitMemory, Bytes: 256 << 20}, "over 256 MiB of memory"},
		{"cpu", Runner{CPU: time.Second, Timeout: time.Minute}, chart(t, spin),
			LimitError{Limit: LimitCPU, Duration: time.Second}, "over 1s of CPU time"},
		{"wall time", Runner{Timeout: time.Second, CPU: time.Minute}, chart(t, spin),
			LimitError{Limit: LimitTime, Duration: time.Second}, "over 1s"},
		{"output", Runner{MaxOutputBytes: 16 << 10}, big,
			LimitError{Limit: LimitOutput, Bytes: 16 << 10}, "over 16 KiB of output"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.runner.Path(t.Context(), tc.path, render.Options{})
			var limit *LimitError
			if !errors.As(err, &limit) {
				t.Fatalf("got %v, want a *LimitError", err)
			}
			tc.want.What = tc.path
			if !reflect.DeepEqual(&tc.want, limit) {
				t.Errorf("limit error (-want +got):\n%s", diff.Diff(&tc.want, limit))
			}
			if want := "the render of " + tc.path + " was stopped: " + tc.text; err.Error() != want {
				t.Errorf("message %q, want %q", err.Error(), want)
			}
			// The same runner renders the next tree as if nothing happened.
			res, err := tc.runner.Path(t.Context(), benignTree(t), render.Options{})
			if err != nil {
				t.Fatalf("benign render after the stopped one: %v", err)
			}
			if len(res.Objects) != 1 || res.Objects[0].GetName() != "fine" {
				t.Errorf("benign render: got %d objects", len(res.Objects))
			}
		})
	}
}

func TestCancelKillsTheProcessGroup(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	started := make(chan int, 1)
	go func() {
		pid := <-started
		cancel()
		started <- pid
	}()
	_, err := Runner{Started: func(pid int) { started <- pid }}.Path(ctx, chart(t, spin), render.Options{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	pid := <-started
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("the render process %d is still there: kill(0) = %v", pid, err)
	}
	if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("the render's process group %d is still there: kill(0) = %v", pid, err)
	}
}

func TestSandboxedEqualsInProcess(t *testing.T) {
	repo, err := config.Load("../../testdata/examples/shop/gitops.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, app := range repo.Apps {
		t.Run(app.Name, func(t *testing.T) {
			want, err := render.App(t.Context(), repo, app, render.AppOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got, err := Runner{}.App(t.Context(), repo, app, render.AppOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(want, got) {
				t.Errorf("sandboxed render differs (-in-process +sandboxed):\n%s", diff.Diff(want, got))
			}
		})
	}
	t.Run("repository", func(t *testing.T) {
		want, err := render.Repository(t.Context(), repo, render.AppOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := Runner{}.Repository(t.Context(), repo, render.AppOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(want, got) {
			t.Errorf("sandboxed render differs (-in-process +sandboxed):\n%s", diff.Diff(want, got))
		}
	})
}

func TestRenderErrorsKeepTheirKind(t *testing.T) {
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret.yaml"), []byte("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tree := writeTree(t, map[string]string{"kustomization.yaml": "resources: [broken.yaml]\n", "broken.yaml": "a: [\n"})
	escape := writeTree(t, map[string]string{})
	if err := os.Symlink(filepath.Join(outside, "secret.yaml"), filepath.Join(escape, "secret.yaml")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		path   string
		unsafe bool
	}{
		{"broken YAML", tree, false},
		{"symlink out of the root", escape, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, want := render.Path(t.Context(), tc.path, render.Options{})
			_, got := Runner{}.Path(t.Context(), tc.path, render.Options{})
			if want == nil || got == nil {
				t.Fatalf("in-process %v, sandboxed %v; want both to fail", want, got)
			}
			if got.Error() != want.Error() {
				t.Errorf("message %q, want the in-process %q", got, want)
			}
			if errors.Is(got, render.ErrUnsafe) != tc.unsafe || errors.Is(want, render.ErrUnsafe) != tc.unsafe {
				t.Errorf("errors.Is(ErrUnsafe): sandboxed %v, in-process %v, want %v", errors.Is(got, render.ErrUnsafe), errors.Is(want, render.ErrUnsafe), tc.unsafe)
			}
		})
	}
}

func TestFetchesHappenInTheParent(t *testing.T) {
	vendor := writeTree(t, map[string]string{
		"deploy/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: vendored}\n",
	})
	repoDir := writeTree(t, map[string]string{
		"gitops.yaml": `apiVersion: gitops.kubectl.dev/v1alpha1
kind: Repository
apps:
  - name: vendor
    namespace: v
    source: {git: https://example.com/vendor.git, ref: v1.0.0, path: deploy}
`,
	})
	repo, err := config.Load(filepath.Join(repoDir, "gitops.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var fetched []string
	opts := render.AppOptions{Fetch: func(_ context.Context, url, ref string) (string, error) {
		fetched = append(fetched, url+"@"+ref)
		return vendor, nil
	}}
	res, err := Runner{}.App(t.Context(), repo, repo.Apps[0], opts)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"https://example.com/vendor.git@v1.0.0"}; !reflect.DeepEqual(want, fetched) {
		t.Errorf("fetches in the parent: %q, want %q", fetched, want)
	}
	if len(res.Objects) != 1 || res.Objects[0].GetName() != "vendored" || res.Objects[0].GetNamespace() != "v" {
		t.Errorf("got %d objects, want the vendored ConfigMap in v", len(res.Objects))
	}

	// A source the parent did not fetch is refused by the child.
	_, err = Runner{}.Run(t.Context(), &Request{Config: repo.File, App: "vendor"})
	if !errors.Is(err, render.ErrUnsafe) || !strings.Contains(err.Error(), "was not fetched before the render") {
		t.Errorf("got %v, want a refusal of the unfetched source", err)
	}
}

func TestEnvironmentIsScrubbed(t *testing.T) {
	for _, name := range []string{"GITHUB_TOKEN", "KUBECONFIG", "HTTPS_PROXY", "AWS_SECRET_ACCESS_KEY"} {
		t.Setenv(name, "leaked-"+name)
	}
	res, err := Runner{command: probeCommand}.Run(t.Context(), &Request{Path: "http://127.0.0.1:1/"})
	if err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, w := range res.Warnings {
		if kv, ok := strings.CutPrefix(w, "env: "); ok {
			env = append(env, kv)
		}
	}
	if len(env) == 0 {
		t.Fatal("the probe reported no environment")
	}
	for _, kv := range env {
		if strings.Contains(kv, "leaked-") {
			t.Errorf("the render process gets %s", kv)
		}
	}
}

func TestFormatBytes(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{
		{1 << 30, "1 GiB"},
		{3 << 29, "1.5 GiB"},
		{256 << 20, "256 MiB"},
		{16 << 10, "16 KiB"},
		{100, "100 bytes"},
	}
	for _, tc := range tests {
		if got := formatBytes(tc.n); got != tc.want {
			t.Errorf("formatBytes(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

// BenchmarkRender measures what the sandbox adds to the render of a small
// tree: the same app rendered in this process and in a child.
func BenchmarkRender(b *testing.B) {
	repo, err := config.Load("../../testdata/examples/shop/gitops.yaml")
	if err != nil {
		b.Fatal(err)
	}
	app, _ := repo.App("web")
	b.Run("in-process", func(b *testing.B) {
		start := cpuTime(b)
		for b.Loop() {
			if _, err := render.App(b.Context(), repo, *app, render.AppOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64((cpuTime(b)-start).Milliseconds())/float64(b.N), "cpu-ms/op")
	})
	for _, r := range []struct {
		name   string
		runner Runner
	}{
		{"sandboxed", Runner{}},
		{"sandboxed-without-namespaces", Runner{noNamespaces: true}},
	} {
		b.Run(r.name, func(b *testing.B) {
			start := cpuTime(b)
			for b.Loop() {
				if _, err := r.runner.App(b.Context(), repo, *app, render.AppOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((cpuTime(b)-start).Milliseconds())/float64(b.N), "cpu-ms/op")
		})
	}
}

// cpuTime is the CPU time of this process and its waited-for children, a
// steadier measure than wall time on a shared machine.
func cpuTime(b *testing.B) time.Duration {
	var total time.Duration
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if err := syscall.Getrusage(who, &ru); err != nil {
			b.Fatal(err)
		}
		total += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return total
}

// batchRepo writes a repository with an app per entry of apps (name →
// files under apps/NAME); an app with a Chart.yaml is a Helm app.
func batchRepo(t testing.TB, apps []string, files map[string]string) *config.Repository {
	t.Helper()
	gitops := "apiVersion: gitops.kubectl.dev/v1alpha1\nkind: Repository\napps:\n"
	for _, name := range apps {
		gitops += "  - name: " + name + "\n    path: apps/" + name + "\n    namespace: ns-" + name + "\n"
		if _, ok := files["apps/"+name+"/Chart.yaml"]; ok {
			gitops += "    helm: {chart: apps/" + name + "}\n"
		}
	}
	all := map[string]string{"gitops.yaml": gitops}
	for name, content := range files {
		all[name] = content
	}
	dir := writeTree(t, all)
	repo, err := config.Load(filepath.Join(dir, "gitops.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return repo
}

func configMapFile(name string) string {
	return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: " + name + "}\ndata: {a: b}\n"
}

// countChildren is a Runner.Started that counts the render processes.
func countChildren(n *atomic.Int64) func(int) {
	return func(int) { n.Add(1) }
}

func TestAppsInOneChildEqualInProcess(t *testing.T) {
	repo, err := config.Load("../../testdata/examples/shop/gitops.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var batch []AppRender
	for _, name := range []string{"config", "web", "cache"} {
		app, _ := repo.App(name)
		batch = append(batch, AppRender{App: *app, Namespace: "override-" + name})
	}
	var children atomic.Int64
	got := Runner{Started: countChildren(&children)}.Apps(t.Context(), repo, batch, render.AppOptions{})
	if n := children.Load(); n != 1 {
		t.Errorf("%d render processes for a batch of %d, want 1", n, len(batch))
	}
	if len(got) != len(batch) {
		t.Fatalf("%d results for %d apps", len(got), len(batch))
	}
	for i, a := range batch {
		want, err := render.App(t.Context(), repo, a.App, render.AppOptions{Namespace: a.Namespace})
		if err != nil {
			t.Fatal(err)
		}
		if got[i].Err != nil {
			t.Errorf("app %s: %v", a.App.Name, got[i].Err)
			continue
		}
		if !reflect.DeepEqual(want, got[i].Result) {
			t.Errorf("app %s: sandboxed render differs (-in-process +sandboxed):\n%s", a.App.Name, diff.Diff(want, got[i].Result))
		}
	}
}

func TestAppsGoOnAfterAnAppFails(t *testing.T) {
	tests := []struct {
		name     string
		runner   Runner
		middle   map[string]string // the files of app b
		want     error             // app b's error
		children int64
	}{
		{"memory", Runner{Memory: 256 << 20},
			map[string]string{"apps/b/Chart.yaml": "apiVersion: v2\nname: b\nversion: 0.1.0\n", "apps/b/templates/cm.yaml": doubling},
			&LimitError{Limit: LimitMemory, Bytes: 256 << 20, What: "app b"}, 2},
		{"wall time", Runner{Timeout: time.Second, CPU: time.Minute},
			map[string]string{"apps/b/Chart.yaml": "apiVersion: v2\nname: b\nversion: 0.1.0\n", "apps/b/templates/cm.yaml": spin},
			&LimitError{Limit: LimitTime, Duration: time.Second, What: "app b"}, 2},
		{"cpu", Runner{CPU: time.Second, Timeout: time.Minute},
			map[string]string{"apps/b/Chart.yaml": "apiVersion: v2\nname: b\nversion: 0.1.0\n", "apps/b/templates/cm.yaml": spin},
			&LimitError{Limit: LimitCPU, Duration: time.Second, What: "app b"}, 2},
		{"render error", Runner{},
			map[string]string{"apps/b/kustomization.yaml": "resources: [broken.yaml]\n", "apps/b/broken.yaml": "a: [\n"},
			nil, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{"apps/a/cm.yaml": configMapFile("a"), "apps/c/cm.yaml": configMapFile("c")}
			for name, content := range tc.middle {
				files[name] = content
			}
			repo := batchRepo(t, []string{"a", "b", "c"}, files)
			var batch []AppRender
			for _, app := range repo.Apps {
				batch = append(batch, AppRender{App: app})
			}
			var children atomic.Int64
			tc.runner.Started = countChildren(&children)
			got := tc.runner.Apps(t.Context(), repo, batch, render.AppOptions{})

			for _, i := range []int{0, 2} {
				name := batch[i].App.Name
				if got[i].Err != nil {
					t.Errorf("app %s: %v", name, got[i].Err)
					continue
				}
				if objs := got[i].Result.Objects; len(objs) != 1 || objs[0].GetName() != name || objs[0].GetNamespace() != "ns-"+name {
					t.Errorf("app %s: got %v, want its ConfigMap in ns-%s", name, objs, name)
				}
			}
			if tc.want != nil {
				if !reflect.DeepEqual(tc.want, got[1].Err) {
					t.Errorf("app b: got %v, want %v", got[1].Err, tc.want)
				}
			} else {
				var limit *LimitError
				if _, want := render.App(t.Context(), repo, batch[1].App, render.AppOptions{}); got[1].Err == nil || errors.As(got[1].Err, &limit) || got[1].Err.Error() != want.Error() {
					t.Errorf("app b: got %v, want the in-process error %v", got[1].Err, want)
				}
			}
			if n := children.Load(); n != tc.children {
				t.Errorf("%d render processes, want %d", n, tc.children)
			}
		})
	}
}

// Each app of a batch has the CPU limit to itself: three apps of 600ms
// each are rendered in one child whose CPU limit is a second.
func TestAppsCPULimitIsPerApp(t *testing.T) {
	repo := batchRepo(t, []string{"a", "b", "c"}, map[string]string{})
	var batch []AppRender
	for _, app := range repo.Apps {
		batch = append(batch, AppRender{App: app})
	}
	var children atomic.Int64
	r := Runner{CPU: time.Second, Timeout: time.Minute, command: burnCommand, Started: countChildren(&children)}
	for i, res := range r.Apps(t.Context(), repo, batch, render.AppOptions{}) {
		name := batch[i].App.Name
		if res.Err != nil {
			t.Errorf("app %s: %v", name, res.Err)
			continue
		}
		if len(res.Result.Objects) != 1 || res.Result.Objects[0].GetName() != name {
			t.Errorf("app %s: got %v, want its ConfigMap", name, res.Result.Objects)
		}
	}
	if n := children.Load(); n != 1 {
		t.Errorf("%d render processes, want 1", n)
	}
}

func TestAppsCancelKillsTheProcessGroup(t *testing.T) {
	repo := batchRepo(t, []string{"a", "b", "c"}, map[string]string{
		"apps/a/cm.yaml":           configMapFile("a"),
		"apps/b/Chart.yaml":        "apiVersion: v2\nname: b\nversion: 0.1.0\n",
		"apps/b/templates/cm.yaml": spin,
		"apps/c/cm.yaml":           configMapFile("c"),
	})
	var batch []AppRender
	for _, app := range repo.Apps {
		batch = append(batch, AppRender{App: app})
	}
	ctx, cancel := context.WithCancel(t.Context())
	started := make(chan int, 1)
	go func() {
		pid := <-started
		cancel()
		started <- pid
	}()
	got := Runner{Started: func(pid int) { started <- pid }}.Apps(ctx, repo, batch, render.AppOptions{})
	for i, res := range got {
		if i > 0 && !errors.Is(res.Err, context.Canceled) {
			t.Errorf("app %s: got %v, want context.Canceled", batch[i].App.Name, res.Err)
		}
	}
	pid := <-started
	if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("the render's process group %d is still there: kill(0) = %v", pid, err)
	}
}

// BenchmarkApps measures the sandbox's cost for a preview: a batch of small
// apps rendered in this process, in one child, and in a child each.
func BenchmarkApps(b *testing.B) {
	const n = 10
	var names []string
	files := map[string]string{}
	for i := range n {
		name := fmt.Sprintf("app%d", i)
		names = append(names, name)
		files["apps/"+name+"/kustomization.yaml"] = "resources: [cm.yaml]\nlabels: [{pairs: {app: " + name + "}}]\n"
		files["apps/"+name+"/cm.yaml"] = configMapFile(name)
	}
	repo := batchRepo(b, names, files)
	var batch []AppRender
	for _, app := range repo.Apps {
		batch = append(batch, AppRender{App: app, Namespace: app.Namespace})
	}
	run := func(b *testing.B, render func() error) {
		start := cpuTime(b)
		for b.Loop() {
			if err := render(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64((cpuTime(b)-start).Milliseconds())/float64(b.N), "cpu-ms/op")
	}
	b.Run("in-process", func(b *testing.B) {
		run(b, func() error {
			for _, a := range batch {
				if _, err := render.App(b.Context(), repo, a.App, render.AppOptions{Namespace: a.Namespace}); err != nil {
					return err
				}
			}
			return nil
		})
	})
	b.Run("sandboxed-batched", func(b *testing.B) {
		run(b, func() error {
			for _, res := range (Runner{}).Apps(b.Context(), repo, batch, render.AppOptions{}) {
				if res.Err != nil {
					return res.Err
				}
			}
			return nil
		})
	})
	b.Run("sandboxed-per-app", func(b *testing.B) {
		run(b, func() error {
			for _, a := range batch {
				if _, err := (Runner{}).App(b.Context(), repo, a.App, render.AppOptions{Namespace: a.Namespace}); err != nil {
					return err
				}
			}
			return nil
		})
	})
}
