package config

import "time"

// Defaults that Default fills in.
const (
	DefaultWaitTimeout       = 5 * time.Minute
	DefaultOrder             = OrderAsc
	DefaultPullRequestBranch = "gitops/images/{{.Name}}"
	DefaultPullRequestTitle  = "Update {{.Name}} to {{.NewTag}}"
	// DefaultDismissStale keeps approvals while the plan is the one
	// approved, so a rebase that renders the same objects keeps them.
	DefaultDismissStale = StalePlan
	DefaultTimeZone     = "UTC"
	DefaultDigest       = DigestNone
)

// DefaultExcludes returns the exclude list of an image policy that sets
// none: cosign stores signatures, attestations and SBOMs as tags of the
// image (sha256-….sig, .att, .sbom), and none of them is a release.
func DefaultExcludes() []string {
	return []string{`^.*\.sig$`, `^.*\.att$`, `^.*\.sbom$`}
}

// Orders of an alphabetical or numerical tag policy.
const (
	OrderAsc  = "asc"
	OrderDesc = "desc"
)

// Default fills in the defaults of unset fields. Load and Parse call it; call
// it yourself on a Repository built in code. It is idempotent.
func (r *Repository) Default() {
	for i := range r.Apps {
		a := &r.Apps[i]
		if a.Wait == nil {
			a.Wait = &Wait{}
		}
		if a.Wait.Timeout.Duration == 0 {
			a.Wait.Timeout.Duration = DefaultWaitTimeout
		}
	}
	for i := range r.Images {
		p := &r.Images[i]
		if p.Exclude == nil {
			p.Exclude = DefaultExcludes()
		}
		if p.Digest == "" {
			p.Digest = DefaultDigest
		}
		for _, o := range []*OrderPolicy{p.Policy.Alphabetical, p.Policy.Numerical} {
			if o != nil && o.Order == "" {
				o.Order = DefaultOrder
			}
		}
		if p.PullRequest == nil {
			p.PullRequest = &PullRequest{}
		}
		if p.PullRequest.Branch == "" {
			p.PullRequest.Branch = DefaultPullRequestBranch
		}
		if p.PullRequest.Title == "" {
			p.PullRequest.Title = DefaultPullRequestTitle
		}
	}
	for i := range r.Approvals {
		a := &r.Approvals[i]
		if a.DismissStale == "" {
			a.DismissStale = DefaultDismissStale
		}
		for j := range a.Windows {
			if a.Windows[j].TimeZone == "" {
				a.Windows[j].TimeZone = DefaultTimeZone
			}
		}
	}
}

// App returns the app called name.
func (r *Repository) App(name string) (*App, bool) {
	for i := range r.Apps {
		if r.Apps[i].Name == name {
			return &r.Apps[i], true
		}
	}
	return nil, false
}

// SyncOf is how the bot syncs app: its own sync, else the repository's,
// else SyncManual.
func (r *Repository) SyncOf(app *App) SyncMode {
	switch {
	case app != nil && app.Sync != "":
		return app.Sync
	case r.Sync != "":
		return r.Sync
	}
	return SyncManual
}
