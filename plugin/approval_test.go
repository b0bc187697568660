package plugin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/gittest"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/scmtest/githubfake"
)

// approvalSetup is a repository whose pull request #7 (by dev) changes
// app web, on the GitHub fake, with a CI token in the environment.
type approvalSetup struct {
	repo       *gittest.Repo
	fake       *githubfake.Server
	ns         string
	base, head string
}

func newApprovalSetup(t *testing.T) *approvalSetup {
	t.Helper()
	return newApprovalSetupWith(t, "  - {name: default, minApprovals: 1}\n")
}

// newApprovalSetupWith is newApprovalSetup with policies as the base's
// approvals list.
func newApprovalSetupWith(t *testing.T, policies string) *approvalSetup {
	t.Helper()
	env.Require(t)
	ns := env.Namespace(t)
	gitops := fmt.Sprintf(`apiVersion: gitops.kubectl.dev/v1alpha1
kind: Repository
apps:
  - {name: web, path: apps/web, namespace: %s}
approvals:
%s`, ns, policies)
	repo := gittest.NewRepo(t, map[string]string{"gitops.yaml": gitops, "apps/web/settings.yaml": liveCM("", "web-settings", "one")})
	base := repo.Head(t)
	repo.Branch(t, "main-line")
	head := repo.Commit(t, map[string]string{"apps/web/settings.yaml": liveCM("", "web-settings", "two")}, "web: two")
	fake := githubfake.New(t)
	fake.AddToken("ci-token-canary-51f0", "ci")
	fake.AddRepo(&githubfake.Repo{
		Owner: "acme", Name: "shop", ID: 1001,
		Files:       map[string]map[string]string{base: {"gitops.yaml": gitops}},
		Permissions: map[string]string{"alice": "write", "dev": "write", "reader": "read"},
		Pulls: map[int]*githubfake.Pull{7: {
			Number: 7, Title: "web: two", Author: "dev", State: "open",
			HeadSHA: head, HeadRef: "web-two", BaseSHA: base, BaseRef: "main",
			Files: []githubfake.File{{Filename: "apps/web/settings.yaml", Status: "modified"}},
		}},
	})
	t.Setenv("GITHUB_TOKEN", "ci-token-canary-51f0")
	t.Setenv("GITHUB_API_URL", fake.URL())
	t.Setenv("GITHUB_REPOSITORY", "acme/shop")
	t.Setenv("GITLAB_TOKEN", "")
	return &approvalSetup{repo: repo, fake: fake, ns: ns, base: base, head: head}
}

func (s *approvalSetup) review(user, sha string, at time.Time) {
	s.fake.Update("acme/shop", func(r *githubfake.Repo) {
		p := r.Pulls[7]
		p.Reviews = append(p.Reviews, githubfake.Review{ID: int64(len(p.Reviews) + 1), Author: user, State: "APPROVED", CommitID: sha, SubmittedAt: at})
	})
}

func (s *approvalSetup) apply(t *testing.T) (int, string) {
	t.Helper()
	code, _, errOut := onCluster(t, s.repo.Dir, "apply", ".", "--require-approval")
	if strings.Contains(errOut, "ci-token-canary-51f0") {
		t.Errorf("the token leaked into the output:\n%s", errOut)
	}
	return code, errOut
}

func (s *approvalSetup) value(t *testing.T) string {
	t.Helper()
	cm, err := env.Clientset.CoreV1().ConfigMaps(s.ns).Get(t.Context(), "web-settings", metav1.GetOptions{})
	if err != nil {
		return "<none>"
	}
	return cm.Data["key"]
}

func wantRefused(t *testing.T, what string, code int, errOut string, reason string) {
	t.Helper()
	t.Logf("%s: exit %d: %s", what, code, errOut)
	if code != ExitError || !strings.Contains(errOut, reason) || !strings.Contains(errOut, "nothing was applied") {
		t.Errorf("%s: exit %d, stderr:\n%s\nwant exit %d refusing with %q", what, code, errOut, ExitError, reason)
	}
}

// TestApplyRequireApprovalHead: the head of an open pull request applies
// only once a writer other than the author approved it; the inventory
// records the pull request, the approver and the plan. Uncommitted
// changes and a commit of no pull request are refused.
func TestApplyRequireApprovalHead(t *testing.T) {
	s := newApprovalSetup(t)
	code, errOut := s.apply(t)
	wantRefused(t, "no review", code, errOut, "0 of 1 approvals")
	s.review("dev", s.head, time.Now())
	s.review("reader", s.head, time.Now())
	code, errOut = s.apply(t)
	wantRefused(t, "the author's and a reader's approvals", code, errOut, "@reader's approval does not count")
	if v := s.value(t); v != "<none>" {
		t.Fatalf("web-settings after refusals = %q, want none", v)
	}

	s.review("alice", s.head, time.Now())
	code, errOut = s.apply(t)
	if code != 0 || !strings.Contains(errOut, "approved: ") || !strings.Contains(errOut, "by @alice") {
		t.Fatalf("approved head: exit %d, stderr:\n%s", code, errOut)
	}
	if v := s.value(t); v != `two` {
		t.Errorf("web-settings = %q, want two", v)
	}
	code, out, errOut := onCluster(t, s.repo.Dir, "status")
	if code != 0 || !strings.Contains(out, "approved by @alice") || !strings.Contains(out, "acme/shop") {
		t.Errorf("status after an approved apply: exit %d\n%s%s", code, out, errOut)
	}

	if err := os.WriteFile(filepath.Join(s.repo.Dir, "apps/web/settings.yaml"), []byte(liveCM("", "web-settings", "local")), 0o644); err != nil {
		t.Fatal(err)
	}
	code, errOut = s.apply(t)
	wantRefused(t, "uncommitted changes", code, errOut, "uncommitted changes")
	other := s.repo.Commit(t, map[string]string{"apps/web/settings.yaml": liveCM("", "web-settings", "three")}, "not reviewed")
	code, errOut = s.apply(t)
	wantRefused(t, "a commit of no pull request", code, errOut, "commit "+other+" is neither the head")
	if v := s.value(t); v != "two" {
		t.Errorf("web-settings after the refusals = %q, want two", v)
	}
}

// TestApplyRequireApprovalMerge: the merge of an approved pull request
// applies when it brings the approved plan; a merge that combined the
// change with another of the same app is refused, as is an approval
// given after the merge.
func TestApplyRequireApprovalMerge(t *testing.T) {
	s := newApprovalSetup(t)
	git := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("git", append([]string{"-C", s.repo.Dir, "-c", "user.name=t", "-c", "user.email=t@example.com"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	merge := func(extra map[string]string, approvedAt time.Time) string {
		t.Helper()
		git("checkout", "-q", "main-line")
		s.repo.Commit(t, extra, "meanwhile on main")
		git("merge", "-q", "--no-ff", "-m", "merge #7", s.head)
		sha := git("rev-parse", "HEAD")
		s.fake.Update("acme/shop", func(r *githubfake.Repo) {
			p := r.Pulls[7]
			p.Merged, p.MergeCommitSHA, p.MergedAt, p.Reviews = true, sha, approvedAt.Add(time.Minute), nil
		})
		return sha
	}

	at := time.Now().Add(-time.Hour)
	s.review("alice", s.head, at)
	merge(map[string]string{"README.md": "docs\n"}, at)
	s.review("alice", s.head, at)
	if code, errOut := s.apply(t); code != 0 || s.value(t) != "two" {
		t.Fatalf("merge of the approved plan: exit %d, web-settings %q, stderr:\n%s", code, s.value(t), errOut)
	}

	// Approved only after the merge.
	git("reset", "-q", "--hard", "HEAD~1")
	merge(map[string]string{"NOTES.md": "x\n"}, at)
	s.review("alice", s.head, at.Add(time.Hour))
	code, errOut := s.apply(t)
	wantRefused(t, "an approval after the merge", code, errOut, "0 of 1 approvals")

	// A merge that also brings another change to web.
	git("reset", "-q", "--hard", "HEAD~1")
	merge(map[string]string{"apps/web/more.yaml": liveCM("", "web-more", "x")}, at)
	s.review("alice", s.head, at)
	code, errOut = s.apply(t)
	wantRefused(t, "a merge with another change", code, errOut, "differs from the plan")
}

// TestApplyRequireApprovalShallowClone: a CI job's shallow clone of a merge
// lacks the pull request's head, whose plan the reviewers approved; it is
// fetched from origin (no git binary needed), with the forge token sent
// only to the forge's own host, or with the credentials in origin's URL.
// Without credentials the fetch fails and nothing is applied.
func TestApplyRequireApprovalShallowClone(t *testing.T) {
	s := newApprovalSetup(t)
	const token = "ci-token-canary-51f0"
	at := time.Now().Add(-time.Hour)
	s.repo.Checkout(t, "main-line")
	s.repo.Commit(t, map[string]string{"README.md": "docs\n"}, "meanwhile on main")
	out, err := exec.Command("git", "-C", s.repo.Dir, "-c", "user.name=t", "-c", "user.email=t@example.com", "merge", "-q", "--no-ff", "-m", "merge #7", s.head).CombinedOutput()
	if err != nil {
		t.Fatalf("git merge: %v %s", err, out)
	}
	merge := s.repo.Head(t)
	if out, err := exec.Command("git", "-C", s.repo.Dir, "update-ref", "refs/heads/merged", merge).CombinedOutput(); err != nil {
		t.Fatalf("git update-ref: %v %s", err, out)
	}
	s.fake.Update("acme/shop", func(r *githubfake.Repo) {
		p := r.Pulls[7]
		p.Merged, p.MergeCommitSHA, p.MergedAt = true, merge, at.Add(time.Minute)
	})
	s.review("alice", s.head, at)
	srv := gittest.Serve(t, map[string]*gittest.Repo{"acme/shop": s.repo}, gittest.WithBasicAuth("x-access-token", token))
	plain := srv.URL("acme/shop")
	withCreds := strings.Replace(plain, "://", "://x-access-token:"+token+"@", 1)

	clone := func(origin string) string {
		t.Helper()
		dir := filepath.Join(t.TempDir(), "shop")
		if out, err := exec.Command("git", "clone", "-q", "--depth", "1", "--branch", "merged", withCreds, dir).CombinedOutput(); err != nil {
			t.Fatalf("git clone: %v %s", err, out)
		}
		if out, err := exec.Command("git", "-C", dir, "remote", "set-url", "origin", origin).CombinedOutput(); err != nil {
			t.Fatalf("git remote set-url: %v %s", err, out)
		}
		if out, err := exec.Command("git", "-C", dir, "cat-file", "-e", s.head+"^{commit}").CombinedOutput(); err == nil {
			t.Fatalf("the shallow clone has the head already: %s", out)
		}
		return dir
	}
	apply := func(dir string) (int, string) {
		t.Helper()
		code, _, errOut := onCluster(t, dir, "apply", ".", "--require-approval")
		if strings.Contains(errOut, token) {
			t.Errorf("the token leaked into the output:\n%s", errOut)
		}
		return code, errOut
	}

	// The forge token goes to another host than the forge's: not sent.
	t.Setenv("GITHUB_SERVER_URL", "https://github.example.com")
	code, errOut := apply(clone(plain))
	wantRefused(t, "a fetch without credentials", code, errOut, "fetching it from origin failed")
	if v := s.value(t); v != "<none>" {
		t.Fatalf("web-settings after the refusal = %q, want none", v)
	}

	// The forge's host: the token is sent.
	t.Setenv("GITHUB_SERVER_URL", strings.TrimSuffix(plain, "/acme/shop"))
	if code, errOut := apply(clone(plain)); code != 0 || s.value(t) != "two" {
		t.Fatalf("a shallow clone of the approved merge: exit %d, web-settings %q, stderr:\n%s", code, s.value(t), errOut)
	}

	// Credentials in origin's URL (GitLab CI clones so) are used.
	if err := env.Clientset.CoreV1().ConfigMaps(s.ns).Delete(t.Context(), "web-settings", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GITHUB_SERVER_URL", "https://github.example.com")
	if code, errOut := apply(clone(withCreds)); code != 0 || s.value(t) != "two" {
		t.Fatalf("origin with credentials: exit %d, web-settings %q, stderr:\n%s", code, s.value(t), errOut)
	}
}

// TestApplyRequireApprovalDenyWindow: an approved head is not applied
// inside a deny window of its policy; the refusal names when it opens.
func TestApplyRequireApprovalDenyWindow(t *testing.T) {
	start := time.Now().UTC().Add(-time.Minute)
	s := newApprovalSetupWith(t, fmt.Sprintf(`  - name: default
    minApprovals: 1
    windows:
      - {kind: deny, schedule: "%d %d * * *", duration: 1h, timeZone: UTC}
`, start.Minute(), start.Hour()))
	s.review("alice", s.head, time.Now())
	code, errOut := s.apply(t)
	opens := start.Add(time.Hour).Format("15:04")
	wantRefused(t, "inside a deny window", code, errOut, opens)
	if v := s.value(t); v != "<none>" {
		t.Errorf("web-settings inside a deny window = %q, want none", v)
	}
}

// TestOriginAuth: the forge token of the environment goes only to the
// forge's own host over the same scheme; credentials in origin's URL are
// taken out of it and sent only to it.
func TestOriginAuth(t *testing.T) {
	for _, tc := range []struct {
		name, origin string
		env          map[string]string
		wantURL      string
		wantAuth     string // user:pass sent to wantURL, "" for none
	}{
		{"github.com", "https://github.com/acme/shop.git", map[string]string{"GITHUB_TOKEN": "gh"}, "https://github.com/acme/shop.git", "x-access-token:gh"},
		{"GitHub Enterprise", "https://ghe.example.com/acme/shop", map[string]string{"GITHUB_TOKEN": "gh", "GITHUB_SERVER_URL": "https://ghe.example.com"}, "https://ghe.example.com/acme/shop", "x-access-token:gh"},
		{"another host", "https://evil.example.com/acme/shop", map[string]string{"GITHUB_TOKEN": "gh"}, "https://evil.example.com/acme/shop", ""},
		{"a host that only starts the same", "https://github.com.evil.example/acme/shop", map[string]string{"GITHUB_TOKEN": "gh"}, "https://github.com.evil.example/acme/shop", ""},
		{"plain http to the forge's host", "http://github.com/acme/shop", map[string]string{"GITHUB_TOKEN": "gh"}, "http://github.com/acme/shop", ""},
		{"gitlab", "https://gitlab.example.com/g/p.git", map[string]string{"GITLAB_TOKEN": "gl", "CI_SERVER_URL": "https://gitlab.example.com"}, "https://gitlab.example.com/g/p.git", "oauth2:gl"},
		{"credentials in the URL", "https://gitlab-ci-token:job@gitlab.example.com/g/p.git", map[string]string{"GITHUB_TOKEN": "gh"}, "https://gitlab.example.com/g/p.git", "gitlab-ci-token:job"},
		{"ssh", "git@github.com:acme/shop.git", map[string]string{"GITHUB_TOKEN": "gh"}, "git@github.com:acme/shop.git", ""},
		{"no token", "https://github.com/acme/shop.git", nil, "https://github.com/acme/shop.git", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url, auth := originAuth(tc.origin, func(k string) string { return tc.env[k] })
			if url != tc.wantURL {
				t.Errorf("url = %q, want %q", url, tc.wantURL)
			}
			got := ""
			if auth != nil {
				if user, pass, ok := auth(url); ok {
					got = user + ":" + pass
				}
				if _, _, ok := auth("https://other.example.com/x"); ok {
					t.Error("credentials offered to another URL")
				}
			}
			if got != tc.wantAuth {
				t.Errorf("auth = %q, want %q", got, tc.wantAuth)
			}
		})
	}
}
