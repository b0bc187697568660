package plugin

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-gitops/kubectl-gitops/internal/diff"
	"github.com/kubectl-gitops/kubectl-gitops/internal/report"
)

// DiffOptions compares what two paths or apps render to.
type DiffOptions struct {
	*Flags
	genericiooptions.IOStreams

	Output            string
	Color             string
	ShowSecrets       bool
	ShowManagedFields bool

	format report.Format
	color  bool
	before string
	after  string
}

// NewCmdDiff builds `kubectl gitops diff A B`.
func NewCmdDiff(flags *Flags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &DiffOptions{Flags: flags, IOStreams: streams}
	cmd := &cobra.Command{
		Use:   "diff A B",
		Short: "Show what changes between two files, folders or apps",
		Long: `Render A and B (files, folders of plain YAML, Kustomize overlays, Helm charts
or apps of gitops.yaml) and compare them object by object, matched by group,
kind, namespace and name. Secret values are masked.

Exit status: 0 no differences, 1 differences, 2 or more an error.`,
		Example: `  kubectl gitops diff ./overlays/staging ./overlays/prod
  kubectl gitops diff old.yaml new.yaml -o markdown`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Complete(args); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", "text", "output format: text, markdown or json")
	cmd.Flags().StringVar(&o.Color, "color", "auto", "colour the text output: auto, always or never")
	cmd.Flags().BoolVar(&o.ShowSecrets, "show-secrets", false, "print Secret values instead of masking them (local use only)")
	cmd.Flags().BoolVar(&o.ShowManagedFields, "show-managed-fields", false, "include metadata.managedFields in the diff")
	return cmd
}

// Complete takes the arguments and decides on colour.
func (o *DiffOptions) Complete(args []string) error {
	o.before, o.after = args[0], args[1]
	format, err := report.ParseFormat(o.Output)
	if err != nil {
		return err
	}
	o.format = format
	switch o.Color {
	case "always":
		o.color = true
	case "auto":
		f, ok := o.Out.(*os.File)
		o.color = ok && term.IsTerminal(int(f.Fd())) && os.Getenv("NO_COLOR") == ""
	}
	return nil
}

// Validate checks the flags.
func (o *DiffOptions) Validate() error {
	switch o.Color {
	case "auto", "always", "never":
		return nil
	}
	return fmt.Errorf("unknown --color %q: use auto, always or never", o.Color)
}

// Run renders both sides, diffs and reports. Changes end the command with
// ExitChanges.
func (o *DiffOptions) Run(ctx context.Context) error {
	before, err := o.renderSide(ctx, o.before)
	if err != nil {
		return err
	}
	after, err := o.renderSide(ctx, o.after)
	if err != nil {
		return err
	}
	cs, err := diff.Objects(before, after, diff.Options{
		ShowSecrets:       o.ShowSecrets,
		ShowManagedFields: o.ShowManagedFields,
	})
	if err != nil {
		return err
	}
	if err := report.Write(o.Out, cs, report.Options{Format: o.format, Color: o.color}); err != nil {
		return err
	}
	if cs.HasChanges() {
		return &ExitCodeError{Code: ExitChanges}
	}
	return nil
}

// renderSide renders one side of the diff, printing its warnings.
func (o *DiffOptions) renderSide(ctx context.Context, arg string) ([]*unstructured.Unstructured, error) {
	t, err := o.resolveTarget(arg)
	if err != nil {
		return nil, err
	}
	res, err := o.render(ctx, t)
	if err != nil {
		return nil, fmt.Errorf("rendering %s: %w", arg, err)
	}
	printWarnings(o.ErrOut, res)
	return res.Objects, nil
}
