package integration

// BenchmarkApprovals measures approval-gated sync (issue 9), run by
// hack/bench-approvals.sh: the gitops-bot binary (GITOPS_BOT_BIN) against
// the GitHub fake, a real Git server and the test control plane, for pull
// requests touching 20 apps of a repository with `sync: onMerge` and one
// approval policy (minApprovals: 1). Each round is a new pull request off
// main, previewed first (gitops/approval pending), then:
//
//   - review → approval: from the start of the signed pull_request_review
//     delivery (a writer's approval, already in the fake's review list) to
//     gitops/approval success on the head;
//   - merge push → applied: the pull request merged (a fast-forward: main
//     moves to its head), from the start of the signed push delivery
//     (followed, as GitHub does, by pull_request.closed) to all 20 apps'
//     objects having the new values in the API server (polled), and to
//     gitops/sync success on the merge.
//
// Then the peer and the limit, on the same control plane in the same run:
// the same change of the 20 apps applied by `kubectl apply --server-side`
// and by the built `kubectl-gitops apply` of a checkout, each on a copy of
// the apps in a namespace of its own, timed the same way (from the start
// of the process to the new values in the API server).
//
// Nothing asserts on time; the figures are reported, and written to
// BENCH_BOT_OUT (key value lines) for the script.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubectl-gitops/kubectl-gitops/bot"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/gittest"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/scmtest/githubfake"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/testenv"
)

// approvalsPoll is how often the API server and the fake's statuses are
// polled while a round waits.
const approvalsPoll = 10 * time.Millisecond

// approvalsFiles is the bench tree: 20 apps (benchApp) of three ConfigMaps
// each in ns, the settings one (benchConfigMap) carrying RELEASE: value,
// with gitops.yaml syncing every app on merge under one approval policy.
func approvalsFiles(ns, value string) map[string]string {
	var apps strings.Builder
	apps.WriteString("apiVersion: gitops.kubectl.dev/v1alpha1\nkind: Repository\nsync: onMerge\napps:\n")
	files := map[string]string{}
	for i := range benchApps {
		a := benchApp(i)
		fmt.Fprintf(&apps, "  - {name: %s, path: apps/%s, namespace: %s, cluster: test}\n", a, a, ns)
		files["apps/"+a+"/config.yaml"] = benchConfigMap(ns, i, value)
		files["apps/"+a+"/routes.yaml"] = fmt.Sprintf(`apiVersion: v1
kind: ConfigMap
metadata:
  name: %[1]s-routes
  namespace: %[2]s
  labels: {app.kubernetes.io/name: %[1]s}
data:
  routes.yaml: |
    - {path: /api, upstream: http://%[1]s-backend.%[2]s.svc:9000}
    - {path: /healthz, local: true}
`, a, ns)
		files["apps/"+a+"/features.yaml"] = fmt.Sprintf(`apiVersion: v1
kind: ConfigMap
metadata:
  name: %[1]s-features
  namespace: %[2]s
  labels: {app.kubernetes.io/name: %[1]s}
data:
  NEW_CHECKOUT: "false"
  SEARCH_V2: "true"
`, a, ns)
	}
	apps.WriteString("approvals:\n  - {name: default, minApprovals: 1}\n")
	files["gitops.yaml"] = apps.String()
	return files
}

// approvalsRelease is the settings ConfigMap of every app at value: the
// change each round commits.
func approvalsRelease(ns, value string) map[string]string {
	files := map[string]string{}
	for i := range benchApps {
		files["apps/"+benchApp(i)+"/config.yaml"] = benchConfigMap(ns, i, value)
	}
	return files
}

// releasedApps counts the apps whose settings ConfigMap in ns carries
// RELEASE: value in the API server.
func releasedApps(ctx context.Context, ns, value string) int {
	list, err := env.Clientset.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0
	}
	n := 0
	for _, cm := range list.Items {
		if strings.HasSuffix(cm.Name, "-settings") && cm.Data["RELEASE"] == value {
			n++
		}
	}
	return n
}

// reviewEventOn is a pull_request_review delivery: user approved pull
// request n at sha.
func reviewEventOn(n int, user, sha string) []byte {
	return fmt.Appendf(nil, `{"action":"submitted","review":{"id":%d,"state":"approved","commit_id":%q,"user":{"login":%q}},"pull_request":{"number":%d,"state":"open","head":{"sha":%q,"ref":"change-%d"},"base":{"ref":"main"},"user":{"login":"dev"}},%s,"sender":{"login":%q}}`,
		time.Now().UnixNano(), sha, user, n, sha, n, shopRepository, user)
}

// BenchmarkApprovals runs once whatever b.N is: a warm-up round (the
// first clone, discovery, the bot's start-up reconcile; reported apart as
// the cold round), then BENCH_APPROVALS_ROUNDS rounds (default 5) of the
// bot, then as many of each peer.
func BenchmarkApprovals(b *testing.B) {
	bin := os.Getenv("GITOPS_BOT_BIN")
	if bin == "" {
		b.Skip("GITOPS_BOT_BIN is not set: run hack/bench-approvals.sh")
	}
	if b.N > 1 {
		b.Skip("runs once")
	}
	rounds := envInt("BENCH_APPROVALS_ROUNDS", 5)
	plugin := os.Getenv("GITOPS_PLUGIN_BIN")
	if plugin == "" {
		plugin = filepath.Join(binDir, "kubectl-gitops")
	}
	ctx := b.Context()
	kc, err := clientcmd.LoadFromFile(env.Kubeconfig)
	if err != nil {
		b.Fatal(err)
	}
	kubeContext := kc.CurrentContext

	// The shop: the base applied to the cluster once by kubectl-gitops.
	ns := env.Namespace(b)
	fake := githubfake.New(b)
	repo := gittest.NewRepo(b, approvalsFiles(ns, "r0"))
	mainSHA := repo.Head(b)
	gitopsYAML := approvalsFiles(ns, "r0")["gitops.yaml"]
	applyBase(b, repo.Dir)
	git := gittest.Serve(b, map[string]*gittest.Repo{"acme/shop": repo},
		gittest.WithAuth(func(user, pass string) bool { return user == "x-access-token" && fake.ValidToken(pass) }))
	fake.CloneURL = func(string) string { return git.URL("acme/shop") }
	fake.AddRepo(&githubfake.Repo{
		Owner: "acme", Name: "shop", ID: 1001, Installation: 42,
		Files:       map[string]map[string]string{mainSHA: {"gitops.yaml": gitopsYAML}},
		Permissions: map[string]string{"alice": "write", "dev": "write"},
		Branches:    map[string]string{"main": mainSHA},
	})
	var changed []githubfake.File
	for i := range benchApps {
		changed = append(changed, githubfake.File{Filename: "apps/" + benchApp(i) + "/config.yaml", Status: "modified"})
	}
	addr, _ := startBenchBot(b, bin, fake)

	var ids atomic.Int64
	deliver := func(event string, body []byte) {
		req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/webhooks/github", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-GitHub-Event", event)
		req.Header.Set("X-GitHub-Delivery", "approvals-"+strconv.FormatInt(ids.Add(1), 10))
		req.Header.Set("X-Hub-Signature-256", githubfake.Sign([]byte(benchSecret), body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatalf("%s delivery: %v", event, err)
		}
		answer, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			b.Fatalf("%s delivery: HTTP %d %s, want 202", event, resp.StatusCode, bytes.TrimSpace(answer))
		}
	}
	// status is the newest status named context on sha.
	status := func(sha, context string) githubfake.Status {
		var last githubfake.Status
		fake.Update("acme/shop", func(r *githubfake.Repo) {
			for _, st := range r.Statuses {
				if st.SHA == sha && st.Context == context {
					last = st
				}
			}
		})
		return last
	}
	// waitStatus waits until context on sha is in state and returns the
	// time from start; a final state other than state fails.
	waitStatus := func(start time.Time, sha, context, state string) time.Duration {
		deadline := start.Add(2 * time.Minute)
		for {
			st := status(sha, context)
			if st.State == state {
				return time.Since(start)
			}
			if st.State == "failure" || st.State == "error" {
				b.Fatalf("%s on %s is %s: %s", context, sha, st.State, st.Description)
			}
			if time.Now().After(deadline) {
				b.Fatalf("%s on %s not %s within 2 minutes; last %q %q", context, sha, state, st.State, st.Description)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}

	type botRound struct{ preview, approve, first, applied, synced time.Duration }
	// round opens pull request n changing every app's release to value,
	// waits for its preview (gitops/approval pending), approves it, merges
	// it and waits for the sync.
	round := func(n int, value string) botRound {
		base := mainSHA
		head := repo.Commit(b, approvalsRelease(ns, value), "release "+value)
		fake.Update("acme/shop", func(r *githubfake.Repo) {
			r.Pulls[n] = &githubfake.Pull{
				Number: n, Title: "release " + value, Author: "dev", State: "open",
				HeadSHA: head, HeadRef: fmt.Sprintf("change-%d", n), BaseSHA: base, BaseRef: "main",
				Files: changed, CreatedAt: time.Now(), UpdatedAt: time.Now(),
			}
		})
		var r botRound
		start := time.Now()
		deliver("pull_request", prEvent(n, "opened", head))
		r.preview = waitStatus(start, head, bot.ApprovalContext, "pending")

		// review → approval: the review is on the forge before GitHub
		// delivers its webhook.
		approve(fake, n, "alice", head)
		start = time.Now()
		deliver("pull_request_review", reviewEventOn(n, "alice", head))
		r.approve = waitStatus(start, head, bot.ApprovalContext, "success")

		// merge push → applied: a fast-forward merge moves main to the head.
		mergePull(fake, n, head)
		fake.Update("acme/shop", func(r *githubfake.Repo) { r.Files[head] = map[string]string{"gitops.yaml": gitopsYAML} })
		start = time.Now()
		deliver("push", pushEvent(base, head))
		// GitHub delivers pull_request.closed for the merge too: the bot
		// forgets the pull request's overlaps (else the next pull request's
		// preview warns of it, and is previewed again when the bot learns
		// it merged) and frees its locks.
		deliver("pull_request", prEvent(n, "closed", head))
		deadline := start.Add(2 * time.Minute)
		for r.applied == 0 || r.synced == 0 {
			if r.applied == 0 {
				done := releasedApps(ctx, ns, value)
				if r.first == 0 && done > 0 {
					r.first = time.Since(start)
				}
				if done == benchApps {
					r.applied = time.Since(start)
				}
			}
			if r.synced == 0 {
				switch st := status(head, bot.SyncContext); st.State {
				case "success":
					r.synced = time.Since(start)
				case "failure", "error":
					b.Fatalf("gitops/sync on %s is %s: %s", head, st.State, st.Description)
				}
			}
			if time.Now().After(deadline) {
				b.Fatalf("the merge of #%d: %d of %d apps applied, gitops/sync %q within 2 minutes",
					n, releasedApps(ctx, ns, value), benchApps, status(head, bot.SyncContext).State)
			}
			time.Sleep(approvalsPoll)
		}
		if st := status(head, bot.SyncContext); !strings.Contains(st.Description, "applied "+benchApp(0)) {
			b.Fatalf("gitops/sync on %s: %q, want every app applied", head, st.Description)
		}
		mainSHA = head
		return r
	}

	// The peers: a checkout of the same apps for each, in a namespace of
	// its own, the base applied once by the same tool (which also warms
	// its discovery cache).
	cacheDir := b.TempDir()
	kubectl := testenv.Tool(b, "kubectl")
	kns, gns := env.Namespace(b), env.Namespace(b)
	krepo, grepo := gittest.NewRepo(b, approvalsFiles(kns, "p0")), gittest.NewRepo(b, approvalsFiles(gns, "p0"))
	kubectlApply := func() *exec.Cmd {
		return exec.Command(kubectl, "apply", "--server-side", "-R", "-f", filepath.Join(krepo.Dir, "apps"),
			"--kubeconfig", env.Kubeconfig, "--context", kubeContext, "--cache-dir", cacheDir)
	}
	gitopsApply := func() *exec.Cmd {
		return exec.Command(plugin, "apply", grepo.Dir, "--wait",
			"--kubeconfig", env.Kubeconfig, "--context", kubeContext, "--cache-dir", cacheDir)
	}
	// timeApply runs cmd and returns the time from its start until all
	// apps of ns have value in the API server (polled as for the bot),
	// and until it exits.
	timeApply := func(cmd *exec.Cmd, ns, value string) (applied, exited time.Duration) {
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		start := time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		deadline := start.Add(2 * time.Minute)
		for applied == 0 || exited == 0 {
			select {
			case err := <-done:
				exited = time.Since(start)
				if err != nil {
					b.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out.String())
				}
			default:
			}
			if applied == 0 && releasedApps(ctx, ns, value) == benchApps {
				applied = time.Since(start)
			}
			if exited != 0 && applied == 0 {
				b.Fatalf("%s exited after %v with %d of %d apps at %s:\n%s", cmd.Args[0], exited, releasedApps(ctx, ns, value), benchApps, value, out.String())
			}
			if time.Now().After(deadline) {
				b.Fatalf("%s did not finish within 2 minutes", cmd.Args[0])
			}
			if applied == 0 || exited == 0 {
				time.Sleep(approvalsPoll)
			}
		}
		return applied, exited
	}

	b.ResetTimer()
	cold := round(100, "r1")
	var rs []botRound
	for k := range rounds {
		rs = append(rs, round(101+k, fmt.Sprintf("r%d", k+2)))
	}

	timeApply(kubectlApply(), kns, "p0")
	timeApply(gitopsApply(), gns, "p0")
	var kApplied, kExited, gApplied, gExited []time.Duration
	for k := range rounds {
		value := fmt.Sprintf("p%d", k+1)
		krepo.Commit(b, approvalsRelease(kns, value), "release "+value)
		grepo.Commit(b, approvalsRelease(gns, value), "release "+value)
		// Which goes first alternates by round.
		for j := range 2 {
			if (j+k)%2 == 0 {
				a, e := timeApply(kubectlApply(), kns, value)
				kApplied, kExited = append(kApplied, a), append(kExited, e)
			} else {
				a, e := timeApply(gitopsApply(), gns, value)
				gApplied, gExited = append(gApplied, a), append(gExited, e)
			}
		}
	}
	b.StopTimer()

	pick := func(f func(botRound) time.Duration) []time.Duration {
		out := make([]time.Duration, len(rs))
		for i, r := range rs {
			out[i] = f(r)
		}
		slices.Sort(out)
		return out
	}
	preview := pick(func(r botRound) time.Duration { return r.preview })
	approveLat := pick(func(r botRound) time.Duration { return r.approve })
	first := pick(func(r botRound) time.Duration { return r.first })
	applied := pick(func(r botRound) time.Duration { return r.applied })
	synced := pick(func(r botRound) time.Duration { return r.synced })
	for _, d := range [][]time.Duration{kApplied, kExited, gApplied, gExited} {
		slices.Sort(d)
	}
	millis := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }
	figures := map[string]float64{
		"approvals_rounds":  float64(len(rs)),
		"approvals_apps":    benchApps,
		"approvals_objects": 3 * benchApps,
		"cold_preview_ms":   millis(cold.preview),
		"cold_approve_ms":   millis(cold.approve),
		"cold_first_ms":     millis(cold.first),
		"cold_applied_ms":   millis(cold.applied),
		"cold_synced_ms":    millis(cold.synced),
	}
	for name, d := range map[string][]time.Duration{
		"preview": preview, "approve": approveLat, "first": first, "applied": applied, "synced": synced,
		"kubectl_applied": kApplied, "kubectl_exit": kExited, "gitops_applied": gApplied, "gitops_exit": gExited,
	} {
		figures[name+"_p50_ms"], figures[name+"_p95_ms"] = ms(d, 50), ms(d, 95)
		figures[name+"_min_ms"], figures[name+"_max_ms"] = millis(d[0]), millis(d[len(d)-1])
	}
	writeFigures(b, figures)
	b.ReportMetric(figures["approve_p50_ms"], "approve-p50-ms")
	b.ReportMetric(figures["approve_p95_ms"], "approve-p95-ms")
	b.ReportMetric(figures["applied_p50_ms"], "applied-p50-ms")
	b.ReportMetric(figures["applied_p95_ms"], "applied-p95-ms")
	b.ReportMetric(figures["synced_p50_ms"], "synced-p50-ms")
	b.ReportMetric(figures["synced_p95_ms"], "synced-p95-ms")
	b.ReportMetric(figures["kubectl_applied_p50_ms"], "kubectl-p50-ms")
	b.ReportMetric(figures["kubectl_applied_p95_ms"], "kubectl-p95-ms")
	b.ReportMetric(figures["gitops_applied_p50_ms"], "gitops-apply-p50-ms")
	b.ReportMetric(figures["gitops_applied_p95_ms"], "gitops-apply-p95-ms")
}
