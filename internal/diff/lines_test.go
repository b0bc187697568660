package diff

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/pmezard/go-difflib/difflib"
)

// textDiff returns "" when want and got are equal, else both, quoted.
func textDiff(want, got string) string {
	if want == got {
		return ""
	}
	return fmt.Sprintf("want:\n%q\ngot:\n%q", want, got)
}

// lcsLength is the length of a longest common subsequence, by dynamic
// programming: the reference a shortest edit script is checked against.
func lcsLength(a, b []string) int {
	prev, cur := make([]int, len(b)+1), make([]int, len(b)+1)
	for i := range a {
		for j := range b {
			switch {
			case a[i] == b[j]:
				cur[j+1] = prev[j] + 1
			default:
				cur[j+1] = max(prev[j+1], cur[j])
			}
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// apply rebuilds b from a and the edit script, checking that equal runs
// are equal and that the runs cover both sides in order.
func apply(t *testing.T, a, b []string, ops []op) (out []string, changed int) {
	t.Helper()
	i, j := 0, 0
	for _, o := range ops {
		if o.i1 != i || o.j1 != j || o.i2 < o.i1 || o.j2 < o.j1 {
			t.Fatalf("op %+v does not continue at (%d, %d)", o, i, j)
		}
		if o.equal {
			if o.i2-o.i1 != o.j2-o.j1 || !slicesEqual(a[o.i1:o.i2], b[o.j1:o.j2]) {
				t.Fatalf("equal op %+v joins different lines", o)
			}
		} else {
			changed += o.i2 - o.i1 + o.j2 - o.j1
		}
		out = append(out, b[o.j1:o.j2]...)
		i, j = o.i2, o.j2
	}
	if i != len(a) || j != len(b) {
		t.Fatalf("ops end at (%d, %d), want (%d, %d)", i, j, len(a), len(b))
	}
	return out, changed
}

func slicesEqual(a, b []string) bool { return strings.Join(a, "\x00") == strings.Join(b, "\x00") }

// TestEditScriptMinimal checks the edit script on random inputs over small
// alphabets (many repeated lines, the hard case): it turns a into b, and
// it deletes and inserts no more lines than a longest common subsequence
// leaves.
func TestEditScriptMinimal(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := range 3000 {
		alphabet := 2 + n%5
		gen := func() []string {
			out := make([]string, rng.IntN(25))
			for i := range out {
				out[i] = string(rune('a' + rng.IntN(alphabet)))
			}
			return out
		}
		a, b := gen(), gen()
		ops, _, err := editScript(a, b, DefaultMaxWork)
		if err != nil {
			t.Fatalf("%q → %q: %v", a, b, err)
		}
		got, changed := apply(t, a, b, ops)
		if !slicesEqual(got, b) {
			t.Fatalf("%q → %q: ops rebuild %q", a, b, got)
		}
		if want := len(a) + len(b) - 2*lcsLength(a, b); changed != want {
			t.Fatalf("%q → %q: %d lines changed, a shortest script changes %d", a, b, changed, want)
		}
	}
}

// TestUnifiedMatchesDifflib checks the output format against go-difflib,
// which the diff used before, on edits where both find the same changes:
// unique lines with scattered insertions, deletions and replacements, at
// every context size.
func TestUnifiedMatchesDifflib(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for n := range 300 {
		var a []string
		for i := range 5 + rng.IntN(60) {
			a = append(a, fmt.Sprintf("line %d\n", i))
		}
		b := append([]string(nil), a...)
		for e := range 1 + rng.IntN(4) {
			at := rng.IntN(len(b) + 1)
			fresh := fmt.Sprintf("new %d.%d\n", n, e)
			switch rng.IntN(3) {
			case 0:
				b = append(b[:at], append([]string{fresh}, b[at:]...)...)
			case 1:
				if at < len(b) {
					b = append(b[:at], b[at+1:]...)
				}
			default:
				if at < len(b) {
					b[at] = fresh
				}
			}
		}
		if slicesEqual(a, b) {
			continue
		}
		for _, context := range []int{0, 1, 3, 5} {
			want, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{A: a, B: b, FromFile: "before/x", ToFile: "after/x", Context: context})
			if err != nil {
				t.Fatal(err)
			}
			got, _ := unified(a, b, "before/x", "after/x", context, DefaultMaxWork)
			if diff := textDiff(want, got); diff != "" {
				t.Fatalf("case %d, context %d: unified diff differs from difflib :\n%s", n, context, diff)
			}
		}
	}
}

func TestUnifiedOverBudget(t *testing.T) {
	a := []string{"a\n", "b\n", "c\n", "d\n"}
	b := []string{"w\n", "x\n", "y\n", "z\n"}
	got, _ := unified(a, b, "before/x", "after/x", 3, 5)
	want := "--- before/x\n+++ after/x\nvalues differ (too large to show: 4 lines before, 4 after)\n"
	if diff := textDiff(want, got); diff != "" {
		t.Errorf("over budget:\n%s", diff)
	}
	// The same input within budget is shown line by line.
	got, _ = unified(a, b, "before/x", "after/x", 3, DefaultMaxWork)
	want = "--- before/x\n+++ after/x\n@@ -1,4 +1,4 @@\n-a\n-b\n-c\n-d\n+w\n+x\n+y\n+z\n"
	if diff := textDiff(want, got); diff != "" {
		t.Errorf("within budget:\n%s", diff)
	}
}

// TestPairLarge diffs 250,000-line values. Each must finish within the
// test timeout, which a quadratic diff does not: one changed line shows as
// one hunk, and values with nothing in common say they differ.
func TestPairLarge(t *testing.T) {
	const n = 250_000
	cases := map[string]largeCase{}
	for _, c := range largeCases(n) {
		cases[c.name] = c
	}
	header := "--- before/ConfigMap/default/big\n+++ after/ConfigMap/default/big\n"
	hunk := func(line func(int) string) string {
		return header + fmt.Sprintf("@@ -%d,7 +%d,7 @@\n", n/2+1, n/2+1) +
			"     " + line(n/2-3) + "\n     " + line(n/2-2) + "\n     " + line(n/2-1) + "\n" +
			"-    " + line(n/2) + "\n+    changed\n" +
			"     " + line(n/2+1) + "\n     " + line(n/2+2) + "\n     " + line(n/2+3) + "\n"
	}
	tooLarge := header + fmt.Sprintf("values differ (too large to show: %d lines before, %d after)\n", n+7, n+7)
	// The YAML is apiVersion, data, "  value: |", the n value lines, then
	// kind, metadata, name and namespace: value line i is YAML line i+4.
	tests := []struct {
		name string
		want string
	}{
		{"one-line", hunk(func(i int) string { return fmt.Sprintf("line %d", i) })},
		{"repeated-one-line", hunk(func(i int) string { return fmt.Sprintf("line %d", i%200) })},
		{"all-different", tooLarge},
		{"repeated-all-different", tooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cases[tt.name]
			ch, err := Pair(c.before, c.after, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if ch.Action != Configured {
				t.Errorf("action = %s, want configured", ch.Action)
			}
			if diff := textDiff(tt.want, ch.Diff); diff != "" {
				t.Errorf("diff:\n%s", diff)
			}
		})
	}
}

func TestUnifiedTexts(t *testing.T) {
	before := "a: 1\nimage: x:1.0 # {\"$imagepolicy\": \"x\"}\nc: 3\n"
	after := "a: 1\nimage: x:1.1 # {\"$imagepolicy\": \"x\"}\nc: 3\n"
	want := "--- a/f.yaml\n+++ b/f.yaml\n@@ -1,3 +1,3 @@\n a: 1\n-image: x:1.0 # {\"$imagepolicy\": \"x\"}\n+image: x:1.1 # {\"$imagepolicy\": \"x\"}\n c: 3\n"
	if got := Unified(before, after, "a/f.yaml", "b/f.yaml"); got != want {
		t.Errorf("Unified =\n%s\nwant\n%s", got, want)
	}
	if got := Unified(before, before, "a", "b"); got != "" {
		t.Errorf("Unified of equal texts = %q, want empty", got)
	}
}
