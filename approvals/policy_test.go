package approvals_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-gitops/kubectl-gitops/approvals"
)

const (
	head    = "c0ffee0c0ffee0c0ffee0c0ffee0c0ffee0c0ff"
	older   = "0ld0ld00ld0ld00ld0ld00ld0ld00ld0ld00ld0"
	plan    = "sha256:plan-of-head"
	oldPlan = "sha256:plan-before"
)

var now = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC) // a Tuesday

// facts are the facts of a pull request by alice, valid by default: each
// test changes what it is about.
func facts(reviews ...approvals.Review) approvals.Facts {
	return approvals.Facts{
		Now:      now,
		Author:   "alice",
		Bots:     []string{"gitops-bot[bot]"},
		HeadSHA:  head,
		PlanHash: plan,
		Reviews:  reviews,
		CanWrite: map[string]bool{"alice": true, "bob": true, "carol": true, "dave": true, "frank": true, "gitops-bot[bot]": true, "eve": false},
		Teams: map[string][]string{
			"acme/platform": {"carol", "dave"},
			"acme/solo":     {"alice"},
			"acme/readers":  {"eve"},
		},
		Emails: map[string]string{"dave@example.com": "dave"},
	}
}

// on the head, with its plan.
func approve(user string) approvals.Review {
	return approvals.Review{User: user, State: approvals.ReviewApproved, SHA: head, PlanHash: plan}
}

func review(user string, state approvals.ReviewState) approvals.Review {
	return approvals.Review{User: user, State: state, SHA: head, PlanHash: plan}
}

func TestEvaluateReviews(t *testing.T) {
	two := approvals.Policy{MinApprovals: 2}
	one := approvals.Policy{MinApprovals: 1}
	commit := approvals.Policy{MinApprovals: 1, DismissStale: approvals.StaleCommit}
	tests := []struct {
		name    string
		policy  approvals.Policy
		facts   approvals.Facts
		edit    func(*approvals.Facts)
		want    []string // approval reasons
		blocked bool
	}{{
		name:   "no policy, no reviews",
		policy: approvals.Policy{},
		facts:  facts(),
	}, {
		name:   "two distinct approvals",
		policy: two,
		facts:  facts(approve("bob"), approve("carol")),
	}, {
		name:   "one approval of two",
		policy: two,
		facts:  facts(approve("bob")),
		want:   []string{"1 of 2 approvals"},
	}, {
		name:   "the same user twice is one approval",
		policy: two,
		facts:  facts(approve("bob"), approve("Bob"), approve("@bob")),
		want:   []string{"1 of 2 approvals"},
	}, {
		name:   "the author approving",
		policy: two,
		facts:  facts(approve("bob"), approve("alice")),
		want:   []string{"1 of 2 approvals", "@alice's approval does not count: authors do not approve their own change"},
	}, {
		name:   "a pusher approving",
		policy: two,
		facts:  facts(approve("bob"), approve("frank")),
		edit:   func(f *approvals.Facts) { f.Pushers = []string{"frank"} },
		want:   []string{"1 of 2 approvals", "@frank's approval does not count: they pushed to the change, and whoever writes code does not approve it"},
	}, {
		name:   "the bot approving",
		policy: two,
		facts:  facts(approve("bob"), approve("gitops-bot[bot]")),
		want:   []string{"1 of 2 approvals", "@gitops-bot[bot]'s approval does not count: the bot's reviews never count"},
	}, {
		name:   "a read-only approver",
		policy: two,
		facts:  facts(approve("bob"), approve("eve")),
		want:   []string{"1 of 2 approvals", "@eve's approval does not count: they have no write access to the repository"},
	}, {
		name:   "an approver whose access is not known",
		policy: one,
		facts:  facts(approve("mallory")),
		want:   []string{"0 of 1 approvals", "@mallory's approval does not count: they have no write access to the repository"},
	}, {
		name:   "changes requested",
		policy: one,
		facts:  facts(approve("carol"), review("bob", approvals.ReviewChangesRequested)),
		want:   []string{"@bob requested changes (until they approve or the review is dismissed)"},
	}, {
		name:   "changes requested with no approvals required",
		policy: approvals.Policy{},
		facts:  facts(review("bob", approvals.ReviewChangesRequested)),
		want:   []string{"@bob requested changes (until they approve or the review is dismissed)"},
	}, {
		name:   "changes requested, then approved",
		policy: one,
		facts:  facts(review("bob", approvals.ReviewChangesRequested), review("bob", approvals.ReviewCommented), approve("bob")),
	}, {
		name:   "changes requested, then dismissed",
		policy: one,
		facts:  facts(approve("carol"), review("bob", approvals.ReviewChangesRequested), review("bob", approvals.ReviewDismissed)),
	}, {
		name:   "changes requested on an older commit still block",
		policy: one,
		facts:  facts(approve("carol"), approvals.Review{User: "bob", State: approvals.ReviewChangesRequested, SHA: older, PlanHash: oldPlan}),
		want:   []string{"@bob requested changes (until they approve or the review is dismissed)"},
	}, {
		name:   "changes requested by a read-only user do not block",
		policy: one,
		facts:  facts(approve("carol"), review("eve", approvals.ReviewChangesRequested)),
	}, {
		name:   "changes requested by the author do not block",
		policy: one,
		facts:  facts(approve("carol"), review("alice", approvals.ReviewChangesRequested)),
	}, {
		name:   "approved, then changes requested",
		policy: one,
		facts:  facts(approve("bob"), review("bob", approvals.ReviewChangesRequested)),
		want:   []string{"0 of 1 approvals", "@bob requested changes (until they approve or the review is dismissed)"},
	}, {
		name:   "approved, then dismissed",
		policy: one,
		facts:  facts(approve("bob"), review("bob", approvals.ReviewDismissed)),
		want:   []string{"0 of 1 approvals"},
	}, {
		name:   "a comment after an approval keeps it",
		policy: one,
		facts:  facts(approve("bob"), review("bob", approvals.ReviewCommented)),
	}, {
		name:   "reviews are read in the order they were given",
		policy: one,
		facts: facts(
			approvals.Review{User: "bob", State: approvals.ReviewApproved, SHA: head, PlanHash: plan, At: now.Add(-time.Hour)},
			approvals.Review{User: "bob", State: approvals.ReviewChangesRequested, SHA: head, PlanHash: plan, At: now.Add(-2 * time.Hour)},
		),
	}, {
		name:   "plan: an approval on an older commit with the same plan counts",
		policy: one,
		facts:  facts(approvals.Review{User: "bob", State: approvals.ReviewApproved, SHA: older, PlanHash: plan}),
	}, {
		name:   "plan: an approval of another plan is stale",
		policy: one,
		facts:  facts(approvals.Review{User: "bob", State: approvals.ReviewApproved, SHA: older, PlanHash: oldPlan}),
		want:   []string{"0 of 1 approvals", "@bob's approval was given on 0ld0ld0, whose plan differs from the head's; review the new plan and approve again"},
	}, {
		name:   "plan: a plan approved again later counts",
		policy: one,
		facts: facts(
			approvals.Review{User: "bob", State: approvals.ReviewApproved, SHA: older, PlanHash: plan},
			approvals.Review{User: "bob", State: approvals.ReviewApproved, SHA: "1234567890", PlanHash: "sha256:other"},
		),
	}, {
		name:   "plan: an approval with no recorded plan is stale",
		policy: one,
		facts:  facts(approvals.Review{User: "bob", State: approvals.ReviewApproved, SHA: head}),
		want:   []string{"0 of 1 approvals", "@bob's approval was given on c0ffee0, which has no recorded plan; approve the current plan again"},
	}, {
		name:   "plan: no plan for the head yet",
		policy: one,
		facts:  facts(approvals.Review{User: "bob", State: approvals.ReviewApproved, SHA: head}),
		edit:   func(f *approvals.Facts) { f.PlanHash = "" },
		want:   []string{"0 of 1 approvals", "the head has no rendered plan yet, so no approval counts; wait for the preview"},
	}, {
		name:   "commit: an approval on an older commit with the same plan is stale",
		policy: commit,
		facts:  facts(approvals.Review{User: "bob", State: approvals.ReviewApproved, SHA: older, PlanHash: plan}),
		want:   []string{"0 of 1 approvals", "@bob's approval was given on 0ld0ld0, not on the head commit c0ffee0; approve again"},
	}, {
		name:   "commit: an approval on the head counts whatever the plan",
		policy: commit,
		facts:  facts(approvals.Review{User: "bob", State: approvals.ReviewApproved, SHA: strings.ToUpper(head)}),
	}, {
		name:   "commit: a review with no commit counts for none",
		policy: commit,
		facts:  facts(approvals.Review{User: "bob", State: approvals.ReviewApproved, PlanHash: plan}),
		want:   []string{"0 of 1 approvals", "@bob's approval was given on an unknown commit, not on the head commit c0ffee0; approve again"},
	}, {
		name:   "a required user approves",
		policy: approvals.Policy{Users: []string{"@Bob"}},
		facts:  facts(approve("bob")),
	}, {
		name:   "a required user has not approved",
		policy: approvals.Policy{Users: []string{"bob", "carol"}},
		facts:  facts(approve("bob")),
		want:   []string{"needs approval from @carol"},
	}, {
		name:    "a required user who is the author",
		policy:  approvals.Policy{Users: []string{"alice"}},
		facts:   facts(approve("alice")),
		want:    []string{"@alice is a required reviewer but is the author, so cannot approve; change the policy's users", "@alice's approval does not count: authors do not approve their own change"},
		blocked: true,
	}, {
		name:    "a required user without write access",
		policy:  approvals.Policy{Users: []string{"eve"}},
		facts:   facts(),
		want:    []string{"@eve is a required reviewer but has no write access, so cannot approve; change the policy's users"},
		blocked: true,
	}, {
		name:   "a required team satisfied",
		policy: approvals.Policy{Teams: []string{"@acme/platform"}},
		facts:  facts(approve("dave")),
	}, {
		name:   "a required team not satisfied",
		policy: approvals.Policy{MinApprovals: 1, Teams: []string{"acme/platform"}},
		facts:  facts(approve("bob")),
		want:   []string{"needs approval from a member of @acme/platform"},
	}, {
		name:    "a required team whose only member is the author",
		policy:  approvals.Policy{Teams: []string{"acme/solo"}},
		facts:   facts(approve("bob")),
		want:    []string{"no member of @acme/solo can approve (the author, pushers, the bot and users without write access do not count); change the policy's teams or the team"},
		blocked: true,
	}, {
		name:    "a required team nobody resolved",
		policy:  approvals.Policy{Teams: []string{"acme/ghosts"}},
		facts:   facts(approve("bob")),
		want:    []string{"no member of @acme/ghosts can approve (the author, pushers, the bot and users without write access do not count); change the policy's teams or the team"},
		blocked: true,
	}, {
		name:   "everything at once",
		policy: approvals.Policy{MinApprovals: 2, Teams: []string{"acme/platform"}},
		facts:  facts(approve("bob"), approve("alice"), review("frank", approvals.ReviewChangesRequested)),
		want: []string{
			"1 of 2 approvals",
			"needs approval from a member of @acme/platform",
			"@frank requested changes (until they approve or the review is dismissed)",
			"@alice's approval does not count: authors do not approve their own change",
		},
	}, {
		name:   "everything at once, resolved",
		policy: approvals.Policy{MinApprovals: 2, Teams: []string{"acme/platform"}, Users: []string{"frank"}},
		facts:  facts(approve("bob"), approve("alice"), review("frank", approvals.ReviewChangesRequested), approve("carol"), approve("frank")),
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.facts
			if tt.edit != nil {
				tt.edit(&f)
			}
			d := approvals.Evaluate(tt.policy, f)
			if !slices.Equal(d.ApprovalReasons, tt.want) {
				t.Errorf("reasons:\n got %q\nwant %q", d.ApprovalReasons, tt.want)
			}
			approved := len(tt.want) == 0
			if d.Approved != approved || d.Blocked != tt.blocked {
				t.Errorf("Approved, Blocked = %v, %v; want %v, %v", d.Approved, d.Blocked, approved, tt.blocked)
			}
			// No windows: the decision is the review verdict.
			if d.Allowed != approved || d.Pending != (!approved && !tt.blocked) || !slices.Equal(d.Reasons, tt.want) {
				t.Errorf("Allowed, Pending, Reasons = %v, %v, %q", d.Allowed, d.Pending, d.Reasons)
			}
			wantState := map[[2]bool]approvals.State{{true, false}: approvals.StateSuccess, {false, false}: approvals.StatePending, {false, true}: approvals.StateFailure}[[2]bool{approved, tt.blocked}]
			if d.ApprovalState() != wantState || d.SyncState() != wantState {
				t.Errorf("ApprovalState, SyncState = %v, %v; want %v", d.ApprovalState(), d.SyncState(), wantState)
			}
		})
	}
}

func TestEvaluateApprovers(t *testing.T) {
	d := approvals.Evaluate(approvals.Policy{MinApprovals: 1}, facts(approve("Carol"), approve("bob"), approve("alice"), approve("eve")))
	if want := []string{"Carol", "bob"}; !slices.Equal(d.Approvers, want) {
		t.Errorf("Approvers = %q, want %q", d.Approvers, want)
	}
}

const githubOwners = `* @acme/platform
/apps/web/ @bob dave@example.com
/apps/web/generated/
/apps/solo/ @alice
/apps/shared/ @acme/readers @alice
`

const gitlabOwners = `* @acme/platform

[Database][2] @carol @dave @frank
/db/

^[Docs] @bob
*.md

[Solo][2] @bob @alice
/solo/
`

func TestEvaluateCodeowners(t *testing.T) {
	gh, err := approvals.ParseCodeowners(githubOwners, approvals.GitHub)
	if err != nil {
		t.Fatal(err)
	}
	gl, err := approvals.ParseCodeowners(gitlabOwners, approvals.GitLab)
	if err != nil {
		t.Fatal(err)
	}
	policy := approvals.Policy{Codeowners: true}
	tests := []struct {
		name    string
		owners  *approvals.Codeowners
		files   []string
		reviews []approvals.Review
		want    []string
		blocked bool
	}{{
		name:    "GitHub: each file's last matching rule",
		owners:  gh,
		files:   []string{"apps/web/deploy.yaml", "README.md"},
		reviews: []approvals.Review{approve("bob"), approve("carol")},
	}, {
		name:    "GitHub: an owner by email",
		owners:  gh,
		files:   []string{"apps/web/deploy.yaml"},
		reviews: []approvals.Review{approve("dave")},
	}, {
		name:    "GitHub: an owner missing",
		owners:  gh,
		files:   []string{"apps/web/deploy.yaml", "apps/web/service.yaml", "apps/web/a.yaml", "apps/web/b.yaml", "README.md"},
		reviews: []approvals.Review{approve("carol")},
		want:    []string{"needs a code owner's approval for apps/web/deploy.yaml, apps/web/service.yaml, apps/web/a.yaml and 1 more: @bob or dave@example.com"},
	}, {
		name:    "GitHub: an unowned file needs no owner",
		owners:  gh,
		files:   []string{"apps/web/generated/zz.yaml"},
		reviews: nil,
	}, {
		name:    "GitHub: the team owns the rest",
		owners:  gh,
		files:   []string{"infra/ns.yaml"},
		reviews: []approvals.Review{approve("bob")},
		want:    []string{"needs a code owner's approval for infra/ns.yaml: @acme/platform"},
	}, {
		name:    "GitHub: only the author owns a file",
		owners:  gh,
		files:   []string{"apps/solo/a.yaml"},
		reviews: []approvals.Review{approve("bob")},
		want:    []string{"no code owner of apps/solo/a.yaml (@alice) can approve (the author, pushers, the bot and users without write access do not count); change CODEOWNERS (line 4)"},
		blocked: true,
	}, {
		name:    "GitHub: owners who cannot approve",
		owners:  gh,
		files:   []string{"apps/shared/a.yaml"},
		reviews: []approvals.Review{approve("eve"), approve("alice")},
		want: []string{
			"no code owner of apps/shared/a.yaml (@acme/readers, @alice) can approve (the author, pushers, the bot and users without write access do not count); change CODEOWNERS (line 5)",
			"@alice's approval does not count: authors do not approve their own change",
			"@eve's approval does not count: they have no write access to the repository",
		},
		blocked: true,
	}, {
		name:    "GitLab: every section's owners",
		owners:  gl,
		files:   []string{"db/schema.sql", "db/README.md"},
		reviews: []approvals.Review{approve("carol"), approve("frank")},
	}, {
		name:    "GitLab: a section's count",
		owners:  gl,
		files:   []string{"db/schema.sql"},
		reviews: []approvals.Review{approve("carol"), approve("bob")},
		want:    []string{"needs 2 code owner approvals in section Database for db/schema.sql (1 so far): @carol, @dave, @frank"},
	}, {
		name:    "GitLab: the default section too",
		owners:  gl,
		files:   []string{"db/schema.sql"},
		reviews: []approvals.Review{approve("frank"), approve("bob"), approve("@Frank")},
		want: []string{
			"needs a code owner's approval for db/schema.sql: @acme/platform",
			"needs 2 code owner approvals in section Database for db/schema.sql (1 so far): @carol, @dave, @frank",
		},
	}, {
		name:    "GitLab: a count the owners cannot reach",
		owners:  gl,
		files:   []string{"solo/a.txt"},
		reviews: []approvals.Review{approve("bob"), approve("carol")},
		want:    []string{"needs 2 code owner approvals in section Solo for solo/a.txt, but only 1 of the owners (@bob, @alice) can approve; change CODEOWNERS (line 10)"},
		blocked: true,
	}, {
		name:    "no CODEOWNERS file",
		owners:  nil,
		files:   []string{"a.txt"},
		reviews: []approvals.Review{approve("bob")},
		want:    []string{"code owners must approve, but the base branch has no CODEOWNERS file; add one or turn codeowners off in the policy"},
		blocked: true,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := facts(tt.reviews...)
			f.Codeowners = tt.owners
			f.ChangedFiles = tt.files
			d := approvals.Evaluate(policy, f)
			if !slices.Equal(d.ApprovalReasons, tt.want) {
				t.Errorf("reasons:\n got %q\nwant %q", d.ApprovalReasons, tt.want)
			}
			if d.Approved != (len(tt.want) == 0) || d.Blocked != tt.blocked {
				t.Errorf("Approved, Blocked = %v, %v", d.Approved, d.Blocked)
			}
		})
	}
}

func TestNeeds(t *testing.T) {
	gh, _ := approvals.ParseCodeowners(githubOwners+"/ops/ @ops-lead ops@example.com\n", approvals.GitHub)
	f := facts(approve("Bob"), review("carol", approvals.ReviewChangesRequested), review("dave", approvals.ReviewCommented))
	f.Codeowners = gh
	f.ChangedFiles = []string{"ops/x", "README.md", "apps/web/a"}
	got := approvals.Needs(approvals.Policy{Users: []string{"@Frank"}, Teams: []string{"@acme/sre"}, Codeowners: true}, f)
	want := approvals.Lookups{
		Teams:  []string{"acme/platform", "acme/sre"},
		Emails: []string{"dave@example.com", "ops@example.com"},
		Users:  []string{"bob", "carol", "frank"},
	}
	if !slices.Equal(got.Teams, want.Teams) || !slices.Equal(got.Emails, want.Emails) || !slices.Equal(got.Users, want.Users) {
		t.Errorf("Needs = %+v, want %+v", got, want)
	}
	gl, _ := approvals.ParseCodeowners("* @group @user\n", approvals.GitLab)
	f.Codeowners = gl
	if got := approvals.Needs(approvals.Policy{Codeowners: true}, f); !slices.Equal(got.Teams, []string{"group", "user"}) {
		t.Errorf("GitLab: Teams = %q, want both bare names (each may be a group)", got.Teams)
	}
}
