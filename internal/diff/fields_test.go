package diff

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

const fieldsDeployment = `
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels: {app: web}
  annotations: {example.com/x: "1"}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        args: [--port=80]
        env:
        - {name: LOG, value: info}
        ports: [{containerPort: 80}]
      tolerations:
      - {key: gpu, effect: NoSchedule}
`

// edit returns a copy of the manifest's object changed by f.
func edit(t *testing.T, manifest string, f func(m map[string]any)) *unstructured.Unstructured {
	t.Helper()
	u := obj(t, manifest)
	f(u.Object)
	return u
}

// at walks fields and list indexes of m.
func at(v any, path ...any) any {
	for _, p := range path {
		switch p := p.(type) {
		case string:
			v = v.(map[string]any)[p]
		case int:
			v = v.([]any)[p]
		}
	}
	return v
}

func container(m map[string]any) map[string]any {
	return at(m, "spec", "template", "spec", "containers", 0).(map[string]any)
}

func TestChangedFields(t *testing.T) {
	d := func(t *testing.T) *unstructured.Unstructured { return obj(t, fieldsDeployment) }
	change := func(f func(m map[string]any)) func(t *testing.T) *unstructured.Unstructured {
		return func(t *testing.T) *unstructured.Unstructured { return edit(t, fieldsDeployment, f) }
	}
	none := func(*testing.T) *unstructured.Unstructured { return nil }
	yamlObj := func(manifest string) func(t *testing.T) *unstructured.Unstructured {
		return func(t *testing.T) *unstructured.Unstructured { return obj(t, manifest) }
	}
	cm := func(data string) func(t *testing.T) *unstructured.Unstructured {
		return func(t *testing.T) *unstructured.Unstructured {
			return obj(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: a}\ndata: "+data+"\n")
		}
	}
	tests := []struct {
		name          string
		before, after func(t *testing.T) *unstructured.Unstructured
		want          []string
	}{
		{name: "both nil", before: none, after: none},
		{name: "identical", before: d, after: d},
		{
			name:   "created: every leaf",
			before: none,
			after:  cm("{key: v, other: w}"),
			want:   []string{"apiVersion", "data.key", "data.other", "kind", "metadata.name", "metadata.namespace"},
		},
		{
			name:   "deleted: every leaf",
			before: cm("{key: v}"),
			after:  none,
			want:   []string{"apiVersion", "data.key", "kind", "metadata.name", "metadata.namespace"},
		},
		{
			name:   "created with lists",
			before: none,
			after:  d,
			want: []string{
				"apiVersion", "kind",
				"metadata.annotations[example.com/x]", "metadata.labels.app", "metadata.name", "metadata.namespace",
				"spec.replicas", "spec.selector.matchLabels.app", "spec.template.metadata.labels.app",
				// A list without a merge key is one leaf.
				"spec.template.spec.containers[name=web].args",
				"spec.template.spec.containers[name=web].env[name=LOG].name",
				"spec.template.spec.containers[name=web].env[name=LOG].value",
				"spec.template.spec.containers[name=web].image",
				"spec.template.spec.containers[name=web].name",
				"spec.template.spec.containers[name=web].ports",
				"spec.template.spec.tolerations[key=gpu].effect",
				"spec.template.spec.tolerations[key=gpu].key",
			},
		},
		{
			name:   "scalar",
			before: d,
			after:  change(func(m map[string]any) { at(m, "spec").(map[string]any)["replicas"] = int64(3) }),
			want:   []string{"spec.replicas"},
		},
		{
			name:   "integer and float of the same number are equal",
			before: change(func(m map[string]any) { at(m, "spec").(map[string]any)["replicas"] = int64(3) }),
			after:  change(func(m map[string]any) { at(m, "spec").(map[string]any)["replicas"] = float64(3) }),
		},
		{
			name:   "container matched by name",
			before: d,
			after:  change(func(m map[string]any) { container(m)["image"] = "nginx:1.28" }),
			want:   []string{"spec.template.spec.containers[name=web].image"},
		},
		{
			name:   "nested list matched by name",
			before: d,
			after: change(func(m map[string]any) {
				at(container(m), "env", 0).(map[string]any)["value"] = "debug"
			}),
			want: []string{"spec.template.spec.containers[name=web].env[name=LOG].value"},
		},
		{
			name:   "item added to a named list",
			before: d,
			after: change(func(m map[string]any) {
				c := at(m, "spec", "template", "spec").(map[string]any)
				c["containers"] = append(c["containers"].([]any), map[string]any{"name": "sidecar", "image": "envoy"})
			}),
			want: []string{
				"spec.template.spec.containers[name=sidecar].image",
				"spec.template.spec.containers[name=sidecar].name",
			},
		},
		{
			name:   "list matched by key",
			before: d,
			after: change(func(m map[string]any) {
				at(m, "spec", "template", "spec", "tolerations", 0).(map[string]any)["effect"] = "NoExecute"
			}),
			want: []string{"spec.template.spec.tolerations[key=gpu].effect"},
		},
		{
			name:   "list without merge key, same length: by position",
			before: d,
			after:  change(func(m map[string]any) { container(m)["args"] = []any{"--port=8080"} }),
			want:   []string{"spec.template.spec.containers[name=web].args[0]"},
		},
		{
			name:   "list without merge key, another length: whole",
			before: d,
			after:  change(func(m map[string]any) { container(m)["args"] = []any{"--port=80", "-v"} }),
			want:   []string{"spec.template.spec.containers[name=web].args"},
		},
		{
			name:   "list of maps by position",
			before: d,
			after:  change(func(m map[string]any) { at(container(m), "ports", 0).(map[string]any)["containerPort"] = int64(8080) }),
			want:   []string{"spec.template.spec.containers[name=web].ports[0].containerPort"},
		},
		{
			name:   "duplicate names: by position",
			before: yamlObj("kind: X\nitems: [{name: a, v: 1}, {name: a, v: 2}]\n"),
			after:  yamlObj("kind: X\nitems: [{name: a, v: 1}, {name: a, v: 3}]\n"),
			want:   []string{"items[1].v"},
		},
		{
			name:   "keys with dots",
			before: d,
			after: change(func(m map[string]any) {
				at(m, "metadata", "annotations").(map[string]any)["example.com/x"] = "2"
				at(m, "metadata", "labels").(map[string]any)["app.kubernetes.io/name"] = "web"
				at(m, "metadata", "labels").(map[string]any)["team/owner"] = "a"
			}),
			want: []string{"metadata.annotations[example.com/x]", "metadata.labels.team/owner", "metadata.labels[app.kubernetes.io/name]"},
		},
		{
			name:   "brackets and backslashes in keys and names are escaped",
			before: yamlObj("kind: X\ndata: {}\nitems: [{name: 'a]b', v: 1}]\n"),
			after:  yamlObj("kind: X\ndata: {'x]\\y': 1, '': 2}\nitems: [{name: 'a]b', v: 2}]\n"),
			want:   []string{`data[]`, `data[x\]\\y]`, `items[name=a\]b].v`},
		},
		{
			name:   "type change",
			before: cm("{key: v}"),
			after:  cm("[v]"),
			want:   []string{"data"},
		},
		{
			name:   "empty map appears",
			before: yamlObj("kind: X\nspec: {a: 1}\n"),
			after:  yamlObj("kind: X\nspec: {a: 1, b: {}, c: []}\n"),
			want:   []string{"spec.b", "spec.c"},
		},
		{
			name:   "null and absent differ",
			before: yamlObj("kind: X\nspec: {a: 1}\n"),
			after:  yamlObj("kind: X\nspec: {a: 1, b: null}\n"),
			want:   []string{"spec.b"},
		},
		{
			name:   "the server's fields and status are left out",
			before: d,
			after: change(func(m map[string]any) {
				md := m["metadata"].(map[string]any)
				md["resourceVersion"] = "7"
				md["generation"] = int64(2)
				md["uid"] = "u"
				md["creationTimestamp"] = "2025-01-01T00:00:00Z"
				md["managedFields"] = []any{map[string]any{"manager": "kubectl"}}
				m["status"] = map[string]any{"replicas": int64(1)}
			}),
		},
		{
			name:   "fields of the same name deeper down are kept",
			before: d,
			after: change(func(m map[string]any) {
				at(m, "spec").(map[string]any)["status"] = "x"
				at(m, "spec", "template", "metadata").(map[string]any)["generation"] = int64(1)
			}),
			want: []string{"spec.status", "spec.template.metadata.generation"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ChangedFields(tt.before(t), tt.after(t))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ChangedFields (-want +got):\n%s", diff)
			}
		})
	}
}

func TestChangedFieldsReordered(t *testing.T) {
	before := obj(t, "kind: X\nspec: {containers: [{name: a, image: x}, {name: b, image: y}]}\n")
	after := obj(t, "kind: X\nspec: {containers: [{name: b, image: y}, {name: a, image: x}]}\n")
	if diff := cmp.Diff([]string{"spec.containers"}, ChangedFields(before, after)); diff != "" {
		t.Errorf("ChangedFields (-want +got):\n%s", diff)
	}
}

// TestChangedFieldsSecret checks that the fields of a masked Secret name
// the keys that changed and nothing of their values.
func TestChangedFieldsSecret(t *testing.T) {
	secret := func(password string) *unstructured.Unstructured {
		return obj(t, "apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: a}\nstringData: {user: admin, password: "+password+"}\n")
	}
	c, err := Pair(secret("hunter2"), secret("correct-horse"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := ChangedFields(c.Before, c.After)
	if diff := cmp.Diff([]string{"stringData.password"}, got); diff != "" {
		t.Errorf("ChangedFields (-want +got):\n%s", diff)
	}
	for _, p := range got {
		if strings.Contains(p, "hunter2") || strings.Contains(p, "correct-horse") {
			t.Errorf("a path shows a value: %q", p)
		}
	}
}
