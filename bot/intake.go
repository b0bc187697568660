package bot

import (
	"container/list"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
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
	resultNotAllowed   = "not_allowlisted"
	resultBadSignature = "bad_signature"
	resultBadRequest   = "bad_request"
	resultTooLarge     = "too_large"
	resultMediaType    = "unsupported_media_type"
	resultMethod       = "method_not_allowed"
	resultUnavailable  = "unavailable"
)

// webhook returns the handler for one forge's deliveries.
func (b *Bot) webhook(kind scm.Kind) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		event, result, code := b.intake(kind, w, r)
		b.metrics.webhooks.WithLabelValues(string(kind), event, result).Inc()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(code)
		if code < 300 || code == http.StatusTooManyRequests {
			_, _ = io.WriteString(w, result+"\n")
		}
	})
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
	form := false
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case err == nil && mt == "application/json":
	case err == nil && mt == "application/x-www-form-urlencoded" && kind == scm.GitHub:
		form = true
	default:
		return event, resultMediaType, http.StatusUnsupportedMediaType
	}

	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, b.cfg.MaxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return event, resultTooLarge, http.StatusRequestEntityTooLarge
		}
		return event, resultBadRequest, http.StatusBadRequest
	}

	parser := b.deps.Parsers[kind]
	if err := parser.Verify(r.Header, body); err != nil {
		// Log no header or body: either may carry the secret or a forgery.
		b.log.Warn("webhook rejected: verification failed", "provider", string(kind), "remote", r.RemoteAddr)
		return event, resultBadSignature, http.StatusUnauthorized
	}

	header := r.Header
	if form {
		vals, err := url.ParseQuery(string(body))
		if err != nil || vals.Get("payload") == "" {
			return event, resultBadRequest, http.StatusBadRequest
		}
		body = []byte(vals.Get("payload"))
		header = header.Clone()
		header.Set("Content-Type", "application/json")
	}
	ev, err := parser.Parse(header, body)
	if err != nil || ev == nil {
		b.log.Warn("webhook rejected: unparsable delivery", "provider", string(kind))
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
	if !ok {
		return event, resultIgnored, http.StatusOK
	}
	if !b.allowed(ev.Repo) {
		log.Info("webhook ignored: repository not allowlisted")
		return event, resultNotAllowed, http.StatusAccepted
	}
	// Claim the delivery id before enqueueing so concurrent copies run it
	// once; give it back if the enqueue fails so a redelivery is processed.
	key := string(kind) + "/" + ev.DeliveryID
	if ev.DeliveryID != "" && !b.seen.claim(key) {
		log.Info("webhook duplicate delivery")
		return event, resultDuplicate, http.StatusOK
	}
	pr := *ev.PR
	if pr.Repo.Kind == "" {
		pr.Repo = ev.Repo
	}
	if err := b.queue.add(pr, ev.InstallationID, trigger); err != nil {
		if ev.DeliveryID != "" {
			b.seen.forget(key)
		}
		log.Warn("webhook not queued", "err", err.Error())
		w.Header().Set("Retry-After", "60")
		return event, resultUnavailable, http.StatusServiceUnavailable
	}
	log.Info("webhook accepted", "pr", pr.String(), "command", trigger.Command)
	return event, resultAccepted, http.StatusAccepted
}

// interesting says whether ev asks for work, and the trigger for it. Only
// identities are taken from the payload; the job re-reads the rest.
func interesting(ev *scm.Event) (Trigger, bool) {
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
	case scm.EventComment:
		if ev.Comment == nil || (ev.Action != "" && ev.Action != "created") {
			return Trigger{}, false
		}
		cmd, ok := ParseCommand(ev.Comment.Body)
		if !ok {
			return Trigger{}, false
		}
		t.Reason, t.Command = ReasonComment, cmd
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
}

// ParseCommand reads a /gitops command from the first line of a comment:
// "/gitops preview" or "/gitops help" ("/gitops" alone means help).
func ParseCommand(body string) (string, bool) {
	first, _, _ := strings.Cut(body, "\n")
	f := strings.Fields(first)
	if len(f) == 0 || f[0] != "/gitops" {
		return "", false
	}
	if len(f) == 1 {
		return CommandHelp, true
	}
	switch f[1] {
	case CommandPreview, CommandHelp:
		if len(f) == 2 {
			return f[1], true
		}
	}
	return "", false
}

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
}

type seenEntry struct {
	key string
	at  time.Time
}

func newSeenSet(maxItems int, ttl time.Duration, now func() time.Time) *seenSet {
	return &seenSet{max: maxItems, ttl: ttl, now: now, order: list.New(), items: map[string]*list.Element{}}
}

// claim records key and reports whether it was new.
func (s *seenSet) claim(key string) bool {
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
	if _, ok := s.items[key]; ok {
		return false
	}
	s.items[key] = s.order.PushBack(seenEntry{key: key, at: now})
	return true
}

func (s *seenSet) forget(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.items[key]; ok {
		s.order.Remove(e)
		delete(s.items, key)
	}
}
