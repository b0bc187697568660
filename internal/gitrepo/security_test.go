package gitrepo_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/gittest"
)

// canary is a credential no error may ever show.
const canary = "canary-t0ken-4e1d9b7c"

// canaryAuth hands out the canary as a GitHub-style token.
func canaryAuth(string) (string, string, bool) { return "x-access-token", canary, true }

// assertNoCanary fails if msg holds the canary in any form a client sends it.
func assertNoCanary(t *testing.T, msg string) {
	t.Helper()
	for _, secret := range []string{
		canary,
		base64.StdEncoding.EncodeToString([]byte("x-access-token:" + canary)),
		base64.StdEncoding.EncodeToString([]byte(canary)),
	} {
		if strings.Contains(msg, secret) {
			t.Errorf("error reveals the credential: %s", msg)
		}
	}
}

// gitOut runs git in dir, isolated from the user's configuration, and
// returns its trimmed output.
func gitOut(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+os.DevNull)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// countingServer serves h on 127.0.0.1 and counts its requests.
func countingServer(t *testing.T, h http.Handler) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// assertNoTempLeft fails if a fetch left anything in the cache.
func assertNoTempLeft(t *testing.T, cacheDir string) {
	t.Helper()
	var left []string
	filepath.WalkDir(cacheDir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if strings.Contains(p, ".tmp-") || !d.IsDir() {
			left = append(left, p)
		}
		return nil
	})
	if len(left) > 0 {
		t.Errorf("failed fetch left %q in the cache", left)
	}
}

// TestFetchRefusesTransports tries every way around the scheme allowlist;
// each must fail before any request and without running anything.
func TestFetchRefusesTransports(t *testing.T) {
	fx := newFixture(t)
	host := strings.TrimPrefix(fx.url, "http://")
	for _, tc := range []struct {
		name, url, want string
	}{
		{"git protocol", "git://" + host, `scheme "git"`},
		{"git protocol upper case", "GIT://" + host, `scheme "git"`},
		{"git protocol with credentials", "git://x-access-token:" + canary + "@" + host, `scheme "git"`},
		{"ext helper", "ext::sh -c touch% /tmp/pwned-gitrepo", "not allowed"},
		{"ext helper without space", "ext::/bin/touch", "remote helper"},
		{"fd helper", "fd::3", "remote helper"},
		{"transport helper with URL", "http::" + fx.url, "remote helper"},
		{"file URL", "file://" + fx.repo.Dir, "uses file://, which is not allowed"},
		{"file URL upper case", "FILE://" + fx.repo.Dir, "uses file://, which is not allowed"},
		{"file URL with host", "file://localhost" + fx.repo.Dir, "uses file://, which is not allowed"},
		{"local path", fx.repo.Dir, "is not a URL"},
		{"relative path", "./" + filepath.Base(fx.repo.Dir), "is not a URL"},
		{"ftp", "ftp://" + host, `scheme "ftp"`},
		{"unknown scheme", "gopher://" + host, `scheme "gopher"`},
		{"option", "--upload-pack=touch /tmp/pwned-gitrepo", "would be read as a git option"},
		{"leading space", " " + fx.url, "space or control character"},
		{"newline", fx.url + "\n" + fx.url, "space or control character"},
		{"password in URL", "http://x-access-token:" + canary + "@" + host, "has a password in the URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFetcher(t)
			f.Auth = canaryAuth
			before := fx.srv.Requests()
			_, err := f.Fetch(t.Context(), tc.url, "main")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Fetch(%q) = %v, want an error containing %q", tc.url, err, tc.want)
			}
			assertNoCanary(t, err.Error())
			if _, err := f.ResolveRef(t.Context(), tc.url, "main"); err == nil {
				t.Errorf("ResolveRef(%q) succeeded", tc.url)
			}
			if got := fx.srv.Requests() - before; got != 0 {
				t.Errorf("refused fetch made %d requests", got)
			}
			if _, err := os.Stat("/tmp/pwned-gitrepo"); err == nil {
				t.Error("/tmp/pwned-gitrepo exists")
			}
		})
	}
}

// TestFetchRefusesRedirects: a server on 127.0.0.1 redirects to another one
// that serves the repository. The redirect must be refused, not followed,
// whatever the status and whichever request it answers.
func TestFetchRefusesRedirects(t *testing.T) {
	fx := newFixture(t)
	target, _ := url.Parse(fx.url)
	for _, tc := range []struct {
		name   string
		status int
		// onlyPOST redirects the pack request only; the ref listing is
		// proxied to the real server.
		onlyPOST bool
		ref      string
	}{
		{name: "302 on refs", status: http.StatusFound, ref: "main"},
		{name: "301 on refs", status: http.StatusMovedPermanently, ref: "main"},
		{name: "303 on refs", status: http.StatusSeeOther, ref: "v1"},
		{name: "307 on refs", status: http.StatusTemporaryRedirect, ref: fx.first},
		{name: "308 on refs", status: http.StatusPermanentRedirect, ref: fx.first},
		{name: "302 on pack", status: http.StatusFound, onlyPOST: true, ref: "main"},
		{name: "307 on pack", status: http.StatusTemporaryRedirect, onlyPOST: true, ref: fx.first},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: target.Scheme, Host: target.Host})
			srv, _ := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.onlyPOST && r.Method == http.MethodGet {
					proxy.ServeHTTP(w, r)
					return
				}
				http.Redirect(w, r, fx.url+strings.TrimPrefix(r.URL.RequestURI(), "/org/app"), tc.status)
			}))
			before := fx.srv.Requests()
			f := newFetcher(t)
			f.Auth = func(string) (string, string, bool) { return "x-access-token", canary, true }
			_, err := f.Fetch(t.Context(), srv.URL+"/org/app", tc.ref)
			if err == nil {
				t.Fatal("fetch through a redirect succeeded")
			}
			if !strings.Contains(err.Error(), "redirect") || !strings.Contains(err.Error(), srv.URL) {
				t.Errorf("error does not name the source and say it redirected: %v", err)
			}
			assertNoCanary(t, err.Error())
			want := 0
			if tc.onlyPOST {
				want = 1 // the proxied ref listing
			}
			if got := fx.srv.Requests() - before; got != want {
				t.Errorf("redirect target got %d requests, want %d", got, want)
			}
			assertNoTempLeft(t, f.CacheDir)
		})
	}
}

// TestFetchRefusesCredentialsToRemoteHTTP: credentials for a plain-http URL
// of a host that is not this machine are refused before any connection. The
// listener is on a real interface, so a connection would be seen.
func TestFetchRefusesCredentialsToRemoteHTTP(t *testing.T) {
	ln, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepted atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	port := ln.Addr().(*net.TCPAddr).Port

	hosts := []string{"gitops-test.invalid"}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() {
				hosts = append(hosts, fmt.Sprintf("%s:%d", ipn.IP, port))
				break
			}
		}
	}
	for _, host := range hosts {
		for _, ref := range []string{"main", "0123456789abcdef0123456789abcdef01234567"} {
			t.Run(host+"/"+ref, func(t *testing.T) {
				f := newFetcher(t)
				f.Auth = canaryAuth
				_, err := f.Fetch(t.Context(), "http://"+host+"/org/app", ref)
				if err == nil || !strings.Contains(err.Error(), "refusing to send them unencrypted") {
					t.Errorf("Fetch = %v, want a refusal to send credentials over plain http", err)
				} else {
					assertNoCanary(t, err.Error())
				}
				if _, err := f.ResolveRef(t.Context(), "http://"+host+"/org/app", "main"); err == nil ||
					!strings.Contains(err.Error(), "refusing to send them unencrypted") {
					t.Errorf("ResolveRef = %v, want a refusal", err)
				}
			})
		}
	}
	if n := accepted.Load(); n != 0 {
		t.Errorf("%d connections were made", n)
	}
}

// TestFetchNeverRevealsCredentials makes servers fail in every way they can,
// some echoing what they received, and checks that no error shows the token
// and that no error grows with what the server sends.
func TestFetchNeverRevealsCredentials(t *testing.T) {
	fx := newFixture(t, gittest.WithBasicAuth("bot", "right-token"))
	target, _ := url.Parse(fx.url)
	echo := func(r *http.Request) string {
		_, pass, _ := r.BasicAuth()
		return fmt.Sprintf("you sent %q, password %q, url %s", r.Header.Get("Authorization"), pass, r.URL)
	}
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
	}{
		{"wrong credentials", httputil.NewSingleHostReverseProxy(&url.URL{Scheme: target.Scheme, Host: target.Host}).ServeHTTP},
		{"401 echoing", func(w http.ResponseWriter, r *http.Request) { http.Error(w, echo(r), http.StatusUnauthorized) }},
		{"403 echoing", func(w http.ResponseWriter, r *http.Request) { http.Error(w, echo(r), http.StatusForbidden) }},
		{"404 echoing", func(w http.ResponseWriter, r *http.Request) { http.Error(w, echo(r), http.StatusNotFound) }},
		{"500 echoing", func(w http.ResponseWriter, r *http.Request) { http.Error(w, echo(r), http.StatusInternalServerError) }},
		{"500 huge", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusInternalServerError)
			for range 1 << 10 {
				fmt.Fprintln(w, echo(r), strings.Repeat("x", 1<<10))
			}
		}},
		{"garbage refs echoing", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/x-git-upload-pack-advertisement")
			fmt.Fprint(w, echo(r))
		}},
		{"pkt-line error echoing", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/x-git-upload-pack-advertisement")
			msg := "ERR " + echo(r)
			fmt.Fprintf(w, "%04x%s", len(msg)+4, msg)
		}},
		{"redirect to credentials URL", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://x-access-token:"+canary+"@"+target.Host+r.URL.RequestURI(), http.StatusFound)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, _ := countingServer(t, tc.handler)
			u := srv.URL + "/org/app"
			for _, ref := range []string{"main", fx.first} {
				f := newFetcher(t)
				f.Auth = canaryAuth
				_, err := f.Fetch(t.Context(), u, ref)
				if err == nil {
					t.Fatalf("Fetch(%s) succeeded", ref)
				}
				msg := err.Error()
				assertNoCanary(t, msg)
				if !strings.Contains(msg, u) {
					t.Errorf("error does not name the source: %s", msg)
				}
				if len(msg) > 8<<10 {
					t.Errorf("error is %d bytes long", len(msg))
				}
				if strings.ContainsAny(msg, "\x00\r\x1b") {
					t.Errorf("error holds control characters: %q", msg)
				}
				assertNoTempLeft(t, f.CacheDir)
			}
		})
	}

	t.Run("ssh URL with password", func(t *testing.T) {
		t.Setenv("SSH_AUTH_SOCK", "")
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln.Close() // a port nobody listens on
		_, err = newFetcher(t).Fetch(t.Context(), "ssh://git:"+canary+"@"+ln.Addr().String()+"/org/app", "main")
		if err == nil {
			t.Fatal("fetch succeeded")
		}
		assertNoCanary(t, err.Error())
	})
}

// TestFetchRefusesNonCommits: a full SHA must name a commit. A tag object,
// a tree or a blob is fetched but never checked out or cached.
func TestFetchRefusesNonCommits(t *testing.T) {
	fx := newFixture(t)
	for _, tc := range []struct{ name, rev string }{
		{"tag object", "refs/tags/v1"},
		{"tree", fx.second + "^{tree}"},
		{"blob", fx.second + ":app.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sha := gitOut(t, fx.repo.Dir, "rev-parse", "--verify", tc.rev)
			f := newFetcher(t)
			co, err := f.Fetch(t.Context(), fx.url, sha)
			if err == nil {
				t.Fatalf("Fetch(%s) = %+v, want an error", sha, co)
			}
			if !strings.Contains(err.Error(), sha) || !strings.Contains(err.Error(), fx.url) {
				t.Errorf("error does not name the source and the SHA: %v", err)
			}
			if _, statErr := os.Stat(filepath.Join(f.CacheDir, sha[:2], sha)); !errors.Is(statErr, os.ErrNotExist) {
				t.Errorf("a cache entry was made for %s (stat: %v)", sha, statErr)
			}
			assertNoTempLeft(t, f.CacheDir)
			t.Log(err)
		})
	}
}

// TestFetchWithoutSHAWants: a server that allows no SHA wants (git's
// default) still serves tags and branches, annotated tags included, and a
// commit that no ref points at gets a clear refusal.
func TestFetchWithoutSHAWants(t *testing.T) {
	repo := gittest.NewRepo(t, map[string]string{"a": "1\n"})
	tagged := repo.Head(t)
	repo.Tag(t, "v1") // no branch points at this commit
	hidden := repo.Commit(t, map[string]string{"a": "2\n"}, "second")
	head := repo.Commit(t, map[string]string{"a": "3\n"}, "third")
	for _, key := range []string{"uploadpack.allowAnySHA1InWant", "uploadpack.allowReachableSHA1InWant", "uploadpack.allowTipSHA1InWant"} {
		gitOut(t, repo.Dir, "config", key, "false")
	}
	srv := gittest.Serve(t, map[string]*gittest.Repo{"app": repo})
	f := newFetcher(t)

	// A SHA that a ref points at, or an annotated tag peels to, is asked
	// for by that ref's object.
	for ref, want := range map[string]string{"v1": tagged, "refs/tags/v1": tagged, tagged: tagged, "main": head, head: head} {
		co, err := f.Fetch(t.Context(), srv.URL("app"), ref)
		if err != nil {
			t.Errorf("Fetch(%s): %v", ref, err)
		} else if co.Commit != want {
			t.Errorf("Fetch(%s) = %s, want %s", ref, co.Commit, want)
		}
	}
	_, err := newFetcher(t).Fetch(t.Context(), srv.URL("app"), hidden)
	if err == nil || !strings.Contains(err.Error(), "does not allow fetching a commit by its SHA") ||
		!strings.Contains(err.Error(), "use a branch or tag") {
		t.Errorf("Fetch of an unadvertised commit = %v, want a refusal to fetch by SHA", err)
	}
}

// TestFetchCanceledMidway: a server that stops sending halfway through the
// ref listing or the pack can't hold a fetch past its context.
func TestFetchCanceledMidway(t *testing.T) {
	fx := newFixture(t)
	target, _ := url.Parse(fx.url)
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: target.Scheme, Host: target.Host})
	for _, tc := range []struct {
		name  string
		stall string // the request method the server stalls on
		ref   string
	}{
		{"during ref listing", http.MethodGet, "main"},
		{"during pack", http.MethodPost, "main"},
		{"during pack by SHA", http.MethodPost, fx.first},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stalled := make(chan struct{}, 1)
			release := make(chan struct{})
			defer close(release)
			srv, _ := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != tc.stall {
					proxy.ServeHTTP(w, r)
					return
				}
				// Start a valid-looking response, then send nothing more.
				if r.Method == http.MethodGet {
					w.Header().Set("Content-Type", "application/x-git-upload-pack-advertisement")
					fmt.Fprint(w, "001e# service=git-upload-pack\n0000")
				} else {
					w.Header().Set("Content-Type", "application/x-git-upload-pack-result")
					fmt.Fprint(w, "0008NAK\n")
				}
				w.(http.Flusher).Flush()
				stalled <- struct{}{}
				select {
				case <-r.Context().Done():
				case <-release:
				}
			}))
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			go func() {
				select {
				case <-stalled:
					cancel()
				case <-ctx.Done():
				}
			}()
			f := newFetcher(t)
			start := time.Now()
			_, err := f.Fetch(ctx, srv.URL+"/org/app", tc.ref)
			if elapsed := time.Since(start); elapsed > 10*time.Second {
				t.Errorf("Fetch returned %v after the cancel", elapsed)
			}
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Fetch = %v, want context.Canceled", err)
			}
			assertNoTempLeft(t, f.CacheDir)
		})
	}
}

// TestFetchWithoutGitBinary: the bot's image has no git. The test server
// needs one, so it starts first; then PATH holds nothing at all.
func TestFetchWithoutGitBinary(t *testing.T) {
	fx := newFixture(t)
	t.Setenv("PATH", t.TempDir())
	if p, err := exec.LookPath("git"); err == nil {
		t.Fatalf("git is still on PATH at %s", p)
	}
	for _, ref := range []string{"main", "v1", fx.first} {
		f := newFetcher(t)
		co, err := f.Fetch(t.Context(), fx.url, ref)
		if err != nil {
			t.Fatalf("Fetch(%s) without git: %v", ref, err)
		}
		if _, err := os.Stat(filepath.Join(co.Dir, "app.yaml")); err != nil {
			t.Errorf("Fetch(%s): %v", ref, err)
		}
	}
	if _, err := newFetcher(t).ResolveRef(t.Context(), fx.url, "v1"); err != nil {
		t.Errorf("ResolveRef without git: %v", err)
	}
}

// TestFetchHints checks that each failure names the source and says what
// to do.
func TestFetchHints(t *testing.T) {
	fx := newFixture(t, gittest.WithBasicAuth("bot", "right-token"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/org/app"
	ln.Close()
	right := func(string) (string, string, bool) { return "bot", "right-token", true }
	for _, tc := range []struct {
		name, url, ref string
		auth           func(string) (string, string, bool)
		want           string
	}{
		{"no credentials", fx.url, "main", nil, "check the credentials configured for this source"},
		{"wrong credentials", fx.url, fx.first, canaryAuth, "check the credentials configured for this source"},
		{"missing repository", strings.TrimSuffix(fx.url, "app") + "missing", "main", right, "check the URL and that the credentials for this source can read the repository"},
		{"unknown commit", fx.url, "0123456789abcdef0123456789abcdef01234567", right, "check that the commit exists"},
		{"nobody listening", closed, "main", nil, "check the URL and that this host can reach the Git server"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFetcher(t)
			f.Auth = tc.auth
			_, err := f.Fetch(t.Context(), tc.url, tc.ref)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.url) {
				t.Errorf("Fetch = %v, want an error naming the source and containing %q", err, tc.want)
			}
		})
	}
}

// TestFetchTreeShape: the checkout is the commit's tree as git would write
// it: executable bits, symlinks (kept as links, whatever they point at) and
// nested directories; a submodule is never fetched.
func TestFetchTreeShape(t *testing.T) {
	repo := gittest.NewRepo(t, map[string]string{"dir/sub/a.yaml": "a: 1\n", "run.sh": "#!/bin/sh\n"})
	if err := os.Chmod(filepath.Join(repo.Dir, "run.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{"rel": "dir/sub/a.yaml", "abs": "/etc/passwd", "up": "../../outside"} {
		if err := os.Symlink(target, filepath.Join(repo.Dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	other := gittest.NewRepo(t, map[string]string{"x": "1\n"})
	gitOut(t, repo.Dir, "update-index", "--add", "--cacheinfo", "160000,"+other.Head(t)+",module")
	sha := repo.Commit(t, map[string]string{"b.yaml": "b: 1\n"}, "shape")
	srv := gittest.Serve(t, map[string]*gittest.Repo{"app": repo})

	co, err := newFetcher(t).Fetch(t.Context(), srv.URL("app"), "main")
	if err != nil {
		t.Fatal(err)
	}
	if co.Commit != sha {
		t.Fatalf("Commit = %s, want %s", co.Commit, sha)
	}
	if got := readFile(t, co, "dir/sub/a.yaml"); got != "a: 1\n" {
		t.Errorf("dir/sub/a.yaml = %q", got)
	}
	if fi, err := os.Stat(filepath.Join(co.Dir, "run.sh")); err != nil || fi.Mode().Perm()&0o100 == 0 {
		t.Errorf("run.sh is not executable: %v, %v", fi, err)
	}
	if fi, err := os.Stat(filepath.Join(co.Dir, "b.yaml")); err != nil || fi.Mode().Perm()&0o100 != 0 {
		t.Errorf("b.yaml is executable: %v, %v", fi, err)
	}
	for link, target := range map[string]string{"rel": "dir/sub/a.yaml", "abs": "/etc/passwd", "up": "../../outside"} {
		if got, err := os.Readlink(filepath.Join(co.Dir, link)); err != nil || got != target {
			t.Errorf("link %s -> %q, %v; want -> %q", link, got, err, target)
		}
	}
	// git leaves an empty directory, go-git none.
	if entries, err := os.ReadDir(filepath.Join(co.Dir, "module")); len(entries) != 0 || err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Errorf("submodule directory holds %v, %v; want nothing", entries, err)
	}
}
