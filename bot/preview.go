package bot

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	"github.com/kubectl-gitops/kubectl-gitops/internal/cluster"
	"github.com/kubectl-gitops/kubectl-gitops/internal/config"
	"github.com/kubectl-gitops/kubectl-gitops/internal/diff"
	"github.com/kubectl-gitops/kubectl-gitops/internal/engine"
	"github.com/kubectl-gitops/kubectl-gitops/internal/gate"
	"github.com/kubectl-gitops/kubectl-gitops/internal/gitrepo"
	"github.com/kubectl-gitops/kubectl-gitops/internal/report"
	"github.com/kubectl-gitops/kubectl-gitops/internal/sandbox"
	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
	"github.com/kubectl-gitops/kubectl-gitops/render"
)

// PreviewContext is the commit status context of previews.
const PreviewContext = "gitops/preview"

// ClusterTarget reaches one cluster the bot may diff against.
type ClusterTarget = genericclioptions.RESTClientGetter

// PreviewForge is what a preview does on a forge: find and keep its sticky
// comment, set the status, read the base's gitops.yaml and the changed
// paths, and fetch the head with the forge's credentials.
type PreviewForge interface {
	scm.Identity
	scm.Commenter
	scm.StatusSetter
	scm.FileReader
	scm.ChangeLister
	scm.CloneCredentials
}

// Previewer previews pull requests: it renders the apps a pull request
// touches from its head, diffs them against their clusters and keeps one
// sticky comment and the gitops/preview status up to date.
type Previewer struct {
	// Clusters are the clusters the bot can reach, by the names apps give
	// in their cluster field.
	Clusters map[string]ClusterTarget
	// DefaultCluster is the cluster of apps that name none.
	DefaultCluster string
	// CacheDir holds the checkouts of pull request heads and Git sources.
	CacheDir string
	// AllowForks previews pull requests from forks, render-only: the head
	// is fetched without credentials and diffed against the base's render,
	// never against a cluster. Off, a fork's preview is a note saying so.
	AllowForks bool
	// StatusContext defaults to PreviewContext.
	StatusContext string
	// Sandbox runs every render of a pull request (and of a fork's base) in
	// a child process with no network and bounded time, memory and output;
	// the zero value has the defaults. Git sources are fetched here first.
	Sandbox sandbox.Runner

	// Locks hold pull requests' locks of apps they synced and the apply
	// lock of an app being applied: Leases shared by every replica, or
	// (nil) locks in this process.
	Locks Locker
	// Identity names this replica as the holder of apply locks; empty
	// means host name and process id.
	Identity string
	// Events receives what syncs did and refused, for notifications; nil
	// drops them.
	Events func(SyncEvent)
	// Records keep the last approved plan of each pull request across
	// restarts and replicas; nil keeps them in memory only.
	Records RecordStore
	// Refresh queues a fresh preview of a pull request whose overlap
	// warnings a preview of another one changed (Bot.Refresh); nil leaves
	// those comments as they are until their next preview.
	Refresh func(pr scm.PRRef)

	plansOnce    sync.Once
	plans        *planCache
	locksOnce    sync.Once
	overlapsOnce sync.Once
	overlapReg   *overlaps
}

// planCache is the plan hashes of the apps previewed, by commit.
func (p *Previewer) planCache() *planCache {
	p.plansOnce.Do(func() { p.plans = newPlanCache(0) })
	return p.plans
}

// PlanHash is the plan hash (engine.PlanHash) of app at commit sha of repo,
// as a preview of that commit rendered it; false when no preview has.
func (p *Previewer) PlanHash(repo scm.RepoRef, sha, app string) (string, bool) {
	return p.planCache().get(repo.String(), sha, app)
}

var _ PreviewRunner = (*Previewer)(nil)

// NewPreviewer is the Previewer cfg describes: its clusters (each a
// kubeconfig and context), default cluster, cache, fork policy and render
// limits.
func NewPreviewer(cfg Config) *Previewer {
	clusters := map[string]ClusterTarget{}
	for name, c := range cfg.Clusters {
		f := genericclioptions.NewConfigFlags(true)
		f.KubeConfig, f.Context = &c.Kubeconfig, &c.Context
		clusters[name] = f
	}
	return &Previewer{
		Clusters:       clusters,
		DefaultCluster: cfg.DefaultCluster,
		CacheDir:       cfg.CacheDir,
		AllowForks:     cfg.AllowForks,
		Sandbox:        cfg.Render.Runner(),
	}
}

// Preview brings the preview of pr, as the forge reported it when the job
// ran, up to date. Only an open pull request is previewed. A preview of its
// current head already posted is left alone, unless a command asked for
// this one. Problems with one app are reported in the comment; the error is
// for what stops the whole preview (the forge, the fetch of the head).
func (p *Previewer) Preview(ctx context.Context, forge PreviewForge, pr *scm.PullRequest, t Trigger) error {
	if pr.State != "open" {
		p.refresh(pr.Ref.Repo, p.overlapRegistry().forget(pr.Ref.Repo.String(), pr.Ref.Number))
		return nil
	}
	// A command or a change of overlaps forces a fresh preview; webhooks
	// and reconciles leave one already posted for the current head alone.
	force := t.Reason == ReasonComment || t.Reason == ReasonOverlap
	sticky, err := p.stickyComment(ctx, forge, pr.Ref)
	if err != nil {
		return err
	}
	if sticky != nil && !force {
		if m := previewMarkerSHA.FindStringSubmatch(sticky.Body); m != nil && m[1] == pr.HeadSHA {
			return nil
		}
	}
	if err := p.status(ctx, forge, pr, scm.StatusPending, "rendering the apps this change touches"); err != nil {
		return err
	}
	previews, note, err := p.previews(ctx, forge, pr)
	if err != nil {
		// Tell the reader, then report the failure to the job.
		_ = p.status(ctx, forge, pr, scm.StatusError, "the preview failed; it will be retried")
		return err
	}
	affected := p.markOverlaps(pr.Ref, previews)
	body := report.Comment(previews, report.CommentOptions{
		Marker:   previewMarker(pr.HeadSHA),
		MaxBytes: forge.MaxCommentBytes(),
		HeadSHA:  pr.HeadSHA,
		Note:     note,
		PRPrefix: prPrefix(pr.Ref.Repo),
	})
	if err := p.upsert(ctx, forge, pr.Ref, sticky, body); err != nil {
		return err
	}
	p.refresh(pr.Ref.Repo, affected)
	state, desc := scm.StatusSuccess, previewSummary(previews)
	if note != "" && len(previews) == 0 {
		desc = note
	}
	var failed []string
	for _, ap := range previews {
		if ap.Err != nil {
			failed = append(failed, ap.App)
		}
	}
	if len(failed) > 0 {
		state, desc = scm.StatusFailure, "preview failed for "+strings.Join(failed, ", ")
	}
	return p.status(ctx, forge, pr, state, desc)
}

// overlapRegistry is what the latest previews of open pull requests
// change, field by field.
func (p *Previewer) overlapRegistry() *overlaps {
	p.overlapsOnce.Do(func() { p.overlapReg = newOverlaps() })
	return p.overlapReg
}

// markOverlaps records what pr's previews change and sets, on each, the
// other open pull requests changing the same fields. It returns the other
// pull requests whose warnings this changed.
func (p *Previewer) markOverlaps(pr scm.PRRef, previews []report.AppPreview) []int {
	sets := make(map[string]*diff.ChangeSet, len(previews))
	for _, ap := range previews {
		if ap.Err == nil && ap.Changes != nil {
			sets[ap.App] = ap.Changes
		}
	}
	reg := p.overlapRegistry()
	affected := reg.record(pr.Repo.String(), pr.Number, sets)
	others := reg.others(pr.Repo.String(), pr.Number)
	for i := range previews {
		previews[i].Overlaps = others[previews[i].App]
	}
	return affected
}

// refresh queues fresh previews of repo's pull requests numbered prs.
func (p *Previewer) refresh(repo scm.RepoRef, prs []int) {
	if p.Refresh == nil {
		return
	}
	for _, n := range prs {
		p.Refresh(scm.PRRef{Repo: repo, Number: n})
	}
}

// KeepOpen forgets the overlaps of repo's pull requests not among open
// (the numbers of the open ones, as a reconcile lists them), and refreshes
// the previews that warned about them.
func (p *Previewer) KeepOpen(repo scm.RepoRef, open []int) {
	p.refresh(repo, p.overlapRegistry().keepOnly(repo.String(), open))
}

func (p *Previewer) status(ctx context.Context, forge scm.StatusSetter, pr *scm.PullRequest, state scm.StatusState, desc string) error {
	name := p.StatusContext
	if name == "" {
		name = PreviewContext
	}
	return p.setStatus(ctx, forge, pr, name, state, desc)
}

// setStatus sets the commit status name of pr's head.
func (p *Previewer) setStatus(ctx context.Context, forge scm.StatusSetter, pr *scm.PullRequest, name string, state scm.StatusState, desc string) error {
	err := forge.SetStatus(ctx, pr.Ref.Repo, scm.Status{SHA: pr.HeadSHA, Context: name, State: state, Description: desc})
	if err != nil {
		return fmt.Errorf("set status %s on %s: %w", name, pr.Ref, err)
	}
	return nil
}

// previews computes the preview of every app pr touches, and a note for
// the whole comment (such as why nothing was previewed).
func (p *Previewer) previews(ctx context.Context, forge PreviewForge, pr *scm.PullRequest) ([]report.AppPreview, string, error) {
	if pr.Fork && !p.AllowForks {
		return nil, "This pull request comes from a fork; previews of forks are off (the bot's allowForks setting).", nil
	}
	base, problem, err := baseConfig(ctx, forge, pr)
	if base == nil {
		if problem != nil {
			return nil, problem.Note, nil
		}
		return nil, "", err
	}
	tree, err := p.checkout(ctx, forge, headOf(pr), base, pr.HeadSHA)
	if err != nil {
		return nil, "", err
	}
	// A head is previewed once (a new push brings a new head), so its
	// checkout does not stay in the cache to fill the disk.
	defer tree.remove()
	if tree.loadErr != nil {
		return []report.AppPreview{{App: config.FileName, Err: tree.loadErr}}, "", nil
	}
	e := tree.engine
	rendered, touched, _, err := p.touchedApps(ctx, forge, pr, base, tree)
	if err != nil {
		return nil, "", err
	}

	var baseRepo *config.Repository
	if pr.Fork {
		if baseRepo, err = p.baseCheckout(ctx, forge, pr, base); err != nil {
			return nil, "", err
		}
	}
	allowed := p.allowedClusters(base)
	var out []report.AppPreview
	for _, app := range touched {
		ap := report.AppPreview{App: app.Name, Cluster: p.clusterOf(app)}
		remote := app.Helm != nil && app.Helm.Remote()
		r := rendered[app.Name]
		switch {
		case remote:
			ap.Note = "not previewed: its chart comes from a chart repository or registry, which the bot does not fetch for pull requests"
		case r.Err != nil:
			ap.Err = r.Err
		case pr.Fork:
			ap.Note = "rendered only (a pull request from a fork is not diffed against a cluster): the head's render against the base's"
			ap.Changes, ap.Err = p.offlineDiff(ctx, e, baseRepo, r)
		case !allowed[ap.Cluster]:
			ap.Note = fmt.Sprintf("not previewed live: cluster %q is not one the base branch's %s deploys to with the bot", ap.Cluster, config.FileName)
		default:
			ap.Changes, ap.Err = p.liveDiff(ctx, e, r)
		}
		if l, ok, err := p.locker().Get(ctx, prLockKey(pr.Ref.Repo, app.Name)); err == nil && ok && l.Holder != prHolder(pr.Ref) {
			lock := fmt.Sprintf("🔒 locked by %s, which synced it before merging: this pull request cannot sync %s until that one merges or closes, or a maintainer comments /gitops unlock %s", holderName(pr.Ref.Repo, l.Holder), app.Name, app.Name)
			ap.Note = strings.TrimSpace(ap.Note + "\n\n" + lock)
		}
		out = append(out, ap)
	}
	return out, "", nil
}

// baseConfig reads gitops.yaml at the pull request's base (gate.BaseConfig).
func baseConfig(ctx context.Context, forge scm.FileReader, pr *scm.PullRequest) (*config.Repository, *gate.BaseProblem, error) {
	return gate.BaseConfig(ctx, forge, pr)
}

// prTree is a commit of a pull request, checked out, with its gitops.yaml
// and the engine that renders it as untrusted input.
type prTree struct {
	dir string
	// repo is the commit's gitops.yaml; nil when it cannot be loaded, with
	// loadErr saying why (for the reader: the commit's own problem).
	repo    *config.Repository
	loadErr error
	engine  *engine.Engine
}

// remove deletes the checkout: a commit is rendered once per job, so
// checkouts do not stay in the cache to fill the disk.
func (t *prTree) remove() { os.RemoveAll(t.dir) }

// origin is where a commit is fetched from: a repository of the forge by
// its clone URL, and whether that is a fork the pull request's author
// chose (fetched without credentials).
type origin struct {
	repo scm.RepoRef
	url  string
	fork bool
}

// headOf is the origin of pr's head commits.
func headOf(pr *scm.PullRequest) origin {
	if pr.Fork {
		return origin{repo: pr.Ref.Repo, url: pr.HeadCloneURL, fork: true}
	}
	return origin{repo: pr.Ref.Repo, url: pr.CloneURL}
}

// checkout fetches commit sha of o and loads its gitops.yaml. A fork is
// fetched as the public does: the base's credentials never go to a URL the
// pull request's author chose. The engine renders in the sandbox, fetches
// only the Git sources the base allows (without credentials), and keeps
// Helm's lookup off. The error is a failed fetch.
func (p *Previewer) checkout(ctx context.Context, forge scm.CloneCredentials, o origin, base *config.Repository, sha string) (*prTree, error) {
	var auth func(string) (string, string, bool)
	if !o.fork {
		auth = cloneAuth(ctx, forge, o.repo, o.url)
	}
	// The head's URL comes from the forge, not from gitops.yaml, so the
	// sources allowlist does not apply to it.
	fetcher := &gitrepo.Fetcher{CacheDir: filepath.Join(p.CacheDir, "heads"), Auth: auth}
	co, err := fetcher.Fetch(ctx, o.url, sha)
	if err != nil {
		return nil, fmt.Errorf("fetch %s of %s: %w", sha, o.repo, err)
	}
	t := &prTree{dir: co.Dir}
	t.repo, t.loadErr = loadHead(co.Dir)
	if base == nil {
		// The commit is the base itself (a commit of the default branch):
		// its own file is the policy.
		base = t.repo
	}
	// Third-party sources: only what the base allows, and no credentials.
	var allow []string
	if base != nil {
		allow = sourceAllowList(base)
	}
	sources := &gitrepo.Fetcher{CacheDir: filepath.Join(p.CacheDir, "sources"), Allow: allow}
	t.engine = &engine.Engine{Renderer: p.Sandbox, DisableLookup: true, Options: render.AppOptions{
		Root: co.Dir,
		Fetch: func(ctx context.Context, url, ref string) (string, error) {
			c, err := sources.Fetch(ctx, url, ref)
			return c.Dir, err
		},
	}}
	return t, nil
}

// renderLocal renders every app of t that needs no fetch, in one render
// process for them all (starting one costs more than most renders), and
// records their plan hashes at sha.
func (p *Previewer) renderLocal(ctx context.Context, repo scm.RepoRef, sha string, t *prTree) map[string]*engine.Rendered {
	var units []engine.Unit
	for i := range t.repo.Apps {
		app := &t.repo.Apps[i]
		if app.Source != nil || (app.Helm != nil && app.Helm.Remote()) {
			continue
		}
		units = append(units, engine.AppUnit(t.repo, app, engine.Namespace(app, "", "")))
	}
	results := t.engine.Render(ctx, units)
	p.planCache().record(repo.String(), sha, results)
	out := make(map[string]*engine.Rendered, len(results))
	for i := range results {
		out[results[i].App.Name] = &results[i]
	}
	return out
}

// touchedApps renders the apps of tree (pr's head): every local app once,
// since its files tell whether the change touches it, then the touched apps
// with a Git source, fetched now that they are needed. It returns the
// renders by app (none for a remote chart), the touched apps, and their
// names with the files the change touches, which are recorded with the
// plan hashes for the approval gate.
func (p *Previewer) touchedApps(ctx context.Context, forge scm.ChangeLister, pr *scm.PullRequest, base *config.Repository, tree *prTree) (map[string]*engine.Rendered, []config.App, touchedSet, error) {
	rendered := p.renderLocal(ctx, pr.Ref.Repo, pr.HeadSHA, tree)
	files := map[string][]string{}
	for name, r := range rendered {
		if r.Err == nil {
			files[name] = r.Result.Files
		}
	}
	changed, err := forge.ChangedFiles(ctx, pr.Ref)
	if err != nil {
		return nil, nil, touchedSet{}, fmt.Errorf("list the files %s changes: %w", pr.Ref, err)
	}
	touched := Touched(base, tree.repo, changed, files)
	names := make([]string, 0, len(touched))
	for _, app := range touched {
		names = append(names, app.Name)
		if rendered[app.Name] != nil || (app.Helm != nil && app.Helm.Remote()) {
			continue
		}
		one, _ := tree.repo.App(app.Name)
		r, _ := tree.engine.RenderOne(ctx, engine.AppUnit(tree.repo, one, engine.Namespace(one, "", "")))
		p.planCache().record(pr.Ref.Repo.String(), pr.HeadSHA, []engine.Rendered{*r})
		rendered[app.Name] = r
	}
	set := touchedSet{apps: names, files: changed}
	p.planCache().putTouched(pr.Ref.Repo.String(), pr.HeadSHA, set)
	return rendered, touched, set, nil
}

// errNoFile: a commit without gitops.yaml, which for a pull request means
// it deletes it.
var errNoFile = fmt.Errorf("the pull request deletes %s; nothing to preview", config.FileName)

// loadHead reads the pull request's gitops.yaml from its checkout. Errors
// name the file as the repository does, not by its place in the cache.
func loadHead(dir string) (*config.Repository, error) {
	// Read through the checkout's confinement: a gitops.yaml that is a
	// symlink out of the tree, a FIFO or a folder is refused, and errors
	// never quote the file's content.
	repo, err := config.LoadFile(dir, config.FileName)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errNoFile
	}
	if err != nil {
		return nil, fmt.Errorf("the pull request's %w", err)
	}
	return repo, nil
}

// sourceAllowList is the base's sources.allow. An empty list allows every source
// the file names; for a pull request that would be any URL its author
// writes, so the bot then allows exactly the sources the base's apps use,
// and nothing when they use none.
func sourceAllowList(base *config.Repository) []string {
	if len(base.Sources.Allow) > 0 {
		return base.Sources.Allow
	}
	// A prefix no URL starts with keeps the list non-empty.
	out := []string{"\x00no-source"}
	for _, app := range base.Apps {
		if app.Source != nil {
			out = append(out, app.Source.Git)
		}
	}
	return out
}

// allowedClusters are the clusters the bot may diff against: those the base
// file's apps deploy to and the bot can reach.
func (p *Previewer) allowedClusters(base *config.Repository) map[string]bool {
	out := map[string]bool{}
	for _, app := range base.Apps {
		name := p.clusterOf(app)
		if _, ok := p.Clusters[name]; ok {
			out[name] = true
		}
	}
	return out
}

func (p *Previewer) clusterOf(app config.App) string {
	if app.Cluster != "" {
		return app.Cluster
	}
	return p.DefaultCluster
}

// liveDiff plans a rendered app against its cluster with the engine: a
// Helm app against its release (the engine keeps lookup off, so a chart
// from the pull request cannot read the cluster into the comment).
func (p *Previewer) liveDiff(ctx context.Context, e *engine.Engine, r *engine.Rendered) (*diff.ChangeSet, error) {
	name := p.clusterOf(*r.App)
	client, err := cluster.New(p.Clusters[name], cluster.Options{})
	if err != nil {
		return nil, fmt.Errorf("connect to cluster %s: %w", name, err)
	}
	live := *e
	live.Cluster = client
	return live.Plan(ctx, r, engine.PlanOptions{})
}

// baseCheckout fetches the base commit (the base repository, trusted, with
// the forge's credentials) for the render-only preview of a fork.
func (p *Previewer) baseCheckout(ctx context.Context, forge scm.CloneCredentials, pr *scm.PullRequest, base *config.Repository) (*config.Repository, error) {
	f := &gitrepo.Fetcher{CacheDir: filepath.Join(p.CacheDir, "heads"), Auth: cloneAuth(ctx, forge, pr.Ref.Repo, pr.CloneURL)}
	co, err := f.Fetch(ctx, pr.CloneURL, pr.BaseSHA)
	if err != nil {
		return nil, fmt.Errorf("fetch the base %s of %s: %w", pr.BaseSHA, pr.Ref, err)
	}
	repo := *base
	repo.Dir, repo.File = co.Dir, filepath.Join(co.Dir, config.FileName)
	return &repo, nil
}

// offlineDiff diffs the head's render of an app against the base's.
func (p *Previewer) offlineDiff(ctx context.Context, e *engine.Engine, base *config.Repository, head *engine.Rendered) (*diff.ChangeSet, error) {
	var before []*unstructured.Unstructured
	if old, ok := base.App(head.App.Name); ok {
		at := *e
		at.Options.Root = base.Dir
		r, err := at.RenderOne(ctx, engine.AppUnit(base, old, engine.Namespace(old, "", "")))
		if err != nil {
			return nil, fmt.Errorf("render the base: %w", err)
		}
		before = r.Result.Objects
	}
	return diff.Objects(before, head.Result.Objects, diff.Options{})
}

// previewSummary is the status description of a successful preview.
func previewSummary(previews []report.AppPreview) string {
	if len(previews) == 0 {
		return "no app touched"
	}
	names := make([]string, 0, len(previews))
	for _, ap := range previews {
		names = append(names, ap.App)
	}
	slices.Sort(names)
	return "previewed " + strings.Join(names, ", ")
}
