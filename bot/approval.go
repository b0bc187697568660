package bot

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/kubectl-gitops/kubectl-gitops/approvals"
	"github.com/kubectl-gitops/kubectl-gitops/internal/config"
	"github.com/kubectl-gitops/kubectl-gitops/internal/gate"
	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
)

// ApprovalContext is the commit status context of the approval gate, which
// branch protection (GitHub) or an external status check (GitLab) can
// require before a merge.
const ApprovalContext = "gitops/approval"

// DefaultPolicy is the name of the base's approval policy for apps that
// name none, and for apps a pull request adds.
const DefaultPolicy = gate.DefaultPolicy

// maxReviewedCommits bounds how many older commits of a pull request one
// approval check renders to learn the plan their approvals saw (after a
// restart, before any preview recorded them).
const maxReviewedCommits = 4

// ApprovalForge is what the approval gate reads and writes on a forge.
type ApprovalForge interface {
	PreviewForge
	scm.ReviewLister
	scm.PermissionChecker
	scm.TeamReader
}

// ApprovalRunner sets the approval gate of pull requests.
type ApprovalRunner interface {
	Approve(ctx context.Context, forge ApprovalForge, pr *scm.PullRequest) error
}

var _ ApprovalRunner = (*Previewer)(nil)

// Approve sets the gitops/approval status of pr's head: success when the
// reviews satisfy the base's approval policy of every app the change
// touches, failure when they cannot, pending otherwise, with the reasons.
// Everything is read from the forge now (the head, reviews, permissions,
// team members, the base's gitops.yaml and CODEOWNERS), never from a
// webhook. An approval counts under the policy's staleness: on its own
// commit, or (the default) on any commit whose plan hash equals the
// head's.
func (p *Previewer) Approve(ctx context.Context, forge ApprovalForge, pr *scm.PullRequest) error {
	if pr.State != "open" {
		return nil
	}
	state, desc, err := p.approval(ctx, forge, pr)
	if err != nil {
		_ = p.setStatus(ctx, forge, pr, ApprovalContext, scm.StatusError, "the approval check failed; it will be retried")
		return err
	}
	return p.setStatus(ctx, forge, pr, ApprovalContext, state, desc)
}

// approval decides the state and description of the gate.
func (p *Previewer) approval(ctx context.Context, forge ApprovalForge, pr *scm.PullRequest) (scm.StatusState, string, error) {
	if pr.Fork && !p.AllowForks {
		return scm.StatusFailure, "pull requests from forks are not previewed, so they cannot be approved for sync", nil
	}
	base, problem, err := baseConfig(ctx, forge, pr)
	switch {
	case err != nil:
		return "", "", err
	case problem != nil && problem.Invalid:
		return scm.StatusFailure, problem.Note, nil
	case problem != nil:
		return scm.StatusSuccess, problem.Note, nil
	}
	repo := pr.Ref.Repo.String()
	apps, changed, ok := p.planCache().getTouched(repo, pr.HeadSHA)
	if !ok {
		if apps, changed, err = p.renderHead(ctx, forge, pr, base); err != nil {
			return "", "", err
		}
	}
	if len(apps) == 0 {
		return scm.StatusSuccess, "no app touched", nil
	}
	plans := map[string]string{}
	for _, name := range apps {
		if h, ok := p.planCache().get(repo, pr.HeadSHA, name); ok {
			plans[name] = h
		}
	}
	d, why, err := p.decide(ctx, forge, gate.Change{PR: pr, Base: base, Apps: apps, Changed: changed, Plans: plans, Now: time.Now()})
	switch {
	case err != nil:
		return "", "", err
	case why != "":
		return scm.StatusFailure, why, nil
	}
	switch d.ApprovalState() {
	case approvals.StateSuccess:
		p.rememberApproved(ctx, pr, plans)
		return scm.StatusSuccess, gate.ApprovedText(d), nil
	case approvals.StateFailure:
		return scm.StatusFailure, strings.Join(d.ApprovalReasons, "; "), nil
	}
	return scm.StatusPending, strings.Join(d.ApprovalReasons, "; "), nil
}

// decide evaluates the base's policy of every app of g on the reviews, team
// members and permissions read from the forge now (gate.Decide); the plans
// of reviewed commits come from previews, the approvals recorded, or a
// render of those commits.
func (p *Previewer) decide(ctx context.Context, forge ApprovalForge, g gate.Change) (approvals.Decision, string, error) {
	repo := g.PR.Ref.Repo.String()
	return gate.Decide(ctx, forge, g, func(ctx context.Context, reviews []scm.Review, apps []string) (func(sha, app string) string, error) {
		if err := p.planReviewedCommits(ctx, forge, g.PR, g.Base, reviews, apps); err != nil {
			return nil, err
		}
		return func(sha, app string) string {
			h, _ := p.planCache().get(repo, sha, app)
			return h
		}, nil
	})
}

// renderHead renders pr's head to learn the apps it touches and their
// plans, as a preview does, when no preview of this head has.
func (p *Previewer) renderHead(ctx context.Context, forge ApprovalForge, pr *scm.PullRequest, base *config.Repository) ([]string, []string, error) {
	tree, err := p.checkout(ctx, forge, headOf(pr), base, pr.HeadSHA)
	if err != nil {
		return nil, nil, err
	}
	defer tree.remove()
	if tree.loadErr != nil {
		return nil, nil, nil
	}
	_, _, set, err := p.touchedApps(ctx, forge, pr, base, tree)
	return set.apps, set.files, err
}

// planReviewedCommits renders the commits that approvals were given on
// whose plans are not known yet (the newest maxReviewedCommits), so that an
// approval of an unchanged plan keeps counting after a restart.
func (p *Previewer) planReviewedCommits(ctx context.Context, forge ApprovalForge, pr *scm.PullRequest, base *config.Repository, reviews []scm.Review, apps []string) error {
	repo := pr.Ref.Repo.String()
	var shas []string
	for i := len(reviews) - 1; i >= 0 && len(shas) < maxReviewedCommits; i-- {
		sha := reviews[i].CommitSHA
		if reviews[i].State != scm.ReviewApproved || sha == "" || sha == pr.HeadSHA || slices.Contains(shas, sha) {
			continue
		}
		for _, app := range apps {
			if _, ok := p.planCache().get(repo, sha, app); !ok && !p.recallApproved(ctx, pr.Ref, sha) {
				shas = append(shas, sha)
				break
			}
		}
	}
	for _, sha := range shas {
		tree, err := p.checkout(ctx, forge, headOf(pr), base, sha)
		if err != nil {
			return err
		}
		if tree.loadErr == nil {
			p.renderLocal(ctx, pr.Ref.Repo, sha, tree)
		}
		tree.remove()
	}
	return nil
}
