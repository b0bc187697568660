package bot

import (
	"os"
	"testing"

	"github.com/kubectl-gitops/kubectl-gitops/internal/testenv"
)

// env is the package's real control plane; each test takes a fresh
// namespace with env.Namespace(t).
var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Run(m, &env)) }
