package plugin

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-gitops/kubectl-gitops/internal/version"
)

// VersionOptions prints the build's identity.
type VersionOptions struct {
	genericiooptions.IOStreams
	Output string
}

// NewCmdVersion builds `kubectl gitops version`.
func NewCmdVersion(streams genericiooptions.IOStreams) *cobra.Command {
	o := &VersionOptions{IOStreams: streams}
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and build date",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", "text", "output format: text or json")
	return cmd
}

// Validate checks the flags.
func (o *VersionOptions) Validate() error {
	if o.Output != "text" && o.Output != "json" {
		return fmt.Errorf("unknown output format %q: use text or json", o.Output)
	}
	return nil
}

// Run prints the version.
func (o *VersionOptions) Run(_ context.Context) error {
	info := version.Get()
	if o.Output == "json" {
		enc := json.NewEncoder(o.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(info)
	}
	_, err := fmt.Fprintf(o.Out, "kubectl-gitops %s (commit %s, built %s, %s %s)\n",
		info.Version, info.Commit, info.BuildDate, info.GoVersion, info.Platform)
	return err
}
