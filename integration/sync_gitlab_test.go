package integration

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/bottest"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/gittest"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/scmtest/gitlabfake"
)

const (
	// gitlabToken is the bot's access token on the GitLab fake, and its
	// password for cloning (user oauth2).
	gitlabToken = "glpat-canary-token-5d0c"
	// gitlabHookSecret is the hook's secret token (X-Gitlab-Token).
	gitlabHookSecret = "canary-gitlab-hook-secret-9a17"
	// gitlabShop is the project's path.
	gitlabShop = "acme/shop"
)

// TestBotGitLabSyncEndToEnd runs the gitops-bot binary configured for
// GitLab against the GitLab fake, a real Git server that accepts only the
// bot's token, and the real API server. Merge request !7 by dev changes
// web: opening it gets a preview note and gitops/approval pending; dev's
// own approval does not count; alice's does. Its merge (a merge commit on
// main) delivered as a push is applied, recorded as the deployment
// test/web, reported on !7 and as gitops/sync success; a direct push to
// main changing web is not applied and fails gitops/sync.
func TestBotGitLabSyncEndToEnd(t *testing.T) {
	env.Require(t)
	ns := env.Namespace(t)
	fake := gitlabfake.New(t, gitlabToken)
	fake.SetCurrentUser("gitops-bot")
	project := fake.AddProject(gitlabShop)
	fake.AddMember(gitlabShop, "dev", gitlabfake.Developer)
	fake.AddMember(gitlabShop, "alice", gitlabfake.Developer)

	gitopsYAML := fmt.Sprintf(`apiVersion: gitops.kubectl.dev/v1alpha1
kind: Repository
sync: onMerge
approvals:
  - {name: default, minApprovals: 1}
apps:
  - {name: web, path: apps/web, namespace: %s, cluster: test}
`, ns)
	repo := gittest.NewRepo(t, map[string]string{
		"gitops.yaml":            gitopsYAML,
		"apps/web/settings.yaml": configMap("web-settings", "one"),
	})
	base := repo.Head(t)
	applyBase(t, repo.Dir)
	head := repo.Commit(t, map[string]string{"apps/web/settings.yaml": configMap("web-settings", "two")}, "web: two")
	serveGitLabShop(t, fake, repo)
	fake.SetFile(gitlabShop, base, "gitops.yaml", []byte(gitopsYAML))
	fake.SetBranch(gitlabShop, "main", base)

	b := bottest.StartGitLab(t, fake, bottest.GitLabOptions{
		Binary:        filepath.Join(binDir, "gitops-bot"),
		Token:         gitlabToken,
		WebhookSecret: gitlabHookSecret,
		Repository:    gitlabShop,
		Kubeconfig:    env.Kubeconfig,
	})
	// The reconcile at start (after it listed the open MRs: none yet)
	// finds main in sync; the MR comes after, so only webhooks act on it.
	glWaitStatus(t, fake, base, "gitops/sync", "success", "in sync")

	mr := gitlabfake.MergeRequest{IID: 7, Title: "web: two", Author: "dev",
		SourceBranch: "web-two", TargetBranch: "main", SHA: head, BaseSHA: base}
	fake.AddMergeRequest(gitlabShop, mr)
	diffs := []gitlabfake.Diff{{OldPath: "apps/web/settings.yaml", NewPath: "apps/web/settings.yaml"}}
	fake.SetDiffs(gitlabShop, 7, diffs)
	// The diff version of the push that made head: approvals given after
	// it are on head.
	version := gitlabfake.Version{HeadSHA: head, CreatedAt: time.Now().UTC()}
	fake.AddVersion(gitlabShop, 7, version)

	// Opened: a preview note with the live diff, and the gate pending.
	glDeliver(t, b.Addr, "Merge Request Hook", glMergeRequestHook(project, "open", "dev", head))
	preview := glWaitNote(t, fake, head)
	if !strings.Contains(preview, "web-settings") || !strings.Contains(preview, "-  key: one") || !strings.Contains(preview, "+  key: two") {
		t.Errorf("the preview note should show web-settings' live diff:\n%s", preview)
	}
	glWaitStatus(t, fake, head, "gitops/approval", "pending", "0 of 1 approvals")

	// The author's own approval does not count: the job reads it and the
	// gate stays pending.
	var approvals []gitlabfake.Approval
	approveMR := func(user string) {
		a := gitlabfake.Approval{Username: user, ApprovedAt: time.Now().UTC()}
		approvals = append(approvals, a)
		fake.AddApproval(gitlabShop, 7, a)
	}
	approveMR("dev")
	seen := len(fake.Requests())
	glDeliver(t, b.Addr, "Merge Request Hook", glMergeRequestHook(project, "approved", "dev", head))
	glWaitRequest(t, fake, seen, fmt.Sprintf("POST /projects/%d/statuses/%s", project, head))
	if st := glStatus(fake, head, "gitops/approval"); st.State != "pending" {
		t.Fatalf("gitops/approval after the author's own approval = %s %q, want pending", st.State, st.Description)
	}

	approveMR("alice")
	glDeliver(t, b.Addr, "Merge Request Hook", glMergeRequestHook(project, "approved", "alice", head))
	glWaitStatus(t, fake, head, "gitops/approval", "success", "approved by @alice")

	// GitLab merges with a merge commit (same tree as the head) and moves
	// main there; the MR is the merge commit's.
	merge := repo.Commit(t, nil, "Merge branch 'web-two' into 'main'")
	mergeGitLabMR(t, fake, mr, merge, approvals, diffs, version)
	fake.SetBranch(gitlabShop, "main", merge)
	glDeliver(t, b.Addr, "Push Hook", glPushHook(project, base, merge))

	if st := glWaitSettled(t, fake, merge, "gitops/sync"); st.State != "success" || !strings.Contains(st.Description, "applied web") {
		t.Fatalf("gitops/sync of the merge %s = %s %q, want success \"applied web\"", merge, st.State, st.Description)
	}
	waitSetting(t, ns, "web-settings", "two")
	deployments := fake.Deployments(gitlabShop)
	if len(deployments) != 1 || deployments[0].Environment != "test/web" || deployments[0].SHA != merge ||
		deployments[0].Ref != "main" || deployments[0].Status != "success" {
		t.Errorf("deployments = %+v, want one of test/web at %s on main, success", deployments, merge)
	}
	result := glWaitNote(t, fake, "kubectl gitops sync")
	t.Logf("sync note:\n%s", result)
	if strings.Contains(result, "#7") {
		t.Errorf("the sync note names the MR as #7 (an issue on GitLab):\n%s", result)
	}
	if !strings.Contains(result, "!7") {
		t.Errorf("the sync note does not name the MR as !7:\n%s", result)
	}

	// A direct push to main (no MR) changing web is not applied.
	direct := repo.Commit(t, map[string]string{"apps/web/settings.yaml": configMap("web-settings", "three")}, "a direct push")
	fake.SetBranch(gitlabShop, "main", direct)
	glDeliver(t, b.Addr, "Push Hook", glPushHook(project, merge, direct))
	glWaitStatus(t, fake, direct, "gitops/sync", "failed", "without an approved pull request")
	if v := settingValue(t, ns, "web-settings"); v != "two" {
		t.Errorf("web-settings after a direct push = %q, want two (not applied)", v)
	}
	if n := len(fake.Deployments(gitlabShop)); n != 1 {
		t.Errorf("%d deployments after a direct push, want still 1", n)
	}
}

// serveGitLabShop serves repo over smart HTTP to the bot's token and makes
// the fake's http_url_to_repo of acme/shop reach it: the fake derives that
// URL from its own URL, so the fake is put behind a front server that
// routes the API to the fake and the project's Git URL to the Git server.
func serveGitLabShop(t *testing.T, fake *gitlabfake.Server, repo *gittest.Repo) {
	t.Helper()
	const name = "gitlab/" + gitlabShop + ".git"
	git := gittest.Serve(t, map[string]*gittest.Repo{name: repo}, gittest.WithBasicAuth("oauth2", gitlabToken))
	gitURL, err := url.Parse(git.URL(name))
	if err != nil {
		t.Fatal(err)
	}
	apiURL, err := url.Parse(fake.URL)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/"+name+"/", httputil.NewSingleHostReverseProxy(&url.URL{Scheme: gitURL.Scheme, Host: gitURL.Host}))
	mux.Handle(gitlabfake.BasePath, httputil.NewSingleHostReverseProxy(&url.URL{Scheme: apiURL.Scheme, Host: apiURL.Host}))
	front := httptest.NewServer(mux)
	t.Cleanup(front.Close)
	fake.URL = front.URL + strings.TrimSuffix(gitlabfake.BasePath, "/")
}

// mergeGitLabMR marks mr merged as merge now. The fake replaces a merge
// request added again, so its approvals, diffs, diff version and notes are
// added back.
func mergeGitLabMR(t *testing.T, fake *gitlabfake.Server, mr gitlabfake.MergeRequest, merge string, approvals []gitlabfake.Approval, diffs []gitlabfake.Diff, version gitlabfake.Version) {
	t.Helper()
	notes := fake.Notes(gitlabShop, mr.IID)
	mr.State, mr.MergeCommitSHA, mr.MergedAt, mr.UpdatedAt = "merged", merge, time.Now().UTC(), time.Now().UTC()
	fake.AddMergeRequest(gitlabShop, mr)
	for _, a := range approvals {
		fake.AddApproval(gitlabShop, mr.IID, a)
	}
	fake.SetDiffs(gitlabShop, mr.IID, diffs)
	fake.AddVersion(gitlabShop, mr.IID, version)
	for _, n := range notes {
		fake.AddNote(gitlabShop, mr.IID, n)
	}
}

// glMergeRequestHook is a Merge Request Hook of !7 of acme/shop: action by
// user with head as its last commit.
func glMergeRequestHook(project int64, action, user, head string) []byte {
	return fmt.Appendf(nil, `{"object_kind":"merge_request","event_type":"merge_request","user":{"id":1,"username":%q,"name":%[2]q},
"project":{"id":%[3]d,"name":"shop","path_with_namespace":%[4]q,"default_branch":"main"},
"object_attributes":{"id":5007,"iid":7,"target_project_id":%[3]d,"source_project_id":%[3]d,"title":"web: two","state":"opened",
"action":%[5]q,"source_branch":"web-two","target_branch":"main","last_commit":{"id":%[6]q}}}`, user, user, project, gitlabShop, action, head)
}

// glPushHook is a Push Hook of main of acme/shop from before to after.
func glPushHook(project int64, before, after string) []byte {
	return fmt.Appendf(nil, `{"object_kind":"push","event_name":"push","before":%q,"after":%q,"ref":"refs/heads/main",
"checkout_sha":%[2]q,"user_username":"dev","project_id":%[3]d,
"project":{"id":%[3]d,"name":"shop","path_with_namespace":%[4]q,"default_branch":"main"},"commits":[],"total_commits_count":1}`,
		before, after, project, gitlabShop)
}

// glDeliver posts a GitLab delivery with the hook's secret token and
// fails unless the bot accepts it for a job.
func glDeliver(t *testing.T, addr, event string, body []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/webhooks/gitlab", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Gitlab-Event", event)
	req.Header.Set("X-Gitlab-Token", gitlabHookSecret)
	req.Header.Set("Idempotency-Key", fmt.Sprintf("%s-%d", strings.ReplaceAll(event, " ", "-"), time.Now().UnixNano()))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted || strings.TrimSpace(string(answer)) != "accepted" {
		t.Fatalf("%s: HTTP %d %q, want 202 accepted", event, resp.StatusCode, answer)
	}
}

// glStatus is the newest commit status name on sha.
func glStatus(fake *gitlabfake.Server, sha, name string) gitlabfake.Status {
	var last gitlabfake.Status
	for _, st := range fake.Statuses(gitlabShop) {
		if st.SHA == sha && st.Name == name {
			last = st
		}
	}
	return last
}

// glWaitStatus waits until the newest status name on sha is in state
// with a description containing desc.
func glWaitStatus(t *testing.T, fake *gitlabfake.Server, sha, name, state, desc string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last gitlabfake.Status
	for time.Now().Before(deadline) {
		last = glStatus(fake, sha, name)
		if last.State == state && strings.Contains(last.Description, desc) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("status %s of %s never became %s with %q; last %s %q", name, sha, state, desc, last.State, last.Description)
}

// glWaitSettled waits until sha has a status name on sha other than
// pending, and returns it.
func glWaitSettled(t *testing.T, fake *gitlabfake.Server, sha, name string) gitlabfake.Status {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last gitlabfake.Status
	for time.Now().Before(deadline) {
		if last = glStatus(fake, sha, name); last.State != "" && last.State != "pending" {
			return last
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("status %s of %s never settled; last %s %q", name, sha, last.State, last.Description)
	return last
}

// glWaitNote waits until !7 has a note by the bot containing want, and
// returns it.
func glWaitNote(t *testing.T, fake *gitlabfake.Server, want string) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var notes []gitlabfake.Note
	for time.Now().Before(deadline) {
		notes = fake.Notes(gitlabShop, 7)
		for _, n := range notes {
			if n.Author == "gitops-bot" && strings.Contains(n.Body, want) {
				return n.Body
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	var bodies []string
	for _, n := range notes {
		bodies = append(bodies, n.Author+": "+n.Body)
	}
	t.Fatalf("no note of the bot on !7 contains %q; notes:\n%s", want, strings.Join(bodies, "\n-----\n"))
	return ""
}

// glWaitRequest waits until the fake has received request (METHOD /path)
// after the first seen requests.
func glWaitRequest(t *testing.T, fake *gitlabfake.Server, seen int, request string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if slices.Contains(fake.Requests()[seen:], request) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the bot never sent %s", request)
}
