package bot

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubectl-gitops/kubectl-gitops/internal/cluster"
	"github.com/kubectl-gitops/kubectl-gitops/internal/config"
	"github.com/kubectl-gitops/kubectl-gitops/internal/engine"
	"github.com/kubectl-gitops/kubectl-gitops/internal/lease"
	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
)

// applyAt applies every app of the repository at sha, as `kubectl gitops
// apply` would (no provenance).
func (s *previewSetup) applyAt(t *testing.T, sha string) {
	t.Helper()
	ctx := t.Context()
	pr, _ := s.forge.GetPullRequest(ctx, s.ref)
	tree, err := s.p.checkout(ctx, s.forge, headOf(pr), nil, sha)
	if err != nil {
		t.Fatal(err)
	}
	defer tree.remove()
	names := []string{"web", "api"}
	rendered := s.p.renderApps(ctx, s.ref.Repo, sha, tree, names)
	for _, name := range names {
		app, _ := tree.repo.App(name)
		e, err := s.p.clusterEngine(tree.engine, *app)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Apply(ctx, rendered[name], engine.ApplyOptions{Revision: sha}); err != nil {
			t.Fatalf("apply %s: %v", name, err)
		}
	}
}

// sync runs a sync of the default branch as a push job does.
func (s *previewSetup) sync(t *testing.T, pushed ...string) scm.Status {
	t.Helper()
	if err := s.p.SyncBranch(t.Context(), s.forge, s.ref.Repo, Trigger{Reason: ReasonPush, Branch: "main", Pushed: pushed}); err != nil {
		t.Fatalf("SyncBranch: %v", err)
	}
	var last scm.Status
	for _, st := range s.forge.Statuses() {
		if st.Context == SyncContext {
			last = st
		}
	}
	return last
}

func (s *previewSetup) configMapValue(t *testing.T, name string) string {
	t.Helper()
	cm, err := env.Clientset.CoreV1().ConfigMaps(s.ns).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return cm.Data["value"]
}

// mainAt moves the default branch to sha.
func (s *previewSetup) mainAt(t *testing.T, sha string) {
	pr, err := s.forge.GetPullRequest(t.Context(), s.ref)
	if err != nil {
		t.Fatal(err)
	}
	s.forge.SetDefaultBranch(s.ref.Repo, scm.Branch{Name: "main", SHA: sha, CloneURL: pr.CloneURL})
}

// merge marks the pull request merged as its head (a fast-forward) and
// moves the default branch there.
func (s *previewSetup) merge(t *testing.T, head string) {
	s.update(func(pr *scm.PullRequest) {
		pr.State, pr.MergeCommitSHA, pr.MergedAt = "merged", head, time.Now()
	})
	s.mainAt(t, head)
}

// newSyncSetup is a repository of sync onMerge whose apps run its base
// (alice may approve), with pull request #7 changing web, previewed; it
// returns #7's head.
func newSyncSetup(t *testing.T) (*previewSetup, string) {
	s := newPreviewSetupWith(t, "sync: onMerge\napprovals:\n- name: default\n  minApprovals: 1\n")
	s.forge.SetPermission("alice", scm.PermissionWrite)
	base, _ := s.forge.GetPullRequest(t.Context(), s.ref)
	s.applyAt(t, base.BaseSHA)
	head := s.push(t, map[string]string{"apps/web/config.yaml": configMap("web", "two")})
	s.preview(t, false)
	return s, head
}

// TestSyncOnMerge: an approved pull request's merge is applied, recorded
// on the inventory and as a deployment, and reported on the pull request;
// a second sync of the same commit applies nothing; a direct push is not
// applied.
func TestSyncOnMerge(t *testing.T) {
	s, head := newSyncSetup(t)
	s.review("alice", scm.ReviewApproved, head)
	s.merge(t, head)
	// The bot restarts between the preview and the merge: the plans it
	// approved are rendered again, not trusted from memory.
	s.p.plans = newPlanCache(0)

	wantStatus(t, "merge of an approved pull request", s.sync(t, head), scm.StatusSuccess, "applied web")
	if got := s.configMapValue(t, "web"); got != "two" {
		t.Errorf("web's value after the sync = %q, want two", got)
	}
	client, err := cluster.New(s.p.Clusters["test"], cluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	inv, err := client.ReadInventory(t.Context(), cluster.InventoryRef{App: "web", Namespace: s.ns})
	if err != nil {
		t.Fatal(err)
	}
	plan, _ := s.p.PlanHash(s.ref.Repo, head, "web")
	if inv.Revision != head || inv.Provenance.PullRequest != s.ref.String() || strings.Join(inv.Provenance.Approvers, ",") != "alice" || inv.Provenance.PlanHash != plan {
		t.Errorf("inventory records %s %+v, want %s from %s approved by alice with plan %s", inv.Revision, inv.Provenance, head, s.ref, plan)
	}
	deps := s.forge.Deployments()
	if len(deps) != 1 || deps[0].Environment != "test/web" || deps[0].SHA != head || deps[0].States[len(deps[0].States)-1].State != scm.DeploymentSuccess {
		t.Errorf("deployments = %+v, want one of test/web at the head, successful", deps)
	}
	comments := s.botComments()
	if last := comments[len(comments)-1]; !strings.Contains(last, "kubectl gitops sync") || !strings.Contains(last, "| web | test | 0 created, 1 configured") {
		t.Errorf("the pull request's last comment is not the sync result:\n%s", last)
	}

	// The same push again (a redelivery, another replica): nothing to do.
	wantStatus(t, "the same commit again", s.sync(t, head), scm.StatusSuccess, "in sync")
	if n := len(s.forge.Deployments()); n != 1 {
		t.Errorf("%d deployments after syncing the same commit twice, want 1", n)
	}

	// A direct push to the default branch is not applied.
	direct := s.repo.Commit(t, map[string]string{"apps/api/config.yaml": configMap("api", "direct")}, "direct")
	s.mainAt(t, direct)
	wantStatus(t, "a direct push", s.sync(t, direct), scm.StatusFailure, "api: changed at "+engine.ShortRevision(direct)+" without an approved pull request")
	if got := s.configMapValue(t, "api"); got != "one" {
		t.Errorf("api's value after a direct push = %q, want one (not applied)", got)
	}
}

// TestSyncRefusesUnapprovedMerges: a merge without the approval, and an
// approval given after the merge, apply nothing; an app of sync manual is
// never applied on merge.
func TestSyncRefusesUnapprovedMerges(t *testing.T) {
	s, head := newSyncSetup(t)
	s.merge(t, head)
	time.Sleep(10 * time.Millisecond) // the review below comes after the merge
	s.review("alice", scm.ReviewApproved, head)
	wantStatus(t, "an approval after the merge", s.sync(t, head), scm.StatusFailure, "web: #7 was merged without the approval its policy needs (0 of 1 approvals")
	if got := s.configMapValue(t, "web"); got != "one" {
		t.Errorf("web's value = %q, want one (not applied)", got)
	}
	manual := s.repo.Commit(t, map[string]string{"gitops.yaml": strings.Replace(gitopsYAML(s.ns, "sync: onMerge\napprovals:\n- name: default\n  minApprovals: 1\n"),
		"cluster: test\n- name: api", "cluster: test\n  sync: "+string(config.SyncManual)+"\n- name: api", 1)}, "manual web")
	s.mainAt(t, manual)
	wantStatus(t, "web of sync manual", s.sync(t), scm.StatusSuccess, "")
	if got := s.configMapValue(t, "web"); got != "one" {
		t.Errorf("web's value = %q, want one (sync manual)", got)
	}
}

// TestSyncCommandAndLocks: /gitops sync applies an approved pull request's
// head and locks its apps; another pull request touching the app is told
// who holds it and cannot sync it; a maintainer unlocks it; a plan changed
// since the approval is refused.
func TestSyncCommandAndLocks(t *testing.T) {
	s := newPreviewSetupWith(t, "approvals:\n- name: default\n  minApprovals: 1\n")
	s.forge.SetPermission("alice", scm.PermissionWrite)
	s.forge.SetPermission("root", scm.PermissionAdmin)
	ctx := t.Context()

	base, _ := s.forge.GetPullRequest(ctx, s.ref)
	s.mainAt(t, base.BaseSHA)
	head := s.push(t, map[string]string{"apps/web/config.yaml": configMap("web", "two")})
	pr, _ := s.forge.GetPullRequest(ctx, s.ref)
	if err := s.p.SyncPull(ctx, s.forge, pr, Trigger{Reason: ReasonComment, Command: CommandSync, Sender: "alice"}); err != nil {
		t.Fatal(err)
	}
	if last := s.lastComment(); !strings.Contains(last, "Not synced") || !strings.Contains(last, "0 of 1 approvals") {
		t.Errorf("/gitops sync without approval answered:\n%s", last)
	}
	s.review("alice", scm.ReviewApproved, head)
	if err := s.p.SyncPull(ctx, s.forge, pr, Trigger{Reason: ReasonComment, Command: CommandSync, Sender: "alice", Args: []string{"web"}}); err != nil {
		t.Fatal(err)
	}
	if got := s.configMapValue(t, "web"); got != "two" {
		t.Fatalf("web's value after /gitops sync = %q, want two; answer:\n%s", got, s.lastComment())
	}

	// Another pull request touching web.
	other := scm.PRRef{Repo: s.ref.Repo, Number: 8}
	otherHead := s.repo.Commit(t, map[string]string{"apps/web/config.yaml": configMap("web", "three")}, "three")
	s.forge.AddPull(scm.PullRequest{Ref: other, State: "open", Author: "dev", BaseSHA: base.BaseSHA, HeadSHA: otherHead, BaseRef: "main", CloneURL: pr.CloneURL, HeadCloneURL: pr.CloneURL})
	s.forge.AddReview(other, scm.Review{Author: "alice", State: scm.ReviewApproved, CommitSHA: otherHead, SubmittedAt: time.Now()})
	otherPR, _ := s.forge.GetPullRequest(ctx, other)
	if err := s.p.Preview(ctx, s.forge, otherPR, Trigger{Reason: ReasonWebhook}); err != nil {
		t.Fatal(err)
	}
	if c := s.forge.Comments(other); len(c) == 0 || !strings.Contains(c[len(c)-1].Body, `locked by \#7`) {
		t.Errorf("the other pull request's preview does not name the lock's holder:\n%v", c)
	}
	if err := s.p.SyncPull(ctx, s.forge, otherPR, Trigger{Reason: ReasonComment, Command: CommandSync, Sender: "alice"}); err != nil {
		t.Fatal(err)
	}
	if c := s.forge.Comments(other); !strings.Contains(c[len(c)-1].Body, "locked by #7") {
		t.Errorf("/gitops sync of a locked app answered:\n%s", c[len(c)-1].Body)
	}
	if got := s.configMapValue(t, "web"); got != "two" {
		t.Errorf("web's value = %q, want two (locked)", got)
	}
	// alice is no maintainer; root is.
	if err := s.p.Unlock(ctx, s.forge, otherPR, Trigger{Command: CommandUnlock, Sender: "alice", Args: []string{"web"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.p.Unlock(ctx, s.forge, otherPR, Trigger{Command: CommandUnlock, Sender: "root", Args: []string{"web"}}); err != nil {
		t.Fatal(err)
	}
	if c := s.forge.Comments(other); !strings.Contains(c[len(c)-1].Body, "web unlocked (was held by #7)") || !strings.Contains(c[len(c)-2].Body, "only a maintainer") {
		t.Errorf("unlock answers:\n%s\n%s", c[len(c)-2].Body, c[len(c)-1].Body)
	}
	if err := s.p.SyncPull(ctx, s.forge, otherPR, Trigger{Reason: ReasonComment, Command: CommandSync, Sender: "alice"}); err != nil {
		t.Fatal(err)
	}
	if got := s.configMapValue(t, "web"); got != "three" {
		t.Errorf("web's value after the unlock and /gitops sync = %q, want three", got)
	}
	// The first pull request closes: its locks (none left) go; the
	// second's stays until it closes.
	if err := s.p.ReleaseLocks(ctx, s.ref.Repo, []int{8}); err != nil {
		t.Fatal(err)
	}
	if l, ok, _ := s.p.locker().Get(ctx, prLockKey(s.ref.Repo, "web")); !ok || l.Holder != other.String() {
		t.Errorf("web's lock = %+v, %v; want held by %s", l, ok, other)
	}
	if err := s.p.ReleasePull(ctx, other); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.p.locker().Get(ctx, prLockKey(s.ref.Repo, "web")); ok {
		t.Error("web is still locked after its pull request closed")
	}
}

func (s *previewSetup) lastComment() string {
	c := s.forge.Comments(s.ref)
	if len(c) == 0 {
		return ""
	}
	return c[len(c)-1].Body
}

// TestApprovedPlanSurvivesARestart: the gate records the plans it approved
// in a ConfigMap; after a restart (an empty plan cache) the merge is judged
// on the recorded plan of the approved head.
func TestApprovedPlanSurvivesARestart(t *testing.T) {
	s, head := newSyncSetup(t)
	s.p.Records = &lease.Records{Client: env.Clientset, Namespace: s.ns, Name: ApprovalsRecord}
	s.review("alice", scm.ReviewApproved, head)
	wantStatus(t, "approved", s.approve(t), scm.StatusSuccess, "approved by @alice")
	plan, _ := s.p.PlanHash(s.ref.Repo, head, "web")

	value, ok, err := s.p.Records.Get(t.Context(), approvedKey(s.ref))
	if err != nil || !ok || !strings.Contains(value, head) || !strings.Contains(value, plan) {
		t.Fatalf("approved record = %q, %v, %v; want the head %s and web's plan %s", value, ok, err, head, plan)
	}
	s.p.plans = newPlanCache(0)
	if !s.p.recallApproved(t.Context(), s.ref, head) {
		t.Fatal("the approved plan was not recalled after a restart")
	}
	if got, _ := s.p.PlanHash(s.ref.Repo, head, "web"); got != plan {
		t.Errorf("recalled plan of web = %q, want %q", got, plan)
	}
	if s.p.recallApproved(t.Context(), s.ref, "another-sha") {
		t.Error("a plan approved on one head was recalled for another")
	}
	s.merge(t, head)
	wantStatus(t, "merge after a restart", s.sync(t, head), scm.StatusSuccess, "applied web")
}

// TestSyncAppliesAppsInWaves: apps that depend on none of each other are
// applied at once and reported in gitops.yaml's order; an app whose
// dependency failed to apply is not applied, and the status says why.
func TestSyncAppliesAppsInWaves(t *testing.T) {
	s := newPreviewSetupWith(t, "sync: onMerge\napprovals:\n- name: default\n  minApprovals: 1\n")
	s.forge.SetPermission("alice", scm.PermissionWrite)
	base, _ := s.forge.GetPullRequest(t.Context(), s.ref)
	s.applyAt(t, base.BaseSHA)
	head := s.push(t, map[string]string{"apps/web/config.yaml": configMap("web", "two"), "apps/api/config.yaml": configMap("api", "two")})
	s.preview(t, false)
	s.review("alice", scm.ReviewApproved, head)
	s.merge(t, head)

	wantStatus(t, "two independent apps", s.sync(t, head), scm.StatusSuccess, "applied api, web")
	if web, api := s.configMapValue(t, "web"), s.configMapValue(t, "api"); web != "two" || api != "two" {
		t.Errorf("values after the sync: web %q, api %q, want two", web, api)
	}
	comments := s.botComments()
	last := comments[len(comments)-1]
	if w, a := strings.Index(last, "| web |"), strings.Index(last, "| api |"); w < 0 || a < 0 || w > a {
		t.Errorf("the sync comment should list web, then api (gitops.yaml's order):\n%s", last)
	}
	if n := len(s.forge.Deployments()); n != 2 {
		t.Errorf("%d deployments, want 2", n)
	}
}

// TestSyncHoldsBackTheDependantsOfAFailedApp: api depends on web; web's
// apply fails (another field manager took its value), so api is not
// applied, in the same sync, and the status names both.
func TestSyncHoldsBackTheDependantsOfAFailedApp(t *testing.T) {
	s := newPreviewSetupWith(t, "sync: onMerge\napprovals:\n- name: default\n  minApprovals: 1\n")
	s.forge.SetPermission("alice", scm.PermissionWrite)
	base, _ := s.forge.GetPullRequest(t.Context(), s.ref)
	s.applyAt(t, base.BaseSHA)
	gitops, err := os.ReadFile(filepath.Join(s.repo.Dir, "gitops.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	withDeps := strings.Replace(string(gitops), "- name: api\n", "- name: api\n  dependsOn: [web]\n", 1)
	head := s.push(t, map[string]string{"gitops.yaml": withDeps, "apps/web/config.yaml": configMap("web", "two"), "apps/api/config.yaml": configMap("api", "two")})
	s.preview(t, false)
	s.review("alice", scm.ReviewApproved, head)
	s.merge(t, head)
	// Someone else takes web's value with a forced server-side apply: the
	// bot's apply (never forced) conflicts.
	patch := []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"web"},"data":{"value":"theirs"}}`)
	force := true
	if _, err := env.Clientset.CoreV1().ConfigMaps(s.ns).Patch(t.Context(), "web", types.ApplyPatchType, patch, metav1.PatchOptions{FieldManager: "someone-else", Force: &force}); err != nil {
		t.Fatal(err)
	}

	st := s.sync(t, head)
	wantStatus(t, "a failed dependency", st, scm.StatusFailure, "api: not applied, its dependency web was not")
	if !strings.Contains(st.Description, "web: planning it against the cluster failed") || !strings.Contains(st.Description, "conflict") {
		t.Errorf("the status should say why web failed: %q", st.Description)
	}
	if got := s.configMapValue(t, "api"); got != "one" {
		t.Errorf("api's value = %q, want one (not applied)", got)
	}
}
