// Package githooks holds the repository's Git hooks; this test commits the
// files the pre-commit hook must refuse, in a scratch repository with the
// hook and hack/check-size.sh copied in, and checks this repository's index.
package githooks

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// git runs git in dir and returns its combined output and error.
func git(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL="+os.DevNull, "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func mustGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := git(t, dir, args...)
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// scratch is a repository with the hook enabled and one commit.
func scratch(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	mustGit(t, dir, "init", "-q", "-b", "main")
	for src, dst := range map[string]string{"../check-size.sh": "hack/check-size.sh", "pre-commit": "hack/githooks/pre-commit"} {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(dst)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, dst), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mustGit(t, dir, "config", "core.hooksPath", "hack/githooks")
	mustGit(t, dir, "add", ".")
	mustGit(t, dir, "commit", "-q", "-m", "hooks")
	return dir
}

func TestPreCommitRefuses(t *testing.T) {
	elf, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 6<<20/16) // 6 MB of text
	cases := []struct {
		name, file string
		data       []byte
		want       string // in the refusal; "" when the commit goes in
	}{
		{name: "6 MB file", file: "data/big file.txt", data: big, want: "big file.txt is 6 MB, over the 5 MB limit"},
		{name: "6 MB binary data", file: "blob.bin", data: bytes.Repeat([]byte{0, 1, 2, 3}, 6<<20/4), want: "over the 5 MB limit"},
		{name: "compiled program under 5 MB", file: "kubectl-gitops", data: elf[:min(len(elf), 1<<20)], want: "kubectl-gitops is a compiled program"},
		{name: "Windows program", file: "tool.exe", data: append([]byte("MZ\x90\x00"), make([]byte, 512)...), want: "tool.exe is a compiled program"},
		{name: "just under the limit", file: "ok.txt", data: big[:5<<20]},
		{name: "binary data that is no program", file: "logo.png", data: append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, 64)...)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := scratch(t)
			path := filepath.Join(dir, tc.file)
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			mustGit(t, dir, "add", ".")
			out, err := git(t, dir, "commit", "-q", "-m", "add "+tc.file)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("commit of %s refused: %v\n%s", tc.file, err, out)
				}
				return
			}
			if err == nil {
				t.Fatalf("commit of %s went in; want it refused", tc.file)
			}
			if !strings.Contains(out, tc.want) || !strings.Contains(out, "git rm --cached") {
				t.Errorf("refusal = %q, want it to say %q and how to undo it", out, tc.want)
			}
			if log := mustGit(t, dir, "log", "--oneline"); strings.Count(log, "\n") != 1 {
				t.Errorf("history = %q, want only the first commit", log)
			}
			// The file is still staged: nothing the user did is lost.
			if st := mustGit(t, dir, "status", "--porcelain"); !strings.Contains(st, "A  ") {
				t.Errorf("status = %q, want the file still staged", st)
			}
		})
	}
}

// TestIndexHasNoLargeFileOrProgram runs the full check over this
// repository's index, as hack/test.sh does.
func TestIndexHasNoLargeFileOrProgram(t *testing.T) {
	root := mustGit(t, ".", "rev-parse", "--show-toplevel")
	cmd := exec.Command(filepath.Join(strings.TrimSpace(root), "hack", "check-size.sh"))
	cmd.Dir = strings.TrimSpace(root)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hack/check-size.sh: %v\n%s", err, out)
	}
	// And it does fail a full check of a repository that has one.
	dir := scratch(t)
	if err := os.WriteFile(filepath.Join(dir, "big"), bytes.Repeat([]byte("x"), 6<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	mustGit(t, dir, "add", "big")
	mustGit(t, dir, "commit", "-q", "--no-verify", "-m", "bypassing the hook")
	check := exec.Command(filepath.Join(dir, "hack", "check-size.sh"))
	check.Dir = dir
	if out, err := check.CombinedOutput(); err == nil || !strings.Contains(string(out), "big is 6 MB") {
		t.Fatalf("full check of a repository holding a 6 MB file: err=%v out=%s; want it to fail naming big", err, out)
	}
}
