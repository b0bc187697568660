package diff

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

const canary = "CANARY-s3cr3t-b4s364"

// canaries are the strings that must never appear in any output.
func canaries() []string {
	return []string{
		canary,
		base64.StdEncoding.EncodeToString([]byte(canary)),
		base64.StdEncoding.EncodeToString([]byte(canary + "-old")),
		base64.StdEncoding.EncodeToString([]byte(canary + "-new")),
		base64.StdEncoding.EncodeToString([]byte(canary + "-gone")),
		base64.StdEncoding.EncodeToString([]byte(canary + "-added")),
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// secret builds a Secret whose last-applied annotation embeds its data, as
// kubectl apply leaves it.
func secret(t *testing.T, name string, data, stringData map[string]string) *unstructured.Unstructured {
	t.Helper()
	u := obj(t, "apiVersion: v1\nkind: Secret\ntype: Opaque\n")
	u.SetName(name)
	u.SetNamespace("shop")
	if data != nil {
		u.Object["data"] = anyMap(data)
	}
	if stringData != nil {
		u.Object["stringData"] = anyMap(stringData)
	}
	last, err := json.Marshal(u.Object)
	if err != nil {
		t.Fatal(err)
	}
	u.SetAnnotations(map[string]string{LastAppliedAnnotation: string(last), "team": "shop"})
	return u
}

func anyMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func TestMaskSecrets(t *testing.T) {
	before := secret(t, "db",
		map[string]string{"same": b64(canary), "changed": b64(canary + "-old"), "removed": b64(canary + "-gone")},
		map[string]string{"password": canary})
	after := secret(t, "db",
		map[string]string{"same": b64(canary), "changed": b64(canary + "-new"), "added": b64(canary + "-added")},
		map[string]string{"password": canary + "-new"})
	origB, origA := before.DeepCopy(), after.DeepCopy()

	b, a := MaskSecrets(before, after)

	if d := cmp.Diff(origB.Object, before.Object) + cmp.Diff(origA.Object, after.Object); d != "" {
		t.Errorf("MaskSecrets modified its inputs (-want +got):\n%s", d)
	}
	check := func(u *unstructured.Unstructured, path []string, want string) {
		t.Helper()
		got, _, _ := unstructured.NestedString(u.Object, path...)
		if got != want {
			t.Errorf("%s = %q, want %q", strings.Join(path, "."), got, want)
		}
	}
	check(b, []string{"data", "same"}, Mask)
	check(a, []string{"data", "same"}, Mask)
	check(b, []string{"data", "changed"}, MaskBefore)
	check(a, []string{"data", "changed"}, MaskAfter)
	check(b, []string{"data", "removed"}, Mask)
	check(a, []string{"data", "added"}, Mask)
	check(b, []string{"stringData", "password"}, MaskBefore)
	check(a, []string{"stringData", "password"}, MaskAfter)
	check(b, []string{"metadata", "annotations", LastAppliedAnnotation}, MaskBefore)
	check(a, []string{"metadata", "annotations", LastAppliedAnnotation}, MaskAfter)
	check(a, []string{"metadata", "annotations", "team"}, "shop")
	if _, ok := b.Object["data"].(map[string]any)["added"]; ok {
		t.Error("masking added a key to before")
	}
}

func TestMaskSecretsOneSide(t *testing.T) {
	s := secret(t, "db", map[string]string{"k": b64(canary)}, map[string]string{"p": canary})
	for _, tc := range []struct {
		name string
		b, a *unstructured.Unstructured
	}{{"created", nil, s}, {"deleted", s, nil}} {
		b, a := MaskSecrets(tc.b, tc.a)
		got := b
		if got == nil {
			got = a
		}
		assertNoCanary(t, tc.name, got)
		for _, p := range [][]string{{"data", "k"}, {"stringData", "p"}, {"metadata", "annotations", LastAppliedAnnotation}} {
			if v, _, _ := unstructured.NestedString(got.Object, p...); v != Mask {
				t.Errorf("%s: %v = %q, want %q", tc.name, p, v, Mask)
			}
		}
	}
}

func TestMaskSecretsLeavesOtherKinds(t *testing.T) {
	c := cm(t, "a", "x", canary)
	other := obj(t, "apiVersion: example.com/v1\nkind: Secret\nmetadata: {name: x}\ndata: {k: v}\n")
	b, a := MaskSecrets(c, other)
	if v, _, _ := unstructured.NestedString(b.Object, "data", "key"); v != canary {
		t.Errorf("ConfigMap data masked: %q", v)
	}
	if v, _, _ := unstructured.NestedString(a.Object, "data", "k"); v != "v" {
		t.Errorf("non-core Secret masked: %q", v)
	}
}

func TestMaskSecretsMalformed(t *testing.T) {
	// Shapes the API server would refuse still reach an offline diff.
	s := obj(t, "apiVersion: v1\nkind: Secret\nmetadata: {name: x, annotations: {n: 1}}\ndata: "+b64(canary)+"\nstringData: ["+canary+"]\n")
	s.Object["metadata"].(map[string]any)["annotations"].(map[string]any)[LastAppliedAnnotation] = canary
	b, _ := MaskSecrets(s, nil)
	assertNoCanary(t, "malformed", b)
}

func TestPairSecrets(t *testing.T) {
	before := secret(t, "db", map[string]string{"same": b64(canary), "changed": b64(canary + "-old")}, nil)
	after := secret(t, "db", map[string]string{"same": b64(canary), "changed": b64(canary + "-new")}, nil)

	c, err := Pair(before, after, Options{})
	if err != nil {
		t.Fatal(err)
	}
	assertNoCanary(t, "before", c.Before)
	assertNoCanary(t, "after", c.After)
	for _, s := range canaries() {
		if strings.Contains(c.Diff, s) {
			t.Errorf("diff leaks %q:\n%s", s, c.Diff)
		}
	}
	for _, line := range []string{"-  changed: '*** (before)'", "+  changed: '*** (after)'", "   same: '***'"} {
		if !hasLine(c.Diff, line) {
			t.Errorf("diff lacks %q:\n%s", line, c.Diff)
		}
	}

	// The same value in two different Secrets must not show as equal.
	other := secret(t, "other", map[string]string{"same": b64(canary)}, nil)
	c1, _ := Pair(nil, after, Options{})
	c2, _ := Pair(nil, other, Options{})
	v1, _, _ := unstructured.NestedString(c1.After.Object, "data", "same")
	v2, _, _ := unstructured.NestedString(c2.After.Object, "data", "same")
	if v1 != Mask || v2 != Mask {
		t.Errorf("masks %q, %q, want %q", v1, v2, Mask)
	}

	// ShowSecrets is the opt-out.
	c, err = Pair(before, after, Options{ShowSecrets: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c.Diff, b64(canary+"-new")) {
		t.Errorf("ShowSecrets: diff lacks the value:\n%s", c.Diff)
	}
}

func TestPairSecretUnchanged(t *testing.T) {
	s := secret(t, "db", map[string]string{"k": b64(canary)}, nil)
	c, err := Pair(s, s.DeepCopy(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Action != Unchanged || c.Diff != "" {
		t.Errorf("action %s, diff %q", c.Action, c.Diff)
	}
	assertNoCanary(t, "unchanged", c.After)
}

func TestErrorsDoNotEchoSecrets(t *testing.T) {
	s := secret(t, "db", map[string]string{"k": b64(canary)}, map[string]string{"p": canary})
	_, err := Objects(list(s, s.DeepCopy()), nil, Options{})
	if err == nil {
		t.Fatal("no error for duplicate")
	}
	for _, c := range canaries() {
		if strings.Contains(err.Error(), c) {
			t.Errorf("error leaks %q: %v", c, err)
		}
	}
}

func assertNoCanary(t *testing.T, what string, u *unstructured.Unstructured) {
	t.Helper()
	if u == nil {
		t.Errorf("%s: nil object", what)
		return
	}
	j, err := json.Marshal(u.Object)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range canaries() {
		if strings.Contains(string(j), c) {
			t.Errorf("%s leaks %q: %s", what, c, j)
		}
	}
}
