package diff

import (
	"reflect"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// ChangedFields returns the paths of the fields whose values differ
// between before and after, sorted, each once. Either object may be nil;
// then every field of the other is changed. It names fields, never values,
// so it is as safe to show as the object's keys; give it the masked copies
// of a Change all the same.
//
// Paths are dotted as kubectl writes them: spec.replicas,
// metadata.labels.app. A key other than letters, digits, '_', '-' and '/'
// (one with a dot, say) is written in brackets:
// metadata.annotations[example.com/x]. Maps are compared key by key. A
// list whose items are all maps with a distinct string name (else key)
// field is compared item by item on it:
// spec.template.spec.containers[name=web].image. Another list is compared
// by position when both sides have as many items (spec.rules[0].verbs) and
// as a whole otherwise, so one item inserted or removed reads as the list
// changed, not as every item after it. A field present on one side only
// counts as all its leaves, by the same rules.
//
// What a diff leaves out is left out here too: status and the metadata the
// API server owns (resourceVersion, uid, generation, creationTimestamp,
// selfLink, managedFields).
func ChangedFields(before, after *unstructured.Unstructured) []string {
	var b, a map[string]any
	if before != nil {
		b = before.Object
	}
	if after != nil {
		a = after.Object
	}
	var w fieldWalker
	w.maps("", b, a)
	slices.Sort(w.out)
	return slices.Compact(w.out)
}

// fieldWalker collects the paths of changed fields.
type fieldWalker struct {
	out []string
}

// value compares the field at path on both sides; bok and aok say whether
// it is present on each.
func (w *fieldWalker) value(path string, b any, bok bool, a any, aok bool) {
	if bok && aok && equalJSON(b, a) {
		return
	}
	n := len(w.out)
	bm, bIsMap := b.(map[string]any)
	am, aIsMap := a.(map[string]any)
	bl, bIsList := b.([]any)
	al, aIsList := a.([]any)
	switch {
	case (bIsMap || !bok) && (aIsMap || !aok):
		w.maps(path, bm, am)
		// Maps on both sides differ in a field (reported, or left out as
		// the server's); a map on one side only is its fields, or itself
		// when it has none.
		if bok && aok || len(bm)+len(am) > 0 {
			return
		}
	case (bIsList || !bok) && (aIsList || !aok):
		w.lists(path, bl, al)
	}
	// A scalar, a value that changed type, an empty map or list that
	// appeared or went, a list compared whole or reordered: the field
	// itself is the leaf.
	if len(w.out) == n {
		w.out = append(w.out, path)
	}
}

func (w *fieldWalker) maps(path string, b, a map[string]any) {
	for _, k := range keysOfBoth(b, a) {
		if ignoredField(path, k) {
			continue
		}
		bv, bok := b[k]
		av, aok := a[k]
		w.value(childPath(path, k), bv, bok, av, aok)
	}
}

func (w *fieldWalker) lists(path string, b, a []any) {
	if k := mergeKey(b, a); k != "" {
		bs, as := byMergeKey(b, k), byMergeKey(a, k)
		seen := make(map[string]bool, len(b)+len(a))
		for _, item := range slices.Concat(b, a) {
			v := item.(map[string]any)[k].(string)
			if seen[v] {
				continue
			}
			seen[v] = true
			bv, bok := bs[v]
			av, aok := as[v]
			w.value(path+"["+k+"="+bracketEscape(v)+"]", bv, bok, av, aok)
		}
		return
	}
	if len(b) != len(a) {
		return // the list is the leaf
	}
	for i := range b {
		w.value(path+"["+strconv.Itoa(i)+"]", b[i], true, a[i], true)
	}
}

// mergeKeys are the fields lists are matched on, in order of preference:
// name (containers, env, ports, volumes) and key (tolerations, items).
var mergeKeys = []string{"name", "key"}

// mergeKey returns the field every item of both lists has, as a string
// distinct within its list, or "" when there is none.
func mergeKey(b, a []any) string {
	if len(b)+len(a) == 0 {
		return ""
	}
	for _, k := range mergeKeys {
		if keyed(b, k) && keyed(a, k) {
			return k
		}
	}
	return ""
}

func keyed(items []any, k string) bool {
	seen := make(map[string]bool, len(items))
	for _, item := range items {
		m, ok := item.(map[string]any)
		if !ok {
			return false
		}
		v, ok := m[k].(string)
		if !ok || seen[v] {
			return false
		}
		seen[v] = true
	}
	return true
}

func byMergeKey(items []any, k string) map[string]any {
	m := make(map[string]any, len(items))
	for _, item := range items {
		m[item.(map[string]any)[k].(string)] = item
	}
	return m
}

// ignoredField reports whether a diff leaves out field k of the map at
// path: status, and the server's metadata.
func ignoredField(path, k string) bool {
	switch path {
	case "":
		return k == "status"
	case "metadata":
		return serverMetadata[k]
	}
	return false
}

// childPath is the path of field k of the map at path.
func childPath(path, k string) string {
	if !bareKey(k) {
		return path + "[" + bracketEscape(k) + "]"
	}
	if path == "" {
		return k
	}
	return path + "." + k
}

// bareKey reports whether k can follow a dot: it is not empty and holds
// only letters, digits, '_', '-' and '/', so it cannot read as a separator
// or a bracket.
func bareKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '/') {
			return false
		}
	}
	return true
}

// bracketEscape escapes s for the inside of brackets: a backslash before
// each ']' and '\', so the bracket ends where the path says it does.
func bracketEscape(s string) string {
	if !strings.ContainsAny(s, `]\`) {
		return s
	}
	return strings.NewReplacer(`\`, `\\`, `]`, `\]`).Replace(s)
}

// equalJSON reports whether two JSON values are equal as their YAML would
// be: an integer equals the same number as a float (1 and 1.0), as a value
// read from the cluster and one rendered from a file may hold them.
func equalJSON(x, y any) bool {
	switch x := x.(type) {
	case map[string]any:
		y, ok := y.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, xv := range x {
			yv, ok := y[k]
			if !ok || !equalJSON(xv, yv) {
				return false
			}
		}
		return true
	case []any:
		y, ok := y.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !equalJSON(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	xi, xInt, xNum := number(x)
	yi, yInt, yNum := number(y)
	switch {
	case xInt && yInt:
		return xi.i == yi.i
	case xNum && yNum:
		return xi.f == yi.f
	}
	return reflect.DeepEqual(x, y)
}

type num struct {
	i int64
	f float64
}

// number reads v as a number: isInt when it is an integer type, isNum when
// it is any number.
func number(v any) (n num, isInt, isNum bool) {
	switch v := v.(type) {
	case int64:
		return num{v, float64(v)}, true, true
	case int:
		return num{int64(v), float64(v)}, true, true
	case int32:
		return num{int64(v), float64(v)}, true, true
	case float64:
		return num{f: v}, false, true
	case float32:
		return num{f: float64(v)}, false, true
	}
	return num{}, false, false
}
