package bot

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
)

// approve runs the approval gate as a job does and returns the newest
// gitops/approval status of the head.
func (s *previewSetup) approve(t *testing.T) scm.Status {
	t.Helper()
	pr, err := s.forge.GetPullRequest(t.Context(), s.ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.p.Approve(t.Context(), s.forge, pr); err != nil {
		t.Fatalf("Approve: %v", err)
	}
	var last scm.Status
	for _, st := range s.forge.Statuses() {
		if st.Context == ApprovalContext && st.SHA == pr.HeadSHA {
			last = st
		}
	}
	if last.Context == "" {
		t.Fatalf("no %s status on %s", ApprovalContext, pr.HeadSHA)
	}
	return last
}

func (s *previewSetup) review(user string, state scm.ReviewState, sha string) {
	s.forge.AddReview(s.ref, scm.Review{Author: user, State: state, CommitSHA: sha, SubmittedAt: time.Now()})
}

func wantStatus(t *testing.T, what string, got scm.Status, state scm.StatusState, desc string) {
	t.Helper()
	t.Logf("%s: %s %q", what, got.State, got.Description)
	if got.State != state || !strings.Contains(got.Description, desc) {
		t.Errorf("%s: %s %q, want %s containing %q", what, got.State, got.Description, state, desc)
	}
}

// TestApprovalGate walks a pull request through the gate under the
// default staleness (plan): no approval, the author's own, a read-only
// user's, a writer's; a push that changes nothing rendered keeps the
// approval, a push that changes the plan drops it.
func TestApprovalGate(t *testing.T) {
	s := newPreviewSetupWith(t, "approvals:\n- name: default\n  minApprovals: 1\n")
	s.forge.SetPermission("alice", scm.PermissionWrite)
	s.forge.SetPermission("dev", scm.PermissionWrite)
	s.forge.SetPermission("reader", scm.PermissionRead)

	head := s.push(t, map[string]string{"apps/web/config.yaml": configMap("web", "two")})
	s.preview(t, false)
	wantStatus(t, "no review", s.approve(t), scm.StatusPending, "0 of 1")

	s.review("dev", scm.ReviewApproved, head)
	s.review("reader", scm.ReviewApproved, head)
	wantStatus(t, "the author's and a reader's approvals", s.approve(t), scm.StatusPending, "0 of 1")

	s.review("alice", scm.ReviewApproved, head)
	wantStatus(t, "a writer's approval", s.approve(t), scm.StatusSuccess, "approved by @alice")
	for _, c := range s.forge.Calls("ReadFile") {
		if strings.Contains(c.Arg, "CODEOWNERS") {
			t.Errorf("CODEOWNERS was read for a policy without codeowners: %s", c.Arg)
		}
	}

	// A README: the plan is the same, the approval keeps counting.
	s.push(t, map[string]string{"README.md": "docs\n"})
	s.preview(t, false)
	wantStatus(t, "after a push that changes no plan", s.approve(t), scm.StatusSuccess, "approved by @alice")

	// A change to what would be applied: the approval no longer counts.
	s.push(t, map[string]string{"apps/web/config.yaml": configMap("web", "three")})
	s.preview(t, false)
	wantStatus(t, "after a push that changes the plan", s.approve(t), scm.StatusPending, "0 of 1")

	// Without a preview of the head (a restart): the gate renders it.
	s.p = &Previewer{Clusters: s.p.Clusters, CacheDir: s.p.CacheDir}
	head3 := s.push(t, map[string]string{"apps/web/config.yaml": configMap("web", "four")})
	s.review("alice", scm.ReviewApproved, head3)
	wantStatus(t, "approved at a head no preview rendered", s.approve(t), scm.StatusSuccess, "approved by @alice")
	s.push(t, map[string]string{"README.md": "more docs\n"})
	wantStatus(t, "an unchanged plan after a restart", s.approve(t), scm.StatusSuccess, "approved by @alice")
}

// TestApprovalGateStaleCommit: under dismissStale: commit, any new commit
// drops the approvals; a changes request blocks until withdrawn.
func TestApprovalGateStaleCommit(t *testing.T) {
	s := newPreviewSetupWith(t, "approvals:\n- name: default\n  minApprovals: 1\n  dismissStale: commit\n")
	s.forge.SetPermission("alice", scm.PermissionWrite)
	s.forge.SetPermission("bob", scm.PermissionWrite)
	head := s.push(t, map[string]string{"apps/web/config.yaml": configMap("web", "two")})
	s.preview(t, false)
	s.review("alice", scm.ReviewApproved, head)
	s.review("bob", scm.ReviewChangesRequested, head)
	wantStatus(t, "approved and changes requested", s.approve(t), scm.StatusPending, "@bob requested changes")
	s.review("bob", scm.ReviewApproved, head)
	wantStatus(t, "the changes request withdrawn", s.approve(t), scm.StatusSuccess, "approved by @alice, @bob")
	s.push(t, map[string]string{"README.md": "docs\n"})
	s.preview(t, false)
	wantStatus(t, "a new commit under commit staleness", s.approve(t), scm.StatusPending, "0 of 1")
}

// TestApprovalPolicyFromBase: the head lowering minApprovals is judged by
// the base's policy, and an app the pull request adds gets the base's
// default policy.
func TestApprovalPolicyFromBase(t *testing.T) {
	s := newPreviewSetupWith(t, "approvals:\n- name: default\n  minApprovals: 2\n")
	s.forge.SetPermission("alice", scm.PermissionWrite)
	head := s.push(t, map[string]string{
		"gitops.yaml":          gitopsYAML(s.ns, "- name: extra\n  path: apps/extra\n  namespace: "+s.ns+"\n  cluster: test\napprovals:\n- name: default\n  minApprovals: 0\n"),
		"apps/extra/cm.yaml":   configMap("extra", "one"),
		"apps/web/config.yaml": configMap("web", "two"),
	})
	s.preview(t, false)
	s.review("alice", scm.ReviewApproved, head)
	got := s.approve(t)
	wantStatus(t, "a head lowering minApprovals", got, scm.StatusPending, "1 of 2")
	if !strings.Contains(got.Description, "extra") || !strings.Contains(got.Description, "web") {
		t.Errorf("the reasons should name both apps under the base's default policy: %q", got.Description)
	}
}

// approveFunc is an ApprovalRunner of a function.
type approveFunc func(ctx context.Context, forge ApprovalForge, pr *scm.PullRequest) error

func (f approveFunc) Approve(ctx context.Context, forge ApprovalForge, pr *scm.PullRequest) error {
	return f(ctx, forge, pr)
}

// TestReviewJobRunsTheGate: a review delivery runs the approval gate on the
// pull request as the forge has it now (its head, not the payload's), and
// does not preview; a preview is followed by the gate.
func TestReviewJobRunsTheGate(t *testing.T) {
	h := newHarness(t)
	var mu sync.Mutex
	var gated []string
	h.approver = approveFunc(func(_ context.Context, _ ApprovalForge, pr *scm.PullRequest) error {
		mu.Lock()
		defer mu.Unlock()
		gated = append(gated, pr.HeadSHA)
		return nil
	})
	h.forge.AddPull(scm.PullRequest{Ref: scm.PRRef{Repo: scm.RepoRef{Kind: scm.GitHub, FullName: "acme/app"}, Number: 7}, State: "open", HeadSHA: "forge-head"})
	h.start()
	if rec := h.deliver(reviewPayload("submitted"), "d-review"); rec.Code != http.StatusAccepted {
		t.Fatalf("status = %d, want 202", rec.Code)
	}
	waitFor(t, "the gate", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(gated) == 1
	})
	if calls := h.callsSnapshot(); len(calls) != 0 {
		t.Errorf("a review previewed: %+v", calls)
	}
	h.quiesce()
	mu.Lock()
	defer mu.Unlock()
	if gated[0] != "forge-head" {
		t.Errorf("the gate ran on head %q, want the forge's forge-head, not the payload's", gated[0])
	}
}
