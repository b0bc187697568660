// Package gitrepo fetches Git sources: it is the engine's only way to get
// third-party manifests. A source is fetched at one commit, shallowly, in
// process with go-git (the bot's image has no git binary), reading no user
// or system Git configuration, restricted to https, http and ssh transports
// (file only when a test opts in), without hooks, submodules, redirects or
// prompts, and with per-call credentials that never appear in a URL or error.
//
// Checkouts are cached by commit SHA under Fetcher.CacheDir as plain work
// trees (no .git), so renders can't see Git internals and a second fetch of
// the same commit uses no network.
//
// Pusher writes to the repositories the bot works on, under the same rules:
// it builds a commit in memory on top of a shallow fetch of its parent,
// optionally signed (SSH or OpenPGP), and pushes it to a branch only if the
// branch is still where the caller saw it.
package gitrepo

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// objectCacheSize bounds the memory go-git keeps decoded objects in while
// checking a commit out; the objects themselves stay in a pack on disk.
const objectCacheSize = 16 * cache.MiByte

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
// name such as "refs/heads/main". Names are resolved against the refs the
// remote advertises; a commit already in the cache is returned without
// fetching it again.
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
	// Built only when the network is needed; a name's session is kept for
	// the fetch, so it costs no second listing of the refs.
	var (
		c    *conn
		sess transport.UploadPackSession
		ar   *packp.AdvRefs
	)
	sha := strings.ToLower(ref)
	if !isFullSHA(ref) {
		if c, err = newConn(r, f.Auth); err != nil {
			return Checkout{}, err
		}
		if sess, ar, sha, err = resolve(ctx, c, ref); err != nil {
			return Checkout{}, err
		}
		defer sess.Close()
	}
	dir := filepath.Join(cacheDir, sha[:2], sha)
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return Checkout{Dir: dir, Commit: sha}, nil
	}
	if c == nil {
		if c, err = newConn(r, f.Auth); err != nil {
			return Checkout{}, err
		}
	}
	if err := fetchInto(ctx, c, sess, ar, ref, sha, dir); err != nil {
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
	c, err := newConn(r, f.Auth)
	if err != nil {
		return "", err
	}
	sess, _, sha, err := resolve(ctx, c, ref)
	if err != nil {
		return "", err
	}
	sess.Close()
	return sha, nil
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

// resolve looks up a ref name among the refs the remote advertises. It
// returns the open session and the refs, for fetching the commit; the
// caller closes the session.
func resolve(ctx context.Context, c *conn, ref string) (transport.UploadPackSession, *packp.AdvRefs, string, error) {
	r := c.r
	// Candidates in order of preference: an annotated tag's commit (its
	// "peeled" value) before the tag object itself.
	var want []string
	switch {
	case ref == "HEAD":
		want = []string{"HEAD"}
	case strings.HasPrefix(ref, "refs/"):
		want = []string{ref + "^{}", ref}
	default:
		want = []string{"refs/tags/" + ref + "^{}", "refs/tags/" + ref, "refs/heads/" + ref}
	}
	found := map[string]string{}
	sess, ar, err := c.open(ctx)
	switch {
	case errors.Is(err, transport.ErrEmptyRemoteRepository):
		// No refs: not found below.
	case err != nil:
		return nil, nil, "", fmt.Errorf("resolve ref %q of source %s: %w; %s", ref, r.display, err, hint(err))
	default:
		if ar.Head != nil {
			found["HEAD"] = ar.Head.String()
		}
		for name, h := range ar.References {
			found[name] = h.String()
		}
		for name, h := range ar.Peeled {
			found[name+"^{}"] = h.String()
		}
	}
	for _, name := range want {
		if sha, ok := found[name]; ok {
			return sess, ar, sha, nil
		}
	}
	if sess != nil {
		sess.Close()
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
	return nil, nil, "", fmt.Errorf("source %s: ref %q not found: %s", r.display, ref, what)
}

// fetchInto shallow-fetches commit sha into a temporary directory next to
// dir, checks it out, drops .git and renames the work tree to dir. The
// rename is atomic, so a concurrent fetch of the same commit either wins or
// finds dir complete. sess and ar are a session open on the remote and its
// refs, or nil to open one.
func fetchInto(ctx context.Context, c *conn, sess transport.UploadPackSession, ar *packp.AdvRefs, ref, sha, dir string) error {
	what := fmt.Sprintf("ref %q (commit %s)", ref, sha)
	if strings.EqualFold(ref, sha) {
		what = "commit " + sha
	}
	wrap := func(err error) error {
		return fmt.Errorf("fetch source %s at %s: %w", c.r.display, what, err)
	}
	if len(sha) != 40 {
		// go-git v5 speaks SHA-1 only.
		return wrap(errors.New("SHA-256 repositories are not supported; use a SHA-1 repository"))
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

	if sess == nil {
		if sess, ar, err = c.open(ctx); err != nil {
			return wrap(fmt.Errorf("%w; %s", err, hint(err)))
		}
		defer sess.Close()
	}
	work := filepath.Join(tmp, "tree")
	// The objects go to work/.git on disk, not to memory.
	st := filesystem.NewStorageWithOptions(
		osfs.New(filepath.Join(work, git.GitDirName), osfs.WithBoundOS()),
		cache.NewObjectLRU(objectCacheSize),
		filesystem.Options{ExclusiveAccess: true},
	)
	defer st.Close()
	h := plumbing.NewHash(sha)
	if err := c.fetchCommit(ctx, sess, ar, h, st, ""); err != nil {
		return wrap(fmt.Errorf("%w; %s", err, hint(err)))
	}
	if err := ctx.Err(); err != nil {
		return wrap(err)
	}
	obj, err := st.EncodedObject(plumbing.AnyObject, h)
	if err != nil {
		return wrap(c.fail(ctx, "the server did not send the commit", err))
	}
	if obj.Type() != plumbing.CommitObject {
		return wrap(fmt.Errorf("%s is a %s object; the SHA must name a commit, not a tag object or tree", sha, obj.Type()))
	}
	// Errors of the checkout name paths from the repository, so they are
	// scrubbed like the server's messages.
	head, err := checkout(st, work, h)
	if err != nil {
		return wrap(c.fail(ctx, "check out", err))
	}
	if head != h {
		return wrap(fmt.Errorf("checked out commit %s instead; the SHA must name a commit, not a tag object or tree", head))
	}
	if err := os.RemoveAll(filepath.Join(work, git.GitDirName)); err != nil {
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

// checkout writes commit h of the repository in st to the work tree at work
// and returns the commit HEAD then names. The work tree is written through
// BoundOS, which keeps every write, also through a symlink in the tree,
// inside work.
func checkout(st storage.Storer, work string, h plumbing.Hash) (plumbing.Hash, error) {
	repo, err := git.Init(st, osfs.New(work, osfs.WithBoundOS()))
	if err != nil {
		return plumbing.ZeroHash, err
	}
	wt, err := repo.Worktree()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if err := wt.Checkout(&git.CheckoutOptions{Hash: h, Force: true}); err != nil {
		return plumbing.ZeroHash, err
	}
	head, err := repo.Head()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	return head.Hash(), nil
}
