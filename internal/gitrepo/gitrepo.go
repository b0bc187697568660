// Package gitrepo fetches Git sources: it is the engine's only way to get
// third-party manifests. A source is fetched at one commit, shallowly, by
// the git binary run with argv only, isolated from user and system Git
// configuration, restricted to https, http and ssh transports (file only
// when a test opts in), without hooks, submodules, redirects or prompts, and
// with per-call credentials that never appear in a URL, argv or error.
//
// Checkouts are cached by commit SHA under Fetcher.CacheDir as plain work
// trees (no .git), so renders can't see Git internals and a second fetch of
// the same commit uses no network.
package gitrepo

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Fetcher fetches Git sources into a cache. The zero value is not usable:
// CacheDir must be set. A Fetcher is safe for concurrent use, also by
// several processes sharing one CacheDir.
type Fetcher struct {
	// CacheDir holds one checkout per commit, at CacheDir/<sha[:2]>/<sha>.
	CacheDir string

	// Allow lists URL prefixes that may be fetched (sources.allow of
	// gitops.yaml); a prefix matches at a path boundary. Empty allows all.
	Allow []string

	// Auth returns HTTP basic credentials for url (https, or http to a
	// loopback host), if any. It is called by every Fetch and ResolveRef
	// that needs the network, so tokens may rotate between calls.
	Auth func(url string) (username, password string, ok bool)

	// AllowFile permits file:// URLs. For tests only: a file URL reads any
	// repository on this machine.
	AllowFile bool
}

// Checkout is a source's work tree at one commit.
type Checkout struct {
	// Dir is the work tree, without .git. Treat it as read-only: it is shared
	// by every fetch of the same commit.
	Dir string
	// Commit is the full SHA of the commit checked out.
	Commit string
}

// Fetch returns the work tree of url at ref: a full commit SHA, a tag or a
// branch (a tag wins over a branch of the same name), "HEAD", or a full ref
// name such as "refs/heads/main". Names are resolved with git ls-remote; a
// commit already in the cache is returned without fetching it again.
func (f *Fetcher) Fetch(ctx context.Context, url, ref string) (Checkout, error) {
	if f.CacheDir == "" {
		return Checkout{}, errors.New("git fetcher has no cache directory; set Fetcher.CacheDir")
	}
	cacheDir, err := filepath.Abs(f.CacheDir)
	if err != nil {
		return Checkout{}, fmt.Errorf("git cache directory %s: %w", f.CacheDir, err)
	}
	r, err := f.prepare(url, ref)
	if err != nil {
		return Checkout{}, err
	}
	var g *gitCmd // built only when the network is needed
	sha := strings.ToLower(ref)
	if !isFullSHA(ref) {
		if g, err = newGitCmd(r, f.Auth, f.AllowFile); err != nil {
			return Checkout{}, err
		}
		if sha, err = resolve(ctx, r, g, ref); err != nil {
			return Checkout{}, err
		}
	}
	dir := filepath.Join(cacheDir, sha[:2], sha)
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return Checkout{Dir: dir, Commit: sha}, nil
	}
	if g == nil {
		if g, err = newGitCmd(r, f.Auth, f.AllowFile); err != nil {
			return Checkout{}, err
		}
	}
	if err := fetchInto(ctx, r, g, ref, sha, dir); err != nil {
		return Checkout{}, err
	}
	return Checkout{Dir: dir, Commit: sha}, nil
}

// ResolveRef returns the full commit SHA that ref names in url, with the
// same rules and checks as Fetch. A full SHA is returned as is (lower-cased)
// without network access.
func (f *Fetcher) ResolveRef(ctx context.Context, url, ref string) (string, error) {
	r, err := f.prepare(url, ref)
	if err != nil {
		return "", err
	}
	if isFullSHA(ref) {
		return strings.ToLower(ref), nil
	}
	g, err := newGitCmd(r, f.Auth, f.AllowFile)
	if err != nil {
		return "", err
	}
	return resolve(ctx, r, g, ref)
}

// prepare validates url and ref against the fetcher's policy.
func (f *Fetcher) prepare(url, ref string) (remote, error) {
	r, err := parseRemote(url, f.AllowFile)
	if err != nil {
		return remote{}, err
	}
	if !r.allowed(f.Allow) {
		return remote{}, fmt.Errorf("source %s is not in sources.allow of gitops.yaml; add it or use another source", r.display)
	}
	if err := checkRef(ref); err != nil {
		return remote{}, fmt.Errorf("source %s: %w", r.display, err)
	}
	return r, nil
}

// resolve looks up a ref name with git ls-remote.
func resolve(ctx context.Context, r remote, g *gitCmd, ref string) (string, error) {
	// Candidates in order of preference; ls-remote prints a peeled annotated
	// tag as "<name>^{}" only when asked for that name.
	var want []string
	switch {
	case ref == "HEAD":
		want = []string{"HEAD"}
	case strings.HasPrefix(ref, "refs/"):
		want = []string{ref + "^{}", ref}
	default:
		want = []string{"refs/tags/" + ref + "^{}", "refs/tags/" + ref, "refs/heads/" + ref}
	}
	// ls-remote runs outside any repository, in an empty directory, so no
	// repository configuration is read.
	tmp, err := os.MkdirTemp("", "gitrepo-ls-remote-")
	if err != nil {
		return "", fmt.Errorf("source %s ref %q: %w", r.display, ref, err)
	}
	defer os.RemoveAll(tmp)
	out, err := g.run(ctx, tmp, append([]string{"ls-remote", "--", r.raw}, want...)...)
	if err != nil {
		return "", fmt.Errorf("resolve ref %q of source %s: %w; %s", ref, r.display, err, hint(err))
	}
	found := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		sha, name, ok := strings.Cut(sc.Text(), "\t")
		if ok && isFullSHA(sha) {
			found[name] = strings.ToLower(sha)
		}
	}
	for _, name := range want {
		if sha, ok := found[name]; ok {
			return sha, nil
		}
	}
	what := "no tag or branch of that name exists"
	if strings.HasPrefix(ref, "refs/") || ref == "HEAD" {
		what = "no ref of that name exists"
	}
	if len(ref) >= 4 && len(ref) < 40 && isHex(ref) {
		what += "; to fetch a commit, use its full 40-character SHA"
	} else {
		what += "; check the spelling, or use a full commit SHA"
	}
	return "", fmt.Errorf("source %s: ref %q not found: %s", r.display, ref, what)
}

// fetchInto shallow-fetches commit sha into a temporary directory next to
// dir, checks it out, drops .git and renames the work tree to dir. The
// rename is atomic, so a concurrent fetch of the same commit either wins or
// finds dir complete.
func fetchInto(ctx context.Context, r remote, g *gitCmd, ref, sha, dir string) error {
	what := fmt.Sprintf("ref %q (commit %s)", ref, sha)
	if strings.EqualFold(ref, sha) {
		what = "commit " + sha
	}
	wrap := func(err error) error {
		return fmt.Errorf("fetch source %s at %s: %w", r.display, what, err)
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return wrap(err)
	}
	tmp, err := os.MkdirTemp(parent, ".tmp-"+sha[:12]+"-")
	if err != nil {
		return wrap(err)
	}
	defer os.RemoveAll(tmp)

	work := filepath.Join(tmp, "tree")
	steps := []struct {
		dir  string
		args []string
	}{
		{tmp, []string{"init", "-q", "--template=", work}},
		{work, []string{"fetch", "-q", "--depth=1", "--no-tags", "--no-recurse-submodules", "--", r.raw, sha}},
		{work, []string{"checkout", "-q", "--detach", sha}},
	}
	for _, step := range steps {
		if _, err := g.run(ctx, step.dir, step.args...); err != nil {
			return wrap(fmt.Errorf("%w; %s", err, hint(err)))
		}
	}
	out, err := g.run(ctx, work, "rev-parse", "--verify", "HEAD^{commit}")
	if err != nil {
		return wrap(err)
	}
	if head := strings.TrimSpace(string(out)); head != sha {
		return wrap(fmt.Errorf("checked out commit %s instead; the SHA must name a commit, not a tag object or tree", head))
	}
	if err := os.RemoveAll(filepath.Join(work, ".git")); err != nil {
		return wrap(err)
	}
	if err := os.Rename(work, dir); err != nil {
		// Another fetch of the same commit finished first.
		if fi, statErr := os.Stat(dir); statErr == nil && fi.IsDir() {
			return nil
		}
		if errors.Is(err, fs.ErrExist) {
			return wrap(fmt.Errorf("cache entry %s exists but is not a directory; remove it", dir))
		}
		return wrap(err)
	}
	return nil
}
