// Package gentree writes synthetic Kustomize trees for the render benchmarks:
// many small apps, each a base and an overlay, or one real-world-sized
// overlay set of a shared base, components and six overlays.
//
// Output is deterministic (no randomness, no clock, no network), so two runs
// of a benchmark render byte-identical trees and the figures compare.
package gentree

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Tree writes apps small apps under dir, each rendering to objects objects
// (at least 2), and returns the overlay folders to render, relative to dir.
//
// App i is apps/app-NNN/base (objects-1 resources of mixed kinds, some files
// holding several documents) and apps/app-NNN/overlay, which sets a
// namespace, a namePrefix and labels, and adds a strategic-merge patch, a
// JSON 6902 patch, an images override and a configMapGenerator (the last
// object).
func Tree(dir string, apps, objects int) ([]string, error) {
	if apps < 1 {
		return nil, fmt.Errorf("apps is %d; generate at least one app", apps)
	}
	if objects < 2 {
		return nil, fmt.Errorf("objects is %d; an app needs at least 2 (a Deployment and the generated ConfigMap)", objects)
	}
	w := &writer{}
	overlays := make([]string, 0, apps)
	for i := range apps {
		overlays = append(overlays, w.app(dir, i, objects))
	}
	return overlays, w.err
}

// RealWorld writes one platform-sized overlay set under dir and returns its
// overlay folders, relative to dir: a shared base of about 60 objects (eight
// services and their shared configuration), three components (monitoring,
// high availability, hardening), three environments (dev, staging, prod)
// and, on top, one overlay per environment and region (eu, us) with patches,
// replacements, generators and image overrides.
func RealWorld(dir string) ([]string, error) {
	w := &writer{}
	overlays := w.realWorld(dir)
	return overlays, w.err
}

// writer keeps the first error, so the generators read as a list of files.
type writer struct {
	err error
}

func (w *writer) file(path string, lines ...string) {
	if w.err != nil {
		return
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		w.err = err
		return
	}
	w.err = os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}

// kinds cycle through an app's base after its first Deployment.
var kinds = []string{
	"Service", "ConfigMap", "Secret", "ServiceAccount", "Role", "RoleBinding",
	"Deployment", "Ingress", "HorizontalPodAutoscaler", "PodDisruptionBudget",
	"NetworkPolicy", "StatefulSet", "CronJob",
}

func (w *writer) app(dir string, i, objects int) string {
	app := fmt.Sprintf("app-%03d", i)
	base := filepath.Join(dir, "apps", app, "base")
	overlay := filepath.Join(dir, "apps", app, "overlay")

	// The first object is the Deployment the overlay patches; the rest
	// cycle through kinds, shifted per app so apps differ.
	docs := []string{deployment(app+"-web", app, "web", 2)}
	for j := 1; j < objects-1; j++ {
		kind := kinds[(i+j-1)%len(kinds)]
		docs = append(docs, object(kind, fmt.Sprintf("%s-%s-%d", app, strings.ToLower(kind), j), app, j))
	}
	// Files of one to three documents, as repositories have.
	var files []string
	for j := 0; j < len(docs); {
		n := 1 + (i+j)%3
		if j+n > len(docs) {
			n = len(docs) - j
		}
		name := fmt.Sprintf("resources-%02d.yaml", len(files))
		w.file(filepath.Join(base, name), strings.Join(docs[j:j+n], "---\n"))
		files = append(files, name)
		j += n
	}
	w.file(filepath.Join(base, "kustomization.yaml"), append([]string{
		"apiVersion: kustomize.config.k8s.io/v1beta1",
		"kind: Kustomization",
		"labels:",
		"- pairs:",
		"    app.kubernetes.io/name: " + app,
		"  includeSelectors: true",
		"resources:",
	}, list("- ", files)...)...)

	env := []string{"dev", "staging", "prod"}[i%3]
	w.file(filepath.Join(overlay, "kustomization.yaml"),
		"apiVersion: kustomize.config.k8s.io/v1beta1",
		"kind: Kustomization",
		"namespace: "+app,
		"namePrefix: "+env+"-",
		"labels:",
		"- pairs:",
		"    app.kubernetes.io/part-of: "+app,
		"    environment: "+env,
		"resources:",
		"- ../base",
		"patches:",
		"- path: deployment-patch.yaml",
		"- path: deployment-json6902.yaml",
		"  target:",
		"    group: apps",
		"    version: v1",
		"    kind: Deployment",
		"    name: "+app+"-web",
		"images:",
		"- name: registry.example.com/"+app+"/web",
		"  newName: mirror.example.com/"+app+"/web",
		fmt.Sprintf("  newTag: v1.%d.0", i%17),
		"configMapGenerator:",
		"- name: "+app+"-settings",
		"  envs:",
		"  - settings.env",
		"  literals:",
		"  - ENVIRONMENT="+env,
		fmt.Sprintf("  - SHARD=%d", i%8),
	)
	w.file(filepath.Join(overlay, "deployment-patch.yaml"),
		"apiVersion: apps/v1",
		"kind: Deployment",
		"metadata:",
		"  name: "+app+"-web",
		"spec:",
		fmt.Sprintf("  replicas: %d", 2+i%4),
		"  template:",
		"    spec:",
		"      containers:",
		"      - name: web",
		"        resources:",
		"          limits:",
		"            memory: 512Mi",
		"        env:",
		"        - name: LOG_LEVEL",
		"          value: info",
	)
	w.file(filepath.Join(overlay, "deployment-json6902.yaml"),
		"- op: add",
		"  path: /metadata/annotations",
		"  value:",
		"    example.com/owner: team-"+fmt.Sprint(i%12),
		"- op: replace",
		"  path: /spec/template/spec/containers/0/ports/0/containerPort",
		"  value: 8443",
		"- op: add",
		"  path: /spec/template/spec/containers/0/args/-",
		"  value: --tls",
	)
	w.file(filepath.Join(overlay, "settings.env"),
		"FEATURE_A=true",
		"FEATURE_B=false",
		"CACHE_TTL=300s",
		"UPSTREAM=http://"+app+"-backend:8080",
	)
	rel, _ := filepath.Rel(dir, overlay)
	return rel
}

func list(prefix string, items []string) []string {
	out := make([]string, len(items))
	for i, s := range items {
		out[i] = prefix + s
	}
	return out
}

func yamlDoc(lines ...string) string {
	return strings.Join(lines, "\n") + "\n"
}

// deployment is a Deployment whose single container is named container, with
// a port, args and env for patches to work on.
func deployment(name, app, container string, replicas int) string {
	return yamlDoc(
		"apiVersion: apps/v1",
		"kind: Deployment",
		"metadata:",
		"  name: "+name,
		"spec:",
		fmt.Sprintf("  replicas: %d", replicas),
		"  selector:",
		"    matchLabels:",
		"      component: "+name,
		"  template:",
		"    metadata:",
		"      labels:",
		"        component: "+name,
		"    spec:",
		"      serviceAccountName: default",
		"      containers:",
		"      - name: "+container,
		"        image: registry.example.com/"+app+"/"+container+":latest",
		"        args:",
		"        - --listen=:8080",
		"        ports:",
		"        - name: http",
		"          containerPort: 8080",
		"        env:",
		"        - name: REGION",
		"          value: unset",
		"        - name: APP",
		"          value: "+app,
		"        resources:",
		"          requests:",
		"            cpu: 100m",
		"            memory: 128Mi",
		"        readinessProbe:",
		"          httpGet:",
		"            path: /healthz",
		"            port: http",
	)
}

// object is one resource of kind, made plausible enough for kustomize's name
// references (a RoleBinding names a Role, an HPA a Deployment) to resolve or
// be left alone.
func object(kind, name, app string, j int) string {
	switch kind {
	case "Deployment":
		return deployment(name, app, "worker", 1)
	case "Service":
		return yamlDoc(
			"apiVersion: v1",
			"kind: Service",
			"metadata:",
			"  name: "+name,
			"spec:",
			"  selector:",
			"    component: "+app+"-web",
			"  ports:",
			"  - name: http",
			"    port: 80",
			"    targetPort: http",
		)
	case "ConfigMap":
		return yamlDoc(
			"apiVersion: v1",
			"kind: ConfigMap",
			"metadata:",
			"  name: "+name,
			"data:",
			"  config.yaml: |",
			"    server:",
			fmt.Sprintf("      workers: %d", j),
			"      timeout: 30s",
			"  mode: standard",
		)
	case "Secret":
		return yamlDoc(
			"apiVersion: v1",
			"kind: Secret",
			"metadata:",
			"  name: "+name,
			"type: Opaque",
			"stringData:",
			"  username: "+app,
			"data:",
			"  password: cGFzc3dvcmQ=",
		)
	case "ServiceAccount":
		return yamlDoc(
			"apiVersion: v1",
			"kind: ServiceAccount",
			"metadata:",
			"  name: "+name,
		)
	case "Role":
		return yamlDoc(
			"apiVersion: rbac.authorization.k8s.io/v1",
			"kind: Role",
			"metadata:",
			"  name: "+name,
			"rules:",
			"- apiGroups: [\"\"]",
			"  resources: [configmaps, secrets]",
			"  verbs: [get, list, watch]",
		)
	case "RoleBinding":
		return yamlDoc(
			"apiVersion: rbac.authorization.k8s.io/v1",
			"kind: RoleBinding",
			"metadata:",
			"  name: "+name,
			"roleRef:",
			"  apiGroup: rbac.authorization.k8s.io",
			"  kind: Role",
			"  name: "+name+"-role",
			"subjects:",
			"- kind: ServiceAccount",
			"  name: default",
		)
	case "Ingress":
		return yamlDoc(
			"apiVersion: networking.k8s.io/v1",
			"kind: Ingress",
			"metadata:",
			"  name: "+name,
			"spec:",
			"  rules:",
			"  - host: "+name+".example.com",
			"    http:",
			"      paths:",
			"      - path: /",
			"        pathType: Prefix",
			"        backend:",
			"          service:",
			"            name: "+app+"-service-1",
			"            port:",
			"              number: 80",
		)
	case "HorizontalPodAutoscaler":
		return yamlDoc(
			"apiVersion: autoscaling/v2",
			"kind: HorizontalPodAutoscaler",
			"metadata:",
			"  name: "+name,
			"spec:",
			"  scaleTargetRef:",
			"    apiVersion: apps/v1",
			"    kind: Deployment",
			"    name: "+app+"-web",
			"  minReplicas: 2",
			"  maxReplicas: 10",
			"  metrics:",
			"  - type: Resource",
			"    resource:",
			"      name: cpu",
			"      target:",
			"        type: Utilization",
			"        averageUtilization: 75",
		)
	case "PodDisruptionBudget":
		return yamlDoc(
			"apiVersion: policy/v1",
			"kind: PodDisruptionBudget",
			"metadata:",
			"  name: "+name,
			"spec:",
			"  minAvailable: 1",
			"  selector:",
			"    matchLabels:",
			"      component: "+app+"-web",
		)
	case "NetworkPolicy":
		return yamlDoc(
			"apiVersion: networking.k8s.io/v1",
			"kind: NetworkPolicy",
			"metadata:",
			"  name: "+name,
			"spec:",
			"  podSelector:",
			"    matchLabels:",
			"      component: "+app+"-web",
			"  policyTypes: [Ingress]",
			"  ingress:",
			"  - from:",
			"    - podSelector: {}",
			"    ports:",
			"    - port: 8080",
		)
	case "StatefulSet":
		return yamlDoc(
			"apiVersion: apps/v1",
			"kind: StatefulSet",
			"metadata:",
			"  name: "+name,
			"spec:",
			"  serviceName: "+name,
			"  replicas: 1",
			"  selector:",
			"    matchLabels:",
			"      component: "+name,
			"  template:",
			"    metadata:",
			"      labels:",
			"        component: "+name,
			"    spec:",
			"      containers:",
			"      - name: db",
			"        image: registry.example.com/"+app+"/db:15",
			"        volumeMounts:",
			"        - name: data",
			"          mountPath: /var/lib/data",
			"  volumeClaimTemplates:",
			"  - metadata:",
			"      name: data",
			"    spec:",
			"      accessModes: [ReadWriteOnce]",
			"      resources:",
			"        requests:",
			"          storage: 10Gi",
		)
	case "CronJob":
		return yamlDoc(
			"apiVersion: batch/v1",
			"kind: CronJob",
			"metadata:",
			"  name: "+name,
			"spec:",
			"  schedule: \"*/15 * * * *\"",
			"  jobTemplate:",
			"    spec:",
			"      template:",
			"        spec:",
			"          restartPolicy: OnFailure",
			"          containers:",
			"          - name: job",
			"            image: registry.example.com/"+app+"/job:latest",
			"            args: [--once]",
		)
	}
	panic("gentree: no template for kind " + kind)
}
