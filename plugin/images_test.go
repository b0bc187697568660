package plugin

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-gitops/kubectl-gitops/internal/lease"
)

// imagesRepo is a repository with one app and the image policies web and
// api.
func imagesRepo(t *testing.T, ns string) string {
	t.Helper()
	repo := t.TempDir()
	write(t, repo, "gitops.yaml", fmt.Sprintf(`apiVersion: gitops.kubectl.dev/v1alpha1
kind: Repository
apps:
  - name: config
    path: apps/config
    namespace: %s
images:
  - name: web
    image: ghcr.io/example/web
    policy: {semver: {range: ">=1.0.0"}}
  - name: api
    image: ghcr.io/example/api
    policy: {semver: {range: ">=1.0.0"}}
`, ns))
	write(t, repo, "apps/config/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  a: b\n")
	return repo
}

func TestImagesSuspendResume(t *testing.T) {
	ns := env.Namespace(t)
	botNS := env.Namespace(t)
	repo := imagesRepo(t, ns)
	images := func(args ...string) (int, string, string) {
		t.Helper()
		return onCluster(t, repo, append(append([]string{"images"}, args...), "--bot-namespace", botNS)...)
	}
	statusLines := func() string {
		t.Helper()
		code, out, errOut := onCluster(t, repo, "status", "--bot-namespace", botNS)
		if code != ExitOK {
			t.Fatalf("status: exit %d: %s", code, errOut)
		}
		var lines []string
		for l := range strings.Lines(out) {
			if strings.HasPrefix(l, "image automation:") {
				lines = append(lines, strings.TrimSpace(l))
			}
		}
		return strings.Join(lines, "\n")
	}
	if got := statusLines(); got != "image automation: on for web, api" {
		t.Errorf("status before any switch: %q", got)
	}

	steps := []struct {
		args       []string
		wantOut    string
		wantStatus string // the status lines after, with "USER" for the user
		wantWarn   string
	}{
		{[]string{"suspend", "web", "--reason", "a bad release"}, "suspended image policy web",
			"image automation: web suspended by USER: a bad release (kubectl gitops images resume web)", ""},
		{[]string{"suspend", "--all"}, "suspended every image policy",
			"image automation: every policy suspended by USER (kubectl gitops images resume --all)\nimage automation: web suspended by USER: a bad release (kubectl gitops images resume web)", ""},
		{[]string{"resume", "web"}, "resumed image policy web",
			"image automation: every policy suspended by USER (kubectl gitops images resume --all)", "every image policy is still suspended"},
		{[]string{"resume", "--all"}, "resumed every image policy", "image automation: on for web, api", ""},
	}
	user := whoami()
	for _, st := range steps {
		code, out, errOut := images(st.args...)
		if code != ExitOK || !strings.Contains(out, st.wantOut) {
			t.Fatalf("images %v: exit %d, out %q, err %q", st.args, code, out, errOut)
		}
		if st.wantWarn != "" && !strings.Contains(errOut, st.wantWarn) {
			t.Errorf("images %v: stderr %q, want a warning %q", st.args, errOut, st.wantWarn)
		}
		if got, want := statusLines(), strings.ReplaceAll(st.wantStatus, "USER", user); got != want {
			t.Errorf("status after images %v:\n got %q\nwant %q", st.args, got, want)
		}
	}

	// The bot reads the same switch.
	s := &lease.Suspensions{Client: env.Clientset, Namespace: botNS}
	if code, _, errOut := images("suspend", "api"); code != ExitOK {
		t.Fatal(errOut)
	}
	if got, err := s.Suspended(t.Context(), "api"); err != nil || !got {
		t.Errorf("the bot's view of api: %v, %v", got, err)
	}
	if got, err := s.Suspended(t.Context(), "web"); err != nil || got {
		t.Errorf("the bot's view of web: %v, %v", got, err)
	}
	if _, err := env.Clientset.CoreV1().ConfigMaps(botNS).Get(t.Context(), lease.ImageSuspensionsName, metav1.GetOptions{}); err != nil {
		t.Errorf("the switch's ConfigMap: %v", err)
	}
}

func TestImagesSuspendBadInput(t *testing.T) {
	repo := imagesRepo(t, "default")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"suspend"}, "name an image policy of gitops.yaml, or pass --all"},
		{[]string{"resume"}, "name an image policy of gitops.yaml, or pass --all"},
		{[]string{"suspend", "web", "--all"}, "pass either the policy web or --all, not both"},
		{[]string{"suspend", "webb"}, `"webb" is not an image policy of`},
		{[]string{"resume", "nope"}, "use one of web, api"},
		{[]string{"suspend", "web", "--bot-namespace", ""}, "--bot-namespace is empty"},
		{[]string{"suspend", "a", "b"}, "accepts at most 1 arg"},
	}
	for _, tc := range cases {
		code, _, errOut := run(t, repo, append([]string{"images"}, tc.args...)...)
		if code == ExitOK || !strings.Contains(errOut, tc.want) {
			t.Errorf("images %v: exit %d, stderr %q; want an error with %q", tc.args, code, errOut, tc.want)
		}
	}
}

func TestImagesSuspendLocal(t *testing.T) {
	repo := imagesRepo(t, "default")
	file := filepath.Join(repo, "gitops.yaml")
	before, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, repo, "images", "suspend", "web", "--local")
	if code != ExitOK || !strings.Contains(out, "suspended web; commit it") {
		t.Fatalf("suspend web --local: exit %d, %q %q", code, out, errOut)
	}
	after, _ := os.ReadFile(file)
	want := strings.Replace(string(before), "  - name: web\n", "  - name: web\n    suspend: true\n", 1)
	if string(after) != want {
		t.Fatalf("gitops.yaml after suspend --local:\n%s\nwant:\n%s", after, want)
	}
	code, out, _ = run(t, repo, "images", "suspend", "--all", "--local")
	if code != ExitOK || !strings.Contains(out, "suspended api;") {
		t.Fatalf("suspend --all --local: exit %d, %q", code, out)
	}
	code, out, _ = run(t, repo, "images", "resume", "--all", "--local")
	if code != ExitOK || !strings.Contains(out, "resumed web, api;") {
		t.Fatalf("resume --all --local: exit %d, %q", code, out)
	}
	after, _ = os.ReadFile(file)
	if strings.Contains(string(after), "suspend: true") || strings.Count(string(after), "suspend: false") != 2 {
		t.Errorf("gitops.yaml after resume --all --local:\n%s", after)
	}
	// Outside a repository --local has nothing to edit.
	if code, _, errOut := run(t, t.TempDir(), "images", "suspend", "--all", "--local"); code == ExitOK || !strings.Contains(errOut, "--local edits the image policies of a repository") {
		t.Errorf("--local outside a repository: exit %d, %q", code, errOut)
	}
}
