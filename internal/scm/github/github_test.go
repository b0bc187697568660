package github

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/scmtest/githubfake"
)

const installation = 7

var repoRef = scm.RepoRef{Kind: scm.GitHub, FullName: "acme/app"}

func t0() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }

// seed is a repository valid by default: pull request 1 has more comments,
// reviews and files than one page holds, and there are more open pull
// requests than one page.
func seed() *githubfake.Repo {
	r := &githubfake.Repo{
		Owner: "acme", Name: "app", Installation: installation,
		Files: map[string]map[string]string{
			"main":    {"gitops.yaml": "apps: []\n"},
			"feature": {"deploy/app/kustomization.yaml": "resources: []\n"},
		},
		Permissions: map[string]string{"alice": "admin", "bob": "maintain", "carol": "triage"},
		Pulls:       map[int]*githubfake.Pull{},
	}
	mergeable := true
	pr := &githubfake.Pull{
		Number: 1, Title: "Bump", Author: "alice", State: "open", Mergeable: &mergeable,
		HeadSHA: "aaaa", HeadRef: "feature", BaseSHA: "bbbb", BaseRef: "main",
		HeadRepo: "mallory/app", UpdatedAt: t0(),
	}
	for i := range 150 {
		pr.Comments = append(pr.Comments, githubfake.Comment{ID: int64(i + 1), Author: "alice", Body: fmt.Sprintf("c%d", i), CreatedAt: t0(), UpdatedAt: t0()})
	}
	for i := range 120 {
		pr.Reviews = append(pr.Reviews, githubfake.Review{ID: int64(i + 1), Author: "bob", State: "APPROVED", CommitID: "aaaa", SubmittedAt: t0()})
	}
	for i := range 250 {
		pr.Files = append(pr.Files, githubfake.File{Filename: fmt.Sprintf("f%03d.yaml", i), Status: "modified"})
	}
	pr.Files = append(pr.Files, githubfake.File{Filename: "new.yaml", PreviousFilename: "old.yaml", Status: "renamed"})
	r.Pulls[1] = pr
	for n := 2; n <= 140; n++ {
		state := "open"
		if n%10 == 0 {
			state = "closed"
		}
		r.Pulls[n] = &githubfake.Pull{Number: n, Title: "pr", Author: "bob", State: state, HeadSHA: "cc", HeadRef: "b" + strconv.Itoa(n), BaseSHA: "bb", BaseRef: "main", UpdatedAt: t0()}
	}
	return r
}

func setup(t *testing.T) (*githubfake.Server, *Forges) {
	t.Helper()
	fake := githubfake.New(t)
	fake.AddRepo(seed())
	fs, err := New(Options{BaseURL: fake.URL(), AppID: fake.AppID, PrivateKey: fake.KeyPEM})
	if err != nil {
		t.Fatal(err)
	}
	return fake, fs
}

func forgeFor(t *testing.T, fs *Forges, id int64) scm.Forge {
	t.Helper()
	f, err := fs.Forge(context.Background(), repoRef, id)
	if err != nil {
		t.Fatalf("Forge: %v", err)
	}
	return f
}

func TestForgeMethods(t *testing.T) {
	fake, fs := setup(t)
	ctx := context.Background()
	f := forgeFor(t, fs, installation)
	pr := scm.PRRef{Repo: repoRef, Number: 1}

	if n := f.MaxCommentBytes(); n != 65_536 {
		t.Errorf("MaxCommentBytes = %d, want GitHub's 65,536", n)
	}
	cs, err := f.ListComments(ctx, pr)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 150 || cs[0].Body != "c0" || cs[149].Body != "c149" || cs[0].Author != "alice" {
		t.Errorf("ListComments: got %d comments, want 150 in order", len(cs))
	}

	c, err := f.CreateComment(ctx, pr, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if c.Author != "gitops-test[bot]" || c.Body != "hello" || c.ID == 0 {
		t.Errorf("CreateComment = %+v", c)
	}
	if err := f.EditComment(ctx, pr, c.ID, "edited"); err != nil {
		t.Fatal(err)
	}
	fake.Update("acme/app", func(r *githubfake.Repo) {
		if got := r.Pulls[1].Comments[150].Body; got != "edited" {
			t.Errorf("after EditComment body = %q", got)
		}
	})

	long := strings.Repeat("é", 200)
	if err := f.SetStatus(ctx, repoRef, scm.Status{SHA: "aaaa", Context: "gitops/preview", State: scm.StatusPending, Description: long, TargetURL: "https://example.com/p"}); err != nil {
		t.Fatal(err)
	}
	fake.Update("acme/app", func(r *githubfake.Repo) {
		st := r.Statuses[0]
		if n := len([]rune(st.Description)); n != 140 || st.State != "pending" || st.Context != "gitops/preview" || st.SHA != "aaaa" {
			t.Errorf("status = %+v (%d chars)", st, n)
		}
	})

	rs, err := f.ListReviews(ctx, pr)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 120 || rs[0].State != scm.ReviewApproved || rs[0].CommitSHA != "aaaa" || rs[0].Author != "bob" {
		t.Errorf("ListReviews: %d reviews, first %+v", len(rs), rs[0])
	}

	p, err := f.GetPullRequest(ctx, pr)
	if err != nil {
		t.Fatal(err)
	}
	if p.HeadSHA != "aaaa" || p.BaseRef != "main" || !p.Fork || p.State != "open" || p.Mergeable == nil || !*p.Mergeable || p.Author != "alice" || !p.UpdatedAt.Equal(t0()) {
		t.Errorf("GetPullRequest = %+v", p)
	}

	open, err := f.ListOpenPullRequests(ctx, repoRef)
	if err != nil {
		t.Fatal(err)
	}
	if want := 140 - 14; len(open) != want { // 10, 20, … 140 are closed
		t.Errorf("ListOpenPullRequests: %d, want %d", len(open), want)
	}

	files, err := f.ChangedFiles(ctx, pr)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 252 || !slices.Contains(files, "old.yaml") || !slices.Contains(files, "new.yaml") {
		t.Errorf("ChangedFiles: %d files", len(files))
	}

	data, err := f.ReadFile(ctx, repoRef, "feature", "deploy/app/kustomization.yaml")
	if err != nil || string(data) != "resources: []\n" {
		t.Errorf("ReadFile = %q, %v", data, err)
	}
	if _, err := f.ReadFile(ctx, repoRef, "main", "missing.yaml"); !errors.Is(err, scm.ErrNotFound) {
		t.Errorf("ReadFile of a missing file: %v, want ErrNotFound", err)
	}

	for user, want := range map[string]scm.Permission{"alice": scm.PermissionAdmin, "bob": scm.PermissionWrite, "carol": scm.PermissionRead, "dave": scm.PermissionNone} {
		got, err := f.Permission(ctx, repoRef, user)
		if err != nil || got != want {
			t.Errorf("Permission(%s) = %s, %v; want %s", user, got, err, want)
		}
	}

	login, err := f.BotLogin(ctx)
	if err != nil || login != "gitops-test[bot]" {
		t.Errorf("BotLogin = %q, %v", login, err)
	}
	u, pw, err := f.CloneCredentials(ctx, repoRef)
	if err != nil || u != "x-access-token" || !strings.HasPrefix(pw, "ghs_") {
		t.Errorf("CloneCredentials = %q, password set %v, %v", u, pw != "", err)
	}
	if n := fake.TokensIssued(); n != 1 {
		t.Errorf("installation tokens minted: %d, want 1 (cached)", n)
	}
}

func TestInstallationLookup(t *testing.T) {
	fake, fs := setup(t)
	ctx := context.Background()
	f := forgeFor(t, fs, 0)
	if _, err := f.GetPullRequest(ctx, scm.PRRef{Repo: repoRef, Number: 1}); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(fake.Requests(), "GET /repos/acme/app/installation") {
		t.Errorf("no installation lookup in %v", fake.Requests())
	}
	// Cached: a second Forge does not look it up again.
	forgeFor(t, fs, 0)
	n := 0
	for _, r := range fake.Requests() {
		if r == "GET /repos/acme/app/installation" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("installation looked up %d times, want 1", n)
	}

	fake.AddRepo(&githubfake.Repo{Owner: "acme", Name: "other"})
	if _, err := fs.Forge(ctx, scm.RepoRef{Kind: scm.GitHub, FullName: "acme/other"}, 0); !errors.Is(err, scm.ErrNotFound) {
		t.Errorf("Forge of a repository without the app: %v, want ErrNotFound", err)
	}
}

func TestInstallationTokenRefresh(t *testing.T) {
	fake, fs := setup(t)
	ctx := context.Background()
	// ghinstallation refreshes a minute before expiry: a 30-second token is
	// refreshed on every use, and an expired one is refused by the fake.
	fake.SetTokenTTL(30 * time.Second)
	f := forgeFor(t, fs, installation)
	for range 3 {
		if _, err := f.GetPullRequest(ctx, scm.PRRef{Repo: repoRef, Number: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if n := fake.TokensIssued(); n != 3 {
		t.Errorf("tokens minted: %d, want 3 (each about to expire)", n)
	}
}

func TestWrongAppKey(t *testing.T) {
	fake := githubfake.New(t)
	fake.AddRepo(seed())
	other := githubfake.New(t) // a different key
	fs, err := New(Options{BaseURL: fake.URL(), AppID: fake.AppID, PrivateKey: other.KeyPEM})
	if err != nil {
		t.Fatal(err)
	}
	f := forgeFor(t, fs, installation)
	if _, err := f.GetPullRequest(context.Background(), scm.PRRef{Repo: repoRef, Number: 1}); !errors.Is(err, scm.ErrUnauthorized) {
		t.Errorf("with a JWT of another key: %v, want ErrUnauthorized", err)
	}
	if _, _, err := f.CloneCredentials(context.Background(), repoRef); !errors.Is(err, scm.ErrUnauthorized) {
		t.Errorf("CloneCredentials with a JWT of another key: %v, want ErrUnauthorized", err)
	}
}

func TestTokenAuth(t *testing.T) {
	fake := githubfake.New(t)
	fake.AddRepo(seed())
	fake.AddToken("pat-1", "octocat")
	ctx := context.Background()
	fs, err := New(Options{BaseURL: fake.URL(), Token: "pat-1"})
	if err != nil {
		t.Fatal(err)
	}
	f := forgeFor(t, fs, 0)
	if login, err := f.BotLogin(ctx); err != nil || login != "octocat" {
		t.Errorf("BotLogin = %q, %v", login, err)
	}
	c, err := f.CreateComment(ctx, scm.PRRef{Repo: repoRef, Number: 1}, "hi")
	if err != nil || c.Author != "octocat" {
		t.Errorf("CreateComment = %+v, %v", c, err)
	}
	if u, pw, err := f.CloneCredentials(ctx, repoRef); err != nil || u != "x-access-token" || pw != "pat-1" {
		t.Errorf("CloneCredentials = %q, %v", u, err)
	}

	bad, err := New(Options{BaseURL: fake.URL(), Token: "wrong"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := forgeFor(t, bad, 0).GetPullRequest(ctx, scm.PRRef{Repo: repoRef, Number: 1}); !errors.Is(err, scm.ErrUnauthorized) {
		t.Errorf("bad token: %v, want ErrUnauthorized", err)
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	for name, o := range map[string]Options{
		"none":      {},
		"both":      {AppID: 1, PrivateKey: []byte("k"), Token: "t"},
		"no key":    {AppID: 1},
		"bad key":   {AppID: 1, PrivateKey: []byte("not a key")},
		"no app id": {PrivateKey: []byte("k")},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: New accepted %+v", name, o)
		}
	}
}

func TestNotFound(t *testing.T) {
	_, fs := setup(t)
	ctx := context.Background()
	f := forgeFor(t, fs, installation)
	if _, err := f.GetPullRequest(ctx, scm.PRRef{Repo: repoRef, Number: 999}); !errors.Is(err, scm.ErrNotFound) {
		t.Errorf("missing PR: %v", err)
	}
	if _, err := f.ListComments(ctx, scm.PRRef{Repo: scm.RepoRef{Kind: scm.GitHub, FullName: "acme/nope"}, Number: 1}); !errors.Is(err, scm.ErrNotFound) {
		t.Errorf("missing repo: %v", err)
	}
	if err := f.EditComment(ctx, scm.PRRef{Repo: repoRef, Number: 1}, 424242, "x"); !errors.Is(err, scm.ErrNotFound) {
		t.Errorf("missing comment: %v", err)
	}
	if _, err := fs.Forge(ctx, scm.RepoRef{Kind: scm.GitHub, FullName: "no-slash"}, 1); err == nil {
		t.Error("Forge accepted a name without owner")
	}
}

// fakeClock makes rate-limit waits instant and records them.
func fakeClock(fs *Forges) *[]time.Duration {
	var waits []time.Duration
	now := t0()
	fs.now = func() time.Time { return now }
	fs.sleep = func(_ context.Context, d time.Duration) error {
		waits = append(waits, d)
		now = now.Add(d)
		return nil
	}
	return &waits
}

func TestRateLimits(t *testing.T) {
	const path = "/repos/acme/app/pulls/1"
	reset := strconv.FormatInt(t0().Add(30*time.Second).Unix(), 10)
	for _, tc := range []struct {
		name      string
		method    string
		resp      githubfake.Response
		times     int
		wantWaits []time.Duration
		// wantErr: the call fails with a RateLimitError (Secondary as given).
		wantErr       bool
		wantSecondary bool
		wantForbidden bool
	}{
		{
			name:      "primary 403 waits until reset",
			resp:      githubfake.Response{Status: 403, Header: http.Header{"X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset": {reset}}, Body: `{"message":"API rate limit exceeded"}`},
			times:     1,
			wantWaits: []time.Duration{30 * time.Second},
		},
		{
			name:      "primary 429 waits until reset",
			resp:      githubfake.Response{Status: 429, Header: http.Header{"X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset": {reset}}},
			times:     1,
			wantWaits: []time.Duration{30 * time.Second},
		},
		{
			name:      "secondary Retry-After",
			resp:      githubfake.Response{Status: 403, Header: http.Header{"Retry-After": {"5"}}, Body: `{"message":"You have exceeded a secondary rate limit"}`},
			times:     2,
			wantWaits: []time.Duration{5 * time.Second, 5 * time.Second},
		},
		{
			name:      "secondary message only waits a minute",
			resp:      githubfake.Response{Status: 403, Body: `{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}`},
			times:     1,
			wantWaits: []time.Duration{time.Minute},
		},
		{
			name:          "wait above the cap",
			resp:          githubfake.Response{Status: 403, Header: http.Header{"X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset": {strconv.FormatInt(t0().Add(2*time.Hour).Unix(), 10)}}},
			times:         1,
			wantErr:       true,
			wantSecondary: false,
		},
		{
			name:          "retries exhausted",
			resp:          githubfake.Response{Status: 429, Header: http.Header{"Retry-After": {"1"}}},
			times:         10,
			wantWaits:     []time.Duration{time.Second, time.Second, time.Second},
			wantErr:       true,
			wantSecondary: true,
		},
		{
			name:          "plain 403 is forbidden",
			resp:          githubfake.Response{Status: 403, Body: `{"message":"Resource not accessible by integration"}`},
			times:         1,
			wantForbidden: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake, fs := setup(t)
			waits := fakeClock(fs)
			var hooked []time.Duration
			fs.opts.OnRateLimitWait = func(d time.Duration) { hooked = append(hooked, d) }
			f := forgeFor(t, fs, installation)
			fake.Inject("GET", path, tc.times, tc.resp)
			_, err := f.GetPullRequest(context.Background(), scm.PRRef{Repo: repoRef, Number: 1})
			var rl *scm.RateLimitError
			switch {
			case tc.wantErr:
				if !errors.As(err, &rl) || rl.Secondary != tc.wantSecondary {
					t.Fatalf("err = %v, want RateLimitError (secondary %v)", err, tc.wantSecondary)
				}
				if rl.Reset.Before(t0()) {
					t.Errorf("Reset %v is in the past", rl.Reset)
				}
			case tc.wantForbidden:
				if !errors.Is(err, scm.ErrForbidden) || errors.As(err, &rl) {
					t.Fatalf("err = %v, want ErrForbidden", err)
				}
			default:
				if err != nil {
					t.Fatalf("err = %v, want success after waiting", err)
				}
			}
			if !slices.Equal(*waits, tc.wantWaits) || !slices.Equal(hooked, tc.wantWaits) {
				t.Errorf("waits %v, hook saw %v; want %v", *waits, hooked, tc.wantWaits)
			}
		})
	}
}

// TestServerErrorsRetried: a GET meeting a passing 502/503 is retried with
// backoff (without counting as a rate-limit wait); a POST is not, and a
// server error that persists comes back as the error.
func TestServerErrorsRetried(t *testing.T) {
	fake, fs := setup(t)
	waits := fakeClock(fs)
	var hooked int
	fs.opts.OnRateLimitWait = func(time.Duration) { hooked++ }
	f := forgeFor(t, fs, installation)
	ref := scm.PRRef{Repo: repoRef, Number: 1}
	fake.Inject("GET", "/repos/acme/app/pulls/1", 2, githubfake.Response{Status: 502, Body: `{"message":"Server Error"}`})
	if _, err := f.GetPullRequest(context.Background(), ref); err != nil {
		t.Fatalf("GET after two 502s: %v", err)
	}
	if want := []time.Duration{time.Second, 2 * time.Second}; !slices.Equal(*waits, want) || hooked != 0 {
		t.Errorf("waits %v (rate-limit hook %d times), want %v and no hook", *waits, hooked, want)
	}
	*waits = nil
	fake.Inject("GET", "/repos/acme/app/pulls/1", 10, githubfake.Response{Status: 503})
	if _, err := f.GetPullRequest(context.Background(), ref); err == nil {
		t.Error("a GET that always meets 503 succeeded")
	}
	if len(*waits) != 3 {
		t.Errorf("%d retries of a lasting 503, want 3", len(*waits))
	}
	*waits = nil
	fake.Inject("POST", "/repos/acme/app/issues/1/comments", 1, githubfake.Response{Status: 502})
	if _, err := f.CreateComment(context.Background(), ref, "x"); err == nil || len(*waits) != 0 {
		t.Errorf("a POST that met 502: err %v, waits %v; want the error and no retry", err, *waits)
	}
}

func TestRateLimitedPostIsNotRetried(t *testing.T) {
	fake, fs := setup(t)
	waits := fakeClock(fs)
	f := forgeFor(t, fs, installation)
	fake.Inject("POST", "/repos/acme/app/issues/1/comments", 1, githubfake.Response{Status: 403, Header: http.Header{"Retry-After": {"3"}}})
	_, err := f.CreateComment(context.Background(), scm.PRRef{Repo: repoRef, Number: 1}, "x")
	var rl *scm.RateLimitError
	if !errors.As(err, &rl) || !rl.Secondary || !rl.Reset.Equal(t0().Add(3*time.Second)) {
		t.Fatalf("err = %v, want secondary RateLimitError resetting in 3s", err)
	}
	if len(*waits) != 0 {
		t.Errorf("a POST waited %v", *waits)
	}
	fake.Update("acme/app", func(r *githubfake.Repo) {
		if n := len(r.Pulls[1].Comments); n != 150 {
			t.Errorf("%d comments, want 150 (no post)", n)
		}
	})
}

func TestRateLimitWaitHonoursContext(t *testing.T) {
	fake, fs := setup(t)
	f := forgeFor(t, fs, installation)
	if _, err := f.GetPullRequest(context.Background(), scm.PRRef{Repo: repoRef, Number: 1}); err != nil {
		t.Fatal(err) // mint the token first
	}
	fake.Inject("GET", "/repos/acme/app/pulls/1", 1, githubfake.Response{Status: 429, Header: http.Header{"Retry-After": {"50"}}})
	ctx, cancel := context.WithCancel(context.Background())
	fs.opts.OnRateLimitWait = func(time.Duration) { cancel() }
	if _, err := f.GetPullRequest(ctx, scm.PRRef{Repo: repoRef, Number: 1}); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestBaseURL(t *testing.T) {
	for in, want := range map[string]string{
		"":                               "",
		"https://ghe.example.com":        "https://ghe.example.com/api/v3/",
		"https://ghe.example.com/":       "https://ghe.example.com/api/v3/",
		"https://ghe.example.com/api/v3": "https://ghe.example.com/api/v3/",
		"http://127.0.0.1:1/api-v3/":     "http://127.0.0.1:1/api-v3/",
	} {
		fs, err := New(Options{BaseURL: in, Token: "t"})
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if fs.baseURL != want {
			t.Errorf("BaseURL %q became %q, want %q", in, fs.baseURL, want)
		}
	}
	if _, err := New(Options{BaseURL: "ghe.example.com", Token: "t"}); err == nil {
		t.Error("New accepted a base URL without a scheme")
	}
	fs, _ := New(Options{Token: "t"})
	if _, err := fs.Forge(context.Background(), scm.RepoRef{Kind: scm.GitLab, FullName: "a/b"}, 0); err == nil {
		t.Error("Forge accepted a GitLab repository")
	}
}
