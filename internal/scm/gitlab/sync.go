package gitlab

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	gl "gitlab.com/gitlab-org/api/client-go"

	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
)

// PullRequestsOfCommit lists the MRs GitLab associates with sha (merged as
// it, squashed into it, or with it among their commits), across all pages.
func (f *Forge) PullRequestsOfCommit(ctx context.Context, repo scm.RepoRef, sha string) ([]scm.PullRequest, error) {
	id, err := pid(repo)
	if err != nil {
		return nil, err
	}
	// client-go takes no ListOptions here: pages of GitLab's default size.
	mrs, err := all(ctx, f, fmt.Sprintf("listing merge requests of %s@%s", repo, sha), func(lo gl.ListOptions, o gl.RequestOptionFunc) ([]*gl.BasicMergeRequest, *gl.Response, error) {
		return f.c.Commits.ListMergeRequestsByCommit(id, sha, gl.WithOffsetPaginationParameters(lo.Page), o)
	})
	if err != nil {
		return nil, err
	}
	// The list answer lacks the diff refs (base SHA) and the clone URL the
	// gate needs: each merge request is read again in full.
	var out []scm.PullRequest
	for _, mr := range mrs {
		if mr == nil {
			continue
		}
		full, err := f.GetPullRequest(ctx, pullRequest(repo, mr).Ref)
		if err != nil {
			return nil, err
		}
		out = append(out, *full)
	}
	return out, nil
}

// DefaultBranch reads the project's default branch, then its head. An
// empty repository has none: scm.ErrNotFound.
func (f *Forge) DefaultBranch(ctx context.Context, repo scm.RepoRef) (scm.Branch, error) {
	id, err := pid(repo)
	if err != nil {
		return scm.Branch{}, err
	}
	p, err := f.projectByID(ctx, id)
	if err != nil {
		return scm.Branch{}, err
	}
	if p.DefaultBranch == "" {
		return scm.Branch{}, fmt.Errorf("gitlab: %s has no default branch (an empty repository?): %w", repo, scm.ErrNotFound)
	}
	b, err := fetch(ctx, f, fmt.Sprintf("reading branch %s of %s", p.DefaultBranch, repo), func(o gl.RequestOptionFunc) (*gl.Branch, *gl.Response, error) {
		return f.c.Branches.GetBranch(id, p.DefaultBranch, o)
	})
	if err != nil {
		return scm.Branch{}, err
	}
	out := scm.Branch{Name: b.Name, CloneURL: p.HTTPURLToRepo}
	if b.Commit != nil {
		out.SHA = b.Commit.ID
	}
	return out, nil
}

// CreateDeployment creates a running deployment of d.SHA on branch d.Ref
// to d.Environment (which GitLab creates when missing). GitLab
// deployments have no description: d.Description is not stored.
func (f *Forge) CreateDeployment(ctx context.Context, repo scm.RepoRef, d scm.Deployment) (int64, error) {
	id, err := pid(repo)
	if err != nil {
		return 0, err
	}
	if d.Ref == "" || d.SHA == "" || d.Environment == "" {
		return 0, fmt.Errorf("gitlab: a deployment needs a branch, a commit and an environment, got %q, %q, %q", d.Ref, d.SHA, d.Environment)
	}
	opt := &gl.CreateProjectDeploymentOptions{
		Environment: &d.Environment, Ref: &d.Ref, SHA: &d.SHA,
		Tag: gl.Ptr(false), Status: gl.Ptr(gl.DeploymentStatusRunning),
	}
	var dep *gl.Deployment
	err = f.write(ctx, fmt.Sprintf("creating a deployment of %s to %s in %s", d.SHA, d.Environment, repo), func(o gl.RequestOptionFunc) (*gl.Response, error) {
		var resp *gl.Response
		var err error
		dep, resp, err = f.c.Deployments.CreateProjectDeployment(id, opt, o)
		return resp, err
	})
	if err != nil {
		return 0, err
	}
	return dep.ID, nil
}

// deploymentStatus maps a neutral deployment state to GitLab's.
func deploymentStatus(s scm.DeploymentState) (gl.DeploymentStatusValue, error) {
	switch s {
	case scm.DeploymentInProgress:
		return gl.DeploymentStatusRunning, nil
	case scm.DeploymentSuccess:
		return gl.DeploymentStatusSuccess, nil
	case scm.DeploymentFailure:
		return gl.DeploymentStatusFailed, nil
	}
	return "", fmt.Errorf("gitlab: unknown deployment state %q", s)
}

// SetDeploymentState sets the deployment's status: running, success or
// failed. GitLab deployments have no description: description is not
// stored. Setting the status the deployment already has is not an error
// (GitLab answers 400: its state machine has no such transition).
func (f *Forge) SetDeploymentState(ctx context.Context, repo scm.RepoRef, deployment int64, state scm.DeploymentState, _ string) error {
	id, err := pid(repo)
	if err != nil {
		return err
	}
	status, err := deploymentStatus(state)
	if err != nil {
		return err
	}
	what := fmt.Sprintf("setting deployment %d of %s to %s", deployment, repo, status)
	err = f.write(ctx, what, func(o gl.RequestOptionFunc) (*gl.Response, error) {
		_, resp, err := f.c.Deployments.UpdateProjectDeployment(id, deployment, &gl.UpdateProjectDeploymentOptions{Status: &status}, o)
		return resp, err
	})
	var er *gl.ErrorResponse
	if errors.As(err, &er) && er.Response != nil && er.Response.StatusCode == http.StatusBadRequest {
		dep, gerr := fetch(ctx, f, fmt.Sprintf("reading deployment %d of %s", deployment, repo), func(o gl.RequestOptionFunc) (*gl.Deployment, *gl.Response, error) {
			return f.c.Deployments.GetProjectDeployment(id, deployment, o)
		})
		if gerr == nil && dep.Status == string(status) {
			return nil
		}
	}
	return err
}
