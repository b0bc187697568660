// Package gate decides whether a pull request's change may be applied: the
// approval policy of every app it touches, read from the pull request's
// base (never its head), judged on the reviews, write permissions, team
// members and code owners read from the forge when it decides, and on the
// plan hashes the reviewers saw. The bot's gitops/approval status and its
// syncs, and `kubectl gitops apply --require-approval`, decide with it.
package gate

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

// DefaultPolicy is the name of the base's approval policy for apps that
// name none, and for apps a pull request adds.
const DefaultPolicy = "default"

// Forge is what deciding reads from a forge.
type Forge interface {
	scm.FileReader
	scm.ReviewLister
	scm.PermissionChecker
	scm.TeamReader
	scm.Identity
}

// Change is what one decision judges: the apps of a pull request and the
// plans that would be applied.
type Change struct {
	PR *scm.PullRequest
	// Base is the pull request's base gitops.yaml: the policies.
	Base *config.Repository
	Apps []string
	// Changed are the files the pull request changes (for CODEOWNERS).
	Changed []string
	// Plans are the plan hashes judged, by app: the head's for the gate
	// and /gitops sync, the merged commit's for a sync on merge, the
	// checkout's for apply --require-approval. An app without one cannot
	// be approved.
	Plans map[string]string
	// MergedAt, when set, leaves out reviews submitted after it: the
	// policy must have been satisfied at the merge.
	MergedAt time.Time
	// Now is when the deploy windows are judged.
	Now time.Time
}

// ReviewedPlans gives the plan hash of an app at the commits approvals
// were given on ("" when unknown), for the reviews of one decision. It is
// called only when a policy keeps approvals across commits by plan.
type ReviewedPlans func(ctx context.Context, reviews []scm.Review, apps []string) (plan func(sha, app string) string, err error)

// Decide evaluates the base's policy of every app of c. problem is set
// when nothing can be approved (a policy that does not load, an app
// without a plan); err is a failed read of the forge.
func Decide(ctx context.Context, forge Forge, c Change, reviewed ReviewedPlans) (d approvals.Decision, problem string, err error) {
	pr := c.PR
	policies := make([]approvals.Policy, len(c.Apps))
	needOwners, needPlans := false, false
	for i, name := range c.Apps {
		if policies[i], err = PolicyFor(c.Base, name); err != nil {
			return d, fmt.Sprintf("the base's %s: %v", config.FileName, err), nil
		}
		if _, ok := c.Plans[name]; !ok {
			return d, fmt.Sprintf("app %s does not render at this commit; fix it first", name), nil
		}
		needOwners = needOwners || policies[i].Codeowners
		needPlans = needPlans || policies[i].DismissStale != approvals.StaleCommit
	}
	reviews, err := forge.ListReviews(ctx, pr.Ref)
	if err != nil {
		return d, "", fmt.Errorf("list the reviews of %s: %w", pr.Ref, err)
	}
	if !c.MergedAt.IsZero() {
		reviews = slices.DeleteFunc(reviews, func(r scm.Review) bool { return r.SubmittedAt.After(c.MergedAt) })
	}
	bot, err := forge.BotLogin(ctx)
	if err != nil {
		return d, "", fmt.Errorf("read the bot's identity: %w", err)
	}
	// CODEOWNERS and the plans of older commits are read only when a
	// policy asks for them.
	var owners *approvals.Codeowners
	if needOwners {
		if owners, err = Codeowners(ctx, forge, pr); err != nil {
			return d, "", err
		}
	}
	planAt := func(string, string) string { return "" }
	if needPlans && reviewed != nil {
		if planAt, err = reviewed(ctx, reviews, c.Apps); err != nil {
			return d, "", err
		}
	}
	checks := make([]approvals.Check, 0, len(c.Apps))
	for i, name := range c.Apps {
		f := approvals.Facts{
			Now: c.Now, Author: pr.Author, Bots: []string{bot},
			HeadSHA: pr.HeadSHA, PlanHash: c.Plans[name],
			ChangedFiles: c.Changed, Codeowners: owners,
		}
		for _, r := range reviews {
			f.Reviews = append(f.Reviews, approvals.Review{User: r.Author, State: approvals.ReviewState(r.State), SHA: r.CommitSHA, PlanHash: planAt(r.CommitSHA, name), At: r.SubmittedAt})
		}
		if err := lookUp(ctx, forge, pr.Ref.Repo, policies[i], &f); err != nil {
			return d, "", err
		}
		checks = append(checks, approvals.Check{App: name, Policy: policies[i], Facts: f})
	}
	return approvals.EvaluateAll(checks), "", nil
}

// PolicyFor is the base's approval policy of app: the one it names, else
// the policy named DefaultPolicy (also for an app the base does not have),
// else none (no approval needed; a changes request still blocks).
func PolicyFor(base *config.Repository, app string) (approvals.Policy, error) {
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
func lookUp(ctx context.Context, forge Forge, repo scm.RepoRef, policy approvals.Policy, f *approvals.Facts) error {
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

// Codeowners reads the base's CODEOWNERS, nil when it has none. Like the
// policy, it comes from the base: a pull request cannot name its own
// owners.
func Codeowners(ctx context.Context, forge scm.FileReader, pr *scm.PullRequest) (*approvals.Codeowners, error) {
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

// BaseProblem says why a pull request's base has no usable gitops.yaml:
// a note for the reader, and whether the file is there but invalid.
type BaseProblem struct {
	Note    string
	Invalid bool
}

// BaseConfig reads gitops.yaml at the pull request's base: policy comes
// from the base, and the head may not widen it. Without a usable file it
// returns nil and the problem; err is a failed read to retry.
func BaseConfig(ctx context.Context, forge scm.FileReader, pr *scm.PullRequest) (*config.Repository, *BaseProblem, error) {
	data, err := forge.ReadFile(ctx, pr.Ref.Repo, pr.BaseSHA, config.FileName)
	if errors.Is(err, scm.ErrNotFound) {
		return nil, &BaseProblem{Note: "The base branch has no " + config.FileName + "; nothing to preview."}, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read %s at the base %s: %w", config.FileName, pr.BaseSHA, err)
	}
	base, err := config.Parse(config.FileName+" (base)", data)
	if err != nil {
		return nil, &BaseProblem{Note: "The base branch's " + config.FileName + " is invalid, so nothing is previewed: " + err.Error(), Invalid: true}, nil
	}
	return base, nil, nil
}

// ApprovedText describes a satisfied gate: "approved by @a, @b".
func ApprovedText(d approvals.Decision) string {
	if len(d.Approvers) == 0 {
		return "no approval needed"
	}
	names := make([]string, len(d.Approvers))
	for i, a := range d.Approvers {
		names[i] = "@" + a
	}
	return "approved by " + strings.Join(names, ", ")
}

// Only is the decision of the one app a decision judged, else the whole.
func Only(d approvals.Decision) approvals.Decision {
	if len(d.Apps) == 1 {
		return d.Apps[0]
	}
	return d
}

// StalePlan reports whether the decision counts approvals given on
// another plan as stale (the plan changed since they were given).
func StalePlan(d approvals.Decision) bool {
	for _, r := range d.ApprovalReasons {
		if strings.Contains(r, "plan differs") {
			return true
		}
	}
	return false
}
