// Command localcluster runs the test control plane (kube-apiserver and etcd
// from hack/test-assets.sh) until it is interrupted, for the demo and the
// benchmarks:
//
//	go run ./hack/localcluster -kubeconfig /tmp/kubeconfig &
//
// It writes the kubeconfig once the API server is ready and prints its path.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/testenv"
)

func main() {
	// A flag set of its own: controller-runtime registers a global
	// -kubeconfig flag of its own.
	flags := flag.NewFlagSet("localcluster", flag.ExitOnError)
	kubeconfig := flags.String("kubeconfig", "", "where to write the kubeconfig (required)")
	_ = flags.Parse(os.Args[1:])
	if *kubeconfig == "" {
		fmt.Fprintln(os.Stderr, "localcluster: -kubeconfig is required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *kubeconfig); err != nil {
		fmt.Fprintln(os.Stderr, "localcluster:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, kubeconfig string) error {
	env, err := testenv.Start()
	if err != nil {
		return err
	}
	defer env.Stop()
	data, err := os.ReadFile(env.Kubeconfig)
	if err != nil {
		return err
	}
	// Written to a temporary name and renamed, so a waiting script never
	// reads half a file.
	if err := os.WriteFile(kubeconfig+".tmp", data, 0o600); err != nil {
		return err
	}
	if err := os.Rename(kubeconfig+".tmp", kubeconfig); err != nil {
		return err
	}
	fmt.Println(kubeconfig)
	<-ctx.Done()
	return nil
}
