package bot

import (
	"os"
	"testing"

	"github.com/kubectl-gitops/kubectl-gitops/internal/sandbox"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/testenv"
)

// env is the package's real control plane; each test takes a fresh
// namespace with env.Namespace(t).
var env *testenv.Env

func TestMain(m *testing.M) {
	// As cmd/gitops-bot does: this binary is also the render sandbox.
	if len(os.Args) > 1 && os.Args[1] == sandbox.Command {
		os.Exit(sandbox.Main())
	}
	os.Exit(testenv.Run(m, &env))
}
