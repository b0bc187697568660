package integration

import (
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/gittest"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/scmtest/githubfake"
)

const shopRepository = `"repository":{"id":1001,"name":"shop","full_name":"acme/shop","owner":{"login":"acme"}},"installation":{"id":42}`

// prEvent is a pull_request delivery of pull request n of acme/shop.
func prEvent(n int, action, head string) []byte {
	return fmt.Appendf(nil, `{"action":%q,"number":%d,"pull_request":{"number":%d,"state":"open","head":{"sha":%q,"ref":"change-%d"},"base":{"ref":"main"},"user":{"login":"dev"}},%s,"sender":{"login":"dev"}}`,
		action, n, n, head, n, shopRepository)
}

// reviewEvent is a pull_request_review delivery: user approved pull
// request 7 at sha.
func reviewEvent(user, sha string) []byte {
	return fmt.Appendf(nil, `{"action":"submitted","review":{"id":1,"state":"approved","commit_id":%q,"user":{"login":%q}},"pull_request":{"number":7,"state":"open","head":{"sha":%q,"ref":"alpha-two"},"base":{"ref":"main"},"user":{"login":"dev"}},%s,"sender":{"login":%q}}`,
		sha, user, sha, shopRepository, user)
}

// pushEvent is a push delivery of main from before to after.
func pushEvent(before, after string) []byte {
	return fmt.Appendf(nil, `{"ref":"refs/heads/main","before":%q,"after":%q,%s,"sender":{"login":"dev"}}`, before, after, shopRepository)
}

// commentEvent is an issue_comment delivery: user commented body on pull
// request n.
func commentEvent(n int, user, body string) []byte {
	return fmt.Appendf(nil, `{"action":"created","issue":{"number":%d,"pull_request":{"url":"x"}},"comment":{"id":%d,"body":%q,"user":{"login":%q}},%s,"sender":{"login":%q}}`,
		n, time.Now().UnixNano(), body, user, shopRepository, user)
}

// approve records user's approval of pull request n at sha on the fake.
func approve(fake *githubfake.Server, n int, user, sha string) {
	fake.Update("acme/shop", func(r *githubfake.Repo) {
		p := r.Pulls[n]
		p.Reviews = append(p.Reviews, githubfake.Review{ID: int64(len(p.Reviews) + 1), Author: user, State: "APPROVED", CommitID: sha, SubmittedAt: time.Now()})
	})
}

// mergePull marks pull request n merged as sha (a fast-forward) and moves
// main there.
func mergePull(fake *githubfake.Server, n int, sha string) {
	fake.Update("acme/shop", func(r *githubfake.Repo) {
		p := r.Pulls[n]
		p.Merged, p.MergeCommitSHA, p.MergedAt = true, sha, time.Now()
		r.Branches["main"] = sha
	})
}

// mustDeliver sends a signed delivery and fails unless it is accepted.
func mustDeliver(t *testing.T, addr, event string, body []byte) {
	t.Helper()
	id := fmt.Sprintf("%s-%d", event, time.Now().UnixNano())
	if code, answer := deliverEvent(t, addr, event, id, body); code != http.StatusAccepted {
		t.Fatalf("%s: HTTP %d %s, want 202", event, code, answer)
	}
}

// waitCommentOn waits until pull request n has a comment containing each
// of want, and returns it.
func waitCommentOn(t *testing.T, fake *githubfake.Server, n int, want ...string) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var bodies []string
	for time.Now().Before(deadline) {
		bodies = bodies[:0]
		fake.Update("acme/shop", func(r *githubfake.Repo) {
			for _, c := range r.Pulls[n].Comments {
				bodies = append(bodies, c.Body)
			}
		})
		for _, b := range bodies {
			if containsAll(b, want) {
				return b
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no comment on #%d contains %q; comments:\n%s", n, want, strings.Join(bodies, "\n-----\n"))
	return ""
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// settingValue is the key of ConfigMap name in ns, "<none>" when absent.
func settingValue(t *testing.T, ns, name string) string {
	t.Helper()
	cm, err := env.Clientset.CoreV1().ConfigMaps(ns).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		return "<none>"
	}
	return cm.Data["key"]
}

// waitSetting waits until ConfigMap name in ns has value.
func waitSetting(t *testing.T, ns, name, value string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if settingValue(t, ns, name) == value {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s/%s never became %q; it is %q", ns, name, value, settingValue(t, ns, name))
}

// shopGitops is a gitops.yaml with apps web and api in ns and extra.
func shopGitops(ns, extra string) string {
	return fmt.Sprintf(`apiVersion: gitops.kubectl.dev/v1alpha1
kind: Repository
apps:
  - {name: web, path: apps/web, namespace: %[1]s, cluster: test}
  - {name: api, path: apps/api, namespace: %[1]s, cluster: test}
%[2]s`, ns, extra)
}

// newSyncShop is acme/shop with web and api applied at the base, pull
// request 7 changing web to "two", alice a writer and root an admin, and
// the bot running. It returns the repository, the base and #7's head.
func newSyncShop(t *testing.T, fake *githubfake.Server, ns, extra string) (*gittest.Repo, string, string, string) {
	t.Helper()
	repo := gittest.NewRepo(t, map[string]string{
		"gitops.yaml":            shopGitops(ns, extra),
		"apps/web/settings.yaml": configMap("web-settings", "one"),
		"apps/api/settings.yaml": configMap("api-settings", "one"),
	})
	base := repo.Head(t)
	applyBase(t, repo.Dir)
	head := repo.Commit(t, map[string]string{"apps/web/settings.yaml": configMap("web-settings", "two")}, "web: two")
	serveShop(t, fake, repo, base, &githubfake.Pull{
		Title: "web: two", HeadSHA: head,
		Files: []githubfake.File{{Filename: "apps/web/settings.yaml", Status: "modified"}},
	})
	fake.Update("acme/shop", func(r *githubfake.Repo) {
		r.Permissions["alice"], r.Permissions["root"] = "write", "admin"
		r.Branches = map[string]string{"main": base}
	})
	addr, _ := startBot(t, fake)
	return repo, addr, base, head
}

// TestBotSyncOnMergeEndToEnd: an approved pull request's merge is applied
// (the objects in the API server), reported on the pull request and as a
// deployment, recorded on the inventory (kubectl gitops status names the
// pull request and the approver); a direct push to main is not applied and
// fails gitops/sync.
func TestBotSyncOnMergeEndToEnd(t *testing.T) {
	env.Require(t)
	ns := env.Namespace(t)
	fake := githubfake.New(t)
	repo, addr, base, head := newSyncShop(t, fake, ns, "sync: onMerge\napprovals:\n  - {name: default, minApprovals: 1}\n")

	mustDeliver(t, addr, "pull_request", prEvent(7, "opened", head))
	waitContext(t, fake, head, "gitops/approval", "pending", "0 of 1 approvals")
	approve(fake, 7, "alice", head)
	mustDeliver(t, addr, "pull_request_review", reviewEvent("alice", head))
	waitContext(t, fake, head, "gitops/approval", "success", "approved by @alice")

	mergePull(fake, 7, head)
	mustDeliver(t, addr, "push", pushEvent(base, head))
	waitContext(t, fake, head, "gitops/sync", "success", "applied web")
	if v := settingValue(t, ns, "web-settings"); v != "two" {
		t.Errorf("web-settings after the merge = %q, want two", v)
	}
	result := waitCommentOn(t, fake, 7, "kubectl gitops sync", "web")
	t.Logf("sync comment:\n%s", result)
	var deployments []githubfake.Deployment
	fake.Update("acme/shop", func(r *githubfake.Repo) { deployments = append(deployments, r.Deployments...) })
	if len(deployments) != 1 || deployments[0].Environment != "test/web" || deployments[0].SHA != head {
		t.Fatalf("deployments = %+v, want one of test/web at %s", deployments, head)
	}
	if st := deployments[0].Statuses; len(st) == 0 || st[len(st)-1].State != "success" {
		t.Errorf("deployment statuses = %+v, want the last success", st)
	}

	kc, err := clientcmd.LoadFromFile(env.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	status := exec.Command(filepath.Join(binDir, "kubectl-gitops"), "status", "--kubeconfig", env.Kubeconfig, "--context", kc.CurrentContext)
	status.Dir = repo.Dir
	out, err := status.CombinedOutput()
	if !strings.Contains(string(out), "web: synced from") || !strings.Contains(string(out), "approved by @alice") {
		t.Errorf("kubectl gitops status (%v) does not show the sync's provenance:\n%s", err, out)
	}

	direct := repo.Commit(t, map[string]string{"apps/api/settings.yaml": configMap("api-settings", "direct")}, "a direct push")
	fake.Update("acme/shop", func(r *githubfake.Repo) { r.Branches["main"] = direct })
	mustDeliver(t, addr, "push", pushEvent(head, direct))
	waitContext(t, fake, direct, "gitops/sync", "failure", "without an approved pull request")
	if v := settingValue(t, ns, "api-settings"); v != "one" {
		t.Errorf("api-settings after a direct push = %q, want one (not applied)", v)
	}
}

// TestBotSyncCommandEndToEnd: /gitops sync is refused without approval and
// applies the head once approved, locking web; another pull request
// touching web is told who holds the lock and cannot sync; a maintainer's
// /gitops unlock frees it.
func TestBotSyncCommandEndToEnd(t *testing.T) {
	env.Require(t)
	ns := env.Namespace(t)
	fake := githubfake.New(t)
	repo, addr, base, head := newSyncShop(t, fake, ns, "approvals:\n  - {name: default, minApprovals: 1}\n")

	mustDeliver(t, addr, "issue_comment", commentEvent(7, "alice", "/gitops sync"))
	waitCommentOn(t, fake, 7, "Not synced", "0 of 1 approvals")
	if v := settingValue(t, ns, "web-settings"); v != "one" {
		t.Fatalf("web-settings after a refused /gitops sync = %q, want one", v)
	}
	approve(fake, 7, "alice", head)
	mustDeliver(t, addr, "issue_comment", commentEvent(7, "alice", "/gitops sync web"))
	waitSetting(t, ns, "web-settings", "two")
	waitCommentOn(t, fake, 7, "before merging", "@alice")

	repo.Checkout(t, base)
	other := repo.Commit(t, map[string]string{"apps/web/settings.yaml": configMap("web-settings", "three")}, "web: three")
	fake.Update("acme/shop", func(r *githubfake.Repo) {
		r.Pulls[8] = &githubfake.Pull{Number: 8, Title: "web: three", Author: "dev", State: "open",
			HeadSHA: other, HeadRef: "change-8", BaseSHA: base, BaseRef: "main",
			Files: []githubfake.File{{Filename: "apps/web/settings.yaml", Status: "modified"}}}
	})
	approve(fake, 8, "alice", other)
	mustDeliver(t, addr, "pull_request", prEvent(8, "opened", other))
	waitCommentOn(t, fake, 8, "locked by", "#7")
	mustDeliver(t, addr, "issue_comment", commentEvent(8, "alice", "/gitops sync"))
	waitCommentOn(t, fake, 8, "Not synced", "locked by #7")
	if v := settingValue(t, ns, "web-settings"); v != "two" {
		t.Errorf("web-settings after #8's refused sync = %q, want two", v)
	}
	mustDeliver(t, addr, "issue_comment", commentEvent(8, "root", "/gitops unlock web"))
	waitCommentOn(t, fake, 8, "web unlocked", "#7")
	mustDeliver(t, addr, "issue_comment", commentEvent(8, "alice", "/gitops sync"))
	waitSetting(t, ns, "web-settings", "three")
}

// TestBotSyncPolicyEndToEnd: a pull request that lowers minApprovals is
// judged by its base's policy; an approved merge inside a deny window is
// not applied, and gitops/sync says when the window opens.
func TestBotSyncPolicyEndToEnd(t *testing.T) {
	env.Require(t)
	ns := env.Namespace(t)
	fake := githubfake.New(t)
	start := time.Now().UTC().Add(-time.Minute)
	policy := fmt.Sprintf(`sync: onMerge
approvals:
  - name: default
    minApprovals: 2
    windows:
      - {kind: deny, schedule: "%d %d * * *", duration: 1h, timeZone: UTC}
`, start.Minute(), start.Hour())
	repo, addr, base, _ := newSyncShop(t, fake, ns, policy)
	fake.Update("acme/shop", func(r *githubfake.Repo) { r.Permissions["bob"] = "write" })

	// The head lowers minApprovals to 0: the base's 2 still apply.
	lowered := repo.Commit(t, map[string]string{"gitops.yaml": strings.Replace(shopGitops(ns, policy), "minApprovals: 2", "minApprovals: 0", 1)}, "lower the bar")
	fake.Update("acme/shop", func(r *githubfake.Repo) {
		p := r.Pulls[7]
		p.HeadSHA = lowered
		p.Files = append(p.Files, githubfake.File{Filename: "gitops.yaml", Status: "modified"})
	})
	mustDeliver(t, addr, "pull_request", prEvent(7, "opened", lowered))
	waitContext(t, fake, lowered, "gitops/approval", "pending", "0 of 2 approvals")
	approve(fake, 7, "alice", lowered)
	mustDeliver(t, addr, "pull_request_review", reviewEvent("alice", lowered))
	waitContext(t, fake, lowered, "gitops/approval", "pending", "1 of 2 approvals")
	approve(fake, 7, "bob", lowered)
	mustDeliver(t, addr, "pull_request_review", reviewEvent("bob", lowered))
	waitContext(t, fake, lowered, "gitops/approval", "success", "approved by")

	mergePull(fake, 7, lowered)
	mustDeliver(t, addr, "push", pushEvent(base, lowered))
	opens := start.Add(time.Hour).Format("15:04")
	waitContext(t, fake, lowered, "gitops/sync", "pending", opens)
	if v := settingValue(t, ns, "web-settings"); v != "one" {
		t.Errorf("web-settings inside a deny window = %q, want one (not applied)", v)
	}
}

// TestBotOverlapEndToEnd: two open pull requests change the same field of
// web-settings, one in its file and one through a kustomize patch in other
// files; both previews warn of the other, the first refreshed when the
// second is previewed.
func TestBotOverlapEndToEnd(t *testing.T) {
	env.Require(t)
	ns := env.Namespace(t)
	fake := githubfake.New(t)
	repo, addr, base, head := newSyncShop(t, fake, ns, "")

	mustDeliver(t, addr, "pull_request", prEvent(7, "opened", head))
	waitContext(t, fake, head, "gitops/preview", "success", "")

	repo.Checkout(t, base)
	patched := repo.Commit(t, map[string]string{
		"apps/web/kustomization.yaml": "resources:\n- settings.yaml\npatches:\n- path: value.yaml\n",
		"apps/web/value.yaml":         "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-settings\ndata:\n  key: three\n",
	}, "web: three through a patch")
	fake.Update("acme/shop", func(r *githubfake.Repo) {
		r.Pulls[8] = &githubfake.Pull{Number: 8, Title: "web: three", Author: "dev", State: "open",
			HeadSHA: patched, HeadRef: "change-8", BaseSHA: base, BaseRef: "main",
			Files: []githubfake.File{{Filename: "apps/web/kustomization.yaml", Status: "added"}, {Filename: "apps/web/value.yaml", Status: "added"}}}
	})
	mustDeliver(t, addr, "pull_request", prEvent(8, "opened", patched))
	object := "ConfigMap/" + ns + "/web-settings"
	waitCommentOn(t, fake, 8, "**Also changed by #7:**", object, "(data.key)")
	waitCommentOn(t, fake, 7, "**Also changed by #8:**", object, "(data.key)")
}
