// Package plugin holds the cobra commands of `kubectl gitops`: one file per
// command, each an options struct with Complete, Validate and Run(ctx). There
// are no package-level commands or flags, so every test builds a fresh tree.
package plugin

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// Exit codes, like diff(1) and kubectl diff.
const (
	ExitOK      = 0
	ExitChanges = 1
	ExitError   = 2
)

// ExitCodeError ends a command with a code other than ExitError without
// printing anything more; diff uses it to say "there are changes".
type ExitCodeError struct{ Code int }

func (e *ExitCodeError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// Flags are the flags every command shares: kubectl's own (one ConfigFlags
// feeds every client) and the repository file.
type Flags struct {
	Kube       *genericclioptions.ConfigFlags
	ConfigFile string
	Root       string
	// Sandbox renders in a child process without network and with bounded
	// time, memory and output (internal/sandbox); off, renders run in this
	// process.
	Sandbox bool
}

// NewCmdGitops builds the `kubectl gitops` command tree.
func NewCmdGitops(streams genericiooptions.IOStreams) *cobra.Command {
	// kubectl's discovery limits (cmd.go in k8s.io/kubectl): a cold cache
	// fetches every group-version in one burst, then at 50 QPS rather than
	// client-go's default 5.
	flags := &Flags{Kube: genericclioptions.NewConfigFlags(true).WithDiscoveryBurst(300).WithDiscoveryQPS(50)}
	cmd := &cobra.Command{
		Use:   "kubectl-gitops",
		Short: "Render, diff and apply the manifests of a Git tree",
		Long: `kubectl gitops renders the manifests of a Git tree (plain YAML, Kustomize
overlays, Helm charts and the apps of a gitops.yaml file), diffs them and
applies them.`,
		Annotations: map[string]string{
			cobra.CommandDisplayNameAnnotation: "kubectl gitops",
		},
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	cmd.SetIn(streams.In)
	cmd.SetOut(streams.Out)
	cmd.SetErr(streams.ErrOut)
	flags.Kube.AddFlags(cmd.PersistentFlags())
	cmd.PersistentFlags().StringVar(&flags.ConfigFile, "config", "",
		"path to gitops.yaml (default: searched upward from the given path or the current folder)")
	cmd.PersistentFlags().StringVar(&flags.Root, "root", "",
		"folder that rendering may not read outside of (default: the repository holding the path)")
	cmd.PersistentFlags().BoolVar(&flags.Sandbox, "sandbox", true,
		"render in a child process with no network and bounded time, memory and output; --sandbox=false is a trusted, in-process render")

	cmd.AddCommand(
		NewCmdRender(flags, streams),
		NewCmdDiff(flags, streams),
		NewCmdApply(flags, streams),
		NewCmdStatus(flags, streams),
		NewCmdImages(flags, streams),
		NewCmdVersion(streams),
	)
	return cmd
}

// Execute runs the command tree with args and returns the process exit code.
// Errors are printed to streams.ErrOut.
func Execute(ctx context.Context, streams genericiooptions.IOStreams, args []string) int {
	cmd := NewCmdGitops(streams)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var exit *ExitCodeError
	if errors.As(err, &exit) {
		return exit.Code
	}
	fmt.Fprintf(streams.ErrOut, "error: %s\n", errorText(err, "  "))
	return ExitError
}
