package gitlab

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/scmtest/gitlabfake"
)

// requested counts the requests whose "METHOD /path?query" starts with
// prefix.
func requested(fake *gitlabfake.Server, prefix string) int {
	n := 0
	for _, r := range fake.Requests() {
		if strings.HasPrefix(r, prefix) {
			n++
		}
	}
	return n
}

// TestListReviews: the commit of each approval is the head of the newest
// diff version at its time, from approved_at or else from the approver's
// system note; without a time it is the MR's head when GitLab resets
// approvals on push, else none. Reviewers who requested changes or left a
// review are listed too, unless they approved.
func TestListReviews(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	type setting int
	const (
		keep setting = iota
		reset
		hidden // GitLab Free without the setting: 403
	)
	for _, tc := range []struct {
		name      string
		approvals []gitlabfake.Approval
		notes     []gitlabfake.Note
		reviewers []gitlabfake.Reviewer
		setting   setting
		want      []scm.Review
		// wantNotes, wantSettings: whether the fallbacks were read.
		wantNotes, wantSettings bool
	}{
		{
			name: "approved_at maps to the head of its time",
			approvals: []gitlabfake.Approval{
				{Username: "carol", ApprovedAt: t0.Add(2 * time.Hour)},
				{Username: "bob", ApprovedAt: t0.Add(30 * time.Minute)},
				{Username: "erin", ApprovedAt: t0.Add(4 * time.Hour)},   // after the last push
				{Username: "fay", ApprovedAt: t0.Add(61 * time.Minute)}, // at a push: that push's head
			},
			want: []scm.Review{
				{Author: "bob", State: scm.ReviewApproved, CommitSHA: "v1", SubmittedAt: t0.Add(30 * time.Minute)},
				{Author: "fay", State: scm.ReviewApproved, CommitSHA: "v3", SubmittedAt: t0.Add(61 * time.Minute)},
				{Author: "carol", State: scm.ReviewApproved, CommitSHA: "v62", SubmittedAt: t0.Add(2 * time.Hour)},
				{Author: "erin", State: scm.ReviewApproved, CommitSHA: "v150", SubmittedAt: t0.Add(4 * time.Hour)},
			},
		},
		{
			name:      "an approval before the first version is bound to no head",
			approvals: []gitlabfake.Approval{{Username: "bob", ApprovedAt: t0.Add(-time.Minute)}},
			want:      []scm.Review{{Author: "bob", State: scm.ReviewApproved, SubmittedAt: t0.Add(-time.Minute)}},
			// No head: the reset setting is asked, and is off.
			wantSettings: true,
		},
		{
			name:      "old GitLab: the latest approval system note gives the time",
			approvals: []gitlabfake.Approval{{Username: "dave"}},
			notes: []gitlabfake.Note{
				{Author: "dave", System: true, Body: "approved this merge request", CreatedAt: t0.Add(10 * time.Minute)},
				{Author: "dave", System: true, Body: "unapproved this merge request", CreatedAt: t0.Add(20 * time.Minute)},
				{Author: "dave", Body: "approved this merge request", CreatedAt: t0.Add(40 * time.Minute)}, // a user's note: no
				{Author: "dave", System: true, Body: "approved this merge request", CreatedAt: t0.Add(90 * time.Minute)},
			},
			want:      []scm.Review{{Author: "dave", State: scm.ReviewApproved, CommitSHA: "v32", SubmittedAt: t0.Add(90 * time.Minute)}},
			wantNotes: true,
		},
		{
			name:         "no time, approvals reset on push: the MR's head",
			approvals:    []gitlabfake.Approval{{Username: "dave"}},
			setting:      reset,
			want:         []scm.Review{{Author: "dave", State: scm.ReviewApproved, CommitSHA: "headsha1"}},
			wantNotes:    true,
			wantSettings: true,
		},
		{
			name:         "no time, approvals kept on push: no head",
			approvals:    []gitlabfake.Approval{{Username: "dave"}},
			want:         []scm.Review{{Author: "dave", State: scm.ReviewApproved}},
			wantNotes:    true,
			wantSettings: true,
		},
		{
			name:         "no time, the setting cannot be read: no head",
			approvals:    []gitlabfake.Approval{{Username: "dave"}},
			setting:      hidden,
			want:         []scm.Review{{Author: "dave", State: scm.ReviewApproved}},
			wantNotes:    true,
			wantSettings: true,
		},
		{
			name:      "reviewers who requested changes or reviewed",
			approvals: []gitlabfake.Approval{{Username: "bob", ApprovedAt: t0.Add(30 * time.Minute)}},
			reviewers: []gitlabfake.Reviewer{
				{Username: "frank", State: "requested_changes"},
				{Username: "gina", State: "reviewed"},
				{Username: "bob", State: "requested_changes"}, // approved since: the approval stands
				{Username: "henry", State: "unreviewed"},
				{Username: "ivy", State: "unapproved"}, // took the approval back: no approval
				{Username: "jack", State: "review_started"},
			},
			want: []scm.Review{
				{Author: "frank", State: scm.ReviewChangesRequested},
				{Author: "gina", State: scm.ReviewCommented},
				{Author: "bob", State: scm.ReviewApproved, CommitSHA: "v1", SubmittedAt: t0.Add(30 * time.Minute)},
			},
		},
		{
			name: "nothing",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := setup(t)
			iid := fx.mr(t)
			// 150 pushes, more than a page: v1 at t0, then one a minute
			// from t0+1h: v2 at t0+60m, v3 at t0+61m, … v150 at t0+208m.
			fx.fake.AddVersion(project, iid, gitlabfake.Version{HeadSHA: "v1", CreatedAt: t0})
			for i := 2; i <= 150; i++ {
				fx.fake.AddVersion(project, iid, gitlabfake.Version{HeadSHA: fmt.Sprintf("v%d", i), CreatedAt: t0.Add(time.Duration(58+i) * time.Minute)})
			}
			for i := range 120 { // the notes span pages too
				fx.fake.AddNote(project, iid, gitlabfake.Note{Author: "alice", Body: "lgtm", CreatedAt: t0.Add(-time.Hour + time.Duration(i)*time.Second)})
			}
			for _, n := range tc.notes {
				fx.fake.AddNote(project, iid, n)
			}
			for _, a := range tc.approvals {
				fx.fake.AddApproval(project, iid, a)
			}
			fx.fake.SetReviewers(project, iid, tc.reviewers...)
			switch tc.setting {
			case reset:
				fx.fake.SetResetApprovalsOnPush(project, true)
			case hidden:
				fx.fake.HideApprovalSettings(project, http.StatusForbidden)
			}

			got, err := fx.forge.ListReviews(context.Background(), fx.pr(iid))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.IgnoreFields(scm.Review{}, "ID"), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("reviews (-want +got):\n%s", diff)
			}
			for _, r := range got {
				if r.ID == 0 {
					t.Errorf("review by %s has no id", r.Author)
				}
			}
			mrPath := fmt.Sprintf("GET /projects/%s/merge_requests/%d", strings.ReplaceAll(project, "/", "%2F"), iid)
			if got := requested(fx.fake, mrPath+"/notes") > 0; got != tc.wantNotes {
				t.Errorf("notes read: %v, want %v", got, tc.wantNotes)
			}
			if got := requested(fx.fake, "GET /projects/"+strings.ReplaceAll(project, "/", "%2F")+"/approvals") > 0; got != tc.wantSettings {
				t.Errorf("approval settings read: %v, want %v", got, tc.wantSettings)
			}
		})
	}
}

func TestTeamMembers(t *testing.T) {
	fx := setup(t) // the project is platform/infra/deploy
	var many []gitlabfake.GroupMember
	var wantMany []string
	for i := range 230 {
		m := gitlabfake.GroupMember{Username: fmt.Sprintf("member%03d", i), Level: gitlabfake.Developer}
		switch i % 23 {
		case 1:
			m.State = "blocked"
		case 2:
			m.Level = 5 // Minimal Access
		case 3:
			m.State = "awaiting"
		default:
			wantMany = append(wantMany, m.Username)
		}
		many = append(many, m)
	}
	// Inherited and direct: listed twice by members/all, one member.
	many = append(many, gitlabfake.GroupMember{Username: "member000", Level: gitlabfake.Maintainer})
	fx.fake.SetGroup("platform/sre", many...)
	fx.fake.SetGroup("platform/infra", gitlabfake.GroupMember{Username: "alice", Level: gitlabfake.Guest})
	fx.fake.SetGroup("security", gitlabfake.GroupMember{Username: "bob", Level: gitlabfake.Owner})
	byID := scm.RepoRef{Kind: scm.GitLab, ID: fx.fake.AddProject("platform/apps/web")}

	for _, tc := range []struct {
		repo    scm.RepoRef
		team    string
		want    []string
		wantErr bool
	}{
		{repo: fx.repo, team: "sre", want: wantMany},
		{repo: fx.repo, team: "@platform/sre", want: wantMany},
		{repo: fx.repo, team: "platform/sre", want: wantMany},
		{repo: fx.repo, team: "platform/infra", want: []string{"alice"}},
		{repo: fx.repo, team: "@security", want: []string{"bob"}}, // a top-level group, as GitLab mentions it
		{repo: byID, team: "infra", want: []string{"alice"}},
		{repo: fx.repo, team: "security", wantErr: true}, // platform/security
		{repo: fx.repo, team: "platform//sre", wantErr: true},
		{repo: fx.repo, team: "platform/../sre", wantErr: true},
		{repo: fx.repo, team: "", wantErr: true},
	} {
		got, err := fx.forge.TeamMembers(context.Background(), tc.repo, tc.team)
		if tc.wantErr {
			if err == nil {
				t.Errorf("TeamMembers(%q) = %v, want an error", tc.team, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("TeamMembers(%q): %v", tc.team, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("TeamMembers(%q) (-want +got):\n%s", tc.team, diff)
		}
	}
	if n := requested(fx.fake, "GET /groups/platform%2Fsre/members/all"); n != 3 {
		t.Errorf("%d pages of 231 members read, want 3 (then cached)", n)
	}
	if _, err := fx.forge.TeamMembers(context.Background(), fx.repo, "platform/missing"); !errors.Is(err, scm.ErrNotFound) {
		t.Errorf("a missing group: %v, want ErrNotFound", err)
	}
	fx.fake.Fail(1, http.StatusForbidden, nil)
	if _, err := fx.forge.TeamMembers(context.Background(), fx.repo, "platform/hidden"); !errors.Is(err, scm.ErrForbidden) {
		t.Errorf("a forbidden group: %v, want ErrForbidden", err)
	}
}

// TestCache: permissions and group memberships are remembered for the
// TTL, then read again; a failure is not remembered; a negative TTL
// remembers nothing.
func TestCache(t *testing.T) {
	fx := setup(t)
	clk := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	fx.forge.now = func() time.Time { return clk }
	fx.fake.SetGroup("platform/sre", gitlabfake.GroupMember{Username: "alice", Level: gitlabfake.Developer})
	fx.fake.AddMember(project, "carol", gitlabfake.Reporter)
	ctx := context.Background()
	const groupReq = "GET /groups/platform%2Fsre/members/all"
	check := func(when string, wantMembers []string, wantPerm scm.Permission, wantReads int) {
		t.Helper()
		for _, team := range []string{"sre", "@Platform/SRE"} { // one group, one entry
			members, err := fx.forge.TeamMembers(ctx, fx.repo, team)
			if err != nil || !cmp.Equal(members, wantMembers) {
				t.Errorf("%s: TeamMembers(%s) = %v, %v; want %v", when, team, members, err, wantMembers)
			}
		}
		for _, user := range []string{"carol", "Carol"} {
			perm, err := fx.forge.Permission(ctx, fx.repo, user)
			if err != nil || perm != wantPerm {
				t.Errorf("%s: Permission(%s) = %s, %v; want %s", when, user, perm, err, wantPerm)
			}
		}
		if ng, np := requested(fx.fake, groupReq), requested(fx.fake, "GET /users?"); ng != wantReads || np != wantReads {
			t.Errorf("%s: group read %d times, user looked up %d times; want %d", when, ng, np, wantReads)
		}
	}
	check("first", []string{"alice"}, scm.PermissionRead, 1)
	fx.fake.SetGroup("platform/sre", gitlabfake.GroupMember{Username: "alice", Level: gitlabfake.Developer}, gitlabfake.GroupMember{Username: "bob", Level: gitlabfake.Developer})
	fx.fake.AddMember(project, "carol", gitlabfake.Developer)
	clk = clk.Add(scm.DefaultCacheTTL - time.Nanosecond)
	check("within the TTL", []string{"alice"}, scm.PermissionRead, 1)
	clk = clk.Add(time.Nanosecond)
	check("after the TTL", []string{"alice", "bob"}, scm.PermissionWrite, 2)

	clk = clk.Add(scm.DefaultCacheTTL)
	fx.fake.Fail(1, http.StatusNotFound, nil)
	if _, err := fx.forge.TeamMembers(ctx, fx.repo, "sre"); !errors.Is(err, scm.ErrNotFound) {
		t.Fatalf("a failing read: %v, want ErrNotFound", err)
	}
	if got, err := fx.forge.TeamMembers(ctx, fx.repo, "sre"); err != nil || len(got) != 2 {
		t.Errorf("after a failure: %v, %v; want a fresh read", got, err)
	}

	off, err := New(Options{BaseURL: fx.fake.URL, Token: token, CacheTTL: -1})
	if err != nil {
		t.Fatal(err)
	}
	before := requested(fx.fake, groupReq)
	for range 3 {
		if _, err := off.TeamMembers(ctx, fx.repo, "sre"); err != nil {
			t.Fatal(err)
		}
	}
	if n := requested(fx.fake, groupReq) - before; n != 3 {
		t.Errorf("without a cache: %d reads for 3 calls", n)
	}
}
