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
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
)

const canary = "canary-webhook-secret-5f2a"

// fakeParser verifies an HMAC-SHA256 of the body in X-Test-Signature and
// parses a small JSON payload into an scm.Event.
type fakeParser struct {
	secret string
	mu     sync.Mutex
	verify int
	parse  int
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

// fakeForge implements scm.Forge; only what the bot calls does anything.
type fakeForge struct {
	mu          sync.Mutex
	perm        scm.Permission
	fork        bool
	open        []scm.PullRequest
	comments    []string
	permChecked []string
}

func (f *fakeForge) ListComments(context.Context, scm.PRRef) ([]scm.Comment, error) { return nil, nil }
func (f *fakeForge) CreateComment(_ context.Context, _ scm.PRRef, body string) (scm.Comment, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.comments = append(f.comments, body)
	return scm.Comment{ID: int64(len(f.comments)), Body: body}, nil
}
func (f *fakeForge) EditComment(context.Context, scm.PRRef, int64, string) error  { return nil }
func (f *fakeForge) SetStatus(context.Context, scm.RepoRef, scm.Status) error     { return nil }
func (f *fakeForge) ListReviews(context.Context, scm.PRRef) ([]scm.Review, error) { return nil, nil }
func (f *fakeForge) ChangedFiles(context.Context, scm.PRRef) ([]string, error)    { return nil, nil }
func (f *fakeForge) BotLogin(context.Context) (string, error)                     { return "gitops-bot", nil }
func (f *fakeForge) ReadFile(context.Context, scm.RepoRef, string, string) ([]byte, error) {
	return nil, scm.ErrNotFound
}
func (f *fakeForge) CloneCredentials(context.Context, scm.RepoRef) (string, string, error) {
	return "x", "y", nil
}
func (f *fakeForge) GetPullRequest(_ context.Context, pr scm.PRRef) (*scm.PullRequest, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &scm.PullRequest{Ref: pr, State: "open", Fork: f.fork}, nil
}
func (f *fakeForge) ListOpenPullRequests(_ context.Context, repo scm.RepoRef) ([]scm.PullRequest, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []scm.PullRequest
	for _, pr := range f.open {
		if pr.Ref.Repo.FullName == repo.FullName {
			out = append(out, pr)
		}
	}
	return out, nil
}
func (f *fakeForge) Permission(_ context.Context, _ scm.RepoRef, user string) (scm.Permission, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.permChecked = append(f.permChecked, user)
	if f.perm == "" {
		return scm.PermissionWrite, nil
	}
	return f.perm, nil
}

type fakeForges struct{ forge *fakeForge }

func (f fakeForges) Forge(context.Context, scm.RepoRef, int64) (scm.Forge, error) {
	return f.forge, nil
}

// call is one Work invocation.
type call struct {
	pr      scm.PRRef
	trigger Trigger
}

// harness is a Bot with fakes, valid by default; tests change one field.
type harness struct {
	t      *testing.T
	cfg    Config
	parser *fakeParser
	forge  *fakeForge
	logs   *bytes.Buffer
	work   func(ctx context.Context, pr scm.PRRef, t Trigger) error

	mu    sync.Mutex
	calls []call
	bot   *Bot
	addr  string // where start serves
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
	return &harness{t: t, cfg: testConfig(), parser: &fakeParser{secret: canary}, forge: &fakeForge{}, logs: &bytes.Buffer{}}
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
	b, err := New(h.cfg, Deps{
		Logger:  logger,
		Parsers: map[scm.Kind]scm.WebhookParser{scm.GitHub: h.parser},
		Forges:  map[scm.Kind]scm.Forges{scm.GitHub: fakeForges{h.forge}},
		Work: func(ctx context.Context, forge scm.Forge, pr scm.PRRef, t Trigger) error {
			h.mu.Lock()
			h.calls = append(h.calls, call{pr, t})
			h.mu.Unlock()
			if h.work != nil {
				return h.work(ctx, pr, t)
			}
			return nil
		},
	})
	if err != nil {
		h.t.Fatalf("New: %v", err)
	}
	h.bot = b
	return b
}

// start runs the bot until the test ends (or stop is called) and returns
// stop, which cancels Run and returns its error.
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
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(10 * time.Second):
				h.t.Fatal("Run did not return after its context was cancelled")
			}
		})
		return runErr
	}
	h.t.Cleanup(func() { _ = stop() })
	return stop
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
	time.Sleep(20 * time.Millisecond)
	calls := h.callsSnapshot()
	if len(calls) != 1 {
		t.Fatalf("job ran %d times, want 1", len(calls))
	}
	want := scm.PRRef{Repo: scm.RepoRef{Kind: scm.GitHub, FullName: "acme/app"}, Number: 7}
	if calls[0].pr != want || calls[0].trigger.Reason != ReasonWebhook || calls[0].trigger.HeadSHA != "sha1" {
		t.Fatalf("call = %+v", calls[0])
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
				Parsers: map[scm.Kind]scm.WebhookParser{scm.GitHub: &fakeParser{}, scm.GitLab: &fakeParser{}},
				Forges:  map[scm.Kind]scm.Forges{scm.GitHub: fakeForges{}, scm.GitLab: fakeForges{}},
				Work:    func(context.Context, scm.Forge, scm.PRRef, Trigger) error { return nil },
			})
			if err == nil || !strings.Contains(err.Error(), "webhookSecret is empty") {
				t.Fatalf("New error = %v, want a refusal naming webhookSecret", err)
			}
		})
	}
}

func TestNewRefusesMissingParser(t *testing.T) {
	_, err := New(testConfig(), Deps{Work: func(context.Context, scm.Forge, scm.PRRef, Trigger) error { return nil }})
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
		{Kind: scm.EventPullRequest, Action: "closed", Repo: "acme/app", PR: 1},
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
	time.Sleep(30 * time.Millisecond)
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
		time.Sleep(time.Millisecond)
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
	time.Sleep(30 * time.Millisecond)
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
	both := make(chan struct{}, 2)
	h.work = func(ctx context.Context, pr scm.PRRef, tr Trigger) error {
		both <- struct{}{}
		waitFor(t, "both running", func() bool { return len(both) == 2 })
		return nil
	}
	h.start()
	h.deliver(prPayload("acme/app", 1, "a"), "")
	h.deliver(prPayload("acme/app", 2, "b"), "")
	waitFor(t, "two jobs", func() bool { return len(h.callsSnapshot()) == 2 })
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
	select {
	case err := <-got:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("job context ended with %v, want DeadlineExceeded", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("job was not cancelled at its timeout")
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
	begin := time.Now()
	if err := stop(); err != nil {
		t.Fatalf("Run returned %v", err)
	}
	if d := time.Since(begin); d > 5*time.Second {
		t.Errorf("shutdown took %s", d)
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
	var (
		mu            sync.Mutex
		reset, second time.Time
	)
	h.work = func(ctx context.Context, pr scm.PRRef, tr Trigger) error {
		mu.Lock()
		defer mu.Unlock()
		if reset.IsZero() {
			reset = time.Now().Add(150 * time.Millisecond)
			return fmt.Errorf("list comments: %w", &scm.RateLimitError{Reset: reset})
		}
		second = time.Now()
		return nil
	}
	h.start()
	h.deliver(prPayload("acme/app", 1, "a"), "")
	waitFor(t, "retry", func() bool { return len(h.callsSnapshot()) == 2 })
	mu.Lock()
	defer mu.Unlock()
	if second.Before(reset) {
		t.Errorf("retried at %s, before the reset at %s", second, reset)
	}
	if !strings.Contains(scrape(t, h.bot), "gitops_bot_rate_limit_waits_total 1") {
		t.Error("rate-limit wait not counted")
	}
}

func TestRateLimitRetriesAreBounded(t *testing.T) {
	h := newHarness(t)
	h.work = func(ctx context.Context, pr scm.PRRef, tr Trigger) error {
		return &scm.RateLimitError{Reset: time.Now()}
	}
	h.start()
	h.deliver(prPayload("acme/app", 1, "a"), "")
	waitFor(t, "retries", func() bool { return len(h.callsSnapshot()) == maxRateLimitRetries+1 })
	time.Sleep(50 * time.Millisecond)
	if n := len(h.callsSnapshot()); n != maxRateLimitRetries+1 {
		t.Errorf("job ran %d times, want %d", n, maxRateLimitRetries+1)
	}
}

func TestCommands(t *testing.T) {
	for _, tc := range []struct {
		body string
		cmd  string
		ok   bool
	}{
		{"/gitops preview", CommandPreview, true},
		{"  /gitops   preview  \nplease", CommandPreview, true},
		{"/gitops help", CommandHelp, true},
		{"/gitops", CommandHelp, true},
		{"/gitops preview now", "", false},
		{"/gitops apply", "", false},
		{"please /gitops preview", "", false},
		{"hello\n/gitops preview", "", false},
		{"/gitopspreview", "", false},
	} {
		cmd, ok := ParseCommand(tc.body)
		if cmd != tc.cmd || ok != tc.ok {
			t.Errorf("ParseCommand(%q) = %q, %v; want %q, %v", tc.body, cmd, ok, tc.cmd, tc.ok)
		}
	}
}

func comment(body, sender string) []byte {
	return payload(fakePayload{Kind: scm.EventComment, Action: "created", Repo: "acme/app", PR: 4, Comment: body, Sender: sender})
}

func TestPreviewCommandChecksPermissionInJob(t *testing.T) {
	h := newHarness(t)
	h.forge.perm = scm.PermissionRead
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
	h.forge.mu.Lock()
	defer h.forge.mu.Unlock()
	if len(h.forge.permChecked) != 1 || h.forge.permChecked[0] != "mallory" {
		t.Errorf("permission checked for %v, want [mallory]", h.forge.permChecked)
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
	waitFor(t, "help comment", func() bool {
		h.forge.mu.Lock()
		defer h.forge.mu.Unlock()
		return len(h.forge.comments) == 1
	})
	if n := len(h.callsSnapshot()); n != 0 {
		t.Errorf("help ran the preview %d times", n)
	}
	h.forge.mu.Lock()
	defer h.forge.mu.Unlock()
	if !strings.Contains(h.forge.comments[0], "/gitops preview") {
		t.Errorf("help comment = %q", h.forge.comments[0])
	}
}

func TestForkSkippedUnlessAllowed(t *testing.T) {
	for _, allow := range []bool{false, true} {
		t.Run(fmt.Sprint(allow), func(t *testing.T) {
			h := newHarness(t)
			h.forge.fork = true
			h.cfg.AllowForks = allow
			h.start()
			h.deliver(prPayload("acme/app", 1, "a"), "")
			want := `gitops_bot_jobs_total{result="skipped"} 1`
			if allow {
				want = `gitops_bot_jobs_total{result="success"} 1`
			}
			waitFor(t, want, func() bool { return strings.Contains(scrape(t, h.bot), want) })
			if got := len(h.callsSnapshot()); (got == 1) != allow {
				t.Errorf("preview ran %d times with allowForks=%v", got, allow)
			}
		})
	}
}

func TestReconcileQueuesOpenPRs(t *testing.T) {
	h := newHarness(t)
	h.cfg.GitHub.Repositories = []string{"acme/*", "acme/app", "!acme/secret", "acme/secret"}
	repo := scm.RepoRef{Kind: scm.GitHub, FullName: "acme/app"}
	h.forge.open = []scm.PullRequest{
		{Ref: scm.PRRef{Repo: repo, Number: 1}, HeadSHA: "a"},
		{Ref: scm.PRRef{Repo: repo, Number: 2}, HeadSHA: "b"},
		{Ref: scm.PRRef{Repo: scm.RepoRef{Kind: scm.GitHub, FullName: "acme/secret"}, Number: 3}},
	}
	h.start()
	waitFor(t, "reconcile jobs", func() bool { return len(h.callsSnapshot()) == 2 })
	for _, c := range h.callsSnapshot() {
		if c.trigger.Reason != ReasonReconcile || c.pr.Repo.FullName != "acme/app" {
			t.Errorf("call = %+v", c)
		}
	}
}

func TestReconcileRunsEveryInterval(t *testing.T) {
	h := newHarness(t)
	h.cfg.ReconcileInterval = 20 * time.Millisecond
	h.cfg.GitHub.Repositories = []string{"acme/app"}
	repo := scm.RepoRef{Kind: scm.GitHub, FullName: "acme/app"}
	h.forge.open = []scm.PullRequest{{Ref: scm.PRRef{Repo: repo, Number: 1}}}
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
	b, err := New(h.cfg, Deps{
		Parsers: map[scm.Kind]scm.WebhookParser{scm.GitHub: h.parser, scm.GitLab: h.parser},
		Forges:  map[scm.Kind]scm.Forges{scm.GitHub: fakeForges{h.forge}, scm.GitLab: fakeForges{h.forge}},
		Work:    func(context.Context, scm.Forge, scm.PRRef, Trigger) error { return nil },
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
