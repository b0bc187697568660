package plugin

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kubectl-gitops/kubectl-gitops/internal/config"
	"github.com/kubectl-gitops/kubectl-gitops/internal/engine"
	"github.com/kubectl-gitops/kubectl-gitops/internal/gate"
	"github.com/kubectl-gitops/kubectl-gitops/internal/gitrepo"
	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
	"github.com/kubectl-gitops/kubectl-gitops/internal/scm/github"
	"github.com/kubectl-gitops/kubectl-gitops/internal/scm/gitlab"
)

// maxReviewedCommits bounds the older commits one check renders to learn
// the plans their approvals saw, as the bot does.
const maxReviewedCommits = 4

// approvalForge is what apply --require-approval reads from the forge.
type approvalForge interface {
	gate.Forge
	scm.CommitPullRequests
	scm.PullRequestReader
}

// forgeFromEnv connects to the forge whose token the environment holds,
// for the repository --repository names or the CI system sets: GitHub
// (GITHUB_TOKEN, GITHUB_API_URL, GITHUB_REPOSITORY) or GitLab
// (GITLAB_TOKEN, CI_API_V4_URL, CI_PROJECT_PATH).
func forgeFromEnv(ctx context.Context, repository string) (approvalForge, scm.RepoRef, error) {
	var (
		forges scm.Forges
		repo   scm.RepoRef
	)
	switch {
	case os.Getenv("GITHUB_TOKEN") != "":
		f, err := github.New(github.Options{Token: os.Getenv("GITHUB_TOKEN"), BaseURL: os.Getenv("GITHUB_API_URL")})
		if err != nil {
			return nil, repo, err
		}
		forges, repo = f, scm.RepoRef{Kind: scm.GitHub, FullName: cmp.Or(repository, os.Getenv("GITHUB_REPOSITORY"))}
	case os.Getenv("GITLAB_TOKEN") != "":
		f, err := gitlab.New(gitlab.Options{Token: os.Getenv("GITLAB_TOKEN"), BaseURL: os.Getenv("CI_API_V4_URL")})
		if err != nil {
			return nil, repo, err
		}
		forges, repo = f, scm.RepoRef{Kind: scm.GitLab, FullName: cmp.Or(repository, os.Getenv("CI_PROJECT_PATH"))}
	default:
		return nil, repo, errors.New("--require-approval reads the reviews from the forge: set GITHUB_TOKEN (GitHub) or GITLAB_TOKEN (GitLab) in the environment")
	}
	if repo.FullName == "" {
		return nil, repo, errors.New("--require-approval needs the repository: pass --repository owner/name (or set GITHUB_REPOSITORY / CI_PROJECT_PATH)")
	}
	forge, err := forges.Forge(ctx, repo, 0)
	if err != nil {
		return nil, repo, fmt.Errorf("connect to %s: %w", repo, err)
	}
	return forge, repo, nil
}

// approvalTarget is what --require-approval judges: the commit of the
// checkout and the plan of each app about to be applied.
type approvalTarget struct {
	sha   string
	apps  []string
	plans map[string]string
	// render renders the apps of another commit of the repository and
	// returns their plans (the pull request's head, reviewed commits).
	render func(ctx context.Context, sha string) (map[string]string, error)
}

// checkApproval refuses unless the checkout's commit is the head of an
// open pull request, or the merge of one, approved under the policies of
// its base for every app applied, with the plan reviewers approved.
func checkApproval(ctx context.Context, forge approvalForge, repo scm.RepoRef, at approvalTarget, now time.Time) (approvers []string, pr *scm.PullRequest, err error) {
	prs, err := forge.PullRequestsOfCommit(ctx, repo, at.sha)
	if err != nil {
		return nil, nil, fmt.Errorf("find the pull request of %s: %w", at.sha, err)
	}
	var head, merged *scm.PullRequest
	for i := range prs {
		p := &prs[i]
		if p.Ref.Repo.FullName == "" {
			p.Ref.Repo = repo
		}
		switch {
		case p.State == "open" && p.HeadSHA == at.sha && head == nil:
			head = p
		case p.State == "merged" && p.MergeCommitSHA == at.sha && (merged == nil || p.MergedAt.After(merged.MergedAt)):
			merged = p
		}
	}
	pr = cmp.Or(head, merged)
	if pr == nil {
		return nil, nil, fmt.Errorf("not approved: commit %s is neither the head of an open pull request of %s nor the merge of one; apply an approved pull request's head or its merge", at.sha, repo.FullName)
	}
	base, problem, err := gate.BaseConfig(ctx, forge, pr)
	if err != nil {
		return nil, pr, err
	}
	if problem != nil {
		return nil, pr, fmt.Errorf("not approved: %s has no usable policy at its base: %s", pr.Ref, problem.Note)
	}
	approved := at.plans
	var mergedAt time.Time
	if pr == merged {
		// The reviewers saw the head: the merge must bring exactly its
		// plan, and the policy must have been met before the merge.
		if approved, err = at.render(ctx, pr.HeadSHA); err != nil {
			return nil, pr, fmt.Errorf("render the head %s of %s: %w", pr.HeadSHA, pr.Ref, err)
		}
		for _, app := range at.apps {
			if approved[app] != at.plans[app] {
				return nil, pr, fmt.Errorf("not approved: the plan of %s at %s differs from the plan %s's reviewers approved at %s (the merge combined it with other changes); open a pull request for the result and have it approved", app, engine.ShortRevision(at.sha), pr.Ref, engine.ShortRevision(pr.HeadSHA))
			}
		}
		mergedAt = pr.MergedAt
	}
	changed, err := forge.ChangedFiles(ctx, pr.Ref)
	if err != nil {
		return nil, pr, fmt.Errorf("list the files %s changes: %w", pr.Ref, err)
	}
	d, problemText, err := gate.Decide(ctx, forge, gate.Change{PR: pr, Base: base, Apps: at.apps, Changed: changed, Plans: at.plans, MergedAt: mergedAt, Now: now},
		func(ctx context.Context, reviews []scm.Review, _ []string) (func(sha, app string) string, error) {
			plans := map[string]map[string]string{pr.HeadSHA: approved, at.sha: at.plans}
			for i := len(reviews) - 1; i >= 0 && len(plans) < maxReviewedCommits+2; i-- {
				sha := reviews[i].CommitSHA
				if _, ok := plans[sha]; ok || sha == "" || reviews[i].State != scm.ReviewApproved {
					continue
				}
				p, err := at.render(ctx, sha)
				if err != nil {
					p = nil // a commit gone (force-pushed away): its approvals count for no plan
				}
				plans[sha] = p
			}
			return func(sha, app string) string { return plans[sha][app] }, nil
		})
	switch {
	case err != nil:
		return nil, pr, err
	case problemText != "":
		return nil, pr, fmt.Errorf("not approved: %s", problemText)
	case !d.Allowed:
		return nil, pr, fmt.Errorf("not approved under the policy of %s's base: %s", pr.Ref, strings.Join(d.Reasons, "; "))
	}
	return d.Approvers, pr, nil
}

// commitOf is the commit checked out in the work tree at dir; it refuses a
// work tree with changes, whose render is no commit's. It reads the
// repository with go-git: the kubectl-gitops image has no git.
func commitOf(dir string) (string, error) {
	l, err := gitrepo.OpenLocal(dir)
	if err != nil {
		return "", fmt.Errorf("--require-approval applies a Git commit: %w", err)
	}
	head, err := l.Head()
	if err != nil {
		return "", fmt.Errorf("--require-approval applies a Git commit: %s has none checked out: %w", dir, err)
	}
	changed, err := l.Changed()
	if err != nil {
		return "", fmt.Errorf("read the state of the work tree %s: %w", dir, err)
	}
	if len(changed) > 0 {
		more := ""
		if len(changed) > 3 {
			changed, more = changed[:3], fmt.Sprintf(" and %d more", len(changed)-3)
		}
		return "", fmt.Errorf("--require-approval applies a commit, but the work tree %s has uncommitted changes (%s%s): commit or stash them", dir, strings.Join(changed, ", "), more)
	}
	return head, nil
}

// worktreeAt checks commit sha of the repository at dir out into a
// temporary directory, fetching it from origin when the clone lacks it (a
// shallow CI clone), and returns it and how to remove it.
func worktreeAt(ctx context.Context, dir, sha string) (string, func(), error) {
	l, err := gitrepo.OpenLocal(dir)
	if err != nil {
		return "", nil, err
	}
	tmp, err := os.MkdirTemp("", "kubectl-gitops-approval-")
	if err != nil {
		return "", nil, err
	}
	remove := func() { os.RemoveAll(tmp) }
	if l.HasCommit(sha) {
		wt := filepath.Join(tmp, "tree")
		if err := l.CheckoutTo(sha, wt); err != nil {
			remove()
			return "", nil, err
		}
		return wt, remove, nil
	}
	origin := l.Origin()
	if origin == "" {
		remove()
		return "", nil, fmt.Errorf("commit %s is not in the clone at %s, which has no remote origin to fetch it from; fetch it (git fetch origin %s) and run again", sha, dir, sha)
	}
	url, auth := originAuth(origin, os.Getenv)
	co, err := (&gitrepo.Fetcher{CacheDir: tmp, Auth: auth}).Fetch(ctx, url, sha)
	if err != nil {
		remove()
		return "", nil, fmt.Errorf("commit %s is not in the clone and fetching it from origin failed: %w", sha, err)
	}
	return co.Dir, remove, nil
}

// originAuth is the URL to fetch origin from and its credentials: those in
// the URL (a CI clone's, such as GitLab's gitlab-ci-token), else the forge
// token of the environment, sent only to that forge's own host
// (GITHUB_SERVER_URL, default https://github.com; CI_SERVER_URL, default
// https://gitlab.com) over the same scheme.
func originAuth(origin string, getenv func(string) string) (string, func(string) (string, string, bool)) {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") {
		return origin, nil
	}
	if pass, ok := u.User.Password(); ok {
		user := u.User.Username()
		u.User = nil
		stripped := u.String()
		return stripped, func(to string) (string, string, bool) { return user, pass, to == stripped }
	}
	var user, token, server string
	switch {
	case getenv("GITHUB_TOKEN") != "":
		user, token, server = "x-access-token", getenv("GITHUB_TOKEN"), cmp.Or(getenv("GITHUB_SERVER_URL"), "https://github.com")
	case getenv("GITLAB_TOKEN") != "":
		user, token, server = "oauth2", getenv("GITLAB_TOKEN"), cmp.Or(getenv("CI_SERVER_URL"), "https://gitlab.com")
	default:
		return origin, nil
	}
	s, err := url.Parse(server)
	if err != nil || s.Scheme != u.Scheme || !strings.EqualFold(s.Host, u.Host) {
		return origin, nil
	}
	return origin, func(to string) (string, string, bool) { return user, token, to == origin }
}

// plansOf hashes the plan of each rendered app target.
func plansOf(targets []*target, rendered []engine.Rendered) (map[string]string, error) {
	plans := map[string]string{}
	for i, t := range targets {
		if t.app == nil {
			continue
		}
		h, err := engine.PlanHash(&rendered[i])
		if err != nil {
			return nil, fmt.Errorf("app %s: %w", t.app.Name, err)
		}
		plans[t.app.Name] = h
	}
	return plans, nil
}

// renderPlansAt renders, at commit sha of the repository at dir, the apps
// named, as apply renders them, and returns their plans; an app missing or
// failing there has none.
func (o *ApplyOptions) renderPlansAt(ctx context.Context, dir, sha string, apps []string) (map[string]string, error) {
	wt, remove, err := worktreeAt(ctx, dir, sha)
	if err != nil {
		return nil, err
	}
	defer remove()
	repo, err := config.Load(filepath.Join(wt, config.FileName))
	if err != nil {
		return nil, fmt.Errorf("%s at %s: %w", config.FileName, engine.ShortRevision(sha), err)
	}
	var targets []*target
	for _, name := range apps {
		if app, ok := repo.App(name); ok {
			targets = append(targets, &target{arg: name, repo: repo, app: app, path: filepath.Join(wt, app.Path), root: wt})
		}
	}
	if len(targets) == 0 {
		return map[string]string{}, nil
	}
	e, err := o.engine(targets[0])
	if err != nil {
		return nil, err
	}
	rendered := e.Render(ctx, o.units(targets, ""))
	plans := map[string]string{}
	for i, t := range targets {
		if h, err := engine.PlanHash(&rendered[i]); err == nil {
			plans[t.app.Name] = h
		}
	}
	return plans, nil
}

// requireApproval is apply --require-approval: it refuses unless the
// checkout's commit is approved (checkApproval) for every app of targets,
// and returns the provenance to record on the inventories.
func (o *ApplyOptions) requireApproval(ctx context.Context, t *target, targets []*target, rendered []engine.Rendered) (*approvalResult, error) {
	if t.repo == nil || slices.ContainsFunc(targets, func(t *target) bool { return t.app == nil || t.app.Source != nil }) {
		return nil, errors.New("--require-approval applies apps of gitops.yaml from the repository's own tree: pass an app or the repository's folder, not a path or an app with a remote source")
	}
	sha, err := commitOf(t.repo.Dir)
	if err != nil {
		return nil, err
	}
	plans, err := plansOf(targets, rendered)
	if err != nil {
		return nil, fmt.Errorf("not approved: %w", err)
	}
	apps := make([]string, 0, len(targets))
	for _, one := range targets {
		apps = append(apps, one.app.Name)
	}
	forge, repo, err := forgeFromEnv(ctx, o.Repository)
	if err != nil {
		return nil, err
	}
	approvers, pr, err := checkApproval(ctx, forge, repo, approvalTarget{
		sha: sha, apps: apps, plans: plans,
		render: func(ctx context.Context, at string) (map[string]string, error) {
			return o.renderPlansAt(ctx, t.repo.Dir, at, apps)
		},
	}, time.Now())
	if err != nil {
		return nil, err
	}
	name := pr.URL
	if name == "" {
		name = pr.Ref.String()
	}
	return &approvalResult{pr: name, approvers: approvers, plans: plans}, nil
}

// approvalResult is what an approved apply records on each inventory.
type approvalResult struct {
	pr        string
	approvers []string
	plans     map[string]string
}
