package integration

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-gitops/kubectl-gitops/internal/lease"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/bottest"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/gittest"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/registrytest"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/scmtest/githubfake"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/scmtest/gitlabfake"
)

// imagesGitops is gitops.yaml with app web in ns and the image policies web
// (semver) and slow (minimumAge 1h) on the registry at host, each listed
// again every second.
func imagesGitops(ns, host string) string {
	return fmt.Sprintf(`apiVersion: gitops.kubectl.dev/v1alpha1
kind: Repository
apps:
  - {name: web, path: apps/web, namespace: %[1]s, cluster: test}
images:
  - name: web
    image: %[2]s/acme/web
    policy: {semver: {range: ">=1.0.0"}}
    interval: 1s
  - name: slow
    image: %[2]s/acme/slow
    policy: {semver: {range: ">=1.0.0"}}
    minimumAge: 1h
    interval: 1s
`, ns, host)
}

// webDeployment is apps/web's Deployment: web's image marked, with
// comments and quoting an update must keep, and slow's tag marked.
func webDeployment(host, webTag, slowTag string) string {
	return fmt.Sprintf(`# web serves the shop
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: "%[1]s/acme/web:%[2]s"   # {"$imagepolicy": "web"}
          # the sidecar moves on its own schedule
        - name: slow
          image: %[1]s/acme/slow
          env:
            - name: SLOW_TAG
              value: '%[3]s' # {"$imagepolicy": "slow:tag"}
`, host, webTag, slowTag)
}

// imagePulls are the pull requests the bot opened.
func imagePulls(fake *githubfake.Server) []githubfake.Pull {
	return fake.CreatedPulls("acme/shop")
}

// waitImagePull waits until the bot has opened n pull requests and the
// newest one's head holds want in apps/web/deploy.yaml; it returns that
// pull request.
func waitImagePull(t *testing.T, fake *githubfake.Server, repo *gittest.Repo, n int, want string) githubfake.Pull {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last []githubfake.Pull
	for time.Now().Before(deadline) {
		last = imagePulls(fake)
		if len(last) == n && last[n-1].State == "open" && strings.Contains(showFile(t, repo, last[n-1].HeadSHA, "apps/web/deploy.yaml"), want) {
			return last[n-1]
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("no image pull request #%d proposing %q; pull requests opened: %+v", n, want, last)
	return githubfake.Pull{}
}

// noNewImagePull checks that the bot opens no pull request beyond n (and
// pushes nothing new to the open ones) over a few of its scans.
func noNewImagePull(t *testing.T, fake *githubfake.Server, n int, why string) {
	t.Helper()
	before := imagePulls(fake)
	time.Sleep(4 * time.Second) // four check intervals, four policy intervals
	after := imagePulls(fake)
	if len(after) != n {
		t.Fatalf("%s: the bot opened %d pull requests, want %d: %+v", why, len(after), n, after)
	}
	for i := range before {
		if before[i].HeadSHA != after[i].HeadSHA {
			t.Errorf("%s: #%d moved from %s to %s", why, after[i].Number, before[i].HeadSHA, after[i].HeadSHA)
		}
	}
}

func showFile(t *testing.T, repo *gittest.Repo, sha, path string) string {
	t.Helper()
	if sha == "" {
		return ""
	}
	out, err := exec.Command("git", "-C", repo.Dir, "show", sha+":"+path).Output()
	if err != nil {
		return ""
	}
	return string(out)
}

// setMain moves main of repo's checkout (and the fake's) to sha.
func setMain(t *testing.T, fake *githubfake.Server, repo *gittest.Repo, sha string) {
	t.Helper()
	if out, err := exec.Command("git", "-C", repo.Dir, "reset", "-q", "--hard", sha).CombinedOutput(); err != nil {
		t.Fatalf("git reset: %v\n%s", err, out)
	}
	fake.Update("acme/shop", func(r *githubfake.Repo) {
		r.Branches["main"] = sha
		r.Files[sha] = map[string]string{"gitops.yaml": readFile(t, repo.Dir, "gitops.yaml")}
	})
}

// mergeImagePull merges the bot's pull request p as a fast-forward.
func mergeImagePull(t *testing.T, fake *githubfake.Server, repo *gittest.Repo, p githubfake.Pull) {
	t.Helper()
	if out, err := exec.Command("git", "-C", repo.Dir, "reset", "-q", "--hard", p.HeadSHA).CombinedOutput(); err != nil {
		t.Fatalf("git reset: %v\n%s", err, out)
	}
	fake.Update("acme/shop", func(r *githubfake.Repo) {
		r.Files[p.HeadSHA] = map[string]string{"gitops.yaml": readFile(t, repo.Dir, "gitops.yaml")}
	})
	// As on GitHub, the pull request is merged when main moves.
	fake.MergePull("acme/shop", p.Number, p.HeadSHA)
}

// waitSeen waits until the bot's records say it saw Git hold tag for
// policy.
func waitSeen(t *testing.T, botNS, policy, tag string) {
	t.Helper()
	records := &lease.Records{Client: env.Clientset, Namespace: botNS, Name: lease.ImageStateName}
	deadline := time.Now().Add(60 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		last, _, _ = records.Get(t.Context(), "images:github:acme/shop")
		var st struct {
			Seen map[string]string `json:"seen"`
		}
		if json.Unmarshal([]byte(last), &st) == nil && st.Seen[policy] == tag {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("the bot never saw %s at %s in Git; its record: %s", policy, tag, last)
}

// imagesCLI runs kubectl-gitops images … against the bot's namespace.
func imagesCLI(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "kubectl-gitops"), append(append([]string{"images"}, args...), "--kubeconfig", env.Kubeconfig)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl gitops images %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestBotImageUpdatesEndToEnd runs the gitops-bot binary with image
// automation against a real registry process, real Git over smart HTTP
// (the bot pushes its branches there), the GitHub fake and the real API
// server:
//
//   - a new tag → one pull request whose diff changes exactly the marked
//     line, which the bot previews;
//   - a newer tag → the same pull request, force-pushed and retitled;
//   - images suspend --all → no pull request on the next scans; resume → it
//     appears;
//   - a merged update reverted → no pull request for that tag again; a newer
//     tag → one;
//   - a tag younger than minimumAge → never proposed.
func TestBotImageUpdatesEndToEnd(t *testing.T) {
	env.Require(t)
	ns, botNS := env.Namespace(t), env.Namespace(t)
	reg := registrytest.Start(t)
	reg.Push(t, "acme/web", "1.0.0")
	reg.PushCreated(t, "acme/slow", map[string]time.Time{"2.0.0": time.Now().Add(-48 * time.Hour), "2.1.0": time.Now()})

	original := webDeployment(reg.Host, "1.0.0", "2.0.0")
	repo := gittest.NewRepo(t, map[string]string{
		"gitops.yaml":          imagesGitops(ns, reg.Host),
		"apps/web/deploy.yaml": original,
	})
	base := repo.Head(t)
	applyBase(t, repo.Dir)
	fake := githubfake.New(t)
	serveShop(t, fake, repo, base, &githubfake.Pull{Title: "unrelated", HeadSHA: base})
	fake.Update("acme/shop", func(r *githubfake.Repo) {
		r.Permissions = map[string]string{"dev": "write", "alice": "write"}
		r.Branches = map[string]string{"main": base}
		r.Pulls[7].State = "closed"
	})
	fake.SetBranchResolver(func(_, branch string) (string, bool) { return repo.Resolve(t, branch) })
	fake.SetFilesResolver(func(_, base, head string) ([]githubfake.File, bool) {
		out, err := exec.Command("git", "-C", repo.Dir, "diff", "--name-only", base, head).Output()
		if err != nil {
			return nil, false
		}
		var files []githubfake.File
		for _, f := range strings.Fields(string(out)) {
			files = append(files, githubfake.File{Filename: f, Status: "modified"})
		}
		return files, true
	})
	logs := &lockedBuffer{}
	bottest.Start(t, fake, bottest.Options{
		Binary:        filepath.Join(binDir, "gitops-bot"),
		WebhookSecret: webhookSecret,
		Repository:    "acme/shop",
		Kubeconfig:    env.Kubeconfig,
		Logs:          logs,
		State:         botNS,
		Identity:      "images-0",
		Config:        "images: {checkInterval: 1s, maxNewPullRequestsPerHour: 5, author: {name: Image Bot, email: images@example.com}}\n",
	})

	// Nothing newer: no pull request.
	noNewImagePull(t, fake, 0, "with every tag in Git")

	// A new tag: one pull request changing exactly the marked line.
	reg.Push(t, "acme/web", "1.1.0")
	first := waitImagePull(t, fake, repo, 1, "acme/web:1.1.0")
	if want := strings.Replace(original, "acme/web:1.0.0", "acme/web:1.1.0", 1); showFile(t, repo, first.HeadSHA, "apps/web/deploy.yaml") != want {
		t.Errorf("the pull request's deploy.yaml =\n%s\nwant only the marked tag changed:\n%s", showFile(t, repo, first.HeadSHA, "apps/web/deploy.yaml"), want)
	}
	if first.HeadRef != "gitops/images/web" || first.BaseRef != "main" || first.Title != "Update web to 1.1.0" ||
		!strings.Contains(first.Body, "| web |") || !strings.Contains(first.Body, "1.0.0") {
		t.Errorf("pull request = %s → %s %q\n%s", first.HeadRef, first.BaseRef, first.Title, first.Body)
	}
	author, _ := exec.Command("git", "-C", repo.Dir, "log", "-1", "--format=%an <%ae>|%P", first.HeadSHA).Output()
	if got := strings.TrimSpace(string(author)); got != "Image Bot <images@example.com>|"+base {
		t.Errorf("commit author|parent = %q, want the configured author on main", got)
	}
	// The bot's pull request is previewed like any other, at once.
	waitBotComment(t, fake, first.Number, "1 configured", "+      - image: "+reg.Host+"/acme/web:1.1.0")
	waitContext(t, fake, first.HeadSHA, "gitops/preview", "success", "")

	// A newer tag: the same pull request, updated.
	reg.Push(t, "acme/web", "1.2.0")
	second := waitImagePull(t, fake, repo, 1, "acme/web:1.2.0")
	if second.Number != first.Number || second.Title != "Update web to 1.2.0" {
		t.Errorf("after 1.2.0: #%d %q, want #%d retitled", second.Number, second.Title, first.Number)
	}
	parent, _ := exec.Command("git", "-C", repo.Dir, "rev-parse", second.HeadSHA+"^").Output()
	if strings.TrimSpace(string(parent)) != base {
		t.Errorf("the updated branch's parent is %s, want main (%s): a force-push of one commit", parent, base)
	}

	// Merged: nothing to propose.
	mergeImagePull(t, fake, repo, second)
	noNewImagePull(t, fake, 1, "after the merge")

	// Suspended: a newer tag gets no pull request until resumed.
	if out := imagesCLI(t, repo.Dir, "suspend", "--all", "--bot-namespace", botNS); !strings.Contains(out, "suspended every image policy") {
		t.Fatalf("suspend: %s", out)
	}
	reg.Push(t, "acme/web", "1.3.0")
	noNewImagePull(t, fake, 1, "suspended")
	imagesCLI(t, repo.Dir, "resume", "--all", "--bot-namespace", botNS)
	third := waitImagePull(t, fake, repo, 2, "acme/web:1.3.0")

	// Merged, then reverted: held at 1.2.0, no pull request for 1.3.0.
	mergeImagePull(t, fake, repo, third)
	waitSeen(t, botNS, "web", "1.3.0")
	reverted := repo.Commit(t, map[string]string{"apps/web/deploy.yaml": showFile(t, repo, second.HeadSHA, "apps/web/deploy.yaml")}, "Revert web to 1.2.0")
	setMain(t, fake, repo, reverted)
	noNewImagePull(t, fake, 2, "after the revert")
	waitBotComment(t, fake, third.Number, "went back from 1.3.0 to 1.2.0", "/gitops unhold web")
	if out := imagesCLI(t, repo.Dir, "scan", "web", "--bot-namespace", botNS); !strings.Contains(out, "held at 1.2.0") {
		t.Errorf("images scan does not show the hold:\n%s", out)
	}
	// A strictly newer tag: proposed.
	reg.Push(t, "acme/web", "1.4.0")
	waitImagePull(t, fake, repo, 3, "acme/web:1.4.0")

	// slow's 2.1.0 is younger than minimumAge: never proposed.
	for _, p := range imagePulls(fake) {
		if p.HeadRef == "gitops/images/slow" {
			t.Errorf("#%d proposes slow's tag younger than minimumAge", p.Number)
		}
	}
	if t.Failed() {
		t.Logf("bot log:\n%s", logs.String())
	}
}

// TestBotGitLabImageUpdatesEndToEnd is the GitLab side: the bot opens a
// merge request for a new tag from its own branch (pushed over smart HTTP
// with the project token) whose diff changes exactly the marked line, and
// a newer tag updates the same merge request.
func TestBotGitLabImageUpdatesEndToEnd(t *testing.T) {
	env.Require(t)
	ns := env.Namespace(t)
	reg := registrytest.Start(t)
	reg.Push(t, "acme/web", "1.0.0")
	reg.PushCreated(t, "acme/slow", map[string]time.Time{"2.0.0": time.Now().Add(-48 * time.Hour)})

	fake := gitlabfake.New(t, gitlabToken)
	fake.SetCurrentUser("gitops-bot")
	fake.AddProject(gitlabShop)
	original := webDeployment(reg.Host, "1.0.0", "2.0.0")
	gitopsYAML := imagesGitops(ns, reg.Host)
	repo := gittest.NewRepo(t, map[string]string{"gitops.yaml": gitopsYAML, "apps/web/deploy.yaml": original})
	base := repo.Head(t)
	serveGitLabShop(t, fake, repo)
	fake.SetFile(gitlabShop, base, "gitops.yaml", []byte(gitopsYAML))
	fake.SetBranch(gitlabShop, "main", base)
	fake.SetBranchResolver(func(_, branch string) (string, bool) { return repo.Resolve(t, branch) })
	bottest.StartGitLab(t, fake, bottest.GitLabOptions{
		Binary:        filepath.Join(binDir, "gitops-bot"),
		Token:         gitlabToken,
		WebhookSecret: gitlabHookSecret,
		Repository:    gitlabShop,
		Kubeconfig:    env.Kubeconfig,
		Config:        "images: {checkInterval: 1s}\n",
	})

	waitMR := func(want string) gitlabfake.MergeRequest {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		var last []gitlabfake.MergeRequest
		for time.Now().Before(deadline) {
			last = fake.CreatedMergeRequests(gitlabShop)
			if len(last) == 1 {
				if sha, ok := repo.Resolve(t, last[0].SourceBranch); ok && strings.Contains(showFile(t, repo, sha, "apps/web/deploy.yaml"), want) && strings.Contains(last[0].Title, want[len(want)-5:]) {
					last[0].SHA = sha
					return last[0]
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Fatalf("no merge request proposing %q; opened: %+v", want, last)
		return gitlabfake.MergeRequest{}
	}
	reg.Push(t, "acme/web", "1.1.0")
	first := waitMR("acme/web:1.1.0")
	if want := strings.Replace(original, "acme/web:1.0.0", "acme/web:1.1.0", 1); showFile(t, repo, first.SHA, "apps/web/deploy.yaml") != want {
		t.Errorf("the merge request's deploy.yaml =\n%s\nwant only the marked tag changed", showFile(t, repo, first.SHA, "apps/web/deploy.yaml"))
	}
	if first.SourceBranch != "gitops/images/web" || first.TargetBranch != "main" || !strings.Contains(first.Description, "| web |") {
		t.Errorf("merge request = %s → %s\n%s", first.SourceBranch, first.TargetBranch, first.Description)
	}
	reg.Push(t, "acme/web", "1.2.0")
	second := waitMR("acme/web:1.2.0")
	if second.IID != first.IID || second.Title != "Update web to 1.2.0" {
		t.Errorf("after 1.2.0: !%d %q, want !%d retitled", second.IID, second.Title, first.IID)
	}
}
