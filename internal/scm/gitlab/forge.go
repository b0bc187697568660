package gitlab

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	gl "gitlab.com/gitlab-org/api/client-go"

	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
)

const (
	// descriptionLimit is GitLab's limit on a commit status description.
	descriptionLimit = 255
	// commentMax is GitLab's limit on a note's body.
	commentMax = 1_000_000
	// titleLimit is GitLab's limit on a merge request's title.
	titleLimit = 255
)

// ListComments returns the MR's user notes (system notes such as "added 1
// commit" are left out), across all pages, oldest first.
func (f *Forge) ListComments(ctx context.Context, pr scm.PRRef) ([]scm.Comment, error) {
	id, err := pid(pr.Repo)
	if err != nil {
		return nil, err
	}
	// GitLab lists notes newest first unless asked.
	notes, err := all(ctx, f, "listing notes of "+pr.String(), func(lo gl.ListOptions, o gl.RequestOptionFunc) ([]*gl.Note, *gl.Response, error) {
		return f.c.Notes.ListMergeRequestNotes(id, int64(pr.Number), &gl.ListMergeRequestNotesOptions{
			ListOptions: lo, OrderBy: gl.Ptr("created_at"), Sort: gl.Ptr("asc"),
		}, o)
	})
	if err != nil {
		return nil, err
	}
	var out []scm.Comment
	for _, n := range notes {
		if n != nil && !n.System {
			out = append(out, comment(n))
		}
	}
	return out, nil
}

func comment(n *gl.Note) scm.Comment {
	c := scm.Comment{ID: n.ID, Author: n.Author.Username, Body: n.Body}
	if n.CreatedAt != nil {
		c.CreatedAt = *n.CreatedAt
	}
	if n.UpdatedAt != nil {
		c.UpdatedAt = *n.UpdatedAt
	}
	return c
}

// CreateComment adds a note to the MR.
func (f *Forge) CreateComment(ctx context.Context, pr scm.PRRef, body string) (scm.Comment, error) {
	id, err := pid(pr.Repo)
	if err != nil {
		return scm.Comment{}, err
	}
	var n *gl.Note
	err = f.write(ctx, "commenting on "+pr.String(), func(o gl.RequestOptionFunc) (*gl.Response, error) {
		var resp *gl.Response
		var err error
		n, resp, err = f.c.Notes.CreateMergeRequestNote(id, int64(pr.Number), &gl.CreateMergeRequestNoteOptions{Body: &body}, o)
		return resp, err
	})
	if err != nil {
		return scm.Comment{}, err
	}
	return comment(n), nil
}

// MaxCommentBytes is GitLab's limit on a note's body.
func (f *Forge) MaxCommentBytes() int { return commentMax }

// EditComment replaces the body of one of the bot's notes.
func (f *Forge) EditComment(ctx context.Context, pr scm.PRRef, noteID int64, body string) error {
	id, err := pid(pr.Repo)
	if err != nil {
		return err
	}
	return f.write(ctx, fmt.Sprintf("editing note %d of %s", noteID, pr), func(o gl.RequestOptionFunc) (*gl.Response, error) {
		_, resp, err := f.c.Notes.UpdateMergeRequestNote(id, int64(pr.Number), noteID, &gl.UpdateMergeRequestNoteOptions{Body: &body}, o)
		return resp, err
	})
}

// glState maps a neutral status to GitLab's commit status states; GitLab
// has no "error", so it becomes "canceled" (which still blocks "pipelines
// must succeed").
func glState(s scm.StatusState) (gl.BuildStateValue, error) {
	switch s {
	case scm.StatusPending:
		return gl.Pending, nil
	case scm.StatusSuccess:
		return gl.Success, nil
	case scm.StatusFailure:
		return gl.Failed, nil
	case scm.StatusError:
		return gl.Canceled, nil
	}
	return "", fmt.Errorf("gitlab: unknown status state %q", s)
}

// StatusState maps a GitLab commit status or pipeline state to the neutral
// one: pending, running (and created, waiting…) → pending, success,
// failed → failure, canceled and skipped → error.
func StatusState(s string) scm.StatusState {
	switch s {
	case "success":
		return scm.StatusSuccess
	case "failed":
		return scm.StatusFailure
	case "canceled", "skipped":
		return scm.StatusError
	}
	return scm.StatusPending
}

// SetStatus sets a commit status named st.Context. Setting the state the
// status already has is not an error (GitLab answers 400 "Cannot
// transition status").
func (f *Forge) SetStatus(ctx context.Context, repo scm.RepoRef, st scm.Status) error {
	id, err := pid(repo)
	if err != nil {
		return err
	}
	state, err := glState(st.State)
	if err != nil {
		return err
	}
	opt := &gl.SetCommitStatusOptions{State: state, Name: gl.Ptr(st.Context)}
	if d := trimRunes(st.Description, descriptionLimit); d != "" {
		opt.Description = &d
	}
	if st.TargetURL != "" {
		opt.TargetURL = gl.Ptr(st.TargetURL)
	}
	err = f.write(ctx, fmt.Sprintf("setting status %s on %s@%s", st.Context, repo, st.SHA), func(o gl.RequestOptionFunc) (*gl.Response, error) {
		_, resp, err := f.c.Commits.SetCommitStatus(id, st.SHA, opt, o)
		return resp, err
	})
	var er *gl.ErrorResponse
	if errors.As(err, &er) && er.Response != nil && er.Response.StatusCode == http.StatusBadRequest &&
		strings.Contains(er.Message, "Cannot transition status") {
		return nil
	}
	return err
}

// GetPullRequest reads the MR and its projects' clone URLs.
//
// Mergeable is nil while GitLab is still checking, else whether the MR has
// no conflicts (approvals, pipelines and discussions are the bot's
// business, not mergeability).
func (f *Forge) GetPullRequest(ctx context.Context, pr scm.PRRef) (*scm.PullRequest, error) {
	id, err := pid(pr.Repo)
	if err != nil {
		return nil, err
	}
	mr, err := fetch(ctx, f, "reading "+pr.String(), func(o gl.RequestOptionFunc) (*gl.MergeRequest, *gl.Response, error) {
		return f.c.MergeRequests.GetMergeRequest(id, int64(pr.Number), nil, o)
	})
	if err != nil {
		return nil, err
	}
	return f.fullPullRequest(ctx, pr.Repo, mr)
}

// fullPullRequest maps a single merge request (as read or created) with
// its diff refs and its projects' clone URLs, which it reads.
func (f *Forge) fullPullRequest(ctx context.Context, repo scm.RepoRef, mr *gl.MergeRequest) (*scm.PullRequest, error) {
	out := pullRequest(repo, &mr.BasicMergeRequest)
	if mr.DiffRefs.HeadSha != "" {
		out.HeadSHA = mr.DiffRefs.HeadSha
	}
	out.BaseSHA = mr.DiffRefs.BaseSha

	target, err := f.projectByID(ctx, mr.TargetProjectID)
	if err != nil {
		return nil, err
	}
	out.CloneURL, out.HeadCloneURL = target.HTTPURLToRepo, target.HTTPURLToRepo
	out.Ref.Repo.FullName = target.PathWithNamespace
	if out.Fork {
		src, err := f.projectByID(ctx, mr.SourceProjectID)
		if err != nil {
			return nil, fmt.Errorf("gitlab: reading the source project of %s: %w", out.Ref, err)
		}
		out.HeadCloneURL = src.HTTPURLToRepo
	}
	return out, nil
}

// CreatePullRequest opens a merge request from pr.Head into pr.Base, both
// branches of repo, and returns it as GetPullRequest would (reading the
// project's clone URL). GitLab computes the diff of a new merge request
// asynchronously, so HeadSHA and BaseSHA may still be empty and Mergeable
// nil. An open merge request between the same branches is
// scm.ErrAlreadyExists.
func (f *Forge) CreatePullRequest(ctx context.Context, repo scm.RepoRef, pr scm.NewPullRequest) (*scm.PullRequest, error) {
	id, err := pid(repo)
	if err != nil {
		return nil, err
	}
	opt := &gl.CreateMergeRequestOptions{
		Title:        gl.Ptr(trimRunes(pr.Title, titleLimit)),
		Description:  gl.Ptr(pr.Body),
		SourceBranch: gl.Ptr(pr.Head),
		TargetBranch: gl.Ptr(pr.Base),
	}
	var mr *gl.MergeRequest
	err = f.write(ctx, fmt.Sprintf("opening a merge request from %s into %s of %s", pr.Head, pr.Base, repo), func(o gl.RequestOptionFunc) (*gl.Response, error) {
		var resp *gl.Response
		var err error
		mr, resp, err = f.c.MergeRequests.CreateMergeRequest(id, opt, o)
		return resp, err
	})
	if err != nil {
		return nil, err
	}
	out, err := f.fullPullRequest(ctx, repo, mr)
	if err != nil {
		return nil, fmt.Errorf("gitlab: opened merge request !%d of %s, then: %w", mr.IID, repo, err)
	}
	return out, nil
}

// EditPullRequest sets the MR's title (cut to GitLab's 255 characters) and
// description.
func (f *Forge) EditPullRequest(ctx context.Context, pr scm.PRRef, title, body string) error {
	return f.updateMR(ctx, "editing "+pr.String(), pr, &gl.UpdateMergeRequestOptions{
		Title: gl.Ptr(trimRunes(title, titleLimit)), Description: gl.Ptr(body),
	})
}

// ClosePullRequest closes the MR; closing a closed one changes nothing.
func (f *Forge) ClosePullRequest(ctx context.Context, pr scm.PRRef) error {
	return f.updateMR(ctx, "closing "+pr.String(), pr, &gl.UpdateMergeRequestOptions{StateEvent: gl.Ptr("close")})
}

func (f *Forge) updateMR(ctx context.Context, what string, pr scm.PRRef, opt *gl.UpdateMergeRequestOptions) error {
	id, err := pid(pr.Repo)
	if err != nil {
		return err
	}
	return f.write(ctx, what, func(o gl.RequestOptionFunc) (*gl.Response, error) {
		_, resp, err := f.c.MergeRequests.UpdateMergeRequest(id, int64(pr.Number), opt, o)
		return resp, err
	})
}

// trimRunes cuts s to at most n characters, marking the cut with "…".
func trimRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// projectByID reads a project by id or path.
func (f *Forge) projectByID(ctx context.Context, id any) (*gl.Project, error) {
	return fetch(ctx, f, fmt.Sprintf("reading project %v", id), func(o gl.RequestOptionFunc) (*gl.Project, *gl.Response, error) {
		return f.c.Projects.GetProject(id, nil, o)
	})
}

// pullRequest maps the fields a listing has; clone URLs and the base SHA
// need GetPullRequest.
func pullRequest(repo scm.RepoRef, mr *gl.BasicMergeRequest) *scm.PullRequest {
	repo.Kind = scm.GitLab
	if mr.ProjectID != 0 {
		repo.ID = mr.ProjectID
	}
	out := &scm.PullRequest{
		Ref:     scm.PRRef{Repo: repo, Number: int(mr.IID)},
		Title:   mr.Title,
		URL:     mr.WebURL,
		Draft:   mr.Draft,
		HeadSHA: mr.SHA,
		HeadRef: mr.SourceBranch,
		BaseRef: mr.TargetBranch,
		Fork:    mr.SourceProjectID != 0 && mr.SourceProjectID != mr.TargetProjectID,
	}
	if mr.Author != nil {
		out.Author = mr.Author.Username
	}
	switch mr.State {
	case "merged":
		out.State = "merged"
		// As GitLab's own merged_commit_sha: the merge commit, else the
		// squash commit (a fast-forward squash), else the head (a
		// fast-forward of the rebased commits).
		out.MergeCommitSHA = cmp.Or(mr.MergeCommitSHA, mr.SquashCommitSHA, mr.SHA)
		if mr.MergedAt != nil {
			out.MergedAt = *mr.MergedAt
		}
	case "closed":
		out.State = "closed"
	default: // opened, locked (a merge in progress)
		out.State = "open"
	}
	switch mr.DetailedMergeStatus {
	case "checking", "unchecked", "preparing", "approvals_syncing", "":
	default:
		m := !mr.HasConflicts && mr.DetailedMergeStatus != "conflict"
		out.Mergeable = &m
	}
	if mr.UpdatedAt != nil {
		out.UpdatedAt = *mr.UpdatedAt
	}
	return out
}

// ListOpenPullRequests lists every opened MR targeting the project, across
// all pages. Clone URLs and BaseSHA are left empty: GetPullRequest has them.
func (f *Forge) ListOpenPullRequests(ctx context.Context, repo scm.RepoRef) ([]scm.PullRequest, error) {
	id, err := pid(repo)
	if err != nil {
		return nil, err
	}
	mrs, err := all(ctx, f, "listing open merge requests of "+repo.String(), func(lo gl.ListOptions, o gl.RequestOptionFunc) ([]*gl.BasicMergeRequest, *gl.Response, error) {
		return f.c.MergeRequests.ListProjectMergeRequests(id, &gl.ListProjectMergeRequestsOptions{ListOptions: lo, State: gl.Ptr("opened")}, o)
	})
	if err != nil {
		return nil, err
	}
	var out []scm.PullRequest
	for _, mr := range mrs {
		if mr != nil {
			out = append(out, *pullRequest(repo, mr))
		}
	}
	return out, nil
}

// ChangedFiles lists the old and new path of every file the MR changes,
// each path once, across all pages.
func (f *Forge) ChangedFiles(ctx context.Context, pr scm.PRRef) ([]string, error) {
	id, err := pid(pr.Repo)
	if err != nil {
		return nil, err
	}
	diffs, err := all(ctx, f, "listing changes of "+pr.String(), func(lo gl.ListOptions, o gl.RequestOptionFunc) ([]*gl.MergeRequestDiff, *gl.Response, error) {
		return f.c.MergeRequests.ListMergeRequestDiffs(id, int64(pr.Number), &gl.ListMergeRequestDiffsOptions{ListOptions: lo}, o)
	})
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, d := range diffs {
		if d == nil {
			continue
		}
		for _, p := range []string{d.OldPath, d.NewPath} {
			if p != "" && !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out, nil
}

// ReadFile reads a file's raw content at ref; a missing file or ref is
// scm.ErrNotFound.
func (f *Forge) ReadFile(ctx context.Context, repo scm.RepoRef, ref, path string) ([]byte, error) {
	id, err := pid(repo)
	if err != nil {
		return nil, err
	}
	return fetch(ctx, f, fmt.Sprintf("reading %s at %s in %s", path, ref, repo), func(o gl.RequestOptionFunc) ([]byte, *gl.Response, error) {
		return f.c.RepositoryFiles.GetRawFile(id, path, &gl.GetRawFileOptions{Ref: &ref}, o)
	})
}

// Permission maps the user's effective project role (direct or inherited
// from groups): Maintainer and Owner → admin, Developer → write, Guest and
// Reporter → read, no membership or an unknown user → none. The answer is
// remembered for Options.CacheTTL.
func (f *Forge) Permission(ctx context.Context, repo scm.RepoRef, user string) (scm.Permission, error) {
	id, err := pid(repo)
	if err != nil {
		return "", err
	}
	key := permKey{project: id, user: strings.ToLower(user)}
	if p, ok := id.(string); ok {
		key.project = strings.ToLower(p)
	}
	return f.perms.Get(ctx, key, func(ctx context.Context) (scm.Permission, error) {
		return f.permission(ctx, id, repo, user)
	})
}

func (f *Forge) permission(ctx context.Context, id any, repo scm.RepoRef, user string) (scm.Permission, error) {
	users, err := fetch(ctx, f, "looking up user "+user, func(o gl.RequestOptionFunc) ([]*gl.User, *gl.Response, error) {
		return f.c.Users.ListUsers(&gl.ListUsersOptions{Username: &user}, o)
	})
	if err != nil {
		return "", err
	}
	var uid int64
	for _, u := range users {
		if u != nil && strings.EqualFold(u.Username, user) {
			uid = u.ID
		}
	}
	if uid == 0 {
		return scm.PermissionNone, nil
	}
	// members/all: direct, inherited from groups and shared-with groups
	m, err := fetch(ctx, f, fmt.Sprintf("reading the membership of %s in %s", user, repo), func(o gl.RequestOptionFunc) (*gl.ProjectMember, *gl.Response, error) {
		return f.c.ProjectMembers.GetInheritedProjectMember(id, uid, o)
	})
	if errors.Is(err, scm.ErrNotFound) {
		// Not a member, or no such project: GitLab says 404 for both.
		if _, perr := f.projectByID(ctx, id); perr != nil {
			return "", perr
		}
		return scm.PermissionNone, nil
	}
	if err != nil {
		return "", err
	}
	return permission(m), nil
}

func permission(m *gl.ProjectMember) scm.Permission {
	if m == nil || (m.State != "" && m.State != "active") {
		return scm.PermissionNone
	}
	switch {
	case m.AccessLevel >= gl.MaintainerPermissions:
		return scm.PermissionAdmin
	case m.AccessLevel >= gl.DeveloperPermissions:
		return scm.PermissionWrite
	case m.AccessLevel >= gl.GuestPermissions:
		return scm.PermissionRead
	}
	return scm.PermissionNone
}

// BotLogin is the token's user (a project or group access token has a bot
// user of its own), read once.
func (f *Forge) BotLogin(ctx context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.login != "" {
		return f.login, nil
	}
	u, err := fetch(ctx, f, "reading the token's user", func(o gl.RequestOptionFunc) (*gl.User, *gl.Response, error) {
		return f.c.Users.CurrentUser(o)
	})
	if err != nil {
		return "", err
	}
	f.login = u.Username
	return f.login, nil
}

// CloneCredentials are ("oauth2", token), which GitLab accepts over HTTPS
// for every kind of access token.
func (f *Forge) CloneCredentials(context.Context, scm.RepoRef) (string, string, error) {
	return "oauth2", f.opts.Token, nil
}
