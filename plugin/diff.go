package plugin

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-gitops/kubectl-gitops/internal/cluster"
	"github.com/kubectl-gitops/kubectl-gitops/internal/diff"
	"github.com/kubectl-gitops/kubectl-gitops/internal/engine"
	"github.com/kubectl-gitops/kubectl-gitops/internal/report"
)

// DiffOptions previews what applying a path or app would change in the
// cluster (one argument), or compares what two paths or apps render to (two).
type DiffOptions struct {
	*Flags
	genericiooptions.IOStreams

	Output            string
	Color             string
	ShowSecrets       bool
	ShowManagedFields bool
	pruneFlags
	Name string

	format report.Format
	color  bool
	before string
	after  string // empty for a live diff
}

// NewCmdDiff builds `kubectl gitops diff PATH|APP` and `kubectl gitops diff A B`.
func NewCmdDiff(flags *Flags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &DiffOptions{Flags: flags, IOStreams: streams}
	cmd := &cobra.Command{
		Use:   "diff (PATH|APP | A B)",
		Short: "Show what applying a path or app would change in the cluster, or what changes between two",
		Long: `With one argument, render PATH or APP and preview what applying it would change
in the cluster: each object is server-side applied as a dry run (nothing is
persisted) and compared with the live object; with pruning on (--prune or the
app's prune: true) the objects of the app's inventory that are no longer
rendered show as deleted. Objects that exist but
are not managed by kubectl-gitops show only that ownership would be taken, never
their content. Field-manager conflicts are reported as errors, not forced.

With two arguments, render A and B (files, folders of plain YAML, Kustomize
overlays, Helm charts or apps of gitops.yaml) and compare them offline, object
by object, matched by group, kind, namespace and name.

Secret values are masked in every output.

Exit status: 0 no differences, 1 differences, 2 or more an error (an object
that could not be compared is an error even when others changed).`,
		Example: `  kubectl gitops diff ./overlays/prod --context prod
  kubectl gitops diff podinfo -o markdown
  kubectl gitops diff ./overlays/staging ./overlays/prod`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.pruneFlags.complete(cmd)
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
	cmd.Flags().BoolVar(&o.Prune, "prune", false, "live diff: show the inventory's objects that left the set as deleted, as apply --prune would (default: the app's prune setting)")
	cmd.Flags().BoolVar(&o.PruneConfirm, "prune-confirm", false, "live diff: preview the pruning of Namespaces, CRDs and PersistentVolumes as apply --prune-confirm would")
	cmd.Flags().StringVar(&o.Name, "name", "", "live diff: inventory name for a path that is no app of gitops.yaml, as given to apply --name")
	return cmd
}

// Complete takes the arguments and decides on colour.
func (o *DiffOptions) Complete(args []string) error {
	o.before = args[0]
	if len(args) == 2 {
		o.after = args[1]
	}
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
	if o.after != "" && (o.pruneGiven || o.PruneConfirm) {
		return errors.New("--prune and --prune-confirm preview apply against the cluster: give one path or app, not two")
	}
	switch o.Color {
	case "auto", "always", "never":
		return nil
	}
	return fmt.Errorf("unknown --color %q: use auto, always or never", o.Color)
}

// Run diffs and reports. Changes end the command with ExitChanges.
func (o *DiffOptions) Run(ctx context.Context) error {
	if o.after == "" {
		return o.runLive(ctx)
	}
	before, err := o.renderSide(ctx, o.before)
	if err != nil {
		return err
	}
	after, err := o.renderSide(ctx, o.after)
	if err != nil {
		return err
	}
	cs, err := diff.Objects(before, after, o.diffOptions())
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

func (o *DiffOptions) diffOptions() diff.Options {
	return diff.Options{ShowSecrets: o.ShowSecrets, ShowManagedFields: o.ShowManagedFields}
}

// runLive renders the target, dry-runs it against the cluster and reports.
// Objects that could not be compared are listed on stderr after the report
// of the others, and make the exit status ExitError.
func (o *DiffOptions) runLive(ctx context.Context) error {
	t, err := o.resolveTarget(o.before)
	if err != nil {
		return err
	}
	targets := t.targets()
	// An app's cluster is a kubeconfig context; --context wins.
	if err := o.useAppContext(targets); err != nil {
		return err
	}
	e, err := o.engine(t)
	if err != nil {
		return err
	}
	rendered := e.Render(ctx, o.units(targets, o.Name))
	for i := range rendered {
		if err := e.Prepare(ctx, &rendered[i]); err != nil {
			return fmt.Errorf("rendering %s: %w", targets[i].name(), err)
		}
		if !rendered[i].IsHelm() {
			printWarnings(o.ErrOut, rendered[i].Result)
		}
	}
	if e.Cluster, err = cluster.New(o.Kube, cluster.Options{}); err != nil {
		return err
	}
	opts := engine.PlanOptions{Diff: o.diffOptions(), Prune: o.pruneOverride(), PruneConfirm: o.PruneConfirm}
	cs := &diff.ChangeSet{}
	var errs []error
	for i := range rendered {
		part, err := e.Plan(ctx, &rendered[i], opts)
		var unreachable *cluster.UnreachableError
		if errors.As(err, &unreachable) {
			return unreachable
		}
		if part != nil {
			cs.Changes = append(cs.Changes, part.Changes...)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(rendered) > 1 {
		slices.SortStableFunc(cs.Changes, func(a, b diff.Change) int {
			return cmp.Or(cmp.Compare(a.Ref.Group, b.Ref.Group), cmp.Compare(a.Ref.Kind, b.Ref.Kind),
				cmp.Compare(a.Ref.Namespace, b.Ref.Namespace), cmp.Compare(a.Ref.Name, b.Ref.Name))
		})
	}
	if err := report.Write(o.Out, cs, report.Options{Format: o.format, Color: o.color}); err != nil {
		return err
	}
	if len(errs) > 0 {
		lines := flatten(errors.Join(errs...))
		fmt.Fprintf(o.ErrOut, "error: the diff is incomplete (%d problems); the report above leaves these out:\n", len(lines))
		for _, e := range lines {
			fmt.Fprintf(o.ErrOut, "  %s\n", errorText(e, "    "))
		}
		return &ExitCodeError{Code: ExitError}
	}
	if cs.HasChanges() {
		return &ExitCodeError{Code: ExitChanges}
	}
	return nil
}

// flatten lists the leaves of joined errors.
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}
