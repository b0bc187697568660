package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-gitops/kubectl-gitops/internal/config"
	"github.com/kubectl-gitops/kubectl-gitops/internal/lease"
)

// DefaultBotNamespace is where deploy/ installs gitops-bot, and so where
// its image automation switch lives.
const DefaultBotNamespace = "gitops-bot"

// NewCmdImages builds `kubectl gitops images`.
func NewCmdImages(flags *Flags, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "images",
		Short: "Image automation: scan registries, update marked image tags, suspend or resume the bot's image pull requests",
		Long: `The image policies of gitops.yaml (images:) choose the newest tag of an image, and
setter markers (# {"$imagepolicy": "NAME"}) say which values in the repository's files
hold it. scan shows, per policy, the tag the files hold and the registry's latest;
update shows the edit that moves them (or writes it with --write). gitops-bot opens a
pull request for the same edit when a registry publishes a newer tag; suspend and
resume switch that off and on, per policy or for all, in the ConfigMap
` + lease.ImageSuspensionsName + ` in the bot's namespace; the bot reads it before every scan.`,
	}
	cmd.AddCommand(newCmdImageScan(flags, streams, false), newCmdImageScan(flags, streams, true),
		newCmdSuspend(flags, streams, true), newCmdSuspend(flags, streams, false))
	return cmd
}

// SuspendOptions switch the image automation of one policy, or of all, off
// (Suspend) or on.
type SuspendOptions struct {
	*Flags
	genericiooptions.IOStreams

	Suspend      bool
	All          bool
	Local        bool
	Reason       string
	BotNamespace string

	policy string
	repo   *config.Repository
	// client reaches the bot's cluster; nil is built from the kubectl flags.
	client kubernetes.Interface
}

func newCmdSuspend(flags *Flags, streams genericiooptions.IOStreams, suspend bool) *cobra.Command {
	o := &SuspendOptions{Flags: flags, IOStreams: streams, Suspend: suspend, BotNamespace: DefaultBotNamespace}
	verb, short := "resume", "Resume image update pull requests of a policy, or of all"
	if suspend {
		verb, short = "suspend", "Suspend image update pull requests of a policy, or of all"
	}
	cmd := &cobra.Command{
		Use:   verb + " [NAME|--all]",
		Short: short,
		Example: fmt.Sprintf(`  kubectl gitops images %[1]s podinfo
  kubectl gitops images %[1]s --all --bot-namespace gitops-bot`, verb),
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
	cmd.Flags().BoolVar(&o.All, "all", false, verb+" every image policy")
	cmd.Flags().StringVar(&o.BotNamespace, "bot-namespace", o.BotNamespace, "the namespace gitops-bot runs in")
	cmd.Flags().BoolVar(&o.Local, "local", false, "set suspend: in the image policies of gitops.yaml in the working tree instead (commit it to take effect)")
	if suspend {
		cmd.Flags().StringVar(&o.Reason, "reason", "", "why, shown by kubectl gitops status and to the bot's users")
	}
	return cmd
}

// Complete takes the policy name.
func (o *SuspendOptions) Complete(args []string) error {
	if len(args) == 1 {
		o.policy = args[0]
	}
	return nil
}

// Validate checks that exactly one of NAME and --all is given and, when a
// gitops.yaml is at hand, that NAME is one of its image policies.
func (o *SuspendOptions) Validate() error {
	switch {
	case o.policy == "" && !o.All:
		return errors.New("name an image policy of gitops.yaml, or pass --all")
	case o.policy != "" && o.All:
		return fmt.Errorf("pass either the policy %s or --all, not both", o.policy)
	case o.BotNamespace == "":
		return errors.New("--bot-namespace is empty: name the namespace gitops-bot runs in")
	}
	if o.policy == "" && !o.Local {
		return nil
	}
	repo, cwd, err := o.repositoryHere()
	if err != nil {
		return err
	}
	if repo == nil {
		if o.Local {
			return fmt.Errorf("no %s found above %s: --local edits the image policies of a repository; run it inside one, or pass --config", config.FileName, cwd)
		}
		// Outside a checkout the name cannot be checked; the bot ignores
		// a switch of a policy it does not have.
		return nil
	}
	o.repo = repo
	if o.policy == "" {
		return nil
	}
	var names []string
	for _, p := range repo.Images {
		names = append(names, p.Name)
	}
	if !slices.Contains(names, o.policy) {
		if len(names) == 0 {
			return fmt.Errorf("%s declares no image policies (images:), so there is no %q to %s", repo.File, o.policy, o.verb())
		}
		return fmt.Errorf("%q is not an image policy of %s: use one of %s", o.policy, repo.File, strings.Join(names, ", "))
	}
	return nil
}

func (o *SuspendOptions) verb() string {
	if o.Suspend {
		return "suspend"
	}
	return "resume"
}

// Run writes the switch.
func (o *SuspendOptions) Run(ctx context.Context) error {
	if o.Local {
		return o.runLocal()
	}
	client := o.client
	if client == nil {
		var err error
		if client, err = o.kubeClient(); err != nil {
			return err
		}
	}
	s := &lease.Suspensions{Client: client, Namespace: o.BotNamespace}
	what := "every image policy"
	if o.policy != "" {
		what = "image policy " + o.policy
	}
	if !o.Suspend {
		if err := s.Resume(ctx, o.policy); err != nil {
			return err
		}
		fmt.Fprintf(o.Out, "resumed %s\n", what)
		if o.policy != "" {
			if still, err := s.Suspended(ctx, o.policy); err == nil && still {
				fmt.Fprintf(o.ErrOut, "warning: every image policy is still suspended: kubectl gitops images resume --all\n")
			}
		}
		return nil
	}
	by := whoami()
	if o.Reason != "" {
		by += ": " + o.Reason
	}
	if err := s.Suspend(ctx, o.policy, by); err != nil {
		return err
	}
	fmt.Fprintf(o.Out, "suspended %s (in ConfigMap %s/%s); the bot opens no image pull request for it until it is resumed\n", what, o.BotNamespace, lease.ImageSuspensionsName)
	return nil
}

// runLocal sets suspend: of the policy, or of every policy, in gitops.yaml,
// byte-minimally.
func (o *SuspendOptions) runLocal() error {
	data, err := os.ReadFile(o.repo.File)
	if err != nil {
		return err
	}
	policies := []string{o.policy}
	if o.All {
		policies = policies[:0]
		for _, p := range o.repo.Images {
			policies = append(policies, p.Name)
		}
	}
	var changed []string
	for _, p := range policies {
		out, ok, err := config.SetImageSuspend(data, p, o.Suspend)
		if err != nil {
			return fmt.Errorf("%s: %w", o.repo.File, err)
		}
		if ok {
			data = out
			changed = append(changed, p)
		}
	}
	if len(changed) == 0 {
		fmt.Fprintf(o.Out, "%s: nothing to change\n", o.repo.File)
		return nil
	}
	info, err := os.Stat(o.repo.File)
	if err != nil {
		return err
	}
	if err := os.WriteFile(o.repo.File, data, info.Mode().Perm()); err != nil {
		return err
	}
	done := "resumed"
	if o.Suspend {
		done = "suspended"
	}
	fmt.Fprintf(o.Out, "%s: %s %s; commit it for the bot to see it\n", o.repo.File, done, strings.Join(changed, ", "))
	return nil
}

// whoami names the user for the record of a switch.
func whoami() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return "someone"
}

// kubeClient is a clientset for the cluster the kubectl flags name.
func (f *Flags) kubeClient() (kubernetes.Interface, error) {
	cfg, err := f.Kube.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("reaching the cluster: %w", err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("reaching the cluster: %w", err)
	}
	return client, nil
}

// printImageSuspensions writes which image policies of repo are suspended
// in the bot's namespace, for status.
func printImageSuspensions(ctx context.Context, w io.Writer, client kubernetes.Interface, namespace string, repo *config.Repository) error {
	if repo == nil || len(repo.Images) == 0 {
		return nil
	}
	list, err := (&lease.Suspensions{Client: client, Namespace: namespace}).List(ctx)
	if err != nil {
		return err
	}
	for _, s := range list {
		switch {
		case s.All:
			fmt.Fprintf(w, "image automation: every policy suspended by %s (kubectl gitops images resume --all)\n", s.By)
		default:
			fmt.Fprintf(w, "image automation: %s suspended by %s (kubectl gitops images resume %s)\n", s.Policy, s.By, s.Policy)
		}
	}
	if len(list) == 0 {
		names := make([]string, 0, len(repo.Images))
		for _, p := range repo.Images {
			names = append(names, p.Name)
		}
		fmt.Fprintf(w, "image automation: on for %s\n", strings.Join(names, ", "))
	}
	return nil
}
