package bot

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kubectl-gitops/kubectl-gitops/approvals"
	"github.com/kubectl-gitops/kubectl-gitops/internal/config"
	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
)

// ApprovalContext is the commit status context of the approval gate, which
// branch protection (GitHub) or an external status check (GitLab) can
// require before a merge.
const ApprovalContext = "gitops/approval"

// DefaultPolicy is the name of the base's approval policy for apps that
// name none, and for apps a pull request adds.
const DefaultPolicy = "default"

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
	case problem != nil && problem.invalid:
		return scm.StatusFailure, problem.note, nil
	case problem != nil:
		return scm.StatusSuccess, problem.note, nil
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
	d, why, err := p.decide(ctx, forge, gate{pr: pr, base: base, apps: apps, changed: changed, plans: plans, now: time.Now()})
	switch {
	case err != nil:
		return "", "", err
	case why != "":
		return scm.StatusFailure, why, nil
	}
	switch d.ApprovalState() {
	case approvals.StateSuccess:
		p.rememberApproved(ctx, pr, plans)
		return scm.StatusSuccess, approvedText(d), nil
	case approvals.StateFailure:
		return scm.StatusFailure, strings.Join(d.ApprovalReasons, "; "), nil
	}
	return scm.StatusPending, strings.Join(d.ApprovalReasons, "; "), nil
}

// gate is what one evaluation of the approval policies judges: the apps of
// a pull request and the plans to be applied.
type gate struct {
	pr      *scm.PullRequest
	base    *config.Repository // the policies: the pull request's base
	apps    []string
	changed []string // the files the pull request changes
	// plans are the plan hashes judged, by app: the head's for the gate
	// and /gitops sync, the merged commit's for a sync on merge.
	plans map[string]string
	// mergedAt, when set, leaves out reviews submitted after it: the
	// policy must have been satisfied at the merge.
	mergedAt time.Time
	now      time.Time
}

// decide evaluates the base's policy of every app of g on the reviews, team
// members and permissions read from the forge now. problem is set when
// nothing can be approved (a policy that does not load, an app without a
// plan).
func (p *Previewer) decide(ctx context.Context, forge ApprovalForge, g gate) (d approvals.Decision, problem string, err error) {
	pr, repo := g.pr, g.pr.Ref.Repo.String()
	policies := make([]approvals.Policy, len(g.apps))
	needOwners, needPlans := false, false
	for i, name := range g.apps {
		if policies[i], err = policyFor(g.base, name); err != nil {
			return d, fmt.Sprintf("the base's %s: %v", config.FileName, err), nil
		}
		if _, ok := g.plans[name]; !ok {
			return d, fmt.Sprintf("app %s does not render at this head; fix it first", name), nil
		}
		needOwners = needOwners || policies[i].Codeowners
		needPlans = needPlans || policies[i].DismissStale != approvals.StaleCommit
	}
	reviews, err := forge.ListReviews(ctx, pr.Ref)
	if err != nil {
		return d, "", fmt.Errorf("list the reviews of %s: %w", pr.Ref, err)
	}
	if !g.mergedAt.IsZero() {
		reviews = slices.DeleteFunc(reviews, func(r scm.Review) bool { return r.SubmittedAt.After(g.mergedAt) })
	}
	bot, err := forge.BotLogin(ctx)
	if err != nil {
		return d, "", fmt.Errorf("read the bot's identity: %w", err)
	}
	// CODEOWNERS and the plans of older commits are read only when a
	// policy asks for them.
	var owners *approvals.Codeowners
	if needOwners {
		if owners, err = codeowners(ctx, forge, pr); err != nil {
			return d, "", err
		}
	}
	if needPlans {
		if err := p.planReviewedCommits(ctx, forge, pr, g.base, reviews, g.apps); err != nil {
			return d, "", err
		}
	}
	checks := make([]approvals.Check, 0, len(g.apps))
	for i, name := range g.apps {
		f := approvals.Facts{
			Now: g.now, Author: pr.Author, Bots: []string{bot},
			HeadSHA: pr.HeadSHA, PlanHash: g.plans[name],
			ChangedFiles: g.changed, Codeowners: owners,
		}
		for _, r := range reviews {
			plan, _ := p.planCache().get(repo, r.CommitSHA, name)
			f.Reviews = append(f.Reviews, approvals.Review{User: r.Author, State: approvals.ReviewState(r.State), SHA: r.CommitSHA, PlanHash: plan, At: r.SubmittedAt})
		}
		if err := lookUp(ctx, forge, pr.Ref.Repo, policies[i], &f); err != nil {
			return d, "", err
		}
		checks = append(checks, approvals.Check{App: name, Policy: policies[i], Facts: f})
	}
	return approvals.EvaluateAll(checks), "", nil
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

// policyFor is the base's approval policy of app: the one it names, else
// the policy named DefaultPolicy (also for an app the base does not have),
// else none (no approval needed; a changes request still blocks).
func policyFor(base *config.Repository, app string) (approvals.Policy, error) {
	name := DefaultPolicy
	if a, ok := base.App(app); ok && a.Approval != "" {
		name = a.Approval
	}
	pol, ok := base.Approval(name)
	if !ok {
		return approvals.Policy{}, nil
	}
	return pol.Policy()
}

// lookUp reads from the forge the facts the policy needs: who of the
// reviewers and required users may push, and the members of its teams and
// of the code owners' teams.
func lookUp(ctx context.Context, forge ApprovalForge, repo scm.RepoRef, policy approvals.Policy, f *approvals.Facts) error {
	needs := approvals.Needs(policy, *f)
	f.CanWrite = map[string]bool{}
	for _, user := range needs.Users {
		perm, err := forge.Permission(ctx, repo, user)
		if err != nil && !errors.Is(err, scm.ErrNotFound) {
			return fmt.Errorf("read %s's permission on %s: %w", user, repo, err)
		}
		f.CanWrite[user] = err == nil && perm.CanWrite()
	}
	f.Teams = map[string][]string{}
	for _, team := range needs.Teams {
		members, err := forge.TeamMembers(ctx, repo, team)
		if errors.Is(err, scm.ErrNotFound) {
			continue // a user, or no such team: nobody's membership
		}
		if err != nil {
			return fmt.Errorf("read the members of %s: %w", team, err)
		}
		f.Teams[team] = members
	}
	return nil
}

// codeownersPaths are where GitHub and GitLab look for CODEOWNERS, in
// their order.
var codeownersPaths = map[scm.Kind][]string{
	scm.GitHub: {".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS"},
	scm.GitLab: {"CODEOWNERS", "docs/CODEOWNERS", ".gitlab/CODEOWNERS"},
}

// codeowners reads the base's CODEOWNERS, nil when it has none. Like the
// policy, it comes from the base: a pull request cannot name its own
// owners.
func codeowners(ctx context.Context, forge scm.FileReader, pr *scm.PullRequest) (*approvals.Codeowners, error) {
	syntax := approvals.GitHub
	if pr.Ref.Repo.Kind == scm.GitLab {
		syntax = approvals.GitLab
	}
	for _, path := range codeownersPaths[pr.Ref.Repo.Kind] {
		data, err := forge.ReadFile(ctx, pr.Ref.Repo, pr.BaseSHA, path)
		if errors.Is(err, scm.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s at the base %s: %w", path, pr.BaseSHA, err)
		}
		owners, err := approvals.ParseCodeowners(string(data), syntax)
		if err != nil {
			return nil, fmt.Errorf("the base's %s: %w", path, err)
		}
		return owners, nil
	}
	return nil, nil
}

// approvedText describes a satisfied gate.
func approvedText(d approvals.Decision) string {
	if len(d.Approvers) == 0 {
		return "no approval needed"
	}
	names := make([]string, len(d.Approvers))
	for i, a := range d.Approvers {
		names[i] = "@" + a
	}
	return "approved by " + strings.Join(names, ", ")
}
