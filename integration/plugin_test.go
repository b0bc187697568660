// Package integration runs the built kubectl-gitops binary the way a user
// does: as a kubectl plugin found on PATH.
package integration

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/testenv"
)

// binDir holds the freshly built kubectl-gitops and gitops-bot; env is the
// real control plane.
var (
	binDir string
	env    *testenv.Env
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kubectl-gitops-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, name := range []string{"kubectl-gitops", "gitops-bot"} {
		build := exec.Command("go", "build", "-o", filepath.Join(dir, name), "../cmd/"+name)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n", name, err)
			os.Exit(1)
		}
	}
	binDir = dir
	code := testenv.Run(m, &env)
	os.RemoveAll(dir)
	os.Exit(code)
}

// kubectl runs `kubectl args…` with the plugin on PATH and returns the exit
// code and both streams.
func kubectl(t *testing.T, dir string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(testenv.Tool(t, "kubectl"), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"), "KUBECONFIG=/dev/null")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String(), errOut.String()
	case errors.As(err, &exit):
		return exit.ExitCode(), out.String(), errOut.String()
	default:
		t.Fatalf("running kubectl: %v", err)
		return 0, "", ""
	}
}

func TestPluginOnPath(t *testing.T) {
	code, out, errOut := kubectl(t, ".", "gitops", "version")
	if code != 0 || !strings.HasPrefix(out, "kubectl-gitops ") {
		t.Fatalf("kubectl gitops version: exit %d, %q %q", code, out, errOut)
	}
	code, out, _ = kubectl(t, ".", "plugin", "list")
	if code != 0 || !strings.Contains(out, filepath.Join(binDir, "kubectl-gitops")) {
		t.Errorf("kubectl plugin list does not show the plugin: %q", out)
	}
	code, out, _ = kubectl(t, ".", "gitops", "--help")
	if code != 0 || !strings.Contains(out, "kubectl gitops render") {
		t.Errorf("help should read like kubectl (kubectl gitops …): %q", out)
	}
}

func TestPluginDiffExamples(t *testing.T) {
	shop := "../testdata/examples/shop"
	code, out, errOut := kubectl(t, shop, "gitops", "diff", "apps/web/overlays/staging", "apps/web/overlays/prod")
	if code != 1 {
		t.Fatalf("diff staging prod: exit %d, want 1\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "replicas: 3") || !strings.Contains(out, "1.5.0-rc.1") {
		t.Errorf("diff should show replicas and image changes:\n%s", out)
	}
	code, _, errOut = kubectl(t, shop, "gitops", "diff", "apps/web/overlays/prod", "apps/web/overlays/prod")
	if code != 0 {
		t.Errorf("diff of a tree with itself: exit %d, want 0: %s", code, errOut)
	}
}
