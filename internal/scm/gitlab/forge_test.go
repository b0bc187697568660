package gitlab

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-gitops/kubectl-gitops/internal/clock"
	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/scmtest/gitlabfake"
)

const (
	token   = "glpat-test-token"
	project = "platform/infra/deploy"
)

type fixture struct {
	fake  *gitlabfake.Server
	forge *Forge
	repo  scm.RepoRef
	waits []time.Duration
	slept []time.Duration
}

// setup starts a fake with one project whose bot user is gitops-bot, and a
// Forge on it that records rate limit waits instead of sleeping.
func setup(t *testing.T) *fixture {
	t.Helper()
	fx := &fixture{fake: gitlabfake.New(t, token)}
	fx.fake.SetCurrentUser("gitops-bot")
	fx.fake.AddProject(project)
	fx.repo = scm.RepoRef{Kind: scm.GitLab, FullName: project}
	f, err := New(Options{
		BaseURL:         fx.fake.URL,
		Token:           token,
		OnRateLimitWait: func(d time.Duration) { fx.waits = append(fx.waits, d) },
	})
	if err != nil {
		t.Fatal(err)
	}
	f.sleep = func(ctx context.Context, d time.Duration) error {
		fx.slept = append(fx.slept, d)
		return ctx.Err()
	}
	fx.forge = f
	return fx
}

func (fx *fixture) pr(iid int64) scm.PRRef { return scm.PRRef{Repo: fx.repo, Number: int(iid)} }

func (fx *fixture) mr(t *testing.T) int64 {
	t.Helper()
	return fx.fake.AddMergeRequest(project, gitlabfake.MergeRequest{
		Title: "bump app", Author: "alice", SourceBranch: "feature", TargetBranch: "main",
		SHA: "headsha1", BaseSHA: "basesha1",
	})
}

func TestNewNeedsToken(t *testing.T) {
	if _, err := New(Options{BaseURL: "https://gitlab.example.com"}); err == nil {
		t.Fatal("New without a token succeeded")
	}
}

func TestForgesReturnsForge(t *testing.T) {
	fx := setup(t)
	var fs scm.Forges = fx.forge
	if _, err := fs.Forge(context.Background(), fx.repo, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.Forge(context.Background(), scm.RepoRef{Kind: scm.GitHub, FullName: "o/r"}, 1); err == nil {
		t.Fatal("a GitHub repository got a GitLab forge")
	}
}

// TestLimits: what the bot cuts its comments to, and the one media type
// GitLab delivers webhooks in.
func TestLimits(t *testing.T) {
	fx := setup(t)
	if n := fx.forge.MaxCommentBytes(); n != 1_000_000 {
		t.Errorf("MaxCommentBytes = %d, want GitLab's 1,000,000", n)
	}
	w, err := NewWebhook("s")
	if err != nil {
		t.Fatal(err)
	}
	if got := w.MediaTypes(); len(got) != 1 || got[0] != "application/json" {
		t.Errorf("MediaTypes = %q, want JSON only", got)
	}
}

func TestListCommentsAllPagesOldestFirstWithoutSystemNotes(t *testing.T) {
	fx := setup(t)
	iid := fx.mr(t)
	for i := range 250 {
		fx.fake.AddNote(project, iid, gitlabfake.Note{Author: "alice", Body: fmt.Sprintf("note %d", i), System: i%50 == 7})
	}
	got, err := fx.forge.ListComments(context.Background(), fx.pr(iid))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 245 {
		t.Fatalf("got %d comments, want 245 (250 minus 5 system notes)", len(got))
	}
	if got[0].Body != "note 0" || got[len(got)-1].Body != "note 249" {
		t.Fatalf("order: first %q last %q, want oldest first", got[0].Body, got[len(got)-1].Body)
	}
	for i := 1; i < len(got); i++ {
		if got[i].CreatedAt.Before(got[i-1].CreatedAt) {
			t.Fatalf("comment %d older than comment %d", i, i-1)
		}
	}
	if got[0].Author != "alice" || got[0].ID == 0 || got[0].CreatedAt.IsZero() {
		t.Fatalf("fields not mapped: %+v", got[0])
	}
}

func TestCreateAndEditComment(t *testing.T) {
	fx := setup(t)
	iid := fx.mr(t)
	ctx := context.Background()
	c, err := fx.forge.CreateComment(ctx, fx.pr(iid), "<!-- gitops -->\npreview")
	if err != nil {
		t.Fatal(err)
	}
	if c.ID == 0 || c.Author != "gitops-bot" || c.Body != "<!-- gitops -->\npreview" {
		t.Fatalf("created comment: %+v", c)
	}
	if err := fx.forge.EditComment(ctx, fx.pr(iid), c.ID, "updated"); err != nil {
		t.Fatal(err)
	}
	notes := fx.fake.Notes(project, iid)
	if len(notes) != 1 || notes[0].Body != "updated" {
		t.Fatalf("notes after edit: %+v", notes)
	}
	// someone else's note
	other := fx.fake.AddNote(project, iid, gitlabfake.Note{Author: "alice", Body: "hi"})
	if err := fx.forge.EditComment(ctx, fx.pr(iid), other, "x"); !errors.Is(err, scm.ErrForbidden) {
		t.Fatalf("editing another's note: %v, want ErrForbidden", err)
	}
	if err := fx.forge.EditComment(ctx, fx.pr(iid), 999999, "x"); !errors.Is(err, scm.ErrNotFound) {
		t.Fatalf("editing a missing note: %v, want ErrNotFound", err)
	}
}

func TestSetStatus(t *testing.T) {
	fx := setup(t)
	ctx := context.Background()
	long := strings.Repeat("é", 300)
	for _, tc := range []struct {
		in   scm.StatusState
		want string
	}{
		{scm.StatusPending, "pending"},
		{scm.StatusSuccess, "success"},
		{scm.StatusFailure, "failed"},
		{scm.StatusError, "canceled"},
	} {
		err := fx.forge.SetStatus(ctx, fx.repo, scm.Status{SHA: "abc", Context: "gitops/preview", State: tc.in,
			Description: long, TargetURL: "https://bot.example.com/p/1"})
		if err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		sts := fx.fake.Statuses(project)
		last := sts[len(sts)-1]
		if last.State != tc.want || last.Name != "gitops/preview" || last.TargetURL != "https://bot.example.com/p/1" {
			t.Fatalf("%s: posted %+v, want state %s", tc.in, last, tc.want)
		}
		if n := len([]rune(last.Description)); n != 255 {
			t.Fatalf("description has %d runes, want 255", n)
		}
	}
	// GitLab refuses a transition to the same state; that is success.
	st := scm.Status{SHA: "abc", Context: "gitops/preview", State: scm.StatusError}
	if err := fx.forge.SetStatus(ctx, fx.repo, st); err != nil {
		t.Fatalf("repeating a state: %v", err)
	}
	if err := fx.forge.SetStatus(ctx, fx.repo, scm.Status{SHA: "abc", Context: "x", State: "weird"}); err == nil {
		t.Fatal("an unknown state was accepted")
	}
}

func TestStatusState(t *testing.T) {
	for in, want := range map[string]scm.StatusState{
		"pending": scm.StatusPending, "running": scm.StatusPending, "created": scm.StatusPending,
		"success": scm.StatusSuccess, "failed": scm.StatusFailure, "canceled": scm.StatusError,
	} {
		if got := StatusState(in); got != want {
			t.Errorf("StatusState(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestGetPullRequest(t *testing.T) {
	fx := setup(t)
	iid := fx.mr(t)
	pr, err := fx.forge.GetPullRequest(context.Background(), fx.pr(iid))
	if err != nil {
		t.Fatal(err)
	}
	if pr.Ref.Number != int(iid) || pr.Ref.Repo.ID == 0 || pr.Ref.Repo.FullName != project ||
		pr.Title != "bump app" || pr.Author != "alice" || pr.State != "open" ||
		pr.HeadSHA != "headsha1" || pr.BaseSHA != "basesha1" || pr.HeadRef != "feature" || pr.BaseRef != "main" ||
		pr.Fork || pr.Mergeable == nil || !*pr.Mergeable || pr.UpdatedAt.IsZero() ||
		!strings.HasSuffix(pr.CloneURL, "/gitlab/"+project+".git") || pr.HeadCloneURL != pr.CloneURL ||
		!strings.Contains(pr.URL, "/-/merge_requests/") {
		t.Fatalf("unexpected %+v", pr)
	}
	// by project id, a fork, still checking
	fork := fx.fake.AddProject("alice/deploy")
	iid2 := fx.fake.AddMergeRequest(project, gitlabfake.MergeRequest{Author: "alice", SHA: "s2",
		SourceProjectID: fork, DetailedMergeStatus: "checking", State: "merged"})
	pr, err = fx.forge.GetPullRequest(context.Background(), scm.PRRef{Repo: scm.RepoRef{Kind: scm.GitLab, ID: pr.Ref.Repo.ID}, Number: int(iid2)})
	if err != nil {
		t.Fatal(err)
	}
	if !pr.Fork || pr.Mergeable != nil || pr.State != "merged" || !strings.HasSuffix(pr.HeadCloneURL, "/alice/deploy.git") ||
		pr.Ref.Repo.FullName != project {
		t.Fatalf("fork: %+v", pr)
	}
	if _, err := fx.forge.GetPullRequest(context.Background(), fx.pr(999)); !errors.Is(err, scm.ErrNotFound) {
		t.Fatalf("missing MR: %v, want ErrNotFound", err)
	}
}

func TestListOpenPullRequestsAllPages(t *testing.T) {
	fx := setup(t)
	for i := range 230 {
		st := "opened"
		if i%10 == 0 {
			st = "closed"
		}
		fx.fake.AddMergeRequest(project, gitlabfake.MergeRequest{Author: "alice", State: st, SHA: "s" + strconv.Itoa(i)})
	}
	got, err := fx.forge.ListOpenPullRequests(context.Background(), fx.repo)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 207 {
		t.Fatalf("got %d open MRs, want 207", len(got))
	}
	seen := map[int]bool{}
	for _, pr := range got {
		if pr.State != "open" || seen[pr.Ref.Number] || pr.Ref.Repo.FullName != project {
			t.Fatalf("bad or duplicate %+v", pr)
		}
		seen[pr.Ref.Number] = true
	}
}

func TestChangedFiles(t *testing.T) {
	fx := setup(t)
	iid := fx.mr(t)
	var diffs []gitlabfake.Diff
	for i := range 150 {
		p := fmt.Sprintf("apps/a%03d/kustomization.yaml", i)
		diffs = append(diffs, gitlabfake.Diff{OldPath: p, NewPath: p})
	}
	diffs = append(diffs, gitlabfake.Diff{OldPath: "old/name.yaml", NewPath: "new/name.yaml"})
	fx.fake.SetDiffs(project, iid, diffs)
	got, err := fx.forge.ChangedFiles(context.Background(), fx.pr(iid))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 152 || got[150] != "old/name.yaml" || got[151] != "new/name.yaml" {
		t.Fatalf("got %d files, tail %q", len(got), got[max(len(got)-2, 0):])
	}
}

func TestReadFile(t *testing.T) {
	fx := setup(t)
	fx.fake.SetFile(project, "main", "clusters/prod/gitops.yaml", []byte("apiVersion: v1\n"))
	b, err := fx.forge.ReadFile(context.Background(), fx.repo, "main", "clusters/prod/gitops.yaml")
	if err != nil || string(b) != "apiVersion: v1\n" {
		t.Fatalf("ReadFile = %q, %v", b, err)
	}
	if _, err := fx.forge.ReadFile(context.Background(), fx.repo, "other", "clusters/prod/gitops.yaml"); !errors.Is(err, scm.ErrNotFound) {
		t.Fatalf("missing file: %v, want ErrNotFound", err)
	}
}

func TestPermission(t *testing.T) {
	fx := setup(t)
	for user, level := range map[string]int{"guest": gitlabfake.Guest, "rep": gitlabfake.Reporter,
		"dev": gitlabfake.Developer, "maint": gitlabfake.Maintainer, "owner": gitlabfake.Owner} {
		fx.fake.AddMember(project, user, level)
	}
	fx.fake.AddUser("stranger")
	for user, want := range map[string]scm.Permission{
		"guest": scm.PermissionRead, "rep": scm.PermissionRead, "dev": scm.PermissionWrite,
		"maint": scm.PermissionAdmin, "owner": scm.PermissionAdmin,
		"stranger": scm.PermissionNone, "nobody": scm.PermissionNone,
	} {
		got, err := fx.forge.Permission(context.Background(), fx.repo, user)
		if err != nil || got != want {
			t.Errorf("Permission(%s) = %s, %v; want %s", user, got, err, want)
		}
	}
	var members bool
	for _, r := range fx.fake.Requests() {
		members = members || strings.Contains(r, "/members/all/")
	}
	if !members {
		t.Error("inherited members (members/all) were not consulted")
	}
}

func TestBotLoginAndCloneCredentials(t *testing.T) {
	fx := setup(t)
	for range 2 {
		login, err := fx.forge.BotLogin(context.Background())
		if err != nil || login != "gitops-bot" {
			t.Fatalf("BotLogin = %q, %v", login, err)
		}
	}
	n := 0
	for _, r := range fx.fake.Requests() {
		if r == "GET /user" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("GET /user %d times, want once (cached)", n)
	}
	u, p, err := fx.forge.CloneCredentials(context.Background(), fx.repo)
	if u != "oauth2" || p != token || err != nil {
		t.Fatalf("CloneCredentials = %q, %q, %v", u, p, err)
	}
}

func TestErrorsAreNeutral(t *testing.T) {
	ctx := context.Background()
	fx := setup(t)
	iid := fx.mr(t)

	bad, err := New(Options{BaseURL: fx.fake.URL, Token: "wrong"})
	if err != nil {
		t.Fatal(err)
	}
	fx.fake.AddProject("secret/project")
	fx.fake.Forbid("secret/project")
	forbidden := scm.RepoRef{Kind: scm.GitLab, FullName: "secret/project"}
	missing := scm.RepoRef{Kind: scm.GitLab, FullName: "no/such"}

	calls := map[string]func(f *Forge, repo scm.RepoRef) error{
		"ListComments": func(f *Forge, r scm.RepoRef) error {
			_, err := f.ListComments(ctx, scm.PRRef{Repo: r, Number: int(iid)})
			return err
		},
		"CreateComment": func(f *Forge, r scm.RepoRef) error {
			_, err := f.CreateComment(ctx, scm.PRRef{Repo: r, Number: int(iid)}, "x")
			return err
		},
		"EditComment": func(f *Forge, r scm.RepoRef) error {
			return f.EditComment(ctx, scm.PRRef{Repo: r, Number: int(iid)}, 1, "x")
		},
		"SetStatus": func(f *Forge, r scm.RepoRef) error {
			return f.SetStatus(ctx, r, scm.Status{SHA: "a", Context: "c", State: scm.StatusSuccess})
		},
		"ListReviews": func(f *Forge, r scm.RepoRef) error {
			_, err := f.ListReviews(ctx, scm.PRRef{Repo: r, Number: int(iid)})
			return err
		},
		"GetPullRequest": func(f *Forge, r scm.RepoRef) error {
			_, err := f.GetPullRequest(ctx, scm.PRRef{Repo: r, Number: int(iid)})
			return err
		},
		"ListOpenPullRequests": func(f *Forge, r scm.RepoRef) error {
			_, err := f.ListOpenPullRequests(ctx, r)
			return err
		},
		"ChangedFiles": func(f *Forge, r scm.RepoRef) error {
			_, err := f.ChangedFiles(ctx, scm.PRRef{Repo: r, Number: int(iid)})
			return err
		},
		"ReadFile": func(f *Forge, r scm.RepoRef) error {
			_, err := f.ReadFile(ctx, r, "main", "a.yaml")
			return err
		},
		"Permission": func(f *Forge, r scm.RepoRef) error {
			fx.fake.AddUser("dev")
			_, err := f.Permission(ctx, r, "dev")
			return err
		},
		"PullRequestsOfCommit": func(f *Forge, r scm.RepoRef) error {
			_, err := f.PullRequestsOfCommit(ctx, r, "headsha1")
			return err
		},
		"DefaultBranch": func(f *Forge, r scm.RepoRef) error {
			fx.fake.SetBranch(project, "main", "headsha1")
			_, err := f.DefaultBranch(ctx, r)
			return err
		},
		"CreateDeployment": func(f *Forge, r scm.RepoRef) error {
			_, err := f.CreateDeployment(ctx, r, scm.Deployment{Ref: "main", SHA: "a", Environment: "e"})
			return err
		},
		"SetDeploymentState": func(f *Forge, r scm.RepoRef) error {
			return f.SetDeploymentState(ctx, r, 1, scm.DeploymentSuccess, "")
		},
		"CreatePullRequest": func(f *Forge, r scm.RepoRef) error {
			_, err := f.CreatePullRequest(ctx, r, scm.NewPullRequest{Title: "t", Head: "feature", Base: "main"})
			return err
		},
		"EditPullRequest": func(f *Forge, r scm.RepoRef) error {
			return f.EditPullRequest(ctx, scm.PRRef{Repo: r, Number: int(iid)}, "t", "b")
		},
		"ClosePullRequest": func(f *Forge, r scm.RepoRef) error {
			return f.ClosePullRequest(ctx, scm.PRRef{Repo: r, Number: int(iid)})
		},
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			if err := call(bad, fx.repo); !errors.Is(err, scm.ErrUnauthorized) {
				t.Errorf("bad token: %v, want ErrUnauthorized", err)
			} else if strings.Contains(err.Error(), "wrong") {
				t.Errorf("error leaks the token: %v", err)
			}
			if err := call(fx.forge, forbidden); !errors.Is(err, scm.ErrForbidden) {
				t.Errorf("forbidden project: %v, want ErrForbidden", err)
			}
			if err := call(fx.forge, missing); !errors.Is(err, scm.ErrNotFound) {
				t.Errorf("missing project: %v, want ErrNotFound", err)
			}
		})
	}
	if _, err := bad.BotLogin(ctx); !errors.Is(err, scm.ErrUnauthorized) {
		t.Errorf("BotLogin with a bad token: %v", err)
	}
}

func TestRateLimitWaitThenSucceed(t *testing.T) {
	fx := setup(t)
	iid := fx.mr(t)
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	fx.forge.now = func() time.Time { return now }
	fx.fake.RateLimit(1, http.Header{"Ratelimit-Reset": {strconv.FormatInt(now.Add(20*time.Second).Unix(), 10)}})
	fx.fake.RateLimit(1, http.Header{"Retry-After": {"5"}})
	got, err := fx.forge.GetPullRequest(context.Background(), fx.pr(iid))
	if err != nil || got.HeadSHA != "headsha1" {
		t.Fatalf("GetPullRequest = %+v, %v", got, err)
	}
	want := []time.Duration{20 * time.Second, 5 * time.Second}
	if fmt.Sprint(fx.waits) != fmt.Sprint(want) || fmt.Sprint(fx.slept) != fmt.Sprint(want) {
		t.Fatalf("waits %v, slept %v, want %v", fx.waits, fx.slept, want)
	}
}

func TestRateLimitCapExceeded(t *testing.T) {
	fx := setup(t)
	iid := fx.mr(t)
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	fx.forge.now = func() time.Time { return now }
	reset := now.Add(10 * time.Minute)
	fx.fake.RateLimit(1, http.Header{"Ratelimit-Reset": {strconv.FormatInt(reset.Unix(), 10)}})
	_, err := fx.forge.ListComments(context.Background(), fx.pr(iid))
	var rl *scm.RateLimitError
	if !errors.As(err, &rl) || !rl.Reset.Equal(reset) {
		t.Fatalf("err = %v, want RateLimitError resetting at %s", err, reset)
	}
	if len(fx.slept) != 0 {
		t.Fatalf("slept %v beyond the cap", fx.slept)
	}
}

func TestRateLimitRetriesExhausted(t *testing.T) {
	fx := setup(t)
	fx.fake.RateLimit(10, http.Header{"Retry-After": {"1"}})
	_, err := fx.forge.ReadFile(context.Background(), fx.repo, "main", "x")
	var rl *scm.RateLimitError
	if !errors.As(err, &rl) {
		t.Fatalf("err = %v, want RateLimitError", err)
	}
	if len(fx.slept) != DefaultRateLimitRetries {
		t.Fatalf("slept %d times, want %d", len(fx.slept), DefaultRateLimitRetries)
	}
}

func TestRateLimitWritesAreNotRetried(t *testing.T) {
	fx := setup(t)
	iid := fx.mr(t)
	fx.fake.RateLimit(1, http.Header{"Retry-After": {"1"}})
	_, err := fx.forge.CreateComment(context.Background(), fx.pr(iid), "x")
	var rl *scm.RateLimitError
	if !errors.As(err, &rl) || len(fx.slept) != 0 || len(fx.fake.Notes(project, iid)) != 0 {
		t.Fatalf("err = %v, slept %v", err, fx.slept)
	}
}

func TestRateLimitWaitHonoursContext(t *testing.T) {
	fx := setup(t)
	fx.forge.sleep = clock.Sleep
	fx.fake.RateLimit(1, http.Header{"Retry-After": {"30"}})
	// The job is cancelled as the wait begins: the wait must end with it,
	// not after the 30 s the forge asked for.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fx.forge.opts.OnRateLimitWait = func(time.Duration) { cancel() }
	_, err := fx.forge.ReadFile(ctx, fx.repo, "main", "x")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestServerErrorsRetriedForReadsOnly(t *testing.T) {
	fx := setup(t)
	iid := fx.mr(t)
	fx.fake.Fail(1, http.StatusBadGateway, nil)
	if _, err := fx.forge.GetPullRequest(context.Background(), fx.pr(iid)); err != nil {
		t.Fatalf("GET after one 502: %v", err)
	}
	fx.fake.Fail(1, http.StatusBadGateway, nil)
	if _, err := fx.forge.CreateComment(context.Background(), fx.pr(iid), "x"); err == nil {
		t.Fatal("POST was retried after a 502 (it may have been applied)")
	}
	if n := len(fx.fake.Notes(project, iid)); n != 0 {
		t.Fatalf("%d notes after a failed POST", n)
	}
}

func TestRequestsStayUnderBasePath(t *testing.T) {
	fx := setup(t)
	iid := fx.mr(t)
	if _, err := fx.forge.GetPullRequest(context.Background(), fx.pr(iid)); err != nil {
		t.Fatal(err)
	}
	// the fake fails the test for any request outside its base path; the
	// project path must travel escaped as one segment
	want := "GET /projects/" + strings.ReplaceAll(project, "/", "%2F") + "/merge_requests/1"
	reqs := fx.fake.Requests()
	if len(reqs) == 0 || reqs[0] != want {
		t.Fatalf("requests %q, want first %q", reqs, want)
	}
}
