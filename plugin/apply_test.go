package plugin

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-gitops/kubectl-gitops/internal/cluster"
)

// onCluster runs `kubectl gitops args…` in dir against the test control
// plane, with a discovery cache of the test's own.
func onCluster(t *testing.T, dir string, args ...string) (int, string, string) {
	t.Helper()
	env.Require(t)
	return run(t, dir, append(args, "--kubeconfig", env.Kubeconfig, "--cache-dir", t.TempDir())...)
}

// applyRepo writes a gitops.yaml with apps config and web (web depends on
// config), both in ns, and returns its folder.
func applyRepo(t *testing.T, ns string) string {
	t.Helper()
	repo := t.TempDir()
	write(t, repo, "gitops.yaml", fmt.Sprintf(`apiVersion: gitops.kubectl.dev/v1alpha1
kind: Repository
apps:
  - name: web
    path: apps/web
    namespace: %[1]s
    dependsOn: [config]
  - name: config
    path: apps/config
    namespace: %[1]s
    prune: true
`, ns))
	write(t, repo, "apps/config/settings.yaml", liveCM("", "settings", "v1"))
	write(t, repo, "apps/config/extra.yaml", liveCM("", "extra", "x"))
	write(t, repo, "apps/web/web.yaml", liveDeployment("", "web", 2)+"---\n"+liveCM("", "web-env", "prod"))
	return repo
}

func TestApplyRepositoryInDependencyOrder(t *testing.T) {
	ns := env.Namespace(t)
	repo := applyRepo(t, ns)
	git := func(args ...string) {
		cmd := exec.Command("git", append([]string{"-C", repo, "-c", "user.name=t", "-c", "user.email=t@example.com"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	git("init", "-q")
	git("add", ".")
	git("commit", "-q", "-m", "init")
	head, _ := exec.Command("git", "-C", repo, "rev-parse", "HEAD").Output()

	code, out, errOut := onCluster(t, repo, "apply", ".")
	if code != ExitOK {
		t.Fatalf("apply .: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	// config first (web depends on it), although web comes first in the file.
	if i, j := strings.Index(out, "app config:"), strings.Index(out, "app web:"); i < 0 || j < 0 || i > j {
		t.Errorf("summary order:\n%s", out)
	}
	for _, want := range []string{"configmap/settings serverside-applied", "deployment.apps/web serverside-applied"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if !strings.Contains(out, "app config: 2 created, 0 configured, 0 unchanged; inventory "+ns+"/gitops-config at "+string(head[:12])) {
		t.Errorf("stdout:\n%s", out)
	}
	parent, err := env.Clientset.CoreV1().Secrets(ns).Get(context.Background(), "gitops-config", metav1.GetOptions{})
	if err != nil || parent.Annotations[cluster.AnnotationRevision] != strings.TrimSpace(string(head)) {
		t.Fatalf("inventory revision: %v %v", err, parent)
	}

	// Applied, the live diff finds nothing to change.
	if code, out, errOut := run(t, repo, "diff", "config", "--kubeconfig", env.Kubeconfig, "--cache-dir", t.TempDir(), "--color", "never"); code != ExitOK {
		t.Errorf("diff after apply: exit %d\n%s\n%s", code, out, errOut)
	}

	// A re-apply is a no-op; config prunes by its own setting.
	write(t, repo, "apps/config/extra.yaml", "")
	code, out, errOut = onCluster(t, repo, "apply", "config")
	if code != ExitOK || !strings.Contains(out, "app config: 0 created, 0 configured, 1 unchanged, 1 pruned") ||
		!strings.Contains(errOut, "configmap/extra pruned") {
		t.Fatalf("apply config: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if _, err := env.Clientset.CoreV1().ConfigMaps(ns).Get(context.Background(), "extra", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("extra not pruned: %v", err)
	}
}

func TestApplyExitCodes(t *testing.T) {
	ns := env.Namespace(t)
	tests := []struct {
		name   string
		setup  func(t *testing.T, repo string)
		args   []string
		code   int
		stderr []string
	}{
		{name: "ok", args: []string{"apply", "config"}, code: ExitOK},
		{name: "dry run", args: []string{"apply", "config", "--dry-run"}, code: ExitOK, stderr: []string{"(server dry run)"}},
		{name: "unknown app", args: []string{"apply", "nope"}, code: ExitError, stderr: []string{"neither a path nor an app"}},
		{name: "render error", setup: func(t *testing.T, repo string) {
			write(t, repo, "apps/config/broken.yaml", "kind: [unclosed\n")
		}, args: []string{"apply", "config", "--prune"}, code: ExitError, stderr: []string{"rendering failed, nothing was applied or pruned"}},
		{name: "object fails", setup: func(t *testing.T, repo string) {
			write(t, repo, "apps/config/elsewhere.yaml", liveCM("no-such-namespace", "x", "y"))
		}, args: []string{"apply", "config"}, code: ExitError, stderr: []string{"configmap/x", "no-such-namespace", "nothing was pruned"}},
		{name: "dependant of a failed app", setup: func(t *testing.T, repo string) {
			write(t, repo, "apps/config/elsewhere.yaml", liveCM("no-such-namespace", "x", "y"))
		}, args: []string{"apply", "."}, code: ExitError, stderr: []string{"app web not applied: it depends on app config, which failed"}},
		{name: "empty render with prune", setup: func(t *testing.T, repo string) {
			write(t, repo, "apps/config/settings.yaml", "")
			write(t, repo, "apps/config/extra.yaml", "")
		}, args: []string{"apply", "config"}, code: ExitError, stderr: []string{"--prune-allow-empty"}},
		{name: "wait timeout", args: []string{"apply", "web", "--wait", "--timeout", "1s"}, code: ExitError,
			stderr: []string{"timed out after 1s", "deployment.apps/web", "never been applied"}},
		{name: "prune a path without a name", args: []string{"apply", "apps/config/settings.yaml", "--prune"}, code: ExitError, stderr: []string{"pruning needs an inventory", "--name"}},
		{name: "bad flag", args: []string{"apply", "config", "--name", "Not_A_Label"}, code: ExitError, stderr: []string{"DNS label"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			appNS := fmt.Sprintf("%s-%d", ns, i)
			if _, err := env.Clientset.CoreV1().Namespaces().Create(context.Background(),
				&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: appNS}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = env.Clientset.CoreV1().Namespaces().Delete(context.Background(), appNS, metav1.DeleteOptions{})
			})
			repo := applyRepo(t, appNS)
			if tt.setup != nil {
				// Apply once first, so prune has an inventory to protect.
				if code, _, errOut := onCluster(t, repo, "apply", "config"); code != ExitOK {
					t.Fatalf("first apply: %s", errOut)
				}
				tt.setup(t, repo)
			}
			code, out, errOut := onCluster(t, repo, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out, errOut)
			}
			for _, s := range tt.stderr {
				if !strings.Contains(errOut, s) {
					t.Errorf("stderr lacks %q:\n%s", s, errOut)
				}
			}
		})
	}
}

// TestApplyWavesKeepTheOutputInOrder: apps that depend on none of each
// other are applied at once, yet each app's lines come together, in
// dependency order (then gitops.yaml's); an app that fails holds back only
// the apps that depend on it.
func TestApplyWavesKeepTheOutputInOrder(t *testing.T) {
	ns := env.Namespace(t)
	repo := t.TempDir()
	gitops := "apiVersion: gitops.kubectl.dev/v1alpha1\nkind: Repository\napps:\n"
	var want []string
	for i := range 8 {
		name := fmt.Sprintf("app-%d", i)
		gitops += fmt.Sprintf("  - {name: %s, path: apps/%s, namespace: %s}\n", name, name, ns)
		for j := range 3 {
			write(t, repo, fmt.Sprintf("apps/%s/cm-%d.yaml", name, j), liveCM("", fmt.Sprintf("%s-%d", name, j), "v1"))
		}
		want = append(want, "app "+name+":")
	}
	// bad fails (a Deployment without a selector); late depends on it,
	// after on app-0.
	gitops += fmt.Sprintf("  - {name: bad, path: apps/bad, namespace: %[1]s}\n  - {name: late, path: apps/late, namespace: %[1]s, dependsOn: [bad]}\n  - {name: after, path: apps/after, namespace: %[1]s, dependsOn: [app-0]}\n", ns)
	write(t, repo, "apps/bad/deploy.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: bad}\nspec:\n  template:\n    metadata: {labels: {app: bad}}\n    spec: {containers: [{name: c, image: example.invalid/c}]}\n")
	write(t, repo, "apps/late/cm.yaml", liveCM("", "late", "v1"))
	write(t, repo, "apps/after/cm.yaml", liveCM("", "after", "v1"))
	write(t, repo, "gitops.yaml", gitops)

	code, out, errOut := onCluster(t, repo, "apply", ".")
	if code != ExitError {
		t.Fatalf("apply .: exit %d, want %d (bad fails)\nstdout: %s\nstderr: %s", code, ExitError, out, errOut)
	}
	var apps []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && f[0] == "app" {
			apps = append(apps, "app "+f[1])
		}
	}
	if diff := cmp.Diff(append(want, "app bad:", "app after:"), apps); diff != "" {
		t.Errorf("summaries (-want +got):\n%s\nstdout:\n%s", diff, out)
	}
	// Each app's object lines come together on stderr, in the same order.
	var seen []string
	for _, line := range strings.Split(errOut, "\n") {
		rest, ok := strings.CutPrefix(line, "configmap/")
		if !ok {
			continue
		}
		app := strings.Fields(rest)[0]
		if strings.HasPrefix(app, "app-") {
			app = app[:strings.LastIndex(app, "-")]
		}
		if len(seen) == 0 || seen[len(seen)-1] != app {
			seen = append(seen, app)
		}
	}
	var wantSeen []string
	for i := range 8 {
		wantSeen = append(wantSeen, fmt.Sprintf("app-%d", i))
	}
	if diff := cmp.Diff(append(wantSeen, "after"), seen); diff != "" {
		t.Errorf("object lines by app (-want +got):\n%s\nstderr:\n%s", diff, errOut)
	}
	if !strings.Contains(errOut, "error: app late not applied: it depends on app bad, which failed") || !strings.Contains(errOut, "error: app bad:") {
		t.Errorf("stderr should name bad's failure and late held back:\n%s", errOut)
	}
	if _, err := env.Clientset.CoreV1().ConfigMaps(ns).Get(t.Context(), "late", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("late was applied: %v", err)
	}
	if _, err := env.Clientset.CoreV1().ConfigMaps(ns).Get(t.Context(), "after", metav1.GetOptions{}); err != nil {
		t.Errorf("after was not applied: %v", err)
	}
}
