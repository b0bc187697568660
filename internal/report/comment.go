package report

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/kubectl-gitops/kubectl-gitops/internal/diff"
)

// AppPreview is the preview of one app in a pull request comment.
type AppPreview struct {
	App, Cluster string
	// Changes is the app's diff; nil when it could not be computed.
	Changes *diff.ChangeSet
	// Err is shown as a message; the caller makes sure it carries no
	// secret content.
	Err error
	// Note is a remark for the reader, such as why the app was not diffed
	// against its cluster.
	Note string
	// Overlaps are the other open pull requests that change the same
	// fields of the app's objects, shown before its diff.
	Overlaps []Overlap
}

// Overlap is another open pull request changing fields of an object that
// this one changes too, perhaps through other files (a shared base, a
// values file): whichever merges second changes what the first reviewed.
type Overlap struct {
	// PR is the other pull request's number.
	PR int
	// Object names the object as the comment's sections do
	// (diff.Ref.String(): apps/Deployment/shop/web).
	Object string
	// Fields are the paths of the object's fields (diff.ChangedFields)
	// that both change, as the other pull request changes them; none when
	// it creates or deletes the whole object.
	Fields []string
}

// CommentOptions configure Comment.
type CommentOptions struct {
	// Marker is a hidden HTML comment placed first, by which the bot finds
	// its comment again, such as <!-- kubectl-gitops:preview sha=<head> -->.
	Marker string
	// MaxBytes is the forge's limit on a comment (GitHub 65,536, GitLab
	// 1,000,000); zero means no limit.
	MaxBytes int
	// HeadSHA is the commit previewed.
	HeadSHA string
	// Title heads the comment (default "kubectl gitops preview").
	Title string
	// Note is a remark on the whole preview, shown under the title, such
	// as why nothing was previewed.
	Note string
	// PRPrefix is how the forge's markdown refers to a pull request by
	// number, so that the references of Overlaps link: "#" (GitHub, the
	// default) or "!" (GitLab merge requests; "#" would name an issue).
	// It is written as is.
	PRPrefix string
}

// Comment renders the previews of a pull request as one markdown comment:
// the marker, a title and the head commit, a summary table with a row per
// app, then a collapsed section per app with the other open pull requests
// that change the same fields (Overlaps), its changed objects and their
// diffs.
//
// Every string from a pull request, a cluster or an error is escaped for
// the place it lands in (see writeMarkdown), and kept to one line, so the
// marker, the title, the summary table, the sections and the notices are
// the only blocks in the comment: content cannot imitate them, close them
// or hide what follows.
//
// When the comment would exceed MaxBytes, per-object diffs are dropped from
// the end — the last object of the last app first — so the summary and the
// first apps' diffs stay readable, and a line says how many were omitted.
// Should even the summaries not fit, the body is cut at a line, the
// sections left open are closed and a notice says it was cut.
func Comment(previews []AppPreview, opts CommentOptions) string {
	total := 0
	for _, p := range previews {
		total += changedCount(p.Changes)
	}
	body := writeComment(previews, opts, total)
	if opts.MaxBytes <= 0 || len(body) <= opts.MaxBytes {
		return body
	}
	// The largest number of diffs that still fits, by bisection: the body
	// grows with every diff kept.
	lo, hi := 0, total-1
	best := -1
	for lo <= hi {
		mid := (lo + hi) / 2
		if len(writeComment(previews, opts, mid)) <= opts.MaxBytes {
			best, lo = mid, mid+1
		} else {
			hi = mid - 1
		}
	}
	if best >= 0 {
		return writeComment(previews, opts, best)
	}
	return cutComment(writeComment(previews, opts, 0), opts.MaxBytes)
}

// cutComment cuts body, which holds no code blocks, to max bytes: at the
// end of a line, with the <details> sections open there closed, so the
// notice that follows shows outside them, even in a folded section.
func cutComment(body string, limit int) string {
	cut := "\n**The preview was cut: it would exceed the forge's limit of " + strconv.Itoa(limit) + " characters; run kubectl gitops diff locally to see it.**\n"
	const closeTag = "\n</details>\n"
	n := min(len(body), limit-len(cut))
	for n > 0 {
		n = strings.LastIndexByte(body[:n], '\n') + 1
		kept := body[:n]
		// Only the comment's own lines start with a tag: content is
		// escaped and never starts a line.
		open := 0
		for line := range strings.Lines(kept) {
			switch {
			case strings.HasPrefix(line, "<details>"):
				open++
			case strings.HasPrefix(line, "</details>"):
				open--
			}
		}
		if out := kept + strings.Repeat(closeTag, max(0, open)); len(out)+len(cut) <= limit {
			return out + cut
		}
		n--
	}
	if len(cut) <= limit {
		return cut
	}
	return ""
}

// writeComment writes the comment keeping the first keep per-object diffs.
func writeComment(previews []AppPreview, opts CommentOptions, keep int) string {
	var buf bytes.Buffer
	if opts.Marker != "" {
		buf.WriteString(opts.Marker + "\n")
	}
	title := opts.Title
	if title == "" {
		title = "kubectl gitops preview"
	}
	buf.WriteString("### " + EscapeMarkdown(title) + "\n\n")
	if opts.HeadSHA != "" {
		buf.WriteString("Commit " + codeSpan(opts.HeadSHA) + "\n\n")
	}
	if opts.Note != "" {
		buf.WriteString(escapeMarkdownLines(clip(opts.Note)) + "\n\n")
	}
	if len(previews) == 0 {
		if opts.Note == "" {
			buf.WriteString("This change touches no app.\n")
		}
		return buf.String()
	}
	buf.WriteString("| App | Cluster | Created | Configured | Deleted | Errors |\n")
	buf.WriteString("| --- | --- | --- | --- | --- | --- |\n")
	for _, p := range previews {
		s := p.Changes.Summary()
		errs := ""
		if p.Err != nil {
			errs = "1"
		}
		counts := []string{strconv.Itoa(s.Created), strconv.Itoa(s.Configured), strconv.Itoa(s.Deleted)}
		if p.Changes == nil {
			counts = []string{"–", "–", "–"}
		}
		buf.WriteString("| " + EscapeMarkdown(clip(p.App)) + " | " + EscapeMarkdown(clip(p.Cluster)) + " | " + counts[0] + " | " + counts[1] + " | " + counts[2] + " | " + errs + " |\n")
	}
	total := 0
	for _, p := range previews {
		total += changedCount(p.Changes)
	}
	if omitted := total - keep; omitted > 0 {
		fmt.Fprintf(&buf, "\n**%d objects omitted (the comment would exceed the forge's limit of %d characters); run kubectl gitops diff locally to see them.**\n", omitted, opts.MaxBytes)
	}
	left := keep
	for _, p := range previews {
		// Names sit in <code> so that no name can read as a count or a
		// verdict ("web: no changes").
		summary := "<code>" + escapeHTML(clip(p.App)) + "</code>"
		if p.Cluster != "" {
			summary += " on <code>" + escapeHTML(clip(p.Cluster)) + "</code>"
		}
		if p.Err != nil {
			summary += ": failed"
		} else if p.Changes != nil {
			summary += ": " + summaryLine(p.Changes.Summary())
		}
		buf.WriteString("\n<details><summary>" + summary + "</summary>\n\n")
		if p.Note != "" {
			buf.WriteString("> " + escapeMarkdownLines(clip(p.Note)) + "\n\n")
		}
		if p.Err != nil {
			buf.WriteString("**Error:** " + escapeMarkdownLines(clip(p.Err.Error())) + "\n\n")
		}
		writeOverlaps(&buf, p.Overlaps, opts.PRPrefix)
		if p.Changes != nil && writeMarkdownTable(&buf, p.Changes) {
			for _, c := range p.Changes.Changes {
				if c.Action == diff.Unchanged || left == 0 {
					continue
				}
				writeMarkdownChange(&buf, c)
				left--
			}
		}
		buf.WriteString("\n</details>\n")
	}
	return buf.String()
}

// The most overlaps shown per app, and fields per overlap: enough to
// warn a reviewer and point at the other pull requests, which show the
// rest, without one busy repository crowding out the diffs.
const (
	maxOverlaps      = 10
	maxOverlapFields = 5
)

// writeOverlaps writes a line per overlap, such as
//
//	**Also changed by #12:** apps/Deployment/shop/web (spec.replicas)
//
// Each is its own paragraph, so that forges show one per line.
func writeOverlaps(buf *bytes.Buffer, overlaps []Overlap, prefix string) {
	if prefix == "" {
		prefix = "#"
	}
	for i, o := range overlaps {
		if i == maxOverlaps {
			fmt.Fprintf(buf, "**Also changed by other open pull requests:** %d more not shown.\n\n", len(overlaps)-i)
			return
		}
		fields := make([]string, 0, min(len(o.Fields), maxOverlapFields)+1)
		for _, f := range o.Fields[:min(len(o.Fields), maxOverlapFields)] {
			fields = append(fields, EscapeMarkdown(clip(f)))
		}
		if more := len(o.Fields) - maxOverlapFields; more > 0 {
			fields = append(fields, "and "+strconv.Itoa(more)+" more")
		}
		line := "**Also changed by " + prefix + strconv.Itoa(o.PR) + ":** " + EscapeMarkdown(clip(o.Object))
		if len(fields) == 0 {
			fields = append(fields, "whole object")
		}
		line += " (" + strings.Join(fields, ", ") + ")"
		buf.WriteString(line + "\n\n")
	}
}

// maxField is the most bytes of one name, note or error a comment shows:
// enough for any Kubernetes name and a long error, not enough for one
// string to crowd out the rest of the preview.
const maxField = 4096

// clip shortens s to maxField bytes at a character boundary, saying how
// much was left out.
func clip(s string) string {
	if len(s) <= maxField {
		return s
	}
	n := maxField
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "… (" + strconv.Itoa(len(s)-n) + " more bytes)"
}

// changedCount is the number of objects with a diff in cs.
func changedCount(cs *diff.ChangeSet) int {
	if cs == nil {
		return 0
	}
	n := 0
	for _, c := range cs.Changes {
		if c.Action != diff.Unchanged {
			n++
		}
	}
	return n
}
