package lease

import (
	"net"
	"os"
	"testing"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/testenv"
)

// env is the package's real control plane: conflicts, preconditions and
// validation are the API server's to decide, so no test uses a fake
// clientset. Each test takes a fresh namespace with env.Namespace(t).
var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Run(m, &env)) }

// newClient returns a client of its own for the control plane, as another
// replica of the bot would have. Its own Dial keeps client-go from handing
// it the cached transport of env.Clientset, so two clients race over
// separate connections.
func newClient(t *testing.T) kubernetes.Interface {
	t.Helper()
	env.Require(t)
	cfg := rest.CopyConfig(env.Config)
	cfg.Dial = (&net.Dialer{}).DialContext
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("a second client: %v", err)
	}
	return c
}
