package render

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/golden"
)

// update rewrites the golden files: go test ./render -run X -update

// writeTree writes files (path → content) under a new temporary root and
// returns the root. Content "->target" makes a symlink to target instead.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		path := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := strings.CutPrefix(content, "->"); ok {
			if err := os.Symlink(target, path); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// toYAML renders objects as one multi-document YAML stream.
func toYAML(t *testing.T, objs []*unstructured.Unstructured) []byte {
	t.Helper()
	data, err := objectsYAML(objs)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func objectsYAML(objs []*unstructured.Unstructured) ([]byte, error) {
	var buf bytes.Buffer
	for i, obj := range objs {
		if i > 0 {
			buf.WriteString("---\n")
		}
		data, err := yaml.Marshal(obj.Object)
		if err != nil {
			return nil, err
		}
		buf.Write(data)
	}
	return buf.Bytes(), nil
}

// assertGolden compares got with the golden file, or rewrites it with -update.
func assertGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	golden.Assert(t, path, got)
}

// ids lists "kind/namespace/name" of objects, in order.
func ids(objs []*unstructured.Unstructured) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.GetKind()+"/"+o.GetNamespace()+"/"+o.GetName())
	}
	return out
}

func TestPathDispatch(t *testing.T) {
	const crd = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: clusterwidgets.example.com
spec:
  group: example.com
  scope: Cluster
  names: {kind: ClusterWidget, plural: clusterwidgets}
  versions: [{name: v1, served: true, storage: true}]
`
	const objects = `apiVersion: v1
kind: ConfigMap
metadata: {name: cm}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: elsewhere, namespace: other}
---
apiVersion: v1
kind: Namespace
metadata: {name: team}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: reader}
---
apiVersion: example.com/v1
kind: ClusterWidget
metadata: {name: cw}
---
apiVersion: example.com/v1
kind: Gadget
metadata: {name: unknown-kind}
`
	tests := []struct {
		name  string
		files map[string]string
		path  string
		want  []string
	}{
		{
			name:  "plain folder",
			files: map[string]string{"app/crd.yaml": crd, "app/objects.yaml": objects},
			path:  "app",
			want: []string{
				"CustomResourceDefinition//clusterwidgets.example.com",
				"ConfigMap/team/cm",
				"ConfigMap/other/elsewhere",
				"Namespace//team",
				"ClusterRole//reader",
				"ClusterWidget//cw",
				"Gadget/team/unknown-kind",
			},
		},
		{
			name:  "plain file",
			files: map[string]string{"objects.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n"},
			path:  "objects.yaml",
			want:  []string{"ConfigMap/team/cm"},
		},
		{
			name: "kustomize folder",
			files: map[string]string{
				"app/kustomization.yaml": "resources: [crd.yaml, objects.yaml]\n",
				"app/crd.yaml":           crd,
				"app/objects.yaml":       objects,
			},
			path: "app",
			// kustomize's legacy order puts Namespaces, CRDs and
			// ClusterRoles first, and sorts within a kind by
			// namespace and name (before the defaulting).
			want: []string{
				"Namespace//team",
				"CustomResourceDefinition//clusterwidgets.example.com",
				"ClusterRole//reader",
				"ConfigMap/other/elsewhere",
				"ConfigMap/team/cm",
				"ClusterWidget//cw",
				"Gadget/team/unknown-kind",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := writeTree(t, tt.files)
			res, err := Path(context.Background(), filepath.Join(root, tt.path), Options{Root: root, Namespace: "team"})
			if err != nil {
				t.Fatal(err)
			}
			got := ids(res.Objects)
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("objects:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

func TestPathDefaultsRootToPath(t *testing.T) {
	root := writeTree(t, map[string]string{
		"app/cm.yaml":     "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n",
		"app/link.yaml":   "->../outside.yaml",
		"outside.yaml":    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: outside}\n",
		"other/ok.yaml":   "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n",
		"other/unrelated": "x",
	})
	// Without Root, the rendered folder is the root: a link to its parent
	// is refused.
	_, err := Path(context.Background(), filepath.Join(root, "app"), Options{})
	if err == nil || !strings.Contains(err.Error(), "link.yaml") {
		t.Fatalf("want a refusal naming link.yaml, got %v", err)
	}
}
