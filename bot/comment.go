package bot

import (
	"context"
	"fmt"
	"regexp"

	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
)

// previewMarkerPrefix starts the hidden marker of the sticky preview comment.
const previewMarkerPrefix = "<!-- kubectl-gitops:preview"

// previewMarkerSHA matches the marker as the whole first line of a comment
// and captures the commit it previews.
var previewMarkerSHA = regexp.MustCompile(`^<!-- kubectl-gitops:preview sha=([0-9a-f]*) -->(?:\r?\n|$)`)

func previewMarker(sha string) string { return previewMarkerPrefix + " sha=" + sha + " -->" }

// stickyComment finds the bot's preview comment: the bot wrote it and its
// first line is the marker, so neither a user quoting the marker nor
// content inside a preview (which report.Comment keeps off the first line
// and out of HTML comments) can take it over.
func (p *Previewer) stickyComment(ctx context.Context, forge PreviewForge, ref scm.PRRef) (*scm.Comment, error) {
	login, err := forge.BotLogin(ctx)
	if err != nil {
		return nil, fmt.Errorf("find the bot's login: %w", err)
	}
	comments, err := forge.ListComments(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("list the comments of %s: %w", ref, err)
	}
	for i := range comments {
		c := &comments[i]
		if c.Author == login && previewMarkerSHA.MatchString(c.Body) {
			return c, nil
		}
	}
	return nil, nil
}

// upsert edits the sticky comment when its body changed, or creates it.
func (p *Previewer) upsert(ctx context.Context, forge scm.Commenter, ref scm.PRRef, sticky *scm.Comment, body string) error {
	if sticky == nil {
		if _, err := forge.CreateComment(ctx, ref, body); err != nil {
			return fmt.Errorf("comment on %s: %w", ref, err)
		}
		return nil
	}
	if sticky.Body == body {
		return nil
	}
	if err := forge.EditComment(ctx, ref, sticky.ID, body); err != nil {
		return fmt.Errorf("edit the preview comment of %s: %w", ref, err)
	}
	return nil
}
