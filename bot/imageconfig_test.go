package bot

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

const imagesBase = "github: {token: {env: T}, webhookSecret: {env: T}, repositories: [acme/shop]}\n"

func TestImagesConfig(t *testing.T) {
	dir := t.TempDir()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	sshKey := filepath.Join(dir, "ssh")
	if err := os.WriteFile(sshKey, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	junk := filepath.Join(dir, "junk")
	if err := os.WriteFile(junk, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := lookup(map[string]string{"T": "canary-token-0b7e", "PASS": "canary-passphrase-3c1d"})

	cfg, err := ParseConfig([]byte(imagesBase+"images: {}\n"), vars)
	if err != nil {
		t.Fatal(err)
	}
	if im := cfg.Images; im.CheckInterval != DefaultImageCheckInterval || im.MaxOpenPullRequests != 10 || im.MaxNewPullRequestsPerHour != 2 || im.Author.Name != DefaultImageAuthorName {
		t.Errorf("defaults = %+v", im)
	}
	u, err := NewImageUpdater(*cfg, nil)
	if err != nil || u.Signer != nil || u.MaxOpen != 10 || u.Author.Email != DefaultImageAuthorEmail {
		t.Errorf("NewImageUpdater = %+v, %v", u, err)
	}

	for _, tc := range []struct {
		name, images string
		wantErr      string // of ParseConfig, or else of NewImageUpdater
		signed       bool
	}{
		{"ssh key", "{signingKey: {format: ssh, file: " + sshKey + "}}", "", true},
		{"a key that is not one", "{signingKey: {format: gpg, file: " + junk + ", passphrase: {env: PASS}}}", "images.signingKey " + junk, false},
		{"a missing key", "{signingKey: {format: ssh, file: " + filepath.Join(dir, "nope") + "}}", "images.signingKey", false},
		{"no format", "{signingKey: {file: " + sshKey + "}}", "set format to ssh or gpg", false},
		{"too often", "{checkInterval: 10ms}", "images.checkInterval 10ms is below 1s", false},
		{"negative limit", "{maxOpenPullRequests: -1}", "must be positive", false},
		{"author with a line break", "{author: {name: \"a\\nb\"}}", "images.author", false},
		{"pull secrets without a state block", "{pullSecrets: [regcred]}", "images.pullSecrets: the Secrets are read from the bot's namespace", false},
		{"a pull secret name that is not one", "{pullSecrets: [Reg_Cred]}", `images.pullSecrets[0] "Reg_Cred" is not a Secret name`, false},
		{"a docker config that is not there", "{dockerConfig: " + filepath.Join(dir, "nope.json") + "}", "reading the docker config", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ParseConfig([]byte(imagesBase+"images: "+tc.images+"\n"), vars)
			if err == nil {
				var u *ImageUpdater
				u, err = NewImageUpdater(*cfg, nil)
				if err == nil && (u.Signer != nil) != tc.signed {
					t.Errorf("signer = %v, want signed %v", u.Signer, tc.signed)
				}
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("error %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			case err != nil && strings.Contains(err.Error(), "canary"):
				t.Fatalf("error reveals a secret: %v", err)
			}
		})
	}
}
