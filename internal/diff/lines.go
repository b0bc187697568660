package diff

import (
	"errors"
	"strconv"
	"strings"
)

// DefaultMaxWork bounds the work of one object's line diff (see
// Options.MaxWork): about 0.1 s on one core, whatever the input. Within it
// a 2,000-line object may differ in every line, or a 20,000-line one in a
// few hundred, and still be shown line by line.
const DefaultMaxWork = 10_000_000

// errTooCostly stops a line diff whose work budget ran out.
var errTooCostly = errors.New("the line diff is over its work budget")

// tooLargeLine is the line a diff shows instead of hunks when finding them
// would cost more than Options.MaxWork: like git's "Binary files … differ",
// it says the sides differ without saying how.
func tooLargeLine(a, b int) string {
	return "values differ (too large to show: " + strconv.Itoa(a) + " lines before, " + strconv.Itoa(b) + " after)\n"
}

// unified returns the unified diff of the lines a and b (each keeping its
// newline) in the format of difflib and GNU diff: a ---/+++ header, then
// hunks with context lines around each change, hunks closer than twice the
// context merged. The edit script is a minimal one (Myers' O((N+M)·D)
// algorithm in linear space, after common prefix and suffix are stripped);
// when finding it would take more than maxWork steps, the header is
// followed by tooLargeLine instead of hunks. Both sides are assumed to
// differ. It also returns the steps it spent.
func unified(a, b []string, from, to string, context, maxWork int) (string, int) {
	var out strings.Builder
	out.WriteString("--- " + from + "\n+++ " + to + "\n")
	ops, used, err := editScript(a, b, maxWork)
	if err != nil {
		out.WriteString(tooLargeLine(len(a), len(b)))
		return out.String(), used
	}
	for _, g := range groupOps(ops, len(a), len(b), context) {
		first, last := g[0], g[len(g)-1]
		out.WriteString("@@ -" + unifiedRange(first.i1, last.i2) + " +" + unifiedRange(first.j1, last.j2) + " @@\n")
		for _, op := range g {
			if op.equal {
				writeLines(&out, ' ', a[op.i1:op.i2])
				continue
			}
			writeLines(&out, '-', a[op.i1:op.i2])
			writeLines(&out, '+', b[op.j1:op.j2])
		}
	}
	return out.String(), used
}

func writeLines(out *strings.Builder, prefix byte, lines []string) {
	for _, l := range lines {
		out.WriteByte(prefix)
		out.WriteString(l)
		if !strings.HasSuffix(l, "\n") {
			out.WriteByte('\n')
		}
	}
}

// unifiedRange formats the lines [start, stop) of a hunk header as GNU diff
// does: "5" for one line, "5,3" for three, "4,0" for none after line 4.
func unifiedRange(start, stop int) string {
	begin, length := start+1, stop-start
	if length == 1 {
		return strconv.Itoa(begin)
	}
	if length == 0 {
		begin--
	}
	return strconv.Itoa(begin) + "," + strconv.Itoa(length)
}

// op is a run of equal lines a[i1:i2] == b[j1:j2], or a change replacing
// a[i1:i2] by b[j1:j2] (either may be empty, not both).
type op struct {
	equal          bool
	i1, i2, j1, j2 int
}

// groupOps cuts ops into hunks with n lines of context, as difflib's
// GetGroupedOpCodes does, so the hunk boundaries match that format.
func groupOps(ops []op, na, nb, n int) [][]op {
	if len(ops) == 0 {
		ops = []op{{equal: true, i2: min(1, na), j2: min(1, nb)}}
	}
	if c := &ops[0]; c.equal {
		c.i1, c.j1 = max(c.i1, c.i2-n), max(c.j1, c.j2-n)
	}
	if c := &ops[len(ops)-1]; c.equal {
		c.i2, c.j2 = min(c.i2, c.i1+n), min(c.j2, c.j1+n)
	}
	var (
		groups [][]op
		group  []op
	)
	for _, c := range ops {
		if c.equal && c.i2-c.i1 > 2*n {
			group = append(group, op{true, c.i1, min(c.i2, c.i1+n), c.j1, min(c.j2, c.j1+n)})
			groups = append(groups, group)
			group = nil
			c.i1, c.j1 = max(c.i1, c.i2-n), max(c.j1, c.j2-n)
		}
		group = append(group, c)
	}
	if len(group) > 0 && (len(group) != 1 || !group[0].equal) {
		groups = append(groups, group)
	}
	return groups
}

// editScript returns the runs of equal and changed lines that turn a into
// b with the fewest deleted and inserted lines.
func editScript(a, b []string, maxWork int) ([]op, int, error) {
	// Compare lines as small integers: one hash per line instead of a
	// string comparison per step.
	ids := make(map[string]int32, len(a))
	intern := func(lines []string) []int32 {
		out := make([]int32, len(lines))
		for i, l := range lines {
			id, ok := ids[l]
			if !ok {
				id = int32(len(ids))
				ids[l] = id
			}
			out[i] = id
		}
		return out
	}
	m := &myers{a: intern(a), b: intern(b), work: maxWork}
	m.delA = make([]bool, len(a))
	m.insB = make([]bool, len(b))
	if err := m.compare(0, len(a), 0, len(b)); err != nil {
		return nil, maxWork, err
	}
	return m.ops(), maxWork - m.work, nil
}

// myers finds a shortest edit script with the linear-space variant of
// Myers' algorithm ("An O(ND) difference algorithm and its variations",
// 1986, section 4b): find the middle snake of an optimal path by searching
// from both ends at once, then solve the two halves. The marks it leaves in
// delA and insB are the lines deleted from a and inserted from b.
type myers struct {
	a, b       []int32
	delA, insB []bool
	// work is the number of steps left; it is charged for every diagonal
	// visited, every snake step and every vector set up.
	work int
	// vf and vb are the forward and backward furthest-reaching x per
	// diagonal, reused across calls.
	vf, vb []int
}

func (m *myers) compare(aLo, aHi, bLo, bHi int) error {
	for aLo < aHi && bLo < bHi && m.a[aLo] == m.b[bLo] {
		aLo, bLo = aLo+1, bLo+1
	}
	for aLo < aHi && bLo < bHi && m.a[aHi-1] == m.b[bHi-1] {
		aHi, bHi = aHi-1, bHi-1
	}
	switch {
	case aLo == aHi:
		for j := bLo; j < bHi; j++ {
			m.insB[j] = true
		}
		return nil
	case bLo == bHi:
		for i := aLo; i < aHi; i++ {
			m.delA[i] = true
		}
		return nil
	}
	x, y, err := m.middle(aLo, aHi, bLo, bHi)
	if err != nil {
		return err
	}
	if err := m.compare(aLo, x, bLo, y); err != nil {
		return err
	}
	return m.compare(x, aHi, y, bHi)
}

// middle returns a point (x, y) on a shortest edit path from (aLo, bLo) to
// (aHi, bHi) that is strictly between them; the sides are non-empty and
// their first and last lines differ.
func (m *myers) middle(aLo, aHi, bLo, bHi int) (int, int, error) {
	n, k := aHi-aLo, bHi-bLo
	maxD := (n + k + 1) / 2
	size := 2*maxD + 2
	if m.work -= size; m.work < 0 {
		return 0, 0, errTooCostly
	}
	if cap(m.vf) < size {
		m.vf, m.vb = make([]int, size), make([]int, size)
	}
	vf, vb := m.vf[:size], m.vb[:size]
	for i := range vf {
		vf[i], vb[i] = -1, -1
	}
	// Diagonal d holds the points with x - y = d; off maps it to an index.
	// vb holds, per diagonal of the reversed sequences, how far the
	// backward search has come from the end.
	off := maxD
	vf[off+1], vb[off+1] = 0, 0
	delta := n - k
	odd := delta%2 != 0
	// The diagonals whose search left the grid are skipped from then on.
	fStart, fEnd, bStart, bEnd := 0, 0, 0, 0
	for d := 0; d < maxD; d++ {
		for dg := -d + fStart; dg <= d-fEnd; dg += 2 {
			i := off + dg
			var x int
			if dg == -d || (dg != d && vf[i-1] < vf[i+1]) {
				x = vf[i+1]
			} else {
				x = vf[i-1] + 1
			}
			y := x - dg
			x0 := x
			for x < n && y < k && m.a[aLo+x] == m.b[bLo+y] {
				x, y = x+1, y+1
			}
			if m.work -= 1 + x - x0; m.work < 0 {
				return 0, 0, errTooCostly
			}
			vf[i] = x
			switch {
			case x > n:
				fEnd += 2
			case y > k:
				fStart += 2
			case odd:
				if j := off + delta - dg; j >= 0 && j < size && vb[j] != -1 && x >= n-vb[j] {
					return aLo + x, bLo + y, nil
				}
			}
		}
		for dg := -d + bStart; dg <= d-bEnd; dg += 2 {
			i := off + dg
			var x int
			if dg == -d || (dg != d && vb[i-1] < vb[i+1]) {
				x = vb[i+1]
			} else {
				x = vb[i-1] + 1
			}
			y := x - dg
			x0 := x
			for x < n && y < k && m.a[aHi-x-1] == m.b[bHi-y-1] {
				x, y = x+1, y+1
			}
			if m.work -= 1 + x - x0; m.work < 0 {
				return 0, 0, errTooCostly
			}
			vb[i] = x
			switch {
			case x > n:
				bEnd += 2
			case y > k:
				bStart += 2
			case !odd:
				if j := off + delta - dg; j >= 0 && j < size && vf[j] != -1 {
					fx := vf[j]
					fy := fx - (j - off)
					if fx >= n-x {
						return aLo + fx, bLo + fy, nil
					}
				}
			}
		}
	}
	// Unreachable for inputs that differ: the searches meet by d = maxD.
	// Splitting at a corner keeps the result a valid edit script anyway.
	return aLo + n, bLo, nil
}

// ops turns the marks into runs of equal and changed lines.
func (m *myers) ops() []op {
	var ops []op
	i, j := 0, 0
	na, nb := len(m.a), len(m.b)
	for i < na || j < nb {
		start := op{i1: i, j1: j}
		if i < na && j < nb && !m.delA[i] && !m.insB[j] {
			for i < na && j < nb && !m.delA[i] && !m.insB[j] {
				i, j = i+1, j+1
			}
			start.equal = true
		} else {
			// Deleted and inserted lines between two equal runs are one
			// change, shown as all deletions, then all insertions.
			for (i < na && m.delA[i]) || (j < nb && m.insB[j]) {
				for i < na && m.delA[i] {
					i++
				}
				for j < nb && m.insB[j] {
					j++
				}
			}
		}
		start.i2, start.j2 = i, j
		ops = append(ops, start)
	}
	return ops
}

// Unified returns the unified diff of two texts, from and to naming them in
// the header, with three lines of context, as diff -u writes it; "" when
// they are equal.
func Unified(before, after, from, to string) string {
	if before == after {
		return ""
	}
	out, _ := unified(splitLines(before), splitLines(after), from, to, 3, DefaultMaxWork)
	return out
}
