package gitlab

import (
	"context"
	"fmt"
	"slices"
	"strings"

	gl "gitlab.com/gitlab-org/api/client-go"

	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
)

// TeamMembers lists the usernames of a group's active members, direct,
// inherited from parent groups and from groups invited to it
// (members/all), across all pages, remembered for Options.CacheTTL. team is
// a group's full path ("acme/platform", "@" optional; "@security" for a
// top-level group, as GitLab mentions it) or, like a GitHub team slug of
// the repository's organisation, a bare name without "@": a subgroup of the
// project's top-level group ("platform" for a project under acme/…).
// Minimal Access members are left out: they are not members of the group's
// work. A group that does not exist or that the token cannot see is
// scm.ErrNotFound.
func (f *Forge) TeamMembers(ctx context.Context, repo scm.RepoRef, team string) ([]string, error) {
	path, err := f.groupPath(ctx, repo, team)
	if err != nil {
		return nil, err
	}
	members, err := f.teams.Get(ctx, strings.ToLower(path), func(ctx context.Context) ([]string, error) {
		ms, err := all(ctx, f, "listing the members of group "+path, func(lo gl.ListOptions, o gl.RequestOptionFunc) ([]*gl.GroupMember, *gl.Response, error) {
			return f.c.Groups.ListAllGroupMembers(path, &gl.ListGroupMembersOptions{ListOptions: lo}, o)
		})
		if err != nil {
			return nil, err
		}
		var out []string
		for _, m := range ms {
			if m == nil || m.Username == "" || (m.State != "" && m.State != "active") || m.AccessLevel < gl.GuestPermissions {
				continue
			}
			// A member through two routes (direct and inherited) is one.
			if !slices.Contains(out, m.Username) {
				out = append(out, m.Username)
			}
		}
		return out, nil
	})
	return slices.Clone(members), err
}

// groupPath resolves team to a group's full path.
func (f *Forge) groupPath(ctx context.Context, repo scm.RepoRef, team string) (string, error) {
	t, mention := strings.CutPrefix(strings.TrimSpace(team), "@")
	t = strings.Trim(t, "/")
	if !mention && !strings.Contains(t, "/") {
		project := repo.FullName
		if project == "" {
			id, err := pid(repo)
			if err != nil {
				return "", err
			}
			p, err := f.projectByID(ctx, id)
			if err != nil {
				return "", err
			}
			project = p.PathWithNamespace
		}
		top, _, _ := strings.Cut(project, "/")
		t = top + "/" + t
	}
	for seg := range strings.SplitSeq(t, "/") {
		if !validSegment(seg) {
			return "", fmt.Errorf("gitlab: team %q is not a group path such as acme/platform, or the name of a subgroup of the project's top-level group", team)
		}
	}
	return t, nil
}

// validSegment reports whether s can be one segment of a GitLab path:
// letters, digits, '_', '-' and '.', not "." or "..".
func validSegment(s string) bool {
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
