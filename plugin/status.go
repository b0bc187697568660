package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-gitops/kubectl-gitops/internal/cluster"
	"github.com/kubectl-gitops/kubectl-gitops/internal/config"
	"github.com/kubectl-gitops/kubectl-gitops/internal/diff"
)

// StatusOptions report, per app, what was applied last and whether the
// cluster still matches the tree.
type StatusOptions struct {
	*Flags
	genericiooptions.IOStreams

	Output string
	arg    string
	now    func() time.Time
}

// NewCmdStatus builds `kubectl gitops status [APP]`.
func NewCmdStatus(flags *Flags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &StatusOptions{Flags: flags, IOStreams: streams, now: time.Now}
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
	return cmd
}

// Complete takes the app, or the repository holding the current folder.
func (o *StatusOptions) Complete(args []string) error {
	if len(args) == 1 {
		o.arg = args[0]
		return nil
	}
	cwd, err := os.Getwd()
	if err != nil {
		return err
	}
	repo, err := o.loadRepository(cwd)
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

// appStatus is one row of the report.
type appStatus struct {
	App       string    `json:"app"`
	Namespace string    `json:"namespace"`
	Kind      string    `json:"kind"` // "inventory" or "helm"
	Applied   bool      `json:"applied"`
	Revision  string    `json:"revision,omitempty"`
	AppliedAt time.Time `json:"appliedAt,omitzero"`
	// Sync is InSync, Drifted or Unknown (when the tree could not be
	// rendered or dry-run).
	Sync      string       `json:"sync"`
	Drift     diff.Summary `json:"drift"`
	Health    string       `json:"health"`
	Objects   int          `json:"objects"`
	Unhealthy []string     `json:"unhealthy,omitempty"`
	Suspended bool         `json:"suspended"`
	Error     string       `json:"error,omitempty"`
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
	client, err := cluster.New(o.Kube, cluster.Options{})
	if err != nil {
		return err
	}
	rows := make([]appStatus, 0, len(targets))
	for _, one := range targets {
		row, err := o.status(ctx, client, one)
		var unreachable *cluster.UnreachableError
		if errors.As(err, &unreachable) {
			return unreachable
		}
		if err != nil {
			row.Sync, row.Error = "Unknown", err.Error()
		}
		rows = append(rows, row)
	}
	if o.Output == "json" {
		enc := json.NewEncoder(o.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	return o.printTable(rows)
}

// status reads one app's state: its Helm release, or its inventory.
func (o *StatusOptions) status(ctx context.Context, client *cluster.Client, t *target) (appStatus, error) {
	row := appStatus{App: t.app.Name, Namespace: o.namespace(t.app), Suspended: t.app.Suspend, Kind: "inventory", Sync: "Unknown", Health: "Unknown"}
	if isHelmApp(t.app) {
		row.Kind = "helm"
		return o.helmStatus(ctx, client, t, row)
	}
	res, err := o.render(ctx, t)
	if err != nil {
		return row, fmt.Errorf("rendering: %w", err)
	}
	st, err := client.Status(ctx, res.Objects, o.inventoryRef(t.app, ""))
	if err != nil {
		return row, err
	}
	row.Applied, row.Revision, row.AppliedAt = st.Applied, st.Revision, st.AppliedAt
	row.Drift, row.Objects = st.Drift, st.Objects
	row.Sync = syncState(st.InSync, st.DriftErr)
	if st.DriftErr != nil {
		row.Error = st.DriftErr.Error()
	}
	switch {
	case !st.Applied:
		row.Health = "NotApplied"
	case st.Healthy():
		row.Health = "Healthy"
	default:
		row.Health = "Progressing"
		for _, u := range st.Unhealthy {
			row.Unhealthy = append(row.Unhealthy, u.String())
			if u.Status == "Failed" {
				row.Health = "Degraded"
			}
		}
	}
	return row, nil
}

// helmStatus reads a Helm app's release and dry-runs its upgrade.
func (o *StatusOptions) helmStatus(ctx context.Context, client *cluster.Client, t *target, row appStatus) (appStatus, error) {
	rel, err := o.helmRelease(ctx, t, t.app)
	if err != nil {
		return row, fmt.Errorf("rendering: %w", err)
	}
	row.Namespace = rel.Namespace
	res, err := client.HelmStatus(ctx, rel.Name, rel.Namespace)
	switch {
	case errors.Is(err, cluster.ErrNoHelmRelease):
		row.Health = "NotApplied"
	case err != nil:
		return row, err
	default:
		row.Applied, row.Revision, row.AppliedAt = true, fmt.Sprintf("helm revision %d", res.Revision), res.Updated
		row.Health = "Healthy"
		if res.Status != "deployed" {
			row.Health = "Degraded"
			row.Unhealthy = []string{fmt.Sprintf("release %s/%s is %s", res.Namespace, res.Name, res.Status)}
		}
	}
	cs, err := helmDiff(ctx, client, rel, diff.Options{})
	if err != nil {
		return row, err
	}
	row.Drift = cs.Summary()
	row.Sync = syncState(!cs.HasChanges(), nil)
	return row, nil
}

func syncState(inSync bool, err error) string {
	switch {
	case err != nil:
		return "Unknown"
	case inSync:
		return "InSync"
	}
	return "Drifted"
}

func (o *StatusOptions) printTable(rows []appStatus) error {
	w := tabwriter.NewWriter(o.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "APP\tNAMESPACE\tREVISION\tAPPLIED\tSYNC\tHEALTH\tSUSPENDED")
	for _, r := range rows {
		revision, applied := "-", "-"
		if r.Applied {
			revision = shortRevision(r.Revision)
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
		for _, u := range r.Unhealthy {
			fmt.Fprintf(o.ErrOut, "%s: not ready: %s\n", r.App, u)
		}
		if r.Error != "" {
			fmt.Fprintf(o.ErrOut, "%s: %s\n", r.App, strings.ReplaceAll(r.Error, "\n", "\n  "))
		}
	}
	return nil
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
