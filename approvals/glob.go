package approvals

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// pattern is a compiled CODEOWNERS path pattern. It matches a file when it
// matches the file's path or (unless it ends in a bare *) the path of one
// of the file's folders: "/apps/github" owns everything in apps/github,
// while "docs/*" owns docs/a.md but not docs/build/b.md.
type pattern struct {
	segs      [][]tok // one per path segment; nil stands for **
	dirOnly   bool    // written with a trailing /: matches folders only
	filesOnly bool    // ends in a bare *: matches files only
}

type tokKind uint8

const (
	tokLit   tokKind = iota // one character
	tokAny                  // ?
	tokStar                 // *
	tokClass                // [...]
)

type tok struct {
	kind   tokKind
	r      rune
	negate bool
	ranges []rune // pairs lo, hi
}

// compilePattern compiles a CODEOWNERS pattern. GitHub reads it like
// gitignore: a pattern with a / at its start or in its middle is anchored
// at the repository root, one without matches at any depth. GitLab anchors
// only patterns that start with /. Only GitLab reads [...] as a character
// class; GitHub takes brackets literally.
func compilePattern(s string, syntax Syntax) (pattern, error) {
	var p pattern
	raw := splitUnescaped(s, '/')
	leading := len(raw) > 1 && raw[0] == ""
	if len(raw) > 1 && raw[len(raw)-1] == "" {
		p.dirOnly = true
		raw = raw[:len(raw)-1]
	}
	anchored := leading || (syntax != GitLab && len(raw) > 1)
	if !anchored {
		p.segs = append(p.segs, nil)
	}
	for _, r := range raw {
		switch r {
		case "":
			continue // the leading / and doubled ones
		case "**":
			if n := len(p.segs); n > 0 && p.segs[n-1] == nil {
				continue
			}
			p.segs = append(p.segs, nil)
		default:
			p.segs = append(p.segs, compileSegment(r, syntax == GitLab))
		}
	}
	if len(p.segs) == 0 || (len(p.segs) == 1 && p.segs[0] == nil && !strings.Contains(s, "*")) {
		return pattern{}, errors.New("pattern matches no file; write a path such as /docs/ or *.md, or * for every file")
	}
	if last := p.segs[len(p.segs)-1]; !p.dirOnly && len(last) == 1 && last[0].kind == tokStar {
		p.filesOnly = true
	}
	return p, nil
}

// splitUnescaped splits s at each sep not escaped by a backslash, keeping
// the escapes in the parts.
func splitUnescaped(s string, sep byte) []string {
	var parts []string
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case sep:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

func compileSegment(s string, classes bool) []tok {
	var toks []tok
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch r {
		case '\\':
			if i+1 < len(s) {
				r, n = utf8.DecodeRuneInString(s[i+1:])
				n++
			}
			toks = append(toks, tok{kind: tokLit, r: r})
		case '?':
			toks = append(toks, tok{kind: tokAny})
		case '*':
			if len(toks) == 0 || toks[len(toks)-1].kind != tokStar {
				toks = append(toks, tok{kind: tokStar})
			}
		case '[':
			if t, m, ok := compileClass(s[i:]); classes && ok {
				toks = append(toks, t)
				n = m
			} else {
				toks = append(toks, tok{kind: tokLit, r: r})
			}
		default:
			toks = append(toks, tok{kind: tokLit, r: r})
		}
		i += n
	}
	return toks
}

// compileClass compiles the character class at the start of s and returns
// its length; ok is false when the class is not closed.
func compileClass(s string) (t tok, n int, ok bool) {
	t.kind = tokClass
	i := 1
	if i < len(s) && (s[i] == '!' || s[i] == '^') {
		t.negate = true
		i++
	}
	first := true
	for i < len(s) {
		if s[i] == ']' && !first {
			return t, i + 1, true
		}
		first = false
		lo, m := classRune(s[i:])
		i += m
		hi := lo
		if i+1 < len(s) && s[i] == '-' && s[i+1] != ']' {
			hi, m = classRune(s[i+1:])
			i += 1 + m
		}
		t.ranges = append(t.ranges, lo, hi)
	}
	return tok{}, 0, false
}

func classRune(s string) (rune, int) {
	if s[0] == '\\' && len(s) > 1 {
		r, n := utf8.DecodeRuneInString(s[1:])
		return r, n + 1
	}
	return utf8.DecodeRuneInString(s)
}

func (t tok) matches(r rune) bool {
	switch t.kind {
	case tokLit:
		return t.r == r
	case tokAny:
		return true
	case tokClass:
		in := false
		for i := 0; i+1 < len(t.ranges); i += 2 {
			if t.ranges[i] <= r && r <= t.ranges[i+1] {
				in = true
				break
			}
		}
		return in != t.negate
	}
	return false
}

// match reports whether the pattern owns the file at path (slash-separated,
// relative to the repository root).
func (p pattern) match(path string) bool {
	segs := strings.Split(path, "/")
	if !p.dirOnly && matchSegments(p.segs, segs) {
		return true
	}
	if p.filesOnly {
		return false
	}
	for i := len(segs) - 1; i >= 1; i-- {
		if matchSegments(p.segs, segs[:i]) {
			return true
		}
	}
	return false
}

// matchSegments matches path segments against pattern segments, a nil one
// standing for any number of segments. It backtracks only to the last **,
// so it runs in time proportional to the product of the lengths.
func matchSegments(pat [][]tok, path []string) bool {
	pi, si := 0, 0
	starP, starS := -1, 0
	for si < len(path) {
		switch {
		case pi < len(pat) && pat[pi] == nil:
			starP, starS = pi, si
			pi++
		case pi < len(pat) && matchName(pat[pi], path[si]):
			pi++
			si++
		case starP >= 0:
			starS++
			si = starS
			pi = starP + 1
		default:
			return false
		}
	}
	for pi < len(pat) && pat[pi] == nil {
		pi++
	}
	return pi == len(pat)
}

// matchName matches one path segment against a compiled segment, with the
// same backtracking scheme as matchSegments.
func matchName(pat []tok, name string) bool {
	ti, ni := 0, 0
	starT, starN := -1, 0
	for ni < len(name) {
		r, n := utf8.DecodeRuneInString(name[ni:])
		switch {
		case ti < len(pat) && pat[ti].kind == tokStar:
			starT, starN = ti, ni
			ti++
		case ti < len(pat) && pat[ti].matches(r):
			ti++
			ni += n
		case starT >= 0:
			_, m := utf8.DecodeRuneInString(name[starN:])
			starN += m
			ni = starN
			ti = starT + 1
		default:
			return false
		}
	}
	for ti < len(pat) && pat[ti].kind == tokStar {
		ti++
	}
	return ti == len(pat)
}
