package render

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"helm.sh/helm/v4/pkg/chart/common"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/testenv"
)

// helmFixture copies testdata/helm/repo to a temporary repository and packs
// testdata/helm/packed into its app chart as charts/packed-0.2.0.tgz, the
// way `helm dependency build` vendors a dependency. It returns the
// repository root and the chart folder.
func helmFixture(t *testing.T) (root, chartDir string) {
	t.Helper()
	root = filepath.Join(t.TempDir(), "repo")
	copyTree(t, filepath.Join("testdata", "helm", "repo"), root)
	chartDir = filepath.Join(root, "charts", "app")
	writeChartArchive(t, filepath.Join(chartDir, "charts", "packed-0.2.0.tgz"), "packed", dirFiles(t, filepath.Join("testdata", "helm", "packed")))
	return root, chartDir
}

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// dirFiles reads a folder into chart-relative name → content.
func dirFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(path)
		files[filepath.ToSlash(rel)] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// tarEntry is one extra archive member, for hostile archives.
type tarEntry struct {
	hdr  tar.Header
	data string
}

// writeChartArchive writes a chart archive as `helm package` does: every
// file under a top folder named after the chart.
func writeChartArchive(t *testing.T, dst, top string, files map[string]string, extra ...tarEntry) {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, content := range files {
		hdr := &tar.Header{Name: top + "/" + name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(content)); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range extra {
		hdr := e.hdr
		hdr.Size = int64(len(e.data))
		if err := tw.WriteHeader(&hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// helmCase is one way to render the fixture chart, for the golden files and
// for the comparison with the helm binary.
type helmCase struct {
	name    string
	golden  string
	opts    HelmOptions
	ns      string
	helmArg []string // the same inputs as helm template flags
}

func helmCases() []helmCase {
	return []helmCase{
		{
			name:   "defaults",
			golden: "app-defaults.golden.yaml",
		},
		{
			name:   "prod",
			golden: "app-prod.golden.yaml",
			ns:     "shop-prod",
			opts: HelmOptions{
				ReleaseName: "shop",
				ValuesFiles: []string{"envs/prod/values-app.yaml"},
				Values: map[string]any{
					"image": map[string]any{"tag": "v2"},
					"extra": map[string]any{"owner": "team-a"},
					"sub":   map[string]any{"message": "from in-line values"},
				},
			},
			helmArg: []string{"-f", filepath.Join("envs", "prod", "values-app.yaml"),
				"--set-json", `{"image":{"tag":"v2"},"extra":{"owner":"team-a"},"sub":{"message":"from in-line values"}}`},
		},
	}
}

func TestHelmGolden(t *testing.T) {
	for _, tc := range helmCases() {
		t.Run(tc.name, func(t *testing.T) {
			root, chartDir := helmFixture(t)
			res, err := Helm(t.Context(), chartDir, Options{Root: root, Namespace: tc.ns, Helm: tc.opts})
			if err != nil {
				t.Fatal(err)
			}
			assertGolden(t, filepath.Join("testdata", "helm", tc.golden), toYAML(t, res.Objects))
			want := []string{"chart app: 2 hook objects skipped (helm.sh/hook); hooks run only on apply of a Helm release"}
			if !reflect.DeepEqual(res.Warnings, want) {
				t.Errorf("warnings = %q, want %q", res.Warnings, want)
			}
		})
	}
}

// TestHelmEqualsHelmTemplate renders the fixture with the real helm binary
// and with Helm, and requires the same non-hook objects in the same order.
func TestHelmEqualsHelmTemplate(t *testing.T) {
	helm := testenv.Tool(t, "helm")
	for _, tc := range helmCases() {
		t.Run(tc.name, func(t *testing.T) {
			root, chartDir := helmFixture(t)
			res, err := Helm(t.Context(), chartDir, Options{Root: root, Namespace: tc.ns, Helm: tc.opts})
			if err != nil {
				t.Fatal(err)
			}

			release := tc.opts.ReleaseName
			if release == "" {
				release = "app"
			}
			args := []string{"template", release, chartDir, "--include-crds",
				// Helm's SDK pins its default capabilities in test binaries
				// (v1.20.0); a built helm derives them from client-go.
				"--kube-version", common.DefaultCapabilities.KubeVersion.Version}
			if tc.ns != "" {
				args = append(args, "--namespace", tc.ns)
			}
			args = append(args, tc.helmArg...)
			cmd := exec.CommandContext(t.Context(), helm, args...)
			cmd.Dir = root
			home := t.TempDir()
			cmd.Env = []string{
				"HOME=" + home,
				"PATH=" + os.Getenv("PATH"),
				"HELM_CACHE_HOME=" + filepath.Join(home, "cache"),
				"HELM_CONFIG_HOME=" + filepath.Join(home, "config"),
				"HELM_DATA_HOME=" + filepath.Join(home, "data"),
				"HELM_PLUGINS=" + filepath.Join(home, "plugins"),
				"KUBECONFIG=" + filepath.Join(home, "no-kubeconfig"),
			}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
			}
			dec, err := decodeObjects("helm template", out)
			if err != nil {
				t.Fatal(err)
			}
			var want []*unstructured.Unstructured
			hooks := 0
			for _, obj := range dec.objects {
				if _, ok := obj.GetAnnotations()[helmHookAnnotation]; ok {
					hooks++
					continue
				}
				want = append(want, obj)
			}
			if hooks != 2 {
				t.Errorf("helm template printed %d hooks, want 2 (the fixture changed?)", hooks)
			}
			if got, want := ids(res.Objects), ids(want); !reflect.DeepEqual(got, want) {
				t.Fatalf("objects differ from helm template:\n got  %v\n want %v", got, want)
			}
			for i := range want {
				if !reflect.DeepEqual(res.Objects[i].Object, want[i].Object) {
					g, _ := json.MarshalIndent(res.Objects[i].Object, "", "  ")
					w, _ := json.MarshalIndent(want[i].Object, "", "  ")
					t.Errorf("object %d (%s) differs from helm template:\n got  %s\n want %s", i, ids(want[i : i+1])[0], g, w)
				}
			}
		})
	}
}

// TestHelmUnsafe covers the render-safety scenarios (REFERENCE §3.E).
func TestHelmUnsafe(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(t *testing.T, outside, root, chartDir string) (string, Options)
		wantSafe bool // not ErrUnsafe, but still an error
		wantMsg  []string
	}{
		{
			name: "RS-08 values file with ../ outside the repository",
			setup: func(t *testing.T, outside, root, chartDir string) (string, Options) {
				return chartDir, Options{Root: root, Helm: HelmOptions{ValuesFiles: []string{"../other/secrets.yaml"}}}
			},
			wantMsg: []string{"values file ../other/secrets.yaml", "not in or below"},
		},
		{
			name: "RS-08 absolute values file outside the repository",
			setup: func(t *testing.T, outside, root, chartDir string) (string, Options) {
				return chartDir, Options{Root: root, Helm: HelmOptions{ValuesFiles: []string{filepath.Join(outside, "secrets.yaml")}}}
			},
			wantMsg: []string{"secrets.yaml", "not in or below"},
		},
		{
			name: "RS-08 symlinked values file",
			setup: func(t *testing.T, outside, root, chartDir string) (string, Options) {
				symlink(t, filepath.Join(outside, "secrets.yaml"), filepath.Join(root, "envs", "prod", "linked.yaml"))
				return chartDir, Options{Root: root, Helm: HelmOptions{ValuesFiles: []string{"envs/prod/linked.yaml"}}}
			},
			wantMsg: []string{"values file envs/prod/linked.yaml", "resolves through a symlink"},
		},
		{
			name: "RS-02 chart template symlinked outside the repository",
			setup: func(t *testing.T, outside, root, chartDir string) (string, Options) {
				symlink(t, filepath.Join(outside, "secrets.yaml"), filepath.Join(chartDir, "templates", "leak.yaml"))
				return chartDir, Options{Root: root}
			},
			wantMsg: []string{"leak.yaml", "resolves through a symlink"},
		},
		{
			name: "RS-02 chart folder symlinked outside the repository",
			setup: func(t *testing.T, outside, root, chartDir string) (string, Options) {
				copyTree(t, chartDir, filepath.Join(outside, "evil"))
				symlink(t, filepath.Join(outside, "evil"), filepath.Join(root, "charts", "evil"))
				return filepath.Join(root, "charts", "evil"), Options{Root: root}
			},
			wantMsg: []string{"chart charts/evil", "resolves through a symlink"},
		},
		{
			name: "chart file over the size limit",
			setup: func(t *testing.T, outside, root, chartDir string) (string, Options) {
				write(t, filepath.Join(chartDir, "files", "big.bin"), strings.Repeat("x", 4096))
				return chartDir, Options{Root: root, Limits: Limits{MaxFileBytes: 4000}}
			},
			wantMsg: []string{"big.bin is larger than 4000 bytes"},
		},
		{
			name: "chart over the total size limit",
			setup: func(t *testing.T, outside, root, chartDir string) (string, Options) {
				for _, n := range []string{"a", "b", "c"} {
					write(t, filepath.Join(chartDir, "files", n+".txt"), strings.Repeat("x", 3000))
				}
				return chartDir, Options{Root: root, Limits: Limits{MaxTotalBytes: 8000}}
			},
			wantMsg: []string{"render read more than 8000 bytes"},
		},
		{
			name: "archive unpacking over the total size limit",
			setup: func(t *testing.T, outside, root, chartDir string) (string, Options) {
				files := dirFiles(t, filepath.Join("testdata", "helm", "packed"))
				files["files/zeros.bin"] = strings.Repeat("\x00", 1<<20) // compresses to about 1 KiB
				writeChartArchive(t, filepath.Join(chartDir, "charts", "packed-0.2.0.tgz"), "packed", files)
				return chartDir, Options{Root: root, Limits: Limits{MaxTotalBytes: 512 << 10}}
			},
			wantMsg: []string{"render read more than 524288 bytes unpacking", "packed-0.2.0.tgz"},
		},
		{
			name: "archive with a symlink entry",
			setup: func(t *testing.T, outside, root, chartDir string) (string, Options) {
				writeChartArchive(t, filepath.Join(chartDir, "charts", "packed-0.2.0.tgz"), "packed",
					dirFiles(t, filepath.Join("testdata", "helm", "packed")),
					tarEntry{hdr: tar.Header{Name: "packed/templates/passwd.yaml", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}})
				return chartDir, Options{Root: root}
			},
			wantMsg: []string{"packed/templates/passwd.yaml is a link or special file"},
		},
		{
			name: "archive escaping its folder",
			setup: func(t *testing.T, outside, root, chartDir string) (string, Options) {
				writeChartArchive(t, filepath.Join(chartDir, "charts", "packed-0.2.0.tgz"), "packed",
					dirFiles(t, filepath.Join("testdata", "helm", "packed")),
					tarEntry{hdr: tar.Header{Name: "packed/../../x.yaml", Typeflag: tar.TypeReg}, data: "a: b"})
				return chartDir, Options{Root: root}
			},
			wantMsg: []string{"is outside the chart folder"},
		},
		{
			name: "schema referencing a local file",
			setup: func(t *testing.T, outside, root, chartDir string) (string, Options) {
				write(t, filepath.Join(chartDir, "values.schema.json"), `{"$ref": "file://`+filepath.ToSlash(filepath.Join(outside, "schema.json"))+`"}`)
				return chartDir, Options{Root: root}
			},
			wantMsg: []string{"values.schema.json references file://", "inline the referenced schema"},
		},
		{
			name: "schema referencing a sibling file",
			setup: func(t *testing.T, outside, root, chartDir string) (string, Options) {
				write(t, filepath.Join(chartDir, "values.schema.json"), `{"$ref": "definitions.json"}`)
				return chartDir, Options{Root: root}
			},
			wantMsg: []string{"values.schema.json references file:///definitions.json"},
		},
		{
			name: "values that break the schema",
			setup: func(t *testing.T, outside, root, chartDir string) (string, Options) {
				return chartDir, Options{Root: root, Helm: HelmOptions{Values: map[string]any{"replicas": 0}}}
			},
			wantSafe: true,
			wantMsg:  []string{"values don't meet the specifications of the schema", "app:", "replicas"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root, chartDir := helmFixture(t)
			outside := filepath.Join(filepath.Dir(root), "other")
			write(t, filepath.Join(outside, "secrets.yaml"), "password: hunter2\n")
			write(t, filepath.Join(outside, "schema.json"), `{"type": "object"}`)
			dir, opts := tc.setup(t, outside, root, chartDir)
			res, err := Helm(t.Context(), dir, opts)
			if err == nil {
				t.Fatalf("render succeeded with %d objects, want an error", len(res.Objects))
			}
			if errors.Is(err, ErrUnsafe) == tc.wantSafe {
				t.Errorf("errors.Is(err, ErrUnsafe) = %v, want %v: %v", !tc.wantSafe, tc.wantSafe, err)
			}
			for _, msg := range tc.wantMsg {
				if !strings.Contains(err.Error(), msg) {
					t.Errorf("error %q does not contain %q", err, msg)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error quotes the file: %v", err)
			}
		})
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestHelmSymlinkInsideRoot: RS-03, links that stay in the repository work,
// for values files and chart folders alike, as with helm.
func TestHelmSymlinkInsideRoot(t *testing.T) {
	root, chartDir := helmFixture(t)
	symlink(t, filepath.Join(root, "envs", "prod", "values-app.yaml"), filepath.Join(root, "envs", "linked.yaml"))
	symlink(t, filepath.Join(root, "charts", "app", "config"), filepath.Join(chartDir, "linked-config"))
	res, err := Helm(t.Context(), chartDir, Options{Root: root, Helm: HelmOptions{ValuesFiles: []string{"envs/linked.yaml"}}})
	if err != nil {
		t.Fatal(err)
	}
	dep := findObject(t, res.Objects, "Deployment", "app-app")
	if got, _, _ := unstructured.NestedFieldNoCopy(dep.Object, "spec", "replicas"); fmt.Sprint(got) != "3" {
		t.Errorf("replicas = %v, want 3 from the linked values file", got)
	}
}

func findObject(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s %s in %v", kind, name, ids(objs))
	return nil
}

// TestHelmLookup: RS-11, lookup renders empty and no cluster is reached
// whatever KUBECONFIG says.
func TestHelmLookup(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.NotFound(w, r)
	}))
	defer srv.Close()
	kubeconfig := filepath.Join(t.TempDir(), "config")
	write(t, kubeconfig, "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: "+srv.URL+
		"\ncontexts:\n- name: c\n  context:\n    cluster: c\ncurrent-context: c\n")
	t.Setenv("KUBECONFIG", kubeconfig)

	root := writeTree(t, map[string]string{
		"chart/Chart.yaml": "apiVersion: v2\nname: web\nversion: 1.0.0\n",
		"chart/templates/cm.yaml": `{{- $s := lookup "v1" "Secret" "default" "db" -}}
{{- $all := lookup "v1" "Namespace" "" "" -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: web
data:
  secretEmpty: {{ empty $s | quote }}
  listEmpty: {{ empty $all | quote }}
  host: {{ getHostByName "localhost" | quote }}
`,
	})
	res, err := Helm(t.Context(), filepath.Join(root, "chart"), Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"secretEmpty": "true", "listEmpty": "true", "host": ""}
	if got := res.Objects[0].Object["data"]; !reflect.DeepEqual(got, want) {
		t.Errorf("data = %v, want %v", got, want)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the API server got %d requests, want 0", n)
	}
}

// TestHelmPluginsIgnored: RS-09, HELM_PLUGINS and the other Helm settings
// from the environment cannot make a render run anything.
func TestHelmPluginsIgnored(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	plugin := filepath.Join(dir, "plugins", "evil")
	write(t, filepath.Join(plugin, "plugin.yaml"), "apiVersion: v1\nname: evil\nversion: 0.1.0\ntype: postrenderer/v1\nruntime: subprocess\n"+
		"runtimeConfig:\n  platformCommand:\n    - command: ${HELM_PLUGIN_DIR}/run.sh\n"+
		"downloaders:\n  - command: run.sh\n    protocols: [evil]\n")
	write(t, filepath.Join(plugin, "run.sh"), "#!/bin/sh\ntouch "+marker+"\ncat\n")
	if err := os.Chmod(filepath.Join(plugin, "run.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HELM_PLUGINS", filepath.Join(dir, "plugins"))
	t.Setenv("HELM_POST_RENDERER", "evil")
	t.Setenv("HELM_DRIVER", "evil")

	root, chartDir := helmFixture(t)
	write(t, filepath.Join(root, "envs", "evil.yaml"), "image:\n  repository: evil://host/x\n")
	if _, err := Helm(t.Context(), chartDir, Options{Root: root, Helm: HelmOptions{ValuesFiles: []string{"envs/evil.yaml"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("a plugin ran during the render")
	}
}

// TestHelmNoPluginCode keeps the packages that can run plugins,
// post-renderers, getters or registries out of package render.
func TestHelmNoPluginCode(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool on PATH")
	}
	out, err := exec.CommandContext(t.Context(), goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, bad := range []string{"/pkg/action", "/pkg/plugin", "/internal/plugin", "/pkg/postrenderer", "/pkg/getter", "/pkg/downloader", "/pkg/registry", "/pkg/repo", "/pkg/cli"} {
			if strings.HasPrefix(pkg, "helm.sh/helm/v4") && strings.HasPrefix(strings.TrimPrefix(pkg, "helm.sh/helm/v4"), bad) {
				t.Errorf("package render depends on %s", pkg)
			}
		}
	}
}

func TestHelmTemplateError(t *testing.T) {
	tests := []struct {
		name    string
		tpl     string
		wantMsg []string
	}{
		{"exec", "a: {{ include \"nope\" . }}\n", []string{"web/templates/broken.yaml", `no template "nope"`}},
		{"parse", "a: {{ .Values.x \n", []string{"web/templates/broken.yaml"}},
		{"fail", "{{ fail \"set .Values.x\" }}\n", []string{"web/templates/broken.yaml", "set .Values.x"}},
		{"yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: [\n", []string{"web/templates/broken.yaml"}},
		{"no name", "apiVersion: v1\nkind: ConfigMap\n", []string{"web/templates/broken.yaml", "has no metadata.name"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := writeTree(t, map[string]string{
				"chart/Chart.yaml":            "apiVersion: v2\nname: web\nversion: 1.0.0\n",
				"chart/templates/ok.yaml":     "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ok\n",
				"chart/templates/broken.yaml": tc.tpl,
			})
			_, err := Helm(t.Context(), filepath.Join(root, "chart"), Options{Root: root})
			if err == nil {
				t.Fatal("render succeeded, want a template error")
			}
			for _, msg := range tc.wantMsg {
				if !strings.Contains(err.Error(), msg) {
					t.Errorf("error %q does not contain %q", err, msg)
				}
			}
		})
	}
}

func TestHelmMaxObjects(t *testing.T) {
	root := writeTree(t, map[string]string{
		"chart/Chart.yaml": "apiVersion: v2\nname: web\nversion: 1.0.0\n",
		"chart/templates/many.yaml": `{{- range until 20 }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: cm-{{ . }}
{{- end }}
`,
	})
	_, err := Helm(t.Context(), filepath.Join(root, "chart"), Options{Root: root, Limits: Limits{MaxObjects: 10}})
	if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "more than 10 objects") {
		t.Fatalf("err = %v, want the object limit", err)
	}
}

// TestHelmTimeout: RS-14, a template that runs long is abandoned when the
// context ends. The loop is finite so the abandoned goroutine ends soon.
func TestHelmTimeout(t *testing.T) {
	root := writeTree(t, map[string]string{
		"chart/Chart.yaml": "apiVersion: v2\nname: web\nversion: 1.0.0\n",
		"chart/templates/slow.yaml": `{{- range until 4000 }}{{- range until 4000 }}{{- end }}{{- end }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: slow
`,
	})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := Helm(ctx, filepath.Join(root, "chart"), Options{Root: root})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "render timed out") {
		t.Fatalf("err = %v, want a render timeout", err)
	}

	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Helm(cancelled, filepath.Join(root, "chart"), Options{Root: root}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// TestHelmPath: Path detects a chart and renders it with Helm.
func TestHelmPath(t *testing.T) {
	root, chartDir := helmFixture(t)
	res, err := Path(t.Context(), chartDir, Options{Root: root, Namespace: "web"})
	if err != nil {
		t.Fatal(err)
	}
	cm := findObject(t, res.Objects, "ConfigMap", "app-sub")
	if cm.GetNamespace() != "web" {
		t.Errorf("namespace = %q, want web", cm.GetNamespace())
	}
}

func TestHelmRenderedSizeLimit(t *testing.T) {
	root := writeTree(t, map[string]string{
		"chart/Chart.yaml": "apiVersion: v2\nname: web\nversion: 1.0.0\n",
		"chart/templates/big.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: big
data:
  a: "{{ range until 10 }}{{ repeat 10000 "x" }}{{ end }}"
`,
	})
	_, err := Helm(t.Context(), filepath.Join(root, "chart"), Options{Root: root, Limits: Limits{MaxTotalBytes: 50000}})
	if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "chart chart rendered more than 50000 bytes") {
		t.Fatalf("err = %v, want the rendered size limit", err)
	}
}
