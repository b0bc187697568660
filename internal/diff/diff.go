package diff

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// DefaultContext is the number of unchanged lines shown around each change.
const DefaultContext = 3

// Options tune how objects are compared and shown.
type Options struct {
	// ShowSecrets turns off the masking of Secret values. Only for a user's
	// own terminal; never set it for shared sinks (PR comments, chat).
	ShowSecrets bool
	// ShowManagedFields keeps metadata.managedFields in the diff.
	ShowManagedFields bool
	// Context is the number of unchanged lines around each change: zero
	// means DefaultContext, a negative value means none.
	Context int
	// MaxWork bounds the steps spent finding the changed lines of one
	// object, so that no input makes a diff slow: above it the diff says
	// the values differ without showing the lines. Zero means
	// DefaultMaxWork.
	MaxWork int
	// MaxTotalWork bounds the steps of all the objects of one Objects call
	// together, so that many objects each just under MaxWork cannot add up
	// to a slow diff: once it is spent, the remaining objects that differ
	// say so without lines. Zero means DefaultMaxTotalWork.
	MaxTotalWork int

	// budget is the steps left for the current Objects call; nil outside
	// one.
	budget *int
}

// DefaultMaxTotalWork is 20 objects' worth of DefaultMaxWork: about 2 s of
// one core for a whole change set, whatever the input.
const DefaultMaxTotalWork = 20 * DefaultMaxWork

func (o Options) maxWork() int {
	if o.MaxWork <= 0 {
		return DefaultMaxWork
	}
	return o.MaxWork
}

func (o Options) context() int {
	switch {
	case o.Context == 0:
		return DefaultContext
	case o.Context < 0:
		return 0
	}
	return o.Context
}

// key is the identity objects are matched on: the version is left out.
type key struct {
	group, kind, namespace, name string
}

func keyOf(r Ref) key {
	return key{r.Group, r.Kind, r.Namespace, r.Name}
}

func compareKeys(a, b key) int {
	return cmp.Or(
		cmp.Compare(a.group, b.group),
		cmp.Compare(a.kind, b.kind),
		cmp.Compare(a.namespace, b.namespace),
		cmp.Compare(a.name, b.name),
	)
}

// Objects pairs before and after by group, kind, namespace and name and
// compares each pair. An object on one side only is created or deleted.
// The changes are sorted by group, kind, namespace and name.
func Objects(before, after []*unstructured.Unstructured, opts Options) (*ChangeSet, error) {
	bs, errB := index("before", before)
	as, errA := index("after", after)
	if err := errors.Join(errB, errA); err != nil {
		return nil, err
	}
	keys := keysOfBoth(bs, as)
	slices.SortFunc(keys, compareKeys)

	cs := &ChangeSet{Changes: make([]Change, 0, len(keys))}
	budget := opts.MaxTotalWork
	if budget <= 0 {
		budget = DefaultMaxTotalWork
	}
	opts.budget = &budget
	var errs []error
	for _, k := range keys {
		c, err := Pair(bs[k], as[k], opts)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		cs.Changes = append(cs.Changes, c)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return cs, nil
}

// index maps the objects of one side by identity; side names the side in
// errors.
func index(side string, objs []*unstructured.Unstructured) (map[key]*unstructured.Unstructured, error) {
	m := make(map[key]*unstructured.Unstructured, len(objs))
	var errs []error
	for i, obj := range objs {
		if obj == nil {
			errs = append(errs, fmt.Errorf("%s object %d is nil", side, i))
			continue
		}
		ref := RefOf(obj)
		if ref.Kind == "" || ref.Name == "" {
			errs = append(errs, fmt.Errorf("%s object %d (%s) has no kind or name: set both so it can be matched", side, i, ref))
			continue
		}
		k := keyOf(ref)
		if _, dup := m[k]; dup {
			errs = append(errs, fmt.Errorf("duplicate object %s in %s: each group, kind, namespace and name may appear once", ref, side))
			continue
		}
		m[k] = obj
	}
	return m, errors.Join(errs...)
}

// Pair compares one object in two states; either may be nil (created or
// deleted), not both. Neither input is modified. The live diff calls it
// with (live, dry-run result).
//
// Pair returns an error, unlike a pure comparison, because an object built
// in code may hold values YAML cannot encode (such as NaN).
func Pair(before, after *unstructured.Unstructured, opts Options) (Change, error) {
	var ref Ref
	switch {
	case after != nil:
		ref = RefOf(after)
	case before != nil:
		ref = RefOf(before)
	default:
		return Change{}, errors.New("compare objects: both sides are nil")
	}

	b := normalize(before, opts)
	a := normalize(after, opts)
	if !opts.ShowSecrets {
		maskSecrets(b, a)
	}
	by, err := render(b)
	if err != nil {
		return Change{}, fmt.Errorf("render %s (before): %w", ref, err)
	}
	ay, err := render(a)
	if err != nil {
		return Change{}, fmt.Errorf("render %s (after): %w", ref, err)
	}

	c := Change{Ref: ref, Before: b, After: a}
	switch {
	case b == nil:
		c.Action = Created
	case a == nil:
		c.Action = Deleted
	case by == ay:
		c.Action = Unchanged
		return c, nil
	default:
		c.Action = Configured
	}
	from, to := headerName("before/"+ref.String()), headerName("after/"+ref.String())
	if b == nil {
		from = "/dev/null"
	}
	if a == nil {
		to = "/dev/null"
	}
	work := opts.maxWork()
	if opts.budget != nil {
		// A small floor: a one-line change still shows once the budget
		// is spent, and 100,000 objects cost at most 10^8 steps more.
		work = max(min(work, *opts.budget), 1_000)
	}
	var used int
	c.Diff, used = unified(splitLines(by), splitLines(ay), from, to, opts.context(), work)
	if opts.budget != nil {
		*opts.budget -= used
	}
	return c, nil
}

// headerName is a file name as the ---/+++ lines of a diff show it: as
// is, or, when it holds a character that is not printable (a line break, a control or
// formatting character, invalid UTF-8), Go-quoted as git quotes such file
// names, so a name cannot add lines to the diff or hide in it.
func headerName(s string) string {
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

// render encodes obj as YAML with sorted keys; nil renders empty.
//
// It is yaml.Marshal (JSON, then YAML) with one step between: characters
// the YAML parser refuses in its input or takes for a line break (C1
// controls, DEL, a byte order mark), which JSON leaves raw, are written as JSON escapes, so an object
// holding them still renders; the YAML writer then escapes them in turn.
func render(obj *unstructured.Unstructured) (string, error) {
	if obj == nil {
		return "", nil
	}
	j, err := json.Marshal(obj.Object)
	if err != nil {
		return "", err
	}
	y, err := yaml.JSONToYAML(escapeUnprintable(j))
	return string(y), err
}

// escapeUnprintable rewrites the runes of JSON text that YAML does not
// allow as \u escapes. JSON is ASCII outside strings, so each such rune
// is inside a string, where the escape means the same.
func escapeUnprintable(j []byte) []byte {
	i := bytes.IndexFunc(j, yamlUnprintable)
	if i < 0 {
		return j
	}
	out := make([]byte, 0, len(j)+16)
	out = append(out, j[:i]...)
	for _, r := range string(j[i:]) {
		if yamlUnprintable(r) {
			out = fmt.Appendf(out, `\u%04x`, r)
			continue
		}
		out = utf8.AppendRune(out, r)
	}
	return out
}

// yamlUnprintable reports whether YAML refuses r in a document, or reads
// it as a line break (NEL), outside the C0 controls and U+2028/U+2029,
// which JSON escapes itself.
func yamlUnprintable(r rune) bool {
	return r == 0x7f || (r >= 0x80 && r <= 0x9f) || r == 0xfeff || r == 0xfffe || r == 0xffff
}

// splitLines splits YAML into lines that keep their newline.
func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	lines := strings.SplitAfter(s, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// keysOfBoth lists the keys of before, then those of after not in before,
// each once, in map order.
func keysOfBoth[K comparable, V any](before, after map[K]V) []K {
	keys := make([]K, 0, len(before)+len(after))
	for k := range before {
		keys = append(keys, k)
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			keys = append(keys, k)
		}
	}
	return keys
}
