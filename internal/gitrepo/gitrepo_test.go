package gitrepo_test

import (
	"context"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/kubectl-gitops/kubectl-gitops/internal/gitrepo"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/gittest"
)

// fixture is one served repository with history:
//
//	first  (tag v1, branch release)  app.yaml "version: 1"
//	second (branch main)             app.yaml "version: 2", extra.yaml
type fixture struct {
	repo          *gittest.Repo
	srv           *gittest.Server
	url           string
	first, second string
}

func newFixture(t *testing.T, opts ...gittest.Option) fixture {
	t.Helper()
	repo := gittest.NewRepo(t, map[string]string{"app.yaml": "version: 1\n"})
	first := repo.Head(t)
	repo.Tag(t, "v1")
	repo.Branch(t, "release")
	second := repo.Commit(t, map[string]string{"app.yaml": "version: 2\n", "extra.yaml": "x: 1\n"}, "second")
	srv := gittest.Serve(t, map[string]*gittest.Repo{"org/app": repo}, opts...)
	return fixture{repo: repo, srv: srv, url: srv.URL("org/app"), first: first, second: second}
}

func newFetcher(t *testing.T) *gitrepo.Fetcher {
	return &gitrepo.Fetcher{CacheDir: t.TempDir()}
}

func readFile(t *testing.T, co gitrepo.Checkout, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(co.Dir, name))
	if err != nil {
		t.Fatalf("checkout %s: %v", co.Commit, err)
	}
	return string(b)
}

func TestFetchRefs(t *testing.T) {
	fx := newFixture(t)
	for _, tc := range []struct {
		ref, want, content string
	}{
		{ref: "v1", want: fx.first, content: "version: 1\n"},
		{ref: "refs/tags/v1", want: fx.first, content: "version: 1\n"},
		{ref: "release", want: fx.first, content: "version: 1\n"},
		{ref: "main", want: fx.second, content: "version: 2\n"},
		{ref: "refs/heads/main", want: fx.second, content: "version: 2\n"},
		{ref: "HEAD", want: fx.second, content: "version: 2\n"},
		{ref: fx.first, want: fx.first, content: "version: 1\n"},
		{ref: strings.ToUpper(fx.second), want: fx.second, content: "version: 2\n"},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			f := newFetcher(t)
			co, err := f.Fetch(t.Context(), fx.url, tc.ref)
			if err != nil {
				t.Fatal(err)
			}
			if co.Commit != tc.want {
				t.Errorf("Commit = %s, want %s", co.Commit, tc.want)
			}
			if got := readFile(t, co, "app.yaml"); got != tc.content {
				t.Errorf("app.yaml = %q, want %q", got, tc.content)
			}
			if _, err := os.Stat(filepath.Join(co.Dir, ".git")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("checkout has .git (stat: %v)", err)
			}
			if want := filepath.Join(f.CacheDir, tc.want[:2], tc.want); co.Dir != want {
				t.Errorf("Dir = %s, want %s", co.Dir, want)
			}
			sha, err := f.ResolveRef(t.Context(), fx.url, tc.ref)
			if err != nil || sha != tc.want {
				t.Errorf("ResolveRef = %s, %v; want %s", sha, err, tc.want)
			}
		})
	}
}

func TestFetchPrefersTagOverBranch(t *testing.T) {
	repo := gittest.NewRepo(t, map[string]string{"a": "branch\n"})
	repo.Branch(t, "stable")
	tagged := repo.Commit(t, map[string]string{"a": "tag\n"}, "tagged")
	repo.Tag(t, "stable")
	srv := gittest.Serve(t, map[string]*gittest.Repo{"app": repo})

	co, err := newFetcher(t).Fetch(t.Context(), srv.URL("app"), "stable")
	if err != nil {
		t.Fatal(err)
	}
	if co.Commit != tagged || readFile(t, co, "a") != "tag\n" {
		t.Errorf("got commit %s, want the tag's commit %s", co.Commit, tagged)
	}
}

func TestFetchCachedSHAUsesNoNetwork(t *testing.T) {
	fx := newFixture(t)
	f := newFetcher(t)
	var authCalls int
	f.Auth = func(string) (string, string, bool) { authCalls++; return "", "", false }
	first, err := f.Fetch(t.Context(), fx.url, fx.first)
	if err != nil {
		t.Fatal(err)
	}
	before := fx.srv.Requests()
	if before == 0 {
		t.Fatal("first fetch made no requests")
	}
	again, err := f.Fetch(t.Context(), fx.url, fx.first)
	if err != nil {
		t.Fatal(err)
	}
	if got := fx.srv.Requests() - before; got != 0 {
		t.Errorf("second fetch of a cached SHA made %d requests, want 0", got)
	}
	if authCalls != 1 {
		t.Errorf("Auth called %d times for one fetch and one cache hit, want 1", authCalls)
	}
	if again != first {
		t.Errorf("second fetch = %+v, want %+v", again, first)
	}

	// A tag pointing at the cached commit costs only the ref listing.
	before = fx.srv.Requests()
	if _, err := f.Fetch(t.Context(), fx.url, "v1"); err != nil {
		t.Fatal(err)
	}
	lsRemote := fx.srv.Requests() - before
	f2 := newFetcher(t)
	before = fx.srv.Requests()
	if _, err := f2.Fetch(t.Context(), fx.url, "v1"); err != nil {
		t.Fatal(err)
	}
	if full := fx.srv.Requests() - before; lsRemote >= full {
		t.Errorf("cached fetch by tag made %d requests, uncached %d; want fewer", lsRemote, full)
	}
}

func TestFetchConcurrentSameRef(t *testing.T) {
	fx := newFixture(t)
	f := newFetcher(t)
	const n = 4
	var wg sync.WaitGroup
	results := make([]gitrepo.Checkout, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			results[i], errs[i] = f.Fetch(t.Context(), fx.url, "main")
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("fetch %d: %v", i, errs[i])
		}
		if results[i] != results[0] {
			t.Errorf("fetch %d = %+v, want %+v", i, results[i], results[0])
		}
	}
	if got := readFile(t, results[0], "extra.yaml"); got != "x: 1\n" {
		t.Errorf("extra.yaml = %q", got)
	}
	// No temporary directories are left next to the checkout.
	entries, err := os.ReadDir(filepath.Dir(results[0].Dir))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("cache prefix directory holds %d entries, want 1", len(entries))
	}
}

func TestFetchBasicAuth(t *testing.T) {
	const canary = "canary-Pa55w0rd-7f3a9c"
	fx := newFixture(t, gittest.WithBasicAuth("bot", "right-token"))

	t.Run("accepted", func(t *testing.T) {
		var calls []string
		f := newFetcher(t)
		f.Auth = func(url string) (string, string, bool) {
			calls = append(calls, url)
			return "bot", "right-token", true
		}
		co, err := f.Fetch(t.Context(), fx.url, "v1")
		if err != nil {
			t.Fatal(err)
		}
		if co.Commit != fx.first {
			t.Errorf("Commit = %s, want %s", co.Commit, fx.first)
		}
		if len(calls) == 0 || calls[0] != fx.url {
			t.Errorf("Auth called with %q, want the source URL", calls)
		}
	})

	t.Run("rejected", func(t *testing.T) {
		f := newFetcher(t)
		f.Auth = func(string) (string, string, bool) { return "bot", canary, true }
		for _, ref := range []string{"v1", fx.second} { // ref listing, then fetch
			_, err := f.Fetch(t.Context(), fx.url, ref)
			if err == nil {
				t.Fatalf("fetch %s with a wrong password succeeded", ref)
			}
			msg := err.Error()
			for _, secret := range []string{
				canary,
				base64.StdEncoding.EncodeToString([]byte("bot:" + canary)),
			} {
				if strings.Contains(msg, secret) {
					t.Errorf("error reveals a credential: %s", msg)
				}
			}
			if !strings.Contains(msg, fx.url) || !strings.Contains(msg, "credentials") {
				t.Errorf("error does not name the source and say to check credentials: %s", msg)
			}
		}
	})

	t.Run("missing", func(t *testing.T) {
		_, err := newFetcher(t).Fetch(t.Context(), fx.url, "v1")
		if err == nil || !strings.Contains(err.Error(), "credentials") {
			t.Errorf("fetch without credentials: %v", err)
		}
	})
}

func TestFetchRefusals(t *testing.T) {
	fx := newFixture(t)
	for _, tc := range []struct {
		name      string
		allow     []string
		url, ref  string
		allowFile bool
		want      string
	}{
		{
			name:  "not in allowlist",
			allow: []string{"https://github.com/org/"},
			url:   "https://x/y", ref: "main",
			want: "source https://x/y is not in sources.allow of gitops.yaml; add it or use another source",
		},
		{
			name:  "prefix matches at path boundary only",
			allow: []string{"https://github.com/org"},
			url:   "https://github.com/org-evil/app", ref: "main",
			want: "is not in sources.allow",
		},
		{
			name:  "dot-dot escapes the allowlist",
			allow: []string{"https://github.com/org/"},
			url:   "https://github.com/org/../evil/app", ref: "main",
			want: `contains a ".." path segment`,
		},
		{
			name: "option as ref",
			url:  fx.url, ref: "--upload-pack=touch /tmp/pwned",
			want: "would be read as a git option",
		},
		{
			name: "option as URL",
			url:  "--upload-pack=touch /tmp/pwned", ref: "main",
			want: "would be read as a git option",
		},
		{name: "ext transport", url: "ext::sh -c touch% /tmp/pwned", ref: "main", want: "not allowed"},
		{name: "remote helper", url: "fd::17", ref: "main", want: "remote helper"},
		{name: "file URL", url: "file://" + fx.repo.Dir, ref: "main", want: "uses file://, which is not allowed"},
		{name: "git protocol", url: "git://example.com/app", ref: "main", want: `scheme "git"`},
		{name: "local path", url: fx.repo.Dir, ref: "main", want: "is not a URL"},
		{name: "empty ref", url: fx.url, ref: "", want: "ref is empty"},
		{name: "glob ref", url: fx.url, ref: "v*", want: "does not allow in ref names"},
		{
			name: "password in URL",
			url:  "https://bot:hunter2@example.com/app", ref: "main",
			want: "has a password in the URL",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFetcher(t)
			f.Allow, f.AllowFile = tc.allow, tc.allowFile
			before := fx.srv.Requests()
			_, err := f.Fetch(t.Context(), tc.url, tc.ref)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Fetch(%q, %q) = %v, want an error containing %q", tc.url, tc.ref, err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error reveals the URL's password: %v", err)
			}
			if got := fx.srv.Requests() - before; got != 0 {
				t.Errorf("refused fetch made %d requests", got)
			}
			if _, err := os.Stat("/tmp/pwned"); err == nil {
				t.Error("/tmp/pwned exists")
			}
		})
	}
}

func TestFetchAllowlistAccepts(t *testing.T) {
	fx := newFixture(t)
	f := newFetcher(t)
	f.Allow = []string{"https://github.com/org/", strings.TrimSuffix(fx.url, "/app")}
	if _, err := f.Fetch(t.Context(), fx.url, "v1"); err != nil {
		t.Fatal(err)
	}
}

func TestFetchUnknownRef(t *testing.T) {
	fx := newFixture(t)
	for ref, want := range map[string]string{
		"v9":            `ref "v9" not found: no tag or branch of that name exists; check the spelling`,
		"refs/heads/v9": `ref "refs/heads/v9" not found: no ref of that name exists`,
		fx.first[:12]:   "use its full 40-character SHA",
		"0123456789abcdef0123456789abcdef01234567": "check that the commit exists",
	} {
		_, err := newFetcher(t).Fetch(t.Context(), fx.url, ref)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), fx.url) {
			t.Errorf("Fetch(%q) = %v, want an error naming the source and containing %q", ref, err, want)
		}
	}
}

func TestFetchUnknownRepository(t *testing.T) {
	fx := newFixture(t)
	url := strings.TrimSuffix(fx.url, "app") + "missing"
	_, err := newFetcher(t).Fetch(t.Context(), url, "main")
	if err == nil || !strings.Contains(err.Error(), url) || !strings.Contains(err.Error(), "check the URL") {
		t.Errorf("Fetch of a missing repository = %v", err)
	}
}

func TestFetchFileOptIn(t *testing.T) {
	fx := newFixture(t)
	f := newFetcher(t)
	f.AllowFile = true
	co, err := f.Fetch(t.Context(), "file://"+fx.repo.Dir, "release")
	if err != nil {
		t.Fatal(err)
	}
	if co.Commit != fx.first {
		t.Errorf("Commit = %s, want %s", co.Commit, fx.first)
	}
}

func TestFetchRefusesCredentialsOverPlainHTTP(t *testing.T) {
	f := newFetcher(t)
	f.Auth = func(string) (string, string, bool) { return "bot", "token", true }
	_, err := f.Fetch(t.Context(), "http://example.com/app", "main")
	if err == nil || !strings.Contains(err.Error(), "refusing to send them unencrypted") {
		t.Errorf("Fetch over plain http with credentials = %v", err)
	}
}

func TestFetchCanceled(t *testing.T) {
	fx := newFixture(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := newFetcher(t).Fetch(ctx, fx.url, "main")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Fetch with a canceled context = %v, want context.Canceled", err)
	}
}

func TestFetchNeedsCacheDir(t *testing.T) {
	_, err := (&gitrepo.Fetcher{}).Fetch(t.Context(), "https://example.com/app", "0123456789abcdef0123456789abcdef01234567")
	if err == nil || !strings.Contains(err.Error(), "set Fetcher.CacheDir") {
		t.Errorf("Fetch without CacheDir = %v", err)
	}
}
