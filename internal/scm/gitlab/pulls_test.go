package gitlab

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/gittest"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/scmtest/gitlabfake"
)

const updateBranch = "gitops/images/app"

// withBranches gives the fake a real repository: main, and updateBranch one
// commit ahead of it. It returns their heads.
func (fx *fixture) withBranches(t *testing.T) (base, head string) {
	t.Helper()
	repo := gittest.NewRepo(t, map[string]string{"gitops.yaml": "apps: []\n"})
	base = repo.Head(t)
	repo.Checkout(t, base)
	head = repo.Commit(t, map[string]string{"deploy/app/kustomization.yaml": "images: [{name: app, newTag: v2}]\n"}, "app: v2")
	repo.Branch(t, updateBranch)
	fx.fake.SetBranchResolver(func(fullName, branch string) (string, bool) {
		if fullName != project {
			return "", false
		}
		return repo.Resolve(t, branch)
	})
	return base, head
}

func TestOpenEditClosePullRequest(t *testing.T) {
	fx := setup(t)
	base, head := fx.withBranches(t)
	ctx := context.Background()

	long := strings.Repeat("é", 300)
	got, err := fx.forge.CreatePullRequest(ctx, fx.repo, scm.NewPullRequest{Title: long, Body: "Bumps **app**.", Head: updateBranch, Base: "main"})
	if err != nil {
		t.Fatal(err)
	}
	web := strings.TrimSuffix(fx.fake.URL, "/api/v4") + "/" + project
	mergeable := true
	want := scm.PullRequest{
		Ref:   scm.PRRef{Repo: scm.RepoRef{Kind: scm.GitLab, FullName: project, ID: got.Ref.Repo.ID}, Number: 1},
		Title: strings.Repeat("é", 254) + "…", Author: "gitops-bot", URL: web + "/-/merge_requests/1",
		State: "open", HeadSHA: head, HeadRef: updateBranch, BaseSHA: base, BaseRef: "main",
		CloneURL: web + ".git", HeadCloneURL: web + ".git", Mergeable: &mergeable,
	}
	ignoreTime := cmpopts.IgnoreFields(scm.PullRequest{}, "UpdatedAt")
	if diff := cmp.Diff(want, *got, ignoreTime); diff != "" {
		t.Errorf("CreatePullRequest (-want +got):\n%s", diff)
	}
	if got.Ref.Repo.ID == 0 || got.UpdatedAt.IsZero() {
		t.Errorf("CreatePullRequest: project id %d, updated at %v; want both set", got.Ref.Repo.ID, got.UpdatedAt)
	}
	read, err := fx.forge.GetPullRequest(ctx, fx.pr(1))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(*got, *read); diff != "" {
		t.Errorf("GetPullRequest differs from what CreatePullRequest returned (-created +read):\n%s", diff)
	}
	open, err := fx.forge.ListOpenPullRequests(ctx, fx.repo)
	if err != nil || len(open) != 1 || open[0].HeadRef != updateBranch {
		t.Errorf("ListOpenPullRequests = %+v, %v; want the new merge request", open, err)
	}

	if err := fx.forge.EditPullRequest(ctx, fx.pr(1), "app: v2 "+long, "Bumps **app** to v2."); err != nil {
		t.Fatal(err)
	}
	if err := fx.forge.ClosePullRequest(ctx, fx.pr(1)); err != nil {
		t.Fatal(err)
	}
	if err := fx.forge.ClosePullRequest(ctx, fx.pr(1)); err != nil {
		t.Errorf("closing a closed merge request: %v", err)
	}
	created := fx.fake.CreatedMergeRequests(project)
	if len(created) != 1 {
		t.Fatalf("%d merge requests created, want 1", len(created))
	}
	mr := created[0]
	if n := len([]rune(mr.Title)); n != 255 || !strings.HasPrefix(mr.Title, "app: v2 é") || mr.Description != "Bumps **app** to v2." {
		t.Errorf("after EditPullRequest: title %q (%d characters), description %q", mr.Title, n, mr.Description)
	}
	if mr.State != "closed" || mr.ClosedAt.IsZero() || mr.MergeCommitSHA != "" {
		t.Errorf("after ClosePullRequest: %+v", mr)
	}

	// Closed, it no longer holds the branches: the bot may open another.
	again, err := fx.forge.CreatePullRequest(ctx, fx.repo, scm.NewPullRequest{Title: "app: v2", Head: updateBranch, Base: "main"})
	if err != nil || again.Ref.Number != 2 {
		t.Fatalf("opening again after the close = %+v, %v; want !2", again, err)
	}
	fx.fake.MergeMergeRequest(project, 2, "merge2")
	merged, err := fx.forge.GetPullRequest(ctx, fx.pr(2))
	if err != nil || merged.State != "merged" || merged.MergeCommitSHA != "merge2" {
		t.Errorf("after MergeMergeRequest: %+v, %v", merged, err)
	}
	if err := fx.forge.ClosePullRequest(ctx, fx.pr(2)); err != nil {
		t.Errorf("closing a merged merge request: %v", err)
	}
	if again, _ := fx.forge.GetPullRequest(ctx, fx.pr(2)); again == nil || again.State != "merged" {
		t.Errorf("a merged merge request closed: %+v", again)
	}
}

// TestPullRequestWriterErrors: what the bot tells apart beyond the
// 401/403/404 of TestErrorsAreNeutral.
func TestPullRequestWriterErrors(t *testing.T) {
	open := func(head string) func(ctx context.Context, fx *fixture) error {
		return func(ctx context.Context, fx *fixture) error {
			_, err := fx.forge.CreatePullRequest(ctx, fx.repo, scm.NewPullRequest{Title: "app: v2", Head: head, Base: "main"})
			return err
		}
	}
	for _, tc := range []struct {
		name string
		// seed opens !1 from updateBranch into main first.
		seed bool
		// rateLimited makes the call meet a 429.
		rateLimited bool
		call        func(ctx context.Context, fx *fixture) error
		// want is the neutral error; nil wants a *scm.RateLimitError, and
		// plain one that is none of them.
		want  error
		plain bool
	}{
		{name: "open already open", seed: true, call: open(updateBranch), want: scm.ErrAlreadyExists},
		{name: "open rate limited", rateLimited: true, call: open(updateBranch)},
		{name: "open an unknown branch", call: open("no-such-branch"), plain: true},
		{name: "open into itself", call: open("main"), plain: true},
		{name: "edit a missing merge request", want: scm.ErrNotFound, call: func(ctx context.Context, fx *fixture) error {
			return fx.forge.EditPullRequest(ctx, fx.pr(99), "t", "b")
		}},
		{name: "edit rate limited", seed: true, rateLimited: true, call: func(ctx context.Context, fx *fixture) error {
			return fx.forge.EditPullRequest(ctx, fx.pr(1), "t", "b")
		}},
		{name: "close a missing merge request", want: scm.ErrNotFound, call: func(ctx context.Context, fx *fixture) error {
			return fx.forge.ClosePullRequest(ctx, fx.pr(99))
		}},
		{name: "close rate limited", seed: true, rateLimited: true, call: func(ctx context.Context, fx *fixture) error {
			return fx.forge.ClosePullRequest(ctx, fx.pr(1))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := setup(t)
			fx.withBranches(t)
			if tc.seed {
				fx.fake.AddMergeRequest(project, gitlabfake.MergeRequest{Title: "app: v1", Author: "gitops-bot",
					SourceBranch: updateBranch, TargetBranch: "main", SHA: "old", BaseSHA: "base"})
			}
			if tc.rateLimited {
				fx.fake.RateLimit(1, http.Header{"Retry-After": {"1"}})
			}
			err := tc.call(context.Background(), fx)
			var rl *scm.RateLimitError
			switch {
			case tc.plain:
				if err == nil || errors.Is(err, scm.ErrNotFound) || errors.Is(err, scm.ErrForbidden) ||
					errors.Is(err, scm.ErrUnauthorized) || errors.Is(err, scm.ErrAlreadyExists) || errors.As(err, &rl) {
					t.Errorf("err = %v, want an error that is none of the neutral ones", err)
				}
			case tc.want == nil:
				if !errors.As(err, &rl) {
					t.Errorf("err = %v, want a RateLimitError", err)
				}
				if len(fx.slept) != 0 {
					t.Errorf("a write waited %v and was retried", fx.slept)
				}
			default:
				if !errors.Is(err, tc.want) || errors.As(err, &rl) {
					t.Errorf("err = %v, want %v", err, tc.want)
				}
			}
			if n := len(fx.fake.CreatedMergeRequests(project)); n != 0 {
				t.Errorf("%d merge requests created by a call that failed", n)
			}
			if tc.seed {
				if pr, err := fx.forge.GetPullRequest(context.Background(), fx.pr(1)); err != nil || pr.Title != "app: v1" || pr.State != "open" {
					t.Errorf("!1 changed by a call that failed: %+v, %v", pr, err)
				}
			}
		})
	}
}
