package bot

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kubectl-gitops/kubectl-gitops/render"
)

// deployDir is the folder of the bot's install manifests.
var deployDir = filepath.Join("..", "deploy")

// deployChartDir is the bot's Helm chart.
var deployChartDir = filepath.Join(deployDir, "chart", "gitops-bot")

// renderKustomize renders a kustomization under deploy/, which may use
// deploy/base.
func renderDeployKustomize(t *testing.T, name string) []*unstructured.Unstructured {
	t.Helper()
	res, err := render.Kustomize(context.Background(), filepath.Join(deployDir, name), render.Options{Root: deployDir})
	if err != nil {
		t.Fatalf("deploy/%s does not render: %v", name, err)
	}
	return res.Objects
}

// renderChart renders the chart as `helm install gitops-bot -n gitops-bot`
// would, with values over its defaults.
func renderDeployChart(values map[string]any) ([]*unstructured.Unstructured, error) {
	res, err := render.Helm(context.Background(), deployChartDir, render.Options{
		Root:      deployChartDir,
		Namespace: "gitops-bot",
		Helm:      render.HelmOptions{ReleaseName: "gitops-bot", Values: values},
	})
	if err != nil {
		return nil, err
	}
	return res.Objects, nil
}

func mustRenderDeployChart(t *testing.T, values map[string]any) []*unstructured.Unstructured {
	t.Helper()
	objs, err := renderDeployChart(values)
	if err != nil {
		t.Fatalf("the chart does not render with %v: %v", values, err)
	}
	return objs
}

// deployVariants are the ways deploy/ installs the bot.
func deployVariants(t *testing.T) map[string][]*unstructured.Unstructured {
	t.Helper()
	return map[string][]*unstructured.Unstructured{
		"deploy/base":       renderDeployKustomize(t, "base"),
		"deploy/namespaced": renderDeployKustomize(t, "namespaced"),
		"chart":             mustRenderDeployChart(t, nil),
		"chart namespaced": mustRenderDeployChart(t, map[string]any{
			"rbac": map[string]any{"scope": "namespaced", "namespaces": []any{"shop", "web"}},
		}),
		"chart with everything": mustRenderDeployChart(t, map[string]any{
			"serviceMonitor": map[string]any{"enabled": true},
			"nodeSelector":   map[string]any{"kubernetes.io/os": "linux"},
			"tolerations":    []any{map[string]any{"key": "gitops", "operator": "Exists"}},
		}),
	}
}

// TestDeployVariants checks what every install must hold: a Deployment that
// meets the security invariants, a config the bot accepts whose secrets
// come from the Deployment's environment and volumes, and RBAC for the
// Deployment's service account, with its state Role where the config keeps
// the state.
func TestDeployVariants(t *testing.T) {
	for name, objs := range deployVariants(t) {
		t.Run(name, func(t *testing.T) {
			deployments := deployOfKind[appsv1.Deployment](t, objs, "Deployment")
			if len(deployments) != 1 {
				t.Fatalf("%d Deployments, want 1", len(deployments))
			}
			dep := deployments[0]
			checkDeployPodSecurity(t, dep.Name, dep.Spec.Template.Spec)
			if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 2 {
				t.Errorf("Deployment %s: replicas %v, want 2 (the state's Leases share the work)", dep.Name, dep.Spec.Replicas)
			}

			cfg := deployedConfig(t, objs, dep)
			if cfg.State == nil || cfg.State.Namespace != dep.Namespace {
				t.Errorf("config state %+v: want the bot's own namespace %s", cfg.State, dep.Namespace)
			}
			if gh := cfg.GitHub; gh != nil && !underMount(dep.Spec.Template.Spec, "credentials", gh.PrivateKeyFile) {
				t.Errorf("github.privateKeyFile %s is not in the credentials volume's mount", gh.PrivateKeyFile)
			}

			sa := dep.Spec.Template.Spec.ServiceAccountName
			accounts := deployOfKind[corev1.ServiceAccount](t, objs, "ServiceAccount")
			if len(accounts) != 1 || accounts[0].Name != sa || accounts[0].Namespace != dep.Namespace {
				t.Fatalf("ServiceAccounts %v, want only %s/%s, the Deployment's", deployNames(accounts), dep.Namespace, sa)
			}
			if a := accounts[0].AutomountServiceAccountToken; a == nil || *a {
				t.Errorf("ServiceAccount %s mounts its token into every pod: set automountServiceAccountToken false (the Deployment mounts it)", sa)
			}
			want := rbacv1.Subject{Kind: "ServiceAccount", Name: sa, Namespace: dep.Namespace}
			bindings := deployOfKind[rbacv1.RoleBinding](t, objs, "RoleBinding")
			for _, b := range append(bindings, clusterBindingsAsRoleBindings(deployOfKind[rbacv1.ClusterRoleBinding](t, objs, "ClusterRoleBinding"))...) {
				if diff := cmp.Diff([]rbacv1.Subject{want}, b.Subjects); diff != "" {
					t.Errorf("%s/%s binds someone else than the bot (-want +got):\n%s", b.Namespace, b.Name, diff)
				}
			}
			state := slices.IndexFunc(bindings, func(b rbacv1.RoleBinding) bool {
				return b.Namespace == cfg.State.Namespace && strings.HasSuffix(b.Name, "-state")
			})
			if state < 0 {
				t.Errorf("no state RoleBinding in %s, where the config keeps the bot's Leases", cfg.State.Namespace)
			}
		})
	}
}

// deployedConfig is the config the install gives the bot: its ConfigMap's
// config.yaml, parsed with only the environment the Deployment sets, so a
// reference to a variable nobody sets fails here rather than in the pod.
func deployedConfig(t *testing.T, objs []*unstructured.Unstructured, dep appsv1.Deployment) *Config {
	t.Helper()
	spec := dep.Spec.Template.Spec
	vol := slices.IndexFunc(spec.Volumes, func(v corev1.Volume) bool { return v.ConfigMap != nil })
	if vol < 0 {
		t.Fatalf("Deployment %s mounts no ConfigMap", dep.Name)
	}
	cmName := spec.Volumes[vol].ConfigMap.Name
	maps := deployOfKind[corev1.ConfigMap](t, objs, "ConfigMap")
	i := slices.IndexFunc(maps, func(cm corev1.ConfigMap) bool { return cm.Name == cmName && cm.Namespace == dep.Namespace })
	if i < 0 {
		t.Fatalf("the Deployment's ConfigMap %s/%s is not in the output (%v)", dep.Namespace, cmName, deployNames(maps))
	}
	env := map[string]string{}
	for _, e := range spec.Containers[0].Env {
		env[e.Name] = "from-" + e.Name
	}
	cfg, err := ParseConfig([]byte(maps[i].Data["config.yaml"]), func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	})
	if err != nil {
		t.Fatalf("the deployed config.yaml: %v", err)
	}
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("the deployed config.yaml: %v", err)
	}
	return cfg
}

// underMount reports whether path lies under the mount of volume in every
// container of spec.
func underMount(spec corev1.PodSpec, volume, path string) bool {
	for _, c := range spec.Containers {
		i := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
			return m.Name == volume && strings.HasPrefix(path, strings.TrimSuffix(m.MountPath, "/")+"/")
		})
		if i < 0 {
			return false
		}
	}
	return true
}

// checkPodSecurity checks the security invariants of the bot's pods: non-root,
// read-only root filesystem, no capabilities, no privilege escalation, the
// runtime's seccomp profile, and resources set.
func checkDeployPodSecurity(t *testing.T, name string, spec corev1.PodSpec) {
	t.Helper()
	pod := spec.SecurityContext
	if pod == nil || pod.RunAsNonRoot == nil || !*pod.RunAsNonRoot {
		t.Errorf("%s: pod securityContext.runAsNonRoot is not true", name)
	}
	if pod == nil || pod.SeccompProfile == nil || pod.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: pod securityContext.seccompProfile is not RuntimeDefault", name)
	}
	if a := spec.AutomountServiceAccountToken; a == nil || !*a {
		t.Errorf("%s: the pod does not mount its service account token, which the bot talks to the API server with", name)
	}
	for _, c := range append(spec.InitContainers, spec.Containers...) {
		sc := c.SecurityContext
		if sc == nil {
			t.Errorf("%s: container %s has no securityContext", name, c.Name)
			continue
		}
		for field, ok := range map[string]bool{
			"runAsNonRoot":             sc.RunAsNonRoot != nil && *sc.RunAsNonRoot,
			"readOnlyRootFilesystem":   sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem,
			"allowPrivilegeEscalation": sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation,
			"capabilities.drop ALL":    sc.Capabilities != nil && slices.Contains(sc.Capabilities.Drop, "ALL") && len(sc.Capabilities.Add) == 0,
			"seccompProfile":           sc.SeccompProfile != nil && sc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault,
			"privileged":               sc.Privileged == nil || !*sc.Privileged,
		} {
			if !ok {
				t.Errorf("%s: container %s: securityContext.%s is not as it must be", name, c.Name, field)
			}
		}
		for _, r := range []struct {
			list corev1.ResourceList
			name corev1.ResourceName
			what string
		}{
			{c.Resources.Requests, corev1.ResourceCPU, "requests.cpu"},
			{c.Resources.Requests, corev1.ResourceMemory, "requests.memory"},
			{c.Resources.Limits, corev1.ResourceMemory, "limits.memory"},
		} {
			if q, ok := r.list[r.name]; !ok || q.IsZero() {
				t.Errorf("%s: container %s sets no resources.%s", name, c.Name, r.what)
			}
		}
		if c.ReadinessProbe == nil || c.LivenessProbe == nil {
			t.Errorf("%s: container %s lacks a readiness or liveness probe", name, c.Name)
		}
	}
}

// TestDeployChartMatchesBase keeps the chart and deploy/base one install:
// with its defaults the chart renders the same objects, field for field,
// apart from Helm's labels and selectors, the config's comments and key
// order, kustomize's hash suffix on the config's name, and the Namespace
// (helm install -n … --create-namespace makes it).
func TestDeployChartMatchesBase(t *testing.T) {
	base := map[string]*unstructured.Unstructured{}
	for _, obj := range renderDeployKustomize(t, "base") {
		if obj.GetKind() != "Namespace" {
			normalizeDeployObject(t, obj)
			base[deployObjectKey(obj)] = obj
		}
	}
	chart := map[string]*unstructured.Unstructured{}
	for _, obj := range mustRenderDeployChart(t, nil) {
		normalizeDeployObject(t, obj)
		chart[deployObjectKey(obj)] = obj
	}
	if diff := cmp.Diff(slices.Sorted(maps.Keys(base)), slices.Sorted(maps.Keys(chart))); diff != "" {
		t.Fatalf("the chart's objects differ from deploy/base's (-base +chart):\n%s", diff)
	}
	for _, key := range slices.Sorted(maps.Keys(base)) {
		t.Run(key, func(t *testing.T) {
			if diff := cmp.Diff(base[key].Object, chart[key].Object); diff != "" {
				t.Errorf("the chart's %s differs from deploy/base's (-base +chart):\n%s", key, diff)
			}
		})
	}
}

// kustomizeHashSuffix is the content hash kustomize appends to a generated name.
var kustomizeHashSuffix = regexp.MustCompile(`-[a-z0-9]{10}$`)

// normalizeDeployObject removes from obj what the chart and deploy/base may differ in:
// labels and annotations (Helm's standard labels, the config checksum), the
// selectors built from them, kustomize's hash suffix on the config's name,
// and the config's layout (it compares as YAML data).
func normalizeDeployObject(t *testing.T, obj *unstructured.Unstructured) {
	t.Helper()
	unstructured.RemoveNestedField(obj.Object, "metadata", "labels")
	unstructured.RemoveNestedField(obj.Object, "metadata", "annotations")
	switch obj.GetKind() {
	case "Deployment":
		unstructured.RemoveNestedField(obj.Object, "spec", "selector")
		unstructured.RemoveNestedField(obj.Object, "spec", "template", "metadata")
		volumes, _, _ := unstructured.NestedSlice(obj.Object, "spec", "template", "spec", "volumes")
		for _, v := range volumes {
			if cm, ok := v.(map[string]any)["configMap"].(map[string]any); ok {
				cm["name"] = kustomizeHashSuffix.ReplaceAllString(cm["name"].(string), "")
			}
		}
		if err := unstructured.SetNestedSlice(obj.Object, volumes, "spec", "template", "spec", "volumes"); err != nil {
			t.Fatal(err)
		}
	case "Service":
		unstructured.RemoveNestedField(obj.Object, "spec", "selector")
	case "NetworkPolicy":
		unstructured.RemoveNestedField(obj.Object, "spec", "podSelector")
	case "PodDisruptionBudget":
		unstructured.RemoveNestedField(obj.Object, "spec", "selector")
	case "ConfigMap":
		obj.SetName(kustomizeHashSuffix.ReplaceAllString(obj.GetName(), ""))
		data, _, _ := unstructured.NestedString(obj.Object, "data", "config.yaml")
		var config any
		if err := yaml.Unmarshal([]byte(data), &config); err != nil {
			t.Fatalf("ConfigMap %s: config.yaml: %v", obj.GetName(), err)
		}
		unstructured.RemoveNestedField(obj.Object, "data")
		obj.Object["config"] = config
	}
}

// TestDeployNamespacedRBAC checks the namespaced variants: no cluster-wide
// RBAC, and in each managed namespace Roles with the rules deploy/base
// grants cluster-wide.
func TestDeployNamespacedRBAC(t *testing.T) {
	clusterRules := map[string][]rbacv1.PolicyRule{}
	for _, r := range deployOfKind[rbacv1.ClusterRole](t, renderDeployKustomize(t, "base"), "ClusterRole") {
		clusterRules[r.Name] = r.Rules
	}
	if len(clusterRules) != 2 {
		t.Fatalf("deploy/base has ClusterRoles %v, want gitops-bot-preview and gitops-bot-sync", clusterRules)
	}
	for _, tc := range []struct {
		name       string
		objs       []*unstructured.Unstructured
		namespaces []string
	}{
		{"deploy/namespaced", renderDeployKustomize(t, "namespaced"), []string{"apps"}},
		{"chart", mustRenderDeployChart(t, map[string]any{
			"rbac": map[string]any{"scope": "namespaced", "namespaces": []any{"shop", "web"}},
		}), []string{"shop", "web"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, obj := range tc.objs {
				if k := obj.GetKind(); k == "ClusterRole" || k == "ClusterRoleBinding" {
					t.Errorf("%s %s: a namespaced install creates no cluster-wide RBAC", k, obj.GetName())
				}
			}
			roles := map[string][]rbacv1.PolicyRule{}
			for _, r := range deployOfKind[rbacv1.Role](t, tc.objs, "Role") {
				roles[r.Namespace+"/"+r.Name] = r.Rules
			}
			for _, ns := range tc.namespaces {
				for name, rules := range clusterRules {
					if diff := cmp.Diff(rules, roles[ns+"/"+name]); diff != "" {
						t.Errorf("Role %s/%s differs from deploy/base's ClusterRole (-cluster +namespaced):\n%s", ns, name, diff)
					}
				}
			}
		})
	}
}

// TestDeployChartToggles checks the chart's optional objects.
func TestDeployChartToggles(t *testing.T) {
	for _, tc := range []struct {
		name    string
		values  map[string]any
		present []string
		absent  []string
	}{
		{"defaults", nil, []string{"NetworkPolicy/gitops-bot-egress", "PodDisruptionBudget/gitops-bot", "ClusterRole/gitops-bot-sync"}, []string{"ServiceMonitor/gitops-bot"}},
		{"serviceMonitor on", map[string]any{"serviceMonitor": map[string]any{"enabled": true}}, []string{"ServiceMonitor/gitops-bot"}, nil},
		{"networkPolicy off", map[string]any{"networkPolicy": map[string]any{"enabled": false}}, nil, []string{"NetworkPolicy/gitops-bot-egress"}},
		{"podDisruptionBudget off", map[string]any{"podDisruptionBudget": map[string]any{"enabled": false}}, nil, []string{"PodDisruptionBudget/gitops-bot"}},
		{"previews only", map[string]any{"rbac": map[string]any{"sync": false}}, []string{"ClusterRole/gitops-bot-preview"}, []string{"ClusterRole/gitops-bot-sync", "ClusterRoleBinding/gitops-bot-sync"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := mustRenderDeployChart(t, tc.values)
			have := map[string]*unstructured.Unstructured{}
			for _, obj := range objs {
				have[obj.GetKind()+"/"+obj.GetName()] = obj
			}
			for _, key := range tc.present {
				if have[key] == nil {
					t.Errorf("%s is missing", key)
				}
			}
			for _, key := range tc.absent {
				if have[key] != nil {
					t.Errorf("%s is rendered", key)
				}
			}
			if sm := have["ServiceMonitor/gitops-bot"]; sm != nil {
				endpoints, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
				want := []any{map[string]any{"port": "http", "path": "/metrics", "interval": "30s"}}
				if diff := cmp.Diff(want, endpoints); diff != "" {
					t.Errorf("ServiceMonitor endpoints: the bot serves /metrics on the Service's http port (-want +got):\n%s", diff)
				}
				selector, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
				service, _, _ := unstructured.NestedStringMap(have["Service/gitops-bot"].Object, "metadata", "labels")
				for k, v := range selector {
					if service[k] != v {
						t.Errorf("ServiceMonitor selects %s=%s, which the Service does not carry", k, v)
					}
				}
			}
		})
	}
}

// TestDeployChartPullSecrets: the state Role may read exactly the pull
// Secrets config.images.pullSecrets names (by default <fullname>-registry),
// and nothing else of the Secrets.
func TestDeployChartPullSecrets(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values map[string]any
		want   []string
	}{
		{"default", nil, []string{"gitops-bot-registry"}},
		{"named", map[string]any{"config": map[string]any{"images": map[string]any{"pullSecrets": []any{"regcred", "quay"}}}}, []string{"regcred", "quay"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got [][]string
			for _, r := range deployOfKind[rbacv1.Role](t, mustRenderDeployChart(t, tc.values), "Role") {
				for _, rule := range r.Rules {
					if slices.Contains(rule.Resources, "secrets") {
						if r.Name != "gitops-bot-state" || !slices.Equal(rule.Verbs, []string{"get"}) {
							t.Errorf("Role %s grants %v on secrets, want only gitops-bot-state get", r.Name, rule.Verbs)
						}
						got = append(got, rule.ResourceNames)
					}
				}
			}
			if diff := cmp.Diff([][]string{tc.want}, got); diff != "" {
				t.Errorf("secrets the state Role may read (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDeployChartRefusesBadValues checks that the chart stops on values it
// cannot install, saying what to set.
func TestDeployChartRefusesBadValues(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values map[string]any
		want   []string
	}{
		{"unknown rbac.scope", map[string]any{"rbac": map[string]any{"scope": "bogus"}},
			[]string{`rbac.scope is "bogus"`, "set it to cluster", "or namespaced"}},
		{"namespaced without namespaces", map[string]any{"rbac": map[string]any{"scope": "namespaced"}},
			[]string{"rbac.scope namespaced", "set rbac.namespaces"}},
		{"no egress ports", map[string]any{"networkPolicy": map[string]any{"egressPorts": []any{}}},
			[]string{"networkPolicy.egressPorts is empty", "networkPolicy.enabled false"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := renderDeployChart(tc.values)
			if err == nil {
				t.Fatalf("the chart renders with %v", tc.values)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// githubAppManifest is the part of a GitHub App manifest the bot's install
// depends on.
type githubAppManifest struct {
	Name           string `yaml:"name"`
	URL            string `yaml:"url"`
	Description    string `yaml:"description"`
	HookAttributes struct {
		URL    string `yaml:"url"`
		Active bool   `yaml:"active"`
	} `yaml:"hook_attributes"`
	RedirectURL        string            `yaml:"redirect_url"`
	Public             bool              `yaml:"public"`
	DefaultPermissions map[string]string `yaml:"default_permissions"`
	DefaultEvents      []string          `yaml:"default_events"`
}

// TestDeployGitHubAppManifest pins the GitHub App's permissions to the least
// the bot's API calls need (internal/scm/github), and its events to those
// the bot handles: a permission added or widened here must be one the bot
// uses.
func TestDeployGitHubAppManifest(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(deployDir, "github-app.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var m githubAppManifest
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("deploy/github-app.yaml: %v", err)
	}
	if m.Name == "" || m.URL == "" || m.RedirectURL == "" || !m.HookAttributes.Active {
		t.Errorf("the manifest needs name, url, redirect_url and an active hook: %+v", m)
	}
	if !strings.HasSuffix(m.HookAttributes.URL, "/webhooks/github") {
		t.Errorf("hook_attributes.url %q: the bot takes GitHub deliveries at /webhooks/github", m.HookAttributes.URL)
	}
	if m.Public {
		t.Error("the App is public: anyone could install it and send the bot webhooks")
	}
	want := map[string]string{
		"contents":      "write", // image update pull requests push the bot's branches
		"metadata":      "read",
		"pull_requests": "write",
		"issues":        "write",
		"statuses":      "write",
		"deployments":   "write",
		"members":       "read",
	}
	if diff := cmp.Diff(want, m.DefaultPermissions); diff != "" {
		t.Errorf("default_permissions (-want +got):\n%s", diff)
	}
	// Each event and the permission GitHub requires to subscribe to it.
	events := map[string]string{
		"pull_request":        "pull_requests",
		"pull_request_review": "pull_requests",
		"issue_comment":       "issues",
		"push":                "contents",
	}
	if diff := cmp.Diff(slices.Sorted(maps.Keys(events)), slices.Sorted(slices.Values(m.DefaultEvents))); diff != "" {
		t.Errorf("default_events (-want +got):\n%s", diff)
	}
	for _, ev := range m.DefaultEvents {
		if p := events[ev]; p != "" && m.DefaultPermissions[p] == "" {
			t.Errorf("event %s needs the %s permission", ev, p)
		}
	}
}

// deployOfKind converts the objects of kind into T.
func deployOfKind[T any](t *testing.T, objs []*unstructured.Unstructured, kind string) []T {
	t.Helper()
	var out []T
	for _, obj := range objs {
		if obj.GetKind() != kind {
			continue
		}
		var v T
		if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(obj.Object, &v, true); err != nil {
			t.Fatalf("%s %s: %v", kind, obj.GetName(), err)
		}
		out = append(out, v)
	}
	return out
}

func clusterBindingsAsRoleBindings(in []rbacv1.ClusterRoleBinding) []rbacv1.RoleBinding {
	out := make([]rbacv1.RoleBinding, len(in))
	for i, b := range in {
		out[i] = rbacv1.RoleBinding{ObjectMeta: b.ObjectMeta, Subjects: b.Subjects, RoleRef: b.RoleRef}
	}
	return out
}

func deployNames[T any, P interface {
	*T
	GetNamespace() string
	GetName() string
}](objs []T) []string {
	var out []string
	for i := range objs {
		p := P(&objs[i])
		out = append(out, p.GetNamespace()+"/"+p.GetName())
	}
	return out
}

func deployObjectKey(obj *unstructured.Unstructured) string {
	return obj.GetKind() + "/" + obj.GetNamespace() + "/" + obj.GetName()
}
