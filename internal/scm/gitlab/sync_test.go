package gitlab

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/scmtest/gitlabfake"
)

func TestPullRequestsOfCommit(t *testing.T) {
	fx := setup(t)
	ctx := context.Background()
	merged := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	mergeIID := fx.fake.AddMergeRequest(project, gitlabfake.MergeRequest{Title: "merge", Author: "alice", State: "merged",
		SourceBranch: "feature", TargetBranch: "main", SHA: "head1", MergeCommitSHA: "merge1", MergedAt: merged})
	squashIID := fx.fake.AddMergeRequest(project, gitlabfake.MergeRequest{Author: "alice", State: "merged",
		SHA: "head2", SquashCommitSHA: "squash2", MergedAt: merged})
	ffIID := fx.fake.AddMergeRequest(project, gitlabfake.MergeRequest{Author: "alice", State: "merged",
		SHA: "head3", Commits: []string{"c3"}, MergedAt: merged})
	fx.fake.AddMergeRequest(project, gitlabfake.MergeRequest{Author: "alice", SHA: "other"})

	for _, tc := range []struct {
		sha       string
		iid       int64
		wantMerge string
	}{
		{"merge1", mergeIID, "merge1"},
		{"head1", mergeIID, "merge1"},
		{"squash2", squashIID, "squash2"},
		{"c3", ffIID, "head3"}, // rebased and fast-forwarded: the head landed
	} {
		got, err := fx.forge.PullRequestsOfCommit(ctx, fx.repo, tc.sha)
		if err != nil {
			t.Fatalf("%s: %v", tc.sha, err)
		}
		if len(got) != 1 || got[0].Ref.Number != int(tc.iid) || got[0].State != "merged" ||
			got[0].MergeCommitSHA != tc.wantMerge || !got[0].MergedAt.Equal(merged) || got[0].Ref.Repo.FullName != project {
			t.Errorf("%s: got %+v, want !%d merged as %s at %s", tc.sha, got, tc.iid, tc.wantMerge, merged)
		}
	}

	got, err := fx.forge.PullRequestsOfCommit(ctx, fx.repo, "direct-push")
	if err != nil || len(got) != 0 {
		t.Fatalf("a commit no MR brought: %+v, %v", got, err)
	}
	got, err = fx.forge.PullRequestsOfCommit(ctx, fx.repo, "other")
	if err != nil || len(got) != 1 || got[0].State != "open" || got[0].MergeCommitSHA != "" || !got[0].MergedAt.IsZero() {
		t.Fatalf("an open MR: %+v, %v", got, err)
	}
}

func TestPullRequestsOfCommitAllPages(t *testing.T) {
	fx := setup(t)
	for i := range 45 {
		fx.fake.AddMergeRequest(project, gitlabfake.MergeRequest{Author: "alice", SHA: fmt.Sprintf("head%d", i), Commits: []string{"shared"}})
	}
	got, err := fx.forge.PullRequestsOfCommit(context.Background(), fx.repo, "shared")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, pr := range got {
		seen[pr.Ref.Number] = true
	}
	if len(got) != 45 || len(seen) != 45 {
		t.Fatalf("got %d MRs (%d distinct), want 45", len(got), len(seen))
	}
	if n := requested(fx.fake, "GET /projects/"+strings.ReplaceAll(project, "/", "%2F")+"/repository/commits/shared/merge_requests"); n != 3 {
		t.Errorf("%d pages requested, want 3 of GitLab's default 20", n)
	}
}

func TestDefaultBranch(t *testing.T) {
	fx := setup(t)
	ctx := context.Background()
	fx.fake.SetBranch(project, "main", "sha-main")
	fx.fake.SetBranch(project, "release/1", "sha-release")
	got, err := fx.forge.DefaultBranch(ctx, fx.repo)
	if err != nil || got.Name != "main" || got.SHA != "sha-main" || !strings.HasSuffix(got.CloneURL, ".git") {
		t.Fatalf("DefaultBranch = %+v, %v", got, err)
	}
	fx.fake.SetDefaultBranch(project, "release/1")
	got, err = fx.forge.DefaultBranch(ctx, fx.repo)
	if err != nil || got.Name != "release/1" || got.SHA != "sha-release" {
		t.Fatalf("DefaultBranch after a change = %+v, %v", got, err)
	}
	fx.fake.SetDefaultBranch(project, "gone")
	if _, err := fx.forge.DefaultBranch(ctx, fx.repo); !errors.Is(err, scm.ErrNotFound) {
		t.Fatalf("a default branch without a head: %v, want ErrNotFound", err)
	}
}

func TestDeployments(t *testing.T) {
	fx := setup(t)
	ctx := context.Background()
	d := scm.Deployment{Ref: "main", SHA: "abc", Environment: "prod/app", Description: "syncing"}
	id, err := fx.forge.CreateDeployment(ctx, fx.repo, d)
	if err != nil {
		t.Fatal(err)
	}
	want := []gitlabfake.Deployment{{ID: id, Environment: "prod/app", Ref: "main", SHA: "abc", Status: "running"}}
	if diff := cmp.Diff(want, fx.fake.Deployments(project)); diff != "" {
		t.Fatalf("created (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		state scm.DeploymentState
		want  string
	}{
		{scm.DeploymentSuccess, "success"},
		{scm.DeploymentSuccess, "success"}, // repeated: GitLab refuses the transition
		{scm.DeploymentFailure, "failed"},
		{scm.DeploymentInProgress, "failed"}, // running only from created: refused
	} {
		err := fx.forge.SetDeploymentState(ctx, fx.repo, id, tc.state, "done")
		if tc.state == scm.DeploymentInProgress {
			if err == nil {
				t.Fatal("back to running from failed was accepted")
			}
		} else if err != nil {
			t.Fatalf("%s: %v", tc.state, err)
		}
		want[0].Status = tc.want
		if diff := cmp.Diff(want, fx.fake.Deployments(project)); diff != "" {
			t.Fatalf("after %s (-want +got):\n%s", tc.state, diff)
		}
	}

	if err := fx.forge.SetDeploymentState(ctx, fx.repo, 999999, scm.DeploymentSuccess, ""); !errors.Is(err, scm.ErrNotFound) {
		t.Errorf("a missing deployment: %v, want ErrNotFound", err)
	}
	if err := fx.forge.SetDeploymentState(ctx, fx.repo, id, "weird", ""); err == nil {
		t.Error("an unknown state was accepted")
	}
	if _, err := fx.forge.CreateDeployment(ctx, fx.repo, scm.Deployment{SHA: "abc", Environment: "prod/app"}); err == nil {
		t.Error("a deployment without a branch was accepted")
	}
}
