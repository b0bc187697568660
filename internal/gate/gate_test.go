package gate

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-gitops/kubectl-gitops/internal/config"
	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/gittest"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/scmtest/memforge"
)

const baseYAML = `apiVersion: gitops.kubectl.dev/v1alpha1
kind: Repository
apps:
- {name: web, path: apps/web}
- {name: api, path: apps/api, approval: strict}
approvals:
- {name: default, minApprovals: 1}
- {name: strict, minApprovals: 2, dismissStale: commit}
`

// TestDecide: the base's policies, the forge's reviews and permissions,
// the plans; each case a pull request's reviews and what is decided.
func TestDecide(t *testing.T) {
	repo := gittest.NewRepo(t, map[string]string{config.FileName: baseYAML})
	baseSHA := repo.Head(t)
	merged := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	review := func(user string, state scm.ReviewState, sha string, at time.Time) scm.Review {
		return scm.Review{Author: user, State: state, CommitSHA: sha, SubmittedAt: at}
	}
	before := merged.Add(-time.Hour)
	cases := []struct {
		name     string
		apps     []string
		plans    map[string]string
		reviews  []scm.Review
		mergedAt time.Time
		approved bool
		problem  string
		reason   string
	}{
		{name: "no review", apps: []string{"web"}, reason: "0 of 1 approvals"},
		{name: "a writer", apps: []string{"web"}, reviews: []scm.Review{review("alice", scm.ReviewApproved, "head", before)}, approved: true},
		{name: "the author", apps: []string{"web"}, reviews: []scm.Review{review("dev", scm.ReviewApproved, "head", before)}, reason: "0 of 1"},
		{name: "a reader", apps: []string{"web"}, reviews: []scm.Review{review("reader", scm.ReviewApproved, "head", before)}, reason: "@reader's approval does not count"},
		{name: "the bot", apps: []string{"web"}, reviews: []scm.Review{review(memforge.DefaultLogin, scm.ReviewApproved, "head", before)}, reason: "0 of 1"},
		{name: "approved after the merge", apps: []string{"web"}, mergedAt: merged,
			reviews: []scm.Review{review("alice", scm.ReviewApproved, "head", merged.Add(time.Minute))}, reason: "0 of 1"},
		{name: "every app's policy", apps: []string{"web", "api"}, reviews: []scm.Review{review("alice", scm.ReviewApproved, "head", before)}, reason: "1 of 2"},
		{name: "an older commit under commit staleness", apps: []string{"api"},
			reviews: []scm.Review{review("alice", scm.ReviewApproved, "old", before), review("bob", scm.ReviewApproved, "head", before)}, reason: "1 of 2"},
		{name: "an older commit with the same plan", apps: []string{"web"}, reviews: []scm.Review{review("alice", scm.ReviewApproved, "old", before)}, approved: true},
		{name: "an older commit with another plan", apps: []string{"web"}, reviews: []scm.Review{review("alice", scm.ReviewApproved, "older", before)}, reason: "plan differs"},
		{name: "no plan", apps: []string{"web"}, plans: map[string]string{}, problem: "app web does not render"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			forge := memforge.New()
			ref := scm.PRRef{Repo: scm.RepoRef{Kind: scm.GitHub, FullName: "acme/deploy"}, Number: 7}
			forge.SetGitDir(ref.Repo, repo.Dir)
			forge.SetPermission("alice", scm.PermissionWrite)
			forge.SetPermission("bob", scm.PermissionWrite)
			forge.SetPermission("dev", scm.PermissionWrite)
			forge.SetPermission("reader", scm.PermissionRead)
			pr := &scm.PullRequest{Ref: ref, State: "open", Author: "dev", BaseSHA: baseSHA, HeadSHA: "head"}
			forge.AddPull(*pr)
			for _, r := range tc.reviews {
				forge.AddReview(ref, r)
			}
			base, problem, err := BaseConfig(t.Context(), forge, pr)
			if err != nil || problem != nil {
				t.Fatalf("BaseConfig: %v %+v", err, problem)
			}
			plans := tc.plans
			if plans == nil {
				plans = map[string]string{"web": "p1", "api": "p2"}
			}
			reviewed := func(_ context.Context, _ []scm.Review, _ []string) (func(sha, app string) string, error) {
				return func(sha, app string) string {
					switch sha {
					case "head", "old":
						return plans[app]
					}
					return "other"
				}, nil
			}
			d, why, err := Decide(t.Context(), forge, Change{PR: pr, Base: base, Apps: tc.apps, Plans: plans, MergedAt: tc.mergedAt, Now: before}, reviewed)
			if err != nil {
				t.Fatal(err)
			}
			if tc.problem != "" {
				if !strings.Contains(why, tc.problem) {
					t.Errorf("problem = %q, want %q", why, tc.problem)
				}
				return
			}
			if why != "" || d.Approved != tc.approved || !strings.Contains(strings.Join(d.Reasons, "; "), tc.reason) {
				t.Errorf("decided approved=%v problem=%q reasons=%q; want approved=%v with %q", d.Approved, why, d.Reasons, tc.approved, tc.reason)
			}
		})
	}
}

// TestBaseConfig: no file and an invalid file are problems for the
// reader, not errors.
func TestBaseConfig(t *testing.T) {
	repo := gittest.NewRepo(t, map[string]string{"README.md": "x\n"})
	none := repo.Head(t)
	invalid := repo.Commit(t, map[string]string{config.FileName: "apps: [{name: Bad Name}]\n"}, "bad")
	forge := memforge.New()
	ref := scm.PRRef{Repo: scm.RepoRef{Kind: scm.GitHub, FullName: "acme/deploy"}, Number: 1}
	forge.SetGitDir(ref.Repo, repo.Dir)
	for sha, want := range map[string]BaseProblem{
		none:    {Note: "The base branch has no gitops.yaml"},
		invalid: {Note: "is invalid", Invalid: true},
	} {
		base, problem, err := BaseConfig(t.Context(), forge, &scm.PullRequest{Ref: ref, BaseSHA: sha})
		if err != nil || base != nil || problem == nil || problem.Invalid != want.Invalid || !strings.Contains(problem.Note, want.Note) {
			t.Errorf("BaseConfig at %s = %v, %+v, %v; want %+v", sha, base, problem, err, want)
		}
	}
}
