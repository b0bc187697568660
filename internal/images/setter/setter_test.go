package setter_test

import (
	"bytes"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/kubectl-gitops/kubectl-gitops/internal/images/setter"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/golden"
)

var (
	digestAPI    = "sha256:" + strings.Repeat("3", 64)
	digestWorker = "sha256:" + strings.Repeat("1", 64)
)

// updates are the policies' new images the tests apply: web moves a tag,
// api pins a digest (and has a tag that reads as a float), worker drops the
// digest its files were pinned to.
func updates() map[string]setter.Update {
	return map[string]setter.Update{
		"web":    {Policy: "web", Image: "ghcr.io/stefanprodan/podinfo", Tag: "6.7.1"},
		"api":    {Policy: "api", Image: "ghcr.io/acme/api", Tag: "1.10", Digest: digestAPI},
		"worker": {Policy: "worker", Image: "ghcr.io/acme/worker", Tag: "2.0.0"},
	}
}

// declared are the policies gitops.yaml declares: idle has no update.
var declared = []string{"web", "api", "worker", "idle"}

func TestApplyGolden(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edits int
	}{
		{"deployment", 4},
		{"values", 4},
		{"kustomization", 2},
		{"gitops", 3},
		{"sequence", 5},
		{"quoting", 9},
		{"current", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := readFile(t, filepath.Join("testdata", tc.name+".yaml"))
			for _, eol := range []string{"lf", "crlf"} {
				t.Run(eol, func(t *testing.T) {
					in := in
					if eol == "crlf" {
						in = crlf(in)
					}
					name := "apps/web/" + tc.name + ".yaml"
					res := apply(t, map[string][]byte{name: in})
					if len(res.Edits) != tc.edits {
						t.Errorf("%d edits, want %d: %+v", len(res.Edits), tc.edits, res.Edits)
					}
					out, changed := res.Files[name]
					if changed != (tc.edits > 0) {
						t.Fatalf("file changed: %v, want %v", changed, tc.edits > 0)
					}
					if !changed {
						out = in
					}
					checkOnlyMarkedLines(t, in, out, res.Edits)
					if eol == "crlf" {
						if lf := bytes.Count(out, []byte("\n")); bytes.Count(out, []byte("\r\n")) != lf {
							t.Errorf("CRLF file came back with bare LF line endings:\n%q", out)
						}
						if want := crlf(readFile(t, filepath.Join("testdata", tc.name+".golden"))); !golden.Updating() && !bytes.Equal(out, want) {
							t.Errorf("CRLF output differs from the LF golden file with CRLF line endings:\n%q\nwant\n%q", out, want)
						}
						return
					}
					golden.Assert(t, filepath.Join("testdata", tc.name+".golden"), out)
					golden.Assert(t, filepath.Join("testdata", tc.name+".edits.golden"), []byte(formatEdits(res.Edits)))

					// A second run over the result changes nothing.
					again := apply(t, map[string][]byte{name: out})
					if len(again.Edits) != 0 || len(again.Files) != 0 {
						t.Errorf("second run changed %v: %+v", slices.Collect(maps.Keys(again.Files)), again.Edits)
					}
				})
			}
		})
	}
}

func TestApplyTree(t *testing.T) {
	files := map[string][]byte{
		"apps/web/deploy.yaml": []byte("image: ghcr.io/stefanprodan/podinfo:6.7.0 # {\"$imagepolicy\": \"web\"}\n"),
		"apps/web/same.yml":    []byte("image: ghcr.io/stefanprodan/podinfo:6.7.1 # {\"$imagepolicy\": \"web\"}\n"),
		"apps/web/plain.yaml":  []byte("image: ghcr.io/stefanprodan/podinfo:6.7.0\n"),
		"apps/web/UPPER.YAML":  []byte("tag: 6.7.0 # {\"$imagepolicy\": \"web:tag\"}\n"),
		// Not YAML: never read, markers or not, valid or not.
		"README.md":        []byte("image: x:1 # {\"$imagepolicy\": \"nope\"}\n"),
		"values.json":      []byte(`{"image": "x:1"} # {"$imagepolicy": "web"}`),
		"apps/web/Chart.j": []byte("[: # {\"$imagepolicy\": \"web\"}"),
		// Broken YAML without a marker is never parsed.
		"apps/broken.yaml": []byte("a: [\n"),
	}
	res := apply(t, files)
	want := setter.Result{
		Files: map[string][]byte{
			"apps/web/UPPER.YAML":  []byte("tag: 6.7.1 # {\"$imagepolicy\": \"web:tag\"}\n"),
			"apps/web/deploy.yaml": []byte("image: ghcr.io/stefanprodan/podinfo:6.7.1 # {\"$imagepolicy\": \"web\"}\n"),
		},
		Edits: []setter.Edit{
			{File: "apps/web/UPPER.YAML", Line: 1, Policy: "web", Old: "6.7.0", New: "6.7.1"},
			{File: "apps/web/deploy.yaml", Line: 1, Policy: "web", Old: "ghcr.io/stefanprodan/podinfo:6.7.0", New: "ghcr.io/stefanprodan/podinfo:6.7.1"},
		},
	}
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("Apply (-want +got):\n%s", diff)
	}
	if !bytes.Equal(files["apps/web/deploy.yaml"], []byte("image: ghcr.io/stefanprodan/podinfo:6.7.0 # {\"$imagepolicy\": \"web\"}\n")) {
		t.Error("Apply changed its input")
	}
}

func TestApplyPolicies(t *testing.T) {
	files := map[string][]byte{"a.yaml": []byte("tag: 1.0.0 # {\"$imagepolicy\": \"idle:tag\"}\n")}
	// Declared without an update: left alone.
	res, err := setter.Apply(files, updates(), setter.Options{Policies: declared})
	if err != nil || len(res.Edits) != 0 || len(res.Files) != 0 {
		t.Errorf("declared policy without update: %+v, %v; want no edits", res, err)
	}
	// Nil Policies: the updates are the declared policies, idle is unknown.
	_, err = setter.Apply(files, updates(), setter.Options{})
	wantErr(t, err, `a.yaml:1: marker names image policy "idle", which gitops.yaml does not declare; fix the name or add the policy`)
}

func TestApplyErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		files   map[string]string
		updates map[string]setter.Update
		want    []string
	}{{
		name: "unknown policy in every file",
		files: map[string]string{
			"apps/web/deploy.yaml": "# web\nkind: Deployment\nspec:\n  image: ghcr.io/stefanprodan/podinfo:6.7.0 # {\"$imagepolicy\": \"web\"}\n  sidecar:\n    image: ghcr.io/x/y:1 # {\"$imagepolicy\": \"podinfo2\"}\n",
			"apps/api/values.yaml": "tag: 1.0.0 # {\"$imagepolicy\": \"podinfo2:tag\"}\n",
		},
		want: []string{
			`apps/api/values.yaml:1: marker names image policy "podinfo2", which gitops.yaml does not declare; fix the name or add the policy`,
			`apps/web/deploy.yaml:6: marker names image policy "podinfo2", which gitops.yaml does not declare; fix the name or add the policy`,
		},
	}, {
		name:  "marker on a key whose value is a mapping",
		files: map[string]string{"a.yaml": "image: # {\"$imagepolicy\": \"web\"}\n  repository: x\n"},
		want:  []string{`a.yaml:1: image policy marker on key "image", whose value is not a scalar on the same line; put the marker after the single-line value it sets`},
	}, {
		name:  "marker on a key without value",
		files: map[string]string{"a.yaml": "tag: # {\"$imagepolicy\": \"web:tag\"}\nother: 1\n"},
		want:  []string{`a.yaml:1: image policy marker after an empty value; write a value (the current one, say) before the marker`},
	}, {
		name:  "marker after a flow mapping",
		files: map[string]string{"gitops.yaml": "images: [{name: x, newTag: \"1.0\"}] # {\"$imagepolicy\": \"web:tag\"}\n"},
		want:  []string{`gitops.yaml:1: image policy marker after a flow sequence ([…]), not after a single value; write collections that hold markers in block style, with the marker after the value it sets`},
	}, {
		name:  "marker after a flow mapping item",
		files: map[string]string{"gitops.yaml": "images:\n  - {name: x, newTag: \"1.0\"} # {\"$imagepolicy\": \"web:tag\"}\n"},
		want:  []string{`gitops.yaml:2: image policy marker after a flow mapping ({…}), not after a single value; write collections that hold markers in block style, with the marker after the value it sets`},
	}, {
		name:  "marker on an alias",
		files: map[string]string{"a.yaml": "a: &img x:1\nb: *img # {\"$imagepolicy\": \"web\"}\n"},
		want:  []string{`a.yaml:2: image policy marker on an alias (*img); put the marker on the anchored value instead`},
	}, {
		name:  "marker after a block scalar",
		files: map[string]string{"a.yaml": "a: | # {\"$imagepolicy\": \"web\"}\n  x:1\n"},
		want:  []string{`a.yaml:1: image policy marker after a block scalar (| or >); write the value as a single-line scalar`},
	}, {
		name:  "value over two lines",
		files: map[string]string{"a.yaml": "a: \"ghcr.io/x:\n  1\" # {\"$imagepolicy\": \"web\"}\n"},
		want:  []string{`a.yaml:1: the value an image policy marker sets must be on one line with its marker; join them`},
	}, {
		name: "Flux namespaces",
		files: map[string]string{"a.yaml": "a: x:1 # {\"$imagepolicy\": \"flux-system:web\"}\n" +
			"b: \"1\" # {\"$imagepolicy\": \"flux-system:web:tag\"}\n" +
			"c: \"1\" # {\"$imagepolicy\": \"flux-system:web:version\"}\n"},
		want: []string{
			`a.yaml:1: marker "flux-system:web" has Flux's NAMESPACE:NAME form, but image policies here have no namespace; write "web"`,
			`a.yaml:2: marker "flux-system:web:tag" has Flux's NAMESPACE:NAME:FIELD form, but image policies here have no namespace; write "web:tag"`,
			`a.yaml:3: marker "flux-system:web:version" ends in "version", which is not a field; write NAME, NAME:tag, NAME:name or NAME:digest`,
		},
	}, {
		name: "malformed markers",
		files: map[string]string{"a.yaml": "a: x:1 # {$imagepolicy: web}\n" +
			"b: x:1 # {\"$imagepolicy\": \"web\"} keep in sync\n" +
			"c: x:1 # {\"$imagepolicy\": \"web:\"}\n" +
			"d: x:1 # {\"$imagepolicy\": 1}\n"},
		want: []string{
			`a.yaml:1: malformed image policy marker "# {$imagepolicy: web}"; write # {"$imagepolicy": "NAME"} (or NAME:tag, NAME:name, NAME:digest) and nothing else in the comment`,
			`a.yaml:2: malformed image policy marker "# {\"$imagepolicy\": \"web\"} keep in sync"; write # {"$imagepolicy": "NAME"} (or NAME:tag, NAME:name, NAME:digest) and nothing else in the comment`,
			`a.yaml:3: malformed image policy marker "# {\"$imagepolicy\": \"web:\"}"; write # {"$imagepolicy": "NAME"} (or NAME:tag, NAME:name, NAME:digest) and nothing else in the comment`,
			`a.yaml:4: malformed image policy marker "# {\"$imagepolicy\": 1}"; write # {"$imagepolicy": "NAME"} (or NAME:tag, NAME:name, NAME:digest) and nothing else in the comment`,
		},
	}, {
		name:  "digest of a policy that does not pin",
		files: map[string]string{"a.yaml": "digest: \"\" # {\"$imagepolicy\": \"web:digest\"}\n"},
		want:  []string{`a.yaml:1: marker wants the digest of image policy "web", which has none; set digest: pin on the policy in gitops.yaml, or mark the value "web:tag" or "web" instead`},
	}, {
		name:  "YAML that does not parse",
		files: map[string]string{"a.yaml": "a: x:1 # {\"$imagepolicy\": \"web\"}\nb: [\n"},
		want:  []string{`a.yaml:2: not valid YAML (did not find expected node content); fix the file, it holds an image policy marker`},
	}, {
		name:  "file too large",
		files: map[string]string{"big.yaml": "a: x:1 # {\"$imagepolicy\": \"web\"}\n#" + strings.Repeat(" ", setter.DefaultMaxFileSize) + "\n"},
		want:  []string{`big.yaml: 1048611 bytes, more than the 1048576 a file with an image policy marker may have; split the file or move the marker out of it`},
	}, {
		name:    "update that is not a reference",
		files:   map[string]string{"a.yaml": "a: x:1 # {\"$imagepolicy\": \"web\"}\n"},
		updates: map[string]setter.Update{"web": {Image: "ghcr.io/x", Tag: "1 # injected\nb: 2"}},
		want:    []string{`image policy "web": "1 # injected\nb: 2" is not an image tag`},
	}, {
		name:    "update keyed by another policy",
		files:   map[string]string{"a.yaml": "a: x:1 # {\"$imagepolicy\": \"web\"}\n"},
		updates: map[string]setter.Update{"web": {Policy: "api", Image: "ghcr.io/x", Tag: "1"}},
		want:    []string{`the update of image policy "web" names policy "api"; key updates by their policy`},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string][]byte{
				// A file that would change, to show nothing is written.
				"ok.yaml": []byte("image: ghcr.io/stefanprodan/podinfo:6.7.0 # {\"$imagepolicy\": \"web\"}\n"),
			}
			for name, text := range tc.files {
				files[name] = []byte(text)
			}
			u := tc.updates
			if u == nil {
				u = updates()
			}
			res, err := setter.Apply(files, u, setter.Options{})
			wantErr(t, err, tc.want...)
			if res.Files != nil || res.Edits != nil {
				t.Errorf("Apply returned %+v with an error; want nothing written", res)
			}
		})
	}
}

func TestApplyBoundedInput(t *testing.T) {
	// A billion laughs: aliases are kept as they are, never expanded.
	var bomb strings.Builder
	bomb.WriteString("image: ghcr.io/stefanprodan/podinfo:6.7.0 # {\"$imagepolicy\": \"web\"}\na0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
	for i := 1; i < 30; i++ {
		fmt.Fprintf(&bomb, "a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	res := apply(t, map[string][]byte{"bomb.yaml": []byte(bomb.String())})
	if len(res.Edits) != 1 {
		t.Errorf("edits %+v, want the one marked image", res.Edits)
	}

	// A large file without a marker is never read.
	big := bytes.Repeat([]byte("a: [\n"), setter.DefaultMaxFileSize)
	res = apply(t, map[string][]byte{"big.yaml": big})
	if len(res.Edits) != 0 {
		t.Errorf("edits %+v, want none", res.Edits)
	}

	// MaxFileSize moves the bound.
	_, err := setter.Apply(map[string][]byte{"a.yaml": []byte("a: x:1 # {\"$imagepolicy\": \"web\"}\n")}, updates(),
		setter.Options{MaxFileSize: 10})
	wantErr(t, err, `a.yaml: 33 bytes, more than the 10 a file with an image policy marker may have; split the file or move the marker out of it`)
}

func TestImportsOnlyTheStandardLibraryAndYAML(t *testing.T) {
	// setter is pure: it edits bytes, with the YAML parser only to find them.
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, is := range f.Imports {
			path, _ := strconv.Unquote(is.Path.Value)
			if path != "go.yaml.in/yaml/v3" && strings.Contains(strings.Split(path, "/")[0], ".") {
				t.Errorf("%s imports %s: setter imports only the standard library and go.yaml.in/yaml/v3", fset.Position(is.Pos()), path)
			}
		}
	}
}

func FuzzApply(f *testing.F) {
	names, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range names {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		f.Add(crlf(data))
	}
	f.Add([]byte("a: \"x\\\n  y\" # {\"$imagepolicy\": \"web\"}\n"))
	f.Add([]byte("\xef\xbb\xbfa: \u00e9 # {\"$imagepolicy\": \"web:tag\"}\r- b\u2028c: 1 # {\"$imagepolicy\": \"web\"}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		files := map[string][]byte{"f.yaml": data}
		res, err := setter.Apply(files, updates(), setter.Options{Policies: declared})
		if err != nil {
			return
		}
		out, changed := res.Files["f.yaml"]
		if !changed {
			if len(res.Edits) != 0 {
				t.Fatalf("edits %+v without a changed file", res.Edits)
			}
			return
		}
		// The result parses as YAML did before, and a second run over it
		// changes nothing.
		var before, after []*yaml.Node
		if before, err = parseAll(data); err != nil {
			t.Fatalf("Apply edited a file that does not parse: %v", err)
		}
		if after, err = parseAll(out); err != nil {
			t.Fatalf("Apply's output does not parse: %v\n%q\n→\n%q", err, data, out)
		}
		if len(before) != len(after) {
			t.Fatalf("%d documents became %d:\n%q\n→\n%q", len(before), len(after), data, out)
		}
		again, err := setter.Apply(map[string][]byte{"f.yaml": out}, updates(), setter.Options{Policies: declared})
		if err != nil {
			t.Fatalf("second run: %v\n%q", err, out)
		}
		if len(again.Edits) != 0 {
			t.Fatalf("second run edited %+v\n%q", again.Edits, out)
		}
	})
}

func parseAll(data []byte) ([]*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []*yaml.Node
	for {
		doc := new(yaml.Node)
		if err := dec.Decode(doc); err != nil {
			if errors.Is(err, io.EOF) {
				return docs, nil
			}
			return nil, err
		}
		docs = append(docs, doc)
	}
}

// apply runs Apply over files with the test policies and fails on an error.
func apply(t *testing.T, files map[string][]byte) setter.Result {
	t.Helper()
	res, err := setter.Apply(files, updates(), setter.Options{Policies: declared})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// checkOnlyMarkedLines checks that out differs from in only on the lines of
// the edits, one line per edit.
func checkOnlyMarkedLines(t *testing.T, in, out []byte, edits []setter.Edit) {
	t.Helper()
	a, b := bytes.Split(in, []byte("\n")), bytes.Split(out, []byte("\n"))
	if len(a) != len(b) {
		t.Fatalf("%d lines became %d", len(a), len(b))
	}
	var changed []int
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			changed = append(changed, i+1)
		}
	}
	var lines []int
	for _, e := range edits {
		lines = append(lines, e.Line)
	}
	if diff := cmp.Diff(lines, changed); diff != "" {
		t.Errorf("changed lines differ from the edits' lines (-edits +changed):\n%s", diff)
	}
}

func formatEdits(edits []setter.Edit) string {
	var b strings.Builder
	for _, e := range edits {
		fmt.Fprintf(&b, "%s:%d %s: %q → %q", e.File, e.Line, e.Policy, e.Old, e.New)
		if e.Quoted {
			b.WriteString(" (quoted)")
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func wantErr(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want:\n%s", strings.Join(want, "\n"))
	}
	var got []string
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range joined.Unwrap() {
			got = append(got, e.Error())
		}
	} else {
		got = []string{err.Error()}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func crlf(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n")) }
