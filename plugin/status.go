package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-gitops/kubectl-gitops/internal/cluster"
	"github.com/kubectl-gitops/kubectl-gitops/internal/config"
	"github.com/kubectl-gitops/kubectl-gitops/internal/engine"
)

// StatusOptions report, per app, what was applied last and whether the
// cluster still matches the tree.
type StatusOptions struct {
	*Flags
	genericiooptions.IOStreams

	Output       string
	BotNamespace string
	arg          string
	now          func() time.Time
}

// NewCmdStatus builds `kubectl gitops status [APP]`.
func NewCmdStatus(flags *Flags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &StatusOptions{Flags: flags, IOStreams: streams, BotNamespace: DefaultBotNamespace, now: time.Now}
	cmd := &cobra.Command{
		Use:   "status [APP]",
		Short: "Show each app's last applied revision, sync state and health",
		Long: `For each app of gitops.yaml (or the one named): the revision and time it was
last applied (its inventory, or its Helm release), whether the cluster still
matches the tree (a server-side dry-run: in sync, or drifted with object
counts), the health of its objects (kstatus), and whether it is suspended.`,
		Example: `  kubectl gitops status
  kubectl gitops status web -o json`,
		Args: cobra.MaximumNArgs(1),
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
	cmd.Flags().StringVarP(&o.Output, "output", "o", "text", "output format: text or json")
	cmd.Flags().StringVar(&o.BotNamespace, "bot-namespace", o.BotNamespace, "the namespace gitops-bot runs in, for its image automation switch")
	return cmd
}

// Complete takes the app, or the repository holding the current folder.
func (o *StatusOptions) Complete(args []string) error {
	if len(args) == 1 {
		o.arg = args[0]
		return nil
	}
	repo, cwd, err := o.repositoryHere()
	if err != nil {
		return err
	}
	if repo == nil {
		return fmt.Errorf("no %s found above %s: status reports the apps of a repository; run it inside one, or pass --config", config.FileName, cwd)
	}
	o.arg = repo.Dir
	return nil
}

// Validate checks the flags.
func (o *StatusOptions) Validate() error {
	if o.Output != "text" && o.Output != "json" {
		return fmt.Errorf("unknown output format %q: use text or json", o.Output)
	}
	return nil
}

// Run reports every app of the target.
func (o *StatusOptions) Run(ctx context.Context) error {
	t, err := o.resolveTarget(o.arg)
	if err != nil {
		return err
	}
	if t.app == nil && !t.all {
		return fmt.Errorf("%s is not an app of %s: status reports apps", o.arg, config.FileName)
	}
	targets := t.targets()
	if err := o.useAppContext(targets); err != nil {
		return err
	}
	e, err := o.engine(t)
	if err != nil {
		return err
	}
	if e.Cluster, err = cluster.New(o.Kube, cluster.Options{}); err != nil {
		return err
	}
	rendered := e.Render(ctx, o.units(targets, ""))
	rows := make([]engine.Status, 0, len(targets))
	for i := range rendered {
		row, err := e.Status(ctx, &rendered[i])
		var unreachable *cluster.UnreachableError
		if errors.As(err, &unreachable) {
			return unreachable
		}
		if err != nil {
			row.Sync, row.Error = engine.Unknown, err.Error()
		}
		rows = append(rows, row)
	}
	if o.Output == "json" {
		enc := json.NewEncoder(o.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	if err := o.printTable(rows); err != nil {
		return err
	}
	if t.repo != nil && len(t.repo.Images) > 0 {
		client, err := o.kubeClient()
		if err == nil {
			err = printImageSuspensions(ctx, o.Out, client, o.BotNamespace, t.repo)
		}
		if err != nil {
			fmt.Fprintf(o.ErrOut, "warning: image automation switch in namespace %s: %v\n", o.BotNamespace, err)
		}
	}
	return nil
}

func (o *StatusOptions) printTable(rows []engine.Status) error {
	w := tabwriter.NewWriter(o.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "APP\tNAMESPACE\tREVISION\tAPPLIED\tSYNC\tHEALTH\tSUSPENDED")
	for _, r := range rows {
		revision, applied := "-", "-"
		if r.Applied {
			revision = engine.ShortRevision(r.Revision)
			if revision == "" {
				revision = "unknown"
			}
			if !r.AppliedAt.IsZero() {
				applied = r.AppliedAt.UTC().Format(time.RFC3339) + " (" + ago(o.now().Sub(r.AppliedAt)) + ")"
			}
		}
		sync := r.Sync
		if r.Sync == "Drifted" {
			sync = fmt.Sprintf("Drifted (%d to create, %d to change, %d to delete)", r.Drift.Created, r.Drift.Configured, r.Drift.Deleted)
		}
		health := r.Health
		if r.Objects > 0 {
			health = fmt.Sprintf("%s (%d objects)", r.Health, r.Objects)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%v\n", r.App, r.Namespace, revision, applied, sync, health, r.Suspended)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	for _, r := range rows {
		if r.PullRequest != "" {
			fmt.Fprintf(o.Out, "%s: synced from %s, approved by %s, plan %s\n", r.App, r.PullRequest, approvers(r.ApprovedBy), shortPlan(r.PlanHash))
		}
	}
	for _, r := range rows {
		for _, u := range r.Unhealthy {
			fmt.Fprintf(o.ErrOut, "%s: not ready: %s\n", r.App, u)
		}
		if r.Error != "" {
			fmt.Fprintf(o.ErrOut, "%s: %s\n", r.App, strings.ReplaceAll(r.Error, "\n", "\n  "))
		}
	}
	return nil
}

// approvers lists who approved, "nobody" when the policy needed no one.
func approvers(users []string) string {
	if len(users) == 0 {
		return "nobody (no approval needed)"
	}
	return "@" + strings.Join(users, ", @")
}

// shortPlan shortens a plan hash for reading, as Git shortens commits.
func shortPlan(h string) string {
	_, hex, ok := strings.Cut(h, ":")
	if !ok {
		hex = h
	}
	if len(hex) > 12 {
		hex = hex[:12]
	}
	return hex
}

// ago says how long ago d was, coarsely.
func ago(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}
