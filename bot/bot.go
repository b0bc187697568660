// Package bot is the kubectl-gitops GitHub and GitLab bot service: webhook
// intake (verify, filter, dedupe), a per-pull-request job queue, periodic
// reconciliation of open pull requests, and health and metrics endpoints.
// It talks to forges only through internal/scm interfaces; the work a job
// does (the preview) is handed in as a PreviewRunner.
package bot

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
)

// Receiver limits, after Flux's notification-controller.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 30 * time.Second
	// idleTimeout closes a keep-alive connection with no next request.
	idleTimeout    = 60 * time.Second
	maxHeaderBytes = 256 << 10
	// shutdownTimeout bounds how long Run waits for requests and jobs to
	// finish once its context ends.
	shutdownTimeout = 15 * time.Second

	// seenMax holds two keys per delivery (its id and its body's hash).
	seenMax = 20000
	seenTTL = 24 * time.Hour
)

// Deps are the bot's collaborators.
type Deps struct {
	// Logger receives the bot's logs; nil discards them.
	Logger *slog.Logger
	// Parsers verifies and parses each configured forge's webhooks.
	Parsers map[scm.Kind]scm.WebhookParser
	// Forges gives each configured forge's API clients.
	Forges map[scm.Kind]scm.Forges
	// Previewer does a pull request's job: NewPreviewer(cfg) in the
	// service.
	Previewer PreviewRunner
	// Approver sets the gitops/approval gate after previews and when
	// reviews change: the same *Previewer in the service; nil leaves the
	// gate off.
	Approver ApprovalRunner
	// Syncer applies approved changes (sync on merge, /gitops sync): the
	// same *Previewer in the service; nil leaves syncing off.
	Syncer SyncRunner
	// Leader tells whether this replica leads (leader election with a
	// Lease); only the leader reconciles. Nil: a single replica, which
	// always does. Every replica takes webhooks; syncs they start are
	// serialised per app by the Previewer's Locks.
	Leader interface{ IsLeader() bool }
	// JobLocks, shared by the replicas (State.Locks), let one job at a time
	// run per pull request across them, as the queue does within one; nil:
	// a single replica. Identity names this replica as their holder.
	JobLocks Locker
	Identity string
	// Deliveries keeps the deliveries handled across restarts and
	// replicas (State.Records); nil: in memory only.
	Deliveries RecordStore
	// Images runs image automation (the leader, every
	// Config.Images.CheckInterval and at once on a hint); nil leaves it
	// off.
	Images ImageRunner
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Metrics holds the bot's Prometheus series; nil means New makes its
	// own. Pass one in to count the forge clients too (Metrics.Transport,
	// Metrics.RateLimitWait).
	Metrics *Metrics
}

// Bot serves webhooks and runs jobs. Build it with New, start it with Run.
type Bot struct {
	cfg      Config
	deps     Deps
	log      *slog.Logger
	now      func() time.Time
	after    func(time.Duration) <-chan time.Time // tests wait themselves
	metrics  *Metrics
	queue    *queue
	seen     *seenSet
	bodies   *byteBudget
	patterns map[scm.Kind][]string
	handler  http.Handler
	ready    atomic.Bool
	running  atomic.Bool
	stopping chan struct{}  // closed when Run begins shutting down
	wake     chan struct{}  // a reconcile now (ReconcileNow)
	hints    imageHints     // image repositories with new tags (HintImage)
	waits    sync.WaitGroup // rate-limit waits in flight
}

// New checks cfg and deps and builds a Bot. It refuses a configured forge
// without a webhook secret, a parser or a forge client.
func New(cfg Config, deps Deps) (*Bot, error) {
	cfg.ApplyDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Previewer == nil {
		return nil, errors.New("bot: Deps.Previewer is required")
	}
	b := &Bot{
		cfg:      cfg,
		deps:     deps,
		log:      deps.Logger,
		now:      deps.Now,
		after:    time.After,
		metrics:  deps.Metrics,
		patterns: map[scm.Kind][]string{},
		stopping: make(chan struct{}),
		wake:     make(chan struct{}, 1),
		hints:    imageHints{wake: make(chan struct{}, 1)},
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if b.now == nil {
		b.now = time.Now
	}
	if b.metrics == nil {
		b.metrics = NewMetrics()
	}
	b.queue = newQueue(func(n int) { b.metrics.queueDepth.Set(float64(n)) })
	b.seen = newSeenSet(seenMax, seenTTL, b.now)
	b.bodies = newByteBudget(cfg.MaxBodyBytesInFlight, func(n int64) { b.metrics.bodyBytes.Set(float64(n)) })

	mux := http.NewServeMux()
	configured := map[scm.Kind][]string{}
	if cfg.GitHub != nil {
		configured[scm.GitHub] = cfg.GitHub.Repositories
	}
	if cfg.GitLab != nil {
		configured[scm.GitLab] = cfg.GitLab.Repositories
	}
	for kind, patterns := range configured {
		if deps.Parsers[kind] == nil {
			return nil, fmt.Errorf("bot: %s is configured but has no webhook parser", kind)
		}
		if deps.Forges[kind] == nil {
			return nil, fmt.Errorf("bot: %s is configured but has no forge client", kind)
		}
		b.patterns[kind] = patterns
		mux.Handle("/webhooks/"+string(kind), b.webhook(kind))
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !b.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ready\n")
	})
	mux.Handle("GET /metrics", b.metrics.handler())
	b.handler = mux
	return b, nil
}

// Handler serves the bot's routes; Run serves it, tests may call it
// directly. Deliveries are queued, but jobs run only while Run does.
func (b *Bot) Handler() http.Handler { return b.handler }

// Run listens on the configured address, starts the workers and the
// reconcile loop, and serves until ctx ends. Then it stops accepting
// requests, cancels running jobs, drops queued ones and returns within a
// bound.
func (b *Bot) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", b.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", b.cfg.Listen, err)
	}
	return b.Serve(ctx, ln)
}

// Serve is Run on a listener the caller opened; it closes ln.
func (b *Bot) Serve(ctx context.Context, ln net.Listener) error {
	if !b.running.CompareAndSwap(false, true) {
		_ = ln.Close()
		return errors.New("bot: Run called twice")
	}
	maxConns := connectionLimit(b.cfg.MaxConnections, openFileLimit())
	limited := newConnLimiter(ln, maxConns, b.metrics)
	srv := &http.Server{
		Handler:           b.handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ConnState:         limited.state,
		ErrorLog:          slog.NewLogLogger(b.log.Handler(), slog.LevelWarn),
	}

	workCtx, stopWork := context.WithCancel(ctx)
	defer stopWork()
	var workers sync.WaitGroup
	if b.deps.Deliveries != nil {
		// Before the first delivery is taken: one redelivered across the
		// restart is known.
		if err := b.loadDeliveries(ctx); err != nil {
			b.log.Warn("deliveries handled before the start not loaded; a redelivery of one may run its job again", "err", err.Error())
		}
		workers.Go(func() { b.persistDeliveries(workCtx) })
	}
	for range b.cfg.Workers {
		workers.Go(func() { b.worker(workCtx) })
	}
	workers.Go(func() { b.reconcileLoop(workCtx) })
	if b.deps.Images != nil {
		workers.Go(func() { b.imageLoop(workCtx) })
	}
	b.ready.Store(true)
	b.log.Info("bot listening", "addr", ln.Addr().String(), "workers", b.cfg.Workers, "maxConnections", maxConns)

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(limited) }()

	var errs []error
	select {
	case err := <-serveErr:
		errs = append(errs, fmt.Errorf("serve: %w", err))
	case <-ctx.Done():
	}
	b.ready.Store(false)
	b.log.Info("bot shutting down")

	// Drop queued jobs and cancel running ones first: a job may run for
	// minutes, a webhook request for milliseconds.
	close(b.stopping)
	b.queue.close()
	stopWork()
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		errs = append(errs, fmt.Errorf("shut down http server: %w", err))
	}

	done := make(chan struct{})
	go func() {
		workers.Wait()
		b.waits.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-shutdownCtx.Done():
		errs = append(errs, errors.New("jobs did not stop within the shutdown timeout"))
	}
	return errors.Join(errs...)
}

// connectionLimit is the connection bound: the configured one, and below
// the open-file limit by a tenth of it (at least 256 descriptors) for the
// forge clients, the API server, checkouts and render processes.
func connectionLimit(configured int, fileLimit uint64) int {
	if fileLimit == 0 {
		return configured
	}
	reserve := max(fileLimit/10, 256)
	avail := fileLimit / 2
	if fileLimit > 2*reserve {
		avail = fileLimit - reserve
	}
	return int(min(uint64(configured), max(avail, 1)))
}

// connLimiter holds the number of open connections at its bound. At the
// bound, a new connection is admitted by closing the oldest one without a
// request in progress (just accepted, sending its headers, or idle between
// requests), else the oldest one at all: a flood of idle or slow sockets
// cannot keep /healthz and /readyz out, and the descriptors it can take
// stay below the process's limit.
type connLimiter struct {
	net.Listener
	max     int
	metrics *Metrics

	mu      sync.Mutex
	waiting list.List // *limitedConn without a request in progress, oldest first
	active  list.List // *limitedConn with a request in progress, oldest first
}

// limitedConn is a connection the limiter tracks until it closes.
type limitedConn struct {
	net.Conn
	l    *connLimiter
	in   *list.List // waiting or active; nil once untracked
	elem *list.Element
}

func newConnLimiter(ln net.Listener, maxConns int, m *Metrics) *connLimiter {
	return &connLimiter{Listener: ln, max: maxConns, metrics: m}
}

func (l *connLimiter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	lc := &limitedConn{Conn: c, l: l}
	var victim *limitedConn
	l.mu.Lock()
	if l.waiting.Len()+l.active.Len() >= l.max {
		from := &l.waiting
		if from.Len() == 0 {
			from = &l.active
		}
		victim = from.Front().Value.(*limitedConn)
		l.untrackLocked(victim)
	}
	l.moveLocked(lc, &l.waiting)
	l.mu.Unlock()
	if victim != nil {
		l.metrics.connsEvicted.Inc()
		_ = victim.Conn.Close()
	}
	return lc, nil
}

// state is the server's ConnState hook.
func (l *connLimiter) state(c net.Conn, s http.ConnState) {
	lc, ok := c.(*limitedConn)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if lc.in == nil {
		return
	}
	switch s {
	case http.StateActive:
		l.moveLocked(lc, &l.active)
	case http.StateIdle:
		l.moveLocked(lc, &l.waiting)
	case http.StateHijacked, http.StateClosed:
		l.untrackLocked(lc)
	}
}

func (l *connLimiter) moveLocked(lc *limitedConn, to *list.List) {
	if lc.in != nil {
		lc.in.Remove(lc.elem)
	}
	lc.in, lc.elem = to, to.PushBack(lc)
	l.metrics.connections.Set(float64(l.waiting.Len() + l.active.Len()))
}

func (l *connLimiter) untrackLocked(lc *limitedConn) {
	if lc.in == nil {
		return
	}
	lc.in.Remove(lc.elem)
	lc.in, lc.elem = nil, nil
	l.metrics.connections.Set(float64(l.waiting.Len() + l.active.Len()))
}

func (c *limitedConn) Close() error {
	c.l.mu.Lock()
	c.l.untrackLocked(c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}
