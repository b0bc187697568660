// Package testenv starts the real test control plane (kube-apiserver and etcd,
// built by hack/test-assets.sh) once per test package, and hands each test a
// fresh namespace on it.
//
//	var env *testenv.Env
//
//	func TestMain(m *testing.M) { os.Exit(testenv.Run(m, &env)) }
//
//	func TestApply(t *testing.T) {
//		ns := env.Namespace(t)
//		…
//	}
//
// When the binaries are missing, tests that need them skip on a developer
// machine and fail when CI=true: CI must never pass without the control plane.
package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Versions built by hack/test-assets.sh; keep the two in step.
const (
	KubernetesVersion = "1.37.2"
	EtcdVersion       = "3.6.16"
)

// Env is a running control plane.
type Env struct {
	Config    *rest.Config
	Clientset kubernetes.Interface
	Dynamic   dynamic.Interface
	// Kubeconfig is a kubeconfig file for the control plane, for commands
	// under test that take --kubeconfig.
	Kubeconfig string

	env *envtest.Environment
}

// AssetsDir finds the control-plane binaries: KUBEBUILDER_ASSETS, else the
// cache folder hack/test-assets.sh builds into. It returns "" when neither
// holds kube-apiserver and etcd.
func AssetsDir() string {
	var candidates []string
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		candidates = append(candidates, dir)
	}
	cache := os.Getenv("KUBECTL_GITOPS_CACHE")
	if cache == "" {
		if dir, err := os.UserCacheDir(); err == nil {
			cache = filepath.Join(dir, "kubectl-gitops")
		}
	}
	if cache != "" {
		candidates = append(candidates, filepath.Join(cache, "assets", "k8s-"+KubernetesVersion+"-etcd-"+EtcdVersion))
	}
	for _, dir := range candidates {
		if isExecutable(filepath.Join(dir, "kube-apiserver")) && isExecutable(filepath.Join(dir, "etcd")) {
			return dir
		}
	}
	return ""
}

// Tool finds a peer tool (kubectl, helm) built by hack/test-assets.sh next to
// the control plane, else on PATH. When it is missing the test skips, or
// fails when CI=true.
func Tool(t testing.TB, name string) string {
	t.Helper()
	if dir := AssetsDir(); dir != "" && isExecutable(filepath.Join(dir, name)) {
		return filepath.Join(dir, name)
	}
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" && isExecutable(filepath.Join(dir, name)) {
		return filepath.Join(dir, name)
	}
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		if isExecutable(filepath.Join(dir, name)) {
			return filepath.Join(dir, name)
		}
	}
	missing(t, fmt.Sprintf("%s not found: run hack/test-assets.sh", name))
	return ""
}

// Run starts the control plane, runs the package's tests and stops it again.
// It returns the exit code for os.Exit. *env stays nil when the binaries are
// missing and CI is not set; Env.Namespace then skips the test.
func Run(m *testing.M, env **Env) int {
	if fuzzWorker() {
		// A fuzzing worker runs only a fuzz target, and go test starts
		// and restarts many of them: a control plane each would stall
		// the fuzzer.
		return m.Run()
	}
	dir := AssetsDir()
	if dir == "" {
		if inCI() {
			fmt.Fprintln(os.Stderr, "testenv: kube-apiserver and etcd not found (CI=true): run hack/test-assets.sh and set KUBEBUILDER_ASSETS")
			return 1
		}
		return m.Run()
	}
	e, err := start(dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
		return 1
	}
	*env = e
	code := m.Run()
	if err := e.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "testenv: stopping the control plane: %v\n", err)
	}
	return code
}

// Start starts a control plane outside of a test (for the demo and the
// benchmarks); Stop it when done.
func Start() (*Env, error) {
	dir := AssetsDir()
	if dir == "" {
		return nil, fmt.Errorf("kube-apiserver and etcd not found: run hack/test-assets.sh and set KUBEBUILDER_ASSETS")
	}
	return start(dir)
}

func start(dir string) (*Env, error) {
	te := &envtest.Environment{
		BinaryAssetsDirectory:    dir,
		ControlPlaneStartTimeout: 60 * time.Second,
		ControlPlaneStopTimeout:  30 * time.Second,
	}
	cfg, err := te.Start()
	if err != nil {
		return nil, fmt.Errorf("starting kube-apiserver and etcd from %s: %w", dir, err)
	}
	// Tests create many objects quickly; client-side throttling would only
	// measure itself.
	cfg.QPS, cfg.Burst = 500, 1000
	e := &Env{Config: cfg, env: te}
	if e.Clientset, err = kubernetes.NewForConfig(cfg); err != nil {
		_ = te.Stop()
		return nil, err
	}
	if e.Dynamic, err = dynamic.NewForConfig(cfg); err != nil {
		_ = te.Stop()
		return nil, err
	}
	user, err := te.ControlPlane.AddUser(envtest.User{Name: "testenv-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		_ = te.Stop()
		return nil, fmt.Errorf("creating a test user: %w", err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		_ = te.Stop()
		return nil, fmt.Errorf("writing a kubeconfig: %w", err)
	}
	f, err := os.CreateTemp("", "testenv-kubeconfig-*")
	if err != nil {
		_ = te.Stop()
		return nil, err
	}
	if _, err := f.Write(kubeconfig); err != nil {
		_ = te.Stop()
		return nil, err
	}
	f.Close()
	e.Kubeconfig = f.Name()
	return e, nil
}

// Stop stops the control plane and removes its kubeconfig.
func (e *Env) Stop() error {
	os.Remove(e.Kubeconfig)
	return e.env.Stop()
}

// Require skips (or fails when CI=true) a test when the control plane is not
// running.
func (e *Env) Require(t testing.TB) {
	t.Helper()
	if e == nil {
		missing(t, "kube-apiserver and etcd not found: run hack/test-assets.sh")
	}
}

// Namespace creates a fresh namespace for the test, deleted when it ends.
func (e *Env) Namespace(t testing.TB) string {
	t.Helper()
	e.Require(t)
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 40 {
		name = name[:40]
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: strings.TrimRight(name, "-") + "-"}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	created, err := e.Clientset.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating a test namespace: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = e.Clientset.CoreV1().Namespaces().Delete(ctx, created.Name, metav1.DeleteOptions{})
	})
	return created.Name
}

func missing(t testing.TB, msg string) {
	t.Helper()
	if inCI() {
		t.Fatalf("%s (CI=true: tests that need it must not skip)", msg)
	}
	t.Skip(msg)
}

func inCI() bool { return os.Getenv("CI") == "true" }

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// fuzzWorker reports whether this test binary is a worker process of
// `go test -fuzz`, which the coordinator starts with -test.fuzzworker.
func fuzzWorker() bool {
	for _, arg := range os.Args[1:] {
		if strings.HasPrefix(arg, "-test.fuzzworker") || strings.HasPrefix(arg, "--test.fuzzworker") {
			return true
		}
	}
	return false
}
