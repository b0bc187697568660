package github

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/scmtest/githubfake"
)

func TestPullRequestsOfCommit(t *testing.T) {
	fake, fs := setup(t)
	waits := fakeClock(fs)
	f := forgeFor(t, fs, installation)
	ctx := context.Background()
	var repoID int64
	fake.Update("acme/app", func(r *githubfake.Repo) {
		repoID = r.ID
		r.Pulls[200] = &githubfake.Pull{
			Number: 200, Title: "Ship", Author: "alice", State: "open", Merged: true,
			HeadSHA: "head200", HeadRef: "ship", BaseSHA: "base200", BaseRef: "main",
			MergeCommitSHA: "merge200", MergedAt: t0().Add(time.Hour), UpdatedAt: t0().Add(2 * time.Hour),
		}
		r.Pulls[201] = &githubfake.Pull{
			Number: 201, Title: "Open", Author: "bob", State: "open",
			HeadSHA: "head201", HeadRef: "open", BaseSHA: "base200", BaseRef: "main",
			MergeCommitSHA: "testmerge201", Commits: []string{"c1"}, UpdatedAt: t0(),
		}
	})

	merged, err := f.PullRequestsOfCommit(ctx, repoRef, "merge200")
	if err != nil {
		t.Fatal(err)
	}
	want := []scm.PullRequest{{
		Ref:   scm.PRRef{Repo: scm.RepoRef{Kind: scm.GitHub, FullName: "acme/app", ID: repoID}, Number: 200},
		Title: "Ship", Author: "alice", URL: "https://github.example/acme/app/pull/200", State: "merged",
		HeadSHA: "head200", HeadRef: "ship", BaseSHA: "base200", BaseRef: "main",
		CloneURL: "https://github.example/acme/app.git", HeadCloneURL: "https://github.example/acme/app.git",
		UpdatedAt: t0().Add(2 * time.Hour), MergeCommitSHA: "merge200", MergedAt: t0().Add(time.Hour),
	}}
	if diff := cmp.Diff(want, merged); diff != "" {
		t.Errorf("pull requests of the merge commit (-want +got):\n%s", diff)
	}
	got, err := f.GetPullRequest(ctx, want[0].Ref)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want[0], *got); diff != "" {
		t.Errorf("GetPullRequest of a merged pull request (-want +got):\n%s", diff)
	}

	// An open pull request's test merge commit is not its merge commit.
	open, err := f.PullRequestsOfCommit(ctx, repoRef, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if len(open) != 1 || open[0].Ref.Number != 201 || open[0].State != "open" || open[0].MergeCommitSHA != "" || !open[0].MergedAt.IsZero() {
		t.Errorf("pull requests of c1 = %+v, want 201 open and unmerged", open)
	}

	// Pull requests 2…140 share head cc: two pages, the first retried after
	// a rate limit.
	fake.Inject("GET", "/repos/acme/app/commits/cc/pulls", 1, githubfake.Response{Status: 429, Header: http.Header{"Retry-After": {"7"}}})
	many, err := f.PullRequestsOfCommit(ctx, repoRef, "cc")
	if err != nil {
		t.Fatal(err)
	}
	if len(many) != 139 || many[0].Ref.Number != 2 || many[138].Ref.Number != 140 {
		t.Errorf("pull requests of cc: %d, want 139 (2…140)", len(many))
	}
	if n := count(fake, "GET /repos/acme/app/commits/cc/pulls"); n != 3 {
		t.Errorf("%d requests, want 3 (a rate limit, then two pages of 100)", n)
	}
	if !slices.Equal(*waits, []time.Duration{7 * time.Second}) {
		t.Errorf("waits %v, want 7s", *waits)
	}

	none, err := f.PullRequestsOfCommit(ctx, repoRef, "direct-push")
	if err != nil || len(none) != 0 {
		t.Errorf("pull requests of a direct push = %v, %v; want none", none, err)
	}
	if _, err := f.PullRequestsOfCommit(ctx, scm.RepoRef{Kind: scm.GitHub, FullName: "acme/nope"}, "cc"); !errors.Is(err, scm.ErrNotFound) {
		t.Errorf("missing repository: %v, want ErrNotFound", err)
	}
}

func TestDefaultBranch(t *testing.T) {
	fake, fs := setup(t)
	f := forgeFor(t, fs, installation)
	ctx := context.Background()

	// An empty repository has a default branch without a head.
	if _, err := f.DefaultBranch(ctx, repoRef); !errors.Is(err, scm.ErrNotFound) {
		t.Errorf("default branch without commits: %v, want ErrNotFound", err)
	}
	for _, branch := range []string{"main", "release/2026"} {
		fake.Update("acme/app", func(r *githubfake.Repo) {
			r.DefaultBranch = branch
			r.Branches[branch] = "head-of-" + branch
			r.Branches["other"] = "nope"
		})
		got, err := f.DefaultBranch(ctx, repoRef)
		if err != nil {
			t.Fatal(err)
		}
		if want := (scm.Branch{Name: branch, SHA: "head-of-" + branch}); got.Name != want.Name || got.SHA != want.SHA || !strings.HasSuffix(got.CloneURL, "/acme/app.git") {
			t.Errorf("DefaultBranch = %+v, want %+v", got, want)
		}
	}
	if _, err := f.DefaultBranch(ctx, scm.RepoRef{Kind: scm.GitHub, FullName: "acme/nope"}); !errors.Is(err, scm.ErrNotFound) {
		t.Errorf("missing repository: %v, want ErrNotFound", err)
	}
}

func TestDeployments(t *testing.T) {
	fake, fs := setup(t)
	f := forgeFor(t, fs, installation)
	ctx := context.Background()
	// The bot's own pending status: GitHub would refuse the deployment if
	// it verified the commit's statuses.
	if err := f.SetStatus(ctx, repoRef, scm.Status{SHA: "aaaa", Context: "gitops/sync", State: scm.StatusPending}); err != nil {
		t.Fatal(err)
	}
	id, err := f.CreateDeployment(ctx, repoRef, scm.Deployment{Ref: "main", SHA: "aaaa", Environment: "prod/app", Description: "sync of app"})
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("é", 200)
	for _, st := range []scm.DeploymentState{scm.DeploymentInProgress, scm.DeploymentSuccess, scm.DeploymentFailure} {
		if err := f.SetDeploymentState(ctx, repoRef, id, st, long); err != nil {
			t.Fatalf("SetDeploymentState(%s): %v", st, err)
		}
	}
	fake.Update("acme/app", func(r *githubfake.Repo) {
		if len(r.Deployments) != 1 {
			t.Fatalf("%d deployments, want 1", len(r.Deployments))
		}
		d := r.Deployments[0]
		want := githubfake.Deployment{
			ID: id, Ref: "aaaa", SHA: "aaaa", Task: "deploy", Environment: "prod/app", Description: "sync of app",
			Creator: "gitops-test[bot]", RequiredContexts: []string{}, CreatedAt: d.CreatedAt,
		}
		trimmed := strings.Repeat("é", 139) + "…"
		for i, st := range []string{"in_progress", "success", "failure"} {
			want.Statuses = append(want.Statuses, githubfake.DeploymentStatus{ID: d.Statuses[i].ID, State: st, Description: trimmed})
		}
		if diff := cmp.Diff(want, d); diff != "" {
			t.Errorf("deployment (-want +got):\n%s", diff)
		}
	})

	if err := f.SetDeploymentState(ctx, repoRef, 424242, scm.DeploymentSuccess, ""); !errors.Is(err, scm.ErrNotFound) {
		t.Errorf("status of a missing deployment: %v, want ErrNotFound", err)
	}
	if _, err := f.CreateDeployment(ctx, scm.RepoRef{Kind: scm.GitHub, FullName: "acme/nope"}, scm.Deployment{SHA: "aaaa", Environment: "app"}); !errors.Is(err, scm.ErrNotFound) {
		t.Errorf("deployment in a missing repository: %v, want ErrNotFound", err)
	}
}
