package integration

import (
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/gittest"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/scmtest/githubfake"
)

// shopRepository is acme/shop and its App installation in a webhook.
const shopRepository = `"repository":{"id":1001,"name":"shop","full_name":"acme/shop","owner":{"login":"acme"}},"installation":{"id":42}`

// syncOnMerge is gitops.yaml's sync and approvals: apps sync when their
// pull request merges, with one approval.
const syncOnMerge = "sync: onMerge\napprovals:\n  - {name: default, minApprovals: 1}\n"

// prEvent is a pull_request delivery of pull request n of acme/shop by dev;
// a closed one is closed by its merge.
func prEvent(n int, action, head string) []byte {
	state, merged := "open", false
	if action == "closed" {
		state, merged = "closed", true
	}
	return fmt.Appendf(nil, `{"action":%q,"number":%d,"pull_request":{"number":%d,"state":%q,"merged":%t,"head":{"sha":%q,"ref":"change-%d"},"base":{"ref":"main"},"user":{"login":"dev"}},%s,"sender":{"login":"dev"}}`,
		action, n, n, state, merged, head, n, shopRepository)
}

// reviewEvent is a pull_request_review delivery: user approved pull
// request 7 at sha.
func reviewEvent(user, sha string) []byte {
	return reviewEventOn(7, user, sha)
}

// pushEvent is a push delivery of main from before to after.
func pushEvent(before, after string) []byte {
	return fmt.Appendf(nil, `{"ref":"refs/heads/main","before":%q,"after":%q,%s,"sender":{"login":"dev"}}`, before, after, shopRepository)
}

// commentEvent is an issue_comment delivery: user commented body on pull
// request n, as comment id.
func commentEvent(n int, id int64, user, body string) []byte {
	return fmt.Appendf(nil, `{"action":"created","issue":{"number":%d,"state":"open","pull_request":{"url":"https://api.github.example/repos/acme/shop/pulls/%d"},"user":{"login":"dev"}},"comment":{"id":%d,"body":%q,"user":{"login":%q}},%s,"sender":{"login":%q}}`,
		n, n, id, body, user, shopRepository, user)
}

// approve records user's approval of pull request n at sha on the fake.
func approve(fake *githubfake.Server, n int, user, sha string) {
	fake.Update("acme/shop", func(r *githubfake.Repo) {
		p := r.Pulls[n]
		p.Reviews = append(p.Reviews, githubfake.Review{ID: int64(len(p.Reviews) + 1), Author: user, State: "APPROVED", CommitID: sha, SubmittedAt: time.Now()})
	})
}

// review approves pull request n at sha as user on the fake, then delivers
// the pull_request_review webhook, as GitHub does.
func review(t *testing.T, fake *githubfake.Server, addr string, n int, user, sha string) {
	t.Helper()
	approve(fake, n, user, sha)
	mustDeliver(t, addr, "pull_request_review", reviewEventOn(n, user, sha))
}

// approvedByAlice delivers alice's approval of pull request n at head
// (review) and waits for gitops/approval success on head.
func approvedByAlice(t *testing.T, fake *githubfake.Server, addr string, n int, head string) {
	t.Helper()
	review(t, fake, addr, n, "alice", head)
	mustContext(t, fake, head, "gitops/approval", "success", "approved by @alice")
}

// command posts user's comment body on pull request n (on the fake, as
// GitHub lists it) and delivers the issue_comment webhook.
func command(t *testing.T, fake *githubfake.Server, addr string, n int, user, body string) {
	t.Helper()
	id := time.Now().UnixNano()
	fake.Update("acme/shop", func(r *githubfake.Repo) {
		p := r.Pulls[n]
		p.Comments = append(p.Comments, githubfake.Comment{ID: id, Author: user, Body: body, CreatedAt: time.Now(), UpdatedAt: time.Now()})
	})
	mustDeliver(t, addr, "issue_comment", commentEvent(n, id, user, body))
}

// refusedSync posts user's /gitops sync on pull request n and waits for
// the bot's refusal (a comment saying Not synced) giving reason.
func refusedSync(t *testing.T, fake *githubfake.Server, addr string, n int, user, reason string) {
	t.Helper()
	command(t, fake, addr, n, user, "/gitops sync")
	waitBotComment(t, fake, n, "Not synced", reason)
}

// addPull opens pull request n by dev from branch change-n into main at
// base, with head and the files it changes.
func addPull(fake *githubfake.Server, n int, base, head string, files ...githubfake.File) {
	fake.Update("acme/shop", func(r *githubfake.Repo) {
		r.Pulls[n] = &githubfake.Pull{
			Number: n, Title: fmt.Sprintf("change %d", n), Author: "dev", State: "open",
			HeadSHA: head, HeadRef: fmt.Sprintf("change-%d", n), BaseSHA: base, BaseRef: "main",
			Files: files, CreatedAt: time.Now(), UpdatedAt: time.Now(),
		}
	})
}

// mergePull marks pull request n merged as sha (a fast-forward, or the
// commit of a squash merge) and moves main there.
func mergePull(fake *githubfake.Server, n int, sha string) {
	fake.Update("acme/shop", func(r *githubfake.Repo) {
		p := r.Pulls[n]
		p.Merged, p.MergeCommitSHA, p.MergedAt = true, sha, time.Now()
		r.Branches["main"] = sha
	})
}

// merge merges pull request n as sha on the fake (mergePull) and delivers
// what GitHub then sends: pull_request closed, and the push of main from
// where it was to sha.
func merge(t *testing.T, fake *githubfake.Server, addr string, n int, sha string) {
	t.Helper()
	var head, before string
	fake.Update("acme/shop", func(r *githubfake.Repo) { head, before = r.Pulls[n].HeadSHA, r.Branches["main"] })
	mergePull(fake, n, sha)
	mustDeliver(t, addr, "pull_request", prEvent(n, "closed", head))
	mustDeliver(t, addr, "push", pushEvent(before, sha))
}

// pushDirect commits files on repo's checkout, moves main there with no
// pull request, delivers the push and returns the commit.
func pushDirect(t *testing.T, fake *githubfake.Server, addr string, repo *gittest.Repo, files map[string]string) string {
	t.Helper()
	direct := repo.Commit(t, files, "a direct push")
	var before string
	fake.Update("acme/shop", func(r *githubfake.Repo) { before, r.Branches["main"] = r.Branches["main"], direct })
	mustDeliver(t, addr, "push", pushEvent(before, direct))
	return direct
}

// mustDeliver sends a signed delivery and fails unless it is accepted.
func mustDeliver(t *testing.T, addr, event string, body []byte) {
	t.Helper()
	id := fmt.Sprintf("%s-%d", event, time.Now().UnixNano())
	if code, answer := deliverEvent(t, addr, event, id, body); code != http.StatusAccepted {
		t.Fatalf("%s: HTTP %d %s, want 202", event, code, answer)
	}
}

// mustContext is waitContext, stopping the test when it fails.
func mustContext(t *testing.T, fake *githubfake.Server, sha, context, state, desc string) {
	t.Helper()
	waitContext(t, fake, sha, context, state, desc)
	if t.Failed() {
		t.FailNow()
	}
}

// botComments are the bodies of the bot's comments on pull request n that
// contain each of want, oldest first.
func botComments(fake *githubfake.Server, n int, want ...string) []string {
	var out []string
	fake.Update("acme/shop", func(r *githubfake.Repo) {
		for _, c := range r.Pulls[n].Comments {
			if c.Author == fake.AppSlug+"[bot]" && containsAll(c.Body, want) {
				out = append(out, c.Body)
			}
		}
	})
	return out
}

// waitBotComment waits until the bot has a comment on pull request n that
// contains each of want, and returns the newest such.
func waitBotComment(t *testing.T, fake *githubfake.Server, n int, want ...string) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if bodies := botComments(fake, n, want...); len(bodies) > 0 {
			return bodies[len(bodies)-1]
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no comment of the bot on #%d contains %q; its comments:\n%s", n, want, strings.Join(botComments(fake, n), "\n-----\n"))
	return ""
}

// containsAll reports whether s contains each of subs.
func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// deployments are the deployments the fake recorded, with their statuses
// copied.
func deployments(fake *githubfake.Server) []githubfake.Deployment {
	var out []githubfake.Deployment
	fake.Update("acme/shop", func(r *githubfake.Repo) {
		for _, d := range r.Deployments {
			d.Statuses = slices.Clone(d.Statuses)
			out = append(out, d)
		}
	})
	return out
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

// syncStatus runs the built `kubectl-gitops status` in dir against the
// test cluster and returns its output.
func syncStatus(t *testing.T, dir string) string {
	t.Helper()
	kc, err := clientcmd.LoadFromFile(env.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(binDir, "kubectl-gitops"), "status", "--kubeconfig", env.Kubeconfig, "--context", kc.CurrentContext)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl-gitops status: %v\n%s", err, out)
	}
	return string(out)
}

// shopGitops is a gitops.yaml with apps web and api in ns and extra (its
// other top-level keys).
func shopGitops(ns, extra string) string {
	return fmt.Sprintf(`apiVersion: gitops.kubectl.dev/v1alpha1
kind: Repository
apps:
  - {name: web, path: apps/web, namespace: %[1]s, cluster: test}
  - {name: api, path: apps/api, namespace: %[1]s, cluster: test}
%[2]s`, ns, extra)
}

// denyWindow is gitops.yaml's sync: onMerge and a default policy of
// minApprovals with a daily deny window of duration that opens at opened's
// hour and minute, in zone (the bot's own time zone when "").
func denyWindow(minApprovals int, opened time.Time, duration, zone string) string {
	if zone != "" {
		zone = ", timeZone: " + zone
	}
	return fmt.Sprintf(`sync: onMerge
approvals:
  - name: default
    minApprovals: %d
    windows:
      - {kind: deny, schedule: "%d %d * * *", duration: %s%s}
`, minApprovals, opened.Minute(), opened.Hour(), duration, zone)
}

// newSyncShop is acme/shop with web and api (ConfigMaps web-settings and
// api-settings) applied at the base as "one", pull request 7 changing web
// to "two", dev and alice writers and boss an admin, and the bot running.
// It returns the repository, the bot's address, the base and #7's head.
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
		r.Permissions = map[string]string{"dev": "write", "alice": "write", "boss": "admin"}
		r.Branches = map[string]string{"main": base}
	})
	addr, _ := startBot(t, fake)
	return repo, addr, base, head
}

// lowerApprovals commits, on top of repo's checkout, gitops.yaml with
// minApprovals 2 lowered to 0, makes it the head of pull request 7 (which
// then changes gitops.yaml too) and returns it.
func lowerApprovals(t *testing.T, fake *githubfake.Server, repo *gittest.Repo) string {
	t.Helper()
	lowered := strings.Replace(readFile(t, repo.Dir, "gitops.yaml"), "minApprovals: 2", "minApprovals: 0", 1)
	head := repo.Commit(t, map[string]string{"gitops.yaml": lowered}, "lower the bar")
	fake.Update("acme/shop", func(r *githubfake.Repo) {
		p := r.Pulls[7]
		p.HeadSHA = head
		p.Files = append(p.Files, githubfake.File{Filename: "gitops.yaml", Status: "modified"})
	})
	return head
}

// syncOnMergeScenario runs the gitops-bot binary against the GitHub fake, a
// real Git server and the real API server with sync: onMerge: pull request
// 7, approved by a writer and merged (a squash merge commit on main when
// squash, else a fast-forward to its head; announced by pull_request
// closed and a push webhook), is applied to the cluster, recorded as a
// deployment of the merge, reported on the pull request and as gitops/sync
// on the merge, and `kubectl gitops status` names the pull request and its
// approver. A direct push to main that changes another app is not applied
// and fails gitops/sync.
func syncOnMergeScenario(t *testing.T, squash bool) {
	t.Helper()
	env.Require(t)
	ns := env.Namespace(t)
	fake := githubfake.New(t)
	repo, addr, base, head := newSyncShop(t, fake, ns, syncOnMerge)

	mustDeliver(t, addr, "pull_request", prEvent(7, "opened", head))
	mustContext(t, fake, head, "gitops/approval", "pending", "0 of 1 approvals")
	approvedByAlice(t, fake, addr, 7, head)
	if got := settingValue(t, ns, "web-settings"); got != "one" {
		t.Fatalf("before the merge, web-settings is %q, want one", got)
	}

	merged := head
	if squash {
		// A squash merge: a new commit on main with the head's tree.
		repo.Checkout(t, base)
		merged = repo.Commit(t, map[string]string{"apps/web/settings.yaml": configMap("web-settings", "two")}, "web: two (#7)")
	}
	merge(t, fake, addr, 7, merged)
	waitSetting(t, ns, "web-settings", "two")
	mustContext(t, fake, merged, "gitops/sync", "success", "applied web")
	c := waitBotComment(t, fake, 7, "### kubectl gitops sync")
	t.Logf("sync comment:\n%s", c)
	if !strings.Contains(c, "#7 merged as `"+merged[:12]+"` and synced") || !strings.Contains(c, "| web | test |") {
		t.Errorf("the sync comment should name the merge commit and app web on cluster test:\n%s", c)
	}
	deps := deployments(fake)
	if len(deps) != 1 {
		t.Fatalf("deployments: %+v, want one", deps)
	}
	if d := deps[0]; d.Environment != "test/web" || d.SHA != merged || len(d.Statuses) == 0 || d.Statuses[len(d.Statuses)-1].State != "success" {
		t.Errorf("deployment %+v, want test/web of %s ending in success", d, merged)
	}
	if got := settingValue(t, ns, "api-settings"); got != "one" {
		t.Errorf("api-settings is %q; the merge did not change api", got)
	}

	// What the inventory recorded, as the plugin reports it from the
	// checkout of the merge.
	out := syncStatus(t, repo.Dir)
	if !strings.Contains(out, "web: synced from https://github.example/acme/shop/pull/7") || !strings.Contains(out, "approved by @alice") {
		t.Errorf("kubectl gitops status should name the pull request and its approver:\n%s", out)
	}

	// A direct push to main, with no pull request, is not applied.
	direct := pushDirect(t, fake, addr, repo, map[string]string{"apps/api/settings.yaml": configMap("api-settings", "two")})
	mustContext(t, fake, direct, "gitops/sync", "failure", "without an approved pull request")
	if got := settingValue(t, ns, "api-settings"); got != "one" {
		t.Errorf("a direct push was applied: api-settings is %q, want one", got)
	}
	if got := settingValue(t, ns, "web-settings"); got != "two" {
		t.Errorf("web-settings is %q after the direct push, want two", got)
	}
	if deps := deployments(fake); len(deps) != 1 {
		t.Errorf("the direct push made a deployment: %+v", deps)
	}
}

// TestBotSyncOnMergeEndToEnd is syncOnMergeScenario with a fast-forward
// merge: main moves to the approved head itself.
func TestBotSyncOnMergeEndToEnd(t *testing.T) {
	syncOnMergeScenario(t, false)
}

// TestBotSyncSquashMergeEndToEnd is syncOnMergeScenario with a squash
// merge: main moves to a new commit with the head's tree, which is what is
// synced, deployed and reported.
func TestBotSyncSquashMergeEndToEnd(t *testing.T) {
	syncOnMergeScenario(t, true)
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

	refusedSync(t, fake, addr, 7, "alice", "0 of 1 approvals")
	if v := settingValue(t, ns, "web-settings"); v != "one" {
		t.Fatalf("web-settings after a refused /gitops sync = %q, want one", v)
	}
	approve(fake, 7, "alice", head)
	command(t, fake, addr, 7, "alice", "/gitops sync web")
	waitSetting(t, ns, "web-settings", "two")
	waitBotComment(t, fake, 7, "before merging", "@alice")

	repo.Checkout(t, base)
	other := repo.Commit(t, map[string]string{"apps/web/settings.yaml": configMap("web-settings", "three")}, "web: three")
	addPull(fake, 8, base, other, githubfake.File{Filename: "apps/web/settings.yaml", Status: "modified"})
	approve(fake, 8, "alice", other)
	mustDeliver(t, addr, "pull_request", prEvent(8, "opened", other))
	waitBotComment(t, fake, 8, "locked by", "#7")
	refusedSync(t, fake, addr, 8, "alice", "locked by #7")
	if v := settingValue(t, ns, "web-settings"); v != "two" {
		t.Errorf("web-settings after #8's refused sync = %q, want two", v)
	}
	command(t, fake, addr, 8, "boss", "/gitops unlock web")
	waitBotComment(t, fake, 8, "web unlocked", "#7")
	command(t, fake, addr, 8, "alice", "/gitops sync")
	waitSetting(t, ns, "web-settings", "three")
}

// TestBotSyncCommandLockEndToEnd: `/gitops sync` on a pull request applies
// its head before the merge only once its policy is satisfied; the synced
// app is then locked by it, which another pull request's preview and
// `/gitops sync` say; only a maintainer's `/gitops unlock` frees it.
func TestBotSyncCommandLockEndToEnd(t *testing.T) {
	env.Require(t)
	ns := env.Namespace(t)
	fake := githubfake.New(t)
	repo, addr, base, head7 := newSyncShop(t, fake, ns, syncOnMerge)
	repo.Checkout(t, base)
	head8 := repo.Commit(t, map[string]string{"apps/web/settings.yaml": configMap("web-settings", "three")}, "web: three")

	mustDeliver(t, addr, "pull_request", prEvent(7, "opened", head7))
	mustContext(t, fake, head7, "gitops/approval", "pending", "0 of 1 approvals")

	// Without an approval, nothing is applied.
	refusedSync(t, fake, addr, 7, "dev", "**web:** 0 of 1 approvals")
	if got := settingValue(t, ns, "web-settings"); got != "one" {
		t.Fatalf("an unapproved /gitops sync applied: web-settings is %q", got)
	}
	if deps := deployments(fake); len(deps) != 0 {
		t.Errorf("an unapproved /gitops sync made a deployment: %+v", deps)
	}

	// Approved, it applies the head before the merge.
	approvedByAlice(t, fake, addr, 7, head7)
	command(t, fake, addr, 7, "dev", "/gitops sync")
	if c := waitBotComment(t, fake, 7, "before merging"); !strings.Contains(c, "Synced `"+head7[:12]+"` before merging, as @dev asked") || !strings.Contains(c, "| web | test |") {
		t.Errorf("the sync comment should name the head, the sender and web:\n%s", c)
	}
	waitSetting(t, ns, "web-settings", "two")
	if deps := deployments(fake); len(deps) != 1 || deps[0].Environment != "test/web" || deps[0].SHA != head7 {
		t.Errorf("deployments %+v, want one of %s to test/web", deps, head7)
	}

	// Another pull request touching web is told it is locked by #7.
	addPull(fake, 8, base, head8, githubfake.File{Filename: "apps/web/settings.yaml", Status: "modified"})
	mustDeliver(t, addr, "pull_request", prEvent(8, "opened", head8))
	// The note is escaped markdown (\# renders as #).
	if c := strings.ReplaceAll(waitBotComment(t, fake, 8, head8), `\#`, "#"); !strings.Contains(c, "🔒 locked by #7, which synced it before merging: this pull request cannot sync web") {
		t.Errorf("the preview of #8 should say web is locked by #7:\n%s", c)
	}
	refusedSync(t, fake, addr, 8, "dev", "**web:** locked by #7")
	if got := settingValue(t, ns, "web-settings"); got != "two" {
		t.Fatalf("a locked app was synced: web-settings is %q", got)
	}

	// Only a maintainer unlocks.
	command(t, fake, addr, 8, "dev", "/gitops unlock web")
	waitBotComment(t, fake, 8, "@dev: only a maintainer (admin access) can unlock apps.")
	command(t, fake, addr, 8, "boss", "/gitops unlock web")
	waitBotComment(t, fake, 8, "### kubectl gitops unlock", "web unlocked (was held by #7)")

	// Freed, #8 syncs once approved.
	approvedByAlice(t, fake, addr, 8, head8)
	command(t, fake, addr, 8, "dev", "/gitops sync")
	waitBotComment(t, fake, 8, "Synced `"+head8[:12]+"` before merging")
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
	repo, addr, _, _ := newSyncShop(t, fake, ns, denyWindow(2, start, "1h", "UTC"))
	fake.Update("acme/shop", func(r *githubfake.Repo) { r.Permissions["bob"] = "write" })

	// The head lowers minApprovals to 0: the base's 2 still apply.
	lowered := lowerApprovals(t, fake, repo)
	mustDeliver(t, addr, "pull_request", prEvent(7, "opened", lowered))
	mustContext(t, fake, lowered, "gitops/approval", "pending", "0 of 2 approvals")
	review(t, fake, addr, 7, "alice", lowered)
	mustContext(t, fake, lowered, "gitops/approval", "pending", "1 of 2 approvals")
	review(t, fake, addr, 7, "bob", lowered)
	mustContext(t, fake, lowered, "gitops/approval", "success", "approved by")

	merge(t, fake, addr, 7, lowered)
	opens := start.Add(time.Hour).Format("15:04")
	mustContext(t, fake, lowered, "gitops/sync", "pending", opens)
	if v := settingValue(t, ns, "web-settings"); v != "one" {
		t.Errorf("web-settings inside a deny window = %q, want one (not applied)", v)
	}
}

// TestBotSyncBasePolicyAndWindowEndToEnd: the approval policy comes from
// the base, so a pull request cannot lower what /gitops sync needs; and a
// deny window that is open keeps /gitops sync and an approved merge from
// syncing until it closes, which both say.
func TestBotSyncBasePolicyAndWindowEndToEnd(t *testing.T) {
	env.Require(t)

	t.Run("base policy", func(t *testing.T) {
		ns := env.Namespace(t)
		fake := githubfake.New(t)
		repo, addr, _, _ := newSyncShop(t, fake, ns, "sync: onMerge\napprovals:\n  - {name: default, minApprovals: 2}\n")
		head := lowerApprovals(t, fake, repo)

		mustDeliver(t, addr, "pull_request", prEvent(7, "opened", head))
		mustContext(t, fake, head, "gitops/approval", "pending", "0 of 2 approvals")
		review(t, fake, addr, 7, "alice", head)
		mustContext(t, fake, head, "gitops/approval", "pending", "1 of 2 approvals")
		// The refusal judges by the base's policy.
		refusedSync(t, fake, addr, 7, "dev", "1 of 2 approvals")
		if got := settingValue(t, ns, "web-settings"); got != "one" {
			t.Errorf("the head's own policy was used: web-settings is %q", got)
		}
	})

	t.Run("deny window", func(t *testing.T) {
		ns := env.Namespace(t)
		fake := githubfake.New(t)
		// A daily deny window that opened at the start of this minute and
		// lasts two hours: closed for syncs now, open again at its end.
		start := time.Now().UTC().Truncate(time.Minute)
		_, addr, _, head := newSyncShop(t, fake, ns, denyWindow(1, start, "2h", ""))
		until := "deploy window closed until " + start.Add(2*time.Hour).Format("2006-01-02 15:04 MST")

		mustDeliver(t, addr, "pull_request", prEvent(7, "opened", head))
		// The review verdict is the gate's; the window is the sync's.
		approvedByAlice(t, fake, addr, 7, head)
		// /gitops sync inside the window says when it opens.
		refusedSync(t, fake, addr, 7, "dev", "**web:** "+until)

		merge(t, fake, addr, 7, head) // a fast-forward merge
		mustContext(t, fake, head, "gitops/sync", "pending", "web: "+until)
		if got := settingValue(t, ns, "web-settings"); got != "one" {
			t.Errorf("a merge inside a deny window was applied: web-settings is %q", got)
		}
		if deps := deployments(fake); len(deps) != 0 {
			t.Errorf("a merge inside a deny window made a deployment: %+v", deps)
		}
		if c := botComments(fake, 7, "merged as"); len(c) != 0 {
			t.Errorf("a merge inside a deny window was reported synced: %q", c)
		}
	})
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
	addPull(fake, 8, base, patched,
		githubfake.File{Filename: "apps/web/kustomization.yaml", Status: "added"},
		githubfake.File{Filename: "apps/web/value.yaml", Status: "added"})
	mustDeliver(t, addr, "pull_request", prEvent(8, "opened", patched))
	object := "ConfigMap/" + ns + "/web-settings"
	waitBotComment(t, fake, 8, "**Also changed by #7:**", object, "(data.key)")
	waitBotComment(t, fake, 7, "**Also changed by #8:**", object, "(data.key)")
}
