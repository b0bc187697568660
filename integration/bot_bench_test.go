package integration

// Benchmarks of the bot (issue 4), run by hack/bench-bot.sh (BenchmarkBotProcess is
// declared first so that it runs first, while the in-process ones run on a
// control plane that has finished starting):
//
//   - BenchmarkIntake: signed deliveries through the real handler and the
//     real GitHub verifier (github.NewWebhooks), in-process, b.RunParallel,
//     unique delivery ids and bodies (benchVariant), no job run;
//   - BenchmarkHMACVerify: the bare HMAC-SHA256 verification of the same
//     payload, the limit of the intake;
//   - BenchmarkBotProcess: the gitops-bot binary (GITOPS_BOT_BIN) against
//     the GitHub fake, a real Git server and the test control plane: the
//     webhook-to-comment latency of a pull request touching 20 apps, the
//     delivery rate over loopback and the process's resident memory.
//
// None of them asserts on time; the figures are reported, and written to
// BENCH_BOT_OUT (key value lines) for the script. They live here, not in
// package bot, because they use the real GitHub verifier and the binary.

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubectl-gitops/kubectl-gitops/bot"
	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
	"github.com/kubectl-gitops/kubectl-gitops/internal/scm/github"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/bottest"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/gittest"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/scmtest/githubfake"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/scmtest/memforge"
)

const (
	benchSecret = "bench-webhook-secret-7f3a"
	benchApps   = 20
)

// benchPayload is a pull_request.synchronize delivery for acme/shop#7 at
// head: GitHub's own example payload (@octokit/webhooks-examples, about the
// size GitHub sends) with the identities rewritten.
func benchPayload(tb testing.TB, head string) []byte {
	tb.Helper()
	var ev map[string]any
	for _, ex := range githubfake.WebhookExamples(tb)["pull_request"] {
		var m map[string]any
		if json.Unmarshal(ex, &m) == nil && m["action"] == "synchronize" {
			ev = m
			break
		}
	}
	if ev == nil {
		ev = map[string]any{"pull_request": map[string]any{"head": map[string]any{}, "base": map[string]any{"ref": "main"}, "user": map[string]any{"login": "dev"}, "state": "open"}}
	}
	ev["action"] = "synchronize"
	ev["number"] = 7
	ev["installation"] = map[string]any{"id": 42}
	ev["sender"] = map[string]any{"login": "dev"}
	repo, _ := ev["repository"].(map[string]any)
	if repo == nil {
		repo = map[string]any{}
		ev["repository"] = repo
	}
	repo["id"], repo["name"], repo["full_name"] = 1001, "shop", "acme/shop"
	repo["owner"] = map[string]any{"login": "acme"}
	pr := ev["pull_request"].(map[string]any)
	pr["number"], pr["state"] = 7, "open"
	h, _ := pr["head"].(map[string]any)
	if h == nil {
		h = map[string]any{}
		pr["head"] = h
	}
	h["sha"], h["ref"] = head, "bump"
	if hr, ok := h["repo"].(map[string]any); ok {
		hr["id"], hr["name"], hr["full_name"] = 1001, "shop", "acme/shop"
		hr["fork"] = false
	}
	body, err := json.Marshal(ev)
	if err != nil {
		tb.Fatal(err)
	}
	return body
}

// benchVariant is body with a field the bot ignores set to seq: the intake
// dedupes on the verified body's hash too, so a load of one payload under
// new delivery ids would be short-cut as replays. Each variant is signed
// on its own, which adds one HMAC-SHA256 of the payload per delivery to
// the client side of the measure.
func benchVariant(body []byte, seq int64) []byte {
	out := make([]byte, 0, len(body)+32)
	out = append(out, body[:len(body)-1]...)
	out = append(out, `,"bench_seq":`...)
	out = strconv.AppendInt(out, seq, 10)
	return append(out, '}')
}

func benchApp(i int) string { return fmt.Sprintf("app-%02d", i) }

func benchConfigMap(ns string, i int, value string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: ConfigMap
metadata:
  name: %[1]s-settings
  namespace: %[2]s
  labels: {app.kubernetes.io/name: %[1]s}
data:
  LOG_LEVEL: info
  RELEASE: %[3]q
  config.yaml: |
    server:
      port: 8080
      timeout: 30s
    upstream: http://%[1]s-backend.%[2]s.svc:9000
`, benchApp(i), ns, value)
}

func benchFiles(ns string) map[string]string {
	var apps strings.Builder
	apps.WriteString("apiVersion: gitops.kubectl.dev/v1alpha1\nkind: Repository\napps:\n")
	files := map[string]string{}
	for i := range benchApps {
		a := benchApp(i)
		fmt.Fprintf(&apps, "  - {name: %s, path: apps/%s, namespace: %s, cluster: test}\n", a, a, ns)
		files["apps/"+a+"/config.yaml"] = benchConfigMap(ns, i, "r0")
		files["apps/"+a+"/deployment.yaml"] = fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
  namespace: %[2]s
  labels: {app.kubernetes.io/name: %[1]s}
spec:
  replicas: 2
  selector:
    matchLabels: {app.kubernetes.io/name: %[1]s}
  template:
    metadata:
      labels: {app.kubernetes.io/name: %[1]s}
    spec:
      containers:
      - name: app
        image: ghcr.io/example/%[1]s:1.4.0
        ports: [{name: http, containerPort: 8080}]
        envFrom: [{configMapRef: {name: %[1]s-settings}}]
        resources:
          requests: {cpu: 50m, memory: 64Mi}
          limits: {memory: 128Mi}
`, a, ns)
		files["apps/"+a+"/service.yaml"] = fmt.Sprintf(`apiVersion: v1
kind: Service
metadata:
  name: %[1]s
  namespace: %[2]s
  labels: {app.kubernetes.io/name: %[1]s}
spec:
  selector: {app.kubernetes.io/name: %[1]s}
  ports: [{name: http, port: 80, targetPort: http}]
`, a, ns)
	}
	files["gitops.yaml"] = apps.String()
	return files
}

// goMetrics reads metrics from the bot's /metrics, each summed over its
// labels.
func goMetrics(addr string, names ...string) map[string]float64 {
	out := map[string]float64{}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	for line := range strings.SplitSeq(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || strings.HasPrefix(line, "#") {
			continue
		}
		name, _, _ := strings.Cut(f[0], "{")
		if slices.Contains(names, name) {
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			out[name] += v // summed over the labels
		}
	}
	return out
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkBotProcess measures the gitops-bot binary, as deployed (a GitHub
// App), end to end; it runs once whatever b.N is. BENCH_BOT_PUSHES pushes
// (default 12), then BENCH_BOT_LOAD_SECONDS (default 5) of signed
// deliveries from BENCH_BOT_CLIENTS goroutines (default 16) over loopback.
func BenchmarkBotProcess(b *testing.B) {
	bin := os.Getenv("GITOPS_BOT_BIN")
	if bin == "" {
		b.Skip("GITOPS_BOT_BIN is not set: run hack/bench-bot.sh")
	}
	if b.N > 1 {
		b.Skip("runs once")
	}
	pushes := envInt("BENCH_BOT_PUSHES", 12)
	loadFor := time.Duration(envInt("BENCH_BOT_LOAD_SECONDS", 5)) * time.Second
	clients := envInt("BENCH_BOT_CLIENTS", 16)

	ns := env.Namespace(b)
	fake := githubfake.New(b)
	repo := gittest.NewRepo(b, benchFiles(ns))
	base := repo.Head(b)

	// The base runs in the cluster: applied once by kubectl-gitops.
	applyBase(b, repo.Dir)

	var changed []githubfake.File
	for i := range benchApps {
		changed = append(changed, githubfake.File{Filename: "apps/" + benchApp(i) + "/config.yaml", Status: "modified"})
	}
	push := func(k int) string {
		files := map[string]string{}
		for i := range benchApps {
			files["apps/"+benchApp(i)+"/config.yaml"] = benchConfigMap(ns, i, fmt.Sprintf("r%d", k))
		}
		return repo.Commit(b, files, fmt.Sprintf("release r%d", k))
	}
	head := push(1)
	git := gittest.Serve(b, map[string]*gittest.Repo{"acme/shop": repo},
		gittest.WithAuth(func(user, pass string) bool { return user == "x-access-token" && fake.ValidToken(pass) }))
	fake.CloneURL = func(string) string { return git.URL("acme/shop") }
	gitopsYAMLFile, err := os.ReadFile(filepath.Join(repo.Dir, "gitops.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	fake.AddRepo(&githubfake.Repo{
		Owner: "acme", Name: "shop", ID: 1001, Installation: 42,
		Files: map[string]map[string]string{base: {"gitops.yaml": string(gitopsYAMLFile)}},
		Pulls: map[int]*githubfake.Pull{7: {
			Number: 7, Title: "release", Author: "dev", State: "open",
			HeadSHA: head, HeadRef: "bump", BaseSHA: base, BaseRef: "main", Files: changed,
		}},
	})

	addr, pid := startBenchBot(b, bin, fake)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * clients, MaxConnsPerHost: 2 * clients}}
	var ids atomic.Int64
	deliver := func(body []byte, sig string) (int, error) {
		req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/webhooks/github", bytes.NewReader(body))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-GitHub-Event", "pull_request")
		req.Header.Set("X-GitHub-Delivery", "bench-"+strconv.FormatInt(ids.Add(1), 10))
		req.Header.Set("X-Hub-Signature-256", sig)
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	// comment returns the sticky comment's body and whether it is for sha.
	comment := func(sha string) bool {
		var ok bool
		fake.Update("acme/shop", func(r *githubfake.Repo) {
			cs := r.Pulls[7].Comments
			if len(cs) > 1 {
				b.Errorf("%d comments, want one sticky comment", len(cs))
			}
			ok = len(cs) == 1 && strings.Contains(cs[0].Body, "sha="+sha)
		})
		return ok
	}
	statusDone := func(sha string) bool {
		var st string
		fake.Update("acme/shop", func(r *githubfake.Repo) {
			for _, s := range r.Statuses {
				if s.SHA == sha && s.Context == bot.PreviewContext {
					st = s.State
				}
			}
		})
		return st == "success" || st == "failure" || st == "error"
	}
	// round delivers one push of sha and returns the time until its
	// comment is written.
	round := func(sha string) time.Duration {
		fake.Update("acme/shop", func(r *githubfake.Repo) { r.Pulls[7].HeadSHA = sha })
		body := benchPayload(b, sha)
		sig := githubfake.Sign([]byte(benchSecret), body)
		start := time.Now()
		code, err := deliver(body, sig)
		if err != nil || code != http.StatusAccepted {
			b.Fatalf("push %s: HTTP %d, %v", sha, code, err)
		}
		deadline := start.Add(2 * time.Minute)
		for !comment(sha) {
			if time.Now().After(deadline) {
				b.Fatalf("no comment for %s within 2 minutes", sha)
			}
			time.Sleep(2 * time.Millisecond)
		}
		took := time.Since(start)
		for !statusDone(sha) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		return took
	}

	b.ResetTimer()
	cold := round(head) // first preview: the comment is created
	var lat []time.Duration
	for k := range pushes {
		lat = append(lat, round(push(k+2))) // every push: the comment is edited
	}
	var body string
	fake.Update("acme/shop", func(r *githubfake.Repo) { body = r.Pulls[7].Comments[0].Body })
	for i := range benchApps {
		if !strings.Contains(body, "| "+benchApp(i)+" |") || !strings.Contains(body, "ConfigMap/"+ns+"/"+benchApp(i)+"-settings") {
			b.Fatalf("the last comment does not show the change of %s:\n%s", benchApp(i), body)
		}
	}
	hwmPreview, rssIdle, anonIdle := procKB(pid, "VmHWM"), procKB(pid, "VmRSS"), procKB(pid, "RssAnon")

	// Intake load: the head stays the last one, already previewed, so the
	// coalesced jobs find the comment current and stop after reading it.
	jobsBefore := goMetrics(addr, "gitops_bot_jobs_total")["gitops_bot_jobs_total"]
	lastHead := repo.Head(b)
	body2 := benchPayload(b, lastHead)
	sig := githubfake.Sign([]byte(benchSecret), body2)
	var ok, failed atomic.Int64
	var rssMax atomic.Int64
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if rss := procKB(pid, "VmRSS"); rss > rssMax.Load() {
					rssMax.Store(rss)
				}
			}
		}
	})
	var load sync.WaitGroup
	// Each delivery a distinct body (the bot also dedupes by body hash),
	// numbered by its own counter: ids numbers the delivery ids.
	var variants atomic.Int64
	loadStart := time.Now()
	until := loadStart.Add(loadFor)
	for range clients {
		load.Go(func() {
			for time.Now().Before(until) {
				v := benchVariant(body2, variants.Add(1))
				code, err := deliver(v, githubfake.Sign([]byte(benchSecret), v))
				if err == nil && code == http.StatusAccepted {
					ok.Add(1)
				} else {
					failed.Add(1)
				}
			}
		})
	}
	load.Wait()
	loadTook := time.Since(loadStart)
	close(stop)
	sampler.Wait()
	rssEnd, hwmEnd := procKB(pid, "VmRSS"), procKB(pid, "VmHWM")
	gm := goMetrics(addr, "go_memstats_heap_inuse_bytes", "go_memstats_sys_bytes", "gitops_bot_jobs_total")
	if failed.Load() > 0 {
		b.Errorf("%d deliveries were not accepted (of %d)", failed.Load(), ok.Load()+failed.Load())
	}
	rate := float64(ok.Load()) / loadTook.Seconds()

	// The limit, in this process, on the same payload: bare HMAC-SHA256
	// verification on every core, for as long.
	hsig := strings.TrimPrefix(sig, "sha256=")
	var verified atomic.Int64
	var hm sync.WaitGroup
	hStart := time.Now()
	hUntil := hStart.Add(loadFor / 2)
	for range runtime.GOMAXPROCS(0) {
		hm.Go(func() {
			n := int64(0)
			for time.Now().Before(hUntil) {
				for range 64 {
					if verifyHMAC(body2, hsig) {
						n++
					}
				}
			}
			verified.Add(n)
		})
	}
	hm.Wait()
	hmacRate := float64(verified.Load()) / time.Since(hStart).Seconds()
	b.StopTimer()

	millis := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }
	slices.Sort(lat)
	p50, p95 := ms(lat, 50), ms(lat, 95)
	writeFigures(b, map[string]float64{
		"pushes":               float64(len(lat)),
		"cold_ms":              millis(cold),
		"p50_ms":               p50,
		"p95_ms":               p95,
		"min_ms":               millis(lat[0]),
		"max_ms":               millis(lat[len(lat)-1]),
		"load_clients":         float64(clients),
		"load_seconds":         loadTook.Seconds(),
		"load_accepted":        float64(ok.Load()),
		"load_failed":          float64(failed.Load()),
		"load_jobs":            gm["gitops_bot_jobs_total"] - jobsBefore,
		"intake_process_per_s": rate,
		"hmac_process_per_s":   hmacRate,
		"payload_bytes":        float64(len(body2)),
		"rss_idle_mb":          mb(rssIdle),
		"hwm_previews_mb":      mb(hwmPreview),
		"rss_load_max_mb":      mb(rssMax.Load()),
		"rss_end_mb":           mb(rssEnd),
		"hwm_end_mb":           mb(hwmEnd),
		"rss_anon_idle_mb":     mb(anonIdle),
		"rss_anon_end_mb":      mb(procKB(pid, "RssAnon")),
		"rss_file_end_mb":      mb(procKB(pid, "RssFile")),
		"go_heap_inuse_mb":     gm["go_memstats_heap_inuse_bytes"] / (1 << 20),
		"go_sys_mb":            gm["go_memstats_sys_bytes"] / (1 << 20),
	})
	b.ReportMetric(p50, "p50-ms")
	b.ReportMetric(p95, "p95-ms")
	b.ReportMetric(rate, "deliveries/s")
	b.ReportMetric(hmacRate, "hmac-verifies/s")
	b.ReportMetric(mb(hwmEnd), "VmHWM-MB")
}

// startBenchBot runs the gitops-bot binary as TestBotPreviewEndToEnd does,
// its log to a file, and returns its address and pid.
func startBenchBot(b *testing.B, bin string, fake *githubfake.Server) (string, int) {
	b.Helper()
	opts := bottest.Options{Binary: bin, WebhookSecret: benchSecret, Repository: "acme/shop", Kubeconfig: env.Kubeconfig,
		ColdStart: os.Getenv("BENCH_BOT_COLD") == "1"}
	if path := os.Getenv("BENCH_BOT_LOG"); path != "" {
		logs, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { logs.Close() })
		opts.Logs = logs
	}
	proc := bottest.Start(b, fake, opts)
	return proc.Addr, proc.Pid
}

// discardWriter is an http.ResponseWriter that keeps nothing.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}

// BenchmarkIntake serves signed pull_request deliveries, each with its own
// delivery id, through Handler: read, verify (HMAC-SHA256), parse,
// allowlist, dedupe, enqueue (coalesced: the workers are not running, so
// the job is a no-op).
func BenchmarkIntake(b *testing.B) {
	body := benchPayload(b, strings.Repeat("a", 40))
	parser, err := github.NewWebhooks([]byte(benchSecret))
	if err != nil {
		b.Fatal(err)
	}
	cfg := bot.Config{GitHub: &bot.GitHubConfig{
		Token:         bot.NewSecret("unused"),
		WebhookSecret: bot.NewSecret(benchSecret),
		Repositories:  []string{"acme/shop"},
	}}
	bt, err := bot.New(cfg, bot.Deps{
		Parsers:   map[scm.Kind]scm.WebhookParser{scm.GitHub: parser},
		Forges:    map[scm.Kind]scm.Forges{scm.GitHub: memforge.New()},
		Previewer: bot.NewPreviewer(cfg),
	})
	if err != nil {
		b.Fatal(err)
	}
	h := bt.Handler()
	var ids atomic.Int64
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		w := &discardWriter{h: http.Header{}}
		for pb.Next() {
			id := ids.Add(1)
			v := benchVariant(body, id)
			r := httptest.NewRequest(http.MethodPost, "/webhooks/github", bytes.NewReader(v))
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("X-GitHub-Event", "pull_request")
			r.Header.Set("X-GitHub-Delivery", "d-"+strconv.FormatInt(id, 10))
			r.Header.Set("X-Hub-Signature-256", githubfake.Sign([]byte(benchSecret), v))
			clear(w.h)
			h.ServeHTTP(w, r)
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	// Every delivery must have been accepted, not short-cut as a duplicate.
	if got := metricValue(b, bt, `result="accepted"`); got != float64(ids.Load()) {
		b.Fatalf("%v of %d deliveries accepted", got, ids.Load())
	}
	rate := float64(ids.Load()) / elapsed.Seconds()
	b.ReportMetric(rate, "deliveries/s")
	writeFigures(b, map[string]float64{"intake_inproc_per_s": rate, "payload_bytes": float64(len(body))})
}

// metricValue sums the gitops_bot_webhooks_total series matching label.
func metricValue(tb testing.TB, bt *bot.Bot, label string) float64 {
	tb.Helper()
	var sum float64
	for line := range strings.SplitSeq(scrapeBot(tb, bt), "\n") {
		if strings.HasPrefix(line, "gitops_bot_webhooks_total{") && strings.Contains(line, label) {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			sum += v
		}
	}
	return sum
}

// BenchmarkHMACVerify is the bare verification of the same payload: decode
// the hex signature, HMAC-SHA256 the body, compare in constant time.
func BenchmarkHMACVerify(b *testing.B) {
	body := benchPayload(b, strings.Repeat("a", 40))
	sig := strings.TrimPrefix(githubfake.Sign([]byte(benchSecret), body), "sha256=")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var n atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !verifyHMAC(body, sig) {
				b.Error("signature did not verify")
			}
			n.Add(1)
		}
	})
	rate := float64(n.Load()) / time.Since(start).Seconds()
	b.ReportMetric(rate, "verifies/s")
	writeFigures(b, map[string]float64{"hmac_inproc_per_s": rate})
}

func verifyHMAC(body []byte, sig string) bool {
	got, err := hex.DecodeString(sig)
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, []byte(benchSecret))
	m.Write(body)
	return hmac.Equal(got, m.Sum(nil))
}
