package gitrepo

import (
	"fmt"
	"slices"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/index"
	"github.com/go-git/go-git/v5/storage/memory"
	"github.com/go-git/go-git/v5/storage/transactional"
)

// Local is a Git repository on this machine, such as the checkout a user
// or a CI job applies from. It is read with go-git, so no git binary is
// needed, and never written to.
type Local struct {
	repo *git.Repository
}

// OpenLocal opens the repository whose work tree holds dir (dir or one of
// its parents has the .git; linked work trees are followed).
func OpenLocal(dir string) (*Local, error) {
	r, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true, EnableDotGitCommonDir: true})
	if err != nil {
		return nil, fmt.Errorf("%s is not in a Git work tree: %w", dir, err)
	}
	return &Local{repo: r}, nil
}

// Head is the full SHA of the commit checked out.
func (l *Local) Head() (string, error) {
	ref, err := l.repo.Head()
	if err != nil {
		return "", fmt.Errorf("read HEAD: %w", err)
	}
	return ref.Hash().String(), nil
}

// Changed lists the tracked files that differ from HEAD, in the index or
// the work tree (what git status shows without untracked files), sorted.
func (l *Local) Changed() ([]string, error) {
	wt, err := l.repo.Worktree()
	if err != nil {
		return nil, err
	}
	st, err := wt.Status()
	if err != nil {
		return nil, fmt.Errorf("read the state of the work tree: %w", err)
	}
	var out []string
	for path, s := range st {
		if s.Staging == git.Untracked && s.Worktree == git.Untracked {
			continue
		}
		if s.Staging != git.Unmodified || s.Worktree != git.Unmodified {
			out = append(out, path)
		}
	}
	slices.Sort(out)
	return out, nil
}

// Origin is the URL of remote origin, "" without one.
func (l *Local) Origin() string {
	r, err := l.repo.Remote("origin")
	if err != nil || len(r.Config().URLs) == 0 {
		return ""
	}
	return r.Config().URLs[0]
}

// HasCommit reports whether commit sha is in the repository.
func (l *Local) HasCommit(sha string) bool {
	if !isSHA1(sha) {
		return false
	}
	_, err := l.repo.CommitObject(plumbing.NewHash(sha))
	return err == nil
}

// CheckoutTo writes the tree of commit sha to work, an empty directory.
// The repository is only read: HEAD and the index of the checkout live
// in memory. Writes are kept inside work, also through a symlink in the
// tree.
func (l *Local) CheckoutTo(sha, work string) error {
	if !l.HasCommit(sha) {
		return fmt.Errorf("commit %s is not in the repository", sha)
	}
	overlay := transactional.NewStorage(l.repo.Storer, memory.NewStorage())
	if err := overlay.SetIndex(&index.Index{Version: 2}); err != nil {
		return err
	}
	r, err := git.Open(overlay, osfs.New(work, osfs.WithBoundOS()))
	if err != nil {
		return err
	}
	wt, err := r.Worktree()
	if err != nil {
		return err
	}
	if err := wt.Checkout(&git.CheckoutOptions{Hash: plumbing.NewHash(sha), Force: true}); err != nil {
		return fmt.Errorf("check out %s: %w", sha, err)
	}
	return nil
}
