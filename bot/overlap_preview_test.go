package bot

import (
	"slices"
	"strings"
	"testing"

	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
)

// addPull opens pull request number n of the setup's repository from the
// base to head.
func (s *previewSetup) addPull(t *testing.T, n int, head string) scm.PRRef {
	t.Helper()
	first, err := s.forge.GetPullRequest(t.Context(), s.ref)
	if err != nil {
		t.Fatal(err)
	}
	ref := scm.PRRef{Repo: s.ref.Repo, Number: n}
	s.forge.AddPull(scm.PullRequest{Ref: ref, State: "open", Author: "dev", BaseSHA: first.BaseSHA, HeadSHA: head,
		BaseRef: "main", HeadRef: "feature-" + head[:7], CloneURL: first.CloneURL, HeadCloneURL: first.CloneURL})
	return ref
}

// previewOf previews ref as a job with trigger t does and returns its
// sticky comment.
func (s *previewSetup) previewOf(t *testing.T, ref scm.PRRef, tr Trigger) string {
	t.Helper()
	pr, err := s.forge.GetPullRequest(t.Context(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.p.Preview(t.Context(), s.forge, pr, tr); err != nil {
		t.Fatalf("Preview %s: %v", ref, err)
	}
	c := s.forge.Comments(ref)
	if len(c) == 0 {
		t.Fatalf("no comment on %s", ref)
	}
	return c[len(c)-1].Body
}

// TestOverlapWarnings: two open pull requests that change the same field
// of the same object, one through the object's file and one through a
// kustomize patch in other files, both warn of the other (the first
// through a refresh the second's preview queues); a third that changes
// another field warns of neither; when one closes, the other's warning
// goes.
func TestOverlapWarnings(t *testing.T) {
	s := newPreviewSetup(t)
	first, _ := s.forge.GetPullRequest(t.Context(), s.ref)
	s.applyAt(t, first.BaseSHA)
	var refreshed []int
	s.p.Refresh = func(pr scm.PRRef) { refreshed = append(refreshed, pr.Number) }

	s.push(t, map[string]string{"apps/web/config.yaml": configMap("web", "two")})
	if body := s.previewOf(t, s.ref, Trigger{Reason: ReasonWebhook}); strings.Contains(body, "Also changed by") {
		t.Errorf("#7 alone warns of an overlap:\n%s", body)
	}

	s.repo.Checkout(t, first.BaseSHA)
	patched := s.addPull(t, 8, s.repo.Commit(t, map[string]string{
		"apps/web/kustomization.yaml": "resources:\n- config.yaml\npatches:\n- path: value.yaml\n",
		"apps/web/value.yaml":         "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  value: three\n",
	}, "patch web's value"))
	body := s.previewOf(t, patched, Trigger{Reason: ReasonWebhook})
	if !strings.Contains(body, "**Also changed by #7:** ConfigMap/"+s.ns+"/web (data.value)") {
		t.Errorf("#8's preview does not warn of #7:\n%s", body)
	}
	if !slices.Equal(refreshed, []int{7}) {
		t.Errorf("#8's preview refreshed %v, want [7]", refreshed)
	}
	body = s.previewOf(t, s.ref, Trigger{Reason: ReasonOverlap})
	if !strings.Contains(body, "**Also changed by #8:** ConfigMap/"+s.ns+"/web (data.value)") {
		t.Errorf("#7's refreshed preview does not warn of #8:\n%s", body)
	}

	// Another field of the same object overlaps with neither.
	refreshed = nil
	s.repo.Checkout(t, first.BaseSHA)
	other := s.addPull(t, 9, s.repo.Commit(t, map[string]string{
		"apps/web/config.yaml": configMap("web", "one") + "  other: x\n",
	}, "another field"))
	if body := s.previewOf(t, other, Trigger{Reason: ReasonWebhook}); strings.Contains(body, "Also changed by") {
		t.Errorf("#9 changes another field, yet warns:\n%s", body)
	}
	if len(refreshed) != 0 {
		t.Errorf("#9's preview refreshed %v, want none", refreshed)
	}

	// #8 closes: #7 is refreshed and its warning goes.
	s.forge.UpdatePull(patched, func(pr *scm.PullRequest) { pr.State = "closed" })
	s.previewOf(t, patched, Trigger{Reason: ReasonWebhook})
	if !slices.Equal(refreshed, []int{7}) {
		t.Errorf("closing #8 refreshed %v, want [7]", refreshed)
	}
	if body := s.previewOf(t, s.ref, Trigger{Reason: ReasonOverlap}); strings.Contains(body, "Also changed by") {
		t.Errorf("#7 still warns after #8 closed:\n%s", body)
	}
}
