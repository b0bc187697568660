package integration

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/gittest"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/scmtest/githubfake"
)

// parityCanary is a Secret value that neither report may show.
const parityCanary = "CANARY-parity-5e1f"

// TestPluginAndBotReportAlike runs the plugin's `diff APP -o markdown` and
// the bot's preview of a pull request on one app and one cluster: the app's
// section of the bot's comment is byte for byte the plugin's report. Both
// go through the one engine, so they agree on the namespace, the prune
// default (the app prunes, so the removed object shows as deleted in
// both), Secret masking and the order of objects.
func TestPluginAndBotReportAlike(t *testing.T) {
	env.Require(t)
	ns := env.Namespace(t)
	fake := githubfake.New(t)

	repo := gittest.NewRepo(t, map[string]string{
		"gitops.yaml": fmt.Sprintf(`apiVersion: gitops.kubectl.dev/v1alpha1
kind: Repository
apps:
  - {name: web, path: apps/web, namespace: %s, cluster: test, prune: true}
`, ns),
		"apps/web/settings.yaml": configMap("web-settings", "one"),
		"apps/web/old.yaml":      configMap("web-old", "one"),
		"apps/web/secret.yaml":   paritySecret("first-" + parityCanary),
	})
	base := repo.Head(t)
	applyBase(t, repo.Dir)
	head := repo.Commit(t, map[string]string{
		"apps/web/settings.yaml": configMap("web-settings", "two"),
		"apps/web/old.yaml":      "",
		"apps/web/new.yaml":      configMap("web-new", "one"),
		"apps/web/secret.yaml":   paritySecret("second-" + parityCanary),
	}, "web: two")

	serveShop(t, fake, repo, base, &githubfake.Pull{
		Title: "web: two", HeadSHA: head,
		Files: []githubfake.File{
			{Filename: "apps/web/settings.yaml", Status: "modified"},
			{Filename: "apps/web/old.yaml", Status: "removed"},
			{Filename: "apps/web/new.yaml", Status: "added"},
			{Filename: "apps/web/secret.yaml", Status: "modified"},
		},
	})
	addr, _ := startBot(t, fake)
	if code := deliver(t, addr, "parity-1", pullRequestEvent("opened", head)); code != http.StatusAccepted {
		t.Fatalf("pull_request.opened: HTTP %d, want 202", code)
	}
	comment := waitComment(t, fake, func(c githubfake.Comment) bool { return strings.Contains(c.Body, head) })

	kc, err := clientcmd.LoadFromFile(env.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(binDir, "kubectl-gitops"), "diff", "web", "-o", "markdown", "--kubeconfig", env.Kubeconfig, "--context", kc.CurrentContext)
	cmd.Dir = repo.Dir
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("kubectl gitops diff web: %v, want exit status 1 (changes)\n%s", err, errOut.String())
	}

	section, ok := appSection(comment.Body, "web", "test")
	if !ok {
		t.Fatalf("no section for app web in the comment:\n%s", comment.Body)
	}
	if section != out.String() {
		t.Errorf("the bot's section and the plugin's report differ\n--- bot\n%s\n--- plugin\n%s", section, out.String())
	}
	for _, want := range []string{"| created | ConfigMap | " + ns + " | web-new |", "| deleted | ConfigMap | " + ns + " | web-old |", "| configured | Secret |"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the report lacks %q:\n%s", want, out.String())
		}
	}
	for name, text := range map[string]string{"comment": comment.Body, "plugin": out.String() + errOut.String()} {
		if strings.Contains(text, parityCanary) {
			t.Errorf("the %s shows the Secret's value", name)
		}
	}
}

// appSection is the body of app's collapsed section in a preview comment:
// what follows its summary line up to the section's end.
func appSection(body, app, cluster string) (string, bool) {
	start := "<details><summary><code>" + app + "</code> on <code>" + cluster + "</code>"
	i := strings.Index(body, start)
	if i < 0 {
		return "", false
	}
	rest := body[i:]
	j := strings.Index(rest, "</summary>\n\n")
	if j < 0 {
		return "", false
	}
	rest = rest[j+len("</summary>\n\n"):]
	// The app's section is the last: it ends the comment.
	end := strings.LastIndex(rest, "\n</details>\n")
	if end < 0 {
		return "", false
	}
	return rest[:end], true
}

func paritySecret(value string) string {
	return "apiVersion: v1\nkind: Secret\nmetadata:\n  name: web-credentials\nstringData:\n  password: " + value + "\n"
}
