package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kubectl-gitops/kubectl-gitops/internal/diff"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/golden"
)

const testMarker = "<!-- kubectl-gitops:preview sha=0123abcd -->"

// hostile are strings a pull request controls (names, namespaces, kinds,
// values, file paths in errors) written to forge or hide part of a
// report.
var hostile = []string{
	"x\n\n# Heading\n\n[link](http://evil.example)",
	"# heading",
	"[link](http://evil.example)",
	"![img](http://evil.example/i.png)",
	"@mention and @org/team",
	"<!--",
	"-->",
	"</details>",
	"<summary>fake</summary>",
	"</code>",
	"```",
	"````diff",
	"a|b||c",
	testMarker,
	"No changes.",
	"\n\nNo changes.\n\n**0 created, 0 configured, 0 deleted, 0 unchanged**\n\n<!--",
	"</details>\n\n</details>\n\n# Approved\n\n<details>",
	"<script>alert(1)</script> &lt; &amp;",
	"*emph* _under_ ~~strike~~ $x^2$ \\ \\\\",
	"- list\n1. ordered\n> quote\n---\n===",
	"\xff\xfe invalid UTF-8",
	"nul\x00byte",
	"\x1b[31mred\x1b[0m\x1b]8;;http://evil.example\x07link\x1b]8;;\x07",
	"carriage\rreturn back\bspace bell\a",
	"c1 \u009b31m csi \u009d osc \u0085 nel",
	"bidi \u202eevil\u202c \u2066iso\u2069 \u200f",
	"line\u2028separator",
	"\r\n| forged | row | 0 | 0 | 0 |  |",
	strings.Repeat("long`", 3000),
}

// hostileObject is a ConfigMap whose kind, namespace, name, labels and
// data all carry s.
func hostileObject(i int, s string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "evil.example/v1",
		"kind":       "Kind" + s,
		"metadata": map[string]any{
			"name":      fmt.Sprintf("n%d-%s", i, s),
			"namespace": "ns" + s,
			"labels":    map[string]any{"label": s},
		},
		// YAML refuses keys over 1,024 characters; Kubernetes names and
		// keys are much shorter.
		"data": map[string]any{"value": s, "key" + s[:min(len(s), 200)]: "multi\n" + s + "\nline"},
	}}
}

// hostileChangeSet creates, configures and deletes objects named after
// every hostile string, with a hostile note on each.
func hostileChangeSet(t *testing.T) *diff.ChangeSet {
	t.Helper()
	cs := &diff.ChangeSet{}
	for i, s := range hostile {
		var before, after *unstructured.Unstructured
		switch i % 3 {
		case 0:
			after = hostileObject(i, s)
		case 1:
			before = hostileObject(i, s)
		default:
			before, after = hostileObject(i, s), hostileObject(i, s)
			after.Object["data"].(map[string]any)["value"] = s + " changed"
		}
		c, err := diff.Pair(before, after, diff.Options{})
		if err != nil {
			t.Fatalf("hostile string %d: %.300v", i, err)
		}
		c.Message = "note " + s
		cs.Changes = append(cs.Changes, c)
	}
	return cs
}

func hostilePreviews(t *testing.T) []AppPreview {
	cs := hostileChangeSet(t)
	var out []AppPreview
	for i, s := range hostile {
		p := AppPreview{App: s, Cluster: s, Note: s, Overlaps: []Overlap{{PR: i, Object: s, Fields: []string{s, "data[" + s + "]"}}}}
		switch i % 3 {
		case 0:
			p.Changes = cs
		case 1:
			p.Err = errors.Join(errors.New("render "+s), errors.New("second "+s))
		default:
			p.Changes = &diff.ChangeSet{}
		}
		out = append(out, p)
	}
	return out
}

// mdDoc is the block structure of a markdown document as a forge reads it,
// as far as the reports use markdown.
type mdDoc struct {
	// lines outside code blocks
	lines []string
	// codeBlocks is the number of fenced code blocks, each closed.
	codeBlocks int
}

var fenceLine = regexp.MustCompile("^(`{3,})")

// parseMarkdown splits doc into the lines outside fenced code blocks,
// checking that every fence opened is closed.
func parseMarkdown(t *testing.T, doc string) mdDoc {
	t.Helper()
	var d mdDoc
	open := ""
	for line := range strings.Lines(doc) {
		line = strings.TrimSuffix(line, "\n")
		if open != "" {
			if strings.Trim(line, "`") == "" && len(line) >= len(open) {
				open = ""
				d.codeBlocks++
			}
			continue
		}
		if m := fenceLine.FindString(line); m != "" {
			open = m
			continue
		}
		d.lines = append(d.lines, line)
	}
	if open != "" {
		t.Errorf("a code block fenced by %s is not closed", open)
	}
	return d
}

// ownTags are the HTML tags the reports write; content has no others.
var ownTags = strings.NewReplacer("<details>", "", "</details>", "", "<summary>", "", "</summary>", "", "<code>", "", "</code>", "", "<br>", "")

var (
	objectSummary = regexp.MustCompile(`^<details><summary>(created|configured|deleted) <code>[^<>]*</code></summary>$`)
	appSummary    = regexp.MustCompile(`^<details><summary><code>[^<>]*</code> on <code>[^<>]*</code>(: failed|: \d+ created, \d+ configured, \d+ deleted, \d+ unchanged)?</summary>$`)
	mention       = regexp.MustCompile(`@[A-Za-z0-9]`)
	unescapedLink = regexp.MustCompile(`(^|[^\\])\]\(|(^|[^\\])!\[`)
)

// checkMarkdown asserts the structure of a markdown report or comment:
// the sections open and close in pairs, every <details> line and table
// row is the report's own, no line from content starts a block, and no
// raw HTML, link, image or mention comes from content.
func checkMarkdown(t *testing.T, doc string, wantRows, wantCodeBlocks int) mdDoc {
	t.Helper()
	checkNoControls(t, doc)
	d := parseMarkdown(t, doc)
	if d.codeBlocks != wantCodeBlocks {
		t.Errorf("%d code blocks, want %d", d.codeBlocks, wantCodeBlocks)
	}
	depth, rows := 0, 0
	for i, line := range d.lines {
		switch {
		case strings.HasPrefix(line, "<details>"):
			depth++
			if !objectSummary.MatchString(line) && !appSummary.MatchString(line) {
				t.Errorf("line %d opens a section the report did not write: %q", i, line)
			}
		case strings.HasPrefix(line, "</details>"):
			depth--
			if line != "</details>" || depth < 0 {
				t.Errorf("line %d closes a section the report did not open: %q", i, line)
			}
		case line == "| Action | Kind | Namespace | Name |", line == "| App | Cluster | Created | Configured | Deleted | Errors |", strings.HasPrefix(line, "| ---"):
		case strings.HasPrefix(line, "| "):
			rows++
			if cells := len(regexp.MustCompile(`(^|[^\\])\|`).FindAllString(line, -1)); cells != 5 && cells != 7 {
				t.Errorf("line %d: a table row with %d separators: %q", i, cells, line)
			}
		case strings.HasPrefix(line, "#") && (i != 1 || !strings.HasPrefix(line, "### ")):
			t.Errorf("line %d is a heading from content: %q", i, line)
		}
		if i > 0 && strings.Contains(line, "<!--") {
			t.Errorf("line %d holds an HTML comment: %q", i, line)
		}
		if rest := ownTags.Replace(line); strings.ContainsAny(rest, "<>") && !strings.HasPrefix(line, "> ") && (i > 0 || line != testMarker) {
			t.Errorf("line %d holds raw HTML from content: %q", i, line)
		}
		if mention.MatchString(line) {
			t.Errorf("line %d holds a mention: %q", i, line)
		}
		// An HTML block is not parsed as markdown: brackets there are text.
		if !strings.HasPrefix(line, "<details>") && unescapedLink.MatchString(line) {
			t.Errorf("line %d holds a link or image: %q", i, line)
		}
	}
	if depth != 0 {
		t.Errorf("%d sections left open", depth)
	}
	if rows != wantRows {
		t.Errorf("%d table rows, want %d", rows, wantRows)
	}
	return d
}

// checkNoControls asserts out is valid UTF-8 holding no character a
// terminal or a renderer acts on, but newline and tab.
func checkNoControls(t *testing.T, out string) {
	t.Helper()
	if !utf8.ValidString(out) {
		t.Error("output is not valid UTF-8")
	}
	for i, r := range out {
		if r != '\n' && unsafeRune(r) {
			t.Errorf("output holds %U at byte %d: %q", r, i, out[max(0, i-20):min(len(out), i+20)])
			return
		}
	}
}

func TestMarkdownForgery(t *testing.T) {
	cs := hostileChangeSet(t)
	var buf bytes.Buffer
	if err := Write(&buf, cs, Options{Format: Markdown}); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	// A row per change, a code block per change.
	d := checkMarkdown(t, out, len(hostile), len(hostile))
	if got := strings.Count(out, "<!--"); got != 0 {
		t.Errorf("%d HTML comment openers, want none", got)
	}
	if want := fmt.Sprintf("**%s**", summaryLine(cs.Summary())); d.lines[0] != want {
		t.Errorf("first line %q, want %q", d.lines[0], want)
	}
	for _, line := range d.lines {
		if line == "No changes." {
			t.Errorf("a forged %q line", line)
		}
	}
}

func TestCommentForgery(t *testing.T) {
	previews := hostilePreviews(t)
	withChanges := 0
	for _, p := range previews {
		withChanges += p.Changes.Summary().Created + p.Changes.Summary().Configured + p.Changes.Summary().Deleted
	}
	for _, title := range []string{"", "x\n# forged title"} {
		got := Comment(previews, CommentOptions{Marker: testMarker, HeadSHA: "0123abcd`\n# x", Note: hostile[0], Title: title})
		// One row per app, and per app with changes one per object.
		apps := len(previews)
		objectRows := 0
		for _, p := range previews {
			objectRows += changedCount(p.Changes)
		}
		d := checkMarkdown(t, got, apps+objectRows, withChanges)
		if !strings.HasPrefix(got, testMarker+"\n") || strings.Count(got, testMarker) != 1 || strings.Count(got, "<!--") != 1 {
			t.Errorf("the marker is not first and alone: %d markers, %d HTML comments", strings.Count(got, testMarker), strings.Count(got, "<!--"))
		}
		if want := "### kubectl gitops preview"; title == "" && d.lines[1] != want {
			t.Errorf("title line %q, want %q", d.lines[1], want)
		}
		sections := 0
		for _, line := range d.lines {
			if appSummary.MatchString(line) {
				sections++
			}
		}
		if sections != len(previews) {
			t.Errorf("%d app sections, want %d", sections, len(previews))
		}
	}
}

// TestCommentForgeryGolden shows what a reviewer sees of a few forgery
// attempts.
func TestCommentForgeryGolden(t *testing.T) {
	name := "x\n\n# Heading\n\n[link](http://evil.example) @alice </details> <!-- \x1b[2J \u202eevil"
	cs, err := diff.Objects(nil, []*unstructured.Unstructured{hostileObject(0, name)}, diff.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := Comment([]AppPreview{
		{App: "web\n\nNo changes.", Cluster: "prod | 0 | 0 | 0 |", Changes: cs, Note: "see [docs](http://evil.example)"},
		{App: "api", Cluster: "prod", Err: errors.New("render: file \"<!-- kubectl-gitops:preview sha=0 -->\"\nnot found")},
	}, CommentOptions{Marker: testMarker, HeadSHA: "0123abcd"})
	golden.Assert(t, filepath.Join("testdata", "comment-forgery.golden"), []byte(got))
}

// TestCommentCutForgery fills a comment with long hostile strings so that
// only a cut fits: the notice must come last, outside every section.
func TestCommentCutForgery(t *testing.T) {
	previews := hostilePreviews(t)
	for _, limit := range []int{400, 3000, 20_000, 60_000} {
		got := Comment(previews, CommentOptions{Marker: testMarker, MaxBytes: limit})
		if len(got) > limit {
			t.Errorf("limit %d: %d bytes", limit, len(got))
		}
		checkNoControls(t, got)
		d := parseMarkdown(t, got)
		depth := 0
		for _, line := range d.lines {
			switch {
			case strings.HasPrefix(line, "<details>"):
				depth++
			case line == "</details>":
				depth--
			}
		}
		last := d.lines[len(d.lines)-1]
		if strings.Contains(last, "The preview was cut") || strings.Contains(got, "objects omitted") {
			if depth != 0 {
				t.Errorf("limit %d: the notice is inside %d open sections", limit, depth)
			}
		} else {
			t.Errorf("limit %d: no notice of the cut; last line %q", limit, last)
		}
		if !strings.HasPrefix(got, testMarker+"\n") && limit > 400 {
			t.Errorf("limit %d: the marker is not first", limit)
		}
	}
}

// sgr matches the report's own color sequences.
var sgr = regexp.MustCompile(`\x1b\[[0-9;]*m`)

func TestTextForgery(t *testing.T) {
	cs := hostileChangeSet(t)
	for _, color := range []bool{false, true} {
		t.Run(fmt.Sprintf("color=%v", color), func(t *testing.T) {
			var buf bytes.Buffer
			if err := Write(&buf, cs, Options{Format: Text, Color: color}); err != nil {
				t.Fatal(err)
			}
			out := buf.String()
			if color {
				if !strings.Contains(out, bold) {
					t.Fatal("no color in colored output")
				}
				// Every escape left is one the report wrote: "\x1b[" in
				// content is quoted, so it never reaches the output.
				for _, m := range sgr.FindAllString(out, -1) {
					if m != reset && m != bold && m != red && m != green && m != yellow && m != cyan {
						t.Fatalf("a color sequence the report did not write: %q", m)
					}
				}
				out = sgr.ReplaceAllString(out, "")
			}
			checkNoControls(t, out)
			headers := regexp.MustCompile(`(?m)^[+~-] \S.* (created|configured|deleted)$`)
			if n := len(headers.FindAllString(out, -1)); n != len(hostile) {
				t.Errorf("%d object headers, want %d", n, len(hostile))
			}
			// Each diff starts with its two header lines and goes on with
			// hunks: a name cannot add lines to the header.
			for _, c := range cs.Changes {
				lines := strings.Split(c.Diff, "\n")
				if !strings.HasPrefix(lines[0], "--- ") || !strings.HasPrefix(lines[1], "+++ ") || !strings.HasPrefix(lines[2], "@@ ") {
					t.Errorf("%.80q: the diff header is not two lines: %.300q", c.Ref.Name, c.Diff)
				}
			}
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if last, want := lines[len(lines)-1], summaryLine(cs.Summary()); last != want {
				t.Errorf("last line %q, want %q", last, want)
			}
			if strings.Contains(out, "\nno changes\n") {
				t.Error("a forged \"no changes\" line")
			}
		})
	}
}

func TestJSONForgery(t *testing.T) {
	cs := hostileChangeSet(t)
	var buf bytes.Buffer
	if err := Write(&buf, cs, Options{Format: JSON}); err != nil {
		t.Fatal(err)
	}
	checkNoControls(t, buf.String())
	var got jsonReport
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Changes) != len(cs.Changes) {
		t.Fatalf("%d changes, want %d", len(got.Changes), len(cs.Changes))
	}
	for i, c := range cs.Changes {
		// Names decode to what they were; only invalid UTF-8 becomes U+FFFD.
		want := validUTF8(c.Ref.Name)
		if got.Changes[i].Name != want || got.Changes[i].Message != validUTF8(c.Message) {
			t.Errorf("change %d: name %q, want %q", i, got.Changes[i].Name, want)
		}
	}
	if strings.Contains(buf.String(), `\u003c`) {
		t.Error("JSON is HTML-escaped")
	}
}

func TestEscapeText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"web", "web"},
		{"tab\there", "tab\there"},
		{"日本語 ✓", "日本語 ✓"},
		{"a\x1b[31mb", `a\x1b[31mb`},
		{"\r\n\a\b\x00\x7f", `\r\n\a\b\x00\x7f`},
		{"\xff\xfe", `\xff\xfe`},
		{"\u0085\u009b", `\u0085\u009b`},
		{"\u202eabc\u202c \u2066x\u2069 \u200e\u200f\u061c", `\u202eabc\u202c \u2066x\u2069 \u200e\u200f\u061c`},
		{"\u2028\u2029", `\u2028\u2029`},
	}
	for _, tt := range tests {
		if got := EscapeText(tt.in); got != tt.want {
			t.Errorf("EscapeText(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestEscapeMarkdown(t *testing.T) {
	tests := []struct{ in, want string }{
		{"web", "web"},
		{"app-01", "app-01"},
		{"- item", `\- item`},
		{"# h", `\# h`},
		{"[l](u)", `\[l\]\(u\)`},
		{"![i](u)", `\!\[i\]\(u\)`},
		{"a|b", `a\|b`},
		{"<!-- x -->", `&lt;\!-- x --&gt;`},
		{"a & b", "a &amp; b"},
		{"*_`~$", "\\*\\_\\`\\~\\$"},
		{"x\n\n# y", `x\\n\\n\# y`},
		{"@alice", "@\u2060alice"},
		{"mail @ home", "mail @ home"},
		{"\x1b[1m", `\\x1b\[1m`},
	}
	for _, tt := range tests {
		if got := EscapeMarkdown(tt.in); got != tt.want {
			t.Errorf("EscapeMarkdown(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCodeSpan(t *testing.T) {
	tests := []struct{ in, want string }{
		{"abc", "`abc`"},
		{"a`b", "``a`b``"},
		{"`x", "`` `x ``"},
		{"a|b\n", "`a\\|b\\n`"},
	}
	for _, tt := range tests {
		if got := codeSpan(tt.in); got != tt.want {
			t.Errorf("codeSpan(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// validUTF8 replaces each invalid byte of s by U+FFFD, as encoding/json
// does.
func validUTF8(s string) string {
	var b strings.Builder
	for _, r := range s {
		b.WriteRune(r)
	}
	return b.String()
}
