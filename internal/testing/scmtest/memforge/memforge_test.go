package memforge

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/gittest"
)

var (
	repo = scm.RepoRef{Kind: scm.GitHub, FullName: "acme/app"}
	pr1  = scm.PRRef{Repo: repo, Number: 1}
)

// TestBehavesAsAForge covers what the bot could tell apart from a real
// forge: authorship of comments, the size limit, missing pull requests.
func TestBehavesAsAForge(t *testing.T) {
	ctx := t.Context()
	f := New()
	f.MaxComment = 10
	mine, err := f.CreateComment(ctx, pr1, "preview")
	if err != nil || mine.Author != DefaultLogin {
		t.Fatalf("CreateComment = %+v, %v", mine, err)
	}
	theirs := f.AddComment(pr1, "mallory", "lgtm")
	if err := f.EditComment(ctx, pr1, theirs.ID, "mine now"); !errors.Is(err, scm.ErrForbidden) {
		t.Errorf("editing another's comment: %v, want ErrForbidden", err)
	}
	if err := f.EditComment(ctx, pr1, 999, "x"); !errors.Is(err, scm.ErrNotFound) {
		t.Errorf("editing a missing comment: %v, want ErrNotFound", err)
	}
	if _, err := f.CreateComment(ctx, pr1, strings.Repeat("x", 11)); err == nil {
		t.Error("a comment over the limit was taken")
	}
	if err := f.EditComment(ctx, pr1, mine.ID, "edited"); err != nil {
		t.Fatal(err)
	}
	var bodies []string
	for _, c := range f.Comments(pr1) {
		bodies = append(bodies, c.Author+": "+c.Body)
	}
	if diff := cmp.Diff([]string{"gitops-bot: edited", "mallory: lgtm"}, bodies); diff != "" {
		t.Errorf("comments (-want +got):\n%s", diff)
	}

	if _, err := f.GetPullRequest(ctx, pr1); !errors.Is(err, scm.ErrNotFound) {
		t.Errorf("a pull request never added: %v, want ErrNotFound", err)
	}
	f.OpenByDefault = true
	if got, err := f.GetPullRequest(ctx, pr1); err != nil || got.State != "open" || got.Ref != pr1 {
		t.Errorf("OpenByDefault: %+v, %v", got, err)
	}
}

func TestPullRequestsAndCalls(t *testing.T) {
	ctx := t.Context()
	f := New()
	f.AddPull(scm.PullRequest{Ref: pr1, HeadSHA: "a"})
	f.AddPull(scm.PullRequest{Ref: scm.PRRef{Repo: repo, Number: 2}, State: "closed"})
	f.AddPull(scm.PullRequest{Ref: scm.PRRef{Repo: scm.RepoRef{Kind: scm.GitHub, FullName: "acme/other"}, Number: 3}})
	f.UpdatePull(pr1, func(pr *scm.PullRequest) { pr.HeadSHA = "b" })
	open, err := f.ListOpenPullRequests(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	want := []scm.PullRequest{{Ref: pr1, State: "open", HeadSHA: "b"}}
	if diff := cmp.Diff(want, open); diff != "" {
		t.Errorf("open pull requests (-want +got):\n%s", diff)
	}
	f.SetPermission("alice", scm.PermissionWrite)
	// In a fixed order: the first call recorded is alice's.
	for _, tc := range []struct {
		user string
		want scm.Permission
	}{{"alice", scm.PermissionWrite}, {"bob", scm.PermissionNone}} {
		if got, err := f.Permission(ctx, repo, tc.user); err != nil || got != tc.want {
			t.Errorf("Permission(%s) = %s, %v; want %s", tc.user, got, err, tc.want)
		}
	}
	if _, err := f.ReadFile(ctx, repo, "main", "gitops.yaml"); !errors.Is(err, scm.ErrNotFound) {
		t.Errorf("ReadFile without a Git repository: %v, want ErrNotFound", err)
	}
	if diff := cmp.Diff([]Call{{Method: "Permission", Target: "github:acme/app", Arg: "alice"}}, f.Calls("Permission")[:1]); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
}

func TestReviewsAndTeams(t *testing.T) {
	ctx := t.Context()
	f := New()
	if rs, err := f.ListReviews(ctx, pr1); err != nil || len(rs) != 0 {
		t.Fatalf("reviews by default: %v, %v; want none", rs, err)
	}
	approved := scm.Review{ID: 1, Author: "bob", State: scm.ReviewApproved, CommitSHA: "a"}
	f.SetReviews(pr1, approved)
	dismissed := scm.Review{ID: 2, Author: "carol", State: scm.ReviewDismissed, CommitSHA: "a"}
	f.AddReview(pr1, dismissed)
	got, err := f.ListReviews(ctx, pr1)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]scm.Review{approved, dismissed}, got); diff != "" {
		t.Errorf("reviews (-want +got):\n%s", diff)
	}
	got[0].Author = "mallory"
	if again, _ := f.ListReviews(ctx, pr1); again[0].Author != "bob" {
		t.Error("a caller's change reached the forge's reviews")
	}

	f.SetTeam("@acme/platform", "alice", "bob")
	for _, team := range []string{"platform", "@platform", "acme/platform", "@ACME/Platform"} {
		members, err := f.TeamMembers(ctx, repo, team)
		if err != nil || !cmp.Equal(members, []string{"alice", "bob"}) {
			t.Errorf("TeamMembers(%s) = %v, %v", team, members, err)
		}
	}
	if _, err := f.TeamMembers(ctx, repo, "other/platform"); !errors.Is(err, scm.ErrNotFound) {
		t.Errorf("a team never set: %v, want ErrNotFound", err)
	}
	if diff := cmp.Diff(Call{Method: "TeamMembers", Target: "github:acme/app", Arg: "platform"}, f.Calls("TeamMembers")[0]); diff != "" {
		t.Errorf("call (-want +got):\n%s", diff)
	}
}

// TestPullRequestWriter: the bot's image update pull requests open from a
// branch of the Git repository, once per head and base while open, and
// read back like any other.
func TestPullRequestWriter(t *testing.T) {
	ctx := t.Context()
	f := New()
	gitRepo := gittest.NewRepo(t, map[string]string{"gitops.yaml": "apps: []\n"})
	base := gitRepo.Head(t)
	gitRepo.Checkout(t, base)
	head := gitRepo.Commit(t, map[string]string{"app.yaml": "v2\n"}, "app: v2")
	gitRepo.Branch(t, "update")
	f.SetGitDir(repo, gitRepo.Dir)
	f.AddPull(scm.PullRequest{Ref: scm.PRRef{Repo: repo, Number: 7}, HeadRef: "someone-else", BaseRef: "main"})

	got, err := f.CreatePullRequest(ctx, repo, scm.NewPullRequest{Title: "app: v2", Body: "Bumps app.", Head: "update", Base: "main"})
	if err != nil {
		t.Fatal(err)
	}
	ref := scm.PRRef{Repo: repo, Number: 8}
	want := scm.PullRequest{Ref: ref, Title: "app: v2", Author: DefaultLogin, State: "open",
		HeadSHA: head, HeadRef: "update", BaseSHA: base, BaseRef: "main", UpdatedAt: got.UpdatedAt}
	if diff := cmp.Diff(want, *got); diff != "" || got.UpdatedAt.IsZero() {
		t.Errorf("CreatePullRequest (-want +got):\n%s", diff)
	}
	if read, err := f.GetPullRequest(ctx, ref); err != nil || !cmp.Equal(*read, want) || f.Body(ref) != "Bumps app." {
		t.Errorf("GetPullRequest = %+v, %v; body %q", read, err, f.Body(ref))
	}
	if _, err := f.CreatePullRequest(ctx, repo, scm.NewPullRequest{Title: "again", Head: "update", Base: "main"}); !errors.Is(err, scm.ErrAlreadyExists) {
		t.Errorf("a second open pull request: %v, want ErrAlreadyExists", err)
	}
	if _, err := f.CreatePullRequest(ctx, repo, scm.NewPullRequest{Title: "t", Head: "missing", Base: "main"}); err == nil {
		t.Error("a pull request from a branch the Git repository lacks was opened")
	}

	if err := f.EditPullRequest(ctx, ref, "app: v3", "Bumps app to v3."); err != nil {
		t.Fatal(err)
	}
	if err := f.ClosePullRequest(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if read, _ := f.GetPullRequest(ctx, ref); read.Title != "app: v3" || read.State != "closed" || f.Body(ref) != "Bumps app to v3." {
		t.Errorf("after edit and close: %+v, body %q", read, f.Body(ref))
	}
	missing := scm.PRRef{Repo: repo, Number: 99}
	if err := f.EditPullRequest(ctx, missing, "t", "b"); !errors.Is(err, scm.ErrNotFound) {
		t.Errorf("editing a missing pull request: %v, want ErrNotFound", err)
	}
	if err := f.ClosePullRequest(ctx, missing); !errors.Is(err, scm.ErrNotFound) {
		t.Errorf("closing a missing pull request: %v, want ErrNotFound", err)
	}
	merged := scm.PRRef{Repo: repo, Number: 7}
	f.UpdatePull(merged, func(pr *scm.PullRequest) { pr.State = "merged" })
	if err := f.ClosePullRequest(ctx, merged); err != nil {
		t.Errorf("closing a merged pull request: %v", err)
	}
	if read, _ := f.GetPullRequest(ctx, merged); read.State != "merged" {
		t.Errorf("a merged pull request closed: %+v", read)
	}

	// Closed, it no longer holds the branch; without a Git repository the
	// SHAs are unknown.
	other := scm.RepoRef{Kind: scm.GitLab, FullName: "group/app"}
	if pr, err := f.CreatePullRequest(ctx, other, scm.NewPullRequest{Title: "t", Head: "update", Base: "main"}); err != nil ||
		pr.Ref.Number != 1 || pr.HeadSHA != "" {
		t.Errorf("without a Git repository: %+v, %v", pr, err)
	}
	if pr, err := f.CreatePullRequest(ctx, repo, scm.NewPullRequest{Title: "t", Head: "update", Base: "main"}); err != nil || pr.Ref.Number != 9 {
		t.Errorf("opening again after the close: %+v, %v; want #9", pr, err)
	}
	wantCalls := []Call{
		{Method: "CreatePullRequest", Target: "github:acme/app", Arg: "update->main"},
		{Method: "EditPullRequest", Target: "github:acme/app#8"},
		{Method: "ClosePullRequest", Target: "github:acme/app#8"},
	}
	calls := []Call{f.Calls("CreatePullRequest")[0], f.Calls("EditPullRequest")[0], f.Calls("ClosePullRequest")[0]}
	if diff := cmp.Diff(wantCalls, calls); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
}
