package report

import (
	"bytes"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/kubectl-gitops/kubectl-gitops/internal/diff"
)

// ANSI SGR sequences.
const (
	reset  = "\x1b[0m"
	bold   = "\x1b[1m"
	red    = "\x1b[31m"
	green  = "\x1b[32m"
	yellow = "\x1b[33m"
	cyan   = "\x1b[36m"
)

// EscapeText makes s safe to print on a terminal: every character that a
// terminal would act on rather than show — C0 controls but tab (ESC, BEL,
// CR, LF, backspace, …), DEL, C1 controls (U+0080–U+009F, which some
// terminals take as CSI or OSC), bidirectional overrides and isolates
// (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069) and the Unicode
// line and paragraph separators — is written as a Go escape (\x1b, \r,
// \u202e), and so is every byte that is not valid UTF-8. Other text is
// kept as is, so a name without such characters prints unchanged.
//
// Use it for every string from a tree, a cluster or an error that reaches
// a terminal: object names, file names, warnings, diff lines.
func EscapeText(s string) string {
	i := unsafeIndex(s)
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteString(`\x`)
			b.WriteString(strconv.FormatUint(uint64(s[i])>>4, 16))
			b.WriteString(strconv.FormatUint(uint64(s[i])&0xf, 16))
		case unsafeRune(r):
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// unsafeIndex is the index of the first byte EscapeText changes, or -1.
func unsafeIndex(s string) int {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c != '\t' && (c < 0x20 || c == 0x7f) {
				return i
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || unsafeRune(r) {
			return i
		}
		i += size
	}
	return -1
}

// unsafeRune reports whether a terminal or a renderer would act on r
// instead of showing it; see EscapeText.
func unsafeRune(r rune) bool {
	switch {
	case r == '\t':
		return false
	case r < 0x20, r >= 0x7f && r <= 0x9f:
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	case r == 0x2028, r == 0x2029:
		return true
	}
	return false
}

// writeText writes one header line per changed object (+ created,
// ~ configured, - deleted), its unified diff, and a summary line. Every
// string from the objects is passed through EscapeText, so with or
// without color the only escape sequences written are the report's own.
func writeText(buf *bytes.Buffer, cs *diff.ChangeSet, color bool) {
	paint := func(c, s string) string {
		if !color || s == "" {
			return s
		}
		return c + s + reset
	}
	for _, c := range cs.Changes {
		if c.Action == diff.Unchanged {
			continue
		}
		sym, col := symbol(c.Action)
		buf.WriteString(paint(bold+col, sym+" "+EscapeText(c.Ref.String())+" "+string(c.Action)))
		buf.WriteByte('\n')
		if c.Message != "" {
			buf.WriteString("  note: " + EscapeText(c.Message) + "\n")
		}
		inHeader := true
		for line := range strings.Lines(c.Diff) {
			text := EscapeText(strings.TrimSuffix(line, "\n"))
			switch {
			case inHeader && (strings.HasPrefix(text, "--- ") || strings.HasPrefix(text, "+++ ")):
				text = paint(bold, text)
			case strings.HasPrefix(text, "@@"):
				inHeader = false
				text = paint(cyan, text)
			case strings.HasPrefix(text, "-"):
				text = paint(red, text)
			case strings.HasPrefix(text, "+"):
				text = paint(green, text)
			}
			buf.WriteString(text)
			buf.WriteByte('\n')
		}
		buf.WriteByte('\n')
	}
	s := cs.Summary()
	if !cs.HasChanges() {
		buf.WriteString("no changes\n")
	}
	buf.WriteString(summaryLine(s))
	buf.WriteByte('\n')
}

func symbol(a diff.Action) (sym, color string) {
	switch a {
	case diff.Created:
		return "+", green
	case diff.Deleted:
		return "-", red
	case diff.Configured:
		return "~", yellow
	}
	return "=", ""
}
