package plugin

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-gitops/kubectl-gitops/internal/config"
	"github.com/kubectl-gitops/kubectl-gitops/internal/diff"
	"github.com/kubectl-gitops/kubectl-gitops/internal/images"
	"github.com/kubectl-gitops/kubectl-gitops/internal/images/setter"
	"github.com/kubectl-gitops/kubectl-gitops/internal/lease"
	"github.com/kubectl-gitops/kubectl-gitops/internal/report"
)

// clusterStateTimeout bounds reading the bot's holds and switches for a
// scan: the scan is about registries and files, and shows what it found
// without them.
const clusterStateTimeout = 5 * time.Second

// ScanOptions run `kubectl gitops images scan` and (Update) `images update`.
type ScanOptions struct {
	*Flags
	genericiooptions.IOStreams

	// Update makes the run an update: the edit is shown as a diff, or
	// written with Write.
	Update bool
	Write  bool
	// Output is table or json (scan).
	Output string
	// DockerConfig is a Docker config.json with registry credentials;
	// empty means $DOCKER_CONFIG/config.json or ~/.docker/config.json when
	// one exists.
	DockerConfig string
	// BotNamespace is where the bot keeps its holds and switches; empty
	// reads no cluster.
	BotNamespace string

	policies []string
	repo     *config.Repository
	// scanner is the registry scanner; nil builds one with the
	// credentials.
	scanner *images.Scanner
	// client reaches the bot's cluster; nil is built from the kubectl flags.
	client kubernetes.Interface
	now    func() time.Time
}

func newCmdImageScan(flags *Flags, streams genericiooptions.IOStreams, update bool) *cobra.Command {
	o := &ScanOptions{Flags: flags, IOStreams: streams, Update: update, Output: "table", BotNamespace: DefaultBotNamespace}
	cmd := &cobra.Command{
		Use:   "scan [NAME...]",
		Short: "Show, per image policy, the tag the files hold, the registry's latest and what an update would do",
		Example: `  kubectl gitops images scan
  kubectl gitops images scan podinfo -o json`,
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
	if update {
		cmd.Use = "update [NAME...]"
		cmd.Short = "Show the edit that moves the marked image values to each policy's latest tag, or write it (--write)"
		cmd.Example = `  kubectl gitops images update
  kubectl gitops images update podinfo --write`
		cmd.Flags().BoolVar(&o.Write, "write", false, "rewrite the files in the working tree instead of printing the diff")
	} else {
		cmd.Flags().StringVarP(&o.Output, "output", "o", o.Output, "table or json")
	}
	cmd.Flags().StringVar(&o.DockerConfig, "docker-config", "", "Docker config.json with registry credentials (default $DOCKER_CONFIG/config.json or ~/.docker/config.json)")
	cmd.Flags().StringVar(&o.BotNamespace, "bot-namespace", o.BotNamespace, `the namespace of gitops-bot, whose holds and suspensions are shown ("" reads no cluster)`)
	return cmd
}

// Complete takes the policy names and finds gitops.yaml.
func (o *ScanOptions) Complete(args []string) error {
	o.policies = args
	repo, cwd, err := o.repositoryHere()
	if err != nil {
		return err
	}
	if repo == nil {
		return fmt.Errorf("no %s found above %s: image policies are declared in it; run this inside a repository, or pass --config", config.FileName, cwd)
	}
	o.repo = repo
	if o.now == nil {
		o.now = time.Now
	}
	return nil
}

// Validate checks the output format and the policy names.
func (o *ScanOptions) Validate() error {
	if o.Output != "table" && o.Output != "json" {
		return fmt.Errorf("--output %q: use table or json", o.Output)
	}
	if len(o.repo.Images) == 0 {
		return fmt.Errorf("%s declares no image policies (images:); add one, see the README", o.repo.File)
	}
	names := o.policyNames()
	for _, p := range o.policies {
		if !slices.Contains(names, p) {
			return fmt.Errorf("%q is not an image policy of %s: use one of %s", p, o.repo.File, strings.Join(names, ", "))
		}
	}
	return nil
}

func (o *ScanOptions) policyNames() []string {
	names := make([]string, 0, len(o.repo.Images))
	for _, p := range o.repo.Images {
		names = append(names, p.Name)
	}
	return names
}

// imageRow is one policy of a scan, as -o json prints it.
type imageRow struct {
	Policy    string         `json:"policy"`
	Image     string         `json:"image"`
	Current   []string       `json:"current"`
	Latest    string         `json:"latest,omitempty"`
	Action    images.Action  `json:"action"`
	Update    *setter.Update `json:"update,omitempty"`
	Why       string         `json:"why"`
	Waiting   string         `json:"waiting,omitempty"`
	Hold      *images.Hold   `json:"hold,omitempty"`
	Suspended string         `json:"suspended,omitempty"`
	Markers   []setter.Value `json:"markers,omitempty"`
}

// Run scans the policies and prints the table, the JSON or the diff, or
// writes the files.
func (o *ScanOptions) Run(ctx context.Context) error {
	files, err := setter.ReadDir(o.repo.Dir)
	if err != nil {
		return err
	}
	current, err := setter.Read(files, setter.Options{Policies: o.policyNames()})
	if err != nil {
		return fmt.Errorf("reading the image policy markers under %s: %w", o.repo.Dir, err)
	}
	scanner := o.scanner
	if scanner == nil {
		if scanner, err = o.newScanner(); err != nil {
			return err
		}
	}
	var (
		reqs     []images.Request
		compiled []*images.Policy
	)
	for _, p := range o.repo.Images {
		if len(o.policies) > 0 && !slices.Contains(o.policies, p.Name) {
			continue
		}
		c, err := images.Compile(p)
		if err != nil {
			return fmt.Errorf("%s: image policy %s: %w", o.repo.File, p.Name, err)
		}
		reqs = append(reqs, images.Request{Policy: p, Force: true})
		compiled = append(compiled, c)
	}
	holds, suspended := o.botState(ctx)
	results := scanner.ScanAll(ctx, reqs)
	rows := make([]imageRow, len(results))
	updates := map[string]setter.Update{}
	failed := 0
	for i, res := range results {
		name := reqs[i].Policy.Name
		var hold *images.Hold
		if h, ok := holds[name]; ok {
			hold = &h
		}
		d := images.Decide(compiled[i], res, current[name], hold)
		row := imageRow{Policy: name, Image: reqs[i].Policy.Image, Current: d.Current, Latest: d.Latest, Action: d.Action,
			Update: d.Update, Why: d.Why, Hold: hold, Suspended: suspended[name]}
		if d.Held != "" && d.Held != d.Why {
			row.Waiting = d.Held
		}
		if reqs[i].Policy.Suspend && row.Suspended == "" {
			row.Suspended = "suspend: true in " + config.FileName
		}
		if c := current[name]; c != nil {
			row.Markers = c.Values
		}
		rows[i] = row
		if d.Err != nil {
			failed++
		}
		if d.Update != nil {
			updates[name] = *d.Update
		}
	}
	if o.Update {
		err = o.update(files, updates, rows)
	} else {
		err = o.print(rows)
	}
	if err != nil {
		return err
	}
	if failed > 0 {
		fmt.Fprintf(o.ErrOut, "error: %d of %d image policies could not be scanned (see above)\n", failed, len(rows))
		return &ExitCodeError{Code: ExitError}
	}
	return nil
}

// print writes the scan as a table or as JSON.
func (o *ScanOptions) print(rows []imageRow) error {
	if o.Output == "json" {
		enc := json.NewEncoder(o.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	w := tabwriter.NewWriter(o.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "POLICY\tIMAGE\tCURRENT\tLATEST\tWHY")
	for _, r := range rows {
		cur := strings.Join(r.Current, ",")
		if cur == "" {
			cur = "-"
		}
		why := r.Why
		if r.Waiting != "" {
			why += "; waiting: " + r.Waiting
		}
		if r.Suspended != "" {
			why = "suspended (" + r.Suspended + "); " + why
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", report.EscapeText(r.Policy), report.EscapeText(r.Image), report.EscapeText(cur),
			report.EscapeText(cmp.Or(r.Latest, "-")), report.EscapeText(why))
	}
	return w.Flush()
}

// update prints the diff of the edit, or writes it.
func (o *ScanOptions) update(files map[string][]byte, updates map[string]setter.Update, rows []imageRow) error {
	for _, r := range rows {
		if r.Action != images.ActionUpdate && r.Action != images.ActionCurrent {
			fmt.Fprintf(o.ErrOut, "%s: %s\n", report.EscapeText(r.Policy), report.EscapeText(r.Why))
		}
	}
	res, err := setter.Apply(files, updates, setter.Options{Policies: o.policyNames()})
	if err != nil {
		return fmt.Errorf("under %s: %w", o.repo.Dir, err)
	}
	if len(res.Files) == 0 {
		fmt.Fprintln(o.ErrOut, "nothing to update: every marked value holds its policy's latest tag")
		return nil
	}
	names := slices.Sorted(maps.Keys(res.Files))
	if !o.Write {
		for _, n := range names {
			for line := range strings.Lines(diff.Unified(string(files[n]), string(res.Files[n]), "a/"+n, "b/"+n)) {
				fmt.Fprintln(o.Out, report.EscapeText(strings.TrimSuffix(line, "\n")))
			}
		}
		return nil
	}
	for _, n := range names {
		path := filepath.Join(o.repo.Dir, filepath.FromSlash(n))
		info, err := os.Stat(path)
		if err != nil {
			return err
		}
		if err := os.WriteFile(path, res.Files[n], info.Mode().Perm()); err != nil {
			return err
		}
	}
	for _, e := range res.Edits {
		fmt.Fprintf(o.Out, "%s:%d: %s → %s\n", report.EscapeText(e.File), e.Line, report.EscapeText(e.Old), report.EscapeText(e.New))
	}
	return nil
}

// botState reads the bot's holds and switches for the policies of this
// repository. The bot is optional to a scan: a cluster it cannot reach is
// a warning.
func (o *ScanOptions) botState(ctx context.Context) (map[string]images.Hold, map[string]string) {
	holds, suspended := map[string]images.Hold{}, map[string]string{}
	if o.BotNamespace == "" {
		return holds, suspended
	}
	client := o.client
	if client == nil {
		var err error
		if client, err = o.kubeClient(); err != nil {
			fmt.Fprintf(o.ErrOut, "warning: the bot's holds and suspensions are not shown: %v (--bot-namespace=\"\" skips them)\n", err)
			return holds, suspended
		}
	}
	ctx, cancel := context.WithTimeout(ctx, clusterStateTimeout)
	defer cancel()
	list, err := (&lease.Suspensions{Client: client, Namespace: o.BotNamespace}).List(ctx)
	if err != nil {
		fmt.Fprintf(o.ErrOut, "warning: the bot's suspensions are not shown: %v\n", err)
	}
	for _, s := range list {
		if s.All {
			for _, p := range o.repo.Images {
				suspended[p.Name] = "every policy, by " + s.By
			}
			continue
		}
		suspended[s.Policy] = "by " + s.By
	}
	records, err := (&lease.Records{Client: client, Namespace: o.BotNamespace, Name: lease.ImageStateName}).All(ctx)
	if err != nil {
		fmt.Fprintf(o.ErrOut, "warning: the bot's holds are not shown: %v\n", err)
		return holds, suspended
	}
	names := o.policyNames()
	for k, v := range records {
		_, policy, ok := lease.ParseImageHoldKey(k)
		var h images.Hold
		if !ok || !slices.Contains(names, policy) || json.Unmarshal([]byte(v), &h) != nil {
			continue
		}
		holds[policy] = h
	}
	return holds, suspended
}

// newScanner builds a registry scanner with the credentials of the
// Docker config and the environment.
func (o *ScanOptions) newScanner() (*images.Scanner, error) {
	creds := images.Credentials{DockerConfig: o.DockerConfig, Getenv: os.Getenv}
	if creds.DockerConfig == "" {
		dir := os.Getenv("DOCKER_CONFIG")
		if dir == "" {
			if home, err := os.UserHomeDir(); err == nil {
				dir = filepath.Join(home, ".docker")
			}
		}
		if p := filepath.Join(dir, "config.json"); dir != "" && fileExists(p) {
			creds.DockerConfig = p
		}
	}
	kc, err := creds.Keychain()
	if err != nil {
		return nil, err
	}
	return &images.Scanner{Keychain: kc, Now: o.now}, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
