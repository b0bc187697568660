package github

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/scmtest/githubfake"
)

// count is how many requests the fake served for "METHOD /path".
func count(fake *githubfake.Server, req string) int {
	n := 0
	for _, r := range fake.Requests() {
		if r == req {
			n++
		}
	}
	return n
}

func TestListReviewsEveryStateAcrossPages(t *testing.T) {
	fake, fs := setup(t)
	f := forgeFor(t, fs, installation)
	states := []string{"APPROVED", "CHANGES_REQUESTED", "COMMENTED", "DISMISSED", "PENDING"}
	var seeded []githubfake.Review
	var want []scm.Review
	for i := range 250 {
		rv := githubfake.Review{
			ID: int64(i + 1), Author: fmt.Sprintf("user%d", i%7), State: states[i%len(states)],
			CommitID: fmt.Sprintf("sha%d", i/50), SubmittedAt: t0().Add(time.Duration(i) * time.Minute),
		}
		if i == 3 {
			rv.CommitID = "" // reviewed a commit a force-push removed: null
		}
		seeded = append(seeded, rv)
		if rv.State == "PENDING" {
			continue // a draft: not a review yet
		}
		want = append(want, scm.Review{
			ID: rv.ID, Author: rv.Author, State: map[string]scm.ReviewState{
				"APPROVED": scm.ReviewApproved, "CHANGES_REQUESTED": scm.ReviewChangesRequested,
				"COMMENTED": scm.ReviewCommented, "DISMISSED": scm.ReviewDismissed,
			}[rv.State],
			CommitSHA: rv.CommitID, SubmittedAt: rv.SubmittedAt,
		})
	}
	fake.Update("acme/app", func(r *githubfake.Repo) { r.Pulls[1].Reviews = seeded })

	got, err := f.ListReviews(context.Background(), scm.PRRef{Repo: repoRef, Number: 1})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("reviews (-want +got):\n%s", diff)
	}
	if n := count(fake, "GET /repos/acme/app/pulls/1/reviews"); n != 3 {
		t.Errorf("%d pages read, want 3 of 100", n)
	}
	if _, err := f.ListReviews(context.Background(), scm.PRRef{Repo: repoRef, Number: 999}); !errors.Is(err, scm.ErrNotFound) {
		t.Errorf("reviews of a missing pull request: %v, want ErrNotFound", err)
	}
}

func TestTeamMembers(t *testing.T) {
	fake, fs := setup(t)
	f := forgeFor(t, fs, installation)
	var many []string
	for i := range 230 {
		many = append(many, fmt.Sprintf("member%03d", i))
	}
	fake.SetTeam("acme", "platform", many...)
	fake.SetTeam("acme", "sre", "alice", "bob")
	// Another organisation the installation has a repository of, and one
	// it has none of.
	fake.AddRepo(&githubfake.Repo{Owner: "tools", Name: "ci", Installation: installation})
	fake.SetTeam("tools", "release", "carol")
	fake.SetTeam("foreign", "all", "mallory")

	for _, tc := range []struct {
		team    string
		want    []string
		wantErr error // nil: no error; errInvalid: refused before asking
	}{
		{team: "platform", want: many},
		{team: "acme/sre", want: []string{"alice", "bob"}},
		{team: "@acme/sre", want: []string{"alice", "bob"}},
		{team: "@sre", want: []string{"alice", "bob"}},
		{team: "tools/release", want: []string{"carol"}},
		{team: "acme/missing", wantErr: scm.ErrNotFound},
		{team: "foreign/all", wantErr: scm.ErrNotFound},
		{team: "acme/sre/child", wantErr: errInvalid},
		{team: "acme/../sre", wantErr: errInvalid},
		{team: "acme/Platform Team", wantErr: errInvalid},
		{team: "", wantErr: errInvalid},
	} {
		t.Run(tc.team, func(t *testing.T) {
			before := len(fake.Requests())
			got, err := f.TeamMembers(context.Background(), repoRef, tc.team)
			switch {
			case tc.wantErr == errInvalid:
				if err == nil || len(fake.Requests()) != before {
					t.Errorf("TeamMembers(%q) = %v, %v; want an error without a request", tc.team, got, err)
				}
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Errorf("TeamMembers(%q) = %v, %v; want %v", tc.team, got, err, tc.wantErr)
				}
			case err != nil:
				t.Errorf("TeamMembers(%q): %v", tc.team, err)
			default:
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("TeamMembers(%q) (-want +got):\n%s", tc.team, diff)
				}
			}
		})
	}
	if n := count(fake, "GET /orgs/acme/teams/platform/members"); n != 3 {
		t.Errorf("%d pages of 230 members read, want 3", n)
	}
}

// errInvalid marks a case refused before any request.
var errInvalid = errors.New("invalid")

// TestCache: permissions and team memberships are remembered for the TTL
// per installation, then read again; a failure is not remembered.
func TestCache(t *testing.T) {
	fake, fs := setup(t)
	clk := t0()
	fs.now = func() time.Time { return clk }
	fake.SetTeam("acme", "sre", "alice")
	f := forgeFor(t, fs, installation)
	ctx := context.Background()
	const (
		teamReq = "GET /orgs/acme/teams/sre/members"
		permReq = "GET /repos/acme/app/collaborators/carol/permission"
	)
	read := func() ([]string, scm.Permission) {
		t.Helper()
		members, err := f.TeamMembers(ctx, repoRef, "sre")
		if err != nil {
			t.Fatal(err)
		}
		// The same team by another name, and the user in another case,
		// are the same entries.
		if again, err := f.TeamMembers(ctx, repoRef, "@ACME/sre"); err != nil || !slices.Equal(again, members) {
			t.Fatalf("the same team by another name: %v, %v", again, err)
		}
		perm, err := f.Permission(ctx, repoRef, "carol")
		if err != nil {
			t.Fatal(err)
		}
		if again, err := f.Permission(ctx, repoRef, "Carol"); err != nil || again != perm {
			t.Fatalf("the same user in another case: %v, %v", again, err)
		}
		return members, perm
	}
	expect := func(when string, wantMembers []string, wantPerm scm.Permission, wantRequests int) {
		t.Helper()
		members, perm := read()
		if !slices.Equal(members, wantMembers) || perm != wantPerm {
			t.Errorf("%s: members %v, permission %s; want %v, %s", when, members, perm, wantMembers, wantPerm)
		}
		if nt, np := count(fake, teamReq), count(fake, permReq); nt != wantRequests || np != wantRequests {
			t.Errorf("%s: team read %d times, permission %d times; want %d", when, nt, np, wantRequests)
		}
	}

	expect("first", []string{"alice"}, scm.PermissionRead, 1)
	// Changed on GitHub: not seen within the TTL…
	fake.SetTeam("acme", "sre", "alice", "bob")
	fake.Update("acme/app", func(r *githubfake.Repo) { r.Permissions["carol"] = "write" })
	clk = clk.Add(scm.DefaultCacheTTL - time.Second)
	expect("within the TTL", []string{"alice"}, scm.PermissionRead, 1)
	// …and read again once it has passed.
	clk = clk.Add(time.Second)
	expect("after the TTL", []string{"alice", "bob"}, scm.PermissionWrite, 2)
	// A caller changing the slice it got does not change the cache.
	members, _ := read()
	members[0] = "mallory"
	expect("after the caller changed its copy", []string{"alice", "bob"}, scm.PermissionWrite, 2)

	// A failure is not remembered.
	clk = clk.Add(scm.DefaultCacheTTL)
	fake.Inject("GET", "/orgs/acme/teams/sre/members", 1, githubfake.Response{Status: 404, Body: `{"message":"Not Found"}`})
	if _, err := f.TeamMembers(ctx, repoRef, "sre"); !errors.Is(err, scm.ErrNotFound) {
		t.Fatalf("injected 404: %v", err)
	}
	if got, err := f.TeamMembers(ctx, repoRef, "sre"); err != nil || len(got) != 2 {
		t.Errorf("after a failure: %v, %v; want a fresh read", got, err)
	}

	// Another installation has a cache of its own.
	fake.AddRepo(&githubfake.Repo{Owner: "acme", Name: "other", Installation: installation + 1})
	other := forgeFor(t, fs, installation+1)
	before := count(fake, teamReq)
	if _, err := other.TeamMembers(ctx, scm.RepoRef{Kind: scm.GitHub, FullName: "acme/other"}, "sre"); err != nil {
		t.Fatal(err)
	}
	if count(fake, teamReq) != before+1 {
		t.Error("another installation's lookup was answered from this one's cache")
	}
}

func TestCacheDisabled(t *testing.T) {
	fake := githubfake.New(t)
	fake.AddRepo(seed())
	fake.SetTeam("acme", "sre", "alice")
	fs, err := New(Options{BaseURL: fake.URL(), AppID: fake.AppID, PrivateKey: fake.KeyPEM, CacheTTL: -1})
	if err != nil {
		t.Fatal(err)
	}
	f := forgeFor(t, fs, installation)
	for range 3 {
		if _, err := f.TeamMembers(context.Background(), repoRef, "sre"); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Permission(context.Background(), repoRef, "bob"); err != nil {
			t.Fatal(err)
		}
	}
	if nt, np := count(fake, "GET /orgs/acme/teams/sre/members"), count(fake, "GET /repos/acme/app/collaborators/bob/permission"); nt != 3 || np != 3 {
		t.Errorf("without a cache: team read %d times, permission %d; want 3 each", nt, np)
	}
}
