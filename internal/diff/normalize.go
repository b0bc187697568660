package diff

import (
	"reflect"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// serverMetadata are the metadata fields the API server owns. A diff leaves
// them out (managedFields unless Options.ShowManagedFields): they change on
// every write and would show as noise in every diff. An apply request must
// not carry them: a resourceVersion would make the apply conditional,
// managedFields are refused, and the rest are the server's.
var serverMetadata = map[string]bool{
	"resourceVersion":   true,
	"uid":               true,
	"generation":        true,
	"creationTimestamp": true,
	"selfLink":          true,
	"managedFields":     true,
}

// ignoredMetadata reports whether a diff with opts leaves metadata field f
// out.
func ignoredMetadata(f string, opts Options) bool {
	return serverMetadata[f] && (f != "managedFields" || !opts.ShowManagedFields)
}

// DropServerFields removes from obj, in place, what the API server owns:
// status and the server's metadata (resourceVersion, uid, generation,
// creationTimestamp, selfLink and managedFields). Rendered objects go
// through it before they are dry-run or applied; a diff leaves out the same
// fields.
func DropServerFields(obj *unstructured.Unstructured) {
	dropServerFields(obj, Options{})
}

func dropServerFields(obj *unstructured.Unstructured, opts Options) {
	delete(obj.Object, "status")
	md, ok := obj.Object["metadata"].(map[string]any)
	if !ok {
		return
	}
	for f := range md {
		if ignoredMetadata(f, opts) {
			delete(md, f)
		}
	}
}

// normalize returns a copy of obj without the fields the server owns and
// that would show as noise in every diff, and without empty metadata maps.
func normalize(obj *unstructured.Unstructured, opts Options) *unstructured.Unstructured {
	if obj == nil {
		return nil
	}
	obj = obj.DeepCopy()
	dropServerFields(obj, opts)
	md, ok := obj.Object["metadata"].(map[string]any)
	if !ok {
		return obj
	}
	for f, v := range md {
		if m, ok := v.(map[string]any); ok && len(m) == 0 {
			delete(md, f)
		}
	}
	if len(md) == 0 {
		delete(obj.Object, "metadata")
	}
	return obj
}

// PairUnchanged is a fast path of Pair for the common case of an object
// that applying would not change: when after equals before apart from
// status and the metadata Pair leaves out, Pair would find them equal too,
// so it returns the Change Pair would return (Unchanged, with normalized and
// masked copies) and true, skipping the two YAML renderings and the line
// diff (most of a large diff's CPU time). It returns false whenever it is
// not sure; call Pair then.
func PairUnchanged(before, after *unstructured.Unstructured, opts Options) (Change, bool) {
	if before == nil || after == nil || len(before.Object) != len(after.Object) {
		return Change{}, false
	}
	for k, v := range before.Object {
		switch k {
		case "status":
			continue
		case "metadata":
			bm, _ := v.(map[string]any)
			am, _ := after.Object[k].(map[string]any)
			if bm == nil || am == nil || !sameMetadata(bm, am, opts) {
				return Change{}, false
			}
		default:
			w, ok := after.Object[k]
			if !ok || !reflect.DeepEqual(v, w) {
				return Change{}, false
			}
		}
	}
	b, a := normalize(before, opts), normalize(after, opts)
	if !opts.ShowSecrets {
		maskSecrets(b, a)
	}
	return Change{Ref: RefOf(after), Action: Unchanged, Before: b, After: a}, true
}

// sameMetadata compares two metadata maps, leaving out the fields a diff
// with opts ignores.
func sameMetadata(a, b map[string]any, opts Options) bool {
	for k, v := range a {
		if ignoredMetadata(k, opts) {
			continue
		}
		if w, ok := b[k]; !ok || !reflect.DeepEqual(v, w) {
			return false
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok && !ignoredMetadata(k, opts) {
			return false
		}
	}
	return true
}
