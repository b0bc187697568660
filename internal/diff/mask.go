package diff

import (
	"reflect"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Masks that replace Secret values. They are constant strings on purpose:
// no hash or length of a value is ever shown, so nothing reveals whether
// two different Secrets hold the same value.
const (
	Mask       = "***"
	MaskBefore = "*** (before)"
	MaskAfter  = "*** (after)"
)

// LastAppliedAnnotation carries a client-side applied object in full,
// values included, so it is masked on Secrets like data.
const LastAppliedAnnotation = "kubectl.kubernetes.io/last-applied-configuration"

// MaskSecrets returns copies of before and after in which the values of
// every core v1 Secret are masked: each key of data and stringData, and the
// last-applied-configuration annotation, the fields whose values a Redactor
// keeps out of text. A value equal on both sides
// becomes Mask; a value that differs becomes MaskBefore and MaskAfter; a
// value present on one side only becomes Mask. Key names stay visible.
// Objects that are not Secrets are copied unchanged; either may be nil.
func MaskSecrets(before, after *unstructured.Unstructured) (b, a *unstructured.Unstructured) {
	if before != nil {
		b = before.DeepCopy()
	}
	if after != nil {
		a = after.DeepCopy()
	}
	maskSecrets(b, a)
	return b, a
}

// maskSecrets masks b and a in place.
func maskSecrets(b, a *unstructured.Unstructured) {
	var bm, am map[string]any
	if isSecret(b) {
		bm = b.Object
	}
	if isSecret(a) {
		am = a.Object
	}
	if bm == nil && am == nil {
		return
	}
	for _, f := range secretFields {
		maskField(bm, am, f)
	}
	maskAnnotation(annotations(bm), annotations(am))
}

func isSecret(obj *unstructured.Unstructured) bool {
	if obj == nil {
		return false
	}
	gvk := obj.GroupVersionKind()
	return gvk.Group == "" && gvk.Kind == "Secret"
}

// maskField masks field f of the Secret objects bm and am (either may be
// nil when that side is absent or not a Secret).
func maskField(bm, am map[string]any, f string) {
	bv, bok := bm[f]
	av, aok := am[f]
	bd, bIsMap := bv.(map[string]any)
	ad, aIsMap := av.(map[string]any)
	// A field that is present but not a map is malformed; hide it whole
	// rather than guess at its shape.
	if bok && !bIsMap && bv != nil {
		bm[f] = Mask
	}
	if aok && !aIsMap && av != nil {
		am[f] = Mask
	}
	for k, v := range bd {
		if w, ok := ad[k]; ok {
			if reflect.DeepEqual(v, w) {
				bd[k], ad[k] = Mask, Mask
			} else {
				bd[k], ad[k] = MaskBefore, MaskAfter
			}
			continue
		}
		bd[k] = Mask
	}
	for k := range ad {
		if _, ok := bd[k]; !ok {
			ad[k] = Mask
		}
	}
}

// maskAnnotation masks the last-applied annotation in the annotation maps
// of two Secrets (either may be nil).
func maskAnnotation(b, a map[string]any) {
	bv, bok := b[LastAppliedAnnotation]
	av, aok := a[LastAppliedAnnotation]
	bmask, amask := Mask, Mask
	if bok && aok && !reflect.DeepEqual(bv, av) {
		bmask, amask = MaskBefore, MaskAfter
	}
	if bok {
		b[LastAppliedAnnotation] = bmask
	}
	if aok {
		a[LastAppliedAnnotation] = amask
	}
}

// annotations returns the raw annotation map of obj, or nil. It reads the
// map directly because the typed accessors give up (returning nil) when any
// value is not a string, which would leave the annotation unmasked.
func annotations(obj map[string]any) map[string]any {
	md, _ := obj["metadata"].(map[string]any)
	ann, _ := md["annotations"].(map[string]any)
	return ann
}
