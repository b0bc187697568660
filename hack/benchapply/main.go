// Command benchapply runs a test control plane (kube-apiserver and etcd from
// hack/test-assets.sh, started by envtest) for hack/bench-apply.sh: it writes
// a kubeconfig for an admin user and serves on loopback until it is killed.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/testenv"
)

func main() {
	kubeconfig := flag.String("out", "", "where to write the kubeconfig (required)")
	flag.Parse()
	if err := run(*kubeconfig); err != nil {
		fmt.Fprintln(os.Stderr, "benchapply:", err)
		os.Exit(1)
	}
}

func run(kubeconfig string) error {
	if kubeconfig == "" {
		return fmt.Errorf("-out (the kubeconfig to write) is required")
	}
	dir := testenv.AssetsDir()
	if dir == "" {
		return fmt.Errorf("kube-apiserver and etcd not found: run hack/test-assets.sh and set KUBEBUILDER_ASSETS")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	te := &envtest.Environment{
		BinaryAssetsDirectory:    dir,
		ControlPlaneStartTimeout: 60 * time.Second,
		ControlPlaneStopTimeout:  30 * time.Second,
	}
	if _, err := te.Start(); err != nil {
		return fmt.Errorf("starting the control plane: %w", err)
	}
	defer te.Stop() //nolint:errcheck // best effort on the way out
	user, err := te.ControlPlane.AddUser(envtest.User{Name: "bench-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return err
	}
	data, err := user.KubeConfig()
	if err != nil {
		return err
	}
	// Written last and renamed into place: its presence means ready.
	if err := os.WriteFile(kubeconfig+".tmp", data, 0o600); err != nil {
		return err
	}
	if err := os.Rename(kubeconfig+".tmp", kubeconfig); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "benchapply: serving at", te.Config.Host)
	<-ctx.Done()
	return nil
}
