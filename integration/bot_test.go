package integration

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/bottest"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/gittest"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/scmtest/githubfake"
)

const webhookSecret = "canary-webhook-secret-0d41"

// TestBotPreviewEndToEnd runs the gitops-bot binary as it is deployed, as a
// GitHub App, against the GitHub fake (which checks every request against
// GitHub's OpenAPI description and the App's JWT), a real Git server that
// accepts only the App's installation tokens, and the real API server. A
// signed pull_request.opened for a repository with two apps, one touched,
// gets one sticky comment naming exactly the touched app's change; a second
// push edits that comment; replaying the first delivery changes nothing.
func TestBotPreviewEndToEnd(t *testing.T) {
	env.Require(t)
	ns := env.Namespace(t)
	fake := githubfake.New(t)

	repo := gittest.NewRepo(t, map[string]string{
		"gitops.yaml": fmt.Sprintf(`apiVersion: gitops.kubectl.dev/v1alpha1
kind: Repository
apps:
  - {name: alpha, path: apps/alpha, namespace: %[1]s, cluster: test}
  - {name: beta, path: apps/beta, namespace: %[1]s, cluster: test}
`, ns),
		"apps/alpha/settings.yaml": configMap("alpha-settings", "one"),
		"apps/beta/settings.yaml":  configMap("beta-settings", "one"),
	})
	base := repo.Head(t)
	// The base is what runs in the cluster.
	applyBase(t, repo.Dir)
	head1 := repo.Commit(t, map[string]string{"apps/alpha/settings.yaml": configMap("alpha-settings", "two")}, "alpha: two")
	serveShop(t, fake, repo, base, &githubfake.Pull{
		Title: "alpha: two", HeadSHA: head1,
		Files: []githubfake.File{{Filename: "apps/alpha/settings.yaml", Status: "modified"}},
	})

	addr, logs := startBot(t, fake)
	opened := pullRequestEvent("opened", head1)
	if code := deliver(t, addr, "delivery-1", opened); code != http.StatusAccepted {
		t.Fatalf("pull_request.opened: HTTP %d, want 202", code)
	}
	first := waitComment(t, fake, func(c githubfake.Comment) bool { return strings.Contains(c.Body, head1) })
	if !strings.Contains(first.Body, "alpha") || !strings.Contains(first.Body, "ConfigMap") || strings.Contains(first.Body, "beta") {
		t.Errorf("the comment should name exactly alpha's change:\n%s", first.Body)
	}
	if !strings.Contains(first.Body, "-  key: one") || !strings.Contains(first.Body, "+  key: two") {
		t.Errorf("the comment should show the live diff of alpha-settings:\n%s", first.Body)
	}
	waitStatus(t, fake, head1, "success")

	// A second push edits the same comment.
	head2 := repo.Commit(t, map[string]string{"apps/alpha/settings.yaml": configMap("alpha-settings", "three")}, "alpha: three")
	fake.Update("acme/shop", func(r *githubfake.Repo) { r.Pulls[7].HeadSHA = head2 })
	if code := deliver(t, addr, "delivery-2", pullRequestEvent("synchronize", head2)); code != http.StatusAccepted {
		t.Fatalf("pull_request.synchronize: HTTP %d, want 202", code)
	}
	second := waitComment(t, fake, func(c githubfake.Comment) bool { return strings.Contains(c.Body, head2) })
	if second.ID != first.ID || !strings.Contains(second.Body, "+  key: three") {
		t.Errorf("the second push should edit comment %d, got %d:\n%s", first.ID, second.ID, second.Body)
	}
	waitStatus(t, fake, head2, "success")

	// Replaying the first delivery changes nothing: the intake answers
	// duplicate, so no job is queued that could write later, and nothing
	// was written by the time it answered.
	requests := len(fake.Requests())
	if code, result := deliverAnswer(t, addr, "delivery-1", opened); code != http.StatusOK || result != "duplicate" {
		t.Fatalf("replayed delivery: HTTP %d %q, want 200 duplicate", code, result)
	}
	comments := pullComments(fake)
	if len(comments) != 1 || comments[0].Body != second.Body {
		t.Errorf("after the replay: %d comments, body changed: %v", len(comments), len(comments) == 1 && comments[0].Body != second.Body)
	}
	for _, req := range fake.Requests()[requests:] {
		if !strings.HasPrefix(req, "GET ") {
			t.Errorf("the replay wrote to the forge: %s", req)
		}
	}
	if strings.Contains(logs.String(), webhookSecret) {
		t.Errorf("the webhook secret reached the bot's log")
	}
}

// serveShop serves repo as acme/shop over smart HTTP to the App's
// installation tokens, with pull request 7 (by dev, from branch alpha-two
// into main at base) on the GitHub fake; pull gives its title, head and
// files.
func serveShop(t *testing.T, fake *githubfake.Server, repo *gittest.Repo, base string, pull *githubfake.Pull) {
	t.Helper()
	git := gittest.Serve(t, map[string]*gittest.Repo{"acme/shop": repo},
		gittest.WithAuth(func(user, pass string) bool { return user == "x-access-token" && fake.ValidToken(pass) }))
	fake.CloneURL = func(string) string { return git.URL("acme/shop") }
	pull.Number, pull.Author, pull.State = 7, "dev", "open"
	pull.HeadRef, pull.BaseSHA, pull.BaseRef = "alpha-two", base, "main"
	fake.AddRepo(&githubfake.Repo{
		Owner: "acme", Name: "shop", ID: 1001, Installation: 42,
		Files: map[string]map[string]string{base: {"gitops.yaml": readFile(t, repo.Dir, "gitops.yaml")}},
		Pulls: map[int]*githubfake.Pull{7: pull},
	})
}

func startBot(t *testing.T, fake *githubfake.Server) (string, *lockedBuffer) {
	t.Helper()
	logs := &lockedBuffer{}
	bot := bottest.Start(t, fake, bottest.Options{
		Binary:        filepath.Join(binDir, "gitops-bot"),
		WebhookSecret: webhookSecret,
		Repository:    "acme/shop",
		Kubeconfig:    env.Kubeconfig,
		Logs:          logs,
	})
	return bot.Addr, logs
}

// lockedBuffer collects the bot's log while the process writes it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func pullRequestEvent(action, head string) []byte {
	return []byte(fmt.Sprintf(`{"action":%q,"number":7,"pull_request":{"number":7,"state":"open","head":{"sha":%q,"ref":"alpha-two"},"base":{"ref":"main"},"user":{"login":"dev"}},"repository":{"id":1001,"name":"shop","full_name":"acme/shop","owner":{"login":"acme"}},"installation":{"id":42},"sender":{"login":"dev"}}`, action, head))
}

// applyBase applies the tree at dir to the test cluster with the built
// kubectl-gitops, as the base of a pull request runs there.
func applyBase(t testing.TB, dir string) {
	t.Helper()
	kc, err := clientcmd.LoadFromFile(env.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	apply := exec.Command(filepath.Join(binDir, "kubectl-gitops"), "apply", dir, "--kubeconfig", env.Kubeconfig, "--context", kc.CurrentContext)
	if out, err := apply.CombinedOutput(); err != nil {
		t.Fatalf("applying the base: %v\n%s", err, out)
	}
}

// deliver sends a signed pull_request delivery and returns the status.
func deliver(t *testing.T, addr, id string, body []byte) int {
	t.Helper()
	code, _ := deliverAnswer(t, addr, id, body)
	return code
}

// deliverAnswer is deliver, and the intake's answer (accepted, duplicate…).
func deliverAnswer(t *testing.T, addr, id string, body []byte) (int, string) {
	t.Helper()
	return deliverEvent(t, addr, "pull_request", id, body)
}

// deliverEvent sends a signed delivery of a GitHub event and returns the
// status and the intake's answer.
func deliverEvent(t *testing.T, addr, event, id string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/webhooks/github", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", id)
	req.Header.Set("X-Hub-Signature-256", githubfake.Sign([]byte(webhookSecret), body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, strings.TrimSpace(string(answer))
}

func pullComments(fake *githubfake.Server) []githubfake.Comment {
	var out []githubfake.Comment
	fake.Update("acme/shop", func(r *githubfake.Repo) { out = append(out, r.Pulls[7].Comments...) })
	return out
}

// waitComment waits until the pull request has exactly one comment and it
// satisfies ok.
func waitComment(t *testing.T, fake *githubfake.Server, ok func(githubfake.Comment) bool) githubfake.Comment {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if cs := pullComments(fake); len(cs) == 1 && ok(cs[0]) {
			return cs[0]
		} else if len(cs) > 1 {
			t.Fatalf("the bot posted %d comments, want one sticky comment", len(cs))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("no matching comment; comments: %+v", pullComments(fake))
	return githubfake.Comment{}
}

func waitStatus(t *testing.T, fake *githubfake.Server, sha, state string) {
	t.Helper()
	waitContext(t, fake, sha, "gitops/preview", state, "")
}

// waitContext waits until the newest status named context on sha is in
// state with a description containing desc, and returns it.
func waitContext(t *testing.T, fake *githubfake.Server, sha, context, state, desc string) githubfake.Status {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last githubfake.Status
	for time.Now().Before(deadline) {
		fake.Update("acme/shop", func(r *githubfake.Repo) {
			for _, st := range r.Statuses {
				if st.SHA == sha && st.Context == context {
					last = st
				}
			}
		})
		if last.State == state && strings.Contains(last.Description, desc) {
			return last
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("status %s of %s never became %s with %q; last %s %q", context, sha, state, desc, last.State, last.Description)
	return last
}

func configMap(name, value string) string {
	return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\ndata:\n  key: " + value + "\n"
}

func readFile(t *testing.T, dir, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
