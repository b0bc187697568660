package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrNotFound is returned (wrapped) by Find when no gitops.yaml is found, so
// callers can fall back to treating arguments as plain paths.
var ErrNotFound = errors.New("no " + FileName + " found")

// Error is one problem in a repository file. Load, Parse and Validate return
// every problem they find, joined with errors.Join; use errors.As on each to
// get the position, for example to annotate a pull request.
type Error struct {
	File  string // the file as the caller named it
	Line  int    // 1-based; 0 when unknown
	Field string // such as apps[2].path; empty for the whole file
	Msg   string
	Err   error // the cause, if any
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":")
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// problems collects errors at field paths, looking up their lines.
type problems struct {
	file  string
	lines map[string]int
	errs  []error
}

func (p *problems) add(field, format string, args ...any) {
	p.errs = append(p.errs, &Error{File: p.file, Line: lineOf(p.lines, field), Field: field, Msg: fmt.Sprintf(format, args...)})
}

// addAt reports a problem at an explicit line, for problems found while
// decoding before the line table is complete.
func (p *problems) addAt(line int, field, format string, args ...any) {
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (p *problems) err() error { return errors.Join(p.errs...) }

// lineOf returns the line of field, or of its nearest ancestor that has one:
// a missing field is reported where its parent is.
func lineOf(lines map[string]int, field string) int {
	for {
		if l, ok := lines[field]; ok {
			return l
		}
		if field == "" {
			return 0
		}
		field = parentField(field)
	}
}

func parentField(field string) string {
	i := strings.LastIndexAny(field, ".[")
	if i < 0 {
		return ""
	}
	return field[:i]
}
