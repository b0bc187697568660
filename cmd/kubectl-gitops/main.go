// Command kubectl-gitops is the `kubectl gitops` plugin: render, diff and
// apply the manifests of a Git tree.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"helm.sh/helm/v4/pkg/kube"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-gitops/kubectl-gitops/internal/cluster"
	"github.com/kubectl-gitops/kubectl-gitops/internal/sandbox"
	"github.com/kubectl-gitops/kubectl-gitops/plugin"
)

func main() {
	// The render sandbox is this program, re-executed.
	if len(os.Args) > 1 && os.Args[1] == sandbox.Command {
		os.Exit(sandbox.Main())
	}
	// Helm's SDK applies as the program's name unless told otherwise, which
	// here is kubectl-gitops: the manager of our own server-side applies.
	// Sharing it would let a Helm release overwrite what an app applied.
	kube.ManagedFieldsManager = cluster.HelmFieldManager
	// The first Ctrl-C or SIGTERM cancels the work (and kills any render
	// process); a second one exits at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		again, _ := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		stop()
		fmt.Fprintln(os.Stderr, "Stopping; interrupt again to exit at once.")
		<-again.Done()
		fmt.Fprintln(os.Stderr, "Exiting at once.")
		os.Exit(130)
	}()
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	os.Exit(plugin.Execute(ctx, streams, os.Args[1:]))
}
