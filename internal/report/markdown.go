package report

import (
	"bytes"
	"html"
	"strings"

	"github.com/kubectl-gitops/kubectl-gitops/internal/diff"
)

// writeMarkdown writes a GitHub/GitLab flavoured summary table of the
// changed objects followed by one collapsed diff per object.
func writeMarkdown(buf *bytes.Buffer, cs *diff.ChangeSet) {
	if !writeMarkdownTable(buf, cs) {
		return
	}
	for _, c := range cs.Changes {
		if c.Action != diff.Unchanged {
			writeMarkdownChange(buf, c)
		}
	}
}

// writeMarkdownTable writes the summary line and, when anything changes, the
// table of changed objects; it reports whether anything changes.
func writeMarkdownTable(buf *bytes.Buffer, cs *diff.ChangeSet) bool {
	s := cs.Summary()
	if !cs.HasChanges() {
		buf.WriteString("No changes.\n\n")
		buf.WriteString("**" + summaryLine(s) + "**\n")
		return false
	}
	buf.WriteString("**" + summaryLine(s) + "**\n\n")
	buf.WriteString("| Action | Kind | Namespace | Name |\n")
	buf.WriteString("| --- | --- | --- | --- |\n")
	for _, c := range cs.Changes {
		if c.Action == diff.Unchanged {
			continue
		}
		kind := c.Ref.Kind
		if c.Ref.Group != "" {
			kind = c.Ref.Group + "/" + kind
		}
		buf.WriteString("| " + string(c.Action) + " | " + escape(kind) + " | " + escape(c.Ref.Namespace) + " | " + escape(c.Ref.Name) + " |\n")
	}
	return true
}

// writeMarkdownChange writes one change as a collapsed diff.
func writeMarkdownChange(buf *bytes.Buffer, c diff.Change) {
	// The summary line is inside an HTML block, where markdown is not
	// parsed: escape for HTML, not for markdown.
	buf.WriteString("\n<details><summary>" + string(c.Action) + " <code>" + html.EscapeString(c.Ref.String()) + "</code></summary>\n\n")
	if c.Message != "" {
		buf.WriteString("> " + escape(c.Message) + "\n\n")
	}
	f := fence(c.Diff)
	buf.WriteString(f + "diff\n")
	buf.WriteString(c.Diff)
	if c.Diff != "" && !strings.HasSuffix(c.Diff, "\n") {
		buf.WriteByte('\n')
	}
	buf.WriteString(f + "\n\n</details>\n")
}

// fence returns a backtick fence longer than any backtick run in s, so the
// content cannot close it.
func fence(s string) string {
	longest, run := 0, 0
	for _, r := range s {
		if r == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	return strings.Repeat("`", max(3, longest+1))
}

// escape backslash-escapes the characters that carry meaning inline in
// markdown or in a table row.
func escape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune("\\`*_{}[]<>()#+!|~&", r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	// A newline would end the table row.
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(b.String())
}
