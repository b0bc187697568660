package gentree

import (
	"fmt"
	"path/filepath"
	"strings"
)

// services of the real-world base; each has seven objects.
var services = []string{"api", "auth", "billing", "catalog", "checkout", "frontend", "notifier", "search"}

// envs and the components each one uses.
var envs = []struct {
	name       string
	components []string
	replicas   int
}{
	{"dev", []string{"monitoring"}, 1},
	{"staging", []string{"monitoring", "hardening"}, 2},
	{"prod", []string{"monitoring", "ha", "hardening"}, 3},
}

var regions = []struct{ name, cloud string }{{"eu", "eu-west-1"}, {"us", "us-east-1"}}

func (w *writer) realWorld(dir string) []string {
	w.realWorldBase(filepath.Join(dir, "base"))
	w.components(filepath.Join(dir, "components"))
	var overlays []string
	for _, e := range envs {
		w.env(filepath.Join(dir, "envs", e.name), e.name, e.components, e.replicas)
		for _, r := range regions {
			name := e.name + "-" + r.name
			w.regionOverlay(filepath.Join(dir, "overlays", name), e.name, r.name, r.cloud)
			overlays = append(overlays, filepath.Join("overlays", name))
		}
	}
	return overlays
}

// realWorldBase writes 8 services × 7 objects and 4 shared objects.
func (w *writer) realWorldBase(base string) {
	var resources []string
	for i, s := range services {
		app := "shop"
		docs := []string{
			strings.Replace(deployment(s, app, "app", 1), "registry.example.com/shop/app:latest", "registry.example.com/shop/"+s+":1.0.0", 1),
			object("Service", s, app, i),
			object("ServiceAccount", s, app, i),
			object("ConfigMap", s+"-config", app, i),
			object("Role", s, app, i),
			strings.Replace(object("RoleBinding", s, app, i), "name: "+s+"-role", "name: "+s, 1),
			object("NetworkPolicy", s, app, i),
		}
		name := s + ".yaml"
		w.file(filepath.Join(base, "services", name), strings.Join(docs, "---\n"))
		resources = append(resources, "services/"+name)
	}
	w.file(filepath.Join(base, "shared.yaml"), strings.Join([]string{
		yamlDoc(
			"apiVersion: v1",
			"kind: ConfigMap",
			"metadata:",
			"  name: platform",
			"data:",
			"  REGION: unset",
			"  DOMAIN: shop.example.com",
		),
		object("Ingress", "gateway", "shop", 0),
		object("Secret", "registry-credentials", "shop", 0),
		object("CronJob", "cleanup", "shop", 0),
	}, "---\n"))
	resources = append(resources, "shared.yaml")
	w.file(filepath.Join(base, "kustomization.yaml"), append([]string{
		"apiVersion: kustomize.config.k8s.io/v1beta1",
		"kind: Kustomization",
		"labels:",
		"- pairs:",
		"    app.kubernetes.io/part-of: shop",
		"  includeSelectors: true",
		"commonAnnotations:",
		"  example.com/repository: platform",
		"resources:",
	}, list("- ", resources)...)...)
}

func (w *writer) components(dir string) {
	// monitoring: a ServiceMonitor per service and scrape annotations on
	// every Deployment.
	var monitors []string
	for _, s := range services {
		monitors = append(monitors, yamlDoc(
			"apiVersion: monitoring.coreos.com/v1",
			"kind: ServiceMonitor",
			"metadata:",
			"  name: "+s,
			"spec:",
			"  selector:",
			"    matchLabels:",
			"      component: "+s,
			"  endpoints:",
			"  - port: http",
			"    interval: 30s",
		))
	}
	w.file(filepath.Join(dir, "monitoring", "servicemonitors.yaml"), strings.Join(monitors, "---\n"))
	w.file(filepath.Join(dir, "monitoring", "kustomization.yaml"),
		"apiVersion: kustomize.config.k8s.io/v1alpha1",
		"kind: Component",
		"resources:",
		"- servicemonitors.yaml",
		"patches:",
		"- target:",
		"    kind: Deployment",
		"  patch: |-",
		"    - op: add",
		"      path: /spec/template/metadata/annotations",
		"      value:",
		"        prometheus.io/scrape: \"true\"",
		"        prometheus.io/port: \"8080\"",
	)

	// ha: a PodDisruptionBudget and an HPA per service, anti-affinity on
	// every Deployment.
	var ha []string
	for _, s := range services {
		ha = append(ha,
			strings.ReplaceAll(object("PodDisruptionBudget", s, "shop", 0), "component: shop-web", "component: "+s),
			strings.ReplaceAll(object("HorizontalPodAutoscaler", s, "shop", 0), "name: shop-web", "name: "+s),
		)
	}
	w.file(filepath.Join(dir, "ha", "resources.yaml"), strings.Join(ha, "---\n"))
	w.file(filepath.Join(dir, "ha", "anti-affinity.yaml"),
		"apiVersion: apps/v1",
		"kind: Deployment",
		"metadata:",
		"  name: any",
		"spec:",
		"  template:",
		"    spec:",
		"      topologySpreadConstraints:",
		"      - maxSkew: 1",
		"        topologyKey: topology.kubernetes.io/zone",
		"        whenUnsatisfiable: ScheduleAnyway",
	)
	w.file(filepath.Join(dir, "ha", "kustomization.yaml"),
		"apiVersion: kustomize.config.k8s.io/v1alpha1",
		"kind: Component",
		"resources:",
		"- resources.yaml",
		"patches:",
		"- path: anti-affinity.yaml",
		"  target:",
		"    kind: Deployment",
	)

	// hardening: a restrictive security context on every container and a
	// default-deny NetworkPolicy.
	w.file(filepath.Join(dir, "hardening", "security-context.yaml"),
		"apiVersion: apps/v1",
		"kind: Deployment",
		"metadata:",
		"  name: any",
		"spec:",
		"  template:",
		"    spec:",
		"      securityContext:",
		"        runAsNonRoot: true",
		"        seccompProfile:",
		"          type: RuntimeDefault",
		"      automountServiceAccountToken: false",
	)
	w.file(filepath.Join(dir, "hardening", "default-deny.yaml"),
		"apiVersion: networking.k8s.io/v1",
		"kind: NetworkPolicy",
		"metadata:",
		"  name: default-deny",
		"spec:",
		"  podSelector: {}",
		"  policyTypes: [Ingress, Egress]",
	)
	w.file(filepath.Join(dir, "hardening", "kustomization.yaml"),
		"apiVersion: kustomize.config.k8s.io/v1alpha1",
		"kind: Component",
		"resources:",
		"- default-deny.yaml",
		"patches:",
		"- path: security-context.yaml",
		"  target:",
		"    kind: Deployment",
		"- target:",
		"    kind: Deployment",
		"  patch: |-",
		"    - op: add",
		"      path: /spec/template/spec/containers/0/securityContext",
		"      value:",
		"        allowPrivilegeEscalation: false",
		"        readOnlyRootFilesystem: true",
		"        capabilities:",
		"          drop: [ALL]",
	)
}

func (w *writer) env(dir, env string, components []string, replicas int) {
	lines := []string{
		"apiVersion: kustomize.config.k8s.io/v1beta1",
		"kind: Kustomization",
		"labels:",
		"- pairs:",
		"    environment: " + env,
		"resources:",
		"- ../../base",
		"components:",
	}
	lines = append(lines, list("- ../../components/", components)...)
	lines = append(lines, "replicas:")
	for _, s := range services {
		lines = append(lines, "- name: "+s, fmt.Sprintf("  count: %d", replicas))
	}
	lines = append(lines,
		"configMapGenerator:",
		"- name: environment",
		"  literals:",
		"  - ENVIRONMENT="+env,
		"  - LOG_LEVEL="+map[string]string{"dev": "debug", "staging": "info", "prod": "warn"}[env],
		"- name: platform",
		"  behavior: merge",
		"  literals:",
		"  - ENVIRONMENT="+env,
		"patches:",
		"- path: resources.yaml",
		"  target:",
		"    kind: Deployment",
	)
	w.file(filepath.Join(dir, "kustomization.yaml"), lines...)
	memory := map[string]string{"dev": "256Mi", "staging": "512Mi", "prod": "1Gi"}[env]
	w.file(filepath.Join(dir, "resources.yaml"),
		"- op: replace",
		"  path: /spec/template/spec/containers/0/resources",
		"  value:",
		"    requests:",
		"      cpu: 250m",
		"      memory: "+memory,
		"    limits:",
		"      memory: "+memory,
	)
}

func (w *writer) regionOverlay(dir, env, region, cloud string) {
	lines := []string{
		"apiVersion: kustomize.config.k8s.io/v1beta1",
		"kind: Kustomization",
		"namespace: shop-" + env + "-" + region,
		"nameSuffix: -" + region,
		"labels:",
		"- pairs:",
		"    region: " + region,
		"  includeTemplates: true",
		"resources:",
		"- ../../envs/" + env,
		"configMapGenerator:",
		"- name: platform",
		"  behavior: merge",
		"  literals:",
		"  - REGION=" + cloud,
		"  - DOMAIN=" + region + "." + env + ".shop.example.com",
		"secretGenerator:",
		"- name: api-keys",
		"  literals:",
		"  - PAYMENTS_KEY=" + env + "-" + region + "-key",
		"  - SEARCH_KEY=" + region + "-search",
		"images:",
	}
	for i, s := range services {
		lines = append(lines,
			"- name: registry.example.com/shop/"+s,
			"  newName: "+cloud+".mirror.example.com/shop/"+s,
			fmt.Sprintf("  newTag: 1.%d.%d", len(env), i),
		)
	}
	lines = append(lines,
		"replacements:",
		"- source:",
		"    kind: ConfigMap",
		"    name: platform",
		"    fieldPath: data.REGION",
		"  targets:",
		"  - select:",
		"      kind: Deployment",
		"    fieldPaths:",
		"    - spec.template.spec.containers.[name=app].env.[name=REGION].value",
		"- source:",
		"    kind: ConfigMap",
		"    name: platform",
		"    fieldPath: data.DOMAIN",
		"  targets:",
		"  - select:",
		"      kind: Ingress",
		"      name: gateway",
		"    fieldPaths:",
		"    - spec.rules.0.host",
		"patches:",
		"- path: frontend.yaml",
		"- target:",
		"    kind: Ingress",
		"    name: gateway",
		"  patch: |-",
		"    - op: add",
		"      path: /metadata/annotations/cert-manager.io~1cluster-issuer",
		"      value: letsencrypt-"+env,
	)
	w.file(filepath.Join(dir, "kustomization.yaml"), lines...)
	w.file(filepath.Join(dir, "frontend.yaml"),
		"apiVersion: apps/v1",
		"kind: Deployment",
		"metadata:",
		"  name: frontend",
		"spec:",
		"  template:",
		"    spec:",
		"      nodeSelector:",
		"        topology.kubernetes.io/region: "+cloud,
		"      containers:",
		"      - name: app",
		"        env:",
		"        - name: CDN",
		"          value: https://cdn-"+region+".example.com",
	)
}
