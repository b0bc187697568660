// Package registrytest runs a real container registry for tests: Debian's
// docker-registry (the CNCF distribution server, v2.8) on 127.0.0.1 with
// its storage in the test's temporary directory, optionally behind htpasswd
// basic auth; and pushes small images to it, one image under many tags.
//
// When the binary is missing, Start skips the test, or fails it when
// CI=true: apt-get install docker-registry.
//
// Helpers take a testing.TB and fail the test on error; call them from the
// test's goroutine.
package registrytest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/crypto/bcrypt"
)

// Binary is where Debian's docker-registry package installs the server;
// Start also looks for docker-registry on PATH.
const Binary = "/usr/bin/docker-registry"

// Registry is a running registry.
type Registry struct {
	// Host is its host:port, such as 127.0.0.1:40123: an image is
	// Host + "/" + repository.
	Host string

	auth authn.Authenticator
	seed int64
	mu   sync.Mutex
}

// Option configures Start.
type Option func(*options)

type options struct {
	user, password string
}

// WithBasicAuth makes the registry ask for username and password (htpasswd
// auth); the helpers push with them.
func WithBasicAuth(username, password string) Option {
	return func(o *options) { o.user, o.password = username, password }
}

// Find returns the docker-registry binary, or "" when it is missing.
func Find() string {
	if path, err := exec.LookPath("docker-registry"); err == nil {
		return path
	}
	if fi, err := os.Stat(Binary); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
		return Binary
	}
	return ""
}

// Version returns what docker-registry --version prints, such as
// "docker-registry github.com/docker/distribution 2.8.2+ds1".
func Version(t testing.TB) string {
	t.Helper()
	bin := need(t)
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatalf("docker-registry --version: %v", err)
	}
	return string(bytes.TrimSpace(out))
}

func need(t testing.TB) string {
	t.Helper()
	bin := Find()
	if bin == "" {
		const msg = "docker-registry not found: apt-get install docker-registry"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return bin
}

// Start starts a registry on a free port of 127.0.0.1, waits until /v2/
// answers, and stops it when the test ends.
func Start(t testing.TB, opts ...Option) *Registry {
	t.Helper()
	bin := need(t)
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	dir := t.TempDir()
	auth := ""
	r := &Registry{auth: authn.Anonymous, seed: 1}
	if o.user != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(o.password), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		htpasswd := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(htpasswd, []byte(o.user+":"+string(hash)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		auth = fmt.Sprintf("auth:\n  htpasswd:\n    realm: registrytest\n    path: %s\n", htpasswd)
		r.auth = &authn.Basic{Username: o.user, Password: o.password}
	}
	// The port is free when asked and taken a moment later; another
	// process may take it in between, so a failed start tries another.
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		host := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		config := filepath.Join(dir, "config.yml")
		if err := os.WriteFile(config, []byte(fmt.Sprintf(configTemplate, filepath.Join(dir, "data"), host)+auth), 0o600); err != nil {
			t.Fatal(err)
		}
		stop, err := run(bin, config, filepath.Join(dir, "registry.log"), host)
		if err != nil {
			lastErr = err
			continue
		}
		t.Cleanup(stop)
		r.Host = host
		return r
	}
	t.Fatalf("starting docker-registry: %v", lastErr)
	return nil
}

// configTemplate is the registry's configuration: storage in the test's
// directory, no access log, upload purging off (it would walk the storage
// at start), blob descriptors cached in memory.
const configTemplate = `version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
  secret: registrytest
`

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// run starts the registry and waits until it answers on host; stop stops
// it.
func run(bin, config, logFile, host string) (stop func(), err error) {
	out, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve", config)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("%s serve: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); out.Close() }()
	stop = func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	log := func() string {
		b, _ := os.ReadFile(logFile)
		return string(bytes.TrimSpace(b))
	}
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-exited:
			return nil, fmt.Errorf("docker-registry exited (%v) before answering on %s:\n%s", err, host, log())
		default:
		}
		resp, err := client.Get("http://" + host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return stop, nil
			}
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("docker-registry did not answer on %s within 30s (last: %v):\n%s", host, err, log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Repo returns the image repository repo of the registry, as
// go-containerregistry reads it.
func (r *Registry) Repo(t testing.TB, repo string) name.Repository {
	t.Helper()
	ref, err := name.NewRepository(r.Host + "/" + repo)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// Push pushes one small image to repo under tags and returns its manifest
// digest: the image once, then a PUT of its manifest per tag, 16 at a
// time.
func (r *Registry) Push(t testing.TB, repo string, tags ...string) v1.Hash {
	t.Helper()
	return r.push(t, repo, time.Time{}, tags)
}

// PushCreated pushes, for each tag, a small image whose config says it was
// created at the tag's time (for minimumAge), and returns the manifest
// digest of each tag. Tags with the same time share an image.
func (r *Registry) PushCreated(t testing.TB, repo string, created map[string]time.Time) map[string]v1.Hash {
	t.Helper()
	byTime := map[time.Time][]string{}
	for tag, at := range created {
		byTime[at] = append(byTime[at], tag)
	}
	digests := map[string]v1.Hash{}
	for at, tags := range byTime {
		d := r.push(t, repo, at, tags)
		for _, tag := range tags {
			digests[tag] = d
		}
	}
	return digests
}

// PushAll pushes one small image to each of repos under tags, as Push
// does, several repositories at once: a benchmark's fill.
func (r *Registry) PushAll(t testing.TB, repos []string, tags ...string) {
	t.Helper()
	if len(tags) == 0 {
		t.Fatal("push: no tags")
	}
	ctx := testContext(t)
	// A few repositories at once, so that one's first push overlaps
	// another's tagging; the PUTs in flight shared.
	repoSlots, putSlots := make(chan struct{}, 4), make(chan struct{}, puts)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, repo := range repos {
		repoSlots <- struct{}{}
		wg.Go(func() {
			defer func() { <-repoSlots }()
			if _, err := r.pushErr(ctx, repo, time.Time{}, tags, putSlots); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

// puts bounds the manifest PUTs in flight.
const puts = 16

func testContext(t testing.TB) context.Context {
	if tc, ok := t.(interface{ Context() context.Context }); ok {
		return tc.Context()
	}
	return context.Background()
}

func (r *Registry) push(t testing.TB, repo string, created time.Time, tags []string) v1.Hash {
	t.Helper()
	if len(tags) == 0 {
		t.Fatal("push: no tags")
	}
	digest, err := r.pushErr(testContext(t), repo, created, tags, make(chan struct{}, puts))
	if err != nil {
		t.Fatal(err)
	}
	return digest
}

// pushErr pushes the image under tags[0], then tags it with the others,
// each PUT holding one of slots.
func (r *Registry) pushErr(ctx context.Context, repo string, created time.Time, tags []string, slots chan struct{}) (v1.Hash, error) {
	img, err := r.image(created)
	if err != nil {
		return v1.Hash{}, err
	}
	digest, err := img.Digest()
	if err != nil {
		return v1.Hash{}, err
	}
	raw, err := img.RawManifest()
	if err != nil {
		return v1.Hash{}, err
	}
	mt, err := img.MediaType()
	if err != nil {
		return v1.Hash{}, err
	}
	pusher, err := remote.NewPusher(remote.WithAuth(r.auth))
	if err != nil {
		return v1.Hash{}, err
	}
	base, err := name.NewRepository(r.Host + "/" + repo)
	if err != nil {
		return v1.Hash{}, err
	}
	if err := pusher.Push(ctx, base.Tag(tags[0]), img); err != nil {
		return v1.Hash{}, fmt.Errorf("pushing %s:%s: %w", base, tags[0], err)
	}
	manifest := rawManifest{raw: raw, mediaType: mt}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, tag := range tags[1:] {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			if err := pusher.Put(ctx, base.Tag(tag), manifest); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("tagging %s:%s: %w", base, tag, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return digest, errors.Join(errs...)
}

// image is a small random image (one 512-byte layer), created at created
// when it is set; each call's image differs.
func (r *Registry) image(created time.Time) (v1.Image, error) {
	r.mu.Lock()
	r.seed++
	seed := r.seed
	r.mu.Unlock()
	img, err := random.Image(512, 1, random.WithSource(rand.NewSource(seed)))
	if err != nil {
		return nil, err
	}
	if !created.IsZero() {
		return mutate.CreatedAt(img, v1.Time{Time: created})
	}
	return img, nil
}

// rawManifest is a manifest already serialized, so that tagging it again
// sends the same bytes without marshalling the image.
type rawManifest struct {
	raw       []byte
	mediaType types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.raw, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mediaType, nil }
