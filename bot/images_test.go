package bot

import (
	"fmt"
	"io"
	"log"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kubectl-gitops/kubectl-gitops/internal/gitrepo"
	"github.com/kubectl-gitops/kubectl-gitops/internal/images"
	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/gittest"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/scmtest/memforge"
)

// imageSetup is a repository with policies a, b and c (each marked at
// 1.0.0) on an in-process registry, a forge over it and an updater whose
// clock the test moves.
type imageSetup struct {
	host  string
	repo  *gittest.Repo
	ref   scm.RepoRef
	forge *memforge.Forge
	u     *ImageUpdater
	now   time.Time
	// down makes the registry answer 500 for acme/a.
	down atomic.Bool
}

func newImageSetup(t *testing.T) *imageSetup { return newImageSetupWith(t, "interval: 1ns") }

// newImageSetupWith is newImageSetup with fields added to each policy
// (a flow mapping's entries, such as "interval: 1h, group: base").
func newImageSetupWith(t *testing.T, fields string) *imageSetup {
	t.Helper()
	s := &imageSetup{ref: scm.RepoRef{Kind: scm.GitHub, FullName: "acme/shop"}, now: time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)}
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.down.Load() && strings.HasPrefix(r.URL.Path, "/v2/acme/a/") {
			http.Error(w, "down", http.StatusInternalServerError)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	s.host = strings.TrimPrefix(srv.URL, "http://")
	gitops := "apiVersion: gitops.kubectl.dev/v1alpha1\nkind: Repository\nimages:\n"
	deploy := ""
	for _, p := range []string{"a", "b", "c"} {
		gitops += fmt.Sprintf("  - {name: %[1]s, image: %[2]s/acme/%[1]s, policy: {semver: {range: '>=1.0.0'}}, %[3]s}\n", p, s.host, fields)
		deploy += fmt.Sprintf("%[1]s: %[2]s/acme/%[1]s:1.0.0 # {\"$imagepolicy\": \"%[1]s\"}\n", p, s.host)
		s.push(t, p, "1.0.0")
	}
	s.repo = gittest.NewRepo(t, map[string]string{"gitops.yaml": gitops, "deploy.yaml": deploy})
	s.forge = memforge.New()
	s.forge.SetGitDir(s.ref, s.repo.Dir)
	s.u = &ImageUpdater{Scanner: &images.Scanner{}, CacheDir: t.TempDir(), AllowFile: true,
		Author: gitrepo.Signature{Name: "bot", Email: "bot@example.com"}, Now: func() time.Time { return s.now }}
	return s
}

func (s *imageSetup) push(t *testing.T, policy, tag string) {
	t.Helper()
	img, err := random.Image(64, 1, random.WithSource(rand.NewSource(int64(len(tag)))))
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(s.host + "/acme/" + policy + ":" + tag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
}

// run runs the updater once on main's head.
func (s *imageSetup) run(t *testing.T) {
	t.Helper()
	s.forge.SetDefaultBranch(s.ref, scm.Branch{Name: "main", SHA: s.repo.Head(t), CloneURL: "file://" + s.repo.Dir})
	if err := s.u.UpdateImages(t.Context(), s.forge, s.ref, nil); err != nil {
		t.Fatal(err)
	}
}

func (s *imageSetup) open(t *testing.T) []scm.PullRequest {
	t.Helper()
	prs, err := s.forge.ListOpenPullRequests(t.Context(), s.ref)
	if err != nil {
		t.Fatal(err)
	}
	return prs
}

func TestImageUpdaterLimits(t *testing.T) {
	for _, tc := range []struct {
		name                    string
		maxOpen, maxNew         int
		first, second, nextHour int
	}{
		{"two new per hour by default", 0, 0, 2, 2, 3},
		{"at most one open", 1, 5, 1, 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newImageSetup(t)
			s.u.MaxOpen, s.u.MaxNewPerHour = tc.maxOpen, tc.maxNew
			for _, p := range []string{"a", "b", "c"} {
				s.push(t, p, "1.1.0")
			}
			s.run(t)
			if got := len(s.open(t)); got != tc.first {
				t.Fatalf("first scan opened %d pull requests, want %d", got, tc.first)
			}
			s.now = s.now.Add(10 * time.Minute)
			s.run(t)
			if got := len(s.open(t)); got != tc.second {
				t.Fatalf("a scan within the hour: %d open, want %d", got, tc.second)
			}
			s.now = s.now.Add(time.Hour)
			s.run(t)
			if got := len(s.open(t)); got != tc.nextHour {
				t.Fatalf("an hour later: %d open, want %d", got, tc.nextHour)
			}
		})
	}
}

func TestImageUpdaterRespectsAPersonsClose(t *testing.T) {
	s := newImageSetup(t)
	s.push(t, "a", "1.1.0")
	s.run(t)
	prs := s.open(t)
	if len(prs) != 1 || prs[0].HeadRef != "gitops/images/a" || !strings.Contains(prs[0].Title, "1.1.0") {
		t.Fatalf("open = %+v, want one pull request for a 1.1.0", prs)
	}
	s.forge.UpdatePull(prs[0].Ref, func(pr *scm.PullRequest) { pr.State = "closed" })
	s.now = s.now.Add(2 * time.Hour)
	s.run(t)
	s.run(t)
	if got := s.open(t); len(got) != 0 {
		t.Fatalf("after a person closed it: %+v, want no pull request for 1.1.0 again", got)
	}
	s.push(t, "a", "1.2.0")
	s.run(t)
	if got := s.open(t); len(got) != 1 || !strings.Contains(got[0].Title, "1.2.0") || got[0].Ref.Number == prs[0].Ref.Number {
		t.Fatalf("after 1.2.0: %+v, want a new pull request for it", got)
	}
	// One checkout of the default branch is kept, not one per commit.
	s.repo.Commit(t, map[string]string{"notes.txt": "a"}, "another commit")
	s.run(t)
	s.repo.Commit(t, map[string]string{"notes.txt": "b"}, "and another")
	s.run(t)
	var dirs []string
	_ = filepath.WalkDir(filepath.Join(s.u.CacheDir, "images"), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() && len(d.Name()) == 40 {
			dirs = append(dirs, p)
			return filepath.SkipDir
		}
		return err
	})
	if len(dirs) != 1 {
		t.Errorf("checkouts kept: %q, want only the latest", dirs)
	}
}

func TestImageUpdaterLeavesABranchSomeoneElsePushed(t *testing.T) {
	s := newImageSetup(t)
	s.push(t, "a", "1.1.0")
	s.run(t)
	pr := s.open(t)[0]
	// A person pushes to the bot's branch.
	s.repo.Checkout(t, "gitops/images/a")
	theirs := s.repo.Commit(t, map[string]string{"notes.txt": "mine"}, "a person's commit")
	if out, err := exec.Command("git", "-C", s.repo.Dir, "update-ref", "refs/heads/gitops/images/a", theirs).CombinedOutput(); err != nil {
		t.Fatalf("git update-ref: %v\n%s", err, out)
	}
	s.repo.Checkout(t, "main")
	s.push(t, "a", "1.2.0")
	s.run(t)
	if !s.commented(pr.Ref, "someone else pushed") {
		t.Errorf("no comment saying the bot stops updating #%d", pr.Ref.Number)
	}
	if out, _ := s.forge.ReadFile(t.Context(), s.ref, "gitops/images/a", "notes.txt"); string(out) != "mine" {
		t.Errorf("the person's commit is gone from the branch: notes.txt = %q", out)
	}
}

func TestImageUpdaterHintRescans(t *testing.T) {
	s := newImageSetupWith(t, "interval: 1h")
	s.run(t) // lists every repository, cached for an hour
	s.push(t, "a", "1.1.0")
	s.run(t)
	if got := s.open(t); len(got) != 0 {
		t.Fatalf("within the interval, without a hint: %+v, want the cached listing used", got)
	}
	s.forge.SetDefaultBranch(s.ref, scm.Branch{Name: "main", SHA: s.repo.Head(t), CloneURL: "file://" + s.repo.Dir})
	if err := s.u.UpdateImages(t.Context(), s.forge, s.ref, []string{s.host + "/acme/a"}); err != nil {
		t.Fatal(err)
	}
	if got := s.open(t); len(got) != 1 || !strings.Contains(got[0].Title, "a to 1.1.0") {
		t.Fatalf("after a hint for acme/a: %+v, want its pull request at once", got)
	}
}

func TestImageUpdaterGroup(t *testing.T) {
	s := newImageSetupWith(t, "interval: 1ns, group: base")
	s.u.MaxNewPerHour = 10
	s.push(t, "a", "1.1.0")
	s.push(t, "c", "2.0.0")
	s.run(t)
	prs := s.open(t)
	if len(prs) != 1 || prs[0].HeadRef != "gitops/images/base" {
		t.Fatalf("open = %+v, want one pull request for the group", prs)
	}
	deploy, err := s.forge.ReadFile(t.Context(), s.ref, "gitops/images/base", "deploy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(deploy), "acme/a:1.1.0") || !strings.Contains(string(deploy), "acme/b:1.0.0") || !strings.Contains(string(deploy), "acme/c:2.0.0") {
		t.Errorf("the group's branch holds:\n%s\nwant a and c moved, b kept", deploy)
	}
	body := s.forge.Body(prs[0].Ref)
	if !strings.Contains(body, "| a |") || !strings.Contains(body, "| c |") || strings.Contains(body, "| b |") {
		t.Errorf("body =\n%s\nwant a and c listed", body)
	}
}

func TestImageUpdaterSupersedes(t *testing.T) {
	s := newImageSetupWith(t, "interval: 1ns, pullRequest: {branch: 'images/{{.Name}}-{{.NewTag}}'}")
	s.u.MaxNewPerHour = 10
	s.push(t, "a", "1.1.0")
	s.run(t)
	first := s.open(t)
	s.push(t, "a", "1.2.0")
	s.run(t)
	now := s.open(t)
	if len(first) != 1 || len(now) != 1 || now[0].HeadRef != "images/a-1.2.0" || now[0].Ref == first[0].Ref {
		t.Fatalf("before %+v, after %+v: want the 1.2.0 pull request open and the 1.1.0 one closed", first, now)
	}
	if !s.commented(first[0].Ref, fmt.Sprintf("Superseded by #%d", now[0].Ref.Number)) {
		t.Errorf("#%d closed without a note naming #%d", first[0].Ref.Number, now[0].Ref.Number)
	}
	if _, ok := s.repo.Resolve(t, "images/a-1.1.0"); ok {
		t.Error("the superseded branch is still there")
	}
}

func TestImageUpdaterHoldAndUnhold(t *testing.T) {
	s := newImageSetup(t)
	s.push(t, "a", "1.1.0")
	s.run(t)
	pr := s.open(t)[0]
	// Merged (a fast-forward), then reverted.
	merged, _ := s.repo.Resolve(t, "gitops/images/a")
	if out, err := exec.Command("git", "-C", s.repo.Dir, "reset", "-q", "--hard", merged).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	s.forge.UpdatePull(pr.Ref, func(p *scm.PullRequest) { p.State = "merged" })
	s.run(t)
	deploy, err := s.forge.ReadFile(t.Context(), s.ref, "main", "deploy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s.repo.Commit(t, map[string]string{"deploy.yaml": strings.Replace(string(deploy), "acme/a:1.1.0", "acme/a:1.0.0", 1)}, "Revert a")
	s.run(t)
	s.run(t)
	if got := s.open(t); len(got) != 0 {
		t.Fatalf("after the revert: %+v, want a held", got)
	}
	if !s.commented(pr.Ref, "went back from 1.1.0 to 1.0.0", "/gitops unhold a") {
		t.Errorf("no comment on #%d saying a is held: %+v", pr.Ref.Number, s.forge.Comments(pr.Ref))
	}
	merged2, _ := s.forge.GetPullRequest(t.Context(), pr.Ref)
	if err := s.u.Unhold(t.Context(), s.forge, merged2, Trigger{Command: CommandUnhold, Args: []string{"a"}, Sender: "dev"}); err != nil {
		t.Fatal(err)
	}
	s.run(t)
	if got := s.open(t); len(got) != 1 || !strings.Contains(got[0].Title, "1.1.0") {
		t.Fatalf("after /gitops unhold a: %+v, want 1.1.0 proposed again", got)
	}
}

func TestImageUpdaterTemplatesAndOrigin(t *testing.T) {
	s := newImageSetupWith(t, "interval: 1ns, pullRequest: {title: 'deps: {{.Name}} {{.NewTag}}', "+
		"body: '{{range .Updates}}{{.Policy}} {{.OldTag}} to {{.NewTag}} built from {{.Source}} at {{.Revision}}{{end}}', "+
		"commitMessage: 'chore(images): {{.Name}} to {{.NewTag}}'}")
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	annotated := mutate.Annotations(img, map[string]string{
		images.AnnotationSource: "https://github.com/acme/a<script>", images.AnnotationRevision: "abc123`x",
	}).(v1.Image)
	ref, err := name.ParseReference(s.host + "/acme/a:1.1.0")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, annotated); err != nil {
		t.Fatal(err)
	}
	s.run(t)
	prs := s.open(t)
	if len(prs) != 1 || prs[0].Title != "deps: a 1.1.0" {
		t.Fatalf("open = %+v, want the templated title", prs)
	}
	body := s.forge.Body(prs[0].Ref)
	if !strings.Contains(body, "a 1.0.0 to 1.1.0 built from https://github.com/acme/a&lt;script&gt; at abc123x") {
		t.Errorf("body = %q, want the template with the escaped origin", body)
	}
	msg, err := exec.Command("git", "-C", s.repo.Dir, "log", "-1", "--format=%B", "gitops/images/a").Output()
	if err != nil || strings.TrimSpace(string(msg)) != "chore(images): a to 1.1.0" {
		t.Errorf("commit message = %q, %v", msg, err)
	}
}

// TestImageUpdaterFollowsADeletedTag: a tag deleted from the registry after
// its pull request opened is no longer proposed. With a lower tag still
// newer than Git's, the same pull request moves to it; with none, the pull
// request is closed with a note.
func TestImageUpdaterFollowsADeletedTag(t *testing.T) {
	s := newImageSetup(t)
	s.push(t, "a", "1.1.0")
	s.push(t, "a", "1.2.0")
	s.run(t)
	prs := s.open(t)
	if len(prs) != 1 || !strings.Contains(prs[0].Title, "1.2.0") {
		t.Fatalf("open = %+v, want one pull request for a 1.2.0", prs)
	}
	s.delete(t, "a", "1.2.0")
	s.now = s.now.Add(time.Minute)
	s.run(t)
	now := s.open(t)
	if len(now) != 1 || now[0].Ref != prs[0].Ref || !strings.Contains(now[0].Title, "1.1.0") {
		t.Fatalf("after 1.2.0 was deleted: %+v, want #%d moved to 1.1.0", now, prs[0].Ref.Number)
	}
	deploy, err := s.forge.ReadFile(t.Context(), s.ref, "gitops/images/a", "deploy.yaml")
	if err != nil || !strings.Contains(string(deploy), "acme/a:1.1.0") {
		t.Fatalf("the branch holds %q (%v), want acme/a:1.1.0", deploy, err)
	}

	s.delete(t, "a", "1.1.0")
	s.now = s.now.Add(time.Minute)
	s.run(t)
	if got := s.open(t); len(got) != 0 {
		t.Fatalf("after 1.1.0 was deleted too: %+v, want the pull request closed", got)
	}
	if !s.commented(prs[0].Ref, "no longer needs this update", "`a`: up to date") {
		t.Errorf("#%d closed without a note saying why: %+v", prs[0].Ref.Number, s.forge.Comments(prs[0].Ref))
	}
}

// TestImageUpdaterKeepsItsPullRequestWhenTheRegistryFails: a registry that
// fails (500) says nothing about the tags: the open pull request is neither
// closed nor moved, the failure is reported, and the next good scan carries
// on with the same pull request.
func TestImageUpdaterKeepsItsPullRequestWhenTheRegistryFails(t *testing.T) {
	s := newImageSetup(t)
	s.push(t, "a", "1.1.0")
	s.run(t)
	prs := s.open(t)
	if len(prs) != 1 {
		t.Fatalf("open = %+v, want one pull request for a", prs)
	}
	head, _ := s.repo.Resolve(t, "gitops/images/a")

	s.down.Store(true)
	s.now = s.now.Add(time.Minute)
	s.forge.SetDefaultBranch(s.ref, scm.Branch{Name: "main", SHA: s.repo.Head(t), CloneURL: "file://" + s.repo.Dir})
	err := s.u.UpdateImages(t.Context(), s.forge, s.ref, nil)
	if err == nil || !strings.Contains(err.Error(), "policy a") {
		t.Errorf("a scan with the registry down: err = %v, want one naming policy a", err)
	}
	if got := s.open(t); len(got) != 1 || got[0].Ref != prs[0].Ref {
		t.Fatalf("with the registry down: %+v, want #%d left open", got, prs[0].Ref.Number)
	}
	if now, _ := s.repo.Resolve(t, "gitops/images/a"); now != head {
		t.Errorf("the branch moved from %s to %s while the registry was down", head, now)
	}
	if c := s.forge.Comments(prs[0].Ref); len(c) != 0 {
		t.Errorf("comments while the registry was down: %+v, want none", c)
	}

	s.down.Store(false)
	s.push(t, "a", "1.2.0")
	s.now = s.now.Add(time.Minute)
	s.run(t)
	if got := s.open(t); len(got) != 1 || got[0].Ref != prs[0].Ref || !strings.Contains(got[0].Title, "1.2.0") {
		t.Fatalf("back up with 1.2.0: %+v, want #%d moved to it", got, prs[0].Ref.Number)
	}
}

func (s *imageSetup) delete(t *testing.T, policy, tag string) {
	t.Helper()
	ref, err := name.ParseReference(s.host + "/acme/" + policy + ":" + tag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Delete(ref); err != nil {
		t.Fatal(err)
	}
}

// TestImageUpdaterClosesPullRequestsOfRemovedPolicies: a policy removed
// from gitops.yaml (or the whole images: block) closes its open pull
// request with a note, rather than leaving it open and counted against
// the limits; the other policies' pull requests stay.
func TestImageUpdaterClosesPullRequestsOfRemovedPolicies(t *testing.T) {
	s := newImageSetup(t)
	s.push(t, "a", "1.1.0")
	s.push(t, "b", "1.1.0")
	s.run(t)
	prs := s.open(t)
	if len(prs) != 2 {
		t.Fatalf("open = %+v, want a's and b's", prs)
	}
	gitops, err := os.ReadFile(filepath.Join(s.repo.Dir, "gitops.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, line := range strings.SplitAfter(string(gitops), "\n") {
		if !strings.Contains(line, "name: a,") {
			kept = append(kept, line)
		}
	}
	// The marker of a is left behind: an error naming it, and nothing
	// written, but a's pull request is closed all the same.
	s.repo.Commit(t, map[string]string{"gitops.yaml": strings.Join(kept, "")}, "drop policy a")
	s.now = s.now.Add(time.Minute)
	s.forge.SetDefaultBranch(s.ref, scm.Branch{Name: "main", SHA: s.repo.Head(t), CloneURL: "file://" + s.repo.Dir})
	if err := s.u.UpdateImages(t.Context(), s.forge, s.ref, nil); err == nil || !strings.Contains(err.Error(), `deploy.yaml:1: marker names image policy "a"`) {
		t.Errorf("a marker of a removed policy: err = %v, want one naming deploy.yaml:1", err)
	}
	open := s.open(t)
	if len(open) != 1 || open[0].HeadRef != "gitops/images/b" {
		t.Fatalf("after a was removed: %+v, want only b's open", open)
	}
	a := prs[0]
	if a.HeadRef != "gitops/images/a" {
		a = prs[1]
	}
	if !s.commented(a.Ref, "declares no image policy `a`") {
		t.Errorf("#%d closed without a note naming the policy: %+v", a.Ref.Number, s.forge.Comments(a.Ref))
	}
	if _, ok := s.repo.Resolve(t, "gitops/images/a"); ok {
		t.Error("a's branch is still there")
	}
	deploy, err := os.ReadFile(filepath.Join(s.repo.Dir, "deploy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s.repo.Commit(t, map[string]string{"deploy.yaml": strings.SplitAfterN(string(deploy), "\n", 2)[1]}, "drop a's marker")
	s.run(t)
	if got := s.open(t); len(got) != 1 || got[0].HeadRef != "gitops/images/b" {
		t.Fatalf("after a's marker was removed: %+v, want b's still open", got)
	}

	s.repo.Commit(t, map[string]string{"gitops.yaml": "apiVersion: gitops.kubectl.dev/v1alpha1\nkind: Repository\n"}, "no image automation")
	s.now = s.now.Add(time.Minute)
	s.run(t)
	if got := s.open(t); len(got) != 0 {
		t.Fatalf("after images: was removed: %+v, want none open", got)
	}
}

// commented reports whether a comment on ref holds every one of parts.
func (s *imageSetup) commented(ref scm.PRRef, parts ...string) bool {
	for _, c := range s.forge.Comments(ref) {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(c.Body, p)
		}
		if all {
			return true
		}
	}
	return false
}
