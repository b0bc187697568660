package registrytest

import (
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// Credential is what kc gives repository repo: "user:password", "token T"
// for an identity token, "" for anonymous.
func Credential(t testing.TB, kc authn.Keychain, repo string) string {
	t.Helper()
	r, err := name.NewRepository(repo)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := kc.Resolve(r)
	if err != nil {
		t.Fatal(err)
	}
	if auth == authn.Anonymous {
		return ""
	}
	a, err := auth.Authorization()
	if err != nil {
		t.Fatal(err)
	}
	if a.IdentityToken != "" {
		return "token " + a.IdentityToken
	}
	return a.Username + ":" + a.Password
}
