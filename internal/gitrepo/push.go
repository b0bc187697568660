package gitrepo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/memory"
)

// ErrBranchMoved is wrapped by the error of a push or a branch deletion when
// the branch on the remote is not where the caller expected it: someone
// else pushed to it (or created or deleted it) in the meantime.
var ErrBranchMoved = errors.New("branch moved")

// errRejected is matched (with errors.Is) by the remoteError of a ref update
// the server refused.
var errRejected = errors.New("ref update rejected")

// Signature is a commit's author and committer.
type Signature struct {
	Name, Email string
	// When is the commit's date, with its time zone; it is part of the
	// commit's SHA, so set it explicitly.
	When time.Time
}

// Change is a commit the bot pushes.
type Change struct {
	// URL is the repository's clone URL: https, http to a loopback host,
	// ssh, or file with Pusher.AllowFile.
	URL string
	// Base is the full SHA of the parent commit; the remote must have it.
	Base string
	// Files maps slash-separated paths to their full new content, for
	// changed and new files; a nil value deletes the file (an absent file is
	// already deleted), an empty one makes it empty.
	Files map[string][]byte
	// Message is the commit message.
	Message string
	// Author is also the committer.
	Author Signature
	// Signer signs the commit; nil leaves it unsigned.
	Signer Signer
	// Branch is the branch to update, without refs/heads/.
	Branch string
	// Expect is the SHA the branch must point at on the remote now, so that
	// a push never overwrites a commit someone else pushed; "" means the
	// branch must not exist.
	Expect string
}

// Pusher writes commits to Git repositories: it builds a commit in memory
// from a shallow fetch of its parent and pushes it, with the same
// transports, checks and credential handling as Fetcher. The zero value is
// usable; a Pusher is safe for concurrent use.
type Pusher struct {
	// Auth returns HTTP basic credentials for url (https, or http to a
	// loopback host), if any. It is called by every operation, so tokens may
	// rotate between calls.
	Auth func(url string) (username, password string, ok bool)

	// AllowFile permits file:// URLs. For tests only: a file URL writes any
	// repository on this machine.
	AllowFile bool
}

// Push commits c.Files on top of c.Base and points refs/heads/c.Branch at
// the new commit, whatever the branch pointed at before (a force push), but
// only if that is c.Expect. It returns the new commit's SHA, which depends
// only on c (and the base commit): a branch already at that commit counts
// as pushed, so retrying a push whose answer was lost succeeds.
//
// The error wraps ErrBranchMoved when the branch is not at c.Expect, also
// when another push wins a race with this one.
func (p *Pusher) Push(ctx context.Context, c Change) (string, error) {
	r, err := parseRemote(c.URL, p.AllowFile)
	if err != nil {
		return "", fmt.Errorf("push to branch %q: %w", c.Branch, err)
	}
	wrap := func(err error) error {
		return fmt.Errorf("push to branch %q of %s: %w", c.Branch, r.display, err)
	}
	if err := c.check(); err != nil {
		return "", wrap(err)
	}
	cn, err := newConn(r, p.Auth)
	if err != nil {
		return "", wrap(err)
	}
	base := plumbing.NewHash(strings.ToLower(c.Base))
	st := memory.NewStorage()
	parent, err := cn.fetchBase(ctx, base, st)
	if err != nil {
		return "", wrap(err)
	}
	commit, pack, err := build(st, parent, c)
	if err != nil {
		return "", wrap(err)
	}

	sess, ar, err := cn.openReceive(ctx)
	if err != nil {
		return "", wrap(fmt.Errorf("%w; %s", err, pushHint(err)))
	}
	defer sess.Close()
	ref := plumbing.NewBranchReferenceName(c.Branch)
	expect := plumbing.NewHash(strings.ToLower(c.Expect))
	switch at := advertised(ar, ref); at {
	case commit:
		return commit.String(), nil
	case expect:
	default:
		return "", wrap(moved(c.Branch, at, expect))
	}
	err = cn.update(ctx, sess, ar, &packp.Command{Name: ref, Old: expect, New: commit}, pack)
	if errors.Is(err, errRejected) {
		// The server checks the old value too: did another push win?
		if at, listErr := cn.branchHead(ctx, ref); listErr == nil {
			switch at {
			case commit:
				return commit.String(), nil
			case expect:
			default:
				return "", wrap(moved(c.Branch, at, expect))
			}
		}
	}
	if err != nil {
		return "", wrap(fmt.Errorf("%w; %s", err, pushHint(err)))
	}
	return commit.String(), nil
}

// BranchHead returns the SHA refs/heads/branch points at on the remote, or
// "" when there is no such branch.
func (p *Pusher) BranchHead(ctx context.Context, url, branch string) (string, error) {
	r, err := parseRemote(url, p.AllowFile)
	if err != nil {
		return "", fmt.Errorf("read branch %q: %w", branch, err)
	}
	wrap := func(err error) error {
		return fmt.Errorf("read branch %q of %s: %w", branch, r.display, err)
	}
	if err := checkBranch(branch); err != nil {
		return "", wrap(err)
	}
	cn, err := newConn(r, p.Auth)
	if err != nil {
		return "", wrap(err)
	}
	at, err := cn.branchHead(ctx, plumbing.NewBranchReferenceName(branch))
	if err != nil {
		return "", wrap(fmt.Errorf("%w; %s", err, hint(err)))
	}
	if at.IsZero() {
		return "", nil
	}
	return at.String(), nil
}

// DeleteBranch deletes refs/heads/branch on the remote if it points at
// expect, a full SHA ("" expects no branch). A branch that does not exist is
// already deleted; one at another commit is left alone, and the error wraps
// ErrBranchMoved.
func (p *Pusher) DeleteBranch(ctx context.Context, url, branch, expect string) error {
	r, err := parseRemote(url, p.AllowFile)
	if err != nil {
		return fmt.Errorf("delete branch %q: %w", branch, err)
	}
	wrap := func(err error) error {
		return fmt.Errorf("delete branch %q of %s: %w", branch, r.display, err)
	}
	if err := checkBranch(branch); err != nil {
		return wrap(err)
	}
	if expect != "" && !isSHA1(expect) {
		return wrap(fmt.Errorf("expected commit %q is not a full commit SHA; set the 40-character SHA the branch points at", expect))
	}
	cn, err := newConn(r, p.Auth)
	if err != nil {
		return wrap(err)
	}
	sess, ar, err := cn.openReceive(ctx)
	if err != nil {
		return wrap(fmt.Errorf("%w; %s", err, pushHint(err)))
	}
	defer sess.Close()
	ref := plumbing.NewBranchReferenceName(branch)
	want := plumbing.NewHash(strings.ToLower(expect))
	switch at := advertised(ar, ref); at {
	case plumbing.ZeroHash:
		return nil
	case want:
	default:
		return wrap(moved(branch, at, want))
	}
	err = cn.update(ctx, sess, ar, &packp.Command{Name: ref, Old: want, New: plumbing.ZeroHash}, nil)
	if errors.Is(err, errRejected) {
		if at, listErr := cn.branchHead(ctx, ref); listErr == nil {
			switch at {
			case plumbing.ZeroHash:
				return nil
			case want:
			default:
				return wrap(moved(branch, at, want))
			}
		}
	}
	if err != nil {
		return wrap(fmt.Errorf("%w; %s", err, pushHint(err)))
	}
	return nil
}

// check validates c before any network access.
func (c *Change) check() error {
	if err := checkBranch(c.Branch); err != nil {
		return err
	}
	if !isSHA1(c.Base) {
		return fmt.Errorf("base %q is not a full commit SHA; set Change.Base to the 40-character SHA of the commit to build on", c.Base)
	}
	if c.Expect != "" && !isSHA1(c.Expect) {
		return fmt.Errorf("expected commit %q is not a full commit SHA; set Change.Expect to the 40-character SHA the branch points at, or to \"\" for a new branch", c.Expect)
	}
	for p := range c.Files {
		if err := checkFilePath(p); err != nil {
			return err
		}
	}
	if strings.TrimSpace(c.Message) == "" {
		return errors.New("the commit message is empty; set Change.Message")
	}
	if strings.ContainsRune(c.Message, 0) {
		return errors.New("the commit message contains a NUL byte, which git does not allow; remove it")
	}
	a := c.Author
	for _, f := range []struct{ what, s string }{{"name", a.Name}, {"email", a.Email}} {
		what, s := f.what, f.s
		if strings.TrimSpace(s) == "" {
			return fmt.Errorf("the author's %s is empty; set Change.Author", what)
		}
		if strings.ContainsFunc(s, func(r rune) bool { return r < ' ' || r == '<' || r == '>' }) {
			return fmt.Errorf("the author's %s %q contains '<', '>' or a control character, which a commit can't hold; remove them", what, s)
		}
	}
	if a.When.IsZero() {
		return errors.New("the author's time is not set; set Change.Author.When (usually to the current time)")
	}
	return nil
}

// checkBranch refuses a branch name git would refuse (git check-ref-format
// --branch): checkRef's rules plus those that apply to each of its
// slash-separated components.
func checkBranch(b string) error {
	if b == "" {
		return errors.New("the branch is empty; set the name of the bot's branch")
	}
	if strings.HasPrefix(b, "refs/") {
		return fmt.Errorf("branch %q starts with refs/; give the branch name without refs/heads/", b)
	}
	bad := checkRef(b) != nil || b == "HEAD"
	for seg := range strings.SplitSeq(b, "/") {
		bad = bad || strings.HasPrefix(seg, ".") || strings.HasSuffix(seg, ".lock")
	}
	if bad {
		return fmt.Errorf("branch %q is not a valid Git branch name (see git check-ref-format); choose another", b)
	}
	return nil
}

// isSHA1 reports whether s is a full SHA-1 object name: go-git v5 writes
// only SHA-1 repositories.
func isSHA1(s string) bool {
	return len(s) == 40 && isHex(s)
}

// advertised returns the hash the remote's refs give ref, or the zero hash.
func advertised(ar *packp.AdvRefs, ref plumbing.ReferenceName) plumbing.Hash {
	return ar.References[ref.String()]
}

// moved is the error for a branch at another commit than expected.
func moved(branch string, at, expect plumbing.Hash) error {
	now := "does not exist"
	if !at.IsZero() {
		now = "is at " + at.String()
	}
	want := "it not to exist"
	if !expect.IsZero() {
		want = "it at " + expect.String()
	}
	return fmt.Errorf("%w: %s %s, but the bot expected %s; another push changed it: read the branch again before retrying", ErrBranchMoved, branch, now, want)
}

// pushHint says what to do about a failed talk with a remote while pushing:
// as hint does, but credentials must also be allowed to push.
func pushHint(err error) string {
	if errors.Is(err, transport.ErrAuthenticationRequired) || errors.Is(err, transport.ErrAuthorizationFailed) ||
		strings.Contains(strings.ToLower(err.Error()), "authentication failed") {
		return "check the credentials configured for this repository (a user and a token that can push to it)"
	}
	return hint(err)
}

// fetchBase fetches commit base at depth 1 into st, without blobs when the
// server can leave them out (a tree records each file's mode and hash,
// which is all that building a commit on top of it needs), and returns it.
func (c *conn) fetchBase(ctx context.Context, base plumbing.Hash, st *memory.Storage) (*object.Commit, error) {
	wrap := func(err error) error {
		return fmt.Errorf("fetch base commit %s: %w; %s", base, err, hint(err))
	}
	sess, ar, err := c.open(ctx)
	if err != nil {
		return nil, wrap(err)
	}
	defer sess.Close()
	if err := c.fetchCommit(ctx, sess, ar, base, st, packp.FilterBlobNone()); err != nil {
		return nil, wrap(err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("fetch base commit %s: %w", base, err)
	}
	obj, err := st.EncodedObject(plumbing.AnyObject, base)
	if err != nil {
		return nil, wrap(c.fail(ctx, "the server did not send the commit", err))
	}
	if obj.Type() != plumbing.CommitObject {
		return nil, fmt.Errorf("base %s is a %s object; set Change.Base to a commit", base, obj.Type())
	}
	return object.DecodeCommit(st, obj)
}

// branchHead lists the remote's refs (needing only read access) and returns
// the hash of ref, or the zero hash.
func (c *conn) branchHead(ctx context.Context, ref plumbing.ReferenceName) (plumbing.Hash, error) {
	sess, ar, err := c.open(ctx)
	if errors.Is(err, transport.ErrEmptyRemoteRepository) {
		return plumbing.ZeroHash, nil
	}
	if err != nil {
		return plumbing.ZeroHash, err
	}
	sess.Close()
	return advertised(ar, ref), nil
}

// build makes the commit of c on top of parent, whose trees are in st, and
// returns its hash and a pack of the objects it adds: the commit, and the
// trees and blobs the remote does not have.
func build(st *memory.Storage, parent *object.Commit, c Change) (plumbing.Hash, []byte, error) {
	out := memory.NewStorage()
	ed := &treeEditor{base: st, out: out, known: map[plumbing.Hash]bool{}}
	root, err := ed.apply(parent.TreeHash, c.Files)
	if err != nil {
		return plumbing.ZeroHash, nil, err
	}
	sig := object.Signature{Name: c.Author.Name, Email: c.Author.Email, When: c.Author.When}
	msg := c.Message
	if !strings.HasSuffix(msg, "\n") {
		msg += "\n" // as git commit ends a message
	}
	commit := &object.Commit{
		Author:       sig,
		Committer:    sig,
		Message:      msg,
		TreeHash:     root,
		ParentHashes: []plumbing.Hash{parent.Hash},
	}
	if c.Signer != nil {
		payload := &plumbing.MemoryObject{}
		if err := commit.EncodeWithoutSignature(payload); err != nil {
			return plumbing.ZeroHash, nil, err
		}
		r, err := payload.Reader()
		if err != nil {
			return plumbing.ZeroHash, nil, err
		}
		signature, err := c.Signer.Sign(r)
		if err != nil {
			return plumbing.ZeroHash, nil, fmt.Errorf("sign the commit: %w", err)
		}
		if len(bytes.TrimSpace(signature)) == 0 {
			return plumbing.ZeroHash, nil, errors.New("sign the commit: the signer returned no signature")
		}
		commit.PGPSignature = string(signature)
	}
	obj := out.NewEncodedObject()
	if err := commit.Encode(obj); err != nil {
		return plumbing.ZeroHash, nil, err
	}
	h, err := out.SetEncodedObject(obj)
	if err != nil {
		return plumbing.ZeroHash, nil, err
	}
	hashes := make([]plumbing.Hash, 0, len(out.Objects))
	for oh := range out.Objects {
		hashes = append(hashes, oh)
	}
	var pack bytes.Buffer
	if _, err := packfile.NewEncoder(&pack, out, false).Encode(hashes, 0); err != nil {
		return plumbing.ZeroHash, nil, fmt.Errorf("write the pack: %w", err)
	}
	return h, pack.Bytes(), nil
}

// update sends one ref update (and the pack of its objects, unless it
// deletes the ref) on a receive-pack session and reads the server's report.
// A refused update is a remoteError matching errRejected, saying the
// server's reason and what its hooks printed.
func (c *conn) update(ctx context.Context, sess transport.ReceivePackSession, ar *packp.AdvRefs, cmd *packp.Command, pack []byte) error {
	caps := ar.Capabilities
	if !caps.Supports(capability.ReportStatus) {
		return &remoteError{msg: "the server does not report the results of a push", hint: "use a Git server that supports report-status (every current one does)"}
	}
	req := packp.NewReferenceUpdateRequestFromCapabilities(caps)
	req.Commands = []*packp.Command{cmd}
	var set []capability.Capability
	if cmd.New.IsZero() {
		if !caps.Supports(capability.DeleteRefs) {
			return &remoteError{msg: "the server does not allow deleting branches by push", hint: "delete the branch on the Git server instead"}
		}
		set = append(set, capability.DeleteRefs)
	} else {
		req.Packfile = io.NopCloser(bytes.NewReader(pack))
	}
	// The hooks' messages (such as why a protected branch refused the
	// update) come on the side band; progress is left out when possible.
	messages := &boundedBuffer{left: errBodyLimit}
	switch {
	case caps.Supports(capability.Sideband64k):
		set = append(set, capability.Sideband64k)
	case caps.Supports(capability.Sideband):
		set = append(set, capability.Sideband)
	}
	if caps.Supports(capability.Quiet) {
		set = append(set, capability.Quiet)
	}
	for _, cp := range set {
		if err := req.Capabilities.Set(cp); err != nil {
			return err
		}
	}
	req.Progress = messages
	report, err := sess.ReceivePack(ctx, req)
	if report == nil {
		if err == nil {
			err = errors.New("the server sent no report")
		}
		return c.fail(ctx, "update "+cmd.Name.String(), err)
	}
	said := ""
	if s := c.remoteMessages(messages.String()); s != "" {
		said = "; the server said: " + s
	}
	if report.UnpackStatus != "ok" {
		return &remoteError{
			msg:  "the server could not store the pushed objects: " + scrub(report.UnpackStatus, c.secrets) + said,
			hint: "check that the base commit is on the server and retry",
		}
	}
	for _, st := range report.CommandStatuses {
		if st.ReferenceName != cmd.Name {
			continue
		}
		if st.Status == "ok" {
			return nil
		}
		return &remoteError{
			msg:  fmt.Sprintf("the server refused to update %s: %s%s", cmd.Name, scrub(st.Status, c.secrets), said),
			hint: "check that the credentials may push to this branch and that no branch protection or hook forbids the update",
			err:  errRejected,
		}
	}
	return &remoteError{msg: fmt.Sprintf("the server's report does not mention %s%s", cmd.Name, said), hint: "check the branch on the server, then retry"}
}

// remoteMessages makes what the server printed fit on one line of an error.
func (c *conn) remoteMessages(s string) string {
	var lines []string
	for line := range strings.SplitSeq(scrub(s, c.secrets), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			lines = append(lines, line)
		}
	}
	return strings.Join(lines, " / ")
}

// boundedBuffer keeps the first bytes written to it, up to left more, and
// drops the rest: a server can't fill memory with messages.
type boundedBuffer struct {
	b    bytes.Buffer
	left int
}

// Write keeps what fits of p and never fails, so the side band keeps being
// read.
func (b *boundedBuffer) Write(p []byte) (int, error) {
	n := min(len(p), b.left)
	b.b.Write(p[:n])
	b.left -= n
	return len(p), nil
}

// String returns what was kept.
func (b *boundedBuffer) String() string { return b.b.String() }
