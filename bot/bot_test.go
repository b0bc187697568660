package bot

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/scmtest/memforge"
)

const canary = "canary-webhook-secret-5f2a"

// fakeParser verifies an HMAC-SHA256 of the body in X-Test-Signature and
// parses a small JSON payload into an scm.Event. Like GitHub's, it takes
// the JSON in a form's payload field too, unless mediaTypes says JSON only.
type fakeParser struct {
	secret     string
	mediaTypes []string
	mu         sync.Mutex
	verify     int
	parse      int
}

func (p *fakeParser) MediaTypes() []string {
	if p.mediaTypes != nil {
		return p.mediaTypes
	}
	return []string{"application/json", "application/x-www-form-urlencoded"}
}

type fakePayload struct {
	Kind    scm.EventKind `json:"kind"`
	Action  string        `json:"action"`
	Repo    string        `json:"repo"`
	PR      int           `json:"pr"`
	SHA     string        `json:"sha"`
	Comment string        `json:"comment"`
	Sender  string        `json:"sender"`
}

func sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func (p *fakeParser) Verify(h http.Header, body []byte) error {
	p.mu.Lock()
	p.verify++
	p.mu.Unlock()
	if !hmac.Equal([]byte(h.Get("X-Test-Signature")), []byte(sign(p.secret, body))) {
		return scm.ErrBadSignature
	}
	return nil
}

func (p *fakeParser) Parse(h http.Header, body []byte) (*scm.Event, error) {
	p.mu.Lock()
	p.parse++
	p.mu.Unlock()
	if h.Get("Content-Type") == "application/x-www-form-urlencoded" {
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, err
		}
		body = []byte(form.Get("payload"))
	}
	var in fakePayload
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, err
	}
	ev := &scm.Event{
		Kind:       in.Kind,
		Action:     in.Action,
		DeliveryID: h.Get("X-Test-Delivery"),
		Repo:       scm.RepoRef{Kind: scm.GitHub, FullName: in.Repo},
		HeadSHA:    in.SHA,
		Sender:     in.Sender,
	}
	if in.PR != 0 {
		ev.PR = &scm.PRRef{Repo: ev.Repo, Number: in.PR}
	}
	if in.Comment != "" {
		ev.Comment = &scm.Comment{Author: in.Sender, Body: in.Comment}
	}
	return ev, nil
}

// previewFunc is a PreviewRunner of a function.
type previewFunc func(ctx context.Context, forge PreviewForge, pr *scm.PullRequest, t Trigger) error

func (f previewFunc) Preview(ctx context.Context, forge PreviewForge, pr *scm.PullRequest, t Trigger) error {
	return f(ctx, forge, pr, t)
}

// noPreview is the previewer of bots whose jobs never run.
var noPreview = previewFunc(func(context.Context, PreviewForge, *scm.PullRequest, Trigger) error { return nil })

// call is one Preview invocation.
type call struct {
	pr      scm.PullRequest
	trigger Trigger
}

// harness is a Bot with fakes, valid by default; tests change one field.
type harness struct {
	t      *testing.T
	cfg    Config
	parser *fakeParser
	// forge holds every pull request, open by default; alice may write.
	forge *memforge.Forge
	logs  *bytes.Buffer
	// previewer does the jobs; nil records each call and runs work.
	previewer PreviewRunner
	// approver sets the approval gate; nil leaves it off.
	approver ApprovalRunner
	// deliveries keeps the deliveries handled; nil: in memory.
	deliveries RecordStore
	work       func(ctx context.Context, pr scm.PRRef, t Trigger) error
	now        func() time.Time
	metrics    *Metrics

	mu    sync.Mutex
	calls []call
	bot   *Bot
	addr  string // where start serves
	stop  func() error
}

func testConfig() Config {
	return Config{
		Listen: "127.0.0.1:0",
		GitHub: &GitHubConfig{
			Token:         NewSecret("canary-token-9c1e"),
			WebhookSecret: NewSecret(canary),
			Repositories:  []string{"acme/*", "!acme/secret", "other/app"},
		},
	}
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	forge := memforge.New()
	forge.OpenByDefault = true
	forge.SetPermission("alice", scm.PermissionWrite)
	return &harness{t: t, cfg: testConfig(), parser: &fakeParser{secret: canary}, forge: forge, logs: &bytes.Buffer{}}
}

// lockedWriter keeps concurrent log writes from racing on the buffer.
type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (h *harness) build() *Bot {
	h.t.Helper()
	if h.bot != nil {
		return h.bot
	}
	logger := slog.New(slog.NewJSONHandler(lockedWriter{mu: &h.mu, w: h.logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	previewer := h.previewer
	if previewer == nil {
		previewer = previewFunc(h.record)
	}
	b, err := New(h.cfg, Deps{
		Logger:     logger,
		Parsers:    map[scm.Kind]scm.WebhookParser{scm.GitHub: h.parser},
		Forges:     map[scm.Kind]scm.Forges{scm.GitHub: h.forge},
		Previewer:  previewer,
		Approver:   h.approver,
		Now:        h.now,
		Deliveries: h.deliveries,
		Metrics:    h.metrics,
	})
	if err != nil {
		h.t.Fatalf("New: %v", err)
	}
	h.bot = b
	return b
}

func (h *harness) record(ctx context.Context, _ PreviewForge, pr *scm.PullRequest, t Trigger) error {
	h.mu.Lock()
	h.calls = append(h.calls, call{*pr, t})
	h.mu.Unlock()
	if h.work != nil {
		return h.work(ctx, pr.Ref, t)
	}
	return nil
}

// start runs the bot until the test ends (or stop is called) and returns
// stop, which cancels Run and returns its error. Run returns within its
// shutdown bound whatever the jobs do; the test's timeout guards a hang.
func (h *harness) start() (stop func() error) {
	h.t.Helper()
	b := h.build()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		h.t.Fatal(err)
	}
	h.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(h.t.Context())
	done := make(chan error, 1)
	go func() { done <- b.Serve(ctx, ln) }()
	waitFor(h.t, "ready", b.ready.Load)
	var once sync.Once
	var runErr error
	h.stop = func() error {
		once.Do(func() {
			cancel()
			runErr = <-done
		})
		return runErr
	}
	h.t.Cleanup(func() { _ = h.stop() })
	return h.stop
}

// quiesce waits until no job is queued or running, then stops the bot: no
// job can run after, so what the test counts next is final.
func (h *harness) quiesce() {
	h.t.Helper()
	waitFor(h.t, "an idle queue", func() bool {
		q := h.bot.queue
		q.mu.Lock()
		defer q.mu.Unlock()
		return len(q.pending) == 0 && len(q.running) == 0
	})
	if err := h.stop(); err != nil {
		h.t.Fatalf("Run returned %v", err)
	}
}

func (h *harness) callsSnapshot() []call {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]call(nil), h.calls...)
}

func (h *harness) logText() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.logs.String()
}

func payload(p fakePayload) []byte {
	b, _ := json.Marshal(p)
	return b
}

func prPayload(repo string, n int, sha string) []byte {
	return payload(fakePayload{Kind: scm.EventPullRequest, Action: "synchronize", Repo: repo, PR: n, SHA: sha, Sender: "alice"})
}

// deliver posts a signed delivery to the GitHub route.
func (h *harness) deliver(body []byte, delivery string) *httptest.ResponseRecorder {
	h.t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/webhooks/github", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Test-Signature", sign(canary, body))
	if delivery != "" {
		req.Header.Set("X-Test-Delivery", delivery)
	}
	rec := httptest.NewRecorder()
	h.build().Handler().ServeHTTP(rec, req)
	return rec
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (b *Bot) queued() int {
	b.queue.mu.Lock()
	defer b.queue.mu.Unlock()
	return len(b.queue.pending)
}

func TestSignedDeliveryRunsJobOnce(t *testing.T) {
	h := newHarness(t)
	h.start()
	rec := h.deliver(prPayload("acme/app", 7, "sha1"), "d-1")
	if rec.Code != http.StatusAccepted {
		t.Fatalf("status = %d, want 202", rec.Code)
	}
	waitFor(t, "job", func() bool { return len(h.callsSnapshot()) == 1 })
	h.quiesce()
	calls := h.callsSnapshot()
	if len(calls) != 1 {
		t.Fatalf("job ran %d times, want 1", len(calls))
	}
	want := scm.PRRef{Repo: scm.RepoRef{Kind: scm.GitHub, FullName: "acme/app"}, Number: 7}
	if calls[0].pr.Ref != want || calls[0].trigger.Reason != ReasonWebhook || calls[0].trigger.HeadSHA != "sha1" {
		t.Fatalf("call = %+v", calls[0])
	}
}

// TestJobReadsThePullRequestOnce: the job reads the pull request when it
// runs, once, and hands the previewer what the forge says, not what the
// delivery said.
func TestJobReadsThePullRequestOnce(t *testing.T) {
	h := newHarness(t)
	ref := scm.PRRef{Repo: scm.RepoRef{Kind: scm.GitHub, FullName: "acme/app"}, Number: 7}
	h.forge.AddPull(scm.PullRequest{Ref: ref, HeadSHA: "now", Fork: true})
	h.start()
	h.deliver(prPayload("acme/app", 7, "then"), "d-1")
	waitFor(t, "job", func() bool { return len(h.callsSnapshot()) == 1 })
	h.quiesce()
	want := scm.PullRequest{Ref: ref, State: "open", HeadSHA: "now", Fork: true}
	if diff := cmp.Diff(want, h.callsSnapshot()[0].pr); diff != "" {
		t.Errorf("the previewer got (-want +got):\n%s", diff)
	}
	if n := len(h.forge.Calls("GetPullRequest")); n != 1 {
		t.Errorf("the pull request was read %d times, want once", n)
	}
}

func TestBadSignatureRejected(t *testing.T) {
	h := newHarness(t)
	b := h.build()
	body := prPayload("acme/app", 7, "sha1")
	req := httptest.NewRequest(http.MethodPost, "/webhooks/github", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Test-Signature", sign("wrong", body))
	rec := httptest.NewRecorder()
	b.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("status = %d, want 401", rec.Code)
	}
	if rec.Body.Len() != 0 {
		t.Errorf("401 body = %q, want empty", rec.Body.String())
	}
	if h.parser.parse != 0 || b.queued() != 0 {
		t.Errorf("parsed %d times, queued %d; want nothing", h.parser.parse, b.queued())
	}
	if !strings.Contains(scrape(t, b), `gitops_bot_webhooks_total{event="unknown",provider="github",result="bad_signature"} 1`) {
		t.Errorf("metrics lack the bad_signature count")
	}
}

func TestNewRefusesMissingWebhookSecret(t *testing.T) {
	for name, mutate := range map[string]func(*Config){
		"github": func(c *Config) { c.GitHub.WebhookSecret = Secret{} },
		"gitlab": func(c *Config) { c.GitLab = &GitLabConfig{Token: NewSecret("t")} },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig()
			mutate(&cfg)
			_, err := New(cfg, Deps{
				Parsers:   map[scm.Kind]scm.WebhookParser{scm.GitHub: &fakeParser{}, scm.GitLab: &fakeParser{}},
				Forges:    map[scm.Kind]scm.Forges{scm.GitHub: memforge.New(), scm.GitLab: memforge.New()},
				Previewer: noPreview,
			})
			if err == nil || !strings.Contains(err.Error(), "webhookSecret is empty") {
				t.Fatalf("New error = %v, want a refusal naming webhookSecret", err)
			}
		})
	}
}

func TestNewRefusesMissingParser(t *testing.T) {
	_, err := New(testConfig(), Deps{Previewer: noPreview})
	if err == nil {
		t.Fatal("New accepted a configured forge without a parser")
	}
}

// countingReader yields n bytes of '{' and counts what was read.
type countingReader struct {
	n, read int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.read >= c.n {
		return 0, io.EOF
	}
	k := min(int64(len(p)), c.n-c.read)
	for i := range k {
		p[i] = '{'
	}
	c.read += k
	return int(k), nil
}

func TestOversizedBody(t *testing.T) {
	h := newHarness(t)
	b := h.build()
	body := &countingReader{n: 64 << 20}
	req := httptest.NewRequest(http.MethodPost, "/webhooks/github", body)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Test-Signature", "sha256=00")
	rec := httptest.NewRecorder()
	b.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status = %d, want 413", rec.Code)
	}
	if body.read > DefaultMaxBodyBytes+1 {
		t.Errorf("handler read %d bytes, limit is %d", body.read, DefaultMaxBodyBytes)
	}
	if h.parser.verify != 0 || b.queued() != 0 {
		t.Errorf("verify ran %d times, queued %d; want nothing", h.parser.verify, b.queued())
	}
}

func TestBodyAtLimitIsRead(t *testing.T) {
	h := newHarness(t)
	// Exactly the limit: read fully and verified (and refused: a bad signature).
	body := bytes.Repeat([]byte(" "), int(DefaultMaxBodyBytes))
	req := httptest.NewRequest(http.MethodPost, "/webhooks/github", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.build().Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("status = %d, want 401", rec.Code)
	}
}

func TestContentTypeAndMethod(t *testing.T) {
	h := newHarness(t)
	b := h.build()
	for _, tc := range []struct {
		method, ctype string
		want          int
	}{
		{http.MethodPost, "text/plain", http.StatusUnsupportedMediaType},
		{http.MethodPost, "", http.StatusUnsupportedMediaType},
		{http.MethodPost, "application/xml", http.StatusUnsupportedMediaType},
		{http.MethodGet, "application/json", http.StatusMethodNotAllowed},
		{http.MethodPut, "application/json", http.StatusMethodNotAllowed},
	} {
		body := prPayload("acme/app", 1, "s")
		req := httptest.NewRequest(tc.method, "/webhooks/github", bytes.NewReader(body))
		req.Header.Set("Content-Type", tc.ctype)
		req.Header.Set("X-Test-Signature", sign(canary, body))
		rec := httptest.NewRecorder()
		b.Handler().ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s %q: status = %d, want %d", tc.method, tc.ctype, rec.Code, tc.want)
		}
	}
	if h.parser.verify != 0 || b.queued() != 0 {
		t.Errorf("verify ran %d times, queued %d; want nothing", h.parser.verify, b.queued())
	}
}

func TestGitHubFormEncodedPayload(t *testing.T) {
	h := newHarness(t)
	b := h.build()
	body := []byte("payload=" + url.QueryEscape(string(prPayload("acme/app", 3, "s"))))
	req := httptest.NewRequest(http.MethodPost, "/webhooks/github", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Test-Signature", sign(canary, body)) // over the raw form body
	rec := httptest.NewRecorder()
	b.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusAccepted || b.queued() != 1 {
		t.Fatalf("status = %d, queued %d; want 202 and 1", rec.Code, b.queued())
	}
}

func TestUninterestingEvents(t *testing.T) {
	h := newHarness(t)
	b := h.build()
	for _, p := range []fakePayload{
		{Kind: scm.EventUninteresting, Repo: "acme/app"},
		{Kind: scm.EventPush, Repo: "acme/app"},
		{Kind: scm.EventPing, Repo: "acme/app"},
		{Kind: scm.EventPullRequest, Action: "labeled", Repo: "acme/app", PR: 1},
		{Kind: scm.EventComment, Action: "created", Repo: "acme/app", PR: 1, Comment: "looks good\n/gitops preview"},
		{Kind: scm.EventComment, Action: "edited", Repo: "acme/app", PR: 1, Comment: "/gitops preview"},
		{Kind: scm.EventComment, Action: "created", Repo: "acme/app", PR: 1, Comment: "/gitops apply"},
	} {
		rec := h.deliver(payload(p), "")
		if rec.Code < 200 || rec.Code > 299 {
			t.Errorf("%+v: status = %d, want 2xx", p, rec.Code)
		}
	}
	if b.queued() != 0 {
		t.Errorf("queued %d jobs, want 0", b.queued())
	}
}

func TestDuplicateDeliveryProcessedOnce(t *testing.T) {
	h := newHarness(t)
	h.start()
	first := h.deliver(prPayload("acme/app", 7, "sha1"), "same-id")
	waitFor(t, "first job", func() bool { return len(h.callsSnapshot()) == 1 })
	second := h.deliver(prPayload("acme/app", 7, "sha1"), "same-id")
	if first.Code != http.StatusAccepted || second.Code != http.StatusOK || strings.TrimSpace(second.Body.String()) != "duplicate" {
		t.Fatalf("statuses = %d, %d %q; want 202, 200 duplicate", first.Code, second.Code, second.Body.String())
	}
	h.quiesce()
	if n := len(h.callsSnapshot()); n != 1 {
		t.Fatalf("job ran %d times, want 1", n)
	}
}

func TestNotAllowlistedIgnored(t *testing.T) {
	h := newHarness(t)
	b := h.build()
	for _, repo := range []string{"evil/app", "acme/secret", "other/app2"} {
		rec := h.deliver(prPayload(repo, 1, "s"), "")
		if rec.Code != http.StatusAccepted || strings.TrimSpace(rec.Body.String()) != resultNotAllowed {
			t.Errorf("%s: %d %q, want 202 %s", repo, rec.Code, rec.Body.String(), resultNotAllowed)
		}
	}
	if b.queued() != 0 {
		t.Errorf("queued %d jobs, want 0", b.queued())
	}
}

func TestAllowlist(t *testing.T) {
	patterns := []string{"acme/*", "!acme/secret", "Team/App", "group/sub/*"}
	for name, want := range map[string]bool{
		"acme/app":      true,
		"acme/secret":   false,
		"team/app":      true,
		"team/app2":     false,
		"group/sub/x/y": true,
		"group/other":   false,
		"acmex/app":     false,
		"ACME/Other":    true,
	} {
		if got := allowlisted(patterns, name); got != want {
			t.Errorf("allowlisted(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestCoalescingPerPR(t *testing.T) {
	h := newHarness(t)
	var (
		mu               sync.Mutex
		running, maxSeen int
	)
	release := make(chan struct{})
	h.work = func(ctx context.Context, pr scm.PRRef, tr Trigger) error {
		mu.Lock()
		running++
		maxSeen = max(maxSeen, running)
		mu.Unlock()
		defer func() { mu.Lock(); running--; mu.Unlock() }()
		if tr.HeadSHA == "sha0" {
			<-release
		}
		return nil
	}
	h.start()
	h.deliver(prPayload("acme/app", 9, "sha0"), "d0")
	waitFor(t, "first job running", func() bool { return len(h.callsSnapshot()) == 1 })

	var wg sync.WaitGroup
	for i := 1; i <= 100; i++ {
		wg.Go(func() {
			rec := h.deliver(prPayload("acme/app", 9, fmt.Sprintf("sha%d", i)), fmt.Sprintf("d%d", i))
			if rec.Code != http.StatusAccepted {
				t.Errorf("delivery %d: status %d", i, rec.Code)
			}
		})
	}
	wg.Wait()
	h.deliver(prPayload("acme/app", 9, "final"), "d-final")
	close(release)
	waitFor(t, "final job", func() bool {
		c := h.callsSnapshot()
		return c[len(c)-1].trigger.HeadSHA == "final"
	})
	h.quiesce()
	calls := h.callsSnapshot()
	if len(calls) != 2 {
		t.Errorf("jobs ran %d times, want 2 (the running one, then the newest)", len(calls))
	}
	if last := calls[len(calls)-1].trigger.HeadSHA; last != "final" {
		t.Errorf("last job ran for %s, want final", last)
	}
	mu.Lock()
	defer mu.Unlock()
	if maxSeen != 1 {
		t.Errorf("%d jobs ran at once for one PR, want 1", maxSeen)
	}
}

func TestDifferentPRsRunConcurrently(t *testing.T) {
	h := newHarness(t)
	h.cfg.Workers = 2
	// Each job waits for the other to start: one at a time, neither
	// finishes (until the bot stops).
	var started atomic.Int32
	both := make(chan struct{})
	h.work = func(ctx context.Context, pr scm.PRRef, tr Trigger) error {
		if started.Add(1) == 2 {
			close(both)
		}
		select {
		case <-both:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	h.start()
	h.deliver(prPayload("acme/app", 1, "a"), "")
	h.deliver(prPayload("acme/app", 2, "b"), "")
	waitFor(t, "two jobs done", func() bool {
		return strings.Contains(scrape(t, h.bot), `gitops_bot_jobs_total{result="success"} 2`)
	})
}

func TestJobTimeout(t *testing.T) {
	h := newHarness(t)
	h.cfg.JobTimeout = 50 * time.Millisecond
	got := make(chan error, 1)
	h.work = func(ctx context.Context, pr scm.PRRef, tr Trigger) error {
		<-ctx.Done()
		got <- ctx.Err()
		return ctx.Err()
	}
	h.start()
	h.deliver(prPayload("acme/app", 1, "a"), "")
	if err := <-got; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("job context ended with %v, want DeadlineExceeded", err)
	}
	waitFor(t, "timeout metric", func() bool {
		return strings.Contains(scrape(t, h.bot), `gitops_bot_jobs_total{result="timeout"} 1`)
	})
}

func TestShutdownCancelsRunningJobs(t *testing.T) {
	h := newHarness(t)
	h.cfg.Workers = 1
	started := make(chan struct{})
	got := make(chan error, 2)
	h.work = func(ctx context.Context, pr scm.PRRef, tr Trigger) error {
		if tr.HeadSHA == "a" {
			close(started)
		}
		<-ctx.Done()
		got <- ctx.Err()
		return ctx.Err()
	}
	stop := h.start()
	h.deliver(prPayload("acme/app", 1, "a"), "")
	<-started
	h.deliver(prPayload("acme/app", 2, "queued"), "") // queued behind the single worker
	// The job never ends on its own: Run returning without an error means
	// it was cancelled, not waited for until the shutdown bound.
	if err := stop(); err != nil {
		t.Fatalf("Run returned %v", err)
	}
	if err := <-got; !errors.Is(err, context.Canceled) {
		t.Errorf("running job ended with %v, want Canceled", err)
	}
	for _, c := range h.callsSnapshot() {
		if c.trigger.HeadSHA == "queued" {
			t.Error("a queued job ran during shutdown")
		}
	}
	rec := httptest.NewRecorder()
	h.bot.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("readyz after shutdown = %d, want 503", rec.Code)
	}
}

func TestRateLimitRequeuesAfterReset(t *testing.T) {
	h := newHarness(t)
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	h.now = func() time.Time { return now }
	h.work = func(ctx context.Context, pr scm.PRRef, tr Trigger) error {
		if len(h.callsSnapshot()) == 1 {
			return fmt.Errorf("list comments: %w", &scm.RateLimitError{Reset: now.Add(150 * time.Second)})
		}
		return nil
	}
	// The wait is the test's to end.
	waits := make(chan time.Duration, 1)
	reset := make(chan time.Time)
	h.build().after = func(d time.Duration) <-chan time.Time {
		waits <- d
		return reset
	}
	h.start()
	h.deliver(prPayload("acme/app", 1, "a"), "")
	if d := <-waits; d != 150*time.Second {
		t.Errorf("the job waits %s, want the 150s until the reset", d)
	}
	waitFor(t, "the wait counted", func() bool {
		return strings.Contains(scrape(t, h.bot), "gitops_bot_rate_limit_waits_total 1")
	})
	if n := len(h.callsSnapshot()); n != 1 {
		t.Fatalf("the job ran %d times before the reset, want once", n)
	}
	reset <- now.Add(150 * time.Second)
	waitFor(t, "retry", func() bool { return len(h.callsSnapshot()) == 2 })
}

func TestRateLimitRetriesAreBounded(t *testing.T) {
	h := newHarness(t)
	h.work = func(ctx context.Context, pr scm.PRRef, tr Trigger) error {
		return &scm.RateLimitError{Reset: time.Now()}
	}
	h.start()
	h.deliver(prPayload("acme/app", 1, "a"), "")
	want := fmt.Sprintf(`gitops_bot_jobs_total{result="rate_limited"} %d`, maxRateLimitRetries+1)
	waitFor(t, "retries", func() bool { return strings.Contains(scrape(t, h.bot), want) })
	h.quiesce()
	if n := len(h.callsSnapshot()); n != maxRateLimitRetries+1 {
		t.Errorf("job ran %d times, want %d", n, maxRateLimitRetries+1)
	}
}

func TestCommands(t *testing.T) {
	for _, tc := range []struct {
		body string
		cmd  string
		args []string
		ok   bool
	}{
		{"/gitops preview", CommandPreview, nil, true},
		{"  /gitops   preview  \nplease", CommandPreview, nil, true},
		{"/gitops plan", CommandPreview, nil, true},
		{"/gitops help", CommandHelp, nil, true},
		{"/gitops", CommandHelp, nil, true},
		{"/gitops sync", CommandSync, nil, true},
		{"/gitops sync web api", CommandSync, []string{"web", "api"}, true},
		{"/gitops unlock web", CommandUnlock, []string{"web"}, true},
		{"/gitops unhold", CommandUnhold, []string{}, true},
		{"/gitops unhold web api", CommandUnhold, []string{"web", "api"}, true},
		{"/gitops unhold Web!", "", nil, false},
		{"/gitops sync ../web", "", nil, false},
		{"/gitops sync Web", "", nil, false},
		{"/gitops sync " + strings.Repeat("a ", maxCommandApps+1), "", nil, false},
		{"/gitops preview now", "", nil, false},
		{"/gitops plan web", "", nil, false},
		{"/gitops apply", "", nil, false},
		{"please /gitops preview", "", nil, false},
		{"hello\n/gitops preview", "", nil, false},
		{"/gitopspreview", "", nil, false},
	} {
		cmd, args, ok := ParseCommand(tc.body)
		if cmd != tc.cmd || ok != tc.ok || !slices.Equal(args, tc.args) {
			t.Errorf("ParseCommand(%q) = %q, %q, %v; want %q, %q, %v", tc.body, cmd, args, ok, tc.cmd, tc.args, tc.ok)
		}
	}
}

func comment(body, sender string) []byte {
	return payload(fakePayload{Kind: scm.EventComment, Action: "created", Repo: "acme/app", PR: 4, Comment: body, Sender: sender})
}

func TestPreviewCommandChecksPermissionInJob(t *testing.T) {
	h := newHarness(t)
	h.forge.SetPermission("mallory", scm.PermissionRead)
	h.start()
	rec := h.deliver(comment("/gitops preview", "mallory"), "c1")
	if rec.Code != http.StatusAccepted {
		t.Fatalf("status = %d, want 202 (permission is checked in the job)", rec.Code)
	}
	waitFor(t, "skipped job", func() bool {
		return strings.Contains(scrape(t, h.bot), `gitops_bot_jobs_total{result="skipped"} 1`)
	})
	if n := len(h.callsSnapshot()); n != 0 {
		t.Errorf("preview ran %d times for a reader", n)
	}
	want := []memforge.Call{{Method: "Permission", Target: "github:acme/app", Arg: "mallory"}}
	if diff := cmp.Diff(want, h.forge.Calls("Permission")); diff != "" {
		t.Errorf("permission checks (-want +got):\n%s", diff)
	}
}

func TestPreviewCommandRunsForWriter(t *testing.T) {
	h := newHarness(t)
	h.start()
	h.deliver(comment("/gitops preview", "alice"), "c1")
	waitFor(t, "preview", func() bool { return len(h.callsSnapshot()) == 1 })
	if tr := h.callsSnapshot()[0].trigger; tr.Reason != ReasonComment || tr.Command != CommandPreview || tr.Sender != "alice" {
		t.Errorf("trigger = %+v", tr)
	}
}

func TestHelpCommandComments(t *testing.T) {
	h := newHarness(t)
	h.start()
	h.deliver(comment("/gitops help", "alice"), "c1")
	ref := scm.PRRef{Repo: scm.RepoRef{Kind: scm.GitHub, FullName: "acme/app"}, Number: 4}
	waitFor(t, "help comment", func() bool { return len(h.forge.Comments(ref)) == 1 })
	if n := len(h.callsSnapshot()); n != 0 {
		t.Errorf("help ran the preview %d times", n)
	}
	if c := h.forge.Comments(ref)[0]; !strings.Contains(c.Body, "/gitops preview") {
		t.Errorf("help comment = %q", c.Body)
	}
}

// TestJobLeavesForksToThePreviewer: whatever allowForks says, the job
// hands a fork to the previewer, the one place that decides about forks.
func TestJobLeavesForksToThePreviewer(t *testing.T) {
	for _, allow := range []bool{false, true} {
		t.Run(fmt.Sprint(allow), func(t *testing.T) {
			h := newHarness(t)
			h.cfg.AllowForks = allow
			h.forge.AddPull(scm.PullRequest{Ref: scm.PRRef{Repo: scm.RepoRef{Kind: scm.GitHub, FullName: "acme/app"}, Number: 1}, Fork: true})
			h.start()
			h.deliver(prPayload("acme/app", 1, "a"), "")
			want := `gitops_bot_jobs_total{result="success"} 1`
			waitFor(t, want, func() bool { return strings.Contains(scrape(t, h.bot), want) })
			if calls := h.callsSnapshot(); len(calls) != 1 || !calls[0].pr.Fork {
				t.Errorf("the previewer got %+v with allowForks=%v, want the fork once", calls, allow)
			}
		})
	}
}

// TestForkGetsTheNoteWhenForksAreOff runs the job with the real previewer,
// forks off: the pull request gets the note saying why it has no preview,
// and nothing of the fork is read.
func TestForkGetsTheNoteWhenForksAreOff(t *testing.T) {
	h := newHarness(t)
	ref := scm.PRRef{Repo: scm.RepoRef{Kind: scm.GitHub, FullName: "acme/app"}, Number: 1}
	h.forge.AddPull(scm.PullRequest{Ref: ref, HeadSHA: "a", BaseSHA: "b", Fork: true, HeadCloneURL: "http://127.0.0.1:1/mallory/app"})
	h.previewer = NewPreviewer(h.cfg)
	h.start()
	h.deliver(prPayload("acme/app", 1, "a"), "")
	want := `gitops_bot_jobs_total{result="success"} 1`
	waitFor(t, want, func() bool { return strings.Contains(scrape(t, h.bot), want) })

	comments := h.forge.Comments(ref)
	if len(comments) != 1 || comments[0].Author != memforge.DefaultLogin {
		t.Fatalf("comments %+v, want the bot's one", comments)
	}
	if body := comments[0].Body; !strings.HasPrefix(body, previewMarker("a")) || !strings.Contains(body, "comes from a fork; previews of forks are off") {
		t.Errorf("the comment does not say forks are off:\n%s", body)
	}
	var states []scm.StatusState
	for _, st := range h.forge.Statuses() {
		states = append(states, st.State)
	}
	if diff := cmp.Diff([]scm.StatusState{scm.StatusPending, scm.StatusSuccess}, states); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
	if st := h.forge.Statuses(); !strings.Contains(st[len(st)-1].Description, "fork") {
		t.Errorf("status %+v does not say why", st[len(st)-1])
	}
	if n := len(h.forge.Calls("ReadFile")) + len(h.forge.Calls("ChangedFiles")); n != 0 {
		t.Errorf("%d reads of the fork's files, want none", n)
	}
}

func TestReconcileQueuesOpenPRs(t *testing.T) {
	h := newHarness(t)
	h.cfg.GitHub.Repositories = []string{"acme/*", "acme/app", "!acme/secret", "acme/secret"}
	repo := scm.RepoRef{Kind: scm.GitHub, FullName: "acme/app"}
	for _, pr := range []scm.PullRequest{
		{Ref: scm.PRRef{Repo: repo, Number: 1}, HeadSHA: "a"},
		{Ref: scm.PRRef{Repo: repo, Number: 2}, HeadSHA: "b"},
		{Ref: scm.PRRef{Repo: scm.RepoRef{Kind: scm.GitHub, FullName: "acme/secret"}, Number: 3}},
	} {
		h.forge.AddPull(pr)
	}
	h.start()
	waitFor(t, "reconcile jobs", func() bool { return len(h.callsSnapshot()) == 2 })
	for _, c := range h.callsSnapshot() {
		if c.trigger.Reason != ReasonReconcile || c.pr.Ref.Repo.FullName != "acme/app" {
			t.Errorf("call = %+v", c)
		}
	}
}

func TestReconcileRunsEveryInterval(t *testing.T) {
	h := newHarness(t)
	h.cfg.ReconcileInterval = 20 * time.Millisecond
	h.cfg.GitHub.Repositories = []string{"acme/app"}
	repo := scm.RepoRef{Kind: scm.GitHub, FullName: "acme/app"}
	h.forge.AddPull(scm.PullRequest{Ref: scm.PRRef{Repo: repo, Number: 1}})
	h.start()
	waitFor(t, "three reconciles", func() bool { return len(h.callsSnapshot()) >= 3 })
}

func TestHealthReadyMetrics(t *testing.T) {
	h := newHarness(t)
	b := h.build()
	get := func(path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		b.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec
	}
	if rec := get("/healthz"); rec.Code != http.StatusOK {
		t.Errorf("healthz = %d", rec.Code)
	}
	if rec := get("/readyz"); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("readyz before Run = %d, want 503", rec.Code)
	}
	h.start()
	if rec := get("/readyz"); rec.Code != http.StatusOK {
		t.Errorf("readyz while running = %d, want 200", rec.Code)
	}
	h.deliver(prPayload("acme/app", 1, "a"), "")
	waitFor(t, "job", func() bool { return len(h.callsSnapshot()) == 1 })
	waitFor(t, "job metric", func() bool { return strings.Contains(scrape(t, b), `gitops_bot_jobs_total{result="success"} 1`) })
	text := scrape(t, b)
	for _, want := range []string{
		`gitops_bot_webhooks_total{event="pull_request",provider="github",result="accepted"} 1`,
		`gitops_bot_job_duration_seconds_count{result="success"} 1`,
		`gitops_bot_queue_depth 0`,
		`gitops_bot_rate_limit_waits_total 0`,
		`go_goroutines`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if rec := get("/webhooks/gitlab"); rec.Code != http.StatusNotFound {
		t.Errorf("unconfigured forge route = %d, want 404", rec.Code)
	}
}

func scrape(t *testing.T, b *Bot) string {
	t.Helper()
	rec := httptest.NewRecorder()
	b.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("metrics = %d", rec.Code)
	}
	return rec.Body.String()
}

func TestSecretsNeverLogged(t *testing.T) {
	h := newHarness(t)
	h.start()
	body := prPayload("acme/app", 1, "a")
	req := httptest.NewRequest(http.MethodPost, "/webhooks/github", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Test-Signature", canary) // a client echoing the secret
	rec := httptest.NewRecorder()
	h.bot.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("status = %d, want 401", rec.Code)
	}
	h.bot.log.Info("config", "config", h.cfg, "github", h.cfg.GitHub, "secret", h.cfg.GitHub.WebhookSecret)
	logs := h.logText()
	if !strings.Contains(logs, "verification failed") {
		t.Fatalf("the rejection was not logged: %s", logs)
	}
	for _, s := range []string{canary, "canary-token"} {
		if strings.Contains(logs, s) || strings.Contains(rec.Body.String(), s) {
			t.Errorf("secret %q reached the logs or response:\n%s", s, logs)
		}
	}
}

func TestGitLabRefusesFormEncoding(t *testing.T) {
	h := newHarness(t)
	h.cfg.GitLab = &GitLabConfig{Token: NewSecret("t"), WebhookSecret: NewSecret(canary), Repositories: []string{"group/*"}}
	gitlab := &fakeParser{secret: canary, mediaTypes: []string{"application/json"}}
	b, err := New(h.cfg, Deps{
		Parsers:   map[scm.Kind]scm.WebhookParser{scm.GitHub: h.parser, scm.GitLab: gitlab},
		Forges:    map[scm.Kind]scm.Forges{scm.GitHub: h.forge, scm.GitLab: h.forge},
		Previewer: noPreview,
	})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("payload=" + url.QueryEscape(string(prPayload("group/app", 1, "s"))))
	req := httptest.NewRequest(http.MethodPost, "/webhooks/gitlab", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Test-Signature", sign(canary, body))
	rec := httptest.NewRecorder()
	b.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusUnsupportedMediaType {
		t.Fatalf("status = %d, want 415", rec.Code)
	}
}

func TestQueueCoalescesHelpAndPreview(t *testing.T) {
	q := newQueue(func(int) {})
	pr := scm.PRRef{Repo: scm.RepoRef{Kind: scm.GitHub, FullName: "acme/app"}, Number: 1}
	for _, tr := range []Trigger{
		{Reason: ReasonWebhook, HeadSHA: "a"},
		{Reason: ReasonComment, Command: CommandHelp, Sender: "alice"},
		{Reason: ReasonReconcile, HeadSHA: "b"},
	} {
		if err := q.add(pr, 0, tr); err != nil {
			t.Fatal(err)
		}
	}
	j, ok := q.next(t.Context())
	if !ok || j.help == nil || j.preview == nil || j.preview.HeadSHA != "b" {
		t.Fatalf("job = %+v, want help and the newest preview", j)
	}
	// An old job re-queued after a rate limit loses to a newer trigger.
	if err := q.add(pr, 0, Trigger{Reason: ReasonWebhook, HeadSHA: "c"}); err != nil {
		t.Fatal(err)
	}
	q.requeue(j)
	q.done(pr)
	j2, _ := q.next(t.Context())
	if j2.preview.HeadSHA != "c" || j2.help == nil {
		t.Fatalf("requeued job = preview %s help %v, want c and the help", j2.preview.HeadSHA, j2.help != nil)
	}
	q.close()
	if err := q.add(pr, 0, Trigger{}); err == nil {
		t.Error("a closed queue accepted a job")
	}
}

func TestMetricsTransportCountsForgeRequests(t *testing.T) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, "{}")
	}))
	t.Cleanup(api.Close)
	h := newHarness(t)
	m := NewMetrics()
	h.metrics = m
	b := h.build()
	client := &http.Client{Transport: m.Transport(scm.GitLab, nil)}
	for _, p := range []string{"/ok", "/ok", "/missing"} {
		resp, err := client.Get(api.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
	}
	// A request that gets no response at all.
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	if resp, err := client.Get(dead.URL); err == nil {
		_ = resp.Body.Close()
		t.Fatal("request to a closed server succeeded")
	}
	m.RateLimitWait(scm.GitHub)(1500 * time.Millisecond)

	page := scrape(t, b)
	for _, want := range []string{
		`gitops_bot_forge_requests_total{code="2xx",provider="gitlab"} 2`,
		`gitops_bot_forge_requests_total{code="4xx",provider="gitlab"} 1`,
		`gitops_bot_forge_requests_total{code="error",provider="gitlab"} 1`,
		`gitops_bot_forge_rate_limit_waits_total{provider="github"} 1`,
		`gitops_bot_forge_rate_limit_wait_seconds_total{provider="github"} 1.5`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", page)
	}
}

// A GitLab webhook names the project by id, a configured repository may
// not: both are one job, so a push and a reconcile never sync the default
// branch at once in one replica.
func TestQueueKeysIgnoreTheProjectID(t *testing.T) {
	q := newQueue(func(int) {})
	byPath := branchJob(scm.RepoRef{Kind: scm.GitLab, FullName: "acme/shop"})
	byID := branchJob(scm.RepoRef{Kind: scm.GitLab, FullName: "acme/shop", ID: 42})
	if err := q.add(byPath, 0, Trigger{Reason: ReasonReconcile, Branch: "main"}); err != nil {
		t.Fatal(err)
	}
	j, _ := q.next(t.Context())
	if err := q.add(byID, 0, Trigger{Reason: ReasonPush, Branch: "main", Pushed: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if j2, ok := q.next(ctx); ok {
		t.Fatalf("the push ran beside the reconcile of the same branch: %+v", j2.pr)
	}
	q.done(j.pr)
	j2, ok := q.next(t.Context())
	if !ok || j2.pr.Repo.ID != 42 || j2.branch == nil || j2.branch.Reason != ReasonPush {
		t.Fatalf("job after the reconcile = %+v, want the push with the project id", j2)
	}
}
