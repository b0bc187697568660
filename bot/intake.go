package bot

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
)

// Webhook results, as answered and as counted in gitops_bot_webhooks_total.
const (
	resultAccepted     = "accepted"
	resultDuplicate    = "duplicate"
	resultIgnored      = "ignored"
	resultInvalid      = "invalid"
	resultNotAllowed   = "not_allowlisted"
	resultBadSignature = "bad_signature"
	resultBadRequest   = "bad_request"
	resultTooLarge     = "too_large"
	resultMediaType    = "unsupported_media_type"
	resultMethod       = "method_not_allowed"
	resultUnavailable  = "unavailable"
	resultBusy         = "busy"
	resultPanic        = "internal_error"
)

const (
	// bodyWait bounds how long a delivery waits for room in the body
	// budget before it is answered 503; forges give up after 10 s.
	bodyWait = 2 * time.Second
	// busyRetryAfter is the Retry-After of a 503 for a full body budget.
	busyRetryAfter = "5"
)

// webhook returns the handler for one forge's deliveries.
func (b *Bot) webhook(kind scm.Kind) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer b.recoverWebhook(kind, w)
		event, result, code := b.intake(kind, w, r)
		b.metrics.webhooks.WithLabelValues(string(kind), event, result).Inc()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(code)
		if code < 300 || code == http.StatusTooManyRequests {
			_, _ = io.WriteString(w, result+"\n")
		}
	})
}

// recoverWebhook answers 500 for a panic in the intake (a parser bug)
// rather than letting net/http drop the connection. It logs where, never
// the body or the headers.
func (b *Bot) recoverWebhook(kind scm.Kind, w http.ResponseWriter) {
	v := recover()
	if v == nil {
		return
	}
	if v == http.ErrAbortHandler {
		panic(v)
	}
	what := fmt.Sprintf("%T", v)
	if re, ok := v.(runtime.Error); ok {
		what = re.Error()
	}
	b.metrics.webhooks.WithLabelValues(string(kind), "unknown", resultPanic).Inc()
	b.log.Error("webhook handler panicked", "provider", string(kind), "panic", what, "stack", string(debug.Stack()))
	w.Header().Set("Connection", "close")
	w.WriteHeader(http.StatusInternalServerError)
}

// closeEarly ends the connection after this answer without reading the rest
// of the body: net/http would otherwise read up to 256 KiB more of it, for
// as long as the client trickles it.
func closeEarly(w http.ResponseWriter) {
	w.Header().Set("Connection", "close")
	_ = http.NewResponseController(w).SetReadDeadline(time.Now())
}

// intake authenticates, filters and enqueues one delivery. It returns the
// event kind and result for metrics and the status to answer. Nothing the
// client sent is echoed back.
func (b *Bot) intake(kind scm.Kind, w http.ResponseWriter, r *http.Request) (event, result string, code int) {
	event = "unknown"
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return event, resultMethod, http.StatusMethodNotAllowed
	}
	// A type the forge does not deliver in is refused before the body is
	// read.
	parser := b.deps.Parsers[kind]
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || !slices.Contains(parser.MediaTypes(), mt) {
		return event, resultMediaType, http.StatusUnsupportedMediaType
	}

	// A body announced above the limit is refused before a byte of it is
	// read; one sent chunked is cut at the limit by MaxBytesReader.
	limit := b.cfg.MaxBodyBytes
	if r.ContentLength > limit {
		closeEarly(w)
		return event, resultTooLarge, http.StatusRequestEntityTooLarge
	}
	// Every body in memory is paid for first from a budget shared by all
	// webhook routes: its announced length, or the limit when chunked.
	// Unauthenticated uploads then cost at most the budget, however many.
	weight := r.ContentLength
	if weight < 0 {
		weight = limit
	}
	waitCtx, cancel := context.WithTimeout(r.Context(), bodyWait)
	ok := b.bodies.acquire(waitCtx, weight)
	cancel()
	if !ok {
		closeEarly(w)
		w.Header().Set("Retry-After", busyRetryAfter)
		return event, resultBusy, http.StatusServiceUnavailable
	}
	defer b.bodies.release(weight)
	body, err := readBody(w, r, limit)
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return event, resultTooLarge, http.StatusRequestEntityTooLarge
		}
		closeEarly(w)
		return event, resultBadRequest, http.StatusBadRequest
	}

	if err := parser.Verify(r.Header, body); err != nil {
		// Log no header or body: either may carry the secret or a forgery.
		b.log.Warn("webhook rejected: verification failed", "provider", string(kind), "remote", r.RemoteAddr)
		return event, resultBadSignature, http.StatusUnauthorized
	}
	// The signature covers the body only, never the delivery id (nor
	// GitLab's Idempotency-Key): a captured delivery replayed under a new
	// id is caught by the hash of the verified body.
	sum := sha256.Sum256(body)
	bodyKey := string(kind) + "/sha256:" + hex.EncodeToString(sum[:])

	// The parser gets the body it verified; unwrapping a form is its
	// business.
	ev, err := parser.Parse(r.Header, body)
	if err == nil && ev == nil {
		err = errors.New("the parser returned no event")
	}
	if err == nil {
		err = validEvent(ev)
	}
	if err != nil {
		b.log.Warn("webhook rejected: invalid delivery", "provider", string(kind), "invalid", errors.Is(err, scm.ErrInvalidEvent))
		// GitLab disables a hook after repeated 4xx: an authenticated
		// delivery it sent is ignored with a 2xx, never queued.
		if kind == scm.GitLab {
			return event, resultInvalid, http.StatusOK
		}
		if errors.Is(err, scm.ErrInvalidEvent) {
			return event, resultInvalid, http.StatusBadRequest
		}
		return event, resultBadRequest, http.StatusBadRequest
	}
	event = string(ev.Kind)
	log := b.log.With("provider", string(kind), "event", event, "action", ev.Action, "delivery", ev.DeliveryID, "repo", ev.Repo.FullName)

	if ev.Kind == scm.EventPing {
		return event, resultAccepted, http.StatusOK
	}
	if ev.Repo.Kind == "" {
		ev.Repo.Kind = kind
	}
	// What the bot has no use for is ignored before the allowlist is asked:
	// many such events (installations, most GitLab hooks) name no repository.
	trigger, ok := interesting(ev)
	if !ok || (trigger.Reason == ReasonPush && b.deps.Syncer == nil) {
		// A push only matters to a bot that syncs.
		return event, resultIgnored, http.StatusOK
	}
	if !b.allowed(ev.Repo) {
		log.Info("webhook ignored: repository not allowlisted")
		return event, resultNotAllowed, http.StatusAccepted
	}
	// Claim the delivery id and the body's hash before enqueueing so
	// concurrent copies run it once; give them back if the enqueue fails
	// so a redelivery is processed.
	keys := []string{bodyKey}
	if ev.DeliveryID != "" {
		keys = append(keys, string(kind)+"/id:"+ev.DeliveryID)
	}
	if !b.seen.claim(keys...) {
		log.Info("webhook duplicate delivery")
		return event, resultDuplicate, http.StatusOK
	}
	var pr scm.PRRef
	if ev.PR != nil {
		pr = *ev.PR
	}
	if pr.Repo.Kind == "" {
		pr.Repo = ev.Repo
	}
	if ev.Kind == scm.EventPush {
		pr = branchJob(ev.Repo)
	}
	if err := b.queue.add(pr, ev.InstallationID, trigger); err != nil {
		b.seen.forget(keys...)
		log.Warn("webhook not queued", "err", err.Error())
		w.Header().Set("Retry-After", "60")
		return event, resultUnavailable, http.StatusServiceUnavailable
	}
	log.Info("webhook accepted", "pr", pr.String(), "reason", trigger.Reason, "command", trigger.Command)
	return event, resultAccepted, http.StatusAccepted
}

// validEvent refuses an event that names a pull request without a
// repository or with a number below 1, whichever parser made it.
func validEvent(ev *scm.Event) error {
	if ev.PR == nil {
		return nil
	}
	if ev.PR.Number < 1 {
		return fmt.Errorf("pull request number %d: %w", ev.PR.Number, scm.ErrInvalidEvent)
	}
	if ev.Repo.FullName == "" && ev.PR.Repo.FullName == "" {
		return fmt.Errorf("a pull request without a repository: %w", scm.ErrInvalidEvent)
	}
	return nil
}

// readBody reads a delivery's body, at most limit bytes (413 beyond). A
// body of announced length is read into one buffer of that size, so what
// it holds is what the budget was charged.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	body := http.MaxBytesReader(w, r.Body, limit)
	if r.ContentLength < 0 {
		return io.ReadAll(body)
	}
	buf := make([]byte, r.ContentLength)
	if _, err := io.ReadFull(body, buf); err != nil {
		return nil, fmt.Errorf("read the body: %w", err)
	}
	// net/http ends a body at its Content-Length; a reader that does not
	// (a handler called directly) must not get more in.
	if n, _ := body.Read(make([]byte, 1)); n > 0 {
		return nil, &http.MaxBytesError{Limit: r.ContentLength}
	}
	return buf, nil
}

// byteBudget is a weighted semaphore on bytes, first come first served:
// the memory that webhook bodies may hold together.
type byteBudget struct {
	mu      sync.Mutex
	size    int64
	used    int64
	waiters list.List // of *budgetWaiter
	inUse   func(int64)
}

type budgetWaiter struct {
	n     int64
	ready chan struct{}
}

func newByteBudget(size int64, inUse func(int64)) *byteBudget {
	return &byteBudget{size: size, inUse: inUse}
}

// acquire takes n bytes, waiting until ctx ends; it reports whether it got
// them. A request larger than the whole budget never does.
func (b *byteBudget) acquire(ctx context.Context, n int64) bool {
	b.mu.Lock()
	if n > b.size {
		b.mu.Unlock()
		return false
	}
	if b.used+n <= b.size && b.waiters.Len() == 0 {
		b.used += n
		b.inUse(b.used)
		b.mu.Unlock()
		return true
	}
	wt := &budgetWaiter{n: n, ready: make(chan struct{})}
	elem := b.waiters.PushBack(wt)
	b.mu.Unlock()
	select {
	case <-wt.ready:
		return true
	case <-ctx.Done():
		b.mu.Lock()
		defer b.mu.Unlock()
		select {
		case <-wt.ready:
			// Granted while giving up: keep the bytes, the caller has them.
			return true
		default:
		}
		front := b.waiters.Front() == elem
		b.waiters.Remove(elem)
		if front {
			// The ones behind may fit now.
			b.grantLocked()
		}
		return false
	}
}

func (b *byteBudget) release(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
	b.grantLocked()
	b.inUse(b.used)
}

func (b *byteBudget) grantLocked() {
	for e := b.waiters.Front(); e != nil; e = b.waiters.Front() {
		wt := e.Value.(*budgetWaiter)
		if b.used+wt.n > b.size {
			return
		}
		b.used += wt.n
		b.waiters.Remove(e)
		close(wt.ready)
	}
}

// interesting says whether ev asks for work, and the trigger for it. Only
// identities are taken from the payload; the job re-reads the rest.
func interesting(ev *scm.Event) (Trigger, bool) {
	if ev.Kind == scm.EventPush {
		// Whether the branch is the default one is read by the job.
		if ev.Branch == "" {
			return Trigger{}, false
		}
		t := Trigger{Reason: ReasonPush, Event: ev.Kind, Sender: ev.Sender, HeadSHA: ev.HeadSHA, Branch: ev.Branch, DeliveryID: ev.DeliveryID}
		if ev.HeadSHA != "" {
			t.Pushed = []string{ev.HeadSHA}
		}
		return t, true
	}
	if ev.PR == nil {
		return Trigger{}, false
	}
	t := Trigger{
		Reason:     ReasonWebhook,
		Event:      ev.Kind,
		Action:     ev.Action,
		Sender:     ev.Sender,
		HeadSHA:    ev.HeadSHA,
		DeliveryID: ev.DeliveryID,
	}
	switch ev.Kind {
	case scm.EventPullRequest:
		return t, previewActions[ev.Action]
	case scm.EventReview:
		// Who reviewed and how is re-read from the forge by the job.
		t.Reason = ReasonReview
		return t, true
	case scm.EventComment:
		if ev.Comment == nil || (ev.Action != "" && ev.Action != "created") {
			return Trigger{}, false
		}
		cmd, args, ok := ParseCommand(ev.Comment.Body)
		if !ok {
			return Trigger{}, false
		}
		t.Reason, t.Command, t.Args = ReasonComment, cmd, args
		if ev.Comment.Author != "" {
			t.Sender = ev.Comment.Author
		}
		return t, true
	}
	return Trigger{}, false
}

// previewActions are the pull-request actions (GitHub and GitLab spellings)
// that may change what a preview shows.
var previewActions = map[string]bool{
	"":                 true,
	"opened":           true,
	"open":             true,
	"reopened":         true,
	"reopen":           true,
	"synchronize":      true,
	"update":           true,
	"ready_for_review": true,
	"edited":           true, // the base branch may have changed
	// A closed or merged pull request frees the apps it locked.
	"closed": true,
	"close":  true,
	"merge":  true,
}

// ParseCommand reads a /gitops command from the first line of a comment:
// "/gitops preview" (or "plan"), "/gitops help" ("/gitops" alone means
// help), "/gitops sync [app...]" and "/gitops unlock [app...]", with the
// apps named.
func ParseCommand(body string) (string, []string, bool) {
	first, _, _ := strings.Cut(body, "\n")
	f := strings.Fields(first)
	if len(f) == 0 || f[0] != "/gitops" {
		return "", nil, false
	}
	if len(f) == 1 {
		return CommandHelp, nil, true
	}
	switch f[1] {
	case CommandPreview, "plan", CommandHelp:
		if len(f) != 2 {
			return "", nil, false
		}
		if f[1] == "plan" { // Atlantis' word for a preview
			return CommandPreview, nil, true
		}
		return f[1], nil, true
	case CommandSync, CommandUnlock, CommandUnhold:
		args := f[2:]
		if len(args) > maxCommandApps {
			return "", nil, false
		}
		for _, a := range args {
			if !appName.MatchString(a) {
				return "", nil, false
			}
		}
		return f[1], args, true
	}
	return "", nil, false
}

// maxCommandApps bounds the apps one command names.
const maxCommandApps = 50

// appName is what an app name of gitops.yaml can be (a DNS label).
var appName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// allowed applies the repository allowlist (Atlantis style): a name is
// allowed when a pattern matches it and no "!" pattern does. A trailing
// '*' matches any suffix, including further path segments.
func (b *Bot) allowed(repo scm.RepoRef) bool {
	return allowlisted(b.patterns[repo.Kind], repo.FullName)
}

func allowlisted(patterns []string, name string) bool {
	name = strings.ToLower(name)
	ok := false
	for _, p := range patterns {
		neg := strings.HasPrefix(p, "!")
		p = strings.ToLower(strings.TrimPrefix(p, "!"))
		var match bool
		if prefix, wild := strings.CutSuffix(p, "*"); wild {
			match = strings.HasPrefix(name, prefix)
		} else {
			match = name == p
		}
		if match && neg {
			return false
		}
		ok = ok || match
	}
	return ok
}

// seenSet remembers delivery ids for a while (bounded LRU with a TTL), so
// a redelivered or replayed webhook is processed once.
type seenSet struct {
	mu    sync.Mutex
	max   int
	ttl   time.Duration
	now   func() time.Time
	order *list.List // of seenEntry, oldest at the front
	items map[string]*list.Element
	gen   uint64 // counts changes, for persisting (deliveries.go)
}

type seenEntry struct {
	key string
	at  time.Time
}

func newSeenSet(maxItems int, ttl time.Duration, now func() time.Time) *seenSet {
	return &seenSet{max: maxItems, ttl: ttl, now: now, order: list.New(), items: map[string]*list.Element{}}
}

// claim records keys and reports whether all were new; when one was seen,
// none is recorded.
func (s *seenSet) claim(keys ...string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for e := s.order.Front(); e != nil; e = s.order.Front() {
		if now.Sub(e.Value.(seenEntry).at) < s.ttl && s.order.Len() < s.max {
			break
		}
		delete(s.items, e.Value.(seenEntry).key)
		s.order.Remove(e)
	}
	for _, key := range keys {
		if _, ok := s.items[key]; ok {
			return false
		}
	}
	for _, key := range keys {
		s.items[key] = s.order.PushBack(seenEntry{key: key, at: now})
	}
	s.gen++
	return true
}

func (s *seenSet) forget(keys ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, key := range keys {
		if e, ok := s.items[key]; ok {
			s.order.Remove(e)
			delete(s.items, key)
			s.gen++
		}
	}
}
