package integration

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/gittest"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/scmtest/githubfake"
)

// TestBotApprovalGateEndToEnd runs the gitops-bot binary against the GitHub
// fake, a real Git server and the real API server: a pull request with no
// approval gets gitops/approval pending with the reasons; the author's and
// a read-only user's approvals leave it pending; a writer's approval,
// delivered as a pull_request_review webhook, makes it success; a push
// that only changes a README keeps it (the plan is the same); a push that
// changes the plan makes it pending again.
func TestBotApprovalGateEndToEnd(t *testing.T) {
	env.Require(t)
	ns := env.Namespace(t)
	fake := githubfake.New(t)
	repo := gittest.NewRepo(t, map[string]string{
		"gitops.yaml": fmt.Sprintf(`apiVersion: gitops.kubectl.dev/v1alpha1
kind: Repository
apps:
  - {name: web, path: apps/web, namespace: %s, cluster: test}
approvals:
  - {name: default, minApprovals: 1}
`, ns),
		"apps/web/settings.yaml": configMap("web-settings", "one"),
	})
	base := repo.Head(t)
	applyBase(t, repo.Dir)
	head := repo.Commit(t, map[string]string{"apps/web/settings.yaml": configMap("web-settings", "two")}, "web: two")
	serveShop(t, fake, repo, base, &githubfake.Pull{
		Title: "web: two", HeadSHA: head,
		Files: []githubfake.File{{Filename: "apps/web/settings.yaml", Status: "modified"}},
	})
	fake.Update("acme/shop", func(r *githubfake.Repo) {
		r.Permissions["alice"], r.Permissions["dev"], r.Permissions["reader"] = "write", "write", "read"
	})
	addr, _ := startBot(t, fake)

	if code := deliver(t, addr, "gate-1", pullRequestEvent("opened", head)); code != http.StatusAccepted {
		t.Fatalf("pull_request.opened: HTTP %d, want 202", code)
	}
	waitContext(t, fake, head, "gitops/approval", "pending", "0 of 1 approvals")

	review := func(id, user, sha string) {
		t.Helper()
		fake.Update("acme/shop", func(r *githubfake.Repo) {
			p := r.Pulls[7]
			p.Reviews = append(p.Reviews, githubfake.Review{ID: int64(len(p.Reviews) + 1), Author: user, State: "APPROVED", CommitID: sha, SubmittedAt: time.Now()})
		})
		body := fmt.Appendf(nil, `{"action":"submitted","review":{"id":1,"state":"approved","commit_id":%q,"user":{"login":%q}},"pull_request":{"number":7,"state":"open","head":{"sha":%q,"ref":"alpha-two"},"base":{"ref":"main"},"user":{"login":"dev"}},"repository":{"id":1001,"name":"shop","full_name":"acme/shop","owner":{"login":"acme"}},"installation":{"id":42},"sender":{"login":%q}}`, sha, user, sha, user)
		if code, answer := deliverEvent(t, addr, "pull_request_review", id, body); code != http.StatusAccepted {
			t.Fatalf("pull_request_review: HTTP %d %s, want 202", code, answer)
		}
	}
	review("gate-2", "dev", head)
	review("gate-3", "reader", head)
	waitContext(t, fake, head, "gitops/approval", "pending", "@reader's approval does not count")
	review("gate-4", "alice", head)
	waitContext(t, fake, head, "gitops/approval", "success", "approved by @alice")

	readme := repo.Commit(t, map[string]string{"README.md": "docs\n"}, "docs")
	fake.Update("acme/shop", func(r *githubfake.Repo) { r.Pulls[7].HeadSHA = readme })
	if code := deliver(t, addr, "gate-5", pullRequestEvent("synchronize", readme)); code != http.StatusAccepted {
		t.Fatalf("pull_request.synchronize: HTTP %d, want 202", code)
	}
	waitContext(t, fake, readme, "gitops/approval", "success", "approved by @alice")

	changed := repo.Commit(t, map[string]string{"apps/web/settings.yaml": configMap("web-settings", "three")}, "web: three")
	fake.Update("acme/shop", func(r *githubfake.Repo) { r.Pulls[7].HeadSHA = changed })
	if code := deliver(t, addr, "gate-6", pullRequestEvent("synchronize", changed)); code != http.StatusAccepted {
		t.Fatalf("pull_request.synchronize: HTTP %d, want 202", code)
	}
	waitContext(t, fake, changed, "gitops/approval", "pending", "whose plan differs from the head's")
}
