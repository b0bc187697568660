package integration

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-gitops/kubectl-gitops/internal/lease"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/bottest"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/gittest"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/scmtest/githubfake"
)

// slowDeployment is a Deployment that never becomes available on the test
// control plane (no controllers run there), so an apply that waits for its
// health holds the app's apply lock for the app's wait timeout.
func slowDeployment(image string) string {
	return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: slow
spec:
  selector: {matchLabels: {app: slow}}
  template:
    metadata: {labels: {app: slow}}
    spec:
      containers:
      - {name: app, image: ` + image + `}
`
}

// TestBotReplicasEndToEnd runs two gitops-bot processes against one API
// server, sharing their state (leader election, locks, records) in Leases
// and ConfigMaps of one namespace. An approved merge is delivered to both
// (a redelivery that reaches the other replica): it is applied once. The
// leader is killed while it waits for the health of an app it is
// applying; the other replica takes over and the apps converge, with
// gitops/sync success.
func TestBotReplicasEndToEnd(t *testing.T) {
	env.Require(t)
	ns, stateNS := env.Namespace(t), env.Namespace(t)
	fake := githubfake.New(t)
	repo := gittest.NewRepo(t, map[string]string{
		"gitops.yaml": fmt.Sprintf(`apiVersion: gitops.kubectl.dev/v1alpha1
kind: Repository
sync: onMerge
apps:
  - {name: web, path: apps/web, namespace: %[1]s, cluster: test}
  - {name: slow, path: apps/slow, namespace: %[1]s, cluster: test, wait: {timeout: 2m}}
approvals:
  - {name: default, minApprovals: 1}
`, ns),
		"apps/web/settings.yaml":  configMap("web-settings", "one"),
		"apps/slow/settings.yaml": configMap("slow-settings", "one"),
	})
	base := repo.Head(t)
	applyBase(t, repo.Dir)
	head := repo.Commit(t, map[string]string{
		"apps/web/settings.yaml":    configMap("web-settings", "two"),
		"apps/slow/deployment.yaml": slowDeployment("registry.example/slow:2"),
	}, "web: two; slow: a deployment")
	serveShop(t, fake, repo, base, &githubfake.Pull{
		Title: "web and slow", HeadSHA: head,
		Files: []githubfake.File{{Filename: "apps/web/settings.yaml", Status: "modified"}, {Filename: "apps/slow/deployment.yaml", Status: "added"}},
	})
	fake.Update("acme/shop", func(r *githubfake.Repo) {
		r.Permissions["alice"] = "write"
		r.Branches = map[string]string{"main": base}
	})

	start := func(identity string) *bottest.Bot {
		return bottest.Start(t, fake, bottest.Options{
			Binary:            filepath.Join(binDir, "gitops-bot"),
			WebhookSecret:     webhookSecret,
			Repository:        "acme/shop",
			Kubeconfig:        env.Kubeconfig,
			State:             stateNS,
			Identity:          identity,
			ReconcileInterval: 5 * time.Second,
		})
	}
	a := start("replica-a")
	waitLeader(t, stateNS, "replica-a")
	b := start("replica-b")

	// Approved on the head; the gate's answer comes from either replica.
	if code := deliver(t, a.Addr, "rep-1", pullRequestEvent("opened", head)); code != http.StatusAccepted {
		t.Fatalf("pull_request.opened: HTTP %d, want 202", code)
	}
	waitContext(t, fake, head, "gitops/approval", "pending", "0 of 1 approvals")
	approve(fake, 7, "alice", head)
	mustDeliver(t, b.Addr, "pull_request_review", reviewEvent("alice", head))
	waitContext(t, fake, head, "gitops/approval", "success", "approved by @alice")

	// Merged as a fast-forward; the push reaches both replicas.
	mergePull(fake, 7, head)
	for i, bot := range []*bottest.Bot{a, b} {
		if code, answer := deliverEvent(t, bot.Addr, "push", fmt.Sprintf("rep-push-%d", i), pushEvent(base, head)); code != http.StatusAccepted {
			t.Fatalf("push to replica %d: HTTP %d %s, want 202", i, code, answer)
		}
	}

	// Kill the leader while it holds slow's apply lock (waiting for the
	// Deployment's health), or, if the other replica took the sync,
	// that one: the replica that is applying dies mid-way.
	holder := waitApplyLock(t, stateNS, "/slow")
	victim := map[string]*bottest.Bot{"replica-a": a, "replica-b": b}[holder]
	if victim == nil {
		t.Fatalf("slow's apply lock is held by %q, not a replica", holder)
	}
	waitDeployment(t, ns, "slow", "registry.example/slow:2")
	if err := syscall.Kill(victim.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed %s while it waited for slow's health", holder)
	// The Deployment's controller catches up (none runs on the test
	// control plane): whoever waits next sees it healthy.
	markAvailable(t, ns, "slow")

	waitContext(t, fake, head, "gitops/sync", "success", "")
	cm, err := env.Clientset.CoreV1().ConfigMaps(ns).Get(t.Context(), "web-settings", metav1.GetOptions{})
	if err != nil || cm.Data["key"] != "two" {
		t.Errorf("web-settings after the sync: %v %v, want key two", cm.Data, err)
	}
	dep, err := env.Clientset.AppsV1().Deployments(ns).Get(t.Context(), "slow", metav1.GetOptions{})
	if err != nil || dep.Spec.Template.Spec.Containers[0].Image != "registry.example/slow:2" {
		t.Errorf("slow after the sync: %v", err)
	}
	// Each app was applied once: one deployment record per environment,
	// whichever replica made it.
	count := map[string]int{}
	fake.Update("acme/shop", func(r *githubfake.Repo) {
		for _, d := range r.Deployments {
			count[d.Environment]++
		}
	})
	// slow may be applied again by the survivor if the kill came before
	// its inventory recorded the plan; web, done before, never is.
	if count["test/web"] != 1 || count["test/slow"] < 1 {
		t.Errorf("deployments per environment = %v, want test/web once and test/slow at least once", count)
	}
	// The survivor leads once the dead leader's Lease runs out, which may
	// be after the sync: a replica holding an app's apply lock syncs it
	// whether or not it leads.
	survivor := map[string]string{"replica-a": "replica-b", "replica-b": "replica-a"}[holder]
	waitLeader(t, stateNS, survivor)
}

// currentLeader is the holder of the bots' leader Lease in ns.
func currentLeader(t *testing.T, ns string) string {
	t.Helper()
	l, err := env.Clientset.CoordinationV1().Leases(ns).Get(t.Context(), "gitops-bot-leader", metav1.GetOptions{})
	if err != nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// waitLeader waits until identity leads.
func waitLeader(t *testing.T, ns, identity string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if currentLeader(t, ns) == identity {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s did not become the leader; leader is %q", identity, currentLeader(t, ns))
}

// waitApplyLock waits until an apply lock whose key ends with suffix is
// held, and returns its holder.
func waitApplyLock(t *testing.T, ns, suffix string) string {
	t.Helper()
	locks := &lease.Locks{Client: env.Clientset, Namespace: ns}
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		all, err := locks.List(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range all {
			if strings.HasPrefix(l.Key, "apply:") && strings.HasSuffix(l.Key, suffix) && l.Holder != "" {
				return l.Holder
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no apply lock on %s was taken", suffix)
	return ""
}

// waitDeployment waits until Deployment name in ns runs image.
func waitDeployment(t *testing.T, ns, name, image string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		d, err := env.Clientset.AppsV1().Deployments(ns).Get(t.Context(), name, metav1.GetOptions{})
		if err == nil && d.Spec.Template.Spec.Containers[0].Image == image {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("Deployment %s/%s never ran %s", ns, name, image)
}

// markAvailable writes the status a Deployment controller would once its
// replicas are up, so that health checks see it current.
func markAvailable(t *testing.T, ns, name string) {
	t.Helper()
	deployments := env.Clientset.AppsV1().Deployments(ns)
	d, err := deployments.Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	replicas := int32(1)
	if d.Spec.Replicas != nil {
		replicas = *d.Spec.Replicas
	}
	d.Status = appsv1.DeploymentStatus{
		ObservedGeneration: d.Generation, Replicas: replicas, UpdatedReplicas: replicas,
		ReadyReplicas: replicas, AvailableReplicas: replicas,
		Conditions: []appsv1.DeploymentCondition{
			{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable"},
			{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "NewReplicaSetAvailable"},
		},
	}
	if _, err := deployments.UpdateStatus(t.Context(), d, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("mark %s available: %v", name, err)
	}
}
