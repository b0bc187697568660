package report

import (
	"bytes"
	"strings"

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

// writeText writes one header line per changed object (+ created,
// ~ configured, - deleted), its unified diff as is, and a summary line.
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
		buf.WriteString(paint(bold+col, sym+" "+c.Ref.String()+" "+string(c.Action)))
		buf.WriteByte('\n')
		if c.Message != "" {
			buf.WriteString("  note: " + c.Message + "\n")
		}
		inHeader := true
		for line := range strings.Lines(c.Diff) {
			text := strings.TrimSuffix(line, "\n")
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
