package gitrepo_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kubectl-gitops/kubectl-gitops/internal/gitrepo"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/gittest"
)

// TestLocal reads a checkout with go-git as git does: HEAD, the tracked
// files changed (not the untracked ones), origin; and checks an older
// commit out elsewhere without touching the repository.
func TestLocal(t *testing.T) {
	repo := gittest.NewRepo(t, map[string]string{"apps/web/cm.yaml": "one\n", "run.sh": "#!/bin/sh\n"})
	first := repo.Head(t)
	if err := os.Chmod(filepath.Join(repo.Dir, "run.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("cm.yaml", filepath.Join(repo.Dir, "apps/web/link.yaml")); err != nil {
		t.Fatal(err)
	}
	second := repo.Commit(t, map[string]string{"apps/web/cm.yaml": "two\n"}, "two")
	gitOut(t, repo.Dir, "remote", "add", "origin", "https://git.example.com/acme/shop.git")

	l, err := gitrepo.OpenLocal(filepath.Join(repo.Dir, "apps", "web"))
	if err != nil {
		t.Fatal(err)
	}
	if head, err := l.Head(); err != nil || head != second {
		t.Errorf("Head = %q, %v, want %s", head, err, second)
	}
	if got := l.Origin(); got != "https://git.example.com/acme/shop.git" {
		t.Errorf("Origin = %q", got)
	}
	if !l.HasCommit(first) || l.HasCommit(strings.Repeat("0", 40)) || l.HasCommit("not-a-sha") {
		t.Error("HasCommit is wrong")
	}
	changed := func(want ...string) {
		t.Helper()
		got, err := l.Changed()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("Changed = %q, want %q (git status: %q)", got, want, gitOut(t, repo.Dir, "status", "--porcelain"))
		}
	}
	changed()
	if err := os.WriteFile(filepath.Join(repo.Dir, "notes.txt"), []byte("untracked\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	changed()
	if err := os.WriteFile(filepath.Join(repo.Dir, "apps/web/cm.yaml"), []byte("three\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	changed("apps/web/cm.yaml")
	gitOut(t, repo.Dir, "add", "notes.txt")
	changed("apps/web/cm.yaml", "notes.txt")

	before := gitOut(t, repo.Dir, "status", "--porcelain") + gitOut(t, repo.Dir, "for-each-ref") + gitOut(t, repo.Dir, "rev-parse", "HEAD")
	work := filepath.Join(t.TempDir(), "tree")
	if err := l.CheckoutTo(first, work); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(work, "apps/web/cm.yaml")); err != nil || string(b) != "one\n" {
		t.Errorf("checked out cm.yaml = %q, %v, want one", b, err)
	}
	if _, err := os.Lstat(filepath.Join(work, "apps/web/link.yaml")); !os.IsNotExist(err) {
		t.Errorf("a file of a later commit is in the checkout: %v", err)
	}
	if after := gitOut(t, repo.Dir, "status", "--porcelain") + gitOut(t, repo.Dir, "for-each-ref") + gitOut(t, repo.Dir, "rev-parse", "HEAD"); after != before {
		t.Errorf("the repository changed:\nbefore %s\nafter  %s", before, after)
	}
	work2 := filepath.Join(t.TempDir(), "tree")
	if err := l.CheckoutTo(second, work2); err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(filepath.Join(work2, "apps/web/link.yaml")); err != nil || target != "cm.yaml" {
		t.Errorf("symlink = %q, %v", target, err)
	}
	if fi, err := os.Stat(filepath.Join(work2, "run.sh")); err != nil || fi.Mode()&0o100 == 0 {
		t.Errorf("run.sh mode = %v, %v, want executable", fi, err)
	}
	if err := l.CheckoutTo(strings.Repeat("1", 40), t.TempDir()); err == nil || !strings.Contains(err.Error(), "is not in the repository") {
		t.Errorf("a missing commit: %v", err)
	}

	// A linked work tree (git worktree add) opens too.
	linked := filepath.Join(t.TempDir(), "linked")
	gitOut(t, repo.Dir, "worktree", "add", "--quiet", "--detach", linked, first)
	ll, err := gitrepo.OpenLocal(linked)
	if err != nil {
		t.Fatal(err)
	}
	if head, err := ll.Head(); err != nil || head != first {
		t.Errorf("linked work tree Head = %q, %v, want %s", head, err, first)
	}

	if _, err := gitrepo.OpenLocal(t.TempDir()); err == nil || !strings.Contains(err.Error(), "is not in a Git work tree") {
		t.Errorf("OpenLocal outside a repository: %v", err)
	}
}
