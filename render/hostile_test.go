//go:build unix

package render

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/gentree"
)

// noHang runs f and fails the test if it has not returned within 20 s, so
// a regression fails instead of hanging the suite.
func noHang[T any](t *testing.T, f func(ctx context.Context) (T, error)) (T, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		v, err := f(ctx)
		done <- result{v, err}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-time.After(20 * time.Second):
		t.Fatal("still running after 20 s; want a refusal")
		var zero T
		return zero, nil
	}
}

// renderAll renders the folder dir of a tree with Path, so every kind of
// tree goes through detection too.
func renderAll(root, dir string, limits Limits) func(ctx context.Context) (*Result, error) {
	return func(ctx context.Context) (*Result, error) {
		return Path(ctx, filepath.Join(root, dir), Options{Root: root, Limits: limits})
	}
}

// TestKustomizeRemoteAnywhere: a remote reference in any string field of a
// kustomization or of a builtin plugin configuration (a file, a list, a
// folder of them or in-line) is refused before the build, with zero
// connections and nothing of the answer shown.
func TestKustomizeRemoteAnywhere(t *testing.T) {
	srv := newFetchServer(t, false)
	url := srv.URL + "/creds"
	const cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n"
	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{
			name: "generator file with items: [] is not a List",
			files: map[string]string{
				"app/kustomization.yaml": "generators: [gen.yaml]\n",
				"app/gen.yaml":           "apiVersion: builtin\nkind: ConfigMapGenerator\nmetadata: {name: g}\nitems: []\nfiles: [creds=" + url + "]\n",
			},
			want: []string{`generators "gen.yaml" (ConfigMapGenerator)`, "files[0]", "URL"},
		},
		{
			name: "a FooList of generator configs",
			files: map[string]string{
				"app/kustomization.yaml": "generators: [gen.yaml]\n",
				"app/gen.yaml":           "apiVersion: v1\nkind: GeneratorList\nitems:\n- apiVersion: builtin\n  kind: SecretGenerator\n  metadata: {name: g}\n  envs: [" + url + "]\n",
			},
			want: []string{"SecretGenerator", "envs[0]"},
		},
		{
			name: "second document of a transformer file",
			files: map[string]string{
				"app/kustomization.yaml": "resources: [cm.yaml]\ntransformers: [t.yaml]\n",
				"app/cm.yaml":            cm,
				"app/t.yaml":             "apiVersion: builtin\nkind: NamespaceTransformer\nmetadata: {name: ns, namespace: x}\n---\napiVersion: builtin\nkind: PatchTransformer\nmetadata: {name: p}\npath: " + url + "\n",
			},
			want: []string{"PatchTransformer", "path"},
		},
		{
			name: "ValueAddTransformer targetFilePath",
			files: map[string]string{
				"app/kustomization.yaml": "resources: [cm.yaml]\ntransformers:\n- |\n  apiVersion: builtin\n  kind: ValueAddTransformer\n  metadata: {name: v}\n  value: x\n  targetFilePath: " + url + "\n",
				"app/cm.yaml":            cm,
			},
			want: []string{"ValueAddTransformer", "targetFilePath"},
		},
		{
			name: "field name in another case, as kustomize's decoder accepts",
			files: map[string]string{
				"app/kustomization.yaml": "resources: [cm.yaml]\ntransformers:\n- |\n  apiVersion: builtin\n  kind: PatchTransformer\n  metadata: {name: p}\n  Path: " + url + "\n",
				"app/cm.yaml":            cm,
			},
			want: []string{"Path"},
		},
		{
			name: "in-line validator",
			files: map[string]string{
				"app/kustomization.yaml": "resources: [cm.yaml]\nvalidators:\n- |\n  apiVersion: builtin\n  kind: ReplacementTransformer\n  metadata: {name: r}\n  replacements:\n  - path: " + url + "\n",
				"app/cm.yaml":            cm,
			},
			want: []string{"validators", "replacements[0].path"},
		},
		{
			name: "generators folder listing a config file",
			files: map[string]string{
				"app/kustomization.yaml":      "generators: [gens]\n",
				"app/gens/kustomization.yaml": "resources: [gen.yaml]\n",
				"app/gens/gen.yaml":           "apiVersion: builtin\nkind: ConfigMapGenerator\nmetadata: {name: g}\nfiles: [" + url + "]\n",
			},
			want: []string{"ConfigMapGenerator", "files[0]"},
		},
		{
			name: "replacements file naming a URL",
			files: map[string]string{
				"app/kustomization.yaml": "resources: [cm.yaml]\nreplacements:\n- path: r.yaml\n",
				"app/cm.yaml":            cm,
				"app/r.yaml":             "- path: " + url + "\n",
			},
			want: []string{`replacements[0].path "r.yaml"`},
		},
		{
			name:  "configurations",
			files: map[string]string{"app/kustomization.yaml": "configurations: [" + url + "]\n"},
			want:  []string{"configurations"},
		},
		{
			name:  "openapi.path",
			files: map[string]string{"app/kustomization.yaml": "openapi:\n  path: " + url + "\n"},
			want:  []string{"openapi.path"},
		},
		{
			name:  "crds",
			files: map[string]string{"app/kustomization.yaml": "crds: [" + url + "]\n"},
			want:  []string{"crds"},
		},
		{
			name:  "components as scp-like Git",
			files: map[string]string{"app/kustomization.yaml": "components: ['git@github.com:org/repo.git//c']\n"},
			want:  []string{"components", "Git repository"},
		},
		{
			name:  "a field of a builtin config kustomize may read later",
			files: map[string]string{"app/kustomization.yaml": "resources: [cm.yaml]\ntransformers:\n- |\n  apiVersion: builtin\n  kind: LabelTransformer\n  metadata: {name: l}\n  labels: {a: b}\n  futureField: {source: " + url + "}\n", "app/cm.yaml": cm},
			want:  []string{"futureField.source"},
		},
		{
			name:  "file URL",
			files: map[string]string{"app/kustomization.yaml": "resources: ['file:///etc/passwd']\n"},
			want:  []string{"resources"},
		},
		{
			name:  "getter with a forced protocol",
			files: map[string]string{"app/kustomization.yaml": "resources: [cm.yaml]\ntransformers:\n- |\n  apiVersion: builtin\n  kind: PrefixTransformer\n  metadata: {name: p}\n  prefix: x-\n  source: 's3::bucket/key'\n", "app/cm.yaml": cm},
			want:  []string{"getter"},
		},
		{
			name:  "host//folder getter form",
			files: map[string]string{"app/kustomization.yaml": "components: ['example.com/org/repo//deploy']\n"},
			want:  []string{"components"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := writeTree(t, tt.files)
			before := srv.hits.Load()
			res, err := noHang(t, renderAll(root, "app", Limits{}))
			if n := srv.hits.Load() - before; n != 0 {
				t.Errorf("the render made %d connections; want none", n)
			}
			if !errors.Is(err, ErrUnsafe) {
				t.Fatalf("err = %v, want a refusal wrapping ErrUnsafe", err)
			}
			for _, w := range append(tt.want, "kustomization.yaml", vendorAdvice) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q: %v", w, err)
				}
			}
			if strings.Contains(err.Error(), "fetched") || res != nil {
				t.Errorf("the answer reached the caller: %v", err)
			}
		})
	}
}

// TestKustomizeDataWithURLs: URLs in data fields (literals, annotations,
// in-line patches, images) are values, not fetches, and build as kubectl
// would.
func TestKustomizeDataWithURLs(t *testing.T) {
	srv := newFetchServer(t, false)
	url := srv.URL + "/x"
	root := writeTree(t, map[string]string{
		"app/kustomization.yaml": `resources: [cm.yaml]
commonAnnotations: {docs: "` + url + `"}
images: [{name: nginx, newName: "registry.example.com:5000/nginx", newTag: "1.27"}]
configMapGenerator:
- name: endpoints
  literals: ["API=` + url + `"]
patches:
- target: {kind: ConfigMap, name: cm}
  patch: '[{"op": "add", "path": "/data/link", "value": "` + url + `"}]'
transformers:
- |
  apiVersion: builtin
  kind: AnnotationsTransformer
  metadata: {name: a}
  annotations: {homepage: "` + url + `"}
  fieldSpecs: [{path: metadata/annotations, create: true}]
`,
		"app/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata: {}\n",
	})
	res, err := noHang(t, renderAll(root, "app", Limits{}))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Objects) != 2 {
		t.Errorf("got %d objects, want 2", len(res.Objects))
	}
	if n := srv.hits.Load(); n != 0 {
		t.Errorf("the render made %d connections; want none", n)
	}
}

// diamond writes levels of kustomizations, each including the one below
// twice (through two folders), with files small objects per level.
func diamond(levels, files int) map[string]string {
	tree := map[string]string{}
	for l := range levels {
		var res []string
		for f := range files {
			name := fmt.Sprintf("cm%d.yaml", f)
			tree[fmt.Sprintf("l%d/%s", l, name)] = fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: l%d-%d\n", l, f)
			res = append(res, name)
		}
		if l+1 < levels {
			res = append(res, fmt.Sprintf("../l%da", l+1), fmt.Sprintf("../l%db", l+1))
			tree[fmt.Sprintf("l%da/kustomization.yaml", l+1)] = fmt.Sprintf("resources: [../l%d]\nnamePrefix: a-\n", l+1)
			tree[fmt.Sprintf("l%db/kustomization.yaml", l+1)] = fmt.Sprintf("resources: [../l%d]\nnamePrefix: b-\n", l+1)
		}
		tree[fmt.Sprintf("l%d/kustomization.yaml", l)] = "resources: [" + strings.Join(res, ", ") + "]\n"
	}
	return tree
}

// TestKustomizeBudgets: builds whose cost explodes are refused before the
// build, quickly, with an error that says what to do; a build that would
// copy a value into too many objects is refused by its output size.
func TestKustomizeBudgets(t *testing.T) {
	var many strings.Builder
	for i := range 4000 {
		fmt.Fprintf(&many, "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm%d\n", i)
	}
	var targets strings.Builder
	for i := range 40 {
		fmt.Fprintf(&targets, "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: t%d\ndata: {v: x}\n", i)
	}
	big := strings.Repeat("x", 64<<10)
	tests := []struct {
		name   string
		files  map[string]string
		limits Limits
		want   []string
	}{
		{
			name:  "diamond of 12 levels",
			files: diamond(12, 37),
			want:  []string{"kustomizations", "more than the 500 allowed", "include each base once"},
		},
		{
			name:  "4,000 objects in one kustomization",
			files: map[string]string{"l0/kustomization.yaml": "resources: [many.yaml]\n", "l0/many.yaml": many.String()},
			want:  []string{"about 4000 objects", "split the app"},
		},
		{
			name: "replacements copying a large value into many objects",
			files: map[string]string{
				"l0/kustomization.yaml": "resources: [src.yaml, targets.yaml]\nreplacements:\n- source: {kind: ConfigMap, name: src, fieldPath: data.v}\n  targets:\n  - select: {kind: ConfigMap}\n    fieldPaths: [data.v]\n",
				"l0/src.yaml":           "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: src\ndata:\n  v: " + big + "\n",
				"l0/targets.yaml":       targets.String(),
			},
			limits: Limits{MaxTotalBytes: 1 << 20},
			want:   []string{"replacements could copy a value of 65536 bytes into up to 41 fields", "copy smaller values"},
		},
		{
			name: "a ReplacementTransformer copying a large value",
			files: map[string]string{
				"l0/kustomization.yaml": "resources: [src.yaml, targets.yaml]\ntransformers:\n- |\n  apiVersion: builtin\n  kind: ReplacementTransformer\n  metadata: {name: r}\n  replacements:\n  - source: {kind: ConfigMap, name: src, fieldPath: data.v}\n    targets:\n    - select: {kind: ConfigMap}\n      fieldPaths: [data.v, data.w]\n",
				"l0/src.yaml":           "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: src\ndata:\n  v: " + big + "\n",
				"l0/targets.yaml":       targets.String(),
			},
			limits: Limits{MaxTotalBytes: 1 << 20},
			want:   []string{"replacements could copy a value of 65536 bytes"},
		},
		{
			name: "generated output over the limit",
			files: map[string]string{
				"l0/kustomization.yaml": "resources: [src.yaml, targets.yaml]\ncommonAnnotations: {a: \"" + strings.Repeat("y", 32<<10) + "\"}\n",
				"l0/src.yaml":           "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: src\n",
				"l0/targets.yaml":       targets.String(),
			},
			limits: Limits{MaxTotalBytes: 1 << 20},
			want:   []string{"output is larger than 1048576 bytes"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := writeTree(t, tt.files)
			_, err := noHang(t, renderAll(root, "l0", tt.limits))
			if !errors.Is(err, ErrUnsafe) {
				t.Fatalf("err = %v, want a refusal wrapping ErrUnsafe", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q: %v", w, err)
				}
			}
		})
	}
}

// TestKustomizeBudgetsAcceptRealTrees: the default budgets pass the trees
// the render benchmark generates, and a small diamond.
func TestKustomizeBudgetsAcceptRealTrees(t *testing.T) {
	root := t.TempDir()
	overlays, err := gentree.RealWorld(root)
	if err != nil {
		t.Fatal(err)
	}
	apps, err := gentree.Tree(filepath.Join(root, "apps"), 2, 20)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range apps {
		overlays = append(overlays, filepath.Join("apps", a))
	}
	small := writeTree(t, diamond(4, 5))
	// A large document of small values next to a replacement: the cheap
	// bound is over the limit, the value that could be copied is not.
	var crd strings.Builder
	crd.WriteString("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\ndata:\n  v: x\n")
	for i := range 20_000 {
		fmt.Fprintf(&crd, "  k%d: v\n", i)
	}
	var targets strings.Builder
	for i := range 40 {
		fmt.Fprintf(&targets, "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: t%d\ndata: {v: x}\n", i)
	}
	replaced := writeTree(t, map[string]string{
		"app/kustomization.yaml": "resources: [big.yaml, targets.yaml]\nreplacements:\n- source: {kind: ConfigMap, name: big, fieldPath: data.k1}\n  targets:\n  - select: {kind: ConfigMap}\n    fieldPaths: [data.v]\n",
		"app/big.yaml":           crd.String(),
		"app/targets.yaml":       targets.String(),
	})
	if _, err := Path(t.Context(), filepath.Join(replaced, "app"), Options{Root: replaced, Limits: Limits{MaxTotalBytes: 4 << 20}}); err != nil {
		t.Errorf("replacement of a small value: %v", err)
	}
	for _, o := range overlays {
		if _, err := Path(t.Context(), filepath.Join(root, o), Options{Root: root}); err != nil {
			t.Errorf("%s: %v", o, err)
		}
	}
	if _, err := Path(t.Context(), filepath.Join(small, "l0"), Options{Root: small}); err != nil {
		t.Errorf("small diamond: %v", err)
	}
}

// TestYAMLNodeBudget: YAML within every byte limit that would decode to
// too much (flow lists) is refused before it is parsed, in plain folders,
// kustomize resources and chart output alike; nesting ends at the parser's
// depth limit.
func TestYAMLNodeBudget(t *testing.T) {
	flow := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\nx: [" + strings.Repeat("a,", 32<<10) + "a]\n"
	plain := map[string]string{}
	for i := range 31 {
		plain[fmt.Sprintf("app/f%02d.yaml", i)] = strings.Replace(flow, "name: x", fmt.Sprintf("name: x%d", i), 1)
	}
	limits := Limits{MaxYAMLNodes: 100_000}
	tests := []struct {
		name   string
		files  map[string]string
		limits Limits
		want   string
	}{
		{"plain files of flow lists", plain, limits, "more than 100000 nodes"},
		{"kustomize resource", map[string]string{"app/kustomization.yaml": "resources: [a.yaml, b.yaml, c.yaml, d.yaml]\n", "app/a.yaml": flow, "app/b.yaml": flow, "app/c.yaml": flow, "app/d.yaml": flow}, limits, "more than 100000 nodes"},
		{"chart output", map[string]string{
			"app/Chart.yaml":          "apiVersion: v2\nname: web\nversion: 1.0.0\n",
			"app/templates/list.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\nx: [{{ range until 30000 }}a,a,a,a,{{ end }}a]\n",
		}, limits, "more than 100000 nodes"},
		{"deep nesting within the budget", map[string]string{"app/deep.yaml": "x: " + strings.Repeat("[", 1<<20) + "\n"}, Limits{}, "depth"},
		{"deep nesting over the budget", map[string]string{"app/deep.yaml": "x: " + strings.Repeat("[", 1<<20) + "\n"}, limits, "more than 100000 nodes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := writeTree(t, tt.files)
			_, err := noHang(t, renderAll(root, "app", tt.limits))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestEstimateYAMLNodes(t *testing.T) {
	tests := []struct {
		name     string
		yaml     string
		min, max int64
	}{
		{"block mapping", "a: 1\nb:\n  c: 2\n", 4, 8},
		{"flow list", "x: [" + strings.Repeat("a,", 999) + "a]\n", 1000, 1010},
		{"block scalar of JSON is text", "data:\n  d.json: |\n    {\"a\": [1,2,3], \"b\": {\"c\": 4}}\n    [" + strings.Repeat("1,", 500) + "1]\nnext: 1\n", 3, 6},
		{"quoted commas are text", "a: \"x, y, [z]\"\nb: 'p, q'\n", 4, 4},
		{"comments are text", "a: 1 # [x, y, z]\n", 2, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := estimateYAMLNodes([]byte(tt.yaml)); got < tt.min || got > tt.max {
				t.Errorf("estimate = %d, want %d to %d", got, tt.min, tt.max)
			}
		})
	}
}

// TestHelmSymlinkDAG: folders linked from many places are walked once;
// a DAG of links is refused at once instead of walked exponentially.
func TestHelmSymlinkDAG(t *testing.T) {
	files := map[string]string{
		"chart/Chart.yaml":        "apiVersion: v2\nname: web\nversion: 1.0.0\n",
		"chart/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
		"chart/d0/a":              "->../d1",
		"chart/d0/b":              "->../d1",
	}
	for i := 1; i < 40; i++ {
		files[fmt.Sprintf("chart/d%d/f.txt", i)] = "x"
		files[fmt.Sprintf("chart/d%d/a", i)] = fmt.Sprintf("->../d%d", i+1)
		files[fmt.Sprintf("chart/d%d/b", i)] = fmt.Sprintf("->../d%d", i+1)
	}
	files["chart/d40/f.txt"] = "x"
	root := writeTree(t, files)
	_, err := noHang(t, renderAll(root, "chart", Limits{}))
	if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "reached through links more than 4 times") {
		t.Fatalf("err = %v, want a refusal of the second link", err)
	}
}

// TestHelmFunctionBudgets: each template function that takes a count or
// size is refused above its budget, quickly, naming the function.
func TestHelmFunctionBudgets(t *testing.T) {
	tests := []struct {
		name, template, want string
	}{
		{"nested until", `{{ range until 100000 }}{{ range until 100000 }}{{ end }}{{ end }}`, "until"},
		{"untilStep", `{{ range untilStep 0 1000000000 1 }}{{ end }}`, "untilStep"},
		{"seq", `{{ seq 1 1000000000 }}`, "seq"},
		{"repeat", `{{ repeat 2000000000 "xxxxxxxx" }}`, "repeat"},
		{"randBytes", `{{ randBytes 2000000000 }}`, "randBytes"},
		{"randAlphaNum", `{{ randAlphaNum 2000000000 }}`, "randAlphaNum"},
		{"randAscii", `{{ randAscii 2000000000 }}`, "randAscii"},
		{"indent", `{{ indent 2000000000 "x" }}`, "indent"},
		{"nindent over many lines", `{{ $s := repeat 100000 "x\n" }}{{ range until 10000 }}{{ $_ := nindent 9000 $s }}{{ end }}`, "nindent"},
		{"genPrivateKey in a loop", `{{ range until 1000 }}{{ $_ := genPrivateKey "ecdsa" }}{{ end }}`, "genPrivateKey"},
		{"genCA in a loop", `{{ range until 1000 }}{{ $_ := genCA "x" 1 }}{{ end }}`, "genCA"},
		{"printf doubling", `{{ $s := "xxxxxxxxxxxxxxxx" }}{{ range until 64 }}{{ $s = printf "%s%s" $s $s }}{{ end }}`, "printf"},
		{"append doubling", `{{ $l := list 1 }}{{ range until 64 }}{{ $l = concat $l $l }}{{ end }}`, "concat"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := writeTree(t, map[string]string{
				"chart/Chart.yaml":       "apiVersion: v2\nname: web\nversion: 1.0.0\n",
				"chart/templates/x.yaml": tt.template + "\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
			})
			_, err := noHang(t, renderAll(root, "chart", Limits{MaxTotalBytes: 8 << 20}))
			if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want a refusal wrapping ErrUnsafe naming %s", err, tt.want)
			}
		})
	}
}

// TestHelmFunctionsWithinBudget: the wrapped functions answer as Helm's.
func TestHelmFunctionsWithinBudget(t *testing.T) {
	root := writeTree(t, map[string]string{
		"chart/Chart.yaml": "apiVersion: v2\nname: web\nversion: 1.0.0\n",
		"chart/templates/x.yaml": `apiVersion: v1
kind: ConfigMap
metadata: {name: x}
data:
  until: {{ until 3 | join "," | quote }}
  untilStep: {{ untilStep 0 10 4 | join "," | quote }}
  seq: {{ seq 5 -1 1 | quote }}
  repeat: {{ repeat 3 "ab" | quote }}
  printf: {{ printf "%s-%d" "a" 1 | quote }}
  rand: {{ randAlphaNum 8 | len | quote }}
  list: {{ concat (list 1 2) (list 3) | toJson | quote }}
  nested: |
{{- dict "a" "b" | toYaml | nindent 4 }}
`,
	})
	res, err := Helm(t.Context(), filepath.Join(root, "chart"), Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"until": "0,1,2", "untilStep": "0,4,8", "seq": "5 4 3 2 1", "repeat": "ababab", "printf": "a-1", "rand": "8", "list": "[1,2,3]", "nested": "a: b\n"}
	got := res.Objects[0].Object["data"].(map[string]any)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

// TestFIFOs: a FIFO named like any file a render reads is refused at once,
// never opened for a blocking read.
func TestFIFOs(t *testing.T) {
	const cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n"
	chart := map[string]string{
		"app/Chart.yaml":        "apiVersion: v2\nname: web\nversion: 1.0.0\n",
		"app/values.yaml":       "a: 1\n",
		"app/templates/cm.yaml": cm,
	}
	with := func(base map[string]string, extra map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range base {
			out[k] = v
		}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}
	tests := []struct {
		name  string
		files map[string]string
		fifo  string
	}{
		{"plain manifest named", map[string]string{"app/a.yaml": cm}, "app/b.yaml"},
		{"kustomization.yaml", map[string]string{"app/x": ""}, "app/kustomization.yaml"},
		{"kustomize resource", map[string]string{"app/kustomization.yaml": "resources: [cm.yaml]\n"}, "app/cm.yaml"},
		{"kustomize generator file", map[string]string{"app/kustomization.yaml": "configMapGenerator:\n- name: g\n  files: [f.txt]\n"}, "app/f.txt"},
		{"Chart.yaml", map[string]string{"app/templates/cm.yaml": cm}, "app/Chart.yaml"},
		{"values.yaml", with(chart, nil), "app/values.yaml"},
		{".helmignore", with(chart, nil), "app/.helmignore"},
		{"chart template", with(chart, nil), "app/templates/fifo.yaml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{}
			for k, v := range tt.files {
				if k != tt.fifo {
					files[k] = v
				}
			}
			root := writeTree(t, files)
			if err := syscall.Mkfifo(filepath.Join(root, tt.fifo), 0o644); err != nil {
				t.Fatal(err)
			}
			dir := "app"
			if strings.HasSuffix(tt.name, "named") {
				dir = tt.fifo
			}
			_, err := noHang(t, renderAll(root, dir, Limits{}))
			if err == nil {
				t.Fatal("want an error, got none")
			}
		})
	}
}

// TestFIFOInPlainFolder: a FIFO in a plain folder is skipped, never opened.
func TestFIFOInPlainFolder(t *testing.T) {
	root := writeTree(t, map[string]string{"app/a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n"})
	if err := syscall.Mkfifo(filepath.Join(root, "app", "b.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := noHang(t, renderAll(root, "app", Limits{}))
	if err != nil || len(res.Objects) != 1 {
		t.Fatalf("got %v, %v; want the one object of a.yaml", res, err)
	}
}

// tplRecursionEnv makes the test binary, run by TestHelmTplRecursion, render
// a chart whose tpl calls itself.
const tplRecursionEnv = "RENDER_TEST_TPL_RECURSION"

// tplRecursionStarted is what the child prints when its render starts, so
// a child that fails earlier does not pass the test.
const tplRecursionStarted = "tpl recursion: rendering"

// TestHelmTplRecursion: Helm's tpl cannot be bounded from outside its
// engine, so a tpl that calls itself is stopped by the process limits the
// sandbox sets. This runs it in a child with a 2 GiB address-space limit and
// checks that it ends (it dies) within 60 s instead of hanging, and that the
// parent, as the sandbox does, sees a failed process.
func TestHelmTplRecursion(t *testing.T) {
	if os.Getenv(tplRecursionEnv) != "" {
		if err := syscall.Setrlimit(syscall.RLIMIT_AS, &syscall.Rlimit{Cur: 2 << 30, Max: 2 << 30}); err != nil {
			t.Fatal(err)
		}
		root := writeTree(t, map[string]string{
			"chart/Chart.yaml":       "apiVersion: v2\nname: web\nversion: 1.0.0\n",
			"chart/values.yaml":      "x: '{{ tpl .Values.x . }}'\n",
			"chart/templates/x.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {x: {{ tpl .Values.x . | quote }}}\n",
		})
		fmt.Fprintln(os.Stderr, tplRecursionStarted)
		_, err := Helm(t.Context(), filepath.Join(root, "chart"), Options{Root: root})
		t.Fatalf("the render returned: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelmTplRecursion$")
	cmd.Env = append(os.Environ(), tplRecursionEnv+"=1")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("the render was still running after 60 s")
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("err = %v, want the child to fail", err)
	}
	if !strings.Contains(string(out), tplRecursionStarted) {
		t.Fatalf("the child failed before rendering:\n%s", lastLines(string(out), 10))
	}
	if !strings.Contains(string(out), "stack") && !strings.Contains(string(out), "memory") {
		t.Errorf("the child failed without running out of stack or memory:\n%s", lastLines(string(out), 10))
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
