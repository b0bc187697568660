package report

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/golden"
)

func commentPreviews(t *testing.T) []AppPreview {
	return []AppPreview{
		{App: "shop", Cluster: "prod", Changes: changeSet(t, beforeTree, afterTree)},
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
