package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
)

// Commands a comment can carry.
const (
	CommandPreview = "preview"
	CommandHelp    = "help"
	// CommandSync applies the pull request's head before it merges.
	CommandSync = "sync"
	// CommandUnlock frees apps' locks (maintainers).
	CommandUnlock = "unlock"
)

// maxPushes bounds the pushed commits a branch job remembers.
const maxPushes = 20

// Reasons a job runs.
const (
	ReasonWebhook = "webhook"
	ReasonComment = "comment"
	// ReasonReview: a review was submitted, edited or dismissed (GitHub
	// pull_request_review), or an approval given or taken back (GitLab). A
	// review changes who approved, never what the plan is: it does not
	// re-preview.
	ReasonReview    = "review"
	ReasonReconcile = "reconcile"
	// ReasonPush: a push to a branch; the job syncs the default branch.
	ReasonPush = "push"
	// ReasonOverlap: a preview of another pull request changed which of
	// this one's fields it also changes; the job re-previews even the same
	// head, so that both comments warn.
	ReasonOverlap = "overlap"
)

// Trigger says why a job runs. The job must not trust HeadSHA: it reads
// the pull request from the forge when it runs.
type Trigger struct {
	Reason  string        // ReasonWebhook, ReasonComment, ReasonReview or ReasonReconcile
	Event   scm.EventKind // the webhook's event kind, empty for reconcile
	Action  string        // the forge's action
	Command string        // CommandPreview, CommandHelp, CommandSync or CommandUnlock for comments
	// Args are the command's arguments: the apps of /gitops sync and
	// /gitops unlock.
	Args    []string
	Sender  string // who triggered it; for commands, whose permission is checked
	HeadSHA string // a hint only
	// Branch is the pushed branch, for ReasonPush.
	Branch string
	// Pushed are the commits pushed to the default branch since the job
	// last ran (hints for which pull requests merged), oldest first.
	Pushed []string
	// DeliveryID is the webhook delivery, for logs.
	DeliveryID string
}

// PreviewRunner does a pull request's work: *Previewer in the service, a
// fake in tests. The job calls it with the pull request as the forge
// reports it when the job runs (any state), one job at a time per pull
// request, under the job timeout; returning a *scm.RateLimitError re-queues
// the job after the limit resets.
type PreviewRunner interface {
	Preview(ctx context.Context, forge PreviewForge, pr *scm.PullRequest, t Trigger) error
}

// helpText answers /gitops help.
const helpText = "**kubectl-gitops bot commands** (comment with the command on the first line; requires write access):\n\n" +
	"- `/gitops preview` (or `/gitops plan`) — render the changed apps at this pull request's head and diff them against the live clusters\n" +
	"- `/gitops sync [app...]` — apply this pull request's head before merging, once its approval policy is satisfied; the synced apps stay locked by it until it merges or closes\n" +
	"- `/gitops unlock [app...]` — free apps locked by another pull request (maintainers)\n" +
	"- `/gitops unhold [policy...]` — let image automation propose tags again after a rollback held a policy\n" +
	"- `/gitops help` — show this message\n"

const (
	// maxQueued bounds pull requests waiting for a worker; past it intake
	// answers 503 so the forge retries later.
	maxQueued = 10000
	// maxRateLimitRetries bounds how often one job waits for a rate limit.
	maxRateLimitRetries = 3
	// maxRateLimitWait caps one wait, whatever the forge's reset says.
	maxRateLimitWait = time.Hour
)

// job is the work pending for one pull request: the newest preview
// trigger, the newest help request and the newest review, coalesced.
type job struct {
	pr             scm.PRRef
	installationID int64
	preview        *Trigger
	previewSeq     uint64
	help           *Trigger
	helpSeq        uint64
	// review is the newest ReasonReview trigger: reviews changed, the plan
	// did not.
	review    *Trigger
	reviewSeq uint64
	// branch is the newest ReasonPush or reconcile trigger of a default
	// branch job (pr.Number 0), with every commit pushed since.
	branch *Trigger
	// commands are /gitops sync and /gitops unlock, in order; each runs
	// once.
	commands []Trigger
	attempts int // rate-limit re-queues so far
}

// branchJob is the job key of a repository's default branch.
func branchJob(repo scm.RepoRef) scm.PRRef { return scm.PRRef{Repo: repo} }

// queueKey is the queue's key of pr: by path and number, without the
// forge's numeric id, which a webhook carries and a configured repository
// may not, so both kinds of trigger share one job.
func queueKey(pr scm.PRRef) scm.PRRef {
	pr.Repo.ID = 0
	return pr
}

// merge folds o into j, keeping the newest of each kind.
func (j *job) merge(o *job) {
	if j.pr.Repo.ID == 0 {
		j.pr.Repo.ID = o.pr.Repo.ID
	}
	if o.preview != nil && o.previewSeq > j.previewSeq {
		j.preview, j.previewSeq = o.preview, o.previewSeq
	}
	if o.help != nil && o.helpSeq > j.helpSeq {
		j.help, j.helpSeq = o.help, o.helpSeq
	}
	if o.review != nil && o.reviewSeq > j.reviewSeq {
		j.review, j.reviewSeq = o.review, o.reviewSeq
	}
	if o.branch != nil {
		pushed := j.pushed()
		for _, sha := range o.branch.Pushed {
			if !slices.Contains(pushed, sha) {
				pushed = append(pushed, sha)
			}
		}
		t := *o.branch
		t.Pushed = pushed[max(0, len(pushed)-maxPushes):]
		j.branch = &t
	}
	j.commands = append(j.commands, o.commands...)
	if o.installationID != 0 {
		j.installationID = o.installationID
	}
	j.attempts = max(j.attempts, o.attempts)
}

// pushed are the commits j's branch trigger carries.
func (j *job) pushed() []string {
	if j.branch == nil {
		return nil
	}
	return slices.Clone(j.branch.Pushed)
}

// queue serialises jobs per pull request: at most one running per PR, at
// most one pending per PR (newer triggers replace older ones), FIFO across
// PRs.
type queue struct {
	mu      sync.Mutex
	seq     uint64
	pending map[scm.PRRef]*job // by queueKey
	running map[scm.PRRef]bool
	ready   []scm.PRRef // keys pending and not running, in arrival order
	closed  bool
	wake    chan struct{}
	depth   func(int)
}

func newQueue(depth func(int)) *queue {
	return &queue{
		pending: map[scm.PRRef]*job{},
		running: map[scm.PRRef]bool{},
		wake:    make(chan struct{}, 1),
		depth:   depth,
	}
}

var errQueueFull = errors.New("job queue is full")

// add queues t for pr, coalescing with a pending job for the same PR.
func (q *queue) add(pr scm.PRRef, installationID int64, t Trigger) error {
	q.mu.Lock()
	q.seq++
	j := &job{pr: pr, installationID: installationID}
	switch {
	case pr.Number == 0:
		j.branch = &t
	case t.Command == CommandSync || t.Command == CommandUnlock || t.Command == CommandUnhold:
		j.commands = []Trigger{t}
	case t.Command == CommandHelp:
		j.help, j.helpSeq = &t, q.seq
	case t.Reason == ReasonReview:
		j.review, j.reviewSeq = &t, q.seq
	default:
		j.preview, j.previewSeq = &t, q.seq
	}
	err := q.putLocked(j)
	q.mu.Unlock()
	q.signal()
	return err
}

// requeue puts a job back after a rate-limit wait; newer pending triggers
// win over its old ones.
func (q *queue) requeue(j *job) {
	q.mu.Lock()
	_ = q.putLocked(j)
	q.mu.Unlock()
	q.signal()
}

func (q *queue) putLocked(j *job) error {
	if q.closed {
		return errors.New("bot is shutting down")
	}
	k := queueKey(j.pr)
	if p, ok := q.pending[k]; ok {
		p.merge(j)
		return nil
	}
	if len(q.pending) >= maxQueued {
		return errQueueFull
	}
	q.pending[k] = j
	if !q.running[k] {
		q.ready = append(q.ready, k)
	}
	q.depth(len(q.pending))
	return nil
}

func (q *queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// next blocks until a job is ready or ctx ends, and marks its PR running.
func (q *queue) next(ctx context.Context) (*job, bool) {
	for ctx.Err() == nil {
		q.mu.Lock()
		if len(q.ready) > 0 {
			pr := q.ready[0]
			q.ready = q.ready[1:]
			j := q.pending[pr]
			delete(q.pending, pr)
			q.running[pr] = true
			more := len(q.ready) > 0
			q.depth(len(q.pending))
			q.mu.Unlock()
			if more {
				q.signal() // let another idle worker take the rest
			}
			return j, true
		}
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, false
		case <-q.wake:
		}
	}
	return nil, false
}

// done marks pr's job finished; a job that arrived meanwhile becomes ready.
func (q *queue) done(pr scm.PRRef) {
	pr = queueKey(pr)
	q.mu.Lock()
	delete(q.running, pr)
	if _, ok := q.pending[pr]; ok {
		q.ready = append(q.ready, pr)
	}
	q.mu.Unlock()
	q.signal()
}

// close drops queued jobs and refuses new ones.
func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.pending = map[scm.PRRef]*job{}
	q.ready = nil
	q.depth(0)
	q.mu.Unlock()
}

// worker runs jobs until ctx ends. Cancelling ctx cancels the running job.
// Refresh queues a fresh preview of pr, even of a head already previewed:
// what another pull request's preview overlaps with changed
// (Previewer.Refresh).
func (b *Bot) Refresh(pr scm.PRRef) {
	if err := b.queue.add(pr, 0, Trigger{Reason: ReasonOverlap}); err != nil {
		b.log.Warn("overlap refresh not queued", "pr", pr.String(), "err", err.Error())
	}
}

func (b *Bot) worker(ctx context.Context) {
	for {
		j, ok := b.queue.next(ctx)
		if !ok {
			return
		}
		b.run(ctx, j)
		b.queue.done(j.pr)
	}
}

// run executes one job under the job timeout and records its outcome.
func (b *Bot) run(ctx context.Context, j *job) {
	start := b.now()
	ctx, cancel := context.WithTimeout(ctx, b.cfg.JobTimeout)
	defer cancel()
	log := b.log.With("pr", j.pr.String())

	var err error
	if b.deps.JobLocks != nil {
		// Another replica may run a job of this pull request (a webhook
		// it took): wait for it, then run with the fresh state.
		held, release, l, ok, lerr := hold(ctx, b.deps.JobLocks, jobLockKey(j.pr), b.deps.Identity)
		switch {
		case lerr != nil:
			err = lerr
		case !ok:
			log.Info("job waits for another replica", "holder", l.Holder)
			b.metrics.jobs.WithLabelValues("busy").Inc()
			b.retryAfter(j, busyRetry)
			return
		default:
			defer release()
			ctx = held
		}
	}
	if err == nil {
		err = b.execute(ctx, j)
	}
	result := "success"
	var rl *scm.RateLimitError
	switch {
	case err == nil:
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		result = "timeout"
		log.Warn("job timed out", "timeout", b.cfg.JobTimeout.String())
	case ctx.Err() != nil:
		result = "cancelled"
	case errors.As(err, &rl):
		result = "rate_limited"
		b.retryAfterRateLimit(j, rl, log)
	case errors.Is(err, errSkipped):
		result = "skipped"
		log.Info("job skipped", "reason", err.Error())
	default:
		result = "error"
		log.Error("job failed", "err", err.Error())
	}
	b.metrics.jobs.WithLabelValues(result).Inc()
	b.metrics.jobDuration.WithLabelValues(result).Observe(b.now().Sub(start).Seconds())
}

// errSkipped marks a job deliberately not done (no permission).
var errSkipped = errors.New("skipped")

func (b *Bot) execute(ctx context.Context, j *job) error {
	forges, ok := b.deps.Forges[j.pr.Repo.Kind]
	if !ok {
		return fmt.Errorf("no forge client for %s", j.pr.Repo.Kind)
	}
	forge, err := forges.Forge(ctx, j.pr.Repo, j.installationID)
	if err != nil {
		return fmt.Errorf("forge client for %s: %w", j.pr.Repo, err)
	}
	if j.pr.Number == 0 {
		if b.deps.Syncer == nil || j.branch == nil {
			return nil
		}
		return b.deps.Syncer.SyncBranch(ctx, forge, j.pr.Repo, *j.branch)
	}
	var errs []error
	if j.help != nil {
		if err := b.help(ctx, forge, j.pr, *j.help); err != nil {
			if isRetryable(err) {
				return err
			}
			errs = append(errs, err)
		}
		j.help = nil // answered; a rate-limit retry must not answer twice
	}
	var pr *scm.PullRequest
	if j.preview != nil {
		var err error
		if pr, err = b.preview(ctx, forge, j.pr, *j.preview); err != nil {
			errs = append(errs, err)
		}
	}
	if len(j.commands) > 0 {
		if err := b.commands(ctx, forge, j); err != nil {
			if isRetryable(err) {
				return errors.Join(append(errs, err)...)
			}
			errs = append(errs, err)
		}
	}
	// A pull request that merged or closed frees the apps it locked.
	if pr != nil && pr.State != "open" && b.deps.Syncer != nil {
		if err := b.deps.Syncer.ReleasePull(ctx, j.pr); err != nil {
			errs = append(errs, err)
		}
	}
	// The approval gate: after a preview (the head or the plan may have
	// changed) and when reviews changed. A review changes no plan, so a
	// review-only job does not re-preview. The gate re-reads the reviews,
	// team members and permissions from the forge, never from the trigger.
	if b.deps.Approver != nil && (j.review != nil || pr != nil) {
		if err := b.approve(ctx, forge, j.pr, pr); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// commands runs the job's /gitops sync and /gitops unlock, in order, each
// once; the pull request is read now.
func (b *Bot) commands(ctx context.Context, forge scm.Forge, j *job) error {
	var errs []error
	for len(j.commands) > 0 {
		c := j.commands[0]
		err := b.command(ctx, forge, j.pr, c)
		if isRetryable(err) {
			return err // the command stays for the retry
		}
		j.commands = j.commands[1:]
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (b *Bot) command(ctx context.Context, forge scm.Forge, ref scm.PRRef, c Trigger) error {
	off := ""
	switch {
	case c.Command == CommandUnhold && b.deps.Images == nil:
		off = "Image automation"
	case c.Command != CommandUnhold && b.deps.Syncer == nil:
		off = "Syncing"
	}
	if off != "" {
		_, err := forge.CreateComment(ctx, ref, off+" is off in this bot's configuration; `/gitops "+c.Command+"` does nothing.")
		return err
	}
	if err := b.authorize(ctx, forge, ref, c); err != nil {
		return err
	}
	pr, err := forge.GetPullRequest(ctx, ref)
	if err != nil {
		return fmt.Errorf("read pull request %s: %w", ref, err)
	}
	switch c.Command {
	case CommandUnhold:
		return b.deps.Images.Unhold(ctx, forge, pr, c)
	case CommandUnlock:
		return b.deps.Syncer.Unlock(ctx, forge, pr, c)
	}
	return b.deps.Syncer.SyncPull(ctx, forge, pr, c)
}

// approve sets the approval gate of the pull request ref, read now unless
// the preview just read it as pr.
func (b *Bot) approve(ctx context.Context, forge scm.Forge, ref scm.PRRef, pr *scm.PullRequest) error {
	if pr == nil {
		var err error
		if pr, err = forge.GetPullRequest(ctx, ref); err != nil {
			return fmt.Errorf("read pull request %s: %w", ref, err)
		}
	}
	return b.deps.Approver.Approve(ctx, forge, pr)
}

func isRetryable(err error) bool {
	var rl *scm.RateLimitError
	return errors.As(err, &rl)
}

// authorize checks that a command's sender may push to the repository.
func (b *Bot) authorize(ctx context.Context, forge scm.Forge, pr scm.PRRef, t Trigger) error {
	if t.Reason != ReasonComment {
		return nil
	}
	perm, err := forge.Permission(ctx, pr.Repo, t.Sender)
	if err != nil {
		return fmt.Errorf("check %s's permission on %s: %w", t.Sender, pr.Repo, err)
	}
	if !perm.CanWrite() {
		return fmt.Errorf("%w: %s has %s access to %s, commands need write", errSkipped, t.Sender, perm, pr.Repo)
	}
	return nil
}

func (b *Bot) help(ctx context.Context, forge scm.Forge, pr scm.PRRef, t Trigger) error {
	if err := b.authorize(ctx, forge, pr, t); err != nil {
		return err
	}
	if _, err := forge.CreateComment(ctx, pr, helpText); err != nil {
		return fmt.Errorf("answer /gitops help on %s: %w", pr, err)
	}
	return nil
}

// preview reads the pull request once, now (the delivery's state is never
// trusted), and hands it to the previewer, which decides the rest (forks
// included).
// preview previews the pull request ref, and returns it as read for the
// preview (nil when the trigger is not allowed to preview).
func (b *Bot) preview(ctx context.Context, forge scm.Forge, ref scm.PRRef, t Trigger) (*scm.PullRequest, error) {
	if err := b.authorize(ctx, forge, ref, t); err != nil {
		return nil, err
	}
	pr, err := forge.GetPullRequest(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("read pull request %s: %w", ref, err)
	}
	return pr, b.deps.Previewer.Preview(ctx, forge, pr, t)
}

// retryAfterRateLimit re-queues j once the forge's limit resets, at most
// maxRateLimitRetries times; the wait ends early when the bot stops.
func (b *Bot) retryAfterRateLimit(j *job, rl *scm.RateLimitError, log *slog.Logger) {
	if j.attempts >= maxRateLimitRetries {
		log.Error("job dropped after repeated rate limits", "attempts", j.attempts)
		return
	}
	j.attempts++
	wait := min(max(rl.Reset.Sub(b.now()), 0), maxRateLimitWait)
	log.Warn("forge rate limit hit; job re-queued", "wait", wait.String(), "attempt", j.attempts)
	b.metrics.rateLimitWaits.Inc()
	b.retryAfter(j, wait)
}

// busyRetry is how soon a job another replica holds is tried again.
const busyRetry = 2 * time.Second

// jobLockKey is the lock of pull request pr's jobs (or of a default
// branch's syncs, number 0) across replicas.
func jobLockKey(pr scm.PRRef) string { return "job:" + pr.String() }

// retryAfter puts j back in the queue after wait, unless the bot stops
// first.
func (b *Bot) retryAfter(j *job, wait time.Duration) {
	b.waits.Add(1)
	reset := b.after(wait)
	go func() {
		defer b.waits.Done()
		select {
		case <-b.stopping:
		case <-reset:
			b.queue.requeue(j)
		}
	}()
}
