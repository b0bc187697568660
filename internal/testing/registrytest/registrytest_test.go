package registrytest

import (
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

func TestPushListsEveryTag(t *testing.T) {
	r := Start(t)
	digest := r.Push(t, "acme/app", "1.0.0", "1.1.0", "latest")
	repo := r.Repo(t, "acme/app")
	tags, err := remote.List(repo, remote.WithContext(t.Context()))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(tags)
	if want := []string{"1.0.0", "1.1.0", "latest"}; !slices.Equal(tags, want) {
		t.Errorf("tags = %v, want %v", tags, want)
	}
	for _, tag := range tags {
		d, err := remote.Head(repo.Tag(tag), remote.WithContext(t.Context()))
		if err != nil {
			t.Fatal(err)
		}
		if d.Digest != digest {
			t.Errorf("%s is %s, want the pushed %s", tag, d.Digest, digest)
		}
	}
}

func TestPushCreatedSetsTheConfigsTime(t *testing.T) {
	r := Start(t)
	old := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	young := old.Add(48 * time.Hour)
	digests := r.PushCreated(t, "acme/app", map[string]time.Time{"1.0.0": old, "1.0.1": old, "2.0.0": young})
	if digests["1.0.0"] != digests["1.0.1"] || digests["1.0.0"] == digests["2.0.0"] {
		t.Errorf("digests = %v: want one image per created time", digests)
	}
	for tag, want := range map[string]time.Time{"1.0.0": old, "2.0.0": young} {
		img, err := remote.Image(r.Repo(t, "acme/app").Tag(tag), remote.WithContext(t.Context()))
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if !cf.Created.Time.Equal(want) {
			t.Errorf("%s created %v, want %v", tag, cf.Created.Time, want)
		}
	}
}

func TestBasicAuth(t *testing.T) {
	r := Start(t, WithBasicAuth("robot", "s3cret-pass"))
	r.Push(t, "private/app", "1.0.0")
	repo := r.Repo(t, "private/app")
	tags, err := remote.List(repo, remote.WithContext(t.Context()), remote.WithAuth(&authn.Basic{Username: "robot", Password: "s3cret-pass"}))
	if err != nil || !slices.Equal(tags, []string{"1.0.0"}) {
		t.Fatalf("listing with the credentials: %v, %v", tags, err)
	}
	for name, auth := range map[string]authn.Authenticator{
		"anonymous":      authn.Anonymous,
		"wrong password": &authn.Basic{Username: "robot", Password: "wrong"},
	} {
		_, err := remote.List(repo, remote.WithContext(t.Context()), remote.WithAuth(auth))
		var terr *transport.Error
		if !errors.As(err, &terr) || terr.StatusCode != http.StatusUnauthorized {
			t.Errorf("listing %s: %v, want HTTP 401", name, err)
		}
	}
}
