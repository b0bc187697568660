package report

import (
	"bytes"
	"html"
	"strings"

	"github.com/kubectl-gitops/kubectl-gitops/internal/diff"
)

// writeMarkdown writes a GitHub/GitLab flavoured summary table of the
// changed objects followed by one collapsed diff per object.
//
// Nothing from the objects can change the document's structure: names in
// the table and in prose go through EscapeMarkdown, names in HTML through
// escapeHTML, diffs into code blocks fenced longer than any backtick run
// in them. Each of these keeps content on its line, so every line that
// starts a block (a heading, <details>, a table row, a fence) is the
// report's own.
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
		buf.WriteString("| " + string(c.Action) + " | " + EscapeMarkdown(kind) + " | " + EscapeMarkdown(c.Ref.Namespace) + " | " + EscapeMarkdown(c.Ref.Name) + " |\n")
	}
	return true
}

// writeMarkdownChange writes one change as a collapsed diff.
func writeMarkdownChange(buf *bytes.Buffer, c diff.Change) {
	// The summary line is inside an HTML block, where markdown is not
	// parsed: escape for HTML, not for markdown.
	buf.WriteString("\n<details><summary>" + string(c.Action) + " <code>" + escapeHTML(c.Ref.String()) + "</code></summary>\n\n")
	if c.Message != "" {
		buf.WriteString("> " + escapeMarkdownLines(c.Message) + "\n\n")
	}
	writeCodeBlock(buf, "diff", c.Diff)
	buf.WriteString("\n</details>\n")
}

// writeCodeBlock writes text as a fenced code block: each line through
// EscapeText, so that no control or bidirectional character can hide or
// reorder what a reviewer reads, and a fence longer than any backtick run
// in it, so that no line can close the block early. An HTML comment
// opener gets a word joiner (invisible) after its "<", so the only "<!--"
// in a document is the one the caller put there, such as the marker by
// which the bot finds its comment.
func writeCodeBlock(buf *bytes.Buffer, info, text string) {
	var body strings.Builder
	for line := range strings.Lines(text) {
		line = EscapeText(strings.TrimSuffix(line, "\n"))
		body.WriteString(strings.ReplaceAll(line, "<!--", "<\u2060!--"))
		body.WriteByte('\n')
	}
	f := fence(body.String())
	buf.WriteString(f + info + "\n")
	buf.WriteString(body.String())
	buf.WriteString(f + "\n")
}

// fence returns a backtick fence longer than any backtick run in s, so the
// content cannot close it.
func fence(s string) string {
	return strings.Repeat("`", max(3, longestRun(s, '`')+1))
}

func longestRun(s string, c byte) int {
	longest, run := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	return longest
}

// EscapeMarkdown makes s safe as inline markdown — a table cell, a line of
// prose, a list item — on GitHub and GitLab: it shows as the same text and
// cannot start a block, end one, link, embed, format or mention.
//
//   - Characters a terminal or a renderer would act on are quoted as by
//     EscapeText (a line break shows as \n), so s stays on one line and no
//     bidirectional override reorders the text around it.
//   - ASCII punctuation that markdown, GFM tables, math or forge
//     references give a meaning is backslash-escaped; <, > and & become
//     entities, so no raw HTML (<!--, </details>) can open or close.
//   - An @ before a word gets a word joiner (U+2060) after it, which
//     forges don't take as a mention.
func EscapeMarkdown(s string) string {
	s = EscapeText(s)
	var b strings.Builder
	b.Grow(len(s) + len(s)/8)
	for i, r := range s {
		switch {
		case r == '<':
			b.WriteString("&lt;")
		case r == '>':
			b.WriteString("&gt;")
		case r == '&':
			b.WriteString("&amp;")
		case r == '@':
			b.WriteRune(r)
			if i+1 < len(s) && isWordByte(s[i+1]) {
				b.WriteRune(wordJoiner)
			}
		case strings.ContainsRune("\\`*_{}[]()#+!|~$", r), r == '-' && i == 0, r == '=' && i == 0:
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// escapeMarkdownLines is EscapeMarkdown for prose that may hold several
// lines, such as joined errors: each line is escaped and the lines are
// joined by <br>, so the text still stays in its paragraph.
func escapeMarkdownLines(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = EscapeMarkdown(l)
	}
	return strings.Join(lines, "<br>")
}

// escapeHTML makes s safe as text inside an HTML block (a <summary>):
// quoted as by EscapeText, so it stays on one line and the block cannot
// end, then HTML-escaped, with mentions broken as in EscapeMarkdown.
func escapeHTML(s string) string {
	s = html.EscapeString(EscapeText(s))
	if !strings.Contains(s, "@") {
		return s
	}
	var b strings.Builder
	for i, r := range s {
		b.WriteRune(r)
		if r == '@' && i+1 < len(s) && isWordByte(s[i+1]) {
			b.WriteRune(wordJoiner)
		}
	}
	return b.String()
}

// wordJoiner is invisible and keeps an @ from starting a mention.
const wordJoiner = '\u2060'

func isWordByte(c byte) bool {
	return c == '_' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

// codeSpan writes s as inline code: delimited by a backtick run longer
// than any inside it, padded when s starts or ends with a backtick, with
// line breaks quoted and | escaped so it may sit in a table cell.
func codeSpan(s string) string {
	s = strings.ReplaceAll(EscapeText(s), "|", `\|`)
	d := strings.Repeat("`", longestRun(s, '`')+1)
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		s = " " + s + " "
	}
	return d + s + d
}
