package github

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/gittest"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/scmtest/githubfake"
)

const updateBranch = "gitops/images/app"

// withBranches gives the fake a real repository: main, and updateBranch one
// commit ahead of it. It returns their heads.
func withBranches(t *testing.T, fake *githubfake.Server) (base, head string) {
	t.Helper()
	repo := gittest.NewRepo(t, map[string]string{"gitops.yaml": "apps: []\n"})
	base = repo.Head(t)
	repo.Checkout(t, base)
	head = repo.Commit(t, map[string]string{"deploy/app/kustomization.yaml": "images: [{name: app, newTag: v2}]\n"}, "app: v2")
	repo.Branch(t, updateBranch)
	fake.SetBranchResolver(func(fullName, branch string) (string, bool) {
		if fullName != "acme/app" {
			return "", false
		}
		return repo.Resolve(t, branch)
	})
	return base, head
}

func TestOpenEditClosePullRequest(t *testing.T) {
	fake, fs := setup(t)
	base, head := withBranches(t, fake)
	f := forgeFor(t, fs, installation)
	ctx := context.Background()
	var repoID int64
	fake.Update("acme/app", func(r *githubfake.Repo) { repoID = r.ID })

	long := strings.Repeat("é", 300)
	got, err := f.CreatePullRequest(ctx, repoRef, scm.NewPullRequest{Title: long, Body: "Bumps **app**.", Head: updateBranch, Base: "main"})
	if err != nil {
		t.Fatal(err)
	}
	want := scm.PullRequest{
		Ref:   scm.PRRef{Repo: scm.RepoRef{Kind: scm.GitHub, FullName: "acme/app", ID: repoID}, Number: 141},
		Title: strings.Repeat("é", 255) + "…", Author: "gitops-test[bot]", URL: "https://github.example/acme/app/pull/141",
		State: "open", HeadSHA: head, HeadRef: updateBranch, BaseSHA: base, BaseRef: "main",
		CloneURL: "https://github.example/acme/app.git", HeadCloneURL: "https://github.example/acme/app.git",
	}
	ignoreTime := cmpopts.IgnoreFields(scm.PullRequest{}, "UpdatedAt")
	if diff := cmp.Diff(want, *got, ignoreTime); diff != "" {
		t.Errorf("CreatePullRequest (-want +got):\n%s", diff)
	}
	if got.UpdatedAt.IsZero() {
		t.Error("CreatePullRequest: no updated time")
	}

	// Every read sees it, mergeable once GitHub has computed it.
	read, err := f.GetPullRequest(ctx, want.Ref)
	if err != nil {
		t.Fatal(err)
	}
	mergeable := true
	want.Mergeable = &mergeable
	if diff := cmp.Diff(want, *read, ignoreTime); diff != "" {
		t.Errorf("GetPullRequest (-want +got):\n%s", diff)
	}
	open, err := f.ListOpenPullRequests(ctx, repoRef)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(open); n != 127 || open[n-1].Ref.Number != 141 || open[n-1].HeadSHA != head {
		t.Errorf("ListOpenPullRequests: %d, last %+v; want 127 ending with #141", n, open[n-1])
	}

	if err := f.EditPullRequest(ctx, want.Ref, "app: v2 "+long, "Bumps **app** to v2."); err != nil {
		t.Fatal(err)
	}
	if err := f.ClosePullRequest(ctx, want.Ref); err != nil {
		t.Fatal(err)
	}
	if err := f.ClosePullRequest(ctx, want.Ref); err != nil {
		t.Errorf("closing a closed pull request: %v", err)
	}
	created := fake.CreatedPulls("acme/app")
	if len(created) != 1 {
		t.Fatalf("%d pull requests created, want 1", len(created))
	}
	p := created[0]
	if n := len([]rune(p.Title)); n != 256 || !strings.HasPrefix(p.Title, "app: v2 é") || p.Body != "Bumps **app** to v2." {
		t.Errorf("after EditPullRequest: title %q (%d characters), body %q", p.Title, n, p.Body)
	}
	if p.State != "closed" || p.Merged || p.ClosedAt.IsZero() {
		t.Errorf("after ClosePullRequest: state %s, merged %v, closed at %v", p.State, p.Merged, p.ClosedAt)
	}
	closed, err := f.GetPullRequest(ctx, want.Ref)
	if err != nil || closed.State != "closed" || closed.MergeCommitSHA != "" {
		t.Errorf("GetPullRequest of the closed pull request = %+v, %v", closed, err)
	}

	// Closed, it no longer holds the branch: the bot may open another.
	again, err := f.CreatePullRequest(ctx, repoRef, scm.NewPullRequest{Title: "app: v2", Head: updateBranch, Base: "main"})
	if err != nil || again.Ref.Number != 142 {
		t.Fatalf("opening again after the close = %+v, %v; want #142", again, err)
	}
	fake.MergePull("acme/app", 142, "merged142")
	merged, err := f.GetPullRequest(ctx, again.Ref)
	if err != nil || merged.State != "merged" || merged.MergeCommitSHA != "merged142" {
		t.Errorf("after MergePull: %+v, %v", merged, err)
	}
}

func TestPullRequestWriterErrors(t *testing.T) {
	const pulls = "/repos/acme/app/pulls"
	other := scm.RepoRef{Kind: scm.GitHub, FullName: "acme/nope"}
	open := func(head string) func(ctx context.Context, f scm.Forge) error {
		return func(ctx context.Context, f scm.Forge) error {
			_, err := f.CreatePullRequest(ctx, repoRef, scm.NewPullRequest{Title: "app: v2", Head: head, Base: "main"})
			return err
		}
	}
	edit := func(n int) func(ctx context.Context, f scm.Forge) error {
		return func(ctx context.Context, f scm.Forge) error {
			return f.EditPullRequest(ctx, scm.PRRef{Repo: repoRef, Number: n}, "t", "b")
		}
	}
	closePR := func(n int) func(ctx context.Context, f scm.Forge) error {
		return func(ctx context.Context, f scm.Forge) error {
			return f.ClosePullRequest(ctx, scm.PRRef{Repo: repoRef, Number: n})
		}
	}
	forbidden := githubfake.Response{Status: 403, Body: `{"message":"Resource not accessible by integration"}`}
	secondary := githubfake.Response{Status: 403, Header: http.Header{"Retry-After": {"3"}}, Body: `{"message":"You have exceeded a secondary rate limit"}`}
	primary := githubfake.Response{Status: 403, Header: http.Header{"X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset": {strconv.FormatInt(t0().Add(time.Minute).Unix(), 10)}}}
	for _, tc := range []struct {
		name string
		// inject answers method on path with resp once, when set.
		method, path string
		resp         githubfake.Response
		// seed opens pull request 200 from updateBranch into main.
		seed bool
		call func(ctx context.Context, f scm.Forge) error
		// want is the neutral error; nil wants a *scm.RateLimitError, and
		// plain one that is none of them.
		want  error
		plain bool
	}{
		{name: "open in a missing repository", want: scm.ErrNotFound, call: func(ctx context.Context, f scm.Forge) error {
			_, err := f.CreatePullRequest(ctx, other, scm.NewPullRequest{Title: "t", Head: updateBranch, Base: "main"})
			return err
		}},
		{name: "open forbidden", method: "POST", path: pulls, resp: forbidden, call: open(updateBranch), want: scm.ErrForbidden},
		{name: "open already open", seed: true, call: open(updateBranch), want: scm.ErrAlreadyExists},
		{name: "open rate limited", method: "POST", path: pulls, resp: secondary, call: open(updateBranch)},
		{name: "open an unknown branch", call: open("no-such-branch"), plain: true},
		{name: "open a branch without changes", call: open("main"), plain: true},
		{name: "edit a missing pull request", call: edit(999), want: scm.ErrNotFound},
		{name: "edit forbidden", method: "PATCH", path: pulls + "/1", resp: forbidden, call: edit(1), want: scm.ErrForbidden},
		{name: "edit rate limited", method: "PATCH", path: pulls + "/1", resp: primary, call: edit(1)},
		{name: "close a missing pull request", call: closePR(999), want: scm.ErrNotFound},
		{name: "close forbidden", method: "PATCH", path: pulls + "/1", resp: forbidden, call: closePR(1), want: scm.ErrForbidden},
		{name: "close rate limited", method: "PATCH", path: pulls + "/1", resp: secondary, call: closePR(1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake, fs := setup(t)
			withBranches(t, fake)
			waits := fakeClock(fs)
			f := forgeFor(t, fs, installation)
			if tc.seed {
				fake.Update("acme/app", func(r *githubfake.Repo) {
					r.Pulls[200] = &githubfake.Pull{Number: 200, Title: "app: v1", Author: "gitops-test[bot]", State: "open",
						HeadSHA: "old", HeadRef: updateBranch, BaseSHA: "bbbb", BaseRef: "main", UpdatedAt: t0()}
				})
			}
			if tc.path != "" {
				fake.Inject(tc.method, tc.path, 1, tc.resp)
			}
			err := tc.call(context.Background(), f)
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
				if len(*waits) != 0 {
					t.Errorf("a write waited %v and was retried", *waits)
				}
			default:
				if !errors.Is(err, tc.want) || errors.As(err, &rl) {
					t.Errorf("err = %v, want %v", err, tc.want)
				}
			}
			if n := len(fake.CreatedPulls("acme/app")); n != 0 {
				t.Errorf("%d pull requests created by a call that failed", n)
			}
			if tc.path != "" {
				if n := count(fake, tc.method+" "+tc.path); n != 1 {
					t.Errorf("%s %s sent %d times, want once", tc.method, tc.path, n)
				}
			}
		})
	}
}

// TestAlreadyExistsOnlyFromItsAnswer: a 422 is scm.ErrAlreadyExists only
// when GitHub says so.
func TestAlreadyExistsOnlyFromItsAnswer(t *testing.T) {
	fake, fs := setup(t)
	withBranches(t, fake)
	f := forgeFor(t, fs, installation)
	for _, tc := range []struct {
		name, body string
		want       bool
	}{
		{"a pull request", `{"message":"Validation Failed","errors":[{"resource":"PullRequest","code":"custom","message":"A pull request already exists for acme:gitops/images/app."}]}`, true},
		{"the already_exists code", `{"message":"Validation Failed","errors":[{"resource":"PullRequest","code":"already_exists","field":"head"}]}`, true},
		{"an invalid head", `{"message":"Validation Failed","errors":[{"resource":"PullRequest","field":"head","code":"invalid"}]}`, false},
		{"no details", `{"message":"Validation Failed"}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake.Inject("POST", "/repos/acme/app/pulls", 1, githubfake.Response{Status: 422, Body: tc.body})
			_, err := f.CreatePullRequest(context.Background(), repoRef, scm.NewPullRequest{Title: "t", Head: updateBranch, Base: "main"})
			if err == nil || errors.Is(err, scm.ErrAlreadyExists) != tc.want {
				t.Errorf("err = %v, want ErrAlreadyExists %v", err, tc.want)
			}
		})
	}
}
