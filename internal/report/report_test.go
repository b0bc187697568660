package report

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-gitops/kubectl-gitops/internal/diff"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/golden"
)

// objs parses a multi-document YAML stream.
func objs(t *testing.T, stream string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for doc := range strings.SplitSeq(stream, "\n---\n") {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatalf("parse fixture: %v", err)
		}
		out = append(out, u)
	}
	return out
}

func changeSet(t *testing.T, before, after string) *diff.ChangeSet {
	t.Helper()
	cs, err := diff.Objects(objs(t, before), objs(t, after), diff.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

const beforeTree = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop, labels: {app: web}}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "nginx:1.27"}]
---
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: legacy, namespace: shop}
data: {mode: old}
`

const afterTree = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop, labels: {app: web}}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "nginx:1.28"}]
---
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
data: {mode: new}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: shop-view}
rules: [{apiGroups: [""], resources: [pods], verbs: [get]}]
`

func TestWriteGolden(t *testing.T) {
	changes := changeSet(t, beforeTree, afterTree)
	noChanges := changeSet(t, beforeTree, beforeTree)
	tricky := &diff.ChangeSet{Changes: []diff.Change{{
		Ref:     diff.Ref{Group: "example.com", Version: "v1", Kind: "Doc", Namespace: "ns|x", Name: "a*b_<c>`d`"},
		Action:  diff.Configured,
		Diff:    "--- before/x\n+++ after/x\n@@ -1 +1 @@\n-text: ```\n+text: ````go\n",
		Message: "would take ownership from [kubectl](x)",
	}}}
	tests := []struct {
		name string
		cs   *diff.ChangeSet
		opts Options
	}{
		{"text", changes, Options{Format: Text}},
		{"text-color", changes, Options{Format: Text, Color: true}},
		{"text-nochanges", noChanges, Options{}},
		{"markdown", changes, Options{Format: Markdown}},
		{"markdown-nochanges", noChanges, Options{Format: Markdown}},
		{"markdown-escape", tricky, Options{Format: Markdown}},
		{"json", changes, Options{Format: JSON}},
		{"json-nochanges", noChanges, Options{Format: JSON}},
		{"json-nil", nil, Options{Format: JSON}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Write(&buf, tt.cs, tt.opts); err != nil {
				t.Fatal(err)
			}
			assertGolden(t, tt.name, buf.Bytes())
		})
	}
}

func assertGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	golden.Assert(t, filepath.Join("testdata", name+".golden"), got)
}

func TestWriteDeterministic(t *testing.T) {
	for _, f := range Formats() {
		var first string
		for i := range 5 {
			var buf bytes.Buffer
			if err := Write(&buf, changeSet(t, beforeTree, afterTree), Options{Format: f}); err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				first = buf.String()
			} else if buf.String() != first {
				t.Fatalf("%s: output differs between runs", f)
			}
		}
	}
}

func TestJSONSchema(t *testing.T) {
	var buf bytes.Buffer
	if err := Write(&buf, changeSet(t, beforeTree, afterTree), Options{Format: JSON}); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Summary map[string]int   `json:"summary"`
		Changes []map[string]any `json:"changes"`
	}
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{"created": 2, "configured": 1, "deleted": 1, "unchanged": 1}; !equalMaps(got.Summary, want) {
		t.Errorf("summary = %v, want %v", got.Summary, want)
	}
	for _, c := range got.Changes {
		for _, k := range []string{"group", "version", "kind", "namespace", "name", "action"} {
			if _, ok := c[k]; !ok {
				t.Errorf("change %v lacks %q", c, k)
			}
		}
		_, hasDiff := c["diff"]
		if hasDiff == (c["action"] == "unchanged") {
			t.Errorf("change %v: diff present = %v", c, hasDiff)
		}
	}
}

func equalMaps(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestParseFormat(t *testing.T) {
	tests := []struct {
		in      string
		want    Format
		wantErr string
	}{
		{"text", Text, ""},
		{"markdown", Markdown, ""},
		{"json", JSON, ""},
		{"yaml", "", `unknown output format "yaml": use one of text, markdown, json`},
		{"", "", `unknown output format "": use one of text, markdown, json`},
	}
	for _, tt := range tests {
		got, err := ParseFormat(tt.in)
		if got != tt.want || (err == nil) != (tt.wantErr == "") || (err != nil && err.Error() != tt.wantErr) {
			t.Errorf("ParseFormat(%q) = %q, %v; want %q, %q", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestWriteErrors(t *testing.T) {
	if err := Write(&bytes.Buffer{}, nil, Options{Format: "xml"}); err == nil || !strings.Contains(err.Error(), "use one of text, markdown, json") {
		t.Errorf("unknown format: %v", err)
	}
	errBroken := errors.New("broken pipe")
	err := Write(failingWriter{errBroken}, nil, Options{})
	if !errors.Is(err, errBroken) {
		t.Errorf("write error = %v, want it to wrap %v", err, errBroken)
	}
}

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }

func TestFence(t *testing.T) {
	tests := map[string]string{
		"":                "```",
		"no ticks":        "```",
		"a ``` b":         "````",
		"`````\n``":       "``````",
		"x `y` ```` z ``": "`````",
	}
	for in, want := range tests {
		if got := fence(in); got != want {
			t.Errorf("fence(%q) = %q, want %q", in, got, want)
		}
	}
}

// canary values seeded into Secrets; none of them may reach any output.
const canary = "CANARY-s3cr3t-b4s364"

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestSecretCanary(t *testing.T) {
	values := []string{canary, canary + "-old", canary + "-new", canary + "-gone", canary + "-added", canary + "-string", canary + "-token"}
	var forbidden []string
	for _, v := range values {
		forbidden = append(forbidden, v, b64(v))
	}
	lastApplied := func(data, stringData string) string {
		return `{"apiVersion":"v1","kind":"Secret","data":{` + data + `},"stringData":{` + stringData + `}}`
	}
	before := `
apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: shop
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: '` + lastApplied(`"same":"`+b64(canary)+`","changed":"`+b64(canary+"-old")+`"`, `"password":"`+canary+`"`) + `'
data:
  same: ` + b64(canary) + `
  changed: ` + b64(canary+"-old") + `
  removed: ` + b64(canary+"-gone") + `
stringData:
  password: ` + canary + `
---
apiVersion: v1
kind: Secret
metadata: {name: unchanged, namespace: shop}
data: {token: ` + b64(canary+"-token") + `}
---
apiVersion: v1
kind: Secret
metadata: {name: pruned, namespace: shop}
data: {token: ` + b64(canary) + `}
stringData: {note: ` + canary + `-string}
`
	after := `
apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: shop
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: '` + lastApplied(`"same":"`+b64(canary)+`","changed":"`+b64(canary+"-new")+`"`, `"password":"`+canary+`-new"`) + `'
data:
  same: ` + b64(canary) + `
  changed: ` + b64(canary+"-new") + `
  added: ` + b64(canary+"-added") + `
stringData:
  password: ` + canary + `-new
---
apiVersion: v1
kind: Secret
metadata: {name: unchanged, namespace: shop}
data: {token: ` + b64(canary+"-token") + `}
---
apiVersion: v1
kind: Secret
metadata: {name: fresh, namespace: shop}
stringData: {apiKey: ` + canary + `}
`
	cs := changeSet(t, before, after)
	if got, want := cs.Summary(), (diff.Summary{Created: 1, Configured: 1, Deleted: 1, Unchanged: 1}); got != want {
		t.Fatalf("summary = %+v, want %+v", got, want)
	}

	outputs := map[string]string{}
	for _, c := range cs.Changes {
		outputs[c.Ref.String()+" diff"] = c.Diff
		for side, u := range map[string]*unstructured.Unstructured{"before": c.Before, "after": c.After} {
			if u != nil {
				j, err := json.Marshal(u.Object)
				if err != nil {
					t.Fatal(err)
				}
				outputs[c.Ref.String()+" "+side] = string(j)
			}
		}
	}
	for _, opts := range []Options{{Format: Text}, {Format: Text, Color: true}, {Format: Markdown}, {Format: JSON}} {
		var buf bytes.Buffer
		if err := Write(&buf, cs, opts); err != nil {
			t.Fatal(err)
		}
		name := string(opts.Format)
		if opts.Color {
			name += "+color"
		}
		outputs[name] = buf.String()
	}

	for name, out := range outputs {
		for _, f := range forbidden {
			if strings.Contains(out, f) {
				t.Errorf("%s leaks %q", name, f)
			}
		}
	}
	for _, name := range []string{"text", "markdown", "json"} {
		out := outputs[name]
		for _, want := range []string{"same", "changed", "removed", "added", "password", "apiKey", "note", "*** (before)", "*** (after)", "'***'", "last-applied-configuration"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s output lacks %q", name, want)
			}
		}
	}
}
