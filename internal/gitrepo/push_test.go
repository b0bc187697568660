package gitrepo_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/storage/memory"
	"github.com/google/go-cmp/cmp"

	"github.com/kubectl-gitops/kubectl-gitops/internal/gitrepo"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/gittest"
)

const (
	pushUser  = "bot"
	pushToken = "push-token"
)

// pushFixture is a served repository the bot may push to, with basic auth
// and object checks on receive (receive.fsckObjects, as GitHub does). Its
// base commit holds:
//
//	app.yaml                 "image: app:1"
//	bin/run.sh               executable
//	deploy/old.yaml
//	deploy/prod/values.yaml  "tag: 1"
//	link                     symbolic link to deploy
type pushFixture struct {
	repo *gittest.Repo
	srv  *gittest.Server
	url  string
	base string
}

func newPushFixture(t *testing.T, opts ...gittest.Option) pushFixture {
	t.Helper()
	repo := gittest.NewRepo(t, map[string]string{
		"app.yaml":                "image: app:1\n",
		"bin/run.sh":              "#!/bin/sh\necho 1\n",
		"deploy/old.yaml":         "old: true\n",
		"deploy/prod/values.yaml": "tag: 1\n",
	})
	if err := os.Chmod(filepath.Join(repo.Dir, "bin", "run.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("deploy", filepath.Join(repo.Dir, "link")); err != nil {
		t.Fatal(err)
	}
	base := repo.Commit(t, nil, "exec bit and link")
	gitOut(t, repo.Dir, "config", "receive.fsckObjects", "true")
	if len(opts) == 0 {
		opts = []gittest.Option{gittest.WithBasicAuth(pushUser, pushToken)}
	}
	srv := gittest.Serve(t, map[string]*gittest.Repo{"org/app": repo}, opts...)
	return pushFixture{repo: repo, srv: srv, url: srv.URL("org/app"), base: base}
}

// newPusher returns a Pusher with the fixture's credentials.
func newPusher() *gitrepo.Pusher {
	return &gitrepo.Pusher{Auth: func(string) (string, string, bool) { return pushUser, pushToken, true }}
}

// change is a valid change to branch: one file updated.
func (fx pushFixture) change(branch string) gitrepo.Change {
	return gitrepo.Change{
		URL:     fx.url,
		Base:    fx.base,
		Files:   map[string][]byte{"deploy/prod/values.yaml": []byte("tag: 2\n")},
		Message: "Update app to 2",
		Author: gitrepo.Signature{
			Name:  "Image Bot",
			Email: "bot@example.com",
			When:  time.Date(2024, 6, 1, 12, 0, 0, 0, time.FixedZone("", 2*60*60)),
		},
		Branch: branch,
	}
}

// head returns what branch points at in the served repository, or "".
func (fx pushFixture) head(t *testing.T, branch string) string {
	t.Helper()
	return gitOut(t, fx.repo.Dir, "for-each-ref", "--format=%(objectname)", "refs/heads/"+branch)
}

// setHook installs a pre-receive hook script in the served repository.
func (fx pushFixture) setHook(t *testing.T, script string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pre-receive"), []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	gitOut(t, fx.repo.Dir, "config", "core.hooksPath", dir)
}

// gitRaw runs a read-only git command in dir and returns its output as is
// (a commit object's last newline is part of it).
func gitRaw(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+os.DevNull)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %s: %v", strings.Join(args, " "), err)
	}
	return string(out)
}

// files returns the tree of rev: path → mode and content.
func files(t *testing.T, dir, rev string) map[string]string {
	t.Helper()
	got := map[string]string{}
	for entry := range strings.SplitSeq(strings.TrimSuffix(gitRaw(t, dir, "ls-tree", "-r", "-z", rev), "\x00"), "\x00") {
		meta, path, _ := strings.Cut(entry, "\t")
		f := strings.Fields(meta) // mode, type, object
		got[path] = f[0] + " " + gitRaw(t, dir, "cat-file", "blob", f[2])
	}
	return got
}

// packRecorder is a proxy in front of a Git server that keeps the bodies of
// the POST requests it forwards.
type packRecorder struct {
	url    string
	mu     sync.Mutex
	bodies map[string][][]byte // by path suffix: git-upload-pack, git-receive-pack
}

func newPackRecorder(t *testing.T, target string) *packRecorder {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rec := &packRecorder{bodies: map[string][][]byte{}}
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: u.Scheme, Host: u.Host})
	srv, _ := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				t.Error(err)
			}
			rec.mu.Lock()
			rec.bodies[filepath.Base(r.URL.Path)] = append(rec.bodies[filepath.Base(r.URL.Path)], body)
			rec.mu.Unlock()
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		proxy.ServeHTTP(w, r)
	}))
	rec.url = srv.URL + u.Path
	return rec
}

// pushed returns the objects of the pack of the only push, sorted.
func (rec *packRecorder) pushed(t *testing.T) []string {
	t.Helper()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if n := len(rec.bodies["git-receive-pack"]); n != 1 {
		t.Fatalf("%d pushes, want 1", n)
	}
	body := rec.bodies["git-receive-pack"][0]
	i := bytes.Index(body, []byte("PACK"))
	if i < 0 {
		t.Fatal("the push has no pack")
	}
	st := memory.NewStorage()
	if err := packfile.UpdateObjectStorage(st, bytes.NewReader(body[i:])); err != nil {
		t.Fatal(err)
	}
	var got []string
	for h, obj := range st.Objects {
		got = append(got, obj.Type().String()+" "+h.String())
	}
	slices.Sort(got)
	return got
}

// newObjects returns the objects of rev that base lacks, as git lists them.
func newObjects(t *testing.T, dir, rev, base string) []string {
	t.Helper()
	var want []string
	for line := range strings.SplitSeq(gitOut(t, dir, "rev-list", "--objects", rev, "^"+base), "\n") {
		h, _, _ := strings.Cut(line, " ")
		want = append(want, gitOut(t, dir, "cat-file", "-t", h)+" "+h)
	}
	slices.Sort(want)
	return want
}

// TestPushNewBranch pushes a change to a new branch and checks with git that
// the branch's tree is the base's plus the change, the commit's fields, and
// that the pack held exactly the new objects, with the base fetched whole
// and without blobs (uploadpack.allowFilter).
func TestPushNewBranch(t *testing.T) {
	for _, tc := range []struct {
		name   string
		filter bool
	}{
		{name: "full fetch"},
		{name: "blob-less fetch", filter: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newPushFixture(t)
			if tc.filter {
				gitOut(t, fx.repo.Dir, "config", "uploadpack.allowFilter", "true")
			}
			rec := newPackRecorder(t, fx.url)
			c := fx.change("bot/update")
			c.URL = rec.url
			c.Files = map[string][]byte{
				"deploy/prod/values.yaml":        []byte("tag: 2\n"),
				"deploy/staging/new/values.yaml": []byte("tag: 3\n"),
				"deploy/old.yaml":                nil,
				"bin/run.sh":                     []byte("#!/bin/sh\necho 2\n"),
				"missing.yaml":                   nil,
				"empty":                          {},
				// Git sorts a folder as if its name ended in "/".
				"deploy.yaml":     []byte("a\n"),
				"deploy-a/x.yaml": []byte("b\n"),
				"deploy0":         []byte("c\n"),
			}
			sha, err := newPusher().Push(t.Context(), c)
			if err != nil {
				t.Fatal(err)
			}
			if got := fx.head(t, "bot/update"); got != sha {
				t.Errorf("branch is at %q, Push returned %s", got, sha)
			}

			want := files(t, fx.repo.Dir, fx.base)
			want["deploy/prod/values.yaml"] = "100644 tag: 2\n"
			want["deploy/staging/new/values.yaml"] = "100644 tag: 3\n"
			want["bin/run.sh"] = "100755 #!/bin/sh\necho 2\n"
			want["empty"] = "100644 "
			want["deploy.yaml"] = "100644 a\n"
			want["deploy-a/x.yaml"] = "100644 b\n"
			want["deploy0"] = "100644 c\n"
			delete(want, "deploy/old.yaml")
			if diff := cmp.Diff(want, files(t, fx.repo.Dir, sha)); diff != "" {
				t.Errorf("tree (-want +got):\n%s", diff)
			}

			when := fmt.Sprintf("%d +0200", c.Author.When.Unix())
			wantCommit := "tree " + gitOut(t, fx.repo.Dir, "rev-parse", sha+"^{tree}") + "\n" +
				"parent " + fx.base + "\n" +
				"author Image Bot <bot@example.com> " + when + "\n" +
				"committer Image Bot <bot@example.com> " + when + "\n" +
				"\n" +
				"Update app to 2\n"
			if diff := cmp.Diff(wantCommit, gitRaw(t, fx.repo.Dir, "cat-file", "commit", sha)); diff != "" {
				t.Errorf("commit (-want +got):\n%s", diff)
			}
			gitOut(t, fx.repo.Dir, "fsck", "--strict", "--no-dangling")

			if diff := cmp.Diff(newObjects(t, fx.repo.Dir, sha, fx.base), rec.pushed(t)); diff != "" {
				t.Errorf("pushed objects (-want +got):\n%s", diff)
			}
			var filtered bool
			for _, body := range rec.bodies["git-upload-pack"] {
				filtered = filtered || bytes.Contains(body, []byte("filter blob:none"))
			}
			if filtered != tc.filter {
				t.Errorf("base fetched with filter blob:none: %v, want %v", filtered, tc.filter)
			}

			// The same change gives the same commit.
			c.Branch = "bot/again"
			again, err := newPusher().Push(t.Context(), c)
			if err != nil || again != sha {
				t.Errorf("second push of the same change = %s, %v; want %s", again, err, sha)
			}
		})
	}
}

// TestPushForceUpdate: a push with Expect at the branch's commit replaces
// it with a new commit on the base, dropping the old one.
func TestPushForceUpdate(t *testing.T) {
	fx := newPushFixture(t)
	p := newPusher()
	first, err := p.Push(t.Context(), fx.change("bot/update"))
	if err != nil {
		t.Fatal(err)
	}
	c := fx.change("bot/update")
	c.Files = map[string][]byte{"app.yaml": []byte("image: app:3\n")}
	c.Message = "Update app to 3"
	c.Expect = strings.ToUpper(first)
	second, err := p.Push(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	if second == first || fx.head(t, "bot/update") != second {
		t.Fatalf("branch is at %s after pushes %s, %s", fx.head(t, "bot/update"), first, second)
	}
	if parent := gitOut(t, fx.repo.Dir, "rev-parse", second+"^"); parent != fx.base {
		t.Errorf("parent of the new commit = %s, want the base %s", parent, fx.base)
	}
	if got := gitOut(t, fx.repo.Dir, "show", second+":deploy/prod/values.yaml"); got != "tag: 1" {
		t.Errorf("the new commit kept the first push's change: values.yaml = %q", got)
	}

	// A retry of a push whose answer was lost finds its commit in place.
	again, err := p.Push(t.Context(), c)
	if err != nil || again != second {
		t.Errorf("retried push = %s, %v; want %s", again, err, second)
	}
}

// TestPushBranchMoved: a branch that is not at Expect is left alone, and
// the error says where it is.
func TestPushBranchMoved(t *testing.T) {
	const stale = "0123456789abcdef0123456789abcdef01234567"
	for _, tc := range []struct {
		name     string
		exists   bool
		expect   string
		wantText string
	}{
		{name: "exists, expected absent", exists: true, wantText: "is at {base}, but the bot expected it not to exist"},
		{name: "someone else pushed", exists: true, expect: stale, wantText: "is at {base}, but the bot expected it at " + stale},
		{name: "deleted", expect: stale, wantText: "does not exist, but the bot expected it at " + stale},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newPushFixture(t)
			if tc.exists {
				fx.repo.Branch(t, "bot/update")
			}
			before := fx.head(t, "bot/update")
			c := fx.change("bot/update")
			c.Expect = tc.expect
			_, err := newPusher().Push(t.Context(), c)
			if !errors.Is(err, gitrepo.ErrBranchMoved) {
				t.Fatalf("Push = %v, want ErrBranchMoved", err)
			}
			want := "bot/update " + strings.ReplaceAll(tc.wantText, "{base}", fx.base)
			if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), fx.url) {
				t.Errorf("error %q does not name the repository and say %q", err, want)
			}
			if after := fx.head(t, "bot/update"); after != before {
				t.Errorf("branch moved from %q to %q", before, after)
			}
		})
	}
}

// TestPushHooks: a ref update the server refuses is an error with the
// server's reason and its hook's message; when another push moved the
// branch meanwhile (the server compares the old value itself), the error is
// ErrBranchMoved.
func TestPushHooks(t *testing.T) {
	for _, tc := range []struct {
		name      string
		hook      string
		wantMoved bool
		want      []string
	}{
		{
			name: "protected branch",
			hook: "echo 'GH006: Protected branch update failed for refs/heads/bot/update.' >&2\nexit 1\n",
			want: []string{
				"the server refused to update refs/heads/bot/update: pre-receive hook declined",
				"the server said: GH006: Protected branch update failed",
				"no branch protection or hook forbids the update",
			},
		},
		{
			name:      "lost race",
			hook:      "unset GIT_QUARANTINE_PATH\ngit update-ref refs/heads/bot/update HEAD\n",
			wantMoved: true,
			want:      []string{"bot/update is at {base}, but the bot expected it not to exist"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newPushFixture(t)
			fx.setHook(t, tc.hook)
			_, err := newPusher().Push(t.Context(), fx.change("bot/update"))
			if err == nil {
				t.Fatal("Push succeeded")
			}
			if got := errors.Is(err, gitrepo.ErrBranchMoved); got != tc.wantMoved {
				t.Errorf("errors.Is(ErrBranchMoved) = %v, want %v: %v", got, tc.wantMoved, err)
			}
			for _, w := range tc.want {
				if w = strings.ReplaceAll(w, "{base}", fx.base); !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// TestBranchHead reads branches, present and absent ("bot" is only a
// prefix of a branch).
func TestBranchHead(t *testing.T) {
	fx := newPushFixture(t)
	fx.repo.Branch(t, "bot/update")
	for branch, want := range map[string]string{"bot/update": fx.base, "main": fx.base, "bot/none": "", "bot": ""} {
		got, err := newPusher().BranchHead(t.Context(), fx.url, branch)
		if err != nil || got != want {
			t.Errorf("BranchHead(%s) = %q, %v; want %q", branch, got, err, want)
		}
	}
}

// TestDeleteBranch deletes a branch only at the expected commit; an absent
// branch is already deleted.
func TestDeleteBranch(t *testing.T) {
	const stale = "0123456789abcdef0123456789abcdef01234567"
	for _, tc := range []struct {
		name      string
		exists    bool
		expect    string // "base": the branch's commit
		wantMoved bool
	}{
		{name: "at expect", exists: true, expect: "base"},
		{name: "absent", expect: stale},
		{name: "absent, expected absent"},
		{name: "moved", exists: true, expect: stale, wantMoved: true},
		{name: "exists, expected absent", exists: true, wantMoved: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newPushFixture(t)
			if tc.exists {
				fx.repo.Branch(t, "bot/update")
			}
			expect := tc.expect
			if expect == "base" {
				expect = fx.base
			}
			err := newPusher().DeleteBranch(t.Context(), fx.url, "bot/update", expect)
			if tc.wantMoved {
				if !errors.Is(err, gitrepo.ErrBranchMoved) || !strings.Contains(err.Error(), "bot/update is at "+fx.base) {
					t.Errorf("DeleteBranch = %v, want ErrBranchMoved saying where the branch is", err)
				}
				if fx.head(t, "bot/update") != fx.base {
					t.Error("the moved branch was deleted")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := fx.head(t, "bot/update"); got != "" {
				t.Errorf("branch still at %s", got)
			}
		})
	}
}

// TestPushRefusals: invalid changes fail before any request.
func TestPushRefusals(t *testing.T) {
	fx := newPushFixture(t)
	for _, tc := range []struct {
		name   string
		modify func(*gitrepo.Change)
		want   string
	}{
		{"empty branch", func(c *gitrepo.Change) { c.Branch = "" }, "the branch is empty"},
		{"full ref", func(c *gitrepo.Change) { c.Branch = "refs/heads/bot" }, "without refs/heads/"},
		{"option", func(c *gitrepo.Change) { c.Branch = "-f" }, "not a valid Git branch name"},
		{"dot-dot branch", func(c *gitrepo.Change) { c.Branch = "bot/..x" }, "not a valid Git branch name"},
		{"dot component", func(c *gitrepo.Change) { c.Branch = "bot/.x" }, "not a valid Git branch name"},
		{"lock component", func(c *gitrepo.Change) { c.Branch = "bot.lock/x" }, "not a valid Git branch name"},
		{"HEAD", func(c *gitrepo.Change) { c.Branch = "HEAD" }, "not a valid Git branch name"},
		{"space", func(c *gitrepo.Change) { c.Branch = "bot x" }, "not a valid Git branch name"},
		{"short base", func(c *gitrepo.Change) { c.Base = c.Base[:12] }, "is not a full commit SHA"},
		{"named base", func(c *gitrepo.Change) { c.Base = "main" }, "set Change.Base"},
		{"short expect", func(c *gitrepo.Change) { c.Expect = "abc" }, "set Change.Expect"},
		{"empty message", func(c *gitrepo.Change) { c.Message = " \n" }, "set Change.Message"},
		{"no author", func(c *gitrepo.Change) { c.Author.Name = "" }, "the author's name is empty"},
		{"header in name", func(c *gitrepo.Change) { c.Author.Name = "Bot\ngpgsig x" }, "control character"},
		{"angle in email", func(c *gitrepo.Change) { c.Author.Email = "a>b" }, "contains '<', '>'"},
		{"no time", func(c *gitrepo.Change) { c.Author.When = time.Time{} }, "set Change.Author.When"},
		{"file URL", func(c *gitrepo.Change) { c.URL = "file://" + fx.repo.Dir }, "uses file://, which is not allowed"},
		{"option URL", func(c *gitrepo.Change) { c.URL = "--receive-pack=touch /tmp/pwned" }, "would be read as a git option"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fx.change("bot/update")
			tc.modify(&c)
			assertRefused(t, fx, c, tc.want)
		})
	}
	for _, path := range []string{
		"", "/etc/passwd", "../x", "a/../../x", "./a", "a/./b", "a//b", "a/", ".git/config",
		"a/.GIT/hooks/x", ".git./x", "GIT~1/config", "a/.g\u200cit/x", `a\b`, "a\nb",
	} {
		t.Run(fmt.Sprintf("path %q", path), func(t *testing.T) {
			c := fx.change("bot/update")
			c.Files[path] = []byte("x")
			assertRefused(t, fx, c, "use a slash-separated path inside the repository")
		})
	}
}

// assertRefused checks that pushing c fails with want, without a request.
func assertRefused(t *testing.T, fx pushFixture, c gitrepo.Change, want string) {
	t.Helper()
	before := fx.srv.Requests()
	_, err := newPusher().Push(t.Context(), c)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Push = %v, want an error containing %q", err, want)
	}
	if n := fx.srv.Requests() - before; n != 0 {
		t.Errorf("refused push made %d requests", n)
	}
}

// TestPushTreeRefusals: changes that don't fit the base's tree fail after
// reading it, and push nothing.
func TestPushTreeRefusals(t *testing.T) {
	fx := newPushFixture(t)
	for _, tc := range []struct {
		name  string
		files map[string][]byte
		want  string
	}{
		{"through a symbolic link", map[string][]byte{"link/prod/values.yaml": []byte("x")}, "file link/prod/values.yaml runs through link, a symbolic link"},
		{"onto a symbolic link", map[string][]byte{"link": []byte("x")}, "path link is a symbolic link"},
		{"onto a folder", map[string][]byte{"deploy/prod": []byte("x")}, "path deploy/prod is a folder; write files inside it instead"},
		{"below a file", map[string][]byte{"app.yaml/x": []byte("x")}, "file app.yaml/x needs a folder app.yaml, but that is a file"},
		{"delete a folder", map[string][]byte{"deploy": nil}, "path deploy is a folder; list the files in it to delete them"},
		{"file and folder", map[string][]byte{"new": []byte("x"), "new/x": []byte("x")}, "file new/x needs a folder new, but that is a file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := fx.change("bot/update")
			c.Files = tc.files
			_, err := newPusher().Push(t.Context(), c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Push = %v, want an error containing %q", err, tc.want)
			}
			if got := fx.head(t, "bot/update"); got != "" {
				t.Errorf("branch created at %s", got)
			}
		})
	}

	t.Run("base not on the remote", func(t *testing.T) {
		c := fx.change("bot/update")
		c.Base = "0123456789abcdef0123456789abcdef01234567"
		_, err := newPusher().Push(t.Context(), c)
		if err == nil || !strings.Contains(err.Error(), "fetch base commit "+c.Base) || !strings.Contains(err.Error(), "check that the commit exists") {
			t.Errorf("Push = %v, want an error saying the base commit is missing", err)
		}
	})
}

// TestPushFileOptIn pushes over file://, which go-git serves with the
// git-receive-pack program.
func TestPushFileOptIn(t *testing.T) {
	fx := newPushFixture(t)
	c := fx.change("bot/update")
	c.URL = "file://" + fx.repo.Dir
	sha, err := (&gitrepo.Pusher{AllowFile: true}).Push(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	if got := fx.head(t, "bot/update"); got != sha {
		t.Errorf("branch at %q, want %s", got, sha)
	}
}

// TestPushWrongCredentials: a server refusing the credentials fails every
// operation with an error that says to check them and never shows them.
func TestPushWrongCredentials(t *testing.T) {
	fx := newPushFixture(t)
	p := &gitrepo.Pusher{Auth: canaryAuth}
	_, pushErr := p.Push(t.Context(), fx.change("bot/update"))
	_, headErr := p.BranchHead(t.Context(), fx.url, "bot/update")
	for name, err := range map[string]error{
		"Push":         pushErr,
		"BranchHead":   headErr,
		"DeleteBranch": p.DeleteBranch(t.Context(), fx.url, "bot/update", fx.base),
	} {
		if err == nil {
			t.Errorf("%s with wrong credentials succeeded", name)
			continue
		}
		assertNoCanary(t, err.Error())
		if !strings.Contains(err.Error(), fx.url) || !strings.Contains(err.Error(), "check the credentials configured for this") {
			t.Errorf("%s: error does not name the repository and say to check the credentials: %v", name, err)
		}
	}
}

// TestPushNeverRevealsCredentials fails every step of a push in the ways a
// server can, some echoing what they received, and checks that no error
// shows the token, grows with what the server sends, or misses its hint.
func TestPushNeverRevealsCredentials(t *testing.T) {
	fx := newPushFixture(t, gittest.WithAuth(func(string, string) bool { return true }))
	target, _ := url.Parse(fx.url)
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: target.Scheme, Host: target.Host})
	echo := func(r *http.Request) string {
		_, pass, _ := r.BasicAuth()
		return fmt.Sprintf("you sent %q, password %q, url %s", r.Header.Get("Authorization"), pass, r.URL)
	}
	pkt := func(s string) string { return fmt.Sprintf("%04x%s", len(s)+4, s) }
	// receivePack answers receive-pack's requests with h; fetches reach the
	// real server.
	receivePack := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/git-receive-pack") || r.URL.Query().Get("service") == "git-receive-pack" {
				h(w, r)
				return
			}
			proxy.ServeHTTP(w, r)
		}
	}
	// report answers a push with a report-status on side band 1 and a
	// message on side band 2, after the real server's ref listing.
	report := func(status func(r *http.Request) string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet {
				proxy.ServeHTTP(w, r)
				return
			}
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/x-git-receive-pack-result")
			fmt.Fprint(w, pkt("\x02"+echo(r)+"\n")+pkt("\x01"+status(r)+"0000")+"0000")
		}
	}
	for _, tc := range []struct {
		name     string
		handler  http.HandlerFunc
		wantHint string
	}{
		{
			name: "wrong credentials",
			handler: func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "authentication required", http.StatusUnauthorized)
			},
			wantHint: "can read the repository",
		},
		{
			name:     "401 echoing on receive-pack",
			handler:  receivePack(func(w http.ResponseWriter, r *http.Request) { http.Error(w, echo(r), http.StatusUnauthorized) }),
			wantHint: "a token that can push to it",
		},
		{
			name:     "403 echoing on receive-pack",
			handler:  receivePack(func(w http.ResponseWriter, r *http.Request) { http.Error(w, echo(r), http.StatusForbidden) }),
			wantHint: "a token that can push to it",
		},
		{
			name: "500 huge on receive-pack",
			handler: receivePack(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusInternalServerError)
				for range 1 << 10 {
					fmt.Fprintln(w, echo(r), strings.Repeat("x", 1<<10))
				}
			}),
			wantHint: "retry",
		},
		{
			name: "pkt-line error echoing",
			handler: receivePack(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/x-git-receive-pack-advertisement")
				fmt.Fprint(w, pkt("ERR "+echo(r)))
			}),
			wantHint: "retry",
		},
		{
			name: "refusal echoing",
			handler: receivePack(report(func(r *http.Request) string {
				return pkt("unpack ok\n") + pkt("ng refs/heads/bot/update "+echo(r)+"\n")
			})),
			wantHint: "no branch protection or hook forbids the update",
		},
		{
			name: "unpack error echoing",
			handler: receivePack(report(func(r *http.Request) string {
				return pkt("unpack "+echo(r)+"\n") + pkt("ng refs/heads/bot/update unpacker error\n")
			})),
			wantHint: "check that the base commit is on the server",
		},
		{
			name: "endless report",
			handler: receivePack(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodGet {
					proxy.ServeHTTP(w, r)
					return
				}
				io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "application/x-git-receive-pack-result")
				line := pkt("\x01" + pkt("ok refs/heads/"+strings.Repeat("x", 60000)+"\n"))
				fmt.Fprint(w, pkt("\x01"+pkt("unpack ok\n")))
				for range 64 {
					if _, err := fmt.Fprint(w, line); err != nil {
						return
					}
				}
			}),
			wantHint: "retry",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := countingServer(t, tc.handler)
			c := fx.change("bot/update")
			c.URL = srv.URL + "/org/app"
			p := &gitrepo.Pusher{Auth: canaryAuth}
			_, err := p.Push(t.Context(), c)
			if err == nil {
				t.Fatal("Push succeeded")
			}
			msg := err.Error()
			assertNoCanary(t, msg)
			if !strings.Contains(msg, c.URL) || !strings.Contains(msg, tc.wantHint) {
				t.Errorf("error does not name the repository and say %q: %s", tc.wantHint, msg)
			}
			if len(msg) > 12<<10 {
				t.Errorf("error is %d bytes long", len(msg))
			}
			if strings.ContainsAny(msg, "\x00\r\x1b") {
				t.Errorf("error holds control characters: %q", msg)
			}
			if err := p.DeleteBranch(t.Context(), c.URL, "bot/update", fx.base); err != nil {
				assertNoCanary(t, err.Error())
			}
			if _, err := p.BranchHead(t.Context(), c.URL, "bot/update"); err != nil {
				assertNoCanary(t, err.Error())
			}
		})
	}
	if got := fx.head(t, "bot/update"); got != "" {
		t.Errorf("a failed push created the branch at %s", got)
	}
}
