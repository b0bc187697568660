package plugin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-gitops/kubectl-gitops/internal/cluster"
	"github.com/kubectl-gitops/kubectl-gitops/internal/config"
	"github.com/kubectl-gitops/kubectl-gitops/internal/engine"
	"github.com/kubectl-gitops/kubectl-gitops/internal/gitrepo"
	"github.com/kubectl-gitops/kubectl-gitops/internal/report"
)

// ApplyOptions apply a path or the apps of gitops.yaml to the cluster.
type ApplyOptions struct {
	*Flags
	genericiooptions.IOStreams

	pruneFlags
	PruneAllowEmpty bool
	DryRun          bool
	ForceConflicts  bool
	Force           bool
	Wait            bool
	Timeout         time.Duration
	Revision        string
	Name            string
	Concurrency     int
	// RequireApproval applies only a commit approved on the forge: the
	// head of an open pull request, or the merge of one, approved under
	// its base's policies with the plan being applied.
	RequireApproval bool
	// Repository is the forge repository (owner/name) of the approval
	// check; empty: from the CI environment.
	Repository string

	arg      string
	approval *approvalResult
}

// NewCmdApply builds `kubectl gitops apply PATH|APP`.
func NewCmdApply(flags *Flags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &ApplyOptions{Flags: flags, IOStreams: streams}
	cmd := &cobra.Command{
		Use:   "apply PATH|APP",
		Short: "Server-side apply the rendered objects, with inventory, prune and wait",
		Long: `Render a path or an app of gitops.yaml and server-side apply it with field
manager kubectl-gitops: Namespaces and CustomResourceDefinitions first (until
they are served), then everything else. Each app keeps an ApplySet inventory,
the Secret gitops-<app> in its namespace, recording what it applied and the Git
revision; --prune (or the app's prune: true) deletes what left the set, but
only after every object applied, never for an empty render, and Namespaces,
CRDs and PersistentVolumes only with --prune-confirm. The repository's folder
applies every app in dependsOn order; the dependants of a failed app are not
applied.

Exit status: 0 applied (and healthy with --wait), 2 or more an error.`,
		Example: `  kubectl gitops apply web --prune --wait
  kubectl gitops apply . --dry-run
  kubectl gitops apply ./manifests --name demo -n demo`,
		Args: cobra.ExactArgs(1),
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
	f := cmd.Flags()
	f.BoolVar(&o.Prune, "prune", false, "delete objects of the inventory that left the set (default: the app's prune setting)")
	f.BoolVar(&o.PruneAllowEmpty, "prune-allow-empty", false, "let an empty render prune every object of the inventory")
	f.BoolVar(&o.PruneConfirm, "prune-confirm", false, "let prune delete Namespaces, CustomResourceDefinitions and PersistentVolumes")
	f.BoolVar(&o.DryRun, "dry-run", false, "server-side dry run: validate everything, persist nothing, leave the inventory alone")
	f.BoolVar(&o.ForceConflicts, "force-conflicts", false, "take over fields that other field managers own")
	f.BoolVar(&o.Force, "force", false, "delete and recreate objects whose change touches an immutable field")
	f.BoolVar(&o.Wait, "wait", false, "wait until every applied object is Current (kstatus)")
	f.DurationVar(&o.Timeout, "timeout", 0, "how long --wait waits (default: the app's wait.timeout, else 5m)")
	f.StringVar(&o.Revision, "revision", "", "revision to record on the inventory (default: the Git commit of the tree)")
	f.StringVar(&o.Name, "name", "", "inventory name for a path that is no app of gitops.yaml (without it such a path has no inventory and cannot prune)")
	f.IntVar(&o.Concurrency, "concurrency", cluster.DefaultConcurrency, "requests in flight at once")
	f.BoolVar(&o.RequireApproval, "require-approval", false, "apply only the head of an approved pull request, or its merge, with the plan its reviewers approved (reads the forge with GITHUB_TOKEN or GITLAB_TOKEN)")
	f.StringVar(&o.Repository, "repository", "", "the forge repository (owner/name) of --require-approval (default: GITHUB_REPOSITORY or CI_PROJECT_PATH)")
	return cmd
}

// Complete takes the argument.
func (o *ApplyOptions) Complete(args []string) error {
	o.arg = args[0]
	return nil
}

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// Validate checks the flags.
func (o *ApplyOptions) Validate() error {
	if o.Name != "" && (!dnsLabel.MatchString(o.Name) || len(o.Name) > 56) {
		return fmt.Errorf("--name %q must be a DNS label of at most 56 characters (lower case letters, digits and '-')", o.Name)
	}
	if o.Timeout < 0 {
		return errors.New("--timeout must not be negative")
	}
	if o.Concurrency < 1 {
		return errors.New("--concurrency must be at least 1")
	}
	return nil
}

// Run applies the target: one app or path, or every app in dependency
// order. Failures are printed as they happen; the exit status is ExitError
// when any set failed.
func (o *ApplyOptions) Run(ctx context.Context) error {
	t, err := o.resolveTarget(o.arg)
	if err != nil {
		return err
	}
	targets := []*target{t}
	if t.all {
		apps, err := config.Order(t.repo.Apps)
		if err != nil {
			return err
		}
		targets = t.split(apps)
	}
	if err := o.useAppContext(targets); err != nil {
		return err
	}
	e, err := o.engine(t)
	if err != nil {
		return err
	}
	if e.Cluster, err = cluster.New(o.Kube, cluster.Options{Concurrency: o.Concurrency}); err != nil {
		return err
	}
	rendered := e.Render(ctx, o.units(targets, o.Name))
	if o.RequireApproval {
		if o.approval, err = o.requireApproval(ctx, t, targets, rendered); err != nil {
			fmt.Fprintf(o.ErrOut, "error: %s\n", errorText(err, "  "))
			fmt.Fprintln(o.ErrOut, "nothing was applied")
			return &ExitCodeError{Code: ExitError}
		}
		fmt.Fprintf(o.ErrOut, "approved: %s by %s\n", o.approval.pr, approvers(o.approval.approvers))
	}

	// The apps of a wave depend on none of each other: they are applied
	// at once, their output printed as if one after another, in order.
	apps := make([]*config.App, len(targets))
	for i, one := range targets {
		apps[i] = one.app
	}
	out := newOrderedOutput(o.Out, o.ErrOut, len(targets))
	errs := make([]error, len(targets))
	failed := map[string]bool{}
	var problems int
	engine.EachWave(apps, func(i int) {
		defer out.done(i)
		one, job := targets[i], *o
		job.Out, job.ErrOut = out.streams(i)
		if one.app != nil {
			if dep := config.BlockedBy(*one.app, failed); dep != "" {
				errs[i] = fmt.Errorf("app %s not applied: it depends on app %s, which failed", one.app.Name, dep)
				fmt.Fprintf(job.ErrOut, "error: %s\n", errs[i])
				return
			}
		}
		if errs[i] = job.applyOne(ctx, e, one, &rendered[i], t.all); errs[i] != nil {
			fmt.Fprintf(job.ErrOut, "error: %s: %s\n", report.EscapeText(one.name()), errorText(errs[i], "  "))
		}
	}, func(wave []int) bool {
		for _, i := range wave {
			if errs[i] == nil {
				continue
			}
			if one := targets[i]; one.app != nil {
				failed[one.app.Name] = true
			}
			problems++
		}
		return ctx.Err() == nil
	})
	out.finish()
	if problems > 0 {
		return &ExitCodeError{Code: ExitError}
	}
	return nil
}

// applyOne applies one rendered app or path and prints its summary.
func (o *ApplyOptions) applyOne(ctx context.Context, e *engine.Engine, job *target, r *engine.Rendered, all bool) error {
	if err := e.Prepare(ctx, r); err != nil {
		if r.IsHelm() {
			return fmt.Errorf("rendering failed, nothing was applied: %w", err)
		}
		return fmt.Errorf("rendering failed, nothing was applied or pruned: %w", err)
	}
	opts := engine.ApplyOptions{
		Revision:        o.revision(job),
		Description:     "kubectl-gitops apply",
		Prune:           o.pruneOverride(),
		PruneAllowEmpty: o.PruneAllowEmpty,
		PruneConfirm:    o.PruneConfirm,
		DryRun:          o.DryRun,
		ForceConflicts:  o.ForceConflicts,
		Force:           o.Force,
		Wait:            o.Wait,
		Timeout:         o.Timeout,
	}
	if o.approval != nil && job.app != nil {
		opts.Provenance = cluster.Provenance{PullRequest: o.approval.pr, Approvers: o.approval.approvers, PlanHash: o.approval.plans[job.app.Name]}
	}
	if r.IsHelm() {
		res, err := e.Apply(ctx, r, opts)
		if err != nil {
			return err
		}
		if res.HelmPlan != nil {
			sum := res.HelmPlan.Summary()
			fmt.Fprintf(o.Out, "%s: Helm release %s/%s: %d created, %d configured, %d deleted, %d unchanged (dry run)\n",
				job.name(), r.Release.Namespace, r.Release.Name, sum.Created, sum.Configured, sum.Deleted, sum.Unchanged)
			return nil
		}
		fmt.Fprintln(o.ErrOut, helmResultLine(res.Helm))
		fmt.Fprintf(o.Out, "%s: Helm release %s/%s revision %d %s\n", job.name(), res.Helm.Namespace, res.Helm.Name, res.Helm.Revision, res.Helm.Status)
		return nil
	}
	printWarnings(o.ErrOut, r.Result)
	if job.app != nil && !all {
		o.warnUnappliedDependencies(ctx, e.Cluster, job)
	}
	opts.Progress = func(res cluster.ObjectResult) {
		for _, w := range res.Warnings {
			fmt.Fprintf(o.ErrOut, "Warning: %s: %s\n", res.Ref.KubectlName(), w)
		}
		fmt.Fprintln(o.ErrOut, res.Line())
	}
	opts.WaitProgress = func(s cluster.ObjectStatus) {
		if s.Status != "Current" {
			fmt.Fprintln(o.ErrOut, s.String())
		}
	}
	res, err := e.Apply(ctx, r, opts)
	if res != nil {
		o.summarize(job, res.Inventory, opts.Revision, res.Objects)
	}
	return err
}

// summarize prints what happened to stdout: one line per set.
func (o *ApplyOptions) summarize(job *target, ref cluster.InventoryRef, revision string, res *cluster.ApplyResult) {
	if res == nil {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", job.name(), res.Summary())
	if len(res.Wait) > 0 {
		current := 0
		for _, s := range res.Wait {
			if s.Status == "Current" {
				current++
			}
		}
		fmt.Fprintf(&b, "; %d of %d Current", current, len(res.Wait))
	}
	switch {
	case res.DryRun:
		b.WriteString(" (server dry run)")
	case res.InventoryWritten:
		fmt.Fprintf(&b, "; inventory %s/%s", ref.Namespace, ref.Name())
		if revision != "" {
			fmt.Fprintf(&b, " at %s", engine.ShortRevision(revision))
		}
	}
	fmt.Fprintln(o.Out, b.String())
}

// warnUnappliedDependencies warns about dependencies that were never
// applied: applying one app does not apply the apps it depends on.
func (o *ApplyOptions) warnUnappliedDependencies(ctx context.Context, client *cluster.Client, job *target) {
	for _, dep := range job.app.DependsOn {
		app, ok := job.repo.App(dep)
		if !ok {
			continue
		}
		ref := engine.Unit{App: app, Namespace: o.namespace(app)}.Inventory()
		inv, err := client.ReadInventory(ctx, ref)
		if err == nil && !inv.Exists {
			fmt.Fprintf(o.ErrOut, "Warning: app %s depends on app %s, which has never been applied (no inventory %s/%s); apply it first: kubectl gitops apply %s\n",
				job.app.Name, dep, ref.Namespace, ref.Name(), dep)
		}
	}
}

// revision is --revision, else the commit of the Git work tree holding the
// target, else "".
func (o *ApplyOptions) revision(t *target) string {
	if o.Revision != "" {
		return o.Revision
	}
	dir := t.path
	if dir == "" && t.repo != nil {
		dir = t.repo.Dir
	}
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		dir = filepath.Dir(dir)
	}
	if dir == "" {
		return ""
	}
	l, err := gitrepo.OpenLocal(dir)
	if err != nil {
		return ""
	}
	head, _ := l.Head()
	return head
}
