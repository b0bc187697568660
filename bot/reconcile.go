package bot

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
)

// reconcileLoop re-lists open pull requests at start and every interval,
// so a missed webhook costs at most one interval. Each gets a job; the
// preview itself notices (from its sticky comment's marker) when nothing
// changed.
func (b *Bot) reconcileLoop(ctx context.Context) {
	t := time.NewTicker(b.cfg.ReconcileInterval)
	defer t.Stop()
	for {
		b.reconcile(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-b.wake:
		}
	}
}

// ReconcileNow asks for a reconcile without waiting for the interval: a
// replica that becomes the leader takes over at once what the last one
// left (a sync it died in, locks of closed pull requests).
func (b *Bot) ReconcileNow() {
	select {
	case b.wake <- struct{}{}:
	default: // one is pending already
	}
}

// reconcile queues a job for every open pull request of the repositories
// named exactly in the allowlists and, with syncing on, a sync of their
// default branches (a missed push, a deploy window that opened), and frees
// the locks of pull requests no longer open. With leader election, only
// the leader reconciles.
func (b *Bot) reconcile(ctx context.Context) {
	if b.deps.Leader != nil && !b.deps.Leader.IsLeader() {
		return
	}
	b.eachRepo(ctx, "reconcile", func(forge scm.Forge, repo scm.RepoRef, log *slog.Logger) {
		prs, err := forge.ListOpenPullRequests(ctx, repo)
		if err != nil {
			log.Warn("reconcile: list open pull requests", "err", err.Error())
			return
		}
		open := make([]int, len(prs))
		for i, pr := range prs {
			open[i] = pr.Ref.Number
		}
		if k, ok := b.deps.Previewer.(openKeeper); ok {
			k.KeepOpen(repo, open)
		}
		if b.deps.Syncer != nil {
			if err := b.deps.Syncer.ReleaseLocks(ctx, repo, open); err != nil {
				log.Warn("reconcile: free the locks of closed pull requests", "err", err.Error())
			}
			if err := b.queue.add(branchJob(repo), 0, Trigger{Reason: ReasonReconcile}); err != nil {
				log.Warn("reconcile: default branch sync not queued", "err", err.Error())
			}
		}
		for _, pr := range prs {
			ref := pr.Ref
			if ref.Repo.FullName == "" {
				ref.Repo = repo
			}
			if err := b.queue.add(ref, 0, Trigger{Reason: ReasonReconcile, HeadSHA: pr.HeadSHA}); err != nil {
				log.Warn("reconcile: job not queued", "pr", ref.String(), "err", err.Error())
			}
		}
	})
}

// eachRepo calls fn with the forge client of every reconciled repository,
// in turn, until ctx ends; what names the work in the logs.
func (b *Bot) eachRepo(ctx context.Context, what string, fn func(forge scm.Forge, repo scm.RepoRef, log *slog.Logger)) {
	for _, repo := range b.reconciledRepos() {
		if ctx.Err() != nil {
			return
		}
		log := b.log.With("repo", repo.String())
		forges, ok := b.deps.Forges[repo.Kind]
		if !ok {
			continue
		}
		forge, err := forges.Forge(ctx, repo, 0)
		if err != nil {
			log.Warn(what+": no forge client", "err", err.Error())
			continue
		}
		fn(forge, repo, log)
	}
}

// openKeeper is a PreviewRunner that remembers open pull requests (the
// overlaps of their previews) and is told which are still open.
type openKeeper interface {
	KeepOpen(repo scm.RepoRef, open []int)
}

// reconciledRepos are the allowlist entries naming one repository (no
// wildcard, no "!") that the allowlist does not exclude.
func (b *Bot) reconciledRepos() []scm.RepoRef {
	var out []scm.RepoRef
	for _, kind := range []scm.Kind{scm.GitHub, scm.GitLab} {
		for _, p := range b.patterns[kind] {
			if strings.HasPrefix(p, "!") || strings.HasSuffix(p, "*") {
				continue
			}
			if allowlisted(b.patterns[kind], p) {
				out = append(out, scm.RepoRef{Kind: kind, FullName: p})
			}
		}
	}
	return out
}
