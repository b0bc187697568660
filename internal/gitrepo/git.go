package gitrepo

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/sideband"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/file"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"github.com/go-git/go-git/v5/storage"

	"github.com/kubectl-gitops/kubectl-gitops/internal/limit"
)

const (
	// errBodyLimit bounds how much of an HTTP error response is kept for an
	// error message.
	errBodyLimit = 4 << 10
	// refsLimit bounds the ref advertisement a server may send, which go-git
	// holds in memory whole. Git protocol v0 advertises every ref, so this
	// leaves room for repositories with hundreds of thousands of them.
	refsLimit = 64 << 20
	// reportLimit bounds the server's answer to a push (a status per ref and
	// the messages of its hooks), which go-git also holds in memory.
	reportLimit = 1 << 20
	redacted    = "[redacted]"
)

// errRedirect refuses every HTTP redirect, as git's http.followRedirects=false
// did: a server must not send a fetch, or its credentials, to a URL other
// than the one the allowlist let through.
// status404 finds an HTTP 404 in a message, but not a port or a number that
// merely contains 404 (127.0.0.1:40453).
var status404 = regexp.MustCompile(`(?:^|[^:0-9])404(?:[^0-9]|$)`)

var errRedirect = errors.New("the server answered with a redirect")

// errRefsTooLarge stops reading a ref advertisement over refsLimit.
var errRefsTooLarge = fmt.Errorf("the server's list of refs exceeds %d bytes", refsLimit)

// errReportTooLarge stops reading an answer to a push over reportLimit.
var errReportTooLarge = fmt.Errorf("the server's answer to a push exceeds %d bytes", reportLimit)

// httpTransport is the go-git HTTP(S) transport of every fetch and push. It
// is this package's own and is handed to each session directly: go-git's
// client.InstallProtocol would replace the transport of every go-git user in
// the process, and its default follows redirects of the first request. Here
// redirects are refused by go-git's NoFollowRedirects policy, by the
// client's CheckRedirect and, below both, by guardedTransport, which never
// hands a 3xx response to a client that could follow it.
var httpTransport = githttp.NewClientWithOptions(&http.Client{
	Transport:     guardedTransport{base: baseHTTPTransport()},
	CheckRedirect: func(*http.Request, []*http.Request) error { return errRedirect },
}, &githttp.ClientOptions{RedirectPolicy: githttp.NoFollowRedirects})

// baseHTTPTransport is a private copy of net/http's default transport (proxy
// from the environment, system TLS roots), so its connection pool is not
// shared with, or changed by, the rest of the process.
func baseHTTPTransport() http.RoundTripper {
	if t, ok := http.DefaultTransport.(*http.Transport); ok {
		return t.Clone()
	}
	return &http.Transport{Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true}
}

// guardedTransport refuses redirects and bounds what a server can make the
// client read into memory: an error response's body (read whole into the
// error by go-git), the ref advertisement and the answer to a push. The pack
// of a fetch itself streams to disk.
type guardedTransport struct {
	base http.RoundTripper
}

func (t guardedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	switch {
	case res.StatusCode >= 300 && res.StatusCode < 400:
		res.Body.Close()
		return nil, errRedirect
	case res.StatusCode >= 400:
		res.Body = struct {
			io.Reader
			io.Closer
		}{io.LimitReader(res.Body, errBodyLimit), res.Body}
	case req.Method == http.MethodGet:
		res.Body = limit.Body(res.Body, refsLimit, errRefsTooLarge)
	case strings.HasSuffix(req.URL.Path, "/"+transport.ReceivePackServiceName):
		res.Body = limit.Body(res.Body, reportLimit, errReportTooLarge)
	}
	return res, nil
}

// conn is what one Fetch or ResolveRef needs to talk to a remote: go-git's
// endpoint for it, the transport for its scheme, the call's credentials and
// the strings to scrub from errors.
type conn struct {
	r       remote
	ep      *transport.Endpoint
	tr      transport.Transport
	auth    transport.AuthMethod
	secrets []string // strings scrubbed from errors
}

// newConn prepares talking to r. Credentials come only from auth, as HTTP
// basic auth of this call's requests: never from the URL, and never over
// plain http to another host than this machine.
func newConn(r remote, auth func(string) (string, string, bool)) (*conn, error) {
	ep, err := transport.NewEndpoint(r.raw)
	if err != nil {
		return nil, fmt.Errorf("source %s is not a valid URL (%s); fix the URL", r.display, scrub(err.Error(), nil))
	}
	// parseRemote decided the scheme and checked the URL for it; refuse a
	// URL go-git would read with another scheme rather than guess.
	if ep.Protocol != r.scheme {
		return nil, fmt.Errorf("source %s is read as a %s URL, not %s; use https://host/path or ssh://host/path", r.display, ep.Protocol, r.scheme)
	}
	c := &conn{r: r, ep: ep}
	if ep.Password != "" {
		c.secrets = append(c.secrets, ep.Password)
	}
	switch r.scheme {
	case "https", "http":
		c.tr = httpTransport
		// go-git would send a URL's userinfo as basic auth; git sent it only
		// when asked, and could not prompt for the password.
		ep.User, ep.Password = "", ""
		if auth == nil {
			break
		}
		user, pass, ok := auth(r.raw)
		if !ok {
			break
		}
		if r.scheme == "http" && !r.isLoopback() {
			return nil, fmt.Errorf("source %s uses plain http and has credentials; refusing to send them unencrypted, use https", r.display)
		}
		c.auth = &githttp.BasicAuth{Username: user, Password: pass}
		c.secrets = append(c.secrets, base64.StdEncoding.EncodeToString([]byte(user+":"+pass)), user+":"+pass)
		if pass != "" {
			c.secrets = append(c.secrets, pass)
		} else if user != "" {
			// A token sent as the username is the secret.
			c.secrets = append(c.secrets, user)
		}
	case "ssh":
		// Authentication from the environment (the SSH agent at
		// SSH_AUTH_SOCK, else the first passphrase-less key of ~/.ssh) and
		// host keys from known_hosts, as ssh does by default.
		c.tr = gitssh.DefaultClient
		if os.Getenv("SSH_AUTH_SOCK") == "" {
			c.auth = sshKeyFile(ep.User)
		}
	case "file":
		// Tests only (Fetcher.AllowFile): go-git runs git-upload-pack.
		c.tr = file.DefaultClient
	default:
		return nil, fmt.Errorf("source %s uses scheme %q, which is not allowed; use an https:// or ssh:// URL", r.display, r.scheme)
	}
	return c, nil
}

// sshKeyFile is the first default identity of ~/.ssh that loads without a
// passphrase, as ssh tries them, or nil (go-git then asks the agent).
func sshKeyFile(user string) transport.AuthMethod {
	if user == "" {
		user = "git"
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return nil
	}
	for _, name := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
		if keys, err := gitssh.NewPublicKeysFromFile(user, filepath.Join(home, ".ssh", name), ""); err == nil {
			return keys
		}
	}
	return nil
}

// open starts an upload-pack session and reads the remote's refs. The caller
// closes the session.
func (c *conn) open(ctx context.Context) (transport.UploadPackSession, *packp.AdvRefs, error) {
	return connect(ctx, c, c.tr.NewUploadPackSession)
}

// openReceive starts a receive-pack session, for pushing, and reads the
// remote's refs. The caller closes the session.
func (c *conn) openReceive(ctx context.Context) (transport.ReceivePackSession, *packp.AdvRefs, error) {
	return connect(ctx, c, c.tr.NewReceivePackSession)
}

// connect starts a session with newSession and reads the remote's refs. An
// SSH connection is made without a context, so when ctx ends first connect
// returns at once and closes the session later.
func connect[S transport.Session](ctx context.Context, c *conn, newSession func(*transport.Endpoint, transport.AuthMethod) (S, error)) (S, *packp.AdvRefs, error) {
	type result struct {
		s   S
		err error
	}
	var none S
	ch := make(chan result, 1)
	go func() {
		s, err := newSession(c.ep, c.auth)
		ch <- result{s, err}
	}()
	var s S
	select {
	case res := <-ch:
		if res.err != nil {
			return none, nil, c.fail(ctx, "connect", res.err)
		}
		s = res.s
	case <-ctx.Done():
		go func() {
			if res := <-ch; res.err == nil && any(res.s) != nil {
				res.s.Close()
			}
		}()
		return none, nil, fmt.Errorf("connect: %w", ctx.Err())
	}
	ar, err := s.AdvertisedReferencesContext(ctx)
	if err != nil {
		s.Close()
		return none, nil, c.fail(ctx, "list refs", err)
	}
	return s, ar, nil
}

// fetchCommit asks for commit sha at depth 1, without tags, and writes the
// pack into st. A filter (such as blob:none) is sent only when the server
// supports filters; otherwise the server sends every object.
func (c *conn) fetchCommit(ctx context.Context, s transport.UploadPackSession, ar *packp.AdvRefs, sha plumbing.Hash, st storage.Storer, filter packp.Filter) error {
	want, err := wantFor(ar, sha)
	if err != nil {
		return err
	}
	if !ar.Capabilities.Supports(capability.Shallow) {
		return &remoteError{msg: "the server does not support shallow fetches", hint: "fetch from a server that supports them (any current Git server does)"}
	}
	req := packp.NewUploadPackRequestFromCapabilities(ar.Capabilities)
	req.Wants = []plumbing.Hash{want}
	req.Depth = packp.DepthCommits(1)
	if err := req.Capabilities.Set(capability.Shallow); err != nil {
		return err
	}
	if ar.Capabilities.Supports(capability.NoProgress) {
		if err := req.Capabilities.Set(capability.NoProgress); err != nil {
			return err
		}
	}
	if filter != "" && ar.Capabilities.Supports(capability.Filter) {
		if err := req.Capabilities.Set(capability.Filter); err != nil {
			return err
		}
		req.Filter = filter
	}
	res, err := s.UploadPack(ctx, req)
	if err != nil {
		return c.fail(ctx, "fetch", err)
	}
	defer res.Close()
	if err := st.SetShallow(res.Shallows); err != nil {
		return err
	}
	var pack io.Reader = res
	switch {
	case req.Capabilities.Supports(capability.Sideband64k):
		pack = sideband.NewDemuxer(sideband.Sideband64k, res)
	case req.Capabilities.Supports(capability.Sideband):
		pack = sideband.NewDemuxer(sideband.Sideband, res)
	}
	if err := packfile.UpdateObjectStorage(st, pack); err != nil {
		return c.fail(ctx, "fetch", err)
	}
	return nil
}

// wantFor returns the object to ask for so that the server sends commit sha.
// Any server sends an advertised ref's object; an annotated tag is asked for
// by its own object, which brings the commit along. Another commit can only
// be asked for by SHA when the server allows it.
func wantFor(ar *packp.AdvRefs, sha plumbing.Hash) (plumbing.Hash, error) {
	if ar.Head != nil && *ar.Head == sha {
		return sha, nil
	}
	for _, h := range ar.References {
		if h == sha {
			return sha, nil
		}
	}
	names := make([]string, 0, len(ar.Peeled))
	for name, h := range ar.Peeled {
		if h == sha {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		if tag, ok := ar.References[name]; ok {
			return tag, nil
		}
	}
	if ar.Capabilities.Supports(capability.AllowReachableSHA1InWant) || ar.Capabilities.Supports(capability.AllowTipSHA1InWant) {
		return sha, nil
	}
	return plumbing.ZeroHash, &remoteError{
		msg:  "the server does not allow fetching a commit by its SHA",
		hint: "use a branch or tag",
		err:  git.ErrExactSHA1NotSupported,
	}
}

// fail turns an error of a transport operation into a remoteError, or into
// ctx's error when ctx ended (go-git reports that in many ways).
func (c *conn) fail(ctx context.Context, op string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%s: %w", op, ctxErr)
	}
	msg := op + ": " + scrub(err.Error(), c.secrets)
	return &remoteError{msg: msg, hint: classify(err, msg), err: err}
}

// remoteError is a failed talk with a remote: its message is scrubbed of
// credentials and control characters, and it says what to do about it. The
// underlying error is matched by errors.Is but not returned by Unwrap, so
// its unscrubbed text can't leak through a caller that unwraps.
type remoteError struct {
	msg  string
	hint string
	err  error
}

func (e *remoteError) Error() string { return e.msg }

func (e *remoteError) Is(target error) bool { return e.err != nil && errors.Is(e.err, target) }

// hint says what to do about a failed talk with a remote.
func hint(err error) string {
	if re, ok := errors.AsType[*remoteError](err); ok && re.hint != "" {
		return re.hint
	}
	return "check the URL and the ref, then retry"
}

// classify says what to do about err, judging by its type and by msg, its
// scrubbed text (which holds what the server said).
func classify(err error, msg string) string {
	s := strings.ToLower(msg)
	_, dnsErr := errors.AsType[*net.DNSError](err)
	_, opErr := errors.AsType[*net.OpError](err)
	switch {
	case errors.Is(err, errRedirect), strings.Contains(s, "http redirect"):
		return "redirects are not followed; use the repository's final URL"
	case errors.Is(err, errRefsTooLarge):
		return "the repository has too many refs to list; fetch it by full commit SHA"
	case errors.Is(err, transport.ErrAuthenticationRequired), errors.Is(err, transport.ErrAuthorizationFailed),
		strings.Contains(s, "authentication failed"):
		return "check the credentials configured for this source (a user and a token that can read the repository)"
	case strings.Contains(s, "ssh: unable to authenticate"), strings.Contains(s, "ssh_auth_sock"):
		return "check the SSH key for this source: it must be loaded in the SSH agent at SSH_AUTH_SOCK and be able to read the repository"
	case strings.Contains(s, "knownhosts"), strings.Contains(s, "known_hosts"):
		return "check that the server's host key is in known_hosts (SSH_KNOWN_HOSTS or ~/.ssh/known_hosts)"
	case strings.Contains(s, "not our ref"), strings.Contains(s, "unadvertised object"),
		errors.Is(err, transport.ErrEmptyRemoteRepository):
		return "check that the commit exists in the repository (the server may also refuse fetching commits by SHA; use a tag or branch then)"
	case dnsErr, opErr, errors.Is(err, os.ErrDeadlineExceeded),
		strings.Contains(s, "connection refused"), strings.Contains(s, "timed out"):
		return "check the URL and that this host can reach the Git server"
	case errors.Is(err, transport.ErrRepositoryNotFound), strings.Contains(s, "not found"), status404.MatchString(s),
		strings.Contains(s, "does not appear to be a git repository"):
		return "check the URL and that the credentials for this source can read the repository"
	default:
		return "check the URL and the ref, then retry"
	}
}

// scrub removes credentials from a message: the secrets given and any
// userinfo in URLs. It also drops control characters other than newline and
// tab, and bounds the message's length.
func scrub(s string, secrets []string) string {
	for _, secret := range secrets {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, redacted)
		}
	}
	s = redactText(s)
	s = strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' {
			return r
		}
		if r < ' ' || r == 0x7f {
			return -1
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) > errBodyLimit {
		s = strings.ToValidUTF8(s[:errBodyLimit], "") + "…"
	}
	return s
}

// redactText removes userinfo ("user:pass@") from every URL in s.
func redactText(s string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, "://")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i+3])
		s = s[i+3:]
		end := strings.IndexAny(s, "/ \t\r\n'\"")
		if end < 0 {
			end = len(s)
		}
		if at := strings.LastIndex(s[:end], "@"); at >= 0 {
			s = s[at+1:]
		}
	}
}
