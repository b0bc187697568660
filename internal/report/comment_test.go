package report

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/golden"
)

func commentPreviews(t *testing.T) []AppPreview {
	return []AppPreview{
		{App: "shop", Cluster: "prod", Changes: changeSet(t, beforeTree, afterTree), Overlaps: []Overlap{
			{PR: 12, Object: "apps/Deployment/shop/web", Fields: []string{"spec.replicas", "spec.template.spec.containers[name=web].image"}},
			{PR: 15, Object: "ConfigMap/shop/settings"},
		}},
		{App: "billing", Cluster: "staging", Err: errors.New("kustomize build of apps/billing: missing resource deploy.yaml")},
		{App: "new", Cluster: "moon", Note: "cluster moon is not allowed by the base branch's gitops.yaml; not previewed live", Changes: changeSet(t, "", afterTree)},
	}
}

func TestComment(t *testing.T) {
	got := Comment(commentPreviews(t), CommentOptions{
		Marker:  "<!-- kubectl-gitops:preview sha=0123abcd -->",
		HeadSHA: "0123abcd",
	})
	if !strings.HasPrefix(got, "<!-- kubectl-gitops:preview sha=0123abcd -->\n") {
		t.Errorf("the marker is not first:\n%s", got)
	}
	golden.Assert(t, filepath.Join("testdata", "comment.golden"), []byte(got))
}

func TestCommentNoApps(t *testing.T) {
	got := Comment(nil, CommentOptions{Marker: "<!-- m -->", HeadSHA: "abc"})
	if !strings.Contains(got, "touches no app") {
		t.Errorf("got %q", got)
	}
}

func TestCommentTruncated(t *testing.T) {
	previews := commentPreviews(t)
	full := Comment(previews, CommentOptions{Marker: "<!-- m -->", HeadSHA: "0123abcd"})
	limit := len(full) - 200
	got := Comment(previews, CommentOptions{Marker: "<!-- m -->", HeadSHA: "0123abcd", MaxBytes: limit})
	if len(got) > limit {
		t.Fatalf("comment is %d bytes, over the limit of %d", len(got), limit)
	}
	if !strings.Contains(got, fmt.Sprintf("objects omitted (the comment would exceed the forge's limit of %d characters); run kubectl gitops diff locally to see them", limit)) {
		t.Errorf("no omission line:\n%s", got)
	}
	golden.Assert(t, filepath.Join("testdata", "comment-truncated.golden"), []byte(got))

	// Not even the summaries fit: the body is cut, still within the limit.
	tiny := Comment(previews, CommentOptions{Marker: "<!-- m -->", MaxBytes: 300})
	if len(tiny) > 300 || !strings.Contains(tiny, "The preview was cut") {
		t.Errorf("tiny comment (%d bytes):\n%s", len(tiny), tiny)
	}
}

func TestCommentOverlaps(t *testing.T) {
	numbered := func(n int, format string) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf(format, i+1))
		}
		return out
	}
	var many []Overlap
	for i := range maxOverlaps + 3 {
		many = append(many, Overlap{PR: i + 1, Object: "ConfigMap/a/x", Fields: []string{"data.k"}})
	}
	tests := []struct {
		name     string
		overlaps []Overlap
		prefix   string
		want     []string
	}{
		{
			name:     "GitHub by default",
			overlaps: []Overlap{{PR: 12, Object: "apps/Deployment/shop/web", Fields: []string{"spec.replicas"}}},
			want:     []string{"**Also changed by #12:** apps/Deployment/shop/web (spec.replicas)"},
		},
		{
			name:     "GitLab merge requests",
			overlaps: []Overlap{{PR: 12, Object: "apps/Deployment/shop/web", Fields: []string{"spec.replicas"}}},
			prefix:   "!",
			want:     []string{"**Also changed by !12:** apps/Deployment/shop/web (spec.replicas)"},
		},
		{
			name: "names and fields are escaped",
			overlaps: []Overlap{{PR: 3, Object: "ConfigMap/a/x_y", Fields: []string{
				"metadata.annotations[example.com/x]", "data.*_<b>@alice",
			}}},
			want: []string{"**Also changed by #3:** ConfigMap/a/x\\_y (metadata.annotations\\[example.com/x\\], data.\\*\\_&lt;b&gt;@\u2060alice)"},
		},
		{
			name:     "fields beyond the first few are counted",
			overlaps: []Overlap{{PR: 3, Object: "ConfigMap/a/x", Fields: numbered(maxOverlapFields+2, "data.k%d")}},
			want:     []string{"**Also changed by #3:** ConfigMap/a/x (data.k1, data.k2, data.k3, data.k4, data.k5, and 2 more)"},
		},
		{
			name:     "overlaps beyond the first few are counted",
			overlaps: many,
			want: append(numbered(maxOverlaps, "**Also changed by #%d:** ConfigMap/a/x (data.k)"),
				"**Also changed by other open pull requests:** 3 more not shown."),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			previews := []AppPreview{{App: "shop", Cluster: "prod", Changes: changeSet(t, beforeTree, afterTree), Overlaps: tt.overlaps}}
			got := Comment(previews, CommentOptions{Marker: testMarker, PRPrefix: tt.prefix})
			// The overlaps come first in the app's section, a paragraph
			// each, before its diff.
			section := got[strings.Index(got, "</summary>\n\n")+len("</summary>\n\n"):]
			section = section[:strings.Index(section, "**2 created")]
			want := strings.Join(tt.want, "\n\n") + "\n\n"
			if diff := cmp.Diff(want, section); diff != "" {
				t.Errorf("overlaps (-want +got):\n%s", diff)
			}
			checkMarkdown(t, got, 5, 4)
		})
	}
}

// TestCommentWithoutOverlaps checks that an app's section without overlaps
// is the markdown report of its changes, byte for byte, as the plugin
// writes it (integration's TestPluginAndBotReportAlike checks the same end
// to end).
func TestCommentWithoutOverlaps(t *testing.T) {
	cs := changeSet(t, beforeTree, afterTree)
	var md bytes.Buffer
	if err := Write(&md, cs, Options{Format: Markdown}); err != nil {
		t.Fatal(err)
	}
	for _, overlaps := range [][]Overlap{nil, {}} {
		got := Comment([]AppPreview{{App: "shop", Cluster: "prod", Changes: cs, Overlaps: overlaps}}, CommentOptions{PRPrefix: "!"})
		section := got[strings.Index(got, "</summary>\n\n")+len("</summary>\n\n"):]
		section = strings.TrimSuffix(section, "\n</details>\n")
		if diff := cmp.Diff(md.String(), section); diff != "" {
			t.Errorf("the app's section and the markdown report differ (-report +section):\n%s", diff)
		}
	}
}
