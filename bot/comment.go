package bot

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
)

// previewMarkerPrefix starts the hidden marker of the sticky preview comment.
const previewMarkerPrefix = "<!-- kubectl-gitops:preview"

var previewMarkerSHA = regexp.MustCompile(`^<!-- kubectl-gitops:preview sha=([0-9a-f]*) -->`)

func previewMarker(sha string) string { return previewMarkerPrefix + " sha=" + sha + " -->" }

// stickyComment finds the bot's preview comment: it carries the marker and
// the bot wrote it, so a user quoting the marker cannot take it over.
func (p *Previewer) stickyComment(ctx context.Context, forge scm.Forge, ref scm.PRRef) (*scm.Comment, error) {
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
		if c.Author == login && strings.HasPrefix(c.Body, previewMarkerPrefix) {
			return c, nil
		}
	}
	return nil, nil
}

// upsert edits the sticky comment when its body changed, or creates it.
func (p *Previewer) upsert(ctx context.Context, forge scm.Forge, ref scm.PRRef, sticky *scm.Comment, body string) error {
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
