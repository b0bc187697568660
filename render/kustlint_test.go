package render

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
)

// fetchServer counts the connections and requests that reach it. Counting
// connections catches an https fetch even though the client would not trust
// the test certificate.
type fetchServer struct {
	*httptest.Server
	hits atomic.Int64
}

func newFetchServer(t *testing.T, tls bool) *fetchServer {
	s := &fetchServer{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		fmt.Fprint(w, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fetched\n")
	}))
	s.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			s.hits.Add(1)
		}
	}
	if tls {
		s.StartTLS()
	} else {
		s.Start()
	}
	t.Cleanup(s.Close)
	return s
}

func TestKustomizeRefusals(t *testing.T) {
	srv := newFetchServer(t, false)
	tlsSrv := newFetchServer(t, true)
	url := srv.URL + "/x.yaml"
	tlsURL := tlsSrv.URL + "/x.yaml"

	const cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n"
	tests := []struct {
		name  string
		files map[string]string
		dir   string // built, relative to the root; "app" if empty
		root  string // Options.Root, relative to the temporary folder
		want  []string
	}{
		{
			name:  "http resource (RS-04)",
			files: map[string]string{"app/kustomization.yaml": "resources:\n- cm.yaml\n- " + url + "\n", "app/cm.yaml": cm},
			want:  []string{"app/kustomization.yaml", "resources", url, "URL", vendorAdvice},
		},
		{
			name:  "https resource (RS-04)",
			files: map[string]string{"app/kustomization.yaml": "resources:\n- " + tlsURL + "\n"},
			want:  []string{"app/kustomization.yaml", "resources", tlsURL},
		},
		{
			name:  "cloud metadata (RS-04)",
			files: map[string]string{"app/kustomization.yaml": "resources:\n- http://169.254.169.254/latest/meta-data\n"},
			want:  []string{"app/kustomization.yaml", "resources", "169.254.169.254"},
		},
		{
			name: "URL in a base of an overlay",
			files: map[string]string{
				"app/kustomization.yaml":  "resources:\n- ../base\n",
				"base/kustomization.yaml": "resources:\n- cm.yaml\n- " + url + "\n",
				"base/cm.yaml":            cm,
			},
			want: []string{"base/kustomization.yaml", "resources", url},
		},
		{
			name:  "URL in a component",
			files: map[string]string{"app/kustomization.yaml": "components:\n- ../comp\n", "comp/kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nresources:\n- " + url + "\n"},
			want:  []string{"comp/kustomization.yaml", "resources", url},
		},
		{
			name:  "URL with a token is redacted",
			files: map[string]string{"app/kustomization.yaml": "resources:\n- " + strings.Replace(url, "http://", "http://bot:s3cr3t-token@", 1) + "\n"},
			want:  []string{"app/kustomization.yaml", "resources", "xxxxx"},
		},
		{
			name:  "remote git base (RS-05)",
			files: map[string]string{"app/kustomization.yaml": "resources:\n- github.com/org/repo//deploy/base?ref=v1\n"},
			want:  []string{"app/kustomization.yaml", "resources", "github.com/org/repo//deploy/base?ref=v1", "GitHub repository"},
		},
		{
			name:  "git:: base (RS-05)",
			files: map[string]string{"app/kustomization.yaml": "bases:\n- git::https://example.com/org/repo.git//base?ref=main\n"},
			want:  []string{"app/kustomization.yaml", "bases", "git::https://example.com/org/repo.git//base?ref=main"},
		},
		{
			name:  "scp-style git base (RS-05)",
			files: map[string]string{"app/kustomization.yaml": "resources:\n- git@gitlab.example.com:org/repo.git/base\n"},
			want:  []string{"app/kustomization.yaml", "resources", "git@gitlab.example.com"},
		},
		{
			name:  "ssh git base (RS-05)",
			files: map[string]string{"app/kustomization.yaml": "resources:\n- ssh://git@example.com/org/repo.git\n"},
			want:  []string{"app/kustomization.yaml", "resources", "ssh://"},
		},
		{
			name:  "local-looking path with a ref (RS-05)",
			files: map[string]string{"app/kustomization.yaml": "resources:\n- example.com/org/repo?ref=v2\n"},
			want:  []string{"app/kustomization.yaml", "resources", "?ref=v2"},
		},
		{
			name:  "configMapGenerator file escapes the root (RS-01)",
			files: map[string]string{"a/b/app/kustomization.yaml": "configMapGenerator:\n- name: token\n  files:\n  - token=../../../../../../var/run/secrets/kubernetes.io/serviceaccount/token\n"},
			dir:   "a/b/app",
			want:  []string{"a/b/app/kustomization.yaml", "configMapGenerator[0].files", "not in or below"},
		},
		{
			name:  "secretGenerator env from an absolute path (RS-01)",
			files: map[string]string{"app/kustomization.yaml": "secretGenerator:\n- name: s\n  envs:\n  - /etc/passwd\n"},
			want:  []string{"app/kustomization.yaml", "secretGenerator[0].envs", "/etc/passwd", "absolute"},
		},
		{
			name:  "URL in configMapGenerator files",
			files: map[string]string{"app/kustomization.yaml": "configMapGenerator:\n- name: c\n  files:\n  - " + url + "\n"},
			want:  []string{"app/kustomization.yaml", "configMapGenerator[0].files", url},
		},
		{
			name:  "URL in patches",
			files: map[string]string{"app/kustomization.yaml": "resources: [cm.yaml]\npatches:\n- path: " + url + "\n", "app/cm.yaml": cm},
			want:  []string{"app/kustomization.yaml", "patches[0].path", url},
		},
		{
			name:  "URL in patchesStrategicMerge",
			files: map[string]string{"app/kustomization.yaml": "resources: [cm.yaml]\npatchesStrategicMerge:\n- " + url + "\n", "app/cm.yaml": cm},
			want:  []string{"app/kustomization.yaml", "patchesStrategicMerge", url},
		},
		{
			name:  "URL disguised as an inline patch",
			files: map[string]string{"app/kustomization.yaml": "resources: [cm.yaml]\npatchesStrategicMerge:\n- \"" + url + ": y\"\n", "app/cm.yaml": cm},
			want:  []string{"app/kustomization.yaml", "patchesStrategicMerge", url},
		},
		{
			name:  "URL disguised as an inline transformer",
			files: map[string]string{"app/kustomization.yaml": "resources: [cm.yaml]\ntransformers:\n- \"" + url + ": y\"\n", "app/cm.yaml": cm},
			want:  []string{"app/kustomization.yaml", "transformers", url},
		},
		{
			name:  "URL in patchesJson6902",
			files: map[string]string{"app/kustomization.yaml": "resources: [cm.yaml]\npatchesJson6902:\n- target: {version: v1, kind: ConfigMap, name: cm}\n  path: " + url + "\n", "app/cm.yaml": cm},
			want:  []string{"app/kustomization.yaml", "patchesJson6902[0].path", url},
		},
		{
			name:  "URL in replacements",
			files: map[string]string{"app/kustomization.yaml": "resources: [cm.yaml]\nreplacements:\n- path: " + url + "\n", "app/cm.yaml": cm},
			want:  []string{"app/kustomization.yaml", "replacements[0].path", url},
		},
		{
			name:  "URL in openapi",
			files: map[string]string{"app/kustomization.yaml": "resources: [cm.yaml]\nopenapi:\n  path: " + url + "\n", "app/cm.yaml": cm},
			want:  []string{"app/kustomization.yaml", "openapi.path", url},
		},
		{
			name:  "URL in crds",
			files: map[string]string{"app/kustomization.yaml": "resources: [cm.yaml]\ncrds:\n- " + url + "\n", "app/cm.yaml": cm},
			want:  []string{"app/kustomization.yaml", "crds", url},
		},
		{
			name:  "URL in configurations",
			files: map[string]string{"app/kustomization.yaml": "resources: [cm.yaml]\nconfigurations:\n- " + url + "\n", "app/cm.yaml": cm},
			want:  []string{"app/kustomization.yaml", "configurations", url},
		},
		{
			name:  "URL as a transformers entry",
			files: map[string]string{"app/kustomization.yaml": "resources: [cm.yaml]\ntransformers:\n- " + url + "\n", "app/cm.yaml": cm},
			want:  []string{"app/kustomization.yaml", "transformers", url},
		},
		{
			name: "URL in a builtin transformer's path",
			files: map[string]string{
				"app/kustomization.yaml": "resources: [cm.yaml]\ntransformers:\n- |-\n  apiVersion: builtin\n  kind: PatchTransformer\n  metadata:\n    name: p\n  path: " + url + "\n",
				"app/cm.yaml":            cm,
			},
			want: []string{"app/kustomization.yaml", "transformers (PatchTransformer)", url},
		},
		{
			name: "URL in a builtin generator file",
			files: map[string]string{
				"app/kustomization.yaml": "generators: [gen.yaml]\n",
				"app/gen.yaml":           "apiVersion: builtin\nkind: ConfigMapGenerator\nmetadata:\n  name: g\nfiles:\n- " + url + "\n",
			},
			want: []string{"app/kustomization.yaml", `generators "gen.yaml" (ConfigMapGenerator)`, url},
		},
		{
			name: "resource symlinked out of the root (RS-02)",
			files: map[string]string{
				"app/kustomization.yaml": "resources:\n- passwd.yaml\n",
				"app/passwd.yaml":        "->/etc/passwd",
			},
			want: []string{"app/kustomization.yaml", "resources", "passwd.yaml", "not in or below"},
		},
		{
			name: "base symlinked out of the root (RS-02)",
			files: map[string]string{
				"app/kustomization.yaml": "resources:\n- ../base\n",
				"base":                   "->/etc",
			},
			want: []string{"app/kustomization.yaml", "resources", "../base", "not in or below"},
		},
		{
			name:  "kustomization file symlinked out of the root (RS-02)",
			files: map[string]string{"app/kustomization.yaml": "->/etc/hostname"},
			want:  []string{"app/kustomization.yaml", "outside"},
		},
		{
			name:  "overlay escapes the root",
			files: map[string]string{"repo/app/kustomization.yaml": "resources:\n- ../../elsewhere\n", "elsewhere/kustomization.yaml": "resources: []\n"},
			dir:   "repo/app",
			root:  "repo",
			want:  []string{"app/kustomization.yaml", "resources", "../../elsewhere", "not in or below"},
		},
		{
			name:  "missing file",
			files: map[string]string{"app/kustomization.yaml": "resources:\n- nowhere.yaml\n"},
			want:  []string{"app/kustomization.yaml", "resources", "nowhere.yaml", "does not exist"},
		},
		{
			name: "legacy exec plugin (RS-06)",
			files: map[string]string{
				"app/kustomization.yaml": "resources: [cm.yaml]\ntransformers:\n- plugin.yaml\n",
				"app/cm.yaml":            cm,
				"app/plugin.yaml":        "apiVersion: someteam.example.com/v1\nkind: SedTransformer\nmetadata:\n  name: sed\nargsOneLiner: s/a/b/\n",
			},
			want: []string{"app/kustomization.yaml", `transformers "plugin.yaml"`, "SedTransformer", "builtins only"},
		},
		{
			name: "exec KRM function (RS-06)",
			files: map[string]string{
				"app/kustomization.yaml": "resources: [cm.yaml]\ntransformers:\n- |-\n  apiVersion: example.com/v1\n  kind: Runner\n  metadata:\n    name: run\n    annotations:\n      config.kubernetes.io/function: |\n        exec:\n          path: ./script.sh\n",
				"app/cm.yaml":            cm,
			},
			want: []string{"app/kustomization.yaml", "transformers", "KRM function", "builtins only"},
		},
		{
			name: "container KRM function in a generators folder (RS-06)",
			files: map[string]string{
				"app/kustomization.yaml":        "generators:\n- ../generators\n",
				"generators/kustomization.yaml": "resources: [fn.yaml]\n",
				"generators/fn.yaml":            "apiVersion: example.com/v1\nkind: Gen\nmetadata:\n  name: gen\n  annotations:\n    config.kubernetes.io/function: |\n      container:\n        image: example.com/gen:v1\n",
			},
			want: []string{"generators/kustomization.yaml", `resources "fn.yaml"`, "KRM function", "builtins only"},
		},
		{
			name: "validator plugin (RS-06)",
			files: map[string]string{
				"app/kustomization.yaml": "resources: [cm.yaml]\nvalidators:\n- |-\n  apiVersion: example.com/v1\n  kind: Check\n  metadata:\n    name: check\n",
				"app/cm.yaml":            cm,
			},
			want: []string{"app/kustomization.yaml", "validators", "builtins only"},
		},
		{
			name: "plugin folder that transforms its configurations",
			files: map[string]string{
				"app/kustomization.yaml":          "transformers:\n- ../transformers\n",
				"transformers/kustomization.yaml": "resources: [labels.yaml]\npatches:\n- path: p.yaml\n",
				"transformers/labels.yaml":        "apiVersion: builtin\nkind: LabelTransformer\nmetadata:\n  name: l\nlabels: {a: b}\nfieldSpecs: [{path: metadata/labels, create: true}]\n",
				"transformers/p.yaml":             "apiVersion: builtin\nkind: LabelTransformer\nmetadata:\n  name: l\n",
			},
			want: []string{"transformers/kustomization.yaml", "may only list resources"},
		},
		{
			name:  "helmCharts (RS-07)",
			files: map[string]string{"app/kustomization.yaml": "helmCharts:\n- name: minecraft\n  repo: https://itzg.github.io/minecraft-server-charts\n  version: 3.1.3\n"},
			want:  []string{"app/kustomization.yaml", "helmCharts", "helm"},
		},
		{
			name:  "helmGlobals (RS-07)",
			files: map[string]string{"app/kustomization.yaml": "helmGlobals:\n  chartHome: charts\n"},
			want:  []string{"app/kustomization.yaml", "helmGlobals"},
		},
		{
			name: "HelmChartInflationGenerator builtin (RS-07)",
			files: map[string]string{
				"app/kustomization.yaml": "generators: [chart.yaml]\n",
				"app/chart.yaml":         "apiVersion: builtin\nkind: HelmChartInflationGenerator\nmetadata:\n  name: c\nname: minecraft\nrepo: " + url + "\n",
			},
			want: []string{"app/kustomization.yaml", "generators", "helm"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := writeTree(t, tt.files)
			dir := tt.dir
			if dir == "" {
				dir = "app"
			}
			before := srv.hits.Load() + tlsSrv.hits.Load()
			_, err := Kustomize(context.Background(), filepath.Join(root, dir), Options{Root: filepath.Join(root, tt.root)})
			if hits := srv.hits.Load() + tlsSrv.hits.Load() - before; hits != 0 {
				t.Errorf("the render made %d requests; want none", hits)
			}
			if err == nil {
				t.Fatal("want a refusal, got none")
			}
			if !errors.Is(err, ErrUnsafe) {
				t.Errorf("error does not wrap ErrUnsafe: %v", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q: %v", w, err)
				}
			}
			for _, secret := range []string{"s3cr3t-token", "root:x:"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error quotes %q: %v", secret, err)
				}
			}
		})
	}
}

func TestKustomizeAllowed(t *testing.T) {
	const cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n"
	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{
			name: "overlay with ../base inside the root",
			files: map[string]string{
				"app/kustomization.yaml":  "resources:\n- ../base\nnamePrefix: app-\n",
				"base/kustomization.yaml": "resources:\n- cm.yaml\n",
				"base/cm.yaml":            cm,
			},
			want: []string{"ConfigMap//app-cm"},
		},
		{
			name: "diamond: two overlays of one base",
			files: map[string]string{
				"app/kustomization.yaml":  "resources:\n- ../a\n- ../b\n",
				"a/kustomization.yaml":    "resources: [../base]\nnameSuffix: -a\n",
				"b/kustomization.yaml":    "resources: [../base]\nnameSuffix: -b\n",
				"base/kustomization.yaml": "resources: [cm.yaml]\n",
				"base/cm.yaml":            cm,
			},
			want: []string{"ConfigMap//cm-a", "ConfigMap//cm-b"},
		},
		{
			name: "builtin transformers inline, from a file and from a folder",
			files: map[string]string{
				"app/kustomization.yaml":    "resources: [cm.yaml]\ntransformers:\n- |-\n  apiVersion: builtin\n  kind: NamespaceTransformer\n  metadata:\n    name: ns\n    namespace: inline\n- patch.yaml\n- ../labels\n",
				"app/cm.yaml":               cm,
				"app/patch.yaml":            "apiVersion: builtin\nkind: PatchTransformer\nmetadata:\n  name: p\npath: data.yaml\ntarget: {kind: ConfigMap}\n",
				"app/data.yaml":             "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata: {patched: \"yes\"}\n",
				"labels/kustomization.yaml": "resources: [labels.yaml]\n",
				"labels/labels.yaml":        "apiVersion: builtin\nkind: LabelTransformer\nmetadata:\n  name: l\nlabels: {team: a}\nfieldSpecs: [{path: metadata/labels, create: true}]\n",
			},
			want: []string{"ConfigMap/inline/cm"},
		},
		{
			name: "symlinked base folder inside the root (RS-03)",
			files: map[string]string{
				"app/kustomization.yaml":         "resources:\n- ../linked\n",
				"linked":                         "->shared/base",
				"shared/base/kustomization.yaml": "resources: [cm.yaml]\n",
				"shared/base/cm.yaml":            cm,
			},
			want: []string{"ConfigMap//cm"},
		},
		{
			name: "inline strategic merge patch",
			files: map[string]string{
				"app/kustomization.yaml": "resources: [cm.yaml]\npatchesStrategicMerge:\n- |-\n  apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: cm\n  data: {a: b}\n",
				"app/cm.yaml":            cm,
			},
			want: []string{"ConfigMap//cm"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := writeTree(t, tt.files)
			res, err := Kustomize(context.Background(), filepath.Join(root, "app"), Options{Root: root})
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(res.Objects); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("objects %v, want %v", got, tt.want)
			}
		})
	}
}

func TestKustomizeCycle(t *testing.T) {
	// RS-16: a → b → a is reported, not followed for ever.
	root := writeTree(t, map[string]string{
		"a/kustomization.yaml": "resources:\n- ../b\n",
		"b/kustomization.yaml": "resources:\n- ../a\n",
	})
	_, err := Kustomize(context.Background(), filepath.Join(root, "a"), Options{Root: root})
	if err == nil {
		t.Fatal("want a cycle error")
	}
	want := "kustomization cycle: a/kustomization.yaml → b/kustomization.yaml → a/kustomization.yaml"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not contain %q", err, want)
	}
}
