package gitrepo

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// remote is a source URL that passed validation.
type remote struct {
	raw     string // as given; what git is asked to fetch
	display string // raw without userinfo secrets; safe for errors
	scheme  string // "https", "http", "ssh" or "file"
	host    string // host name without port; empty for file
}

// parseRemote accepts https://, http://, ssh:// and scp-like (user@host:path)
// URLs, and file:// only when allowFile is set. It refuses anything git would
// read as an option or hand to a remote helper (ext::, fd::, …).
func parseRemote(raw string, allowFile bool) (remote, error) {
	if raw == "" {
		return remote{}, fmt.Errorf("source URL is empty; set it to an https:// or ssh:// Git URL")
	}
	if strings.HasPrefix(raw, "-") {
		return remote{}, fmt.Errorf("source %q starts with '-' and would be read as a git option; use an https:// or ssh:// URL", redactText(raw))
	}
	if h := strings.Index(raw, "::"); h >= 0 && !strings.Contains(raw[:h], "://") {
		return remote{}, fmt.Errorf("source %s uses a git remote helper (<transport>::<address>), which is not allowed; use an https:// or ssh:// URL", redactText(raw))
	}
	if i := strings.IndexFunc(raw, func(r rune) bool { return r <= ' ' || r == 0x7f }); i >= 0 {
		return remote{}, fmt.Errorf("source %q contains a space or control character; fix the URL", redactText(raw))
	}
	if scheme, _, ok := strings.Cut(raw, "://"); ok && !strings.ContainsAny(scheme, "/@:") {
		return parseURL(raw, strings.ToLower(scheme), allowFile)
	}
	// scp-like syntax: [user@]host:path, where host has no slash.
	hostPart, path, ok := strings.Cut(raw, ":")
	if !ok || strings.Contains(hostPart, "/") || path == "" {
		return remote{}, fmt.Errorf("source %s is not a URL; use https://host/path, ssh://host/path or user@host:path", raw)
	}
	_, host, hasUser := strings.Cut(hostPart, "@")
	if !hasUser {
		host = hostPart
	}
	if host == "" || strings.HasPrefix(host, "-") {
		return remote{}, fmt.Errorf("source %s has an invalid host; fix the URL", raw)
	}
	if err := checkPath(raw, path); err != nil {
		return remote{}, err
	}
	return remote{raw: raw, display: raw, scheme: "ssh", host: host}, nil
}

func parseURL(raw, scheme string, allowFile bool) (remote, error) {
	switch scheme {
	case "https", "http", "ssh":
	case "file":
		if !allowFile {
			return remote{}, fmt.Errorf("source %s uses file://, which is not allowed; use an https:// or ssh:// URL", raw)
		}
	default:
		return remote{}, fmt.Errorf("source %s uses scheme %q, which is not allowed; use an https:// or ssh:// URL", redactText(raw), scheme)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return remote{}, fmt.Errorf("source %s is not a valid URL (%v); fix the URL", redactText(raw), redactText(err.Error()))
	}
	r := remote{raw: raw, scheme: scheme, host: u.Hostname()}
	stripped := *u
	stripped.User = nil
	r.display = stripped.String()
	if u.RawQuery != "" || u.Fragment != "" {
		return remote{}, fmt.Errorf("source %s has a query or fragment; remove it", r.display)
	}
	if scheme != "file" && (r.host == "" || strings.HasPrefix(r.host, "-")) {
		return remote{}, fmt.Errorf("source %s has no valid host; fix the URL", r.display)
	}
	if _, hasPass := u.User.Password(); hasPass && scheme != "ssh" {
		return remote{}, fmt.Errorf("source %s has a password in the URL; remove it and configure the credentials for this source instead", r.display)
	}
	if err := checkPath(r.display, u.Path); err != nil {
		return remote{}, err
	}
	return r, nil
}

// checkPath refuses "." and ".." segments: clients and servers normalize them,
// so they would let a URL pass an allowlist prefix and then leave it.
func checkPath(display, path string) error {
	for seg := range strings.SplitSeq(strings.ReplaceAll(path, `\`, "/"), "/") {
		if seg == "." || seg == ".." {
			return fmt.Errorf("source %s contains a %q path segment; use the repository's canonical URL", display, seg)
		}
	}
	return nil
}

// allowed reports whether the source matches one of the allowlist prefixes.
// A prefix matches at a path boundary only, so "https://github.com/org" allows
// "https://github.com/org/app" but not "https://github.com/org-evil/app".
func (r remote) allowed(prefixes []string) bool {
	if len(prefixes) == 0 {
		return true
	}
	for _, p := range prefixes {
		p = strings.TrimSpace(p)
		if p != "" && (hasPrefixAtBoundary(r.display, p) || hasPrefixAtBoundary(r.raw, p)) {
			return true
		}
	}
	return false
}

func hasPrefixAtBoundary(s, prefix string) bool {
	if !strings.HasPrefix(s, prefix) {
		return false
	}
	rest := s[len(prefix):]
	return rest == "" || rest == ".git" || rest == "/" ||
		strings.HasSuffix(prefix, "/") || strings.HasSuffix(prefix, ":") || strings.HasPrefix(rest, "/")
}

// isLoopback reports whether host names this machine, where plain HTTP does
// not expose credentials to the network.
func (r remote) isLoopback() bool {
	if r.host == "localhost" {
		return true
	}
	ip := net.ParseIP(r.host)
	return ip != nil && ip.IsLoopback()
}

// checkRef refuses refs git would read as options and names git does not
// allow in refs (see git-check-ref-format), so a ref can't smuggle patterns.
func checkRef(ref string) error {
	if ref == "" {
		return fmt.Errorf("ref is empty; set a tag, a branch or a full commit SHA")
	}
	if strings.HasPrefix(ref, "-") {
		return fmt.Errorf("ref %q starts with '-' and would be read as a git option; use a tag, a branch or a full commit SHA", ref)
	}
	if i := strings.IndexFunc(ref, func(r rune) bool {
		return r <= ' ' || r == 0x7f || strings.ContainsRune(`~^:?*[\`, r)
	}); i >= 0 {
		return fmt.Errorf("ref %q contains %q, which git does not allow in ref names; use a tag, a branch or a full commit SHA", ref, ref[i:i+1])
	}
	if strings.Contains(ref, "..") || strings.Contains(ref, "@{") || strings.Contains(ref, "//") ||
		strings.HasPrefix(ref, "/") || strings.HasSuffix(ref, "/") || strings.HasSuffix(ref, ".") ||
		strings.HasSuffix(ref, ".lock") || ref == "@" {
		return fmt.Errorf("ref %q is not a valid git ref name; use a tag, a branch or a full commit SHA", ref)
	}
	return nil
}

// isFullSHA reports whether ref is a full SHA-1 or SHA-256 object name.
func isFullSHA(ref string) bool {
	return (len(ref) == 40 || len(ref) == 64) && isHex(ref)
}

func isHex(s string) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return s != ""
}
