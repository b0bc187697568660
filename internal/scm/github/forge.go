package github

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	gh "github.com/google/go-github/v88/github"

	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
)

const (
	perPage = 100
	// statusDescriptionMax is GitHub's limit on the description of a
	// commit status or a deployment status.
	statusDescriptionMax = 140
	// commentMax is GitHub's limit on a comment's body.
	commentMax = 65_536
	// titleMax is GitHub's limit on a pull request's title.
	titleMax = 256
)

// forge is scm.Forge on one set of credentials: an installation or a token.
// What those credentials may see is theirs, so permissions and team
// memberships are cached here, per installation.
type forge struct {
	fs    *Forges
	c     *gh.Client
	creds func(ctx context.Context) (string, error)
	perms *scm.Cache[permKey, scm.Permission]
	teams *scm.Cache[string, []string] // by "org/slug", lower case
}

// permKey is a user on a repository, in lower case: GitHub's names are
// case-insensitive.
type permKey struct{ repo, user string }

func (f *Forges) newForge(c *gh.Client, creds func(ctx context.Context) (string, error)) *forge {
	// The clock is read through f, so a test that replaces f.now moves it.
	now := func() time.Time { return f.now() }
	return &forge{
		fs: f, c: c, creds: creds,
		perms: scm.NewCache[permKey, scm.Permission](f.opts.CacheTTL, now),
		teams: scm.NewCache[string, []string](f.opts.CacheTTL, now),
	}
}

var _ scm.Forge = (*forge)(nil)

func (g *forge) ListComments(ctx context.Context, pr scm.PRRef) ([]scm.Comment, error) {
	owner, name, err := splitRepo(pr.Repo)
	if err != nil {
		return nil, err
	}
	var out []scm.Comment
	opts := &gh.IssueListCommentsOptions{ListOptions: gh.ListOptions{PerPage: perPage}}
	for {
		cs, resp, err := g.c.Issues.ListComments(ctx, owner, name, pr.Number, opts)
		if err != nil {
			return nil, mapErr(fmt.Sprintf("listing the comments of %s", pr), err)
		}
		for _, c := range cs {
			out = append(out, comment(c))
		}
		if resp.NextPage == 0 {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

func comment(c *gh.IssueComment) scm.Comment {
	return scm.Comment{
		ID:        c.GetID(),
		Author:    c.GetUser().GetLogin(),
		Body:      c.GetBody(),
		CreatedAt: c.GetCreatedAt().Time,
		UpdatedAt: c.GetUpdatedAt().Time,
	}
}

func (g *forge) CreateComment(ctx context.Context, pr scm.PRRef, body string) (scm.Comment, error) {
	owner, name, err := splitRepo(pr.Repo)
	if err != nil {
		return scm.Comment{}, err
	}
	c, _, err := g.c.Issues.CreateComment(ctx, owner, name, pr.Number, &gh.IssueComment{Body: &body})
	if err != nil {
		return scm.Comment{}, mapErr(fmt.Sprintf("commenting on %s", pr), err)
	}
	return comment(c), nil
}

// MaxCommentBytes is GitHub's limit on a comment's body.
func (g *forge) MaxCommentBytes() int { return commentMax }

func (g *forge) EditComment(ctx context.Context, pr scm.PRRef, id int64, body string) error {
	owner, name, err := splitRepo(pr.Repo)
	if err != nil {
		return err
	}
	if _, _, err := g.c.Issues.EditComment(ctx, owner, name, id, &gh.IssueComment{Body: &body}); err != nil {
		return mapErr(fmt.Sprintf("editing comment %d on %s", id, pr), err)
	}
	return nil
}

func (g *forge) SetStatus(ctx context.Context, repo scm.RepoRef, st scm.Status) error {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return err
	}
	state := string(st.State)
	s := gh.RepoStatus{State: &state, Context: &st.Context}
	if d := trimRunes(st.Description, statusDescriptionMax); d != "" {
		s.Description = &d
	}
	if st.TargetURL != "" {
		s.TargetURL = &st.TargetURL
	}
	if _, _, err := g.c.Repositories.CreateStatus(ctx, owner, name, st.SHA, s); err != nil {
		return mapErr(fmt.Sprintf("setting status %s on %s@%s", st.Context, repo.FullName, st.SHA), err)
	}
	return nil
}

// trimRunes cuts s to at most n characters, marking the cut with "…".
func trimRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func (g *forge) ListReviews(ctx context.Context, pr scm.PRRef) ([]scm.Review, error) {
	owner, name, err := splitRepo(pr.Repo)
	if err != nil {
		return nil, err
	}
	var out []scm.Review
	opts := &gh.ListOptions{PerPage: perPage}
	for {
		rs, resp, err := g.c.PullRequests.ListReviews(ctx, owner, name, pr.Number, opts)
		if err != nil {
			return nil, mapErr(fmt.Sprintf("listing the reviews of %s", pr), err)
		}
		for _, r := range rs {
			if strings.EqualFold(r.GetState(), "PENDING") {
				continue // a draft only its author sees
			}
			out = append(out, scm.Review{
				ID:          r.GetID(),
				Author:      r.GetUser().GetLogin(),
				State:       reviewState(r.GetState()),
				CommitSHA:   r.GetCommitID(),
				SubmittedAt: r.GetSubmittedAt().Time,
			})
		}
		if resp.NextPage == 0 {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

func reviewState(s string) scm.ReviewState {
	switch strings.ToUpper(s) {
	case "APPROVED":
		return scm.ReviewApproved
	case "CHANGES_REQUESTED":
		return scm.ReviewChangesRequested
	case "DISMISSED":
		return scm.ReviewDismissed
	default: // COMMENTED
		return scm.ReviewCommented
	}
}

func (g *forge) GetPullRequest(ctx context.Context, pr scm.PRRef) (*scm.PullRequest, error) {
	owner, name, err := splitRepo(pr.Repo)
	if err != nil {
		return nil, err
	}
	p, _, err := g.c.PullRequests.Get(ctx, owner, name, pr.Number)
	if err != nil {
		return nil, mapErr(fmt.Sprintf("reading %s", pr), err)
	}
	out := pullRequest(pr.Repo, p)
	return &out, nil
}

func pullRequest(repo scm.RepoRef, p *gh.PullRequest) scm.PullRequest {
	state := p.GetState()
	if p.GetMerged() || p.MergedAt != nil {
		state = "merged"
	}
	baseRepo := p.GetBase().GetRepo()
	headRepo := p.GetHead().GetRepo()
	if repo.ID == 0 {
		repo.ID = baseRepo.GetID()
	}
	out := scm.PullRequest{
		Ref:          scm.PRRef{Repo: repo, Number: p.GetNumber()},
		Title:        p.GetTitle(),
		Author:       p.GetUser().GetLogin(),
		URL:          p.GetHTMLURL(),
		State:        state,
		Draft:        p.GetDraft(),
		HeadSHA:      p.GetHead().GetSHA(),
		HeadRef:      p.GetHead().GetRef(),
		BaseSHA:      p.GetBase().GetSHA(),
		BaseRef:      p.GetBase().GetRef(),
		CloneURL:     baseRepo.GetCloneURL(),
		HeadCloneURL: headRepo.GetCloneURL(),
		// A deleted fork leaves no head repository: treat it as a fork.
		Fork:      headRepo == nil || headRepo.GetFullName() != baseRepo.GetFullName(),
		Mergeable: p.Mergeable,
		UpdatedAt: p.GetUpdatedAt().Time,
	}
	// An open pull request's merge_commit_sha is GitHub's test merge, no
	// commit of the base branch.
	if state == "merged" {
		out.MergeCommitSHA = p.GetMergeCommitSHA()
		out.MergedAt = p.GetMergedAt().Time
	}
	return out
}

func (g *forge) ListOpenPullRequests(ctx context.Context, repo scm.RepoRef) ([]scm.PullRequest, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return nil, err
	}
	var out []scm.PullRequest
	opts := &gh.PullRequestListOptions{State: "open", ListOptions: gh.ListOptions{PerPage: perPage}}
	for {
		ps, resp, err := g.c.PullRequests.List(ctx, owner, name, opts)
		if err != nil {
			return nil, mapErr(fmt.Sprintf("listing the open pull requests of %s", repo.FullName), err)
		}
		for _, p := range ps {
			out = append(out, pullRequest(repo, p))
		}
		if resp.NextPage == 0 {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

// CreatePullRequest opens a pull request from pr.Head, a branch of repo,
// into pr.Base. GitHub answers 422 for a head branch it does not know, or
// one with no commits the base lacks; an open pull request from the same
// head into the same base is scm.ErrAlreadyExists.
func (g *forge) CreatePullRequest(ctx context.Context, repo scm.RepoRef, pr scm.NewPullRequest) (*scm.PullRequest, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return nil, err
	}
	title := trimRunes(pr.Title, titleMax)
	p, _, err := g.c.PullRequests.Create(ctx, owner, name, &gh.NewPullRequest{
		Title: &title, Body: &pr.Body, Head: &pr.Head, Base: &pr.Base,
	})
	if err != nil {
		return nil, mapErr(fmt.Sprintf("opening a pull request from %s into %s of %s", pr.Head, pr.Base, repo.FullName), err)
	}
	out := pullRequest(repo, p)
	return &out, nil
}

// EditPullRequest sets the title (cut to GitHub's 256 characters) and body.
func (g *forge) EditPullRequest(ctx context.Context, pr scm.PRRef, title, body string) error {
	owner, name, err := splitRepo(pr.Repo)
	if err != nil {
		return err
	}
	title = trimRunes(title, titleMax)
	if _, _, err := g.c.PullRequests.Edit(ctx, owner, name, pr.Number, &gh.PullRequest{Title: &title, Body: &body}); err != nil {
		return mapErr(fmt.Sprintf("editing %s", pr), err)
	}
	return nil
}

// ClosePullRequest closes pr unmerged; closing a closed one changes nothing.
func (g *forge) ClosePullRequest(ctx context.Context, pr scm.PRRef) error {
	owner, name, err := splitRepo(pr.Repo)
	if err != nil {
		return err
	}
	if _, _, err := g.c.PullRequests.Edit(ctx, owner, name, pr.Number, &gh.PullRequest{State: gh.Ptr("closed")}); err != nil {
		return mapErr(fmt.Sprintf("closing %s", pr), err)
	}
	return nil
}

// ChangedFiles lists both sides of renames. GitHub lists at most 3000
// files of a pull request.
func (g *forge) ChangedFiles(ctx context.Context, pr scm.PRRef) ([]string, error) {
	owner, name, err := splitRepo(pr.Repo)
	if err != nil {
		return nil, err
	}
	var out []string
	opts := &gh.ListOptions{PerPage: perPage}
	for {
		fs, resp, err := g.c.PullRequests.ListFiles(ctx, owner, name, pr.Number, opts)
		if err != nil {
			return nil, mapErr(fmt.Sprintf("listing the files %s changes", pr), err)
		}
		for _, f := range fs {
			out = append(out, f.GetFilename())
			if prev := f.GetPreviousFilename(); prev != "" && prev != f.GetFilename() {
				out = append(out, prev)
			}
		}
		if resp.NextPage == 0 {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

// ReadFile reads a file through the contents API with the raw media type,
// so files up to 100 MB come back as they are, not base64 in JSON.
func (g *forge) ReadFile(ctx context.Context, repo scm.RepoRef, ref, path string) ([]byte, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return nil, err
	}
	segs := strings.Split(strings.Trim(path, "/"), "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	u := fmt.Sprintf("repos/%s/%s/contents/%s", url.PathEscape(owner), url.PathEscape(name), strings.Join(segs, "/"))
	if ref != "" {
		u += "?ref=" + url.QueryEscape(ref)
	}
	req, err := g.c.NewRequest(ctx, "GET", u, nil)
	if err != nil {
		return nil, fmt.Errorf("github: reading %s: %w", path, err)
	}
	req.Header.Set("Accept", "application/vnd.github.raw+json")
	var buf bytes.Buffer
	if _, err := g.c.Do(req, &buf); err != nil {
		return nil, mapErr(fmt.Sprintf("reading %s of %s at %s", path, repo.FullName, ref), err)
	}
	return buf.Bytes(), nil
}

// Permission is user's permission on repo, remembered for Options.CacheTTL.
func (g *forge) Permission(ctx context.Context, repo scm.RepoRef, user string) (scm.Permission, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return scm.PermissionNone, err
	}
	key := permKey{repo: strings.ToLower(repo.FullName), user: strings.ToLower(user)}
	return g.perms.Get(ctx, key, func(ctx context.Context) (scm.Permission, error) {
		p, _, err := g.c.Repositories.GetPermissionLevel(ctx, owner, name, user)
		if err != nil {
			return scm.PermissionNone, mapErr(fmt.Sprintf("reading %s's permission on %s", user, repo.FullName), err)
		}
		// role_name tells maintain from write and triage from read;
		// permission folds them into the four levels.
		switch p.GetPermission() {
		case "admin":
			return scm.PermissionAdmin, nil
		case "write", "maintain":
			return scm.PermissionWrite, nil
		case "read", "triage":
			return scm.PermissionRead, nil
		default:
			return scm.PermissionNone, nil
		}
	})
}

// TeamMembers lists the members of an organisation's team by its slug
// ("org/slug", or a slug of repo's owner), child teams' members included,
// remembered for Options.CacheTTL. A GitHub App needs the organisation's
// Members permission (read) to see teams; without it GitHub answers 403
// (scm.ErrForbidden), and for a team it cannot see, 404 (scm.ErrNotFound).
func (g *forge) TeamMembers(ctx context.Context, repo scm.RepoRef, team string) ([]string, error) {
	org, slug, err := teamRef(repo, team)
	if err != nil {
		return nil, err
	}
	members, err := g.teams.Get(ctx, strings.ToLower(org+"/"+slug), func(ctx context.Context) ([]string, error) {
		var out []string
		opts := &gh.TeamListTeamMembersOptions{Role: "all", ListOptions: gh.ListOptions{PerPage: perPage}}
		for {
			us, resp, err := g.c.Teams.ListTeamMembersBySlug(ctx, org, slug, opts)
			if err != nil {
				return nil, mapErr(fmt.Sprintf("listing the members of team @%s/%s", org, slug), err)
			}
			for _, u := range us {
				if l := u.GetLogin(); l != "" {
					out = append(out, l)
				}
			}
			if resp.NextPage == 0 {
				return out, nil
			}
			opts.Page = resp.NextPage
		}
	})
	return slices.Clone(members), err
}

// teamRef reads "@org/slug", "org/slug" or "slug" (of repo's owner).
func teamRef(repo scm.RepoRef, team string) (org, slug string, err error) {
	t := strings.TrimPrefix(strings.TrimSpace(team), "@")
	org, slug, ok := strings.Cut(t, "/")
	if !ok {
		if org, _, err = splitRepo(repo); err != nil {
			return "", "", err
		}
		slug = t
	}
	if !validName(org) || !validName(slug) {
		return "", "", fmt.Errorf("github: team %q is not org/slug or the slug of a team of %s (as in the team's URL)", team, ownerOf(repo))
	}
	return org, slug, nil
}

func ownerOf(repo scm.RepoRef) string {
	owner, _, _ := strings.Cut(repo.FullName, "/")
	return owner
}

// validName reports whether s can be an organisation login or a team slug:
// letters, digits, '-', '_' and '.', so that it is one path segment.
func validName(s string) bool {
	if s == "" || s == "." || s == ".." {
		return false
	}
	for _, r := range s {
		ok := r == '-' || r == '_' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
		if !ok {
			return false
		}
	}
	return true
}

func (g *forge) BotLogin(ctx context.Context) (string, error) { return g.fs.botLogin(ctx) }

// CloneCredentials returns the installation token (or the token) as the
// password of "x-access-token", which GitHub accepts for HTTPS fetches.
func (g *forge) CloneCredentials(ctx context.Context, _ scm.RepoRef) (string, string, error) {
	tok, err := g.creds(ctx)
	if err != nil {
		return "", "", err
	}
	return "x-access-token", tok, nil
}
