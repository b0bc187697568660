package gitrepo_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha512"
	"encoding/base64"
	"encoding/pem"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"golang.org/x/crypto/ssh"

	"github.com/kubectl-gitops/kubectl-gitops/internal/gitrepo"
)

// payload stands for a commit object without its signature.
const payload = "tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n" +
	"author Image Bot <bot@example.com> 1717236000 +0200\n" +
	"committer Image Bot <bot@example.com> 1717236000 +0200\n\nUpdate app\n"

// sshKey returns a new private key of kind as PEM (encrypted with
// passphrase, if any) and its public key.
func sshKey(t *testing.T, kind, passphrase string) ([]byte, ssh.PublicKey) {
	t.Helper()
	var key crypto.Signer
	var err error
	switch kind {
	case "ed25519":
		_, key, err = ed25519.GenerateKey(rand.Reader)
	case "ecdsa":
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "rsa":
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		t.Fatal(err)
	}
	var block *pem.Block
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(key, "bot@example.com")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(key, "bot@example.com", []byte(passphrase))
	}
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ssh.NewPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(block), pub
}

// verifySSHSIG checks an armored SSHSIG signature of message in the "git"
// namespace against pub, following OpenSSH's PROTOCOL.sshsig independently
// of the code under test.
func verifySSHSIG(t *testing.T, pub ssh.PublicKey, message, armored []byte) {
	t.Helper()
	text := strings.TrimSpace(string(armored))
	body, ok := strings.CutPrefix(text, "-----BEGIN SSH SIGNATURE-----\n")
	body, ok2 := strings.CutSuffix(body, "\n-----END SSH SIGNATURE-----")
	if !ok || !ok2 {
		t.Fatalf("signature is not armored as ssh-keygen does:\n%s", armored)
	}
	for line := range strings.SplitSeq(body, "\n") {
		if len(line) > 70 {
			t.Errorf("armor line of %d characters, want at most 70", len(line))
		}
	}
	blob, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(body, "\n", ""))
	if err != nil {
		t.Fatal(err)
	}
	rest, ok := bytes.CutPrefix(blob, []byte("SSHSIG"))
	if !ok {
		t.Fatal("signature lacks the SSHSIG preamble")
	}
	var sig struct {
		Version   uint32
		PublicKey []byte
		Namespace string
		Reserved  string
		HashAlg   string
		Signature []byte
	}
	if err := ssh.Unmarshal(rest, &sig); err != nil {
		t.Fatal(err)
	}
	if sig.Version != 1 || !bytes.Equal(sig.PublicKey, pub.Marshal()) || sig.Namespace != "git" || sig.HashAlg != "sha512" {
		t.Fatalf("signature: version %d, namespace %q, hash %q, own key %v; want 1, git, sha512, true",
			sig.Version, sig.Namespace, sig.HashAlg, bytes.Equal(sig.PublicKey, pub.Marshal()))
	}
	var s ssh.Signature
	if err := ssh.Unmarshal(sig.Signature, &s); err != nil {
		t.Fatal(err)
	}
	if pub.Type() == ssh.KeyAlgoRSA && s.Format != ssh.KeyAlgoRSASHA512 {
		t.Errorf("RSA signature format %q, want %s", s.Format, ssh.KeyAlgoRSASHA512)
	}
	h := sha512.Sum512(message)
	signed := append([]byte("SSHSIG"), ssh.Marshal(struct {
		Namespace, Reserved, HashAlg string
		Hash                         []byte
	}{"git", "", "sha512", h[:]})...)
	if err := pub.Verify(signed, &s); err != nil {
		t.Errorf("signature does not verify: %v", err)
	}
}

// sshKeygen returns the path of ssh-keygen, or "" when it is missing. The
// tests then verify signatures in Go only (they always do, so CI without
// ssh-keygen still checks them), and say so.
func sshKeygen(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("ssh-keygen")
	if err != nil {
		t.Logf("ssh-keygen not found (CI=%q): signatures are verified in Go only, not by ssh-keygen or git verify-commit", os.Getenv("CI"))
		return ""
	}
	return path
}

// TestSSHSigner signs with each kind of SSH key and checks the signatures
// in Go and, when it is installed, with ssh-keygen -Y verify.
func TestSSHSigner(t *testing.T) {
	keygen := sshKeygen(t)
	for _, tc := range []struct {
		kind, passphrase string
		deterministic    bool
	}{
		{kind: "ed25519", deterministic: true},
		{kind: "ed25519", passphrase: "s3cret", deterministic: true},
		{kind: "ecdsa"},
		{kind: "rsa", passphrase: "s3cret", deterministic: true},
	} {
		t.Run(tc.kind+"/"+tc.passphrase, func(t *testing.T) {
			key, pub := sshKey(t, tc.kind, tc.passphrase)
			signer, err := gitrepo.NewSSHSigner(key, []byte(tc.passphrase))
			if err != nil {
				t.Fatal(err)
			}
			sig, err := signer.Sign(strings.NewReader(payload))
			if err != nil {
				t.Fatal(err)
			}
			verifySSHSIG(t, pub, []byte(payload), sig)
			if again, err := signer.Sign(strings.NewReader(payload)); tc.deterministic && (err != nil || !bytes.Equal(again, sig)) {
				t.Errorf("second signature of the same payload differs (%v)", err)
			}
			if keygen == "" {
				return
			}
			dir := t.TempDir()
			allowed := filepath.Join(dir, "allowed_signers")
			sigFile := filepath.Join(dir, "payload.sig")
			if err := os.WriteFile(allowed, []byte("bot@example.com "+string(ssh.MarshalAuthorizedKey(pub))), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(sigFile, sig, 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.CommandContext(t.Context(), keygen, "-Y", "verify", "-f", allowed, "-I", "bot@example.com", "-n", "git", "-s", sigFile)
			cmd.Stdin = strings.NewReader(payload)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("ssh-keygen -Y verify: %v\n%s", err, out)
			}
		})
	}
}

// TestNewSSHSignerErrors: keys that can't sign fail early, saying why.
func TestNewSSHSignerErrors(t *testing.T) {
	encrypted, pub := sshKey(t, "ed25519", "s3cret")
	for _, tc := range []struct {
		name       string
		key        []byte
		passphrase string
		want       string
	}{
		{"garbage", []byte("not a key"), "", "set a PEM private key"},
		{"public key", ssh.MarshalAuthorizedKey(pub), "", "set a PEM private key"},
		{"encrypted without passphrase", encrypted, "", "ssh signing key is encrypted; set its passphrase"},
		{"wrong passphrase", encrypted, "wrong", "check its passphrase"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := gitrepo.NewSSHSigner(tc.key, []byte(tc.passphrase))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewSSHSigner = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// splitSigned splits a raw commit object into the payload that was signed
// (the commit without its gpgsig header) and the signature.
func splitSigned(t *testing.T, raw string) (payload, sig string) {
	t.Helper()
	headers, message, ok := strings.Cut(raw, "\n\n")
	if !ok {
		t.Fatalf("commit has no message:\n%s", raw)
	}
	var p, s strings.Builder
	inSig := false
	for line := range strings.SplitSeq(headers, "\n") {
		switch {
		case strings.HasPrefix(line, "gpgsig "):
			inSig = true
			s.WriteString(strings.TrimPrefix(line, "gpgsig ") + "\n")
		case inSig && strings.HasPrefix(line, " "):
			s.WriteString(line[1:] + "\n")
		default:
			inSig = false
			p.WriteString(line + "\n")
		}
	}
	if s.Len() == 0 {
		t.Fatalf("commit is not signed:\n%s", raw)
	}
	return p.String() + "\n" + message, s.String()
}

// TestPushSSHSigned pushes a commit signed with an SSH key and checks it as
// git does (git verify-commit with gpg.format=ssh, which runs ssh-keygen)
// and, always, in Go.
func TestPushSSHSigned(t *testing.T) {
	fx := newPushFixture(t)
	key, pub := sshKey(t, "ed25519", "")
	signer, err := gitrepo.NewSSHSigner(key, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := fx.change("bot/signed")
	c.Signer = signer
	sha, err := newPusher().Push(t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	raw := gitRaw(t, fx.repo.Dir, "cat-file", "commit", sha)
	signed, sig := splitSigned(t, raw)
	verifySSHSIG(t, pub, []byte(signed), []byte(sig))

	// The same change and key give the same commit.
	c.Branch = "bot/signed-again"
	if again, err := newPusher().Push(t.Context(), c); err != nil || again != sha {
		t.Errorf("second signed push = %s, %v; want %s", again, err, sha)
	}

	if sshKeygen(t) == "" {
		return
	}
	allowed := filepath.Join(t.TempDir(), "allowed_signers")
	if err := os.WriteFile(allowed, []byte("bot@example.com "+string(ssh.MarshalAuthorizedKey(pub))), 0o600); err != nil {
		t.Fatal(err)
	}
	out := gitOut(t, fx.repo.Dir, "-c", "gpg.format=ssh", "-c", "gpg.ssh.allowedSignersFile="+allowed, "verify-commit", "-v", sha)
	if !strings.Contains(out, `Good "git" signature for bot@example.com`) {
		t.Errorf("git verify-commit:\n%s", out)
	}
}

// gpgKey returns a new OpenPGP key (created before the test commits) as an
// armored private key, encrypted with passphrase if any, and its public
// key ring.
func gpgKey(t *testing.T, algo packet.PublicKeyAlgorithm, passphrase string) ([]byte, openpgp.EntityList) {
	t.Helper()
	created := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	e, err := openpgp.NewEntity("Image Bot", "", "bot@example.com", &packet.Config{
		Algorithm: algo,
		RSABits:   2048,
		Time:      func() time.Time { return created },
	})
	if err != nil {
		t.Fatal(err)
	}
	if passphrase != "" {
		if err := e.EncryptPrivateKeys([]byte(passphrase), nil); err != nil {
			t.Fatal(err)
		}
	}
	var priv, pub bytes.Buffer
	w, err := armor.Encode(&priv, openpgp.PrivateKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.SerializePrivateWithoutSigning(w, nil); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if err := e.Serialize(&pub); err != nil {
		t.Fatal(err)
	}
	ring, err := openpgp.ReadKeyRing(&pub)
	if err != nil {
		t.Fatal(err)
	}
	return priv.Bytes(), ring
}

// TestPushGPGSigned pushes commits signed with OpenPGP keys and checks the
// signatures over the commit payload with go-crypto, as gpg would.
func TestPushGPGSigned(t *testing.T) {
	fx := newPushFixture(t)
	for _, tc := range []struct {
		name       string
		algo       packet.PublicKeyAlgorithm
		passphrase string
	}{
		{name: "ed25519", algo: packet.PubKeyAlgoEdDSA},
		{name: "ed25519 encrypted", algo: packet.PubKeyAlgoEdDSA, passphrase: "s3cret"},
		{name: "rsa encrypted", algo: packet.PubKeyAlgoRSA, passphrase: "s3cret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, ring := gpgKey(t, tc.algo, tc.passphrase)
			signer, err := gitrepo.NewGPGSigner(key, []byte(tc.passphrase))
			if err != nil {
				t.Fatal(err)
			}
			c := fx.change("bot/" + strings.ReplaceAll(tc.name, " ", "-"))
			c.Signer = signer
			sha, err := newPusher().Push(t.Context(), c)
			if err != nil {
				t.Fatal(err)
			}
			signed, sig := splitSigned(t, gitRaw(t, fx.repo.Dir, "cat-file", "commit", sha))
			if !strings.HasPrefix(sig, "-----BEGIN PGP SIGNATURE-----\n") {
				t.Errorf("signature is not armored:\n%s", sig)
			}
			by, err := openpgp.CheckArmoredDetachedSignature(ring, strings.NewReader(signed), strings.NewReader(sig), nil)
			if err != nil {
				t.Fatalf("signature does not verify: %v", err)
			}
			if by.PrimaryKey.KeyId != ring[0].PrimaryKey.KeyId {
				t.Errorf("signed by key %X, want %X", by.PrimaryKey.KeyId, ring[0].PrimaryKey.KeyId)
			}
			block, err := armor.Decode(strings.NewReader(sig))
			if err != nil {
				t.Fatal(err)
			}
			p, err := packet.Read(block.Body)
			if err != nil {
				t.Fatal(err)
			}
			if s, ok := p.(*packet.Signature); !ok || !s.CreationTime.Equal(c.Author.When) {
				t.Errorf("signature packet %T created at %v, want the commit's time %v", p, s.CreationTime, c.Author.When)
			}

			// The same change and key give the same commit.
			c.Branch += "-again"
			if again, err := newPusher().Push(t.Context(), c); err != nil || again != sha {
				t.Errorf("second signed push = %s, %v; want %s", again, err, sha)
			}
		})
	}
}

// TestNewGPGSignerErrors: keys that can't sign fail early, saying why; a
// commit dated before the key fails to sign.
func TestNewGPGSignerErrors(t *testing.T) {
	encrypted, ring := gpgKey(t, packet.PubKeyAlgoEdDSA, "s3cret")
	plain, _ := gpgKey(t, packet.PubKeyAlgoEdDSA, "")
	// armored writes packets as one armored block.
	armored := func(blockType string, packets ...[]byte) []byte {
		var b bytes.Buffer
		w, err := armor.Encode(&b, blockType, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range packets {
			w.Write(p)
		}
		w.Close()
		return b.Bytes()
	}
	// unarmored returns the packets of an armored key.
	unarmored := func(key []byte) []byte {
		block, err := armor.Decode(bytes.NewReader(key))
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(block.Body)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var pub bytes.Buffer
	if err := ring[0].Serialize(&pub); err != nil {
		t.Fatal(err)
	}
	other, _ := gpgKey(t, packet.PubKeyAlgoEdDSA, "")
	public := armored(openpgp.PublicKeyType, pub.Bytes())
	twoKeys := armored(openpgp.PrivateKeyType, unarmored(plain), unarmored(other))
	for _, tc := range []struct {
		name       string
		key        []byte
		passphrase string
		want       string
	}{
		{"garbage", []byte("not a key"), "", "set an armored private key"},
		{"public key", public, "", "the key ring holds no private key"},
		{"two keys", twoKeys, "", "more than one private key"},
		{"encrypted without passphrase", encrypted, "", "gpg signing key is encrypted; set its passphrase"},
		{"wrong passphrase", encrypted, "wrong", "check its passphrase"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := gitrepo.NewGPGSigner(tc.key, []byte(tc.passphrase))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewGPGSigner = %v, want an error containing %q", err, tc.want)
			}
		})
	}

	t.Run("commit older than the key", func(t *testing.T) {
		signer, err := gitrepo.NewGPGSigner(plain, nil)
		if err != nil {
			t.Fatal(err)
		}
		old := strings.ReplaceAll(payload, "1717236000", "1600000000")
		if _, err := signer.Sign(strings.NewReader(old)); err == nil || !strings.Contains(err.Error(), "check that the key can sign at that time") {
			t.Errorf("Sign of a commit dated before the key = %v", err)
		}
	})
}
