package gitrepo

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

const (
	// stderrLimit bounds how much of git's stderr is kept for an error.
	stderrLimit = 4 << 10
	// stdoutLimit bounds git's output (ls-remote of a few patterns).
	stdoutLimit = 1 << 20
	// waitDelay bounds how long to wait for git's helpers (git-remote-https)
	// to release their output pipes after git itself was killed.
	waitDelay = 5 * time.Second
	redacted  = "[redacted]"
)

// inheritedGitEnv are the GIT_* variables kept from the caller's environment:
// they select the SSH client and TLS roots, not what is fetched or how.
// Everything else GIT_* (GIT_DIR, GIT_CONFIG_*, GIT_TRACE*, GIT_SSL_NO_VERIFY,
// GIT_ASKPASS, …) is dropped.
const inheritedGitEnv = " GIT_SSH GIT_SSH_COMMAND GIT_SSH_VARIANT GIT_SSL_CAINFO GIT_SSL_CAPATH GIT_EXEC_PATH "

// gitCmd is one prepared git invocation environment for a source.
type gitCmd struct {
	env     []string
	secrets []string // strings scrubbed from git's output
	args    []string // -c options preceding every subcommand
}

// newGitCmd builds the environment and configuration for talking to r.
// Credentials from auth go into an http.extraHeader passed through
// GIT_CONFIG_COUNT/KEY/VALUE variables: never the URL, argv or config files.
func newGitCmd(r remote, auth func(string) (string, string, bool), allowFile bool) (*gitCmd, error) {
	g := &gitCmd{}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "SSH_ASKPASS" || (strings.HasPrefix(k, "GIT_") && !strings.Contains(inheritedGitEnv, " "+k+" ")) {
			continue
		}
		g.env = append(g.env, kv)
	}
	g.env = append(g.env,
		"GIT_TERMINAL_PROMPT=0",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL="+os.DevNull,
		"LC_ALL=C",
	)
	if auth != nil && (r.scheme == "https" || r.scheme == "http") {
		user, pass, ok := auth(r.raw)
		if ok {
			if r.scheme == "http" && !r.isLoopback() {
				return nil, fmt.Errorf("source %s uses plain http and has credentials; refusing to send them unencrypted, use https", r.display)
			}
			token := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
			g.env = append(g.env,
				"GIT_CONFIG_COUNT=1",
				"GIT_CONFIG_KEY_0=http.extraHeader",
				"GIT_CONFIG_VALUE_0=Authorization: Basic "+token,
			)
			g.secrets = append(g.secrets, token, user+":"+pass)
			if pass != "" {
				g.secrets = append(g.secrets, pass)
			} else if user != "" {
				// A token sent as the username is the secret.
				g.secrets = append(g.secrets, user)
			}
		}
	}
	fileAllow := "never"
	if allowFile {
		fileAllow = "always"
	}
	for _, kv := range []string{
		"protocol.allow=never",
		"protocol.https.allow=always",
		"protocol.http.allow=always",
		"protocol.ssh.allow=always",
		"protocol.file.allow=" + fileAllow,
		"http.followRedirects=false",
		"core.hooksPath=" + os.DevNull,
		"core.askPass=", // an empty askpass also disables SSH_ASKPASS
		"core.fsmonitor=false",
		"credential.helper=",
		"submodule.recurse=false",
		"fetch.recurseSubmodules=false",
		"init.defaultBranch=main",
		"advice.detachedHead=false",
		"gc.auto=0",
		"maintenance.auto=false",
	} {
		g.args = append(g.args, "-c", kv)
	}
	return g, nil
}

// run runs git in dir with argv only and returns its standard output.
func (g *gitCmd) run(ctx context.Context, dir string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "git", append(append([]string(nil), g.args...), args...)...)
	cmd.Dir = dir
	// Never discover a repository above dir, whose configuration could
	// change what git runs.
	cmd.Env = append(append([]string(nil), g.env...), "GIT_CEILING_DIRECTORIES="+filepath.Dir(dir))
	cmd.WaitDelay = waitDelay
	stdout := &limitedBuffer{limit: stdoutLimit}
	stderr := &limitedBuffer{limit: stderrLimit}
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	err := cmd.Run()
	if ctxErr := ctx.Err(); ctxErr != nil {
		return nil, fmt.Errorf("git %s: %w", args[0], ctxErr)
	}
	if err != nil {
		return nil, &gitError{
			sub:    args[0],
			err:    err,
			stderr: scrub(stderr.String(), g.secrets),
		}
	}
	if stdout.truncated {
		return nil, fmt.Errorf("git %s: output exceeds %d bytes", args[0], stdoutLimit)
	}
	return stdout.Bytes(), nil
}

// gitError is a failed git command with its (scrubbed, bounded) stderr.
type gitError struct {
	sub    string
	err    error
	stderr string
}

func (e *gitError) Error() string {
	if e.stderr == "" {
		return fmt.Sprintf("git %s: %v", e.sub, e.err)
	}
	return fmt.Sprintf("git %s: %v: %s", e.sub, e.err, e.stderr)
}

func (e *gitError) Unwrap() error { return e.err }

// hint says what to do about a failed git command, judging by its stderr.
func hint(err error) string {
	var ge *gitError
	if !errors.As(err, &ge) {
		return "check the URL and the ref, then retry"
	}
	s := strings.ToLower(ge.stderr)
	switch {
	case strings.Contains(s, "could not read username"), strings.Contains(s, "could not read password"),
		strings.Contains(s, "authentication failed"), strings.Contains(s, "401"), strings.Contains(s, "403"):
		return "check the credentials configured for this source (a user and a token that can read the repository)"
	case strings.Contains(s, "not our ref"), strings.Contains(s, "unadvertised object"), strings.Contains(s, "couldn't find remote ref"):
		return "check that the commit exists in the repository (the server may also refuse fetching commits by SHA; use a tag or branch then)"
	case strings.Contains(s, "not found"), strings.Contains(s, "404"), strings.Contains(s, "does not appear to be a git repository"):
		return "check the URL and that the credentials for this source can read the repository"
	case strings.Contains(s, "could not resolve host"), strings.Contains(s, "failed to connect"),
		strings.Contains(s, "connection refused"), strings.Contains(s, "timed out"):
		return "check the URL and that this host can reach the Git server"
	case strings.Contains(s, "redirect"):
		return "redirects are not followed; use the repository's final URL"
	default:
		return "check the URL and the ref, then retry"
	}
}

// scrub removes credentials from git's output: the secrets given and any
// userinfo in URLs. It also drops control characters other than newline.
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
	return strings.TrimSpace(s)
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

// limitedBuffer keeps the first limit bytes written and discards the rest,
// without failing the writer (git would die on a broken pipe).
type limitedBuffer struct {
	bytes.Buffer
	limit     int
	truncated bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.limit - b.Len(); room < len(p) {
		b.truncated = true
		if room > 0 {
			b.Buffer.Write(p[:room])
		}
		return len(p), nil
	}
	return b.Buffer.Write(p)
}
