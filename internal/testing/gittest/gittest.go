// Package gittest builds real Git repositories on disk and serves them over
// smart HTTP (git http-backend behind net/http/cgi) on 127.0.0.1, so tests of
// code that fetches Git sources exercise the real git client and protocol.
//
// Helpers take a testing.TB and fail the test (with git's output) on error;
// call them from the test's goroutine.
package gittest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const (
	authorName  = "gittest"
	authorEmail = "gittest@example.com"
	// baseTime is the Unix time of a repository's first commit; each later
	// commit or tag is one minute later, so object SHAs are reproducible.
	baseTime = 1704067200 // 2024-01-01T00:00:00Z
)

// Repo is a non-bare Git repository in a test's temporary directory. Commits
// go to the branch checked out when it was created, "main".
type Repo struct {
	// Dir is the repository's work tree.
	Dir string

	// ticks counts commits and tags made so far; it drives their dates.
	ticks int
}

// NewRepo creates a repository holding files (slash-separated path → content)
// in one initial commit. The repository allows fetching any commit by SHA, as
// GitHub and GitLab do, and accepts pushes to its checked-out branch.
func NewRepo(t testing.TB, files map[string]string) *Repo {
	t.Helper()
	r := &Repo{Dir: t.TempDir()}
	r.git(t, "init", "-q", "--template=", "-b", "main", ".")
	for _, kv := range [][2]string{
		{"uploadpack.allowAnySHA1InWant", "true"},
		{"uploadpack.allowReachableSHA1InWant", "true"},
		{"uploadpack.allowTipSHA1InWant", "true"},
		{"http.uploadpack", "true"},
		{"http.receivepack", "true"},
		{"receive.denyCurrentBranch", "updateInstead"},
		{"core.hooksPath", os.DevNull},
	} {
		r.git(t, "config", kv[0], kv[1])
	}
	r.Commit(t, files, "initial commit")
	return r
}

// Commit writes files (slash-separated path → content; "" deletes the file),
// commits all changes with message msg and returns the new commit's SHA.
func (r *Repo) Commit(t testing.TB, files map[string]string, msg string) string {
	t.Helper()
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		p := r.path(t, name)
		if files[name] == "" {
			if err := os.Remove(p); err != nil {
				t.Fatalf("gittest: delete %s: %v", name, err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatalf("gittest: %v", err)
		}
		if err := os.WriteFile(p, []byte(files[name]), 0o644); err != nil {
			t.Fatalf("gittest: %v", err)
		}
	}
	r.git(t, "add", "-A")
	r.git(t, "commit", "-q", "--allow-empty", "--no-verify", "-m", msg)
	return r.Head(t)
}

// Tag creates an annotated tag name at HEAD.
func (r *Repo) Tag(t testing.TB, name string) {
	t.Helper()
	r.git(t, "tag", "-a", "-m", "tag "+name, "--", name)
}

// Branch creates branch name at HEAD without switching to it.
func (r *Repo) Branch(t testing.TB, name string) {
	t.Helper()
	r.git(t, "branch", "--", name)
}

// Checkout checks out rev detached, so that the next commits branch from
// it (another pull request's head off the same base).
func (r *Repo) Checkout(t testing.TB, rev string) {
	t.Helper()
	r.git(t, "checkout", "-q", "--detach", rev)
}

// Head returns the SHA of the commit checked out.
func (r *Repo) Head(t testing.TB) string {
	t.Helper()
	return r.run(t, "rev-parse", "--verify", "HEAD^{commit}")
}

// Resolve returns the commit ref (a branch, tag or SHA) names, and whether
// it names one; it does not fail the test for a ref that does not exist.
// It only reads the repository, so a forge fake may call it from its
// handlers' goroutines: pass it as their branch resolver,
//
//	fake.SetBranchResolver(func(_, branch string) (string, bool) { return repo.Resolve(t, branch) })
//
// When git itself fails otherwise, the test is marked failed (t.Errorf,
// not t.Fatal, which must run on the test's goroutine) and ok is false.
func (r *Repo) Resolve(t testing.TB, ref string) (sha string, ok bool) {
	t.Helper()
	if ref == "" || strings.HasPrefix(ref, "-") {
		return "", false
	}
	cmd := exec.CommandContext(t.Context(), "git", "rev-parse", "--verify", "--quiet", ref+"^{commit}")
	cmd.Dir = r.Dir
	cmd.Env = isolatedEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return strings.TrimSpace(stdout.String()), true
	case errors.As(err, &exit) && exit.ExitCode() == 1:
		return "", false // no such commit (or an object of another type)
	default:
		t.Errorf("gittest: git rev-parse --verify %s^{commit} (in %s): %v\n%s", ref, r.Dir, err, stderr.String())
		return "", false
	}
}

// path maps a slash-separated file name to a path inside the work tree,
// refusing names that would leave it or touch .git.
func (r *Repo) path(t testing.TB, name string) string {
	t.Helper()
	p := filepath.FromSlash(name)
	first, _, _ := strings.Cut(name, "/")
	if !filepath.IsLocal(p) || first == ".git" {
		t.Fatalf("gittest: file name %q must be a relative path inside the repository", name)
	}
	return filepath.Join(r.Dir, p)
}

// git runs a git command that changes the repository, with the author,
// committer and date fixed so that the same steps give the same SHAs.
func (r *Repo) git(t testing.TB, args ...string) {
	t.Helper()
	r.ticks++
	date := fmt.Sprintf("@%d +0000", baseTime+60*(r.ticks-1))
	runGit(t, r.Dir, []string{
		"GIT_AUTHOR_NAME=" + authorName,
		"GIT_AUTHOR_EMAIL=" + authorEmail,
		"GIT_AUTHOR_DATE=" + date,
		"GIT_COMMITTER_NAME=" + authorName,
		"GIT_COMMITTER_EMAIL=" + authorEmail,
		"GIT_COMMITTER_DATE=" + date,
	}, args...)
}

// run runs a read-only git command and returns its trimmed standard output.
func (r *Repo) run(t testing.TB, args ...string) string {
	t.Helper()
	return runGit(t, r.Dir, nil, args...)
}

// runGit runs git with argv only (no shell), isolated from the user's and the
// system's Git configuration, and fails the test with git's output on error.
func runGit(t testing.TB, dir string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "git", args...)
	cmd.Dir = dir
	cmd.Env = append(isolatedEnv(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("gittest: git %s (in %s): %v\n%s%s", strings.Join(args, " "), dir, err, stdout.String(), stderr.String())
	}
	return strings.TrimSpace(stdout.String())
}

// isolatedEnv is the process environment without GIT_* variables, with the
// global and system Git configuration turned off and prompts disabled.
func isolatedEnv() []string {
	env := make([]string, 0, len(os.Environ())+4)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GIT_") {
			env = append(env, kv)
		}
	}
	return append(env,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL="+os.DevNull,
		"GIT_TERMINAL_PROMPT=0",
		"LC_ALL=C",
	)
}
