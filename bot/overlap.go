package bot

import (
	"cmp"
	"maps"
	"slices"
	"sync"

	"github.com/kubectl-gitops/kubectl-gitops/internal/diff"
	"github.com/kubectl-gitops/kubectl-gitops/internal/report"
)

// Overlap is another open pull request that changes a field of an object
// that this one changes too. It is report's type, so that report need not
// import bot.
type Overlap = report.Overlap

// wholeObject is the path recorded for an object created or deleted: the
// root, which contains every field.
const wholeObject = ""

// Bounds of the registry. A field path is about 100 bytes, so the default
// holds at most about 20 MB whatever the pull requests change.
const (
	// defaultOverlapFields is the most fields recorded per pull request:
	// hundreds of objects with a few fields each.
	defaultOverlapFields = 2_000
	// defaultOverlapPRs is the most pull requests kept per repository.
	defaultOverlapPRs = 500
	// defaultOverlapTotal is the most fields recorded over all
	// repositories.
	defaultOverlapTotal = 200_000
	// maxFieldPath is the longest field path recorded: a longer one is
	// recorded as its longest ancestor that fits, which still overlaps
	// with everything the field does.
	maxFieldPath = 512
)

// overlaps remembers what the latest preview of each open pull request
// changes, field by field, so that a preview can warn when another open
// pull request changes the same field of the same object, perhaps through
// other files (a shared base, a values file). It lives in memory: after a
// restart it fills again as pull requests are previewed.
//
// When it holds more than its bounds, it forgets the pull requests
// recorded least recently.
type overlaps struct {
	mu sync.Mutex
	// maxFields bounds the fields of one pull request, maxPRs the pull
	// requests of one repository, maxTotal the fields of all.
	maxFields, maxPRs, maxTotal int
	seq                         uint64
	total                       int
	repos                       map[string]map[int]*prFields
}

// prFields is what one preview of a pull request changes.
type prFields struct {
	seq     uint64 // when recorded, for eviction
	fields  int
	objects map[objectID]*objectFields
}

// objectID is an object of an app: apps may render the same object for
// different clusters, so the app is part of its identity.
type objectID struct {
	app, key string // key is diff.Ref.Key()
}

type objectFields struct {
	name   string   // diff.Ref.String(), as the comment's sections name it
	fields []string // sorted; [wholeObject] when created or deleted
}

func newOverlaps() *overlaps {
	return &overlaps{
		maxFields: defaultOverlapFields,
		maxPRs:    defaultOverlapPRs,
		maxTotal:  defaultOverlapTotal,
		repos:     map[string]map[int]*prFields{},
	}
}

// record replaces what pull request pr of repo changes with its latest
// preview: per app, the app's ChangeSet (nil when the app could not be
// diffed). Jobs run one at a time per pull request, so the latest record
// is the latest head's. It returns the other pull requests of repo whose
// overlaps with pr this changed (a new field in common, or none left), so
// the caller may refresh their comments, in order.
func (o *overlaps) record(repo string, pr int, apps map[string]*diff.ChangeSet) []int {
	rec := &prFields{objects: map[objectID]*objectFields{}}
	for _, app := range slices.Sorted(maps.Keys(apps)) {
		cs := apps[app]
		if cs == nil {
			continue
		}
		for _, c := range cs.Changes {
			if rec.fields >= o.maxFields {
				break
			}
			var fields []string
			switch c.Action {
			case diff.Unchanged:
				continue
			case diff.Created, diff.Deleted:
				fields = []string{wholeObject}
			default:
				fields = shortenPaths(diff.ChangedFields(c.Before, c.After))
			}
			if len(fields) == 0 {
				continue
			}
			fields = fields[:min(len(fields), o.maxFields-rec.fields)]
			rec.fields += len(fields)
			rec.objects[objectID{app, c.Ref.Key()}] = &objectFields{name: c.Ref.String(), fields: fields}
		}
	}

	o.mu.Lock()
	defer o.mu.Unlock()
	prs := o.repos[repo]
	if prs == nil {
		prs = map[int]*prFields{}
		o.repos[repo] = prs
	}
	old := prs[pr]
	var changed []int
	for _, q := range slices.Sorted(maps.Keys(prs)) {
		if q != pr && !slices.EqualFunc(between(prs[q], old, pr), between(prs[q], rec, pr), equalOverlap) {
			changed = append(changed, q)
		}
	}
	if old != nil {
		o.total -= old.fields
	}
	o.seq++
	rec.seq = o.seq
	prs[pr] = rec
	o.total += rec.fields
	o.evict(repo)
	return changed
}

// evict forgets the pull requests recorded least recently until the
// bounds hold, keeping the one just recorded in repo.
func (o *overlaps) evict(repo string) {
	for len(o.repos[repo]) > o.maxPRs {
		o.remove(repo, oldest(o.repos[repo]))
	}
	for o.total > o.maxTotal {
		var (
			repo string
			pr   int
			seq  uint64
		)
		for r, prs := range o.repos {
			if p := oldest(prs); seq == 0 || prs[p].seq < seq {
				repo, pr, seq = r, p, prs[p].seq
			}
		}
		if seq == o.seq {
			return // only the newest is left
		}
		o.remove(repo, pr)
	}
}

// oldest is the pull request of prs (not empty) recorded least recently.
func oldest(prs map[int]*prFields) int {
	first := true
	var pr int
	for p, f := range prs {
		if first || f.seq < prs[pr].seq {
			pr, first = p, false
		}
	}
	return pr
}

func (o *overlaps) remove(repo string, pr int) {
	prs := o.repos[repo]
	if f, ok := prs[pr]; ok {
		o.total -= f.fields
		delete(prs, pr)
	}
	if len(prs) == 0 {
		delete(o.repos, repo)
	}
}

// others returns, per app of pull request pr of repo, the other pull
// requests of repo recorded as changing a field that pr changes, of the
// same object: the same field, a field inside it, or one containing it (a
// list changed whole, an object created or deleted). Each lists the other
// pull request's fields among them; the overlaps are sorted by pull
// request, then object.
func (o *overlaps) others(repo string, pr int) map[string][]Overlap {
	o.mu.Lock()
	defer o.mu.Unlock()
	prs := o.repos[repo]
	mine := prs[pr]
	if mine == nil {
		return nil
	}
	out := map[string][]Overlap{}
	for _, q := range slices.Sorted(maps.Keys(prs)) {
		if q == pr {
			continue
		}
		for app, ovs := range betweenByApp(mine, prs[q], q) {
			out[app] = append(out[app], ovs...)
		}
	}
	for _, ovs := range out {
		slices.SortFunc(ovs, func(a, b Overlap) int {
			return cmp.Or(cmp.Compare(a.PR, b.PR), cmp.Compare(a.Object, b.Object))
		})
	}
	return out
}

// forget drops pull request pr of repo, closed or merged. It returns the
// other pull requests that overlapped with it, in order.
func (o *overlaps) forget(repo string, pr int) []int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.drop(repo, func(p int) bool { return p == pr })
}

// keepOnly drops the pull requests of repo not among open, as a reconcile
// lists them, and returns the remaining ones that overlapped with those
// dropped, in order.
func (o *overlaps) keepOnly(repo string, open []int) []int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.drop(repo, func(p int) bool { return !slices.Contains(open, p) })
}

// drop removes the pull requests of repo that gone reports, and returns
// the remaining ones that overlapped with any of them.
func (o *overlaps) drop(repo string, gone func(pr int) bool) []int {
	prs := o.repos[repo]
	var removed []*prFields
	var removedPRs []int
	for p, f := range prs {
		if gone(p) {
			removed = append(removed, f)
			removedPRs = append(removedPRs, p)
		}
	}
	for _, p := range removedPRs {
		o.remove(repo, p)
	}
	var affected []int
	for _, q := range slices.Sorted(maps.Keys(prs)) {
		for i, f := range removed {
			if len(between(prs[q], f, removedPRs[i])) > 0 {
				affected = append(affected, q)
				break
			}
		}
	}
	return affected
}

// between is what theirs (pull request pr) changes of what mine changes,
// over all apps, in a stable order; nil when either is nil.
func between(mine, theirs *prFields, pr int) []Overlap {
	var out []Overlap
	byApp := betweenByApp(mine, theirs, pr)
	for _, app := range slices.Sorted(maps.Keys(byApp)) {
		out = append(out, byApp[app]...)
	}
	return out
}

// betweenByApp is between per app, each sorted by object.
func betweenByApp(mine, theirs *prFields, pr int) map[string][]Overlap {
	if mine == nil || theirs == nil {
		return nil
	}
	out := map[string][]Overlap{}
	for id, m := range mine.objects {
		t, ok := theirs.objects[id]
		if !ok {
			continue
		}
		fields := overlapping(m.fields, t.fields)
		if len(fields) == 0 {
			continue
		}
		ov := Overlap{PR: pr, Object: m.name}
		for _, f := range fields {
			// The whole object shows as no fields.
			if f != wholeObject {
				ov.Fields = append(ov.Fields, f)
			}
		}
		out[id.app] = append(out[id.app], ov)
	}
	for _, ovs := range out {
		slices.SortFunc(ovs, func(a, b Overlap) int { return cmp.Compare(a.Object, b.Object) })
	}
	return out
}

// overlapping returns the fields of theirs that are a field of mine, or
// contain one, or are inside one.
func overlapping(mine, theirs []string) []string {
	set := make(map[string]bool, len(mine))
	contains := map[string]bool{} // the ancestors of mine
	for _, f := range mine {
		set[f] = true
		for _, a := range ancestors(f) {
			contains[a] = true
		}
	}
	var out []string
	for _, f := range theirs {
		hit := set[f] || contains[f]
		for _, a := range ancestors(f) {
			hit = hit || set[a]
		}
		if hit {
			out = append(out, f)
		}
	}
	return out
}

// ancestors returns the paths containing path (as diff.ChangedFields
// writes them), the whole object first: spec.a[name=x].b has "", spec,
// spec.a and spec.a[name=x].
func ancestors(path string) []string {
	if path == wholeObject {
		return nil
	}
	out := []string{wholeObject}
	inBracket := false
	for i := 0; i < len(path); i++ {
		switch c := path[i]; {
		case inBracket && c == '\\':
			i++
		case inBracket && c == ']':
			inBracket = false
		case !inBracket && c == '[':
			inBracket = true
			if i > 0 {
				out = append(out, path[:i])
			}
		case !inBracket && c == '.':
			out = append(out, path[:i])
		}
	}
	return out
}

// shortenPaths replaces each path longer than maxFieldPath by its longest
// ancestor that fits, keeping the result sorted and each path once.
func shortenPaths(paths []string) []string {
	short := true
	for _, p := range paths {
		short = short && len(p) <= maxFieldPath
	}
	if short {
		return paths
	}
	out := make([]string, 0, len(paths))
	for _, p := range paths {
		if len(p) > maxFieldPath {
			as := ancestors(p)
			for i := len(as) - 1; i >= 0; i-- {
				if len(as[i]) <= maxFieldPath {
					p = as[i]
					break
				}
			}
		}
		out = append(out, p)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func equalOverlap(a, b Overlap) bool {
	return a.PR == b.PR && a.Object == b.Object && slices.Equal(a.Fields, b.Fields)
}
