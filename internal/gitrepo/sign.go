package gitrepo

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"golang.org/x/crypto/ssh"
)

// Signer signs a commit: message is the commit object without its signature,
// and Sign returns the armored signature git stores in the commit's gpgsig
// header. It has the shape of go-git's Signer, so either can stand for the
// other.
type Signer interface {
	Sign(message io.Reader) ([]byte, error)
}

// sshsigNamespace is the namespace git signs commits in; git verify-commit
// refuses a signature made for any other.
const sshsigNamespace = "git"

// sshSigner makes SSHSIG signatures (OpenSSH's PROTOCOL.sshsig), as
// `git -c gpg.format=ssh commit -S` and `ssh-keygen -Y sign -n git` do.
type sshSigner struct {
	key ssh.Signer
}

// NewSSHSigner returns a Signer that signs with an SSH private key (PEM: the
// OpenSSH format ssh-keygen writes, or PKCS#1, PKCS#8 or SEC 1), decrypting
// it with passphrase when it is encrypted. Signatures use SHA-512 in the
// "git" namespace; those of Ed25519 and RSA keys are the same for the same
// commit, those of ECDSA keys differ on each call.
func NewSSHSigner(privateKeyPEM []byte, passphrase []byte) (Signer, error) {
	key, err := ssh.ParsePrivateKey(privateKeyPEM)
	if _, missing := errors.AsType[*ssh.PassphraseMissingError](err); missing {
		if len(passphrase) == 0 {
			return nil, errors.New("ssh signing key is encrypted; set its passphrase")
		}
		key, err = ssh.ParsePrivateKeyWithPassphrase(privateKeyPEM, passphrase)
		if err != nil {
			return nil, fmt.Errorf("ssh signing key: %w; check its passphrase", err)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("ssh signing key: %w; set a PEM private key as ssh-keygen writes it", err)
	}
	return &sshSigner{key: key}, nil
}

// Sign returns message's armored SSHSIG signature.
func (s *sshSigner) Sign(message io.Reader) ([]byte, error) {
	h := sha512.New()
	if _, err := io.Copy(h, message); err != nil {
		return nil, err
	}
	signed := sshsigSignedData(sshsigNamespace, h.Sum(nil))
	var (
		sig *ssh.Signature
		err error
	)
	if as, ok := s.key.(ssh.AlgorithmSigner); ok && s.key.PublicKey().Type() == ssh.KeyAlgoRSA {
		// ssh-rsa means SHA-1, which ssh-keygen no longer accepts.
		sig, err = as.SignWithAlgorithm(rand.Reader, signed, ssh.KeyAlgoRSASHA512)
	} else {
		sig, err = s.key.Sign(rand.Reader, signed)
	}
	if err != nil {
		return nil, fmt.Errorf("ssh sign: %w", err)
	}
	blob := append([]byte("SSHSIG"), ssh.Marshal(struct {
		Version   uint32
		PublicKey []byte
		Namespace string
		Reserved  string
		HashAlg   string
		Signature []byte
	}{1, s.key.PublicKey().Marshal(), sshsigNamespace, "", "sha512", ssh.Marshal(sig)})...)
	return armor("SSH SIGNATURE", blob, 70), nil
}

// sshsigSignedData is what an SSHSIG signature signs: the message's hash,
// bound to a namespace so a signature can't be replayed for another use.
func sshsigSignedData(namespace string, hash []byte) []byte {
	return append([]byte("SSHSIG"), ssh.Marshal(struct {
		Namespace string
		Reserved  string
		HashAlg   string
		Hash      []byte
	}{namespace, "", "sha512", hash})...)
}

// armor wraps data in base64 lines of width characters between BEGIN and
// END lines, as ssh-keygen writes a signature.
func armor(label string, data []byte, width int) []byte {
	enc := base64.StdEncoding.EncodeToString(data)
	var b bytes.Buffer
	b.WriteString("-----BEGIN " + label + "-----\n")
	for len(enc) > width {
		b.WriteString(enc[:width] + "\n")
		enc = enc[width:]
	}
	b.WriteString(enc + "\n")
	b.WriteString("-----END " + label + "-----\n")
	return b.Bytes()
}

// gpgSigner makes armored detached OpenPGP signatures, as gpg does for git.
type gpgSigner struct {
	key *openpgp.Entity
}

// NewGPGSigner returns a Signer that signs with the one OpenPGP private key
// in armoredPrivateKey (as `gpg --armor --export-secret-keys` writes it),
// decrypting it with passphrase when it is encrypted. The signing subkey is
// chosen as gpg does. A signature is dated at its commit's committer time,
// not at the time of signing, so that signing the same commit gives the same
// signature (with Ed25519 and RSA keys).
func NewGPGSigner(armoredPrivateKey []byte, passphrase []byte) (Signer, error) {
	keys, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(armoredPrivateKey))
	if err != nil {
		return nil, fmt.Errorf("gpg signing key: %w; set an armored private key as gpg --armor --export-secret-keys writes it", err)
	}
	var key *openpgp.Entity
	for _, e := range keys {
		if e.PrivateKey == nil {
			continue
		}
		if key != nil {
			return nil, errors.New("gpg signing key: the key ring holds more than one private key; export only the one to sign with")
		}
		key = e
	}
	if key == nil {
		return nil, errors.New("gpg signing key: the key ring holds no private key; export it with gpg --armor --export-secret-keys")
	}
	if encrypted(key) {
		if len(passphrase) == 0 {
			return nil, errors.New("gpg signing key is encrypted; set its passphrase")
		}
		if err := key.DecryptPrivateKeys(passphrase); err != nil {
			return nil, fmt.Errorf("gpg signing key: %w; check its passphrase", err)
		}
	}
	if _, ok := key.SigningKey(time.Now()); !ok {
		return nil, errors.New("gpg signing key has no valid signing key (it is expired, revoked or can't sign); create or extend a signing subkey")
	}
	return &gpgSigner{key: key}, nil
}

// encrypted reports whether any private key of e needs a passphrase.
func encrypted(e *openpgp.Entity) bool {
	if e.PrivateKey != nil && e.PrivateKey.Encrypted {
		return true
	}
	for _, sub := range e.Subkeys {
		if sub.PrivateKey != nil && sub.PrivateKey.Encrypted {
			return true
		}
	}
	return false
}

// Sign returns message's armored detached signature.
func (s *gpgSigner) Sign(message io.Reader) ([]byte, error) {
	msg, err := io.ReadAll(message)
	if err != nil {
		return nil, err
	}
	when, ok := signedAt(msg)
	if !ok {
		when = time.Now()
	}
	deterministic := false
	config := &packet.Config{
		DefaultHash: crypto.SHA512,
		Time:        func() time.Time { return when },
		// go-crypto salts v4 signatures with a random notation by default
		// (gpg does not); without it a retried push makes the same commit.
		NonDeterministicSignaturesViaNotation: &deterministic,
	}
	var b bytes.Buffer
	if err := openpgp.ArmoredDetachSign(&b, s.key, bytes.NewReader(msg), config); err != nil {
		return nil, fmt.Errorf("gpg sign with key %s at %s: %w; check that the key can sign at that time", s.key.PrimaryKey.KeyIdString(), when.UTC().Format(time.RFC3339), err)
	}
	if !bytes.HasSuffix(b.Bytes(), []byte("\n")) {
		b.WriteByte('\n')
	}
	return b.Bytes(), nil
}

// signedAt returns the committer time of a commit object (or the tagger
// time of a tag object) without its signature.
func signedAt(obj []byte) (time.Time, bool) {
	// The headers end at the first empty line.
	headers, _, _ := strings.Cut(string(obj), "\n\n")
	for line := range strings.SplitSeq(headers, "\n") {
		rest, ok := strings.CutPrefix(line, "committer ")
		if !ok {
			rest, ok = strings.CutPrefix(line, "tagger ")
		}
		if !ok {
			continue
		}
		// "Name <email> 1717243200 +0200"
		fields := strings.Fields(rest[strings.LastIndexByte(rest, '>')+1:])
		if len(fields) != 2 {
			return time.Time{}, false
		}
		sec, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return time.Time{}, false
		}
		return time.Unix(sec, 0), true
	}
	return time.Time{}, false
}
