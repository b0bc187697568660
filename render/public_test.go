package render

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/common"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/testenv"
)

// moduleDir returns the folder of a Go module version, downloading it through
// the module proxy like any other module if it is not in the cache yet.
func moduleDir(t *testing.T, module string) string {
	t.Helper()
	out, err := exec.Command("go", "mod", "download", "-json", module).Output()
	if err != nil {
		t.Fatalf("go mod download %s: %v", module, err)
	}
	var info struct{ Dir, Error string }
	if err := json.Unmarshal(out, &info); err != nil || info.Dir == "" {
		t.Fatalf("go mod download %s: %s %v", module, info.Error, err)
	}
	return info.Dir
}

// TestPublicChartsEqualHelmTemplate renders the real charts Helm tests itself
// with (from the helm.sh/helm/v4 module, not this repository) and requires the
// non-hook objects `helm template` prints, in its order. Charts helm refuses
// must be refused too.
func TestPublicChartsEqualHelmTemplate(t *testing.T) {
	helm := testenv.Tool(t, "helm")
	root := filepath.Join(moduleDir(t, "helm.sh/helm/v4@v4.3.1"), "pkg/cmd/testdata/testcharts")
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	compared := 0
	for _, e := range entries {
		chartDir := filepath.Join(root, e.Name())
		if _, err := os.Stat(filepath.Join(chartDir, "Chart.yaml")); err != nil {
			continue
		}
		t.Run(e.Name(), func(t *testing.T) {
			cmd := exec.Command(helm, "template", "public", chartDir, "--include-crds", "--namespace", "public",
				// Helm's SDK pins its default capabilities in test binaries.
				"--kube-version", common.DefaultCapabilities.KubeVersion.Version)
			home := t.TempDir()
			cmd.Env = []string{"HOME=" + home, "HELM_CACHE_HOME=" + home, "HELM_CONFIG_HOME=" + home,
				"HELM_DATA_HOME=" + home, "HELM_PLUGINS=" + home, "KUBECONFIG=" + filepath.Join(home, "none")}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, helmErr := cmd.Output()
			res, err := Helm(context.Background(), chartDir, Options{Root: root, Namespace: "public",
				Helm: HelmOptions{ReleaseName: "public"}})
			if helmErr != nil {
				if err == nil {
					t.Fatalf("helm refuses the chart (%s) but Helm rendered it", strings.TrimSpace(stderr.String()))
				}
				return
			}
			if err != nil {
				t.Fatalf("helm template renders the chart but Helm fails: %v", err)
			}
			dec, err := decodeObjects("helm template", out)
			if err != nil {
				t.Fatal(err)
			}
			var want []*unstructured.Unstructured
			for _, obj := range dec.objects {
				if _, hook := obj.GetAnnotations()[helmHookAnnotation]; !hook {
					want = append(want, obj)
				}
			}
			assertSameObjects(t, res.Objects, want)
			compared++
		})
	}
	if compared < 15 {
		t.Errorf("only %d public charts compared; the helm module's testcharts changed?", compared)
	}
}

// TestPublicKustomizationsEqualKubectl builds real kustomizations from
// Kubernetes' own modules (pod-security-admission's webhook deployment, with
// a secretGenerator and replacements, and cli-runtime's test artifact) and
// requires what `kubectl kustomize` builds.
func TestPublicKustomizationsEqualKubectl(t *testing.T) {
	kubectl := testenv.Tool(t, "kubectl")
	psa := filepath.Join(moduleDir(t, "k8s.io/pod-security-admission@v0.37.2"), "webhook")
	// The webhook's secretGenerator reads certificates its Makefile makes;
	// give a copy of the tree stand-ins for them.
	webhook := filepath.Join(t.TempDir(), "webhook")
	copyTree(t, psa, webhook)
	for _, f := range []string{"ca.crt", "tls.crt", "tls.key"} {
		write(t, filepath.Join(webhook, "pki", f), "not a real "+f+"\n")
	}
	trees := []string{
		filepath.Join(psa, "manifests"),
		webhook,
		filepath.Join(moduleDir(t, "k8s.io/cli-runtime@v0.37.2"), "artifacts/kustomization"),
	}
	for _, dir := range trees {
		t.Run(filepath.Base(filepath.Dir(dir))+"/"+filepath.Base(dir), func(t *testing.T) {
			out, err := exec.Command(kubectl, "kustomize", dir).Output()
			if err != nil {
				t.Fatalf("kubectl kustomize %s: %v", dir, err)
			}
			want, err := decodeObjects("kubectl kustomize", out)
			if err != nil {
				t.Fatal(err)
			}
			res, err := Kustomize(context.Background(), dir, Options{Root: dir})
			if err != nil {
				t.Fatal(err)
			}
			if len(want.objects) == 0 {
				t.Fatal("kubectl built nothing; the tree changed?")
			}
			assertSameObjects(t, res.Objects, want.objects)
		})
	}
}

// assertSameObjects requires the same objects in the same order.
func assertSameObjects(t *testing.T, got, want []*unstructured.Unstructured) {
	t.Helper()
	if g, w := ids(got), ids(want); !reflect.DeepEqual(g, w) {
		t.Fatalf("objects differ:\n got  %v\n want %v", g, w)
	}
	for i := range want {
		if !reflect.DeepEqual(got[i].Object, want[i].Object) {
			t.Errorf("object %s differs:\n--- got\n%s--- want\n%s", ids(want[i : i+1])[0],
				toYAML(t, got[i:i+1]), toYAML(t, want[i:i+1]))
		}
	}
}
