package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kubectl-gitops/kubectl-gitops/internal/config"
	"github.com/kubectl-gitops/kubectl-gitops/internal/gitrepo"
	"github.com/kubectl-gitops/kubectl-gitops/internal/images"
	"github.com/kubectl-gitops/kubectl-gitops/internal/images/setter"
	"github.com/kubectl-gitops/kubectl-gitops/internal/lease"
	"github.com/kubectl-gitops/kubectl-gitops/internal/report"
	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
)

// CommandUnhold lifts the hold of image policies (/gitops unhold [policy...]).
const CommandUnhold = "unhold"

// Defaults of image automation.
const (
	DefaultImageCheckInterval       = time.Minute
	DefaultMaxOpenImagePullRequests = 10
	DefaultMaxNewImagePullRequests  = 2
	DefaultImageAuthorName          = "gitops-bot"
	DefaultImageAuthorEmail         = "gitops-bot@users.noreply.localhost"
	imagePullRequestMarker          = "<!-- gitops-bot:image-update -->"
	imageBodyMaxEdits               = 50
	imageOpenedWindow               = time.Hour
)

// ImageRunner runs image automation: *ImageUpdater in the service.
type ImageRunner interface {
	// UpdateImages scans the registries of repo's image policies and
	// opens, updates or closes its image update pull requests. hinted are
	// image repositories a receiver said have new tags: their policies are
	// listed again even when the cache is fresh.
	UpdateImages(ctx context.Context, forge scm.Forge, repo scm.RepoRef, hinted []string) error
	// Unhold answers /gitops unhold [policy...] on pr.
	Unhold(ctx context.Context, forge scm.Forge, pr *scm.PullRequest, t Trigger) error
}

// ImageUpdater is the bot's image automation. For each repository it
// reads the default branch's gitops.yaml and marked values, scans the
// registries, and keeps one pull request per policy (or group) that moves
// the marked values to the newest tag: created from a branch the bot owns,
// force-pushed when a newer tag appears, closed when superseded or no
// longer needed. A pull request a person closed unmerged is not proposed
// again for the same tags; a policy whose tag Git went back on (a merged
// update reverted, a tag lowered by hand) is held until a newer tag
// appears or someone comments /gitops unhold.
type ImageUpdater struct {
	Scanner *images.Scanner
	// Suspensions is the switch `kubectl gitops images suspend` writes;
	// nil: only gitops.yaml's suspend: counts.
	Suspensions interface {
		List(ctx context.Context) ([]lease.Suspension, error)
	}
	// Records keep what the updater must remember (the ConfigMap
	// lease.ImageStateName); nil keeps it in memory.
	Records ImageRecords
	// CacheDir holds checkouts of default branches.
	CacheDir string
	// Author signs the commits; Signer, when set, signs them too.
	Author gitrepo.Signature
	Signer gitrepo.Signer
	// MaxOpen bounds the open image pull requests per repository,
	// MaxNewPerHour the ones opened in an hour.
	MaxOpen       int
	MaxNewPerHour int
	// Refresh queues a preview of a pull request the updater opened or
	// pushed to (Bot.Refresh); nil leaves it to the webhook and reconcile.
	Refresh func(pr scm.PRRef)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// AllowFile lets tests push to file URLs.
	AllowFile bool

	// registry, when set, is the scanner's keychain, read again before
	// each check.
	registry *registryKeychain

	mu     sync.Mutex
	memory *memoryRecords
	// checkouts are the default branch checkout kept per repository.
	checkouts map[string]*checkout
}

// checkout is a repository's default branch checked out, with what its
// markers hold, read once per commit.
type checkout struct {
	dir     string
	current map[string]*setter.Current
}

// checkoutOf returns the checkout of repo at dir, the default branch now,
// and removes the one before it: checkouts of every commit would fill the
// disk, and the latest serves every check until the branch moves.
func (u *ImageUpdater) checkoutOf(repo scm.RepoRef, dir string) *checkout {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.checkouts == nil {
		u.checkouts = map[string]*checkout{}
	}
	old := u.checkouts[repo.String()]
	if old != nil && old.dir == dir {
		return old
	}
	if old != nil {
		_ = os.RemoveAll(old.dir)
	}
	c := &checkout{dir: dir}
	u.checkouts[repo.String()] = c
	return c
}

// ImageRecords keep image automation's memory: *lease.Records in the
// service.
type ImageRecords interface {
	RecordStore
	// All returns every record by key, in one read.
	All(ctx context.Context) (map[string]string, error)
	Delete(ctx context.Context, key string) error
}

var _ ImageRecords = (*lease.Records)(nil)

// memoryRecords are ImageRecords in this process, for a bot without a
// state namespace.
type memoryRecords struct {
	mu sync.Mutex
	m  map[string]string
}

func (r *memoryRecords) Get(_ context.Context, key string) (string, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.m[key]
	return v, ok, nil
}

func (r *memoryRecords) Put(_ context.Context, key, value string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string]string{}
	}
	r.m[key] = value
	return nil
}

func (r *memoryRecords) Delete(_ context.Context, key string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.m, key)
	return nil
}

func (r *memoryRecords) Keys(context.Context) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Sorted(maps.Keys(r.m)), nil
}

func (r *memoryRecords) All(context.Context) (map[string]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.m), nil
}

// imageState is what the updater remembers of a repository.
type imageState struct {
	// Seen is the tag (the lowest marked) Git held per policy at the last
	// look: a lower one now means Git went back.
	Seen map[string]string `json:"seen,omitempty"`
	// PRs are the open image pull requests the updater keeps, by branch.
	PRs map[string]*imagePR `json:"prs,omitempty"`
	// Declined is, per policy, the tag of the last pull request a person
	// closed unmerged: never proposed again.
	Declined map[string]string `json:"declined,omitempty"`
	// Opened are when pull requests were opened, within the last hour.
	Opened []time.Time `json:"opened,omitempty"`
	// Merged is, per policy, the last image pull request merged: where
	// the bot says so when Git goes back on it.
	Merged map[string]int `json:"merged,omitempty"`
}

// imagePR is one image pull request the updater keeps.
type imagePR struct {
	Number int `json:"number"`
	// Head is the commit the updater last pushed to the branch.
	Head string `json:"head"`
	// Tags are the tags it proposes, by policy.
	Tags map[string]string `json:"tags"`
}

// unit is the policies that share one pull request: a group, or one
// policy.
type unit struct {
	name     string
	policies []config.ImagePolicy
}

// UpdateImages implements ImageRunner.
func (u *ImageUpdater) UpdateImages(ctx context.Context, forge scm.Forge, repo scm.RepoRef, hinted []string) error {
	now := u.now()
	if u.registry != nil {
		// Credentials that cannot be read leave everything as it is, as
		// a registry that cannot be read does.
		if err := u.registry.refresh(ctx, now); err != nil {
			return fmt.Errorf("images: %s: registry credentials: %w", repo, err)
		}
	}
	recs, err := u.records().All(ctx)
	if err != nil {
		return fmt.Errorf("images: read the records of %s: %w", repo, err)
	}
	st := decodeState(recs[lease.ImageStateKey(repo.String())])
	// What became of the pull requests kept: merged, closed by a person.
	// Read before the default branch, so that a merge seen here is in it.
	for br, kept := range st.PRs {
		pr, err := forge.GetPullRequest(ctx, scm.PRRef{Repo: repo, Number: kept.Number})
		if err != nil {
			if errors.Is(err, scm.ErrNotFound) {
				delete(st.PRs, br)
				continue
			}
			return fmt.Errorf("images: read #%d of %s: %w", kept.Number, repo, err)
		}
		switch pr.State {
		case "open":
			continue
		case "closed":
			if st.Declined == nil {
				st.Declined = map[string]string{}
			}
			maps.Copy(st.Declined, kept.Tags)
		case "merged":
			if st.Merged == nil {
				st.Merged = map[string]int{}
			}
			for p := range kept.Tags {
				st.Merged[p] = kept.Number
			}
		}
		delete(st.PRs, br)
	}

	branch, err := forge.DefaultBranch(ctx, repo)
	if err != nil {
		return fmt.Errorf("images: read the default branch of %s: %w", repo, err)
	}
	auth := cloneAuth(ctx, forge, repo, branch.CloneURL)
	fetcher := &gitrepo.Fetcher{CacheDir: filepath.Join(u.CacheDir, "images"), Auth: auth, AllowFile: u.AllowFile}
	co, err := fetcher.Fetch(ctx, branch.CloneURL, branch.SHA)
	if err != nil {
		return fmt.Errorf("images: fetch %s of %s: %w", branch.SHA, repo, err)
	}
	ck := u.checkoutOf(repo, co.Dir)
	cfg, err := config.Load(filepath.Join(co.Dir, config.FileName))
	if errors.Is(err, os.ErrNotExist) {
		return u.closeOrphans(ctx, forge, repo, branch, st, nil)
	}
	if err != nil {
		return fmt.Errorf("images: %s at %s: %w", repo, short(branch.SHA), err)
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("images: %s at %s: %w", repo, short(branch.SHA), err)
	}
	names := make([]string, len(cfg.Images))
	for i, p := range cfg.Images {
		names[i] = p.Name
	}
	if len(cfg.Images) == 0 {
		return u.closeOrphans(ctx, forge, repo, branch, st, nil)
	}
	// The files are read again only when an update is written; what the
	// markers hold is read once per commit.
	files := sync.OnceValues(func() (map[string][]byte, error) { return setter.ReadDir(co.Dir) })
	if ck.current == nil {
		tree, err := files()
		if err != nil {
			return fmt.Errorf("images: %s at %s: %w", repo, short(branch.SHA), err)
		}
		if ck.current, err = setter.Read(tree, setter.Options{Policies: names}); err != nil {
			// Nothing is written until the markers are fixed; the pull
			// requests of policies removed are closed all the same.
			err = fmt.Errorf("images: the markers of %s at %s: %w", repo, short(branch.SHA), err)
			return errors.Join(err, u.closeOrphans(ctx, forge, repo, branch, st, names))
		}
	}
	current := ck.current
	suspended, err := u.suspended(ctx, cfg)
	if err != nil {
		return err
	}
	// Scan the policies that are on.
	var reqs []images.Request
	for _, p := range cfg.Images {
		if suspended[p.Name] {
			continue
		}
		repository, _ := images.Repository(p.Image)
		reqs = append(reqs, images.Request{Policy: p, Force: slices.Contains(hinted, repository) || slices.Contains(hinted, p.Image)})
	}
	results := u.Scanner.ScanAll(ctx, reqs)
	decisions := map[string]images.Decision{}
	wentBack := map[string]images.Hold{}
	for i, res := range results {
		p := reqs[i].Policy
		compiled := res.Compiled
		if compiled == nil {
			// The scan did not get to compile it (an image that is no
			// repository): compile it here, for its error.
			var err error
			if compiled, err = images.Compile(p); err != nil {
				return fmt.Errorf("images: %s: policy %s: %w", repo, p.Name, err)
			}
		}
		lowest := images.Lowest(compiled, current[p.Name])
		hold := decodeHold(recs[lease.ImageHoldKey(repo.String(), p.Name)])
		latest := ""
		if res.Err == nil {
			latest = res.Choice.Tag.Name
		}
		if h, went := images.WentBack(compiled, st.Seen[p.Name], lowest, latest, branch.SHA, now); went {
			hold = &h
			if err := u.putHold(ctx, repo, p.Name, hold); err != nil {
				return err
			}
			wentBack[p.Name] = h
		}
		if lowest != "" {
			if st.Seen == nil {
				st.Seen = map[string]string{}
			}
			st.Seen[p.Name] = lowest
		}
		d := images.Decide(compiled, res, current[p.Name], hold)
		if hold != nil && d.Action == images.ActionUpdate {
			// A strictly newer tag lifts the hold.
			if err := u.putHold(ctx, repo, p.Name, nil); err != nil {
				return err
			}
		}
		decisions[p.Name] = d
	}

	var errs []error
	for _, name := range slices.Sorted(maps.Keys(wentBack)) {
		// Say so on the pull request that brought the tag Git went back on.
		if n := st.Merged[name]; n > 0 {
			h := wentBack[name]
			msg := fmt.Sprintf("The default branch went back from %s to %s (commit `%s`), so image automation holds `%s` at %s: it proposes no tag up to %s again until a newer one appears, or someone with write access comments `/gitops unhold %s`.",
				report.EscapeMarkdown(h.From), report.EscapeMarkdown(h.At), short(h.Commit), name, report.EscapeMarkdown(h.At), report.EscapeMarkdown(h.Above), name)
			if _, err := forge.CreateComment(ctx, scm.PRRef{Repo: repo, Number: n}, msg); err != nil {
				errs = append(errs, fmt.Errorf("images: %s: comment on #%d: %w", repo, n, err))
			}
			delete(st.Merged, name)
		}
	}
	for _, un := range imageUnits(cfg) {
		if err := u.updateUnit(ctx, forge, repo, branch, files, names, un, decisions, suspended, st, now); err != nil {
			errs = append(errs, err)
		}
	}
	if err := u.closeOrphans(ctx, forge, repo, branch, st, names); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// closeOrphans closes the kept pull requests none of whose policies the
// default branch declares any more (names; a gitops.yaml without images:
// or none at all declares none), then saves the state.
func (u *ImageUpdater) closeOrphans(ctx context.Context, forge scm.Forge, repo scm.RepoRef, branch scm.Branch, st *imageState, names []string) error {
	declared := map[string]string{}
	for _, n := range names {
		declared[n] = ""
	}
	var errs []error
	for _, br := range slices.Sorted(maps.Keys(st.PRs)) {
		kept := st.PRs[br]
		if sharesPolicy(kept.Tags, declared) {
			continue
		}
		gone := slices.Sorted(maps.Keys(kept.Tags))
		note := fmt.Sprintf("Closed by gitops-bot: the default branch's %s declares no image policy `%s` any more.", config.FileName, strings.Join(gone, "`, `"))
		if err := u.close(ctx, forge, repo, branch, br, kept, st, note); err != nil {
			errs = append(errs, err)
		}
	}
	if err := u.save(ctx, repo, st); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// updateUnit brings one unit's pull request up to date.
func (u *ImageUpdater) updateUnit(ctx context.Context, forge scm.Forge, repo scm.RepoRef, branch scm.Branch, files func() (map[string][]byte, error),
	names []string, un unit, decisions map[string]images.Decision, suspended map[string]bool, st *imageState, now time.Time) error {
	var (
		updates = map[string]setter.Update{}
		ds      []images.Decision
		skipped []string
	)
	var failed []error
	for _, p := range un.policies {
		if suspended[p.Name] {
			continue
		}
		d, ok := decisions[p.Name]
		// No tag qualifying (ErrNoTag, which ErrTooYoung comes with) is
		// the registry's answer; any other error, a failure to read it.
		if ok && d.Err != nil && !errors.Is(d.Err, images.ErrNoTag) {
			failed = append(failed, fmt.Errorf("policy %s: %w", p.Name, d.Err))
		}
		if !ok || d.Update == nil {
			continue
		}
		if st.Declined[p.Name] == d.Update.Tag {
			skipped = append(skipped, p.Name)
			continue
		}
		updates[p.Name] = *d.Update
		ds = append(ds, d)
	}
	if len(failed) > 0 {
		// A registry that could not be read says nothing about the
		// tags: the unit's pull request is left as it is, neither
		// closed nor moved, until a scan reads every policy of it.
		return fmt.Errorf("images: %s: %s left as it is: %w", repo, un.name, errors.Join(failed...))
	}
	allSuspended := true
	mine := map[string]string{}
	for _, p := range un.policies {
		allSuspended = allSuspended && suspended[p.Name]
		mine[p.Name] = ""
	}
	if len(updates) == 0 {
		if allSuspended {
			return nil
		}
		// Nothing to propose any more: Git caught up, the tags proposed
		// were deleted, or a hold.
		var why strings.Builder
		why.WriteString("Closed by gitops-bot: the default branch no longer needs this update.\n")
		for _, p := range un.policies {
			if d, ok := decisions[p.Name]; ok {
				fmt.Fprintf(&why, "\n- `%s`: %s", p.Name, report.EscapeMarkdown(d.Why))
			}
		}
		for _, br := range slices.Sorted(maps.Keys(st.PRs)) {
			if sharesPolicy(st.PRs[br].Tags, mine) {
				if err := u.close(ctx, forge, repo, branch, br, st.PRs[br], st, why.String()); err != nil {
					return err
				}
			}
		}
		return nil
	}
	prTemplates := un.policies[0].PullRequest
	headBranch, err := config.RenderImageTemplate(prTemplates.Branch, u.imageData(ctx, un, ds, false), true)
	if err != nil {
		return fmt.Errorf("images: %s: pullRequest.branch of %s: %w", repo, un.name, err)
	}
	kept := st.PRs[headBranch]
	tree, err := files()
	if err != nil {
		return fmt.Errorf("images: %s: %w", repo, err)
	}
	res, err := setter.Apply(tree, updates, setter.Options{Policies: names})
	if err != nil {
		return fmt.Errorf("images: %s: %w", repo, err)
	}
	if len(res.Files) == 0 {
		return nil
	}
	tags := map[string]string{}
	for name, up := range updates {
		tags[name] = up.Tag
	}
	if kept != nil && maps.Equal(kept.Tags, tags) {
		return nil // the pull request proposes this already
	}
	if kept == nil {
		open := len(st.PRs)
		recent := st.Opened[:0]
		for _, at := range st.Opened {
			if now.Sub(at) < imageOpenedWindow {
				recent = append(recent, at)
			}
		}
		st.Opened = recent
		if open >= u.maxOpen() || len(recent) >= u.maxNewPerHour() {
			return nil // over a limit: the next scan tries again
		}
	}
	data := u.imageData(ctx, un, ds, true)
	title, err := config.RenderImageTemplate(prTemplates.Title, data, true)
	if err != nil {
		return fmt.Errorf("images: %s: pullRequest.title of %s: %w", repo, un.name, err)
	}
	body, err := imageBody(prTemplates.Body, data, res.Edits, skipped)
	if err != nil {
		return fmt.Errorf("images: %s: pullRequest.body of %s: %w", repo, un.name, err)
	}
	message, err := commitMessage(prTemplates.CommitMessage, title, data)
	if err != nil {
		return fmt.Errorf("images: %s: pullRequest.commitMessage of %s: %w", repo, un.name, err)
	}
	pusher := &gitrepo.Pusher{Auth: cloneAuth(ctx, forge, repo, branch.CloneURL), AllowFile: u.AllowFile}
	expect := ""
	if kept != nil {
		expect = kept.Head
	} else if head, err := pusher.BranchHead(ctx, branch.CloneURL, headBranch); err != nil {
		return fmt.Errorf("images: %s: read branch %s: %w", repo, headBranch, err)
	} else if head != "" {
		// A branch of a pull request closed earlier: the updater's own
		// branch name, left behind. It is replaced.
		expect = head
	}
	sig := u.Author
	sig.When = now
	sha, err := pusher.Push(ctx, gitrepo.Change{URL: branch.CloneURL, Base: branch.SHA, Files: res.Files,
		Message: message, Author: sig, Signer: u.Signer, Branch: headBranch, Expect: expect})
	if errors.Is(err, gitrepo.ErrBranchMoved) && kept != nil {
		// A person pushed to the branch: it is theirs now.
		delete(st.PRs, headBranch)
		_, cerr := forge.CreateComment(ctx, scm.PRRef{Repo: repo, Number: kept.Number},
			"gitops-bot stops updating this pull request: someone else pushed to its branch `"+report.EscapeMarkdown(headBranch)+"`.")
		if cerr != nil {
			return fmt.Errorf("images: %s: comment on #%d: %w", repo, kept.Number, cerr)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("images: %s: push %s: %w", repo, headBranch, err)
	}
	if kept != nil {
		ref := scm.PRRef{Repo: repo, Number: kept.Number}
		if err := forge.EditPullRequest(ctx, ref, title, body); err != nil {
			return fmt.Errorf("images: %s: edit #%d: %w", repo, kept.Number, err)
		}
		kept.Head, kept.Tags = sha, tags
		u.refresh(ref)
		return nil
	}
	pr, err := forge.CreatePullRequest(ctx, repo, scm.NewPullRequest{Title: title, Body: body, Head: headBranch, Base: branch.Name})
	if err != nil {
		return fmt.Errorf("images: %s: open a pull request from %s: %w", repo, headBranch, err)
	}
	if st.PRs == nil {
		st.PRs = map[string]*imagePR{}
	}
	st.PRs[headBranch] = &imagePR{Number: pr.Ref.Number, Head: sha, Tags: tags}
	st.Opened = append(st.Opened, now)
	u.refresh(pr.Ref)
	// Older pull requests of these policies on other branches (a branch
	// template naming the tag) are superseded.
	for br, other := range st.PRs {
		if br == headBranch || !sharesPolicy(other.Tags, tags) {
			continue
		}
		note := fmt.Sprintf("Superseded by #%d, which proposes newer tags.", pr.Ref.Number)
		if err := u.close(ctx, forge, repo, branch, br, other, st, note); err != nil {
			return err
		}
	}
	return nil
}

// close closes a kept pull request with a note and deletes its branch.
func (u *ImageUpdater) close(ctx context.Context, forge scm.Forge, repo scm.RepoRef, branch scm.Branch, headBranch string, kept *imagePR, st *imageState, note string) error {
	ref := scm.PRRef{Repo: repo, Number: kept.Number}
	// Until it is closed, the pull request stays in the state: a read or
	// a close that fails is tried again by the next scan, and one merged
	// or closed meanwhile is recorded as such by it.
	if pr, err := forge.GetPullRequest(ctx, ref); err != nil {
		return fmt.Errorf("images: %s: read #%d: %w", repo, kept.Number, err)
	} else if pr.State != "open" {
		return nil
	}
	if _, err := forge.CreateComment(ctx, ref, note); err != nil {
		return fmt.Errorf("images: %s: comment on #%d: %w", repo, kept.Number, err)
	}
	if err := forge.ClosePullRequest(ctx, ref); err != nil {
		return fmt.Errorf("images: %s: close #%d: %w", repo, kept.Number, err)
	}
	delete(st.PRs, headBranch)
	pusher := &gitrepo.Pusher{Auth: cloneAuth(ctx, forge, repo, branch.CloneURL), AllowFile: u.AllowFile}
	if err := pusher.DeleteBranch(ctx, branch.CloneURL, headBranch, kept.Head); err != nil && !errors.Is(err, gitrepo.ErrBranchMoved) {
		return fmt.Errorf("images: %s: delete branch %s: %w", repo, headBranch, err)
	}
	return nil
}

// Unhold implements ImageRunner: it lifts the holds of the policies named,
// or of every held policy, and says so on pr.
func (u *ImageUpdater) Unhold(ctx context.Context, forge scm.Forge, pr *scm.PullRequest, t Trigger) error {
	repo := pr.Ref.Repo
	recs, err := u.records().All(ctx)
	if err != nil {
		return fmt.Errorf("images: read the holds of %s: %w", repo, err)
	}
	var lifted []string
	for _, key := range slices.Sorted(maps.Keys(recs)) {
		r, p, ok := lease.ParseImageHoldKey(key)
		if !ok || r != repo.String() || (len(t.Args) > 0 && !slices.Contains(t.Args, p)) || decodeHold(recs[key]) == nil {
			continue
		}
		if err := u.putHold(ctx, repo, p, nil); err != nil {
			return err
		}
		lifted = append(lifted, p)
	}
	msg := "No image policy is held."
	if len(lifted) > 0 {
		msg = "Lifted the hold of " + report.EscapeMarkdown(strings.Join(lifted, ", ")) + " (asked by @" + report.EscapeMarkdown(t.Sender) + "); the next scan may propose their newest tags again."
	}
	_, err = forge.CreateComment(ctx, pr.Ref, msg)
	return err
}

// imageUnits splits the policies into pull requests: one per group, one
// per policy without a group, in gitops.yaml's order.
func imageUnits(cfg *config.Repository) []unit {
	var out []unit
	index := map[string]int{}
	for _, p := range cfg.Images {
		name := p.Name
		if p.Group != "" {
			name = p.Group
		}
		if i, ok := index[name]; ok {
			out[i].policies = append(out[i].policies, p)
			continue
		}
		index[name] = len(out)
		out = append(out, unit{name: name, policies: []config.ImagePolicy{p}})
	}
	return out
}

// imageData is what pullRequest templates see for the decisions ds of
// unit un; origins are read only when withOrigin (for a body), and escaped
// for markdown.
func (u *ImageUpdater) imageData(ctx context.Context, un unit, ds []images.Decision, withOrigin bool) config.ImageUpdateData {
	data := config.ImageUpdateData{Name: un.name}
	for _, d := range ds {
		up := config.ImageUpdate{Policy: d.Policy, Image: d.Image, OldTag: strings.Join(d.Current, ", "), NewTag: d.Update.Tag, Digest: d.Update.Digest}
		if withOrigin {
			if o, err := u.Scanner.Origin(ctx, d.Image, d.Update.Tag); err == nil {
				up.Source = report.EscapeMarkdown(o.Source)
				up.Revision = report.EscapeMarkdown(strings.ReplaceAll(o.Revision, "`", ""))
			}
		}
		data.Updates = append(data.Updates, up)
	}
	if len(data.Updates) > 0 {
		first := data.Updates[0]
		data.Image, data.OldTag, data.NewTag = first.Image, first.OldTag, first.NewTag
	}
	return data
}

// imageBody is a pull request's description: per policy old → new, the
// image's origin, the lines changed (registry values escaped), or the
// policy's body template over data.
func imageBody(tmpl string, data config.ImageUpdateData, edits []setter.Edit, skipped []string) (string, error) {
	var b strings.Builder
	b.WriteString(imagePullRequestMarker + "\n")
	if tmpl != "" {
		out, err := config.RenderImageTemplate(tmpl, data, false)
		if err != nil {
			return "", err
		}
		b.WriteString(out)
		return b.String(), nil
	}
	b.WriteString("gitops-bot found newer images:\n\n| policy | image | from | to | source |\n|---|---|---|---|---|\n")
	for _, up := range data.Updates {
		origin := up.Source
		if up.Source != "" && up.Revision != "" {
			origin += " @ " + up.Revision
		}
		to := up.NewTag
		if up.Digest != "" {
			to += "@" + up.Digest
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", report.EscapeMarkdown(up.Policy), report.EscapeMarkdown(up.Image),
			report.EscapeMarkdown(up.OldTag), report.EscapeMarkdown(to), origin)
	}
	b.WriteString("\nLines changed (only the values marked with `$imagepolicy`):\n\n")
	for i, e := range edits {
		if i == imageBodyMaxEdits {
			fmt.Fprintf(&b, "- … and %d more\n", len(edits)-i)
			break
		}
		fmt.Fprintf(&b, "- `%s:%d` %s → %s\n", strings.ReplaceAll(e.File, "`", ""), e.Line, report.EscapeMarkdown(e.Old), report.EscapeMarkdown(e.New))
	}
	if len(skipped) > 0 {
		fmt.Fprintf(&b, "\nNot included: %s (a person closed a pull request proposing the same tag).\n", report.EscapeMarkdown(strings.Join(skipped, ", ")))
	}
	b.WriteString("\nThe bot force-pushes this branch when a newer tag appears and closes the pull request when it is superseded. " +
		"It is previewed and gated like any pull request. If you revert it after merging, the bot holds the policy at the reverted version until a newer tag appears or someone comments `/gitops unhold`.\n")
	return b.String(), nil
}

// commitMessage is the message of the bot's commit: the policy's
// commitMessage template, else the title and a line per update.
func commitMessage(tmpl, title string, data config.ImageUpdateData) (string, error) {
	if tmpl != "" {
		return config.RenderImageTemplate(tmpl, data, false)
	}
	var b strings.Builder
	b.WriteString(title + "\n\n")
	for _, up := range data.Updates {
		fmt.Fprintf(&b, "%s: %s → %s\n", up.Policy, up.OldTag, up.NewTag)
	}
	return b.String(), nil
}

// suspended names the policies whose automation is off: suspend: true in
// gitops.yaml, or the switch.
func (u *ImageUpdater) suspended(ctx context.Context, cfg *config.Repository) (map[string]bool, error) {
	out := map[string]bool{}
	for _, p := range cfg.Images {
		if p.Suspend {
			out[p.Name] = true
		}
	}
	if u.Suspensions == nil {
		return out, nil
	}
	list, err := u.Suspensions.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("images: read the suspensions: %w", err)
	}
	for _, s := range list {
		if s.All {
			for _, p := range cfg.Images {
				out[p.Name] = true
			}
			continue
		}
		out[s.Policy] = true
	}
	return out, nil
}

// decodeState reads a repository's record; an empty or unreadable one (of
// an older bot) starts over.
func decodeState(v string) *imageState {
	st := &imageState{}
	if v != "" && json.Unmarshal([]byte(v), st) != nil {
		st = &imageState{}
	}
	if st.PRs == nil {
		st.PRs = map[string]*imagePR{}
	}
	return st
}

func (u *ImageUpdater) save(ctx context.Context, repo scm.RepoRef, st *imageState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := u.records().Put(ctx, lease.ImageStateKey(repo.String()), string(b)); err != nil {
		return fmt.Errorf("images: save the state of %s: %w", repo, err)
	}
	return nil
}

// decodeHold reads a hold's record; nil when there is none (or it is not
// one).
func decodeHold(v string) *images.Hold {
	var h images.Hold
	if v == "" || json.Unmarshal([]byte(v), &h) != nil {
		return nil
	}
	return &h
}

// putHold records policy's hold, or lifts it when h is nil.
func (u *ImageUpdater) putHold(ctx context.Context, repo scm.RepoRef, policy string, h *images.Hold) error {
	key := lease.ImageHoldKey(repo.String(), policy)
	var err error
	if h == nil {
		err = u.records().Delete(ctx, key)
	} else {
		var b []byte
		if b, err = json.Marshal(h); err == nil {
			err = u.records().Put(ctx, key, string(b))
		}
	}
	if err != nil {
		return fmt.Errorf("images: record the hold of %s: %w", policy, err)
	}
	return nil
}

// records are Records, or the memory of this process.
func (u *ImageUpdater) records() ImageRecords {
	if u.Records != nil {
		return u.Records
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.memory == nil {
		u.memory = &memoryRecords{}
	}
	return u.memory
}

func (u *ImageUpdater) refresh(pr scm.PRRef) {
	if u.Refresh != nil {
		u.Refresh(pr)
	}
}

func (u *ImageUpdater) now() time.Time {
	if u.Now != nil {
		return u.Now()
	}
	return time.Now()
}

func (u *ImageUpdater) maxOpen() int {
	if u.MaxOpen > 0 {
		return u.MaxOpen
	}
	return DefaultMaxOpenImagePullRequests
}

func (u *ImageUpdater) maxNewPerHour() int {
	if u.MaxNewPerHour > 0 {
		return u.MaxNewPerHour
	}
	return DefaultMaxNewImagePullRequests
}

// sharesPolicy reports whether two proposals update a policy in common.
func sharesPolicy(a, b map[string]string) bool {
	for p := range a {
		if _, ok := b[p]; ok {
			return true
		}
	}
	return false
}

// cloneAuth gives the forge's clone credentials for url and nothing else.
func cloneAuth(ctx context.Context, forge scm.CloneCredentials, repo scm.RepoRef, url string) func(string) (string, string, bool) {
	return func(u string) (string, string, bool) {
		if u != url {
			return "", "", false
		}
		user, pass, err := forge.CloneCredentials(ctx, repo)
		if err != nil || pass == "" {
			return "", "", false
		}
		return user, pass, true
	}
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

// NewImageUpdater builds image automation from cfg.Images: the registry
// scanner with its credentials, the commit author and signing key, the
// limits, and (with a state block) the switch and the records in the
// bot's namespace.
func NewImageUpdater(cfg Config, state *State) (*ImageUpdater, error) {
	c := cfg.Images
	if c == nil {
		return nil, errors.New("images: the bot's config has no images block")
	}
	// The file and the environment are checked now; they and the pull
	// Secrets are read again before the checks.
	creds := images.Credentials{DockerConfig: c.DockerConfig, Getenv: os.Getenv}
	if _, err := creds.Keychain(); err != nil {
		return nil, fmt.Errorf("images: %w", err)
	}
	keychain := &registryKeychain{creds: creds, secrets: c.PullSecrets}
	if len(c.PullSecrets) > 0 {
		if state == nil {
			return nil, errors.New("images.pullSecrets: the Secrets are read from the bot's namespace; add a state block naming it")
		}
		keychain.read = state.pullSecrets.read
	}
	u := &ImageUpdater{
		Scanner:       &images.Scanner{Keychain: keychain},
		registry:      keychain,
		CacheDir:      cfg.CacheDir,
		Author:        gitrepo.Signature{Name: c.Author.Name, Email: c.Author.Email},
		MaxOpen:       c.MaxOpenPullRequests,
		MaxNewPerHour: c.MaxNewPullRequestsPerHour,
	}
	if k := c.SigningKey; k != nil {
		key, err := os.ReadFile(k.File)
		if err != nil {
			return nil, fmt.Errorf("images.signingKey: %w", err)
		}
		newSigner := gitrepo.NewSSHSigner
		if k.Format == "gpg" {
			newSigner = gitrepo.NewGPGSigner
		}
		if u.Signer, err = newSigner(key, []byte(k.Passphrase.Reveal())); err != nil {
			return nil, fmt.Errorf("images.signingKey %s: %w", k.File, err)
		}
	}
	if state != nil {
		u.Suspensions = state.Suspensions
		u.Records = state.Images
	}
	return u, nil
}
