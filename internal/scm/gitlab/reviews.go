package gitlab

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	gl "gitlab.com/gitlab-org/api/client-go"

	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
)

// approvals is the part of GET .../approvals we read; client-go's type
// lacks approved_at.
type approvals struct {
	ApprovedBy []struct {
		User struct {
			ID       int64  `json:"id"`
			Username string `json:"username"`
		} `json:"user"`
		ApprovedAt *time.Time `json:"approved_at"`
	} `json:"approved_by"`
}

// approvalNote is the body of the system note GitLab writes, as the
// approver, when a merge request is approved.
const approvalNote = "approved this merge request"

// ListReviews returns the MR's current approvals as ReviewApproved, and
// its reviewers who requested changes (ReviewChangesRequested) or left a
// review (ReviewCommented) without approving. An approval taken back is
// simply gone, as in GitLab; so is a request for changes once its reviewer
// approves or is asked to review again.
//
// GitLab does not record which commit an approval was given on, so
// CommitSHA is derived, most faithful first:
//
//  1. The approval's time: approved_at of the approvals API (recent
//     GitLab) or, before that existed, the approver's latest "approved
//     this merge request" system note. CommitSHA is the head of the
//     newest diff version (one per push) created at or before that time.
//     GitLab's own approve button sends the head it shows (the sha
//     parameter), so this is the head the approver saw. Limit: a diff
//     version is written asynchronously, shortly after its push; an
//     approval in that window maps to the head before the push, which
//     fails safe (the approval counts for the older head only).
//  2. With no time but "reset approvals on push" set on the project, a
//     listed approval has survived every push, so CommitSHA is the MR's
//     current head. Limit: GitLab resets approvals asynchronously after a
//     push, so for a moment an old approval may still be listed.
//  3. Otherwise CommitSHA is empty: the approval is bound to no head, and
//     a policy that binds approvals to commits must not count it.
//
// Requests for changes carry no commit and no time (the reviewers API
// says neither).
func (f *Forge) ListReviews(ctx context.Context, pr scm.PRRef) ([]scm.Review, error) {
	id, err := pid(pr.Repo)
	if err != nil {
		return nil, err
	}
	iid := int64(pr.Number)
	a, err := fetch(ctx, f, "reading approvals of "+pr.String(), func(o gl.RequestOptionFunc) (*approvals, *gl.Response, error) {
		req, err := f.c.NewRequest(http.MethodGet, fmt.Sprintf("projects/%s/merge_requests/%d/approvals", projectPath(id), pr.Number), nil, []gl.RequestOptionFunc{o})
		if err != nil {
			return nil, nil, err
		}
		a := &approvals{}
		resp, err := f.c.Do(req, a)
		return a, resp, err
	})
	if err != nil {
		return nil, err
	}

	// When each approval was given: approved_at, else its system note.
	at := map[int64]time.Time{}
	untimed := false
	for _, ab := range a.ApprovedBy {
		if ab.ApprovedAt != nil {
			at[ab.User.ID] = *ab.ApprovedAt
		} else {
			untimed = true
		}
	}
	if untimed {
		notes, err := all(ctx, f, "listing notes of "+pr.String(), func(lo gl.ListOptions, o gl.RequestOptionFunc) ([]*gl.Note, *gl.Response, error) {
			return f.c.Notes.ListMergeRequestNotes(id, iid, &gl.ListMergeRequestNotesOptions{
				ListOptions: lo, OrderBy: gl.Ptr("created_at"), Sort: gl.Ptr("asc"),
			}, o)
		})
		if err != nil {
			return nil, err
		}
		noted := map[int64]time.Time{}
		for _, n := range notes {
			if n != nil && n.System && n.CreatedAt != nil && strings.EqualFold(strings.TrimSpace(n.Body), approvalNote) {
				noted[n.Author.ID] = *n.CreatedAt // oldest first: the last one wins
			}
		}
		for _, ab := range a.ApprovedBy {
			if _, ok := at[ab.User.ID]; !ok {
				if t, ok := noted[ab.User.ID]; ok {
					at[ab.User.ID] = t
				}
			}
		}
	}
	var versions []*gl.MergeRequestDiffVersion
	if len(at) > 0 {
		versions, err = all(ctx, f, "listing diff versions of "+pr.String(), func(lo gl.ListOptions, o gl.RequestOptionFunc) ([]*gl.MergeRequestDiffVersion, *gl.Response, error) {
			return f.c.MergeRequests.GetMergeRequestDiffVersions(id, iid, &gl.GetMergeRequestDiffVersionsOptions{ListOptions: lo}, o)
		})
		if err != nil {
			return nil, err
		}
	}
	var out []scm.Review
	approved := map[int64]bool{}
	for _, ab := range a.ApprovedBy {
		approved[ab.User.ID] = true
		r := scm.Review{ID: ab.User.ID, Author: ab.User.Username, State: scm.ReviewApproved}
		if t, ok := at[ab.User.ID]; ok {
			r.SubmittedAt = t
			r.CommitSHA = headAt(versions, t)
		}
		out = append(out, r)
	}
	if slices.ContainsFunc(out, func(r scm.Review) bool { return r.CommitSHA == "" }) {
		head, err := f.headIfResetOnPush(ctx, pr)
		if err != nil {
			return nil, err
		}
		for i := range out {
			if out[i].CommitSHA == "" {
				out[i].CommitSHA = head
			}
		}
	}

	reviewers, err := fetch(ctx, f, "listing reviewers of "+pr.String(), func(o gl.RequestOptionFunc) ([]*gl.MergeRequestReviewer, *gl.Response, error) {
		return f.c.MergeRequests.GetMergeRequestReviewers(id, iid, o)
	})
	if err != nil && !errors.Is(err, scm.ErrNotFound) { // GitLab before 15.3 has no reviewers API
		return nil, err
	}
	for _, rv := range reviewers {
		if rv == nil || rv.User == nil || approved[rv.User.ID] {
			continue
		}
		var state scm.ReviewState
		switch rv.State {
		case "requested_changes":
			state = scm.ReviewChangesRequested
		case "reviewed":
			state = scm.ReviewCommented
		default: // unreviewed, review_started, approved (listed above), unapproved
			continue
		}
		out = append(out, scm.Review{ID: rv.User.ID, Author: rv.User.Username, State: state})
	}
	slices.SortStableFunc(out, func(x, y scm.Review) int { return x.SubmittedAt.Compare(y.SubmittedAt) })
	return out, nil
}

// headIfResetOnPush is the MR's current head when the project removes all
// approvals on a push, "" otherwise or when the setting cannot be read
// (GitLab Free before the setting came to it answers 403 or 404).
func (f *Forge) headIfResetOnPush(ctx context.Context, pr scm.PRRef) (string, error) {
	id, err := pid(pr.Repo)
	if err != nil {
		return "", err
	}
	cfg, err := fetch(ctx, f, "reading the approval settings of "+pr.Repo.String(), func(o gl.RequestOptionFunc) (*gl.ProjectApprovals, *gl.Response, error) {
		return f.c.Projects.GetApprovalConfiguration(id, o)
	})
	switch {
	case errors.Is(err, scm.ErrNotFound), errors.Is(err, scm.ErrForbidden):
		return "", nil
	case err != nil:
		return "", err
	case !cfg.ResetApprovalsOnPush:
		return "", nil
	}
	mr, err := fetch(ctx, f, "reading "+pr.String(), func(o gl.RequestOptionFunc) (*gl.MergeRequest, *gl.Response, error) {
		return f.c.MergeRequests.GetMergeRequest(id, int64(pr.Number), nil, o)
	})
	if err != nil {
		return "", err
	}
	if mr.DiffRefs.HeadSha != "" {
		return mr.DiffRefs.HeadSha, nil
	}
	return mr.SHA, nil
}

// headAt is the head commit of the newest version created at or before t.
func headAt(versions []*gl.MergeRequestDiffVersion, t time.Time) string {
	var best *gl.MergeRequestDiffVersion
	for _, v := range versions {
		if v == nil || v.CreatedAt == nil || v.CreatedAt.After(t) {
			continue
		}
		if best == nil || v.CreatedAt.After(*best.CreatedAt) {
			best = v
		}
	}
	if best == nil {
		return ""
	}
	return best.HeadCommitSHA
}
