package approvals

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Policy is an approval policy: what reviews a change needs before it may
// sync, and when syncs may run. The zero Policy needs no approval and has
// no windows; a changes request still blocks it.
type Policy struct {
	// Name names the policy, as gitops.yaml does.
	Name string
	// MinApprovals is how many distinct users must approve.
	MinApprovals int
	// Users must each approve.
	Users []string
	// Teams ("org/team", "@org/team" or a bare team name, as the forge
	// knows it) each need an approval from one of their members, as
	// Facts.Teams lists them.
	Teams []string
	// Codeowners requires, for every changed file, approvals from its
	// code owners (Facts.Codeowners): one owner per file and section, or
	// a GitLab section's count.
	Codeowners bool
	// DismissStale says which approvals survive new commits; "" is
	// StalePlan.
	DismissStale Staleness
	// Windows limit when a change may sync; none means any time.
	Windows []Window
}

// Staleness says which approvals keep counting after new commits.
type Staleness string

const (
	// StalePlan keeps an approval as long as the rendered plan of the
	// change is the one approved: the plan hash recorded for the commit
	// the review was given on equals the head's. A rebase that renders
	// the same objects keeps its approvals; anything that changes what
	// would be applied drops them.
	StalePlan Staleness = "plan"
	// StaleCommit counts an approval only on the commit it was given on.
	// Any value other than StalePlan and "" reads as StaleCommit, the
	// stricter.
	StaleCommit Staleness = "commit"
)

// ReviewState is the verdict of a review, as the forges name it.
type ReviewState string

// Review states. A user's latest review that is not a comment is their
// verdict; a dismissed review withdraws what the user said before it.
const (
	ReviewApproved         ReviewState = "approved"
	ReviewChangesRequested ReviewState = "changes_requested"
	ReviewCommented        ReviewState = "commented"
	ReviewDismissed        ReviewState = "dismissed"
)

// Review is one review of the change.
type Review struct {
	// User wrote the review; State is its verdict.
	User  string
	State ReviewState
	// SHA is the head commit the review was given on; PlanHash is the
	// plan hash recorded for that commit. An empty one matches nothing.
	SHA      string
	PlanHash string
	// At is when the review was submitted. Reviews are read in the order
	// of At, and in the order given where At is equal (or zero).
	At time.Time
}

// Facts are what Evaluate knows about a change, read by the caller from
// the forge and the plan when the decision is needed. User and team names
// are compared without case and without a leading @.
type Facts struct {
	// Now is the time of the decision, for deploy windows.
	Now time.Time
	// Author opened the change; Pushers pushed commits to it. Neither may
	// approve it: whoever wrote code does not review it.
	Author  string
	Pushers []string
	// Bots are the identities the bot acts as; their reviews never count.
	Bots []string
	// HeadSHA is the change's head commit; PlanHash is the hash of its
	// rendered plan ("" while there is none).
	HeadSHA  string
	PlanHash string
	Reviews  []Review
	// CanWrite says who may push to the repository. Approvals count only
	// from users it says true for; a user it says false for cannot
	// satisfy a requirement, one it does not name might.
	CanWrite map[string]bool
	// Teams lists the members of each team the policy or the code owners
	// name, keyed by the name as written there (Needs lists them).
	Teams map[string][]string
	// Emails maps code owners' email addresses to users.
	Emails map[string]string
	// ChangedFiles are the paths the change touches, relative to the
	// repository root (both sides of a rename).
	ChangedFiles []string
	// Codeowners is the CODEOWNERS file of the base branch; nil when it has
	// none.
	Codeowners *Codeowners
}

// State is the state of a commit status.
type State string

// Commit status states.
const (
	StatePending State = "pending"
	StateSuccess State = "success"
	StateFailure State = "failure"
)

// Decision is whether a change may sync, and why not.
//
// Allowed: the reviews satisfy the policy and the deploy windows are open
// now; the change may sync. Pending: not allowed yet, but it can become
// allowed without changing the policy: by more approvals, by a changes
// request resolved, or by waiting for a window (NextOpen). Neither:
// blocked in a way reviews and waiting cannot fix: a requirement nobody
// eligible can meet (a required reviewer who is the author; a team or a
// file's code owners with no member who may approve; code owners
// required with no CODEOWNERS file), or windows that do not open within
// Horizon.
//
// The review verdict alone (the gitops/approval status) is Approved, or
// failure when Blocked, else pending: see ApprovalState.
type Decision struct {
	// App names the app of one decision of EvaluateAll.
	App string

	Allowed bool
	Pending bool
	// Reasons say what is missing, for a person to act on:
	// ApprovalReasons, then WindowReasons. Empty when Allowed.
	Reasons []string
	// NextOpen is when the deploy windows next open, when they are closed
	// at Facts.Now and open within Horizon; zero otherwise.
	NextOpen time.Time

	// Approved: the reviews satisfy the policy.
	Approved bool
	// Blocked: the reviews cannot satisfy the policy, whoever approves.
	Blocked bool
	// Open: the deploy windows let a sync run at Facts.Now.
	Open bool
	// Approvers are the users whose approvals counted, sorted.
	Approvers []string
	// ApprovalReasons say what the reviews lack (the text of the
	// gitops/approval status); WindowReasons say when the windows open.
	ApprovalReasons []string
	WindowReasons   []string

	// Apps are the decisions for each app, from EvaluateAll.
	Apps []Decision
}

// ApprovalState is the state of the review verdict: success when
// Approved, failure when Blocked, pending otherwise.
func (d Decision) ApprovalState() State {
	switch {
	case d.Approved:
		return StateSuccess
	case d.Blocked:
		return StateFailure
	}
	return StatePending
}

// SyncState is the state of the whole decision: success when Allowed,
// pending when Pending, failure otherwise.
func (d Decision) SyncState() State {
	switch {
	case d.Allowed:
		return StateSuccess
	case d.Pending:
		return StatePending
	}
	return StateFailure
}

// Evaluate decides whether a change may sync under a policy. It reads no
// clock and does no I/O: everything comes from p and f.
func Evaluate(p Policy, f Facts) Decision {
	e := newEvaluation(p, f)
	d := e.reviews()
	d.Open = true
	if len(p.Windows) > 0 {
		next, ok := nextOpen(p.Windows, f.Now, f.Now.Add(Horizon))
		d.Open = ok && !next.After(f.Now)
		if !d.Open {
			d.WindowReasons = []string{closedReason(next, ok, windowsLocation(p.Windows))}
			if ok {
				d.NextOpen = next.In(windowsLocation(p.Windows))
			}
		}
	}
	d.finish(d.Open || !d.NextOpen.IsZero())
	return d
}

// finish sets Allowed, Pending and Reasons from the rest; canOpen says
// whether the windows are open or will open.
func (d *Decision) finish(canOpen bool) {
	d.Allowed = d.Approved && d.Open
	d.Pending = !d.Allowed && !d.Blocked && canOpen
	d.Reasons = slices.Concat(d.ApprovalReasons, d.WindowReasons)
	if d.Allowed {
		d.Reasons = nil
	}
}

func closedReason(next time.Time, ok bool, loc *time.Location) string {
	if !ok {
		return "deploy window closed: no window opens within a year; check the policy's windows"
	}
	return "deploy window closed until " + next.In(loc).Format("2006-01-02 15:04 MST")
}

// windowsLocation is the time zone reasons are written in: the first
// window's.
func windowsLocation(ws []Window) *time.Location {
	if len(ws) == 0 {
		return time.UTC
	}
	return ws[0].location()
}

// Check is one app of a change with its policy and facts.
type Check struct {
	App    string
	Policy Policy
	Facts  Facts
}

// EvaluateAll decides whether a change that touches several apps may sync:
// every app's policy must pass. Reasons are each app's, prefixed with its
// name; NextOpen is the first time the windows of all the apps are open
// together (read at the latest Facts.Now, which should be the same for
// all). A change that touches no app is allowed.
func EvaluateAll(checks []Check) Decision {
	all := Decision{Approved: true, Open: true}
	var now time.Time
	var sets [][]Window
	var loc *time.Location
	approvers := map[string]bool{}
	windowed := map[string]bool{}
	for _, c := range checks {
		d := Evaluate(c.Policy, c.Facts)
		d.App = c.App
		all.Apps = append(all.Apps, d)
		all.Approved = all.Approved && d.Approved
		all.Blocked = all.Blocked || d.Blocked
		all.ApprovalReasons = append(all.ApprovalReasons, prefixed(c.App, d.ApprovalReasons)...)
		all.WindowReasons = append(all.WindowReasons, prefixed(c.App, d.WindowReasons)...)
		for _, a := range d.Approvers {
			approvers[a] = true
		}
		if c.Facts.Now.After(now) {
			now = c.Facts.Now
		}
		if len(c.Policy.Windows) > 0 {
			sets = append(sets, c.Policy.Windows)
			windowed[c.App] = true
			if loc == nil {
				loc = windowsLocation(c.Policy.Windows)
			}
		}
	}
	for a := range approvers {
		all.Approvers = append(all.Approvers, a)
	}
	slices.Sort(all.Approvers)
	if len(sets) > 0 {
		next, ok := nextOpenAll(sets, now, now.Add(Horizon))
		all.Open = ok && !next.After(now)
		if !all.Open && ok {
			all.NextOpen = next.In(loc)
		}
		all.WindowReasons = append(all.WindowReasons, jointReason(all, windowed, next, ok, loc)...)
	}
	all.finish(all.Open || !all.NextOpen.IsZero())
	return all
}

// jointReason explains the windows of several apps when their own reasons
// do not: when each opens but never all together, or all together only
// later than the last alone.
func jointReason(all Decision, windowed map[string]bool, next time.Time, ok bool, loc *time.Location) []string {
	if all.Open {
		return nil
	}
	var apps []string
	var latest time.Time
	for _, d := range all.Apps {
		if !windowed[d.App] {
			continue
		}
		if !d.Open && d.NextOpen.IsZero() {
			return nil // that app's reason says it never opens
		}
		apps = append(apps, d.App)
		if d.NextOpen.After(latest) {
			latest = d.NextOpen
		}
	}
	names := strings.Join(apps, ", ")
	switch {
	case !ok:
		return []string{"the deploy windows of " + names + " are never open at the same time within a year"}
	case next.After(latest):
		return []string{"the deploy windows of " + names + " are next open together at " + next.In(loc).Format("2006-01-02 15:04 MST")}
	}
	return nil
}

func prefixed(app string, reasons []string) []string {
	if app == "" {
		return reasons
	}
	out := make([]string, len(reasons))
	for i, r := range reasons {
		out[i] = app + ": " + r
	}
	return out
}

// Lookups names the facts Evaluate needs from the forge for a policy and a
// change, so that a caller asks for those and no more.
type Lookups struct {
	// Teams are the keys Facts.Teams needs: the policy's teams and the
	// code owners of the changed files that may be teams (on GitLab a
	// bare @name may be a user or a group).
	Teams []string
	// Emails are code owners' addresses Facts.Emails needs.
	Emails []string
	// Users are the users Facts.CanWrite needs: reviewers and required
	// users.
	Users []string
}

// Needs returns the facts to look up before calling Evaluate with p and f;
// it reads f's Reviews, ChangedFiles and Codeowners.
func Needs(p Policy, f Facts) Lookups {
	var l Lookups
	l.Teams = append(l.Teams, p.Teams...)
	l.Users = append(l.Users, p.Users...)
	for _, r := range f.Reviews {
		if r.State == ReviewApproved || r.State == ReviewChangesRequested {
			l.Users = append(l.Users, r.User)
		}
	}
	if p.Codeowners && f.Codeowners != nil {
		for _, path := range f.ChangedFiles {
			for _, o := range f.Codeowners.Owners(path) {
				for _, owner := range o.Owners {
					switch {
					case isEmail(owner):
						l.Emails = append(l.Emails, strings.ToLower(owner))
					case strings.Contains(owner, "/") || f.Codeowners.Syntax == GitLab:
						l.Teams = append(l.Teams, owner)
					}
				}
			}
		}
	}
	l.Teams = uniqueKeys(l.Teams)
	l.Users = uniqueKeys(l.Users)
	l.Emails = uniqueKeys(l.Emails)
	return l
}

func uniqueKeys(names []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, n := range names {
		if k := key(n); k != "" && !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// key is how user and team names compare: without case and without one
// leading @.
func key(name string) string {
	return strings.ToLower(strings.TrimPrefix(strings.TrimSpace(name), "@"))
}

func isEmail(owner string) bool {
	return !strings.HasPrefix(owner, "@") && strings.Contains(owner, "@")
}

// evaluation holds the facts of one Evaluate call, indexed.
type evaluation struct {
	p        Policy
	f        Facts
	plan     bool
	barred   map[string]bar // the author, pushers and bots
	canWrite map[string]bool
	teams    map[string]map[string]bool
	emails   map[string]string
	names    map[string]string // key → the name as a review wrote it
}

func newEvaluation(p Policy, f Facts) *evaluation {
	e := &evaluation{
		p:        p,
		f:        f,
		plan:     p.DismissStale == "" || p.DismissStale == StalePlan,
		barred:   map[string]bar{},
		canWrite: map[string]bool{},
		teams:    map[string]map[string]bool{},
		emails:   map[string]string{},
		names:    map[string]string{},
	}
	for _, u := range f.Pushers {
		e.barred[key(u)] = barPusher
	}
	e.barred[key(f.Author)] = barAuthor
	for _, b := range f.Bots {
		e.barred[key(b)] = barBot
	}
	delete(e.barred, "")
	for u, ok := range f.CanWrite {
		// A user written two ways with two answers has no write access.
		k := key(u)
		if prev, seen := e.canWrite[k]; seen {
			ok = ok && prev
		}
		e.canWrite[k] = ok
	}
	for t, members := range f.Teams {
		set := e.teams[key(t)]
		if set == nil {
			set = map[string]bool{}
			e.teams[key(t)] = set
		}
		for _, m := range members {
			set[key(m)] = true
		}
	}
	for addr, u := range f.Emails {
		e.emails[strings.ToLower(strings.TrimSpace(addr))] = key(u)
	}
	return e
}

// display writes a user for a reason.
func (e *evaluation) display(k string) string {
	if n, ok := e.names[k]; ok {
		return "@" + strings.TrimPrefix(n, "@")
	}
	return "@" + k
}

// bar is why a user's approval cannot count.
type bar int

const (
	barNone bar = iota
	barAuthor
	barPusher
	barBot
	barNoWrite
)

// is completes "@user ... so cannot approve".
func (b bar) is() string {
	return [...]string{"", "is the author", "pushed to the change", "is the bot", "has no write access"}[b]
}

// because completes "@user's approval does not count: ...".
func (b bar) because() string {
	return [...]string{"", "authors do not approve their own change", "they pushed to the change, and whoever writes code does not approve it",
		"the bot's reviews never count", "they have no write access to the repository"}[b]
}

// cannot says why a user can never approve (the author, a pusher, the bot,
// no write access), or barNone when they might. Strict also bars users
// CanWrite does not name, as counting an approval must.
func (e *evaluation) cannot(k string, strict bool) bar {
	if b, ok := e.barred[k]; ok {
		return b
	}
	w, known := e.canWrite[k]
	if (known || strict) && !w {
		return barNoWrite
	}
	return barNone
}

// verdict is one user's standing after all their reviews.
type verdict struct {
	state ReviewState
	run   []Review // their approvals since their last other verdict
}

func (e *evaluation) verdicts() (map[string]*verdict, []string) {
	reviews := slices.Clone(e.f.Reviews)
	slices.SortStableFunc(reviews, func(a, b Review) int { return a.At.Compare(b.At) })
	byUser := map[string]*verdict{}
	var order []string
	for _, r := range reviews {
		k := key(r.User)
		if k == "" {
			continue
		}
		switch r.State {
		case ReviewApproved, ReviewChangesRequested, ReviewDismissed:
		default:
			continue // comments leave the verdict as it was
		}
		v := byUser[k]
		if v == nil {
			v = &verdict{}
			byUser[k] = v
			order = append(order, k)
		}
		e.names[k] = strings.TrimSpace(r.User)
		if r.State != ReviewApproved || v.state != ReviewApproved {
			v.run = nil
		}
		v.state = r.State
		if r.State == ReviewApproved {
			v.run = append(v.run, r)
		}
	}
	slices.Sort(order)
	return byUser, order
}

// fresh reports whether an approval still counts for the head.
func (e *evaluation) fresh(r Review) bool {
	if e.plan {
		return r.PlanHash != "" && r.PlanHash == e.f.PlanHash
	}
	return r.SHA != "" && strings.EqualFold(r.SHA, e.f.HeadSHA)
}

// reviews judges the reviews: Approved, Blocked, Approvers and the
// approval reasons.
func (e *evaluation) reviews() Decision {
	var d Decision
	verdicts, users := e.verdicts()
	approved := map[string]bool{}
	var ignored, changes []string
	noPlan := false
	for _, k := range users {
		v := verdicts[k]
		switch v.state {
		case ReviewChangesRequested:
			if e.cannot(k, true) == barNone {
				changes = append(changes, e.display(k)+" requested changes (until they approve or the review is dismissed)")
			}
		case ReviewApproved:
			if b := e.cannot(k, true); b != barNone {
				ignored = append(ignored, fmt.Sprintf("%s's approval does not count: %s", e.display(k), b.because()))
				continue
			}
			if !slices.ContainsFunc(v.run, e.fresh) {
				if e.plan && e.f.PlanHash == "" {
					noPlan = true
				} else {
					ignored = append(ignored, e.staleReason(k, v.run[len(v.run)-1]))
				}
				continue
			}
			approved[k] = true
		}
	}
	for k := range approved {
		d.Approvers = append(d.Approvers, strings.TrimPrefix(e.display(k), "@"))
	}
	slices.Sort(d.Approvers)

	var needs, blocked []string
	if n := len(approved); n < e.p.MinApprovals {
		needs = append(needs, fmt.Sprintf("%d of %d approvals", n, e.p.MinApprovals))
	}
	for _, u := range uniqueKeys(e.p.Users) {
		switch b := e.cannot(u, false); {
		case approved[u]:
		case b != barNone:
			blocked = append(blocked, fmt.Sprintf("%s is a required reviewer but %s, so cannot approve; change the policy's users", e.display(u), b.is()))
		default:
			needs = append(needs, "needs approval from "+e.display(u))
		}
	}
	for _, t := range uniqueKeys(e.p.Teams) {
		members := e.teams[t]
		switch {
		case anyIn(members, approved):
		case !e.anyEligible(members):
			blocked = append(blocked, fmt.Sprintf("no member of @%s can approve (the author, pushers, the bot and users without write access do not count); change the policy's teams or the team", t))
		default:
			needs = append(needs, "needs approval from a member of @"+t)
		}
	}
	n, b := e.codeowners(approved)
	needs = append(needs, n...)
	blocked = append(blocked, b...)

	d.Blocked = len(blocked) > 0
	d.Approved = !d.Blocked && len(needs) == 0 && len(changes) == 0
	if !d.Approved {
		d.ApprovalReasons = slices.Concat(blocked, needs, changes, ignored)
		if noPlan {
			d.ApprovalReasons = append(d.ApprovalReasons, "the head has no rendered plan yet, so no approval counts; wait for the preview")
		}
	}
	return d
}

func (e *evaluation) staleReason(k string, last Review) string {
	who := e.display(k)
	if e.plan {
		if last.PlanHash == "" {
			return fmt.Sprintf("%s's approval was given on %s, which has no recorded plan; approve the current plan again", who, short(last.SHA))
		}
		return fmt.Sprintf("%s's approval was given on %s, whose plan differs from the head's; review the new plan and approve again", who, short(last.SHA))
	}
	return fmt.Sprintf("%s's approval was given on %s, not on the head commit %s; approve again", who, short(last.SHA), short(e.f.HeadSHA))
}

func short(sha string) string {
	switch {
	case sha == "":
		return "an unknown commit"
	case len(sha) > 7:
		return sha[:7]
	}
	return sha
}

func anyIn(set, approved map[string]bool) bool {
	for u := range set {
		if approved[u] {
			return true
		}
	}
	return false
}

func (e *evaluation) anyEligible(set map[string]bool) bool {
	for u := range set {
		if e.cannot(u, false) == barNone {
			return true
		}
	}
	return false
}

// owners resolves code owners to the users who may act for them.
func (e *evaluation) owners(owners []string) map[string]bool {
	users := map[string]bool{}
	for _, o := range owners {
		if isEmail(o) {
			if u, ok := e.emails[strings.ToLower(o)]; ok && u != "" {
				users[u] = true
			}
			continue
		}
		k := key(o)
		if members, ok := e.teams[k]; ok {
			for m := range members {
				users[m] = true
			}
		} else if !strings.Contains(k, "/") && !strings.HasPrefix(k, "@") {
			users[k] = true
		}
	}
	return users
}

// requirement is a set of changed files that need approvals from the same
// owners in the same section.
type requirement struct {
	section string
	line    int
	need    int
	owners  []string
	paths   []string
}

// codeowners checks the code owners of the changed files.
func (e *evaluation) codeowners(approved map[string]bool) (needs, blocked []string) {
	if !e.p.Codeowners {
		return nil, nil
	}
	if e.f.Codeowners == nil {
		return nil, []string{"code owners must approve, but the base branch has no CODEOWNERS file; add one or turn codeowners off in the policy"}
	}
	var reqs []*requirement
	index := map[int]*requirement{} // by rule line
	for _, path := range e.f.ChangedFiles {
		path = cleanPath(path)
		for _, o := range e.f.Codeowners.Owners(path) {
			if o.Optional || o.Approvals < 1 {
				continue
			}
			r := index[o.Line]
			if r == nil {
				r = &requirement{section: o.Section, line: o.Line, need: o.Approvals, owners: o.Owners}
				index[o.Line] = r
				reqs = append(reqs, r)
			}
			if !slices.Contains(r.paths, path) {
				r.paths = append(r.paths, path)
			}
		}
	}
	for _, r := range reqs {
		users := e.owners(r.owners)
		got, eligible := 0, 0
		for u := range users {
			if approved[u] {
				got++
			}
			if e.cannot(u, false) == barNone {
				eligible++
			}
		}
		if got >= r.need {
			continue
		}
		who := strings.Join(r.owners, ", ")
		in := ""
		if r.section != "" {
			in = " in section " + r.section
		}
		switch {
		case eligible < r.need && r.need == 1:
			blocked = append(blocked, fmt.Sprintf("no code owner%s of %s (%s) can approve (the author, pushers, the bot and users without write access do not count); change CODEOWNERS (line %d)", in, listPaths(r.paths), who, r.line))
		case eligible < r.need:
			blocked = append(blocked, fmt.Sprintf("needs %d code owner approvals%s for %s, but only %d of the owners (%s) can approve; change CODEOWNERS (line %d)", r.need, in, listPaths(r.paths), eligible, who, r.line))
		case r.need == 1:
			needs = append(needs, fmt.Sprintf("needs a code owner's approval%s for %s: %s", in, listPaths(r.paths), orList(r.owners)))
		default:
			needs = append(needs, fmt.Sprintf("needs %d code owner approvals%s for %s (%d so far): %s", r.need, in, listPaths(r.paths), got, who))
		}
	}
	return needs, blocked
}

// listPaths names up to three paths and counts the rest.
func listPaths(paths []string) string {
	const shown = 3
	if len(paths) <= shown {
		return strings.Join(paths, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(paths[:shown], ", "), len(paths)-shown)
}

func orList(items []string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " or " + items[len(items)-1]
}
