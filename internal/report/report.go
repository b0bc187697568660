// Package report renders a diff.ChangeSet for people and programs: text for
// a terminal, markdown for pull/merge request comments, JSON for scripts.
//
// It only formats; Secret masking has already happened in package diff, so
// every Change it receives is safe to print.
package report

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/kubectl-gitops/kubectl-gitops/internal/diff"
)

// Format is an output format.
type Format string

// The formats.
const (
	Text     Format = "text"
	Markdown Format = "markdown"
	JSON     Format = "json"
)

// Formats lists the valid formats, for flag help.
func Formats() []Format { return []Format{Text, Markdown, JSON} }

// ParseFormat parses a format name as given to -o.
func ParseFormat(s string) (Format, error) {
	for _, f := range Formats() {
		if s == string(f) {
			return f, nil
		}
	}
	names := make([]string, 0, len(Formats()))
	for _, f := range Formats() {
		names = append(names, string(f))
	}
	return "", fmt.Errorf("unknown output format %q: use one of %s", s, strings.Join(names, ", "))
}

// Options choose how a ChangeSet is written.
type Options struct {
	// Format defaults to Text.
	Format Format
	// Color adds ANSI colors to Text output; the caller decides whether
	// the destination is a terminal.
	Color bool
}

// Write renders cs to w. A nil cs is written as an empty ChangeSet.
func Write(w io.Writer, cs *diff.ChangeSet, opts Options) error {
	if cs == nil {
		cs = &diff.ChangeSet{}
	}
	var buf bytes.Buffer
	switch opts.Format {
	case Text, "":
		writeText(&buf, cs, opts.Color)
	case Markdown:
		writeMarkdown(&buf, cs)
	case JSON:
		if err := writeJSON(&buf, cs); err != nil {
			return fmt.Errorf("write json report: %w", err)
		}
	default:
		_, err := ParseFormat(string(opts.Format))
		return err
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("write %s report: %w", formatName(opts.Format), err)
	}
	return nil
}

func formatName(f Format) Format {
	if f == "" {
		return Text
	}
	return f
}

// summaryLine is shared by the text and markdown formats.
func summaryLine(s diff.Summary) string {
	return fmt.Sprintf("%d created, %d configured, %d deleted, %d unchanged", s.Created, s.Configured, s.Deleted, s.Unchanged)
}
