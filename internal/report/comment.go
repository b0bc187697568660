package report

import (
	"bytes"
	"fmt"
	"html"
	"strconv"
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
}

// Comment renders the previews of a pull request as one markdown comment:
// the marker, a title and the head commit, a summary table with a row per
// app, then a collapsed section per app with its changed objects and their
// diffs.
//
// When the comment would exceed MaxBytes, per-object diffs are dropped from
// the end — the last object of the last app first — so the summary and the
// first apps' diffs stay readable, and a line says how many were omitted.
// Should even the summaries not fit, the body is cut and says so.
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
	body = writeComment(previews, opts, 0)
	cut := "\n\n**The preview was cut: it would exceed the forge's limit of " + strconv.Itoa(opts.MaxBytes) + " characters; run kubectl gitops diff locally to see it.**\n"
	n := max(0, opts.MaxBytes-len(cut))
	for n > 0 && !utf8.RuneStart(body[n]) {
		n--
	}
	return body[:n] + cut
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
	buf.WriteString("### " + escape(title) + "\n\n")
	if opts.HeadSHA != "" {
		buf.WriteString("Commit `" + opts.HeadSHA + "`\n\n")
	}
	if opts.Note != "" {
		buf.WriteString(escape(opts.Note) + "\n\n")
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
		buf.WriteString("| " + escape(p.App) + " | " + escape(p.Cluster) + " | " + counts[0] + " | " + counts[1] + " | " + counts[2] + " | " + errs + " |\n")
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
		summary := html.EscapeString(p.App)
		if p.Cluster != "" {
			summary += " on " + html.EscapeString(p.Cluster)
		}
		if p.Err != nil {
			summary += ": failed"
		} else if p.Changes != nil {
			summary += ": " + summaryLine(p.Changes.Summary())
		}
		buf.WriteString("\n<details><summary>" + summary + "</summary>\n\n")
		if p.Note != "" {
			buf.WriteString("> " + escape(p.Note) + "\n\n")
		}
		if p.Err != nil {
			buf.WriteString("**Error:** " + escape(p.Err.Error()) + "\n\n")
		}
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
