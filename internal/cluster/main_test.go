package cluster

import (
	"os"
	"testing"

	"helm.sh/helm/v4/pkg/kube"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/rest"

	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/testenv"
)

// env is the package's real control plane; each test takes a fresh
// namespace with env.Namespace(t).
var env *testenv.Env

func TestMain(m *testing.M) {
	// As cmd/kubectl-gitops does: Helm applies under its own manager.
	kube.ManagedFieldsManager = HelmFieldManager
	os.Exit(testenv.Run(m, &env))
}

// newClient returns a Client for the test control plane, with its own
// discovery cache so tests do not share one.
func newClient(t *testing.T, opts Options) *Client {
	t.Helper()
	return newClientWrapped(t, opts, nil)
}

// newClientWrapped is newClient with wrap (if not nil) applied to the REST
// configuration, as kubectl's --flags would let a program do.
func newClientWrapped(t *testing.T, opts Options, wrap func(*rest.Config) *rest.Config) *Client {
	t.Helper()
	env.Require(t)
	flags := genericclioptions.NewConfigFlags(true)
	kubeconfig := env.Kubeconfig
	cacheDir := t.TempDir()
	flags.KubeConfig = &kubeconfig
	flags.CacheDir = &cacheDir
	flags.WrapConfigFn = wrap
	c, err := New(flags, opts)
	if err != nil {
		t.Fatalf("cluster.New: %v", err)
	}
	return c
}
