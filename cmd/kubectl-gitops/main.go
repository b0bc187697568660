// Command kubectl-gitops is the `kubectl gitops` plugin: render, diff and
// apply the manifests of a Git tree.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"helm.sh/helm/v4/pkg/kube"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-gitops/kubectl-gitops/internal/cluster"
	"github.com/kubectl-gitops/kubectl-gitops/plugin"
)

func main() {
	// Helm's SDK applies as the program's name unless told otherwise, which
	// here is kubectl-gitops: the manager of our own server-side applies.
	// Sharing it would let a Helm release overwrite what an app applied.
	kube.ManagedFieldsManager = cluster.HelmFieldManager
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	code := plugin.Execute(ctx, streams, os.Args[1:])
	stop()
	os.Exit(code)
}
