package integration

import (
	"bytes"
	"context"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	"github.com/kubectl-gitops/kubectl-gitops/internal/cluster"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/testenv"
	"github.com/kubectl-gitops/kubectl-gitops/render"
)

// deployDir holds the bot's install manifests: deploy/base,
// deploy/namespaced and the chart.
const deployDir = "../deploy"

var deployChart = filepath.Join(deployDir, "chart", "gitops-bot")

// deployFieldManager applies the dry-runs, as a user's kubectl would apply
// under its own.
const deployFieldManager = "gitops-deploy-test"

// TestDeployDryRun has the real API server validate every object each way
// of installing the bot creates: a server-side apply with dryRun=All of
// deploy/base, deploy/namespaced and the chart (cluster and namespaced
// RBAC), each in a fresh namespace, so a field the API server does not know
// or a value it refuses fails here rather than in a user's install.
func TestDeployDryRun(t *testing.T) {
	env.Require(t)
	client := deployClient(t)
	for _, tc := range []struct {
		name   string
		render func(t *testing.T, ns string) []*unstructured.Unstructured
	}{
		{"deploy/base", func(t *testing.T, ns string) []*unstructured.Unstructured {
			return inNamespace(renderDeploy(t, "base"), ns)
		}},
		{"deploy/namespaced", func(t *testing.T, ns string) []*unstructured.Unstructured {
			return inNamespace(renderDeploy(t, "namespaced"), ns)
		}},
		{"chart", func(t *testing.T, ns string) []*unstructured.Unstructured {
			return renderChartIn(t, ns, nil)
		}},
		{"chart namespaced", func(t *testing.T, ns string) []*unstructured.Unstructured {
			return renderChartIn(t, ns, map[string]any{"rbac": map[string]any{"scope": "namespaced", "namespaces": []any{ns}}})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := env.Namespace(t)
			objs := tc.render(t, ns)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			for _, r := range client.DryRun(ctx, objs) {
				if r.Err != nil {
					t.Errorf("%s %s/%s: the API server refuses it: %v", r.Object.GetKind(), r.Object.GetNamespace(), r.Object.GetName(), r.Err)
				}
			}
		})
	}
}

// TestDeployDryRunServiceMonitor checks the chart's ServiceMonitor on a
// cluster without the Prometheus Operator: it, and only it, fails as a kind
// the API server does not serve.
func TestDeployDryRunServiceMonitor(t *testing.T) {
	ns := env.Namespace(t)
	objs := renderChartIn(t, ns, map[string]any{"serviceMonitor": map[string]any{"enabled": true}})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var failed []string
	for _, r := range deployClient(t).DryRun(ctx, objs) {
		switch {
		case r.Err == nil:
		case cluster.IsNoKind(r.Err):
			failed = append(failed, r.Object.GetKind())
		default:
			t.Errorf("%s %s: %v", r.Object.GetKind(), r.Object.GetName(), r.Err)
		}
	}
	if diff := cmp.Diff([]string{"ServiceMonitor"}, failed); diff != "" {
		t.Errorf("objects whose kind the cluster does not serve (-want +got):\n%s", diff)
	}
}

// TestDeployHelm runs the real helm on the chart: helm lint (and --strict)
// passes, helm template prints the very objects our render produces, and
// helm refuses the values the chart refuses, with the same message.
func TestDeployHelm(t *testing.T) {
	h := newHelm(t)
	for _, args := range [][]string{
		{"lint", deployChart},
		{"lint", "--strict", deployChart},
		{"lint", "--strict", "--set", "rbac.scope=namespaced", "--set", "rbac.namespaces={shop,web}", deployChart},
		{"lint", "--strict", "--set", "serviceMonitor.enabled=true", "--set", "networkPolicy.enabled=false", deployChart},
	} {
		if out, errOut, err := h.run(args...); err != nil {
			t.Errorf("helm %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
		}
	}

	for _, tc := range []struct {
		name   string
		set    []string
		values map[string]any
	}{
		{"defaults", nil, nil},
		{"namespaced", []string{"rbac.scope=namespaced", "rbac.namespaces={shop,web}"},
			map[string]any{"rbac": map[string]any{"scope": "namespaced", "namespaces": []any{"shop", "web"}}}},
		{"toggles", []string{"serviceMonitor.enabled=true", "networkPolicy.enabled=false", "podDisruptionBudget.enabled=false", "rbac.sync=false"},
			map[string]any{
				"serviceMonitor":      map[string]any{"enabled": true},
				"networkPolicy":       map[string]any{"enabled": false},
				"podDisruptionBudget": map[string]any{"enabled": false},
				"rbac":                map[string]any{"sync": false},
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"template", "gitops-bot", deployChart, "--namespace", "gitops-bot"}
			for _, s := range tc.set {
				args = append(args, "--set", s)
			}
			out, errOut, err := h.run(args...)
			if err != nil {
				t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, errOut)
			}
			helmObjs := decodeManifests(t, out)
			ours := renderChartIn(t, "gitops-bot", tc.values)
			if diff := cmp.Diff(slices.Sorted(maps.Keys(helmObjs)), slices.Sorted(maps.Keys(byKey(ours)))); diff != "" {
				t.Fatalf("objects (-helm template +render.Helm):\n%s", diff)
			}
			for key, obj := range byKey(ours) {
				if diff := cmp.Diff(helmObjs[key].Object, obj.Object); diff != "" {
					t.Errorf("%s (-helm template +render.Helm):\n%s", key, diff)
				}
			}
		})
	}

	for _, tc := range []struct {
		name string
		set  []string
		want string
	}{
		{"unknown rbac.scope", []string{"rbac.scope=bogus"}, `rbac.scope is "bogus": set it to cluster`},
		{"namespaced without namespaces", []string{"rbac.scope=namespaced"}, "set rbac.namespaces to the namespaces the bot manages"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"template", "gitops-bot", deployChart}
			for _, s := range tc.set {
				args = append(args, "--set", s)
			}
			_, errOut, err := h.run(args...)
			if err == nil {
				t.Fatalf("helm %s succeeded", strings.Join(args, " "))
			}
			if !strings.Contains(errOut, tc.want) {
				t.Errorf("helm %s: %q does not say %q", strings.Join(args, " "), errOut, tc.want)
			}
		})
	}
}

// helmCLI runs the helm built by hack/test-assets.sh with its own empty
// configuration, cache and data folders, and no cluster.
type helmCLI struct {
	bin string
	env []string
}

func newHelm(t *testing.T) *helmCLI {
	t.Helper()
	home := t.TempDir()
	return &helmCLI{
		bin: testenv.Tool(t, "helm"),
		env: append(os.Environ(),
			"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
			"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
			"HELM_DATA_HOME="+filepath.Join(home, "data"),
			"KUBECONFIG=/dev/null"),
	}
}

func (h *helmCLI) run(args ...string) (string, string, error) {
	cmd := exec.Command(h.bin, args...)
	cmd.Env = h.env
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}

// decodeManifests reads helm's output as render reads plain YAML.
func decodeManifests(t *testing.T, manifests string) map[string]*unstructured.Unstructured {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "manifests.yaml")
	if err := os.WriteFile(path, []byte(manifests), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := render.Plain(context.Background(), path, render.Options{Root: dir})
	if err != nil {
		t.Fatalf("helm's output: %v", err)
	}
	return byKey(res.Objects)
}

func byKey(objs []*unstructured.Unstructured) map[string]*unstructured.Unstructured {
	out := map[string]*unstructured.Unstructured{}
	for _, obj := range objs {
		out[obj.GetKind()+"/"+obj.GetNamespace()+"/"+obj.GetName()] = obj
	}
	return out
}

// deployClient is the client kubectl-gitops dry-runs with, on the test
// control plane.
func deployClient(t *testing.T) *cluster.Client {
	t.Helper()
	env.Require(t)
	flags := genericclioptions.NewConfigFlags(true)
	kubeconfig, cacheDir := env.Kubeconfig, t.TempDir()
	flags.KubeConfig, flags.CacheDir = &kubeconfig, &cacheDir
	c, err := cluster.New(flags, cluster.Options{FieldManager: deployFieldManager})
	if err != nil {
		t.Fatalf("cluster.New: %v", err)
	}
	return c
}

// renderDeploy renders a kustomization of deploy/.
func renderDeploy(t *testing.T, name string) []*unstructured.Unstructured {
	t.Helper()
	res, err := render.Kustomize(context.Background(), filepath.Join(deployDir, name), render.Options{Root: deployDir})
	if err != nil {
		t.Fatalf("deploy/%s does not render: %v", name, err)
	}
	return res.Objects
}

// renderChartIn renders the chart as the release gitops-bot in ns, with
// values over its defaults.
func renderChartIn(t *testing.T, ns string, values map[string]any) []*unstructured.Unstructured {
	t.Helper()
	res, err := render.Helm(context.Background(), deployChart, render.Options{
		Root:      deployChart,
		Namespace: ns,
		Helm:      render.HelmOptions{ReleaseName: "gitops-bot", Values: values},
	})
	if err != nil {
		t.Fatalf("the chart does not render with %v: %v", values, err)
	}
	return res.Objects
}

// inNamespace moves every namespaced object into ns: the test's namespace
// stands for the bot's and for the namespaces it manages.
func inNamespace(objs []*unstructured.Unstructured, ns string) []*unstructured.Unstructured {
	for _, obj := range objs {
		if obj.GetNamespace() != "" {
			obj.SetNamespace(ns)
		}
	}
	return objs
}
