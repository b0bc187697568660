package bot

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
)

// imageHints are the image repositories receivers said have new tags,
// waiting for the next image run.
type imageHints struct {
	mu    sync.Mutex
	repos []string
	wake  chan struct{}
}

// maxImageHints bounds the hints waiting; more make the next run rescan
// everything it would anyway, so extra ones are dropped.
const maxImageHints = 1000

// HintImage says a registry has a new tag of image (a repository such as
// ghcr.io/acme/app): image automation runs at once and lists that
// repository again even when its cache is fresh. A hint carries no tag;
// the tag written is always the one the scan chooses.
func (b *Bot) HintImage(image string) {
	b.hints.mu.Lock()
	if len(b.hints.repos) < maxImageHints && !slices.Contains(b.hints.repos, image) {
		b.hints.repos = append(b.hints.repos, image)
	}
	b.hints.mu.Unlock()
	select {
	case b.hints.wake <- struct{}{}:
	default:
	}
}

func (h *imageHints) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.repos
	h.repos = nil
	return out
}

// imageLoop runs image automation for every reconciled repository at
// start, every Images.CheckInterval and on hints. With leader election,
// only the leader runs it, so one pull request is opened, not one per
// replica.
func (b *Bot) imageLoop(ctx context.Context) {
	interval := DefaultImageCheckInterval
	if b.cfg.Images != nil && b.cfg.Images.CheckInterval > 0 {
		interval = b.cfg.Images.CheckInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		b.runImages(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-b.hints.wake:
		}
	}
}

// runImages runs image automation once for every reconciled repository.
func (b *Bot) runImages(ctx context.Context) {
	hinted := b.hints.take()
	if b.deps.Leader != nil && !b.deps.Leader.IsLeader() {
		return
	}
	b.eachRepo(ctx, "images", func(forge scm.Forge, repo scm.RepoRef, log *slog.Logger) {
		jobCtx, cancel := context.WithTimeout(ctx, b.cfg.JobTimeout)
		defer cancel()
		if err := b.deps.Images.UpdateImages(jobCtx, forge, repo, hinted); err != nil {
			log.Warn("image automation", "err", err.Error())
		}
	})
}
