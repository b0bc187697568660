package bot

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
)

// The intake's resource bounds: bodies refused before they are read,
// a budget on the bodies held at once, a bound on open connections that
// keeps the probes answering, and no panic escaping a handler.

func TestContentLengthOverLimitReadsNothing(t *testing.T) {
	h := newHarness(t)
	b := h.build()
	body := &countingReader{n: 100 << 20}
	req := httptest.NewRequest(http.MethodPost, "/webhooks/github", body)
	req.ContentLength = 100 << 20
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Test-Signature", "sha256=00")
	rec := httptest.NewRecorder()
	b.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status = %d, want 413", rec.Code)
	}
	if body.read != 0 {
		t.Errorf("the handler read %d bytes of a body announced above the limit, want 0", body.read)
	}
	if rec.Header().Get("Connection") != "close" {
		t.Errorf("Connection = %q, want close: the rest of the body must not be read", rec.Header().Get("Connection"))
	}
	if h.parser.verify != 0 || b.queued() != 0 {
		t.Errorf("verify ran %d times, queued %d; want nothing", h.parser.verify, b.queued())
	}
}

// TestChunkedOverLimitOverTheWire sends bodies without Content-Length to a
// served bot: above the limit they get 413 once the limit is crossed.
func TestChunkedOverLimitOverTheWire(t *testing.T) {
	h := newHarness(t)
	h.cfg.MaxBodyBytes = 64 << 10
	b := h.build()
	srv := httptest.NewServer(b.Handler())
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		size int64
		want int
	}{
		{64<<10 + 1, http.StatusRequestEntityTooLarge},
		{8 << 20, http.StatusRequestEntityTooLarge},
		{64 << 10, http.StatusUnauthorized}, // read whole, then refused: unsigned
	} {
		body := &countingReader{n: tc.size}
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/webhooks/github", io.NopCloser(body))
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = -1
		req.Header.Set("Content-Type", "application/json")
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatalf("%d bytes chunked: %v", tc.size, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%d bytes chunked: status %d, want %d", tc.size, resp.StatusCode, tc.want)
		}
	}
	if b.queued() != 0 {
		t.Errorf("queued %d, want 0", b.queued())
	}
}

func TestBodyBudgetFullAnswers503(t *testing.T) {
	h := newHarness(t)
	b := h.build()
	// Something holds the whole budget (unauthenticated uploads in flight).
	if !b.bodies.acquire(t.Context(), b.cfg.MaxBodyBytesInFlight) {
		t.Fatal("could not take the whole budget")
	}
	rec := h.deliver(prPayload("acme/app", 7, "sha1"), "d-busy")
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("with the budget full: %d, Retry-After %q; want 503 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
	}
	if h.parser.verify != 0 || b.queued() != 0 {
		t.Errorf("verify ran %d times, queued %d; want nothing", h.parser.verify, b.queued())
	}
	if !strings.Contains(scrape(t, b), `gitops_bot_webhooks_total{event="unknown",provider="github",result="busy"} 1`) {
		t.Errorf("the 503 was not counted as busy:\n%s", scrape(t, b))
	}
	b.bodies.release(b.cfg.MaxBodyBytesInFlight)
	if rec := h.deliver(prPayload("acme/app", 7, "sha1"), "d-busy"); rec.Code != http.StatusAccepted {
		t.Fatalf("after the budget freed up: %d, want 202 (a busy delivery is not remembered as seen)", rec.Code)
	}
}

func TestByteBudgetIsFirstComeFirstServed(t *testing.T) {
	var inUse int64
	bb := newByteBudget(10, func(n int64) { inUse = n })
	ctx := t.Context()
	if !bb.acquire(ctx, 8) {
		t.Fatal("8 of 10 refused")
	}
	if bb.acquire(ctx, 11) {
		t.Fatal("more than the whole budget granted")
	}
	got := make(chan int64, 2)
	go func() {
		if bb.acquire(ctx, 5) {
			got <- 5
		}
	}()
	waitFor(t, "the 5-byte waiter to queue", func() bool {
		bb.mu.Lock()
		defer bb.mu.Unlock()
		return bb.waiters.Len() == 1
	})
	// A small request behind a waiting one waits too (no starvation of
	// large bodies); one whose wait ends gives up its place.
	ended, cancel := context.WithCancel(ctx)
	cancel()
	if bb.acquire(ended, 1) {
		t.Fatal("a request jumped the queue")
	}
	bb.release(8)
	if n := <-got; n != 5 {
		t.Fatalf("granted %d", n)
	}
	bb.mu.Lock()
	used := bb.used
	bb.mu.Unlock()
	if used != 5 || inUse != 5 {
		t.Fatalf("in use %d (gauge %d), want 5", used, inUse)
	}
	bb.release(5)
}

func TestConnectionLimit(t *testing.T) {
	for _, tc := range []struct {
		configured int
		files      uint64
		want       int
	}{
		{4096, 0, 4096},           // limit unknown: the configured bound
		{4096, 20000, 4096},       // configured bound below the file limit
		{50000, 20000, 18000},     // a tenth kept for everything else
		{50000, 1024, 768},        // at least 256 kept
		{50000, 300, 150},         // tiny limit: half
		{4096, 1 << 20, 4096},     // a large limit changes nothing
		{1 << 20, 65536, 58983},   // 65536 - 6553
		{16, 20000, 16},           // the smallest configurable bound
		{100000, 1 << 30, 100000}, // big machines
	} {
		if got := connectionLimit(tc.configured, tc.files); got != tc.want {
			t.Errorf("connectionLimit(%d, %d) = %d, want %d", tc.configured, tc.files, got, tc.want)
		}
	}
}

// TestIdleConnectionsCannotStarveProbes fills the connection bound with
// sockets that never send a request, and sockets that sent half a
// request, then asks /healthz and /readyz, and delivers a webhook.
func TestIdleConnectionsCannotStarveProbes(t *testing.T) {
	h := newHarness(t)
	h.cfg.MaxConnections = 16
	h.start()
	ln := h.addr
	var held []net.Conn
	t.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
	})
	for i := range 64 {
		c, err := net.Dial("tcp", ln)
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 1 {
			fmt.Fprintf(c, "POST /webhooks/github HTTP/1.1\r\nHost: x\r\n")
		}
		held = append(held, c)
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := client.Get("http://" + ln + path)
		if err != nil {
			t.Fatalf("%s with the connection bound full of idle sockets: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s = %d", path, resp.StatusCode)
		}
	}
	body := prPayload("acme/app", 7, "sha1")
	req, _ := http.NewRequest(http.MethodPost, "http://"+ln+"/webhooks/github", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Test-Signature", sign(canary, body))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("a delivery with the bound full: %d, want 202", resp.StatusCode)
	}
	page := scrape(t, h.bot)
	if !strings.Contains(page, "gitops_bot_http_connections_evicted_total") || strings.Contains(page, "gitops_bot_http_connections_evicted_total 0\n") {
		t.Errorf("no eviction counted:\n%s", page)
	}
	// The oldest idle sockets were the ones closed.
	if _, err := bufio.NewReader(held[0]).ReadByte(); err == nil {
		t.Error("the oldest idle socket was not closed")
	}
}

// panicParser verifies everything and panics on parse, as a parser bug
// would.
type panicParser struct{}

func (panicParser) MediaTypes() []string             { return []string{"application/json"} }
func (panicParser) Verify(http.Header, []byte) error { return nil }
func (panicParser) Parse(http.Header, []byte) (*scm.Event, error) {
	var ev *scm.Event
	return ev, fmt.Errorf("%s", ev.Action) // nil dereference
}

func TestHandlerPanicAnswers500WithoutTheBody(t *testing.T) {
	h := newHarness(t)
	logger := slog.New(slog.NewJSONHandler(h.logs, nil))
	b, err := New(h.cfg, Deps{
		Logger:    logger,
		Parsers:   map[scm.Kind]scm.WebhookParser{scm.GitHub: panicParser{}},
		Forges:    map[scm.Kind]scm.Forges{scm.GitHub: h.forge},
		Previewer: noPreview,
	})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"marker":"body-canary-31c7"}`)
	req := httptest.NewRequest(http.MethodPost, "/webhooks/github", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Test-Signature", "header-canary-8d2e")
	rec := httptest.NewRecorder()
	b.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status = %d, want 500", rec.Code)
	}
	logs := h.logs.String()
	if !strings.Contains(logs, "webhook handler panicked") || !strings.Contains(logs, "nil pointer") {
		t.Errorf("the panic was not logged: %s", logs)
	}
	for _, s := range []string{"body-canary", "header-canary"} {
		if strings.Contains(logs, s) || strings.Contains(rec.Body.String(), s) {
			t.Errorf("%s reached the log or the answer", s)
		}
	}
}

func TestConfigBoundsDefaultsAndValidation(t *testing.T) {
	cfg := testConfig()
	cfg.ApplyDefaults()
	if cfg.MaxBodyBytesInFlight != DefaultMaxBodyBytesInFlight || cfg.MaxConnections != DefaultMaxConnections {
		t.Errorf("defaults: %d bytes in flight, %d connections", cfg.MaxBodyBytesInFlight, cfg.MaxConnections)
	}
	big := testConfig()
	big.MaxBodyBytes = 100 << 20
	big.ApplyDefaults()
	if big.MaxBodyBytesInFlight != 100<<20 {
		t.Errorf("maxBodyBytes 100 MiB: in-flight default %d, want at least one body", big.MaxBodyBytesInFlight)
	}
	bad := testConfig()
	bad.MaxBodyBytesInFlight = 1 << 20
	bad.MaxConnections = 3
	bad.ApplyDefaults()
	err := bad.Validate()
	if err == nil || !strings.Contains(err.Error(), "maxBodyBytesInFlight") || !strings.Contains(err.Error(), "maxConnections") {
		t.Errorf("Validate = %v, want both bounds refused", err)
	}
}

// Review deliveries: a review changes who approved, not the plan. They
// queue a job of their own reason, deduplicated like any delivery, that
// does not re-preview.

func reviewPayload(action string) []byte {
	return payload(fakePayload{Kind: scm.EventReview, Action: action, Repo: "acme/app", PR: 7, SHA: "sha1", Sender: "bob"})
}

func TestReviewDeliveryQueuesAReviewTrigger(t *testing.T) {
	for _, action := range []string{"submitted", "edited", "dismissed", "approved", "unapproved"} {
		t.Run(action, func(t *testing.T) {
			h := newHarness(t)
			b := h.build()
			rec := h.deliver(reviewPayload(action), "d-"+action)
			if rec.Code != http.StatusAccepted || b.queued() != 1 {
				t.Fatalf("status = %d, queued %d; want 202 and 1", rec.Code, b.queued())
			}
			pr := scm.PRRef{Repo: scm.RepoRef{Kind: scm.GitHub, FullName: "acme/app"}, Number: 7}
			j, ok := b.queue.next(t.Context())
			if !ok || j.pr != pr || j.preview != nil || j.help != nil || j.review == nil {
				t.Fatalf("job = %+v, want a review trigger only for %s", j, pr)
			}
			want := Trigger{Reason: ReasonReview, Event: scm.EventReview, Action: action, Sender: "bob", HeadSHA: "sha1", DeliveryID: "d-" + action}
			if diff := cmp.Diff(want, *j.review); diff != "" {
				t.Errorf("trigger (-want +got):\n%s", diff)
			}
			// The same delivery again is a duplicate, not a second job.
			if rec := h.deliver(reviewPayload(action), "d-"+action); rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != resultDuplicate {
				t.Errorf("redelivery: %d %q, want 200 duplicate", rec.Code, rec.Body.String())
			}
		})
	}
}

func TestReviewDeliveryWithAWrongSignatureIsNotParsed(t *testing.T) {
	h := newHarness(t)
	b := h.build()
	body := reviewPayload("submitted")
	req := httptest.NewRequest(http.MethodPost, "/webhooks/github", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Test-Signature", sign("another-secret", body))
	rec := httptest.NewRecorder()
	b.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized || h.parser.parse != 0 || b.queued() != 0 {
		t.Fatalf("status = %d, parsed %d, queued %d; want 401, nothing parsed or queued", rec.Code, h.parser.parse, b.queued())
	}
}

// TestReviewOnlyJobDoesNotPreview: a job for reviews alone neither reads
// the pull request nor previews it when the approval gate is off
// (TestReviewJobRunsTheGate has it on).
func TestReviewOnlyJobDoesNotPreview(t *testing.T) {
	h := newHarness(t)
	h.start()
	if rec := h.deliver(reviewPayload("submitted"), "d-review"); rec.Code != http.StatusAccepted {
		t.Fatalf("status = %d, want 202", rec.Code)
	}
	waitFor(t, "the review job", func() bool {
		return strings.Contains(scrape(t, h.bot), `gitops_bot_jobs_total{result="success"} 1`)
	})
	if calls := h.callsSnapshot(); len(calls) != 0 {
		t.Fatalf("a review previewed: %+v", calls)
	}
	if calls := h.forge.Calls("GetPullRequest"); len(calls) != 0 {
		t.Errorf("a review-only job read the pull request: %+v", calls)
	}
	h.quiesce()
}

func TestQueueCoalescesReviewsWithPreviews(t *testing.T) {
	q := newQueue(func(int) {})
	pr := scm.PRRef{Repo: scm.RepoRef{Kind: scm.GitHub, FullName: "acme/app"}, Number: 1}
	for _, tr := range []Trigger{
		{Reason: ReasonReview, Action: "submitted", DeliveryID: "r1"},
		{Reason: ReasonWebhook, HeadSHA: "a"},
		{Reason: ReasonReview, Action: "dismissed", DeliveryID: "r2"},
	} {
		if err := q.add(pr, 0, tr); err != nil {
			t.Fatal(err)
		}
	}
	j, ok := q.next(t.Context())
	if !ok || j.preview == nil || j.preview.HeadSHA != "a" || j.review == nil || j.review.DeliveryID != "r2" || j.help != nil {
		t.Fatalf("job = %+v, want the preview and the newest review", j)
	}
	// A newer review pending while the job is re-queued wins over its own.
	if err := q.add(pr, 0, Trigger{Reason: ReasonReview, DeliveryID: "r3"}); err != nil {
		t.Fatal(err)
	}
	q.requeue(j)
	q.done(pr)
	j2, _ := q.next(t.Context())
	if j2.review.DeliveryID != "r3" || j2.preview == nil {
		t.Fatalf("requeued job = review %s, preview %v; want r3 and the preview", j2.review.DeliveryID, j2.preview != nil)
	}
}
