package bot

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/kubectl-gitops/kubectl-gitops/internal/cluster"
	"github.com/kubectl-gitops/kubectl-gitops/internal/config"
	"github.com/kubectl-gitops/kubectl-gitops/internal/engine"
	"github.com/kubectl-gitops/kubectl-gitops/internal/gate"
	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
)

// SyncContext is the commit status of syncs on the default branch: success
// when every app of sync onMerge is applied or in sync, failure when a
// change is not from an approved pull request (nothing of it is applied),
// pending while a deploy window is closed.
const SyncContext = "gitops/sync"

// SyncForge is what syncing does on a forge: the approval gate's reads,
// the pull requests of a commit, the default branch, and deployments.
type SyncForge interface {
	ApprovalForge
	scm.PullRequestReader
	scm.CommitPullRequests
	scm.BranchReader
	scm.Deployer
}

// SyncRunner applies approved changes: *Previewer in the service.
type SyncRunner interface {
	// SyncBranch applies the apps of sync onMerge of repo's default branch
	// whose plan changed, each only when a merged pull request approved
	// under its base's policy brought exactly that plan.
	SyncBranch(ctx context.Context, forge SyncForge, repo scm.RepoRef, t Trigger) error
	// SyncPull answers /gitops sync [app...] on an open pull request.
	SyncPull(ctx context.Context, forge SyncForge, pr *scm.PullRequest, t Trigger) error
	// Unlock answers /gitops unlock [app...].
	Unlock(ctx context.Context, forge SyncForge, pr *scm.PullRequest, t Trigger) error
	// ReleaseLocks frees the locks of repo's pull requests that are no
	// longer open: all but open (the numbers of the open ones).
	ReleaseLocks(ctx context.Context, repo scm.RepoRef, open []int) error
	// ReleasePull frees the locks of a pull request that merged or closed.
	ReleasePull(ctx context.Context, pr scm.PRRef) error
}

var _ SyncRunner = (*Previewer)(nil)

// SyncEvent is something a sync did or refused, for notifications.
type SyncEvent struct {
	// Kind is config.EventSyncSucceeded or config.EventSyncFailed.
	Kind     string
	Repo     scm.RepoRef
	App      string
	Revision string
	// PR is the pull request the change came from, if any.
	PR      *scm.PRRef
	Message string
}

// syncItem is one app to bring to its plan.
type syncItem struct {
	app    *config.App
	r      *engine.Rendered
	engine *engine.Engine // with the app's cluster
	plan   string
	// Decided by the gate:
	pr        *scm.PullRequest
	approvers []string
	refused   string // why it is not applied
	waiting   string // why not yet (a closed deploy window)
}

// syncResult is what applying one app did.
type syncResult struct {
	app, cluster string
	summary      string
	err          error
	// skipped says why nothing was applied (already in sync); busy, that
	// another replica is applying it now (the status stays pending and a
	// later sync looks again).
	skipped, busy string
}

// locker is p.Locks, or locks in this process.
func (p *Previewer) locker() Locker {
	p.locksOnce.Do(func() {
		if p.Locks == nil {
			p.Locks = NewMemLocks()
		}
	})
	return p.Locks
}

// identity names this replica as the holder of apply locks.
func (p *Previewer) identity() string {
	if p.Identity != "" {
		return p.Identity
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%d", host, os.Getpid())
}

func (p *Previewer) emit(e SyncEvent) {
	if p.Events != nil {
		p.Events(e)
	}
}

// SyncBranch reads the default branch now (the trigger's branch and
// commits are hints), renders its apps of sync onMerge, and applies each
// whose plan differs from what its cluster has, when a merged pull request
// approved under its base's policy, before it merged, brought exactly this
// plan. A change without one (a direct push, an unapproved merge, a merge
// that combined with other changes) is not applied: gitops/sync failure on
// the commit, and a sync.failed event. Results go to the pull request as a
// comment and to the forge as deployments; the inventory records the
// revision, pull request, approvers and plan hash.
func (p *Previewer) SyncBranch(ctx context.Context, forge SyncForge, repo scm.RepoRef, t Trigger) error {
	branch, err := forge.DefaultBranch(ctx, repo)
	if err != nil {
		return fmt.Errorf("read the default branch of %s: %w", repo, err)
	}
	if t.Branch != "" && t.Branch != branch.Name {
		return nil // a push to another branch
	}
	head := branch.SHA
	tree, err := p.checkout(ctx, forge, origin{repo: repo, url: branch.CloneURL}, nil, head)
	if err != nil {
		return err
	}
	defer tree.remove()
	if tree.loadErr != nil {
		if !errors.Is(tree.loadErr, errNoFile) {
			p.report(ctx, forge, repo, head, scm.StatusFailure, "nothing synced: "+tree.loadErr.Error(), t)
		}
		return nil
	}
	ordered, err := config.Order(tree.repo.Apps)
	if err != nil {
		return fmt.Errorf("%s at %s: %w", config.FileName, head, err)
	}
	var names []string
	for i := range ordered {
		if tree.repo.SyncOf(&ordered[i]) == config.SyncOnMerge {
			names = append(names, ordered[i].Name)
		}
	}
	if len(names) == 0 {
		return nil
	}
	rendered := p.renderApps(ctx, repo, head, tree, names)

	var items []*syncItem
	var refusals []string
	for _, name := range names {
		app, _ := tree.repo.App(name)
		r := rendered[name]
		if r == nil {
			continue // a remote chart: the bot does not fetch charts
		}
		if r.Err != nil {
			refusals = append(refusals, fmt.Sprintf("%s does not render: %v", name, r.Err))
			continue
		}
		plan, _ := p.planCache().get(repo.String(), head, name)
		e, err := p.clusterEngine(tree.engine, *app)
		if err != nil {
			refusals = append(refusals, fmt.Sprintf("%s: %v", name, err))
			continue
		}
		synced, err := inSync(ctx, e, r, plan)
		switch {
		case err != nil:
			// Not applied, and neither are the apps that depend on it;
			// the others go on.
			items = append(items, &syncItem{app: app, r: r, engine: e, plan: plan, refused: "planning it against the cluster failed: " + err.Error()})
		case !synced:
			items = append(items, &syncItem{app: app, r: r, engine: e, plan: plan})
		}
	}
	if len(items) == 0 && len(refusals) == 0 {
		p.report(ctx, forge, repo, head, scm.StatusSuccess, "in sync", t)
		return nil
	}
	pulls, err := p.mergedPulls(ctx, forge, repo, append(slices.Clone(t.Pushed), head))
	if err != nil {
		return err
	}
	for _, it := range items {
		if it.refused != "" {
			continue
		}
		if err := p.judgeMerge(ctx, forge, repo, head, it, pulls); err != nil {
			return err
		}
	}
	return p.syncItems(ctx, forge, repo, branch, items, refusals, t)
}

// syncItems applies the approved items, in waves of apps that depend on
// none of each other (engine.EachWave; an app whose dependency failed is
// not applied), and reports in order: a comment per pull request, the
// commit's gitops/sync status, events.
func (p *Previewer) syncItems(ctx context.Context, forge SyncForge, repo scm.RepoRef, branch scm.Branch, items []*syncItem, refusals []string, t Trigger) error {
	failed := map[string]bool{}
	byPR := map[int][]syncResult{}
	var prs []*scm.PullRequest
	var waiting []string
	apps := make([]*config.App, len(items))
	for i, it := range items {
		apps[i] = it.app
	}
	results := make([]syncResult, len(items))
	// The apps of a wave depend on none of each other: the ones to apply
	// are applied at once, then reported in order.
	engine.EachWave(apps, func(i int) {
		if it := items[i]; it.refused == "" && it.waiting == "" && config.BlockedBy(*it.app, failed) == "" {
			results[i] = p.applyItem(ctx, forge, repo, branch.Name, branch.SHA, it)
		}
	}, func(wave []int) bool {
		for _, i := range wave {
			it := items[i]
			name := it.app.Name
			switch {
			case it.refused != "":
				failed[name] = true
				refusals = append(refusals, name+": "+it.refused)
				p.emit(SyncEvent{Kind: config.EventSyncFailed, Repo: repo, App: name, Revision: branch.SHA, Message: it.refused})
				continue
			case it.waiting != "":
				failed[name] = true
				waiting = append(waiting, name+": "+it.waiting)
				continue
			}
			if dep := config.BlockedBy(*it.app, failed); dep != "" {
				failed[name] = true
				refusals = append(refusals, fmt.Sprintf("%s: not applied, its dependency %s was not", name, dep))
				continue
			}
			res := results[i]
			if res.busy != "" {
				failed[name] = true
				waiting = append(waiting, name+": "+res.busy)
				continue
			}
			if res.err != nil {
				failed[name] = true
				refusals = append(refusals, fmt.Sprintf("%s: %v", name, res.err))
				p.emit(SyncEvent{Kind: config.EventSyncFailed, Repo: repo, App: name, Revision: branch.SHA, PR: &it.pr.Ref, Message: res.err.Error()})
			} else if res.skipped == "" {
				p.emit(SyncEvent{Kind: config.EventSyncSucceeded, Repo: repo, App: name, Revision: branch.SHA, PR: &it.pr.Ref, Message: res.summary})
			}
			if res.skipped != "" {
				continue
			}
			if _, ok := byPR[it.pr.Ref.Number]; !ok {
				prs = append(prs, it.pr)
			}
			byPR[it.pr.Ref.Number] = append(byPR[it.pr.Ref.Number], res)
			// A merged pull request's locks end with the sync of its merge.
			_ = p.locker().Release(ctx, prLockKey(repo, name), prHolder(it.pr.Ref))
		}
		return true
	})
	var errs []error
	for _, pr := range prs {
		body := syncComment(fmt.Sprintf("%s merged as `%s` and synced:", prNumber(pr.Ref), engine.ShortRevision(branch.SHA)), byPR[pr.Ref.Number])
		if _, err := forge.CreateComment(ctx, pr.Ref, body); err != nil {
			errs = append(errs, fmt.Errorf("comment the sync result on %s: %w", pr.Ref, err))
		}
	}
	state, desc := scm.StatusSuccess, "applied "+strings.Join(appliedNames(byPR), ", ")
	switch {
	case len(refusals) > 0:
		state, desc = scm.StatusFailure, strings.Join(refusals, "; ")
	case len(waiting) > 0:
		state, desc = scm.StatusPending, strings.Join(waiting, "; ")
	case len(byPR) == 0:
		desc = "in sync"
	}
	p.report(ctx, forge, repo, branch.SHA, state, desc, t)
	return errors.Join(errs...)
}

// appliedNames lists the apps applied, sorted.
func appliedNames(byPR map[int][]syncResult) []string {
	var out []string
	for _, rs := range byPR {
		for _, r := range rs {
			out = append(out, r.app)
		}
	}
	slices.Sort(out)
	return out
}

// report sets the gitops/sync status of a default-branch commit. The
// periodic reconcile reports a commit once per description, so a refusal
// does not repeat every interval.
func (p *Previewer) report(ctx context.Context, forge scm.StatusSetter, repo scm.RepoRef, sha string, state scm.StatusState, desc string, t Trigger) {
	key := repo.String() + "@" + sha
	if t.Reason == ReasonReconcile && p.planCache().reported(key, string(state)+desc) {
		return
	}
	p.planCache().setReported(key, string(state)+desc)
	_ = forge.SetStatus(ctx, repo, scm.Status{SHA: sha, Context: SyncContext, State: state, Description: desc})
}

// inSync reports whether r's cluster has its plan: the inventory records
// this plan hash (the bot synced it), or the plan changes nothing.
func inSync(ctx context.Context, e *engine.Engine, r *engine.Rendered, plan string) (bool, error) {
	if !r.IsHelm() {
		inv, err := e.Cluster.ReadInventory(ctx, r.Inventory())
		if err != nil {
			return false, err
		}
		if inv.Exists && inv.Provenance.PlanHash == plan {
			return true, nil
		}
	}
	cs, err := e.Plan(ctx, r, engine.PlanOptions{})
	if err != nil {
		return false, err
	}
	s := cs.Summary()
	return s.Created+s.Configured+s.Deleted == 0, nil
}

// clusterEngine is e with app's cluster.
func (p *Previewer) clusterEngine(e *engine.Engine, app config.App) (*engine.Engine, error) {
	name := p.clusterOf(app)
	target, ok := p.Clusters[name]
	if !ok {
		return nil, fmt.Errorf("cluster %q is not one the bot can reach; add it to the bot's clusters", name)
	}
	client, err := cluster.New(target, cluster.Options{})
	if err != nil {
		return nil, fmt.Errorf("connect to cluster %s: %w", name, err)
	}
	out := *e
	out.Cluster = client
	return &out, nil
}

// renderApps renders the named apps of tree at sha: the local ones in one
// batch, those with a Git source one by one; a remote chart has none.
func (p *Previewer) renderApps(ctx context.Context, repo scm.RepoRef, sha string, tree *prTree, names []string) map[string]*engine.Rendered {
	rendered := p.renderLocal(ctx, repo, sha, tree)
	out := map[string]*engine.Rendered{}
	for _, name := range names {
		app, _ := tree.repo.App(name)
		switch {
		case rendered[name] != nil:
			out[name] = rendered[name]
		case app.Source != nil:
			r, _ := tree.engine.RenderOne(ctx, engine.AppUnit(tree.repo, app, engine.Namespace(app, "", "")))
			p.planCache().record(repo.String(), sha, []engine.Rendered{*r})
			out[name] = r
		}
	}
	return out
}

// mergedPulls are the merged pull requests whose merge commits are shas,
// newest commit first, each once.
func (p *Previewer) mergedPulls(ctx context.Context, forge SyncForge, repo scm.RepoRef, shas []string) ([]*scm.PullRequest, error) {
	var out []*scm.PullRequest
	seen := map[int]bool{}
	for i := len(shas) - 1; i >= 0; i-- {
		prs, err := forge.PullRequestsOfCommit(ctx, repo, shas[i])
		if err != nil {
			return nil, fmt.Errorf("find the pull request of %s: %w", shas[i], err)
		}
		for _, pr := range prs {
			if pr.State != "merged" || pr.MergeCommitSHA != shas[i] || seen[pr.Ref.Number] {
				continue
			}
			seen[pr.Ref.Number] = true
			if pr.Ref.Repo.FullName == "" {
				pr.Ref.Repo = repo
			}
			out = append(out, &pr)
		}
	}
	return out, nil
}

// judgeMerge decides whether it may be applied: the newest merged pull
// request that touched its app must have brought exactly this plan (its
// head's plan) and have satisfied its base's policy before it merged; the
// deploy windows must be open now; no other pull request may hold the
// app's lock.
func (p *Previewer) judgeMerge(ctx context.Context, forge SyncForge, repo scm.RepoRef, head string, it *syncItem, pulls []*scm.PullRequest) error {
	name := it.app.Name
	for _, pr := range pulls {
		base, problem, err := baseConfig(ctx, forge, pr)
		if err != nil {
			return err
		}
		if problem != nil {
			continue // no gitops.yaml at its base: it touched no app
		}
		apps, changed, err := p.touchedBy(ctx, forge, pr, base)
		if err != nil {
			return err
		}
		if !slices.Contains(apps, name) {
			continue
		}
		approved, err := p.headPlan(ctx, forge, pr, base, name)
		if err != nil {
			return err
		}
		if approved != it.plan {
			it.refused = fmt.Sprintf("the plan at %s differs from the plan %s's reviewers approved (the merge combined it with other changes); not applied: open a pull request to preview and approve it",
				engine.ShortRevision(head), prNumber(pr.Ref))
			return nil
		}
		d, why, err := p.decide(ctx, forge, gate.Change{PR: pr, Base: base, Apps: []string{name}, Changed: changed,
			Plans: map[string]string{name: it.plan}, MergedAt: pr.MergedAt, Now: time.Now()})
		switch {
		case err != nil:
			return err
		case why != "":
			it.refused = why
		case !d.Approved:
			it.refused = fmt.Sprintf("%s was merged without the approval its policy needs (%s); not applied", prNumber(pr.Ref), strings.Join(gate.Only(d).ApprovalReasons, "; "))
		case !d.Open:
			it.waiting = strings.Join(gate.Only(d).WindowReasons, "; ")
		default:
			it.pr, it.approvers = pr, d.Approvers
			if l, ok, err := p.locker().Get(ctx, prLockKey(repo, name)); err == nil && ok && l.Holder != prHolder(pr.Ref) {
				it.pr, it.refused = nil, "locked by "+holderName(repo, l.Holder)+", which synced it before merging; it syncs when that pull request merges or closes, or a maintainer comments /gitops unlock "+name
			}
		}
		return nil
	}
	it.refused = fmt.Sprintf("changed at %s without an approved pull request (a direct push?); not applied", engine.ShortRevision(head))
	return nil
}

// touchedBy is the apps pr touches and the files it changes, from the
// preview of its head or rendered now.
func (p *Previewer) touchedBy(ctx context.Context, forge SyncForge, pr *scm.PullRequest, base *config.Repository) ([]string, []string, error) {
	if apps, files, ok := p.planCache().getTouched(pr.Ref.Repo.String(), pr.HeadSHA); ok {
		return apps, files, nil
	}
	return p.renderHead(ctx, forge, pr, base)
}

// applyItem applies one approved app under its apply lock (two replicas
// never apply one app at once), recorded as a deployment.
func (p *Previewer) applyItem(ctx context.Context, forge scm.Deployer, repo scm.RepoRef, ref, revision string, it *syncItem) syncResult {
	name := it.app.Name
	res := syncResult{app: name, cluster: p.clusterOf(*it.app)}
	holder := p.identity()
	key := applyLockKey(repo, name)
	ctx, release, l, ok, err := hold(ctx, p.locker(), key, holder)
	switch {
	case err != nil:
		res.err = fmt.Errorf("take the apply lock: %w", err)
		return res
	case !ok:
		res.busy = "being applied by " + l.Holder
		return res
	}
	defer release()
	// Another replica may have applied it since this one looked.
	if synced, err := inSync(ctx, it.engine, it.r, it.plan); err == nil && synced {
		res.skipped = "already in sync"
		return res
	}
	id, derr := forge.CreateDeployment(ctx, repo, scm.Deployment{Ref: ref, SHA: revision, Environment: res.cluster + "/" + name,
		Description: fmt.Sprintf("kubectl-gitops sync of %s from %s", name, prNumber(it.pr.Ref))})
	out, err := it.engine.Apply(ctx, it.r, engine.ApplyOptions{
		Revision:    revision,
		Provenance:  cluster.Provenance{PullRequest: prName(it.pr), Approvers: it.approvers, PlanHash: it.plan},
		Description: "kubectl-gitops bot",
		Wait:        true,
	})
	res.summary, res.err = applySummary(out), err
	if derr == nil {
		state, desc := scm.DeploymentSuccess, res.summary
		if err != nil {
			state, desc = scm.DeploymentFailure, err.Error()
		}
		_ = forge.SetDeploymentState(ctx, repo, id, state, desc)
	}
	return res
}

// prName names a pull request on the inventory: its URL, else its ref.
func prName(pr *scm.PullRequest) string {
	if pr.URL != "" {
		return pr.URL
	}
	return pr.Ref.String()
}

// applySummary says what an apply did, with the health after the wait.
func applySummary(r *engine.ApplyResult) string {
	switch {
	case r == nil:
		return ""
	case r.Helm != nil:
		verb := "upgraded"
		if r.Helm.Installed {
			verb = "installed"
		}
		return fmt.Sprintf("release %s %s to revision %d (%s)", r.Helm.Name, verb, r.Helm.Revision, r.Helm.Status)
	case r.Objects != nil:
		health := "healthy"
		for _, w := range r.Objects.Wait {
			if w.Status != "Current" {
				health = "not healthy: " + w.String()
				break
			}
		}
		return r.Objects.Summary().String() + "; " + health
	}
	return ""
}

// syncComment is the comment reporting a sync on its pull request.
func syncComment(lead string, results []syncResult) string {
	var b strings.Builder
	b.WriteString("### kubectl gitops sync\n\n")
	b.WriteString(lead + "\n\n| App | Cluster | Result |\n|---|---|---|\n")
	for _, r := range results {
		text := r.summary
		if r.err != nil {
			text = "**failed:** " + r.err.Error()
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", r.app, r.cluster, markdownCell(text))
	}
	return b.String()
}

// markdownCell keeps text inside one table cell.
func markdownCell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", "<br>").Replace(s)
}

// SyncPull answers /gitops sync [app...]: it applies the pull request's
// head, before the merge, like Atlantis. Each app (those named, or every
// app the pull request touches) must pass the same gate as a merge: its
// base's policy satisfied on this plan and the deploy windows open; the
// pull request must hold the app's base changes (undiverged); no other
// pull request may hold its lock. A synced app stays locked by the pull
// request until it merges or closes.
func (p *Previewer) SyncPull(ctx context.Context, forge SyncForge, pr *scm.PullRequest, t Trigger) error {
	if pr.State != "open" {
		return p.answer(ctx, forge, pr, "Only an open pull request can be synced.")
	}
	if pr.Fork {
		return p.answer(ctx, forge, pr, "A pull request from a fork cannot be synced before it merges.")
	}
	base, problem, err := baseConfig(ctx, forge, pr)
	if err != nil {
		return err
	}
	if problem != nil {
		return p.answer(ctx, forge, pr, problem.Note)
	}
	tree, err := p.checkout(ctx, forge, headOf(pr), base, pr.HeadSHA)
	if err != nil {
		return err
	}
	defer tree.remove()
	if tree.loadErr != nil {
		return p.answer(ctx, forge, pr, "Nothing synced: "+tree.loadErr.Error())
	}
	rendered, _, set, err := p.touchedApps(ctx, forge, pr, base, tree)
	if err != nil {
		return err
	}
	targets := set.apps
	if len(t.Args) > 0 {
		for _, a := range t.Args {
			if !slices.Contains(set.apps, a) {
				return p.answer(ctx, forge, pr, fmt.Sprintf("Nothing synced: this pull request does not touch an app named %q; it touches: %s.", a, listOrNone(set.apps)))
			}
		}
		targets = t.Args
	}
	if len(targets) == 0 {
		return p.answer(ctx, forge, pr, "Nothing synced: this pull request touches no app.")
	}
	branch, err := forge.DefaultBranch(ctx, pr.Ref.Repo)
	if err != nil {
		return fmt.Errorf("read the default branch of %s: %w", pr.Ref.Repo, err)
	}
	repo := pr.Ref.Repo
	var results []syncResult
	var refusals []string
	for _, name := range targets {
		it, why, err := p.pullItem(ctx, forge, pr, base, tree, rendered[name], set, branch)
		if err != nil {
			return err
		}
		if why != "" {
			refusals = append(refusals, fmt.Sprintf("- **%s:** %s", name, why))
			continue
		}
		res := p.applyItem(ctx, forge, repo, pr.HeadRef, pr.HeadSHA, it)
		if skipped := cmp.Or(res.busy, res.skipped); skipped != "" {
			refusals = append(refusals, fmt.Sprintf("- **%s:** not applied now: %s", name, skipped))
			continue
		}
		results = append(results, res)
	}
	var b strings.Builder
	if len(results) > 0 {
		b.WriteString(syncComment(fmt.Sprintf("Synced `%s` before merging, as @%s asked. The synced apps stay locked by this pull request until it merges or closes.", engine.ShortRevision(pr.HeadSHA), t.Sender), results))
	} else {
		b.WriteString("### kubectl gitops sync\n\n")
	}
	if len(refusals) > 0 {
		b.WriteString("\nNot synced:\n\n" + strings.Join(refusals, "\n") + "\n")
	}
	return p.answer(ctx, forge, pr, b.String())
}

// pullItem checks one app of /gitops sync; why says why it may not sync.
func (p *Previewer) pullItem(ctx context.Context, forge SyncForge, pr *scm.PullRequest, base *config.Repository, tree *prTree, r *engine.Rendered, set touchedSet, branch scm.Branch) (*syncItem, string, error) {
	repo := pr.Ref.Repo
	switch {
	case r == nil:
		return nil, "its chart comes from a chart repository or registry, which the bot does not fetch for pull requests", nil
	case r.Err != nil:
		return nil, fmt.Sprintf("it does not render at %s: %v", engine.ShortRevision(pr.HeadSHA), r.Err), nil
	}
	name := r.App.Name
	if l, ok, err := p.locker().Get(ctx, prLockKey(repo, name)); err != nil {
		return nil, "", fmt.Errorf("read the lock of %s: %w", name, err)
	} else if ok && l.Holder != prHolder(pr.Ref) {
		return nil, fmt.Sprintf("locked by %s, which synced it first; it can sync when that pull request merges or closes, or a maintainer comments `/gitops unlock %s`", holderName(repo, l.Holder), name), nil
	}
	diverged, err := p.diverged(ctx, forge, pr, branch, name)
	if err != nil {
		return nil, "", err
	}
	if diverged {
		return nil, fmt.Sprintf("the default branch changed it since this pull request's base; merge %s into this branch (or rebase) and sync again", branch.Name), nil
	}
	plan, _ := p.planCache().get(repo.String(), pr.HeadSHA, name)
	d, why, err := p.decide(ctx, forge, gate.Change{PR: pr, Base: base, Apps: []string{name}, Changed: set.files, Plans: map[string]string{name: plan}, Now: time.Now()})
	switch {
	case err != nil:
		return nil, "", err
	case why != "":
		return nil, why, nil
	case !d.Allowed:
		reasons := strings.Join(gate.Only(d).Reasons, "; ")
		if d.Approved || !gate.StalePlan(d) {
			return nil, reasons, nil
		}
		return nil, "the plan changed since it was approved; re-review (" + reasons + ")", nil
	}
	app, _ := tree.repo.App(name)
	e, err := p.clusterEngine(tree.engine, *app)
	if err != nil {
		return nil, err.Error(), nil
	}
	if _, ok, err := p.locker().Acquire(ctx, prLockKey(repo, name), prHolder(pr.Ref), 0); err != nil || !ok {
		return nil, "another pull request took its lock just now", err
	}
	return &syncItem{app: app, r: r, engine: e, plan: plan, pr: pr, approvers: d.Approvers}, "", nil
}

// diverged reports whether the default branch changed app since pr's
// base: its plan at the branch's head differs from its plan at the base.
func (p *Previewer) diverged(ctx context.Context, forge SyncForge, pr *scm.PullRequest, branch scm.Branch, app string) (bool, error) {
	if branch.SHA == pr.BaseSHA {
		return false, nil
	}
	o := origin{repo: pr.Ref.Repo, url: branch.CloneURL}
	if o.url == "" {
		o.url = pr.CloneURL
	}
	at, err := p.planAt(ctx, forge, o, branch.SHA, app)
	if err != nil {
		return false, err
	}
	before, err := p.planAt(ctx, forge, o, pr.BaseSHA, app)
	if err != nil {
		return false, err
	}
	return at != before, nil
}

// headPlan is app's plan at pr's head as its preview rendered it, or, when
// no preview in this process did (a restart, another replica), as the
// approval recorded it (Records), else rendered again from the head (in
// the sandbox, under base's policy for sources).
func (p *Previewer) headPlan(ctx context.Context, forge scm.CloneCredentials, pr *scm.PullRequest, base *config.Repository, app string) (string, error) {
	key := pr.Ref.Repo.String()
	if h, ok := p.planCache().get(key, pr.HeadSHA, app); ok {
		return h, nil
	}
	if p.recallApproved(ctx, pr.Ref, pr.HeadSHA) {
		if h, ok := p.planCache().get(key, pr.HeadSHA, app); ok {
			return h, nil
		}
	}
	tree, err := p.checkout(ctx, forge, headOf(pr), base, pr.HeadSHA)
	if err != nil {
		return "", err
	}
	defer tree.remove()
	if tree.loadErr == nil {
		p.renderApps(ctx, pr.Ref.Repo, pr.HeadSHA, tree, []string{app})
	}
	h, _ := p.planCache().get(key, pr.HeadSHA, app)
	return h, nil
}

// planAt is app's plan hash at sha of a trusted repository, "" when the
// app is not there or does not render.
func (p *Previewer) planAt(ctx context.Context, forge scm.CloneCredentials, o origin, sha, app string) (string, error) {
	key := o.repo.String()
	if h, ok := p.planCache().get(key, sha, app); ok {
		return h, nil
	}
	if _, _, ok := p.planCache().getTouched(key, "rendered@"+sha); ok {
		return "", nil // rendered before: the app is not there
	}
	tree, err := p.checkout(ctx, forge, o, nil, sha)
	if err != nil {
		return "", err
	}
	defer tree.remove()
	if tree.loadErr == nil {
		names := make([]string, len(tree.repo.Apps))
		for i, a := range tree.repo.Apps {
			names[i] = a.Name
		}
		p.renderApps(ctx, o.repo, sha, tree, names)
	}
	p.planCache().putTouched(key, "rendered@"+sha, touchedSet{})
	h, _ := p.planCache().get(key, sha, app)
	return h, nil
}

// Unlock answers /gitops unlock [app...] from a maintainer (admin access):
// it frees the locks of the apps named, or of every app the pull request
// touches, whoever holds them.
func (p *Previewer) Unlock(ctx context.Context, forge SyncForge, pr *scm.PullRequest, t Trigger) error {
	perm, err := forge.Permission(ctx, pr.Ref.Repo, t.Sender)
	if err != nil {
		return fmt.Errorf("check %s's permission on %s: %w", t.Sender, pr.Ref.Repo, err)
	}
	if perm != scm.PermissionAdmin {
		return p.answer(ctx, forge, pr, fmt.Sprintf("@%s: only a maintainer (admin access) can unlock apps.", t.Sender))
	}
	apps := t.Args
	if len(apps) == 0 {
		base, problem, err := baseConfig(ctx, forge, pr)
		if err != nil {
			return err
		}
		if problem == nil {
			if apps, _, err = p.touchedBy(ctx, forge, pr, base); err != nil {
				return err
			}
		}
	}
	var lines []string
	for _, app := range apps {
		key := prLockKey(pr.Ref.Repo, app)
		l, ok, err := p.locker().Get(ctx, key)
		if err != nil {
			return fmt.Errorf("read the lock of %s: %w", app, err)
		}
		if !ok {
			lines = append(lines, fmt.Sprintf("- %s was not locked", app))
			continue
		}
		if err := p.locker().ForceRelease(ctx, key); err != nil {
			return fmt.Errorf("unlock %s: %w", app, err)
		}
		lines = append(lines, fmt.Sprintf("- %s unlocked (was held by %s)", app, holderName(pr.Ref.Repo, l.Holder)))
	}
	if len(lines) == 0 {
		lines = []string{"- no app to unlock"}
	}
	return p.answer(ctx, forge, pr, "### kubectl gitops unlock\n\n"+strings.Join(lines, "\n")+"\n")
}

// ReleaseLocks frees the pull-request locks of repo held by pull requests
// not in open: they merged or closed.
func (p *Previewer) ReleaseLocks(ctx context.Context, repo scm.RepoRef, open []int) error {
	keep := map[string]bool{}
	for _, n := range open {
		keep[prHolder(scm.PRRef{Repo: repo, Number: n})] = true
	}
	return p.releaseIf(ctx, repo, func(holder string) bool { return !keep[holder] })
}

// ReleasePull frees the locks pr holds.
func (p *Previewer) ReleasePull(ctx context.Context, pr scm.PRRef) error {
	return p.releaseIf(ctx, pr.Repo, func(holder string) bool { return holder == prHolder(pr) })
}

// releaseIf frees repo's pull-request locks whose holder release accepts.
func (p *Previewer) releaseIf(ctx context.Context, repo scm.RepoRef, release func(holder string) bool) error {
	locks, err := p.locker().List(ctx)
	if err != nil {
		return fmt.Errorf("list the locks: %w", err)
	}
	prefix := prLockKey(repo, "")
	var errs []error
	for _, l := range locks {
		if strings.HasPrefix(l.Key, prefix) && strings.HasPrefix(l.Holder, repo.String()+"#") && release(l.Holder) {
			if err := p.locker().Release(ctx, l.Key, l.Holder); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// holderName names a lock's holder for a comment: a pull request of repo
// as the forge links it (#12, GitLab !12), anything else as it is.
func holderName(repo scm.RepoRef, holder string) string {
	n, ok := strings.CutPrefix(holder, repo.String()+"#")
	if !ok {
		return holder
	}
	return prPrefix(repo) + n
}

// prPrefix is how a forge's comments name a pull request: "#" on GitHub,
// "!" on GitLab (where "#" names an issue).
func prPrefix(repo scm.RepoRef) string {
	if repo.Kind == scm.GitLab {
		return "!"
	}
	return "#"
}

// prNumber names pr in a comment or status: "#12" or "!12".
func prNumber(pr scm.PRRef) string { return fmt.Sprintf("%s%d", prPrefix(pr.Repo), pr.Number) }

// answer comments on pr.
func (p *Previewer) answer(ctx context.Context, forge scm.Commenter, pr *scm.PullRequest, body string) error {
	if _, err := forge.CreateComment(ctx, pr.Ref, body); err != nil {
		return fmt.Errorf("comment on %s: %w", pr.Ref, err)
	}
	return nil
}

// listOrNone lists names, or says none.
func listOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
