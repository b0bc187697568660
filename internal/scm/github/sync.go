package github

import (
	"context"
	"fmt"
	"net/url"

	gh "github.com/google/go-github/v88/github"

	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
)

// PullRequestsOfCommit lists what GitHub associates with sha: for a commit
// of the default branch, the merged pull request that brought it; for
// another, the open ones that contain it.
func (g *forge) PullRequestsOfCommit(ctx context.Context, repo scm.RepoRef, sha string) ([]scm.PullRequest, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return nil, err
	}
	var out []scm.PullRequest
	opts := &gh.ListOptions{PerPage: perPage}
	for {
		ps, resp, err := g.c.PullRequests.ListPullRequestsWithCommit(ctx, owner, name, sha, opts)
		if err != nil {
			return nil, mapErr(fmt.Sprintf("listing the pull requests of %s@%s", repo.FullName, sha), err)
		}
		for _, p := range ps {
			out = append(out, pullRequest(repo, p))
		}
		if resp.NextPage == 0 {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

func (g *forge) DefaultBranch(ctx context.Context, repo scm.RepoRef) (scm.Branch, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return scm.Branch{}, err
	}
	r, _, err := g.c.Repositories.Get(ctx, owner, name)
	if err != nil {
		return scm.Branch{}, mapErr(fmt.Sprintf("reading %s", repo.FullName), err)
	}
	branch := r.GetDefaultBranch()
	// Not Repositories.GetBranch: it reads the response itself, so a 404
	// (the default branch of an empty repository) would not be an
	// *gh.ErrorResponse for mapErr.
	u := fmt.Sprintf("repos/%s/%s/branches/%s", url.PathEscape(owner), url.PathEscape(name), url.PathEscape(branch))
	req, err := g.c.NewRequest(ctx, "GET", u, nil)
	if err != nil {
		return scm.Branch{}, fmt.Errorf("github: reading branch %s: %w", branch, err)
	}
	var b gh.Branch
	if _, err := g.c.Do(req, &b); err != nil {
		return scm.Branch{}, mapErr(fmt.Sprintf("reading branch %s of %s", branch, repo.FullName), err)
	}
	return scm.Branch{Name: branch, SHA: b.GetCommit().GetSHA(), CloneURL: r.GetCloneURL()}, nil
}

// CreateDeployment deploys d.SHA (d.Ref is for GitLab) as it is: without
// merging the default branch into it, and without GitHub's check of the
// commit's statuses, which the bot's own pending gitops/* statuses would
// fail.
func (g *forge) CreateDeployment(ctx context.Context, repo scm.RepoRef, d scm.Deployment) (int64, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return 0, err
	}
	dep, _, err := g.c.Repositories.CreateDeployment(ctx, owner, name, &gh.DeploymentRequest{
		Ref:                  &d.SHA,
		Environment:          &d.Environment,
		Description:          &d.Description,
		AutoMerge:            gh.Ptr(false),
		RequiredContexts:     &[]string{},
		TransientEnvironment: gh.Ptr(false),
	})
	if err != nil {
		return 0, mapErr(fmt.Sprintf("creating a deployment of %s@%s to %s", repo.FullName, d.SHA, d.Environment), err)
	}
	return dep.GetID(), nil
}

func (g *forge) SetDeploymentState(ctx context.Context, repo scm.RepoRef, id int64, state scm.DeploymentState, description string) error {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return err
	}
	st := gh.DeploymentStatusRequest{State: gh.Ptr(string(state))}
	if d := trimRunes(description, statusDescriptionMax); d != "" {
		st.Description = &d
	}
	if _, _, err := g.c.Repositories.CreateDeploymentStatus(ctx, owner, name, id, &st); err != nil {
		return mapErr(fmt.Sprintf("setting deployment %d of %s to %s", id, repo.FullName, state), err)
	}
	return nil
}
