package gitrepo

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
)

// TestGuardedTransport checks the limits below go-git: no redirect reaches
// the client, an error body is cut short, and a ref listing over refsLimit
// fails instead of filling memory.
func TestGuardedTransport(t *testing.T) {
	var followed bool
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { followed = true }))
	t.Cleanup(target.Close)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/redirect":
			http.Redirect(w, r, target.URL, http.StatusFound)
		case "/error":
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, strings.Repeat("e", 1<<20))
		case "/refs":
			chunk := []byte(strings.Repeat("r", 1<<20))
			for range refsLimit/len(chunk) + 2 {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}
	}))
	t.Cleanup(srv.Close)
	client := &http.Client{Transport: guardedTransport{base: baseHTTPTransport()}}

	if _, err := client.Get(srv.URL + "/redirect"); !errors.Is(err, errRedirect) || followed {
		t.Errorf("redirect: err %v, followed %v; want errRedirect, not followed", err, followed)
	}

	res, err := client.Get(srv.URL + "/error")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || len(body) != errBodyLimit {
		t.Errorf("error body: read %d bytes, %v; want %d", len(body), err, errBodyLimit)
	}

	res, err = client.Get(srv.URL + "/refs")
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if !errors.Is(err, errRefsTooLarge) || n != refsLimit {
		t.Errorf("ref listing: read %d bytes, %v; want %d and errRefsTooLarge", n, err, refsLimit)
	}
}

// TestScrub checks that credentials, URL userinfo and control characters
// never survive into a message, and that a message stays short.
func TestScrub(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"auth s3cret failed", "auth [redacted] failed"},
		{"Get https://bot:tok@host/x: 401", "Get https://host/x: 401"},
		{"ssh://git:pw@host:22/x", "ssh://host:22/x"},
		{"red \x1b[31mtext\x1b[0m\r\nnext", "red [31mtext[0m\nnext"},
	} {
		if got := scrub(tc.in, []string{"s3cret"}); got != tc.want {
			t.Errorf("scrub(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := scrub(strings.Repeat("x", 1<<20), nil); len(got) > errBodyLimit+len("…") {
		t.Errorf("scrub kept %d bytes", len(got))
	}
}

// TestSSHKeyFile finds the first passphrase-less default key of ~/.ssh,
// skipping one that needs a passphrase, as ssh does without an agent.
func TestSSHKeyFile(t *testing.T) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	locked, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		files map[string]*pem.Block
		want  bool
	}{
		{"no keys", nil, false},
		{"a passphrase-less key", map[string]*pem.Block{"id_rsa": plain}, true},
		{"only a key with a passphrase", map[string]*pem.Block{"id_ed25519": locked}, false},
		{"a locked key, then a plain one", map[string]*pem.Block{"id_ed25519": locked, "id_ecdsa": plain}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			home := t.TempDir()
			t.Setenv("HOME", home)
			if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
				t.Fatal(err)
			}
			for name, block := range tc.files {
				if err := os.WriteFile(filepath.Join(home, ".ssh", name), pem.EncodeToMemory(block), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got := sshKeyFile("")
			if (got != nil) != tc.want {
				t.Fatalf("sshKeyFile = %v, want a key: %v", got, tc.want)
			}
			if got != nil && got.(*gitssh.PublicKeys).User != "git" {
				t.Errorf("user = %q, want git", got.(*gitssh.PublicKeys).User)
			}
		})
	}
}

func TestClassifyMessages(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	for _, tc := range []struct {
		name string
		err  error
		msg  string
		want string
	}{
		{"port containing 404 refused", refused, `Get "http://127.0.0.1:40453/org/app/info/refs": dial tcp 127.0.0.1:40453: connect: connection refused`, "reach the Git server"},
		{"port 404 refused", refused, `dial tcp 127.0.0.1:404: connect: connection refused`, "reach the Git server"},
		{"status 404", errors.New("x"), `unexpected client error: unexpected requesting "http://127.0.0.1:40453/org/x" status code: 404`, "can read the repository"},
		{"404 at the start", errors.New("x"), `404 Not Found`, "can read the repository"},
		{"number containing 404", errors.New("x"), `object 14045 is odd`, "check the URL and the ref"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := classify(tc.err, tc.msg); !strings.Contains(got, tc.want) {
				t.Errorf("classify(%q) = %q, want it to contain %q", tc.msg, got, tc.want)
			}
		})
	}
}
