package bot

import (
	"encoding/base64"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericclioptions"

	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/gittest"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/scmtest/memforge"
)

// previewSetup is a repository with two apps served over smart HTTP, a pull
// request on it in the in-memory forge, and a Previewer for the test
// control plane.
type previewSetup struct {
	repo  *gittest.Repo
	forge *memforge.Forge
	p     *Previewer
	ns    string
	ref   scm.PRRef
}

func gitopsYAML(ns string, extra string) string {
	return `apiVersion: gitops.kubectl.dev/v1alpha1
kind: Repository
apps:
- name: web
  path: apps/web
  namespace: ` + ns + `
  cluster: test
- name: api
  path: apps/api
  namespace: ` + ns + `
  cluster: test
` + extra
}

func configMap(name, value string) string {
	return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\ndata:\n  value: " + value + "\n"
}

func newPreviewSetup(t *testing.T) *previewSetup {
	t.Helper()
	return newPreviewSetupWith(t, "")
}

// newPreviewSetupWith is newPreviewSetup with extra appended to the base's
// gitops.yaml (such as approval policies).
func newPreviewSetupWith(t *testing.T, extra string) *previewSetup {
	t.Helper()
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	ns := env.Namespace(t)
	repo := gittest.NewRepo(t, map[string]string{
		"gitops.yaml":          gitopsYAML(ns, extra),
		"apps/web/config.yaml": configMap("web", "one"),
		"apps/api/config.yaml": configMap("api", "one"),
	})
	base := repo.Head(t)
	srv := gittest.Serve(t, map[string]*gittest.Repo{"acme/deploy": repo}, gittest.WithBasicAuth("x-access-token", "s3cret"))
	ref := scm.PRRef{Repo: scm.RepoRef{Kind: scm.GitHub, FullName: "acme/deploy"}, Number: 7}
	forge := memforge.New()
	forge.Username, forge.Password = "x-access-token", "s3cret"
	forge.SetGitDir(ref.Repo, repo.Dir)
	forge.AddPull(scm.PullRequest{
		Ref: ref, State: "open", Author: "dev",
		BaseSHA: base, HeadSHA: base, BaseRef: "main", HeadRef: "feature",
		CloneURL: srv.URL("acme/deploy"), HeadCloneURL: srv.URL("acme/deploy"),
	})
	flags := genericclioptions.NewConfigFlags(true)
	kubeconfig, cacheDir := env.Kubeconfig, t.TempDir()
	flags.KubeConfig, flags.CacheDir = &kubeconfig, &cacheDir
	p := &Previewer{
		Clusters: map[string]ClusterTarget{"test": flags, "moon": flags},
		CacheDir: t.TempDir(),
	}
	return &previewSetup{repo: repo, forge: forge, p: p, ns: ns, ref: ref}
}

// push commits files and makes the commit the pull request's head.
func (s *previewSetup) push(t *testing.T, files map[string]string) string {
	t.Helper()
	sha := s.repo.Commit(t, files, "change")
	s.update(func(pr *scm.PullRequest) { pr.HeadSHA = sha })
	return sha
}

func (s *previewSetup) update(change func(*scm.PullRequest)) { s.forge.UpdatePull(s.ref, change) }

// preview runs the preview as a job does: on the pull request as the forge
// has it now, forced as a command is, or not, as a webhook.
func (s *previewSetup) preview(t *testing.T, force bool) {
	t.Helper()
	pr, err := s.forge.GetPullRequest(t.Context(), s.ref)
	if err != nil {
		t.Fatal(err)
	}
	trigger := Trigger{Reason: ReasonWebhook}
	if force {
		trigger = Trigger{Reason: ReasonComment, Command: CommandPreview}
	}
	if err := s.p.Preview(t.Context(), s.forge, pr, trigger); err != nil {
		t.Fatalf("Preview: %v", err)
	}
}

// botComments returns the bodies of the bot's comments.
func (s *previewSetup) botComments() []string {
	var out []string
	for _, c := range s.forge.Comments(s.ref) {
		if c.Author == s.forge.Login {
			out = append(out, c.Body)
		}
	}
	return out
}

// creates and edits count the bot's comment writes.
func (s *previewSetup) creates() int { return len(s.forge.Calls("CreateComment")) }
func (s *previewSetup) edits() int   { return len(s.forge.Calls("EditComment")) }

// statesFor returns the states set on sha, in order.
func (s *previewSetup) statesFor(sha string) []scm.StatusState {
	var out []scm.StatusState
	for _, st := range s.forge.Statuses() {
		if st.SHA == sha {
			out = append(out, st.State)
		}
	}
	return out
}

func (s *previewSetup) lastStatus() scm.Status {
	st := s.forge.Statuses()
	if len(st) == 0 {
		return scm.Status{}
	}
	return st[len(st)-1]
}

func TestPreviewStickyComment(t *testing.T) {
	s := newPreviewSetup(t)
	head := s.push(t, map[string]string{"apps/web/config.yaml": configMap("web", "two")})
	s.preview(t, false)

	comments := s.botComments()
	if len(comments) != 1 {
		t.Fatalf("want 1 comment, got %d", len(comments))
	}
	body := comments[0]
	if !strings.HasPrefix(body, previewMarker(head)) {
		t.Errorf("the comment does not start with the marker of %s:\n%s", head, body)
	}
	if !strings.Contains(body, "| web | test |") || !strings.Contains(body, "ConfigMap/"+s.ns+"/web") {
		t.Errorf("the comment does not show app web:\n%s", body)
	}
	if strings.Contains(body, "| api |") || strings.Contains(body, "ConfigMap/"+s.ns+"/api") {
		t.Errorf("the comment shows app api, which the change does not touch:\n%s", body)
	}
	if got := s.statesFor(head); len(got) != 2 || got[0] != scm.StatusPending || got[1] != scm.StatusSuccess {
		t.Errorf("statuses on the head: %v, want [pending success]", got)
	}
	if st := s.lastStatus(); st.Context != PreviewContext {
		t.Errorf("status context %q", st.Context)
	}
	plan, ok := s.p.PlanHash(s.ref.Repo, head, "web")
	if !ok || !strings.HasPrefix(plan, "sha256:") {
		t.Errorf("the preview recorded no plan hash for web at %s", head)
	}

	// A second push: the same comment is edited.
	head2 := s.push(t, map[string]string{"apps/web/config.yaml": configMap("web", "three")})
	s.preview(t, false)
	if plan2, _ := s.p.PlanHash(s.ref.Repo, head2, "web"); plan2 == "" || plan2 == plan {
		t.Errorf("web's plan at the second push is %q, want a new hash (was %q)", plan2, plan)
	}
	comments = s.botComments()
	if len(comments) != 1 || s.edits() != 1 {
		t.Fatalf("after a push: %d comments, %d edits; want 1 comment edited once", len(comments), s.edits())
	}
	if !strings.HasPrefix(comments[0], previewMarker(head2)) || !strings.Contains(comments[0], "three") {
		t.Errorf("the comment was not updated to %s:\n%s", head2, comments[0])
	}

	// A replay of the same head changes nothing.
	statuses := len(s.statesFor(head2))
	s.preview(t, false)
	if s.edits() != 1 || s.creates() != 1 || len(s.statesFor(head2)) != statuses {
		t.Errorf("a replay changed something: %d edits, %d creates, statuses %v", s.edits(), s.creates(), s.statesFor(head2))
	}

	// Forced, with nothing new: the body is identical, so no edit either.
	s.preview(t, true)
	if s.edits() != 1 || s.creates() != 1 {
		t.Errorf("a forced preview of an unchanged head edited the comment: %d edits, %d creates", s.edits(), s.creates())
	}
}

func TestPreviewClusterNotAllowedByBase(t *testing.T) {
	s := newPreviewSetup(t)
	s.push(t, map[string]string{
		"gitops.yaml": gitopsYAML(s.ns, `- name: moon
  path: apps/moon
  namespace: `+s.ns+`
  cluster: moon
`),
		"apps/moon/config.yaml": configMap("moon", "one"),
	})
	s.preview(t, false)
	body := s.botComments()[0]
	if !strings.Contains(body, "| moon | moon |") || !strings.Contains(body, "not previewed live") {
		t.Errorf("the new app on a cluster the base does not use is not noted:\n%s", body)
	}
	if strings.Contains(body, "ConfigMap/"+s.ns+"/moon") {
		t.Errorf("the app was diffed against a cluster the base does not allow:\n%s", body)
	}
	if strings.Contains(body, "| web |") || strings.Contains(body, "| api |") {
		t.Errorf("untouched apps are shown:\n%s", body)
	}
}

func TestPreviewMasksSecrets(t *testing.T) {
	s := newPreviewSetup(t)
	s.push(t, map[string]string{"apps/web/secret.yaml": `apiVersion: v1
kind: Secret
metadata:
  name: db
stringData:
  password: hunter2
data:
  token: ` + base64.StdEncoding.EncodeToString([]byte("tok-very-secret")) + "\n"})
	s.preview(t, false)
	body := s.botComments()[0]
	if !strings.Contains(body, "Secret/"+s.ns+"/db") {
		t.Fatalf("the Secret is not in the preview:\n%s", body)
	}
	for _, secret := range []string{"hunter2", "tok-very-secret", base64.StdEncoding.EncodeToString([]byte("tok-very-secret")), base64.StdEncoding.EncodeToString([]byte("hunter2"))} {
		if strings.Contains(body, secret) {
			t.Errorf("the comment holds the secret %q:\n%s", secret, body)
		}
	}
}

func TestPreviewIgnoresOthersMarker(t *testing.T) {
	s := newPreviewSetup(t)
	head := s.push(t, map[string]string{"apps/api/config.yaml": configMap("api", "two")})
	quoted := s.forge.AddComment(s.ref, "mallory", previewMarker(head)+"\nnothing to see")

	s.preview(t, false)
	if s.creates() != 1 || s.edits() != 0 {
		t.Fatalf("%d creates, %d edits; want the bot's own comment created", s.creates(), s.edits())
	}
	for _, c := range s.forge.Comments(s.ref) {
		if c.ID == quoted.ID && c.Body != quoted.Body {
			t.Errorf("another user's comment was taken over: %q", c.Body)
		}
	}
	if !strings.Contains(s.botComments()[0], "ConfigMap/"+s.ns+"/api") {
		t.Errorf("the bot's comment lacks the preview")
	}
}

func TestPreviewForkRefusedByDefault(t *testing.T) {
	s := newPreviewSetup(t)
	head := s.push(t, map[string]string{"apps/web/config.yaml": configMap("web", "two")})
	s.update(func(pr *scm.PullRequest) {
		pr.Fork = true
		pr.HeadCloneURL = "http://127.0.0.1:1/evil/deploy"
	})

	s.preview(t, false)
	body := s.botComments()[0]
	if !strings.Contains(body, "fork") || strings.Contains(body, "ConfigMap/") {
		t.Errorf("a fork was previewed, or the comment does not say why not:\n%s", body)
	}
	if st := s.lastStatus(); st.SHA != head || st.State != scm.StatusSuccess || !strings.Contains(st.Description, "fork") {
		t.Errorf("status %+v, want success saying forks are off", st)
	}
}

func TestPreviewForkRenderOnly(t *testing.T) {
	s := newPreviewSetup(t)
	s.p.AllowForks = true
	head := s.push(t, map[string]string{"apps/web/config.yaml": configMap("web", "two")})
	// The fork is served without credentials: the head is fetched as the
	// public would.
	fork := gittest.Serve(t, map[string]*gittest.Repo{"mallory/deploy": s.repo})
	s.update(func(pr *scm.PullRequest) {
		pr.Fork = true
		pr.HeadCloneURL = fork.URL("mallory/deploy")
	})

	s.preview(t, false)
	body := s.botComments()[0]
	if !strings.Contains(body, "rendered only") || !strings.Contains(body, "| web | test | 0 | 1 | 0 |") {
		t.Errorf("the fork is not previewed render-only:\n%s", body)
	}
	if !strings.Contains(body, "-  value: one") || !strings.Contains(body, "+  value: two") {
		t.Errorf("the diff is not the base's render against the head's:\n%s", body)
	}
	if strings.Contains(body, "applyset.kubernetes.io") {
		t.Errorf("the fork was diffed against the cluster:\n%s", body)
	}
	if st := s.lastStatus(); st.SHA != head || st.State != scm.StatusSuccess {
		t.Errorf("status %+v, want success", st)
	}
}

func TestPreviewRenderErrorInComment(t *testing.T) {
	s := newPreviewSetup(t)
	head := s.push(t, map[string]string{"apps/web/kustomization.yaml": "resources: [missing.yaml]\n"})
	s.preview(t, false)
	body := s.botComments()[0]
	if !strings.Contains(body, "| web | test | – | – | – | 1 |") || !strings.Contains(body, "**Error:**") {
		t.Errorf("the render error is not in the comment:\n%s", body)
	}
	if st := s.lastStatus(); st.SHA != head || st.State != scm.StatusFailure || !strings.Contains(st.Description, "web") {
		t.Errorf("status %+v, want failure naming web", st)
	}
}

func TestPreviewClosed(t *testing.T) {
	s := newPreviewSetup(t)
	s.push(t, map[string]string{"apps/web/config.yaml": configMap("web", "two")})
	s.update(func(pr *scm.PullRequest) { pr.State = "closed" })
	s.preview(t, true)
	if c, st := s.forge.Comments(s.ref), s.forge.Statuses(); len(c) != 0 || len(st) != 0 {
		t.Errorf("a closed pull request was previewed: %d comments, %d statuses", len(c), len(st))
	}
}

func TestPreviewHelmApp(t *testing.T) {
	s := newPreviewSetup(t)
	s.push(t, map[string]string{
		"gitops.yaml": gitopsYAML(s.ns, `- name: site
  namespace: `+s.ns+`
  cluster: test
  path: charts/site
  helm:
    chart: charts/site
    valuesFiles: [values/site.yaml]
`),
		"charts/site/Chart.yaml": "apiVersion: v2\nname: site\nversion: 0.1.0\n",
		// lookup would copy a live object into the comment; the bot
		// renders with it disabled.
		"charts/site/templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: site\ndata:\n  mode: {{ .Values.mode }}\n  found: {{ (lookup \"v1\" \"Namespace\" \"\" \"default\") | len | quote }}\n",
		"values/site.yaml":              "mode: blue\n",
	})
	s.preview(t, false)
	body := s.botComments()[0]
	if !strings.Contains(body, "| site | test |") || !strings.Contains(body, "ConfigMap/"+s.ns+"/site") || !strings.Contains(body, "mode: blue") {
		t.Errorf("the Helm app is not previewed:\n%s", body)
	}
	if !strings.Contains(body, `found: "0"`) {
		t.Errorf("lookup read the cluster:\n%s", body)
	}
	if strings.Contains(body, "| web |") {
		t.Errorf("untouched apps are shown:\n%s", body)
	}
}

func TestPreviewSourceNotAllowedByBase(t *testing.T) {
	s := newPreviewSetup(t)
	s.push(t, map[string]string{"gitops.yaml": gitopsYAML(s.ns, `- name: borrowed
  namespace: `+s.ns+`
  cluster: test
  source:
    git: https://git.invalid/mallory/manifests.git
    ref: main
`)})
	s.preview(t, false)
	body := s.botComments()[0]
	if !strings.Contains(body, "| borrowed | test | – | – | – | 1 |") {
		t.Errorf("a source the base does not allow was fetched, or the refusal is not shown:\n%s", body)
	}
	if st := s.lastStatus(); st.State != scm.StatusFailure {
		t.Errorf("status %+v, want failure", st)
	}
}

func TestPreviewFindsStickyBeyondFirstPage(t *testing.T) {
	s := newPreviewSetup(t)
	s.push(t, map[string]string{"apps/web/config.yaml": configMap("web", "two")})
	for range 120 {
		s.forge.AddComment(s.ref, "dev", "lgtm")
	}
	s.preview(t, false)
	for range 50 {
		s.forge.AddComment(s.ref, "dev", "ping")
	}

	s.push(t, map[string]string{"apps/web/config.yaml": configMap("web", "three")})
	s.preview(t, false)
	if s.creates() != 1 || s.edits() != 1 {
		t.Errorf("%d creates, %d edits; want the comment at position 121 edited", s.creates(), s.edits())
	}
}
