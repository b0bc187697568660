package gittest

import (
	"crypto/subtle"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// Server serves repositories over Git's smart HTTP protocol on 127.0.0.1.
// It serves the repositories themselves, not copies, so commits, tags and
// branches made after Serve are visible to clients.
type Server struct {
	srv      *httptest.Server
	requests atomic.Int64
}

// Option configures Serve.
type Option func(*serverConfig)

type serverConfig struct {
	check func(user, pass string) bool
}

// WithBasicAuth makes the server answer 401 to every request that does not
// carry exactly these HTTP basic credentials.
func WithBasicAuth(user, pass string) Option {
	return WithAuth(func(u, p string) bool { return equal(u, user) && equal(p, pass) })
}

// WithAuth makes the server answer 401 to every request whose HTTP basic
// credentials check refuses, such as a forge fake's installation tokens.
func WithAuth(check func(user, pass string) bool) Option {
	return func(c *serverConfig) { c.check = check }
}

// Serve serves repos (name → repository; a name may contain slashes, as in
// "org/app") until the test ends. Clients reach a repository at URL(name).
func Serve(t testing.TB, repos map[string]*Repo, opts ...Option) *Server {
	t.Helper()
	var cfg serverConfig
	for _, o := range opts {
		o(&cfg)
	}
	gitPath, err := exec.LookPath("git")
	if err != nil {
		t.Fatalf("gittest: git is required to serve repositories: %v", err)
	}
	// git http-backend serves everything under one project root; link each
	// repository into it under its name.
	root := t.TempDir()
	for name, repo := range repos {
		p := filepath.FromSlash(name)
		if name == "" || !filepath.IsLocal(p) || strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/") {
			t.Fatalf("gittest: repository name %q must be a relative slash-separated path", name)
		}
		link := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
			t.Fatalf("gittest: %v", err)
		}
		if err := os.Symlink(repo.Dir, link); err != nil {
			t.Fatalf("gittest: serve %s: %v", name, err)
		}
	}
	backend := &cgi.Handler{
		Path: gitPath,
		Args: []string{"http-backend"},
		Dir:  root,
		Env: []string{
			"GIT_PROJECT_ROOT=" + root,
			"GIT_HTTP_EXPORT_ALL=1",
			"GIT_CONFIG_NOSYSTEM=1",
			"GIT_CONFIG_GLOBAL=" + os.DevNull,
			"HOME=" + root,
		},
		Stderr: testWriter{t},
	}
	s := &Server{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		if cfg.check != nil {
			user, pass, ok := r.BasicAuth()
			if !ok || !cfg.check(user, pass) {
				w.Header().Set("WWW-Authenticate", `Basic realm="gittest"`)
				http.Error(w, "authentication required", http.StatusUnauthorized)
				return
			}
		}
		backend.ServeHTTP(w, r)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// URL returns the clone URL of the repository served under name.
func (s *Server) URL(name string) string {
	return s.srv.URL + "/" + name
}

// Requests returns how many HTTP requests the server has received, including
// rejected ones, so tests can assert that an operation used no network.
func (s *Server) Requests() int {
	return int(s.requests.Load())
}

func equal(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// testWriter forwards git http-backend's stderr to the test log. The server
// is closed (waiting for requests in flight) before the test completes.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("git http-backend: %s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
