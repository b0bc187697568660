package images_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kubectl-gitops/kubectl-gitops/internal/config"
	"github.com/kubectl-gitops/kubectl-gitops/internal/images"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/registrytest"
)

// The unit tests scan go-containerregistry's in-process registry behind a
// handler that injects faults, reached through a transport that calls the
// handler: no sockets, so they run in a synctest bubble, whose clock moves
// only when every goroutine waits. Waits are exact and cost no real time.

// fakeHost is the in-process registry's host; https, as for any registry
// that is not local.
const fakeHost = "registry.test"

// fake is the in-process registry, a log of the requests it was sent
// (after the pushes), and a fault that answers in its place when it
// returns true.
type fake struct {
	inner http.Handler
	seed  int64

	mu    sync.Mutex
	hits  []hit
	fault func(w http.ResponseWriter, r *http.Request) bool
}

type hit struct {
	at     time.Time
	method string
	path   string
	query  string
}

func (h hit) String() string { return h.method + " " + h.path }

func newFake() *fake {
	return &fake{inner: registry.New(registry.Logger(log.New(io.Discard, "", 0)))}
}

func (f *fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.hits = append(f.hits, hit{at: time.Now(), method: r.Method, path: r.URL.Path, query: r.URL.RawQuery})
	fault := f.fault
	f.mu.Unlock()
	if fault != nil && fault(w, r) {
		return
	}
	f.inner.ServeHTTP(w, r)
}

// RoundTrip serves the request in the calling goroutine.
func (f *fake) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		defer req.Body.Close()
	}
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	// The request as a server reads it: a path, a host, a body.
	srv := req.Clone(req.Context())
	srv.URL = &url.URL{Path: req.URL.Path, RawPath: req.URL.RawPath, RawQuery: req.URL.RawQuery}
	srv.RequestURI, srv.Host = srv.URL.RequestURI(), req.URL.Host
	if srv.Body == nil {
		srv.Body = http.NoBody
	}
	rec := httptest.NewRecorder()
	f.ServeHTTP(rec, srv)
	resp := rec.Result()
	resp.Request = req
	return resp, nil
}

func (f *fake) setFault(fault func(w http.ResponseWriter, r *http.Request) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fault = fault
}

// log returns the requests since the last call.
func (f *fake) log() []hit {
	f.mu.Lock()
	defer f.mu.Unlock()
	hits := f.hits
	f.hits = nil
	return hits
}

// push pushes a small image created at created (when set) under tags and
// returns its digest.
func (f *fake) push(t *testing.T, repo string, created time.Time, tags ...string) string {
	t.Helper()
	f.seed++
	img, err := random.Image(256, 1, random.WithSource(rand.NewSource(f.seed)))
	if err != nil {
		t.Fatal(err)
	}
	if !created.IsZero() {
		if img, err = mutate.CreatedAt(img, v1.Time{Time: created}); err != nil {
			t.Fatal(err)
		}
	}
	r, err := name.NewRepository(fakeHost + "/" + repo)
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range tags {
		if err := remote.Write(r.Tag(tag), img, remote.WithTransport(f), remote.WithContext(t.Context())); err != nil {
			t.Fatal(err)
		}
	}
	f.log()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// scanPolicy is a valid policy of the image repo of the fake registry
// (semver >=1.0.0, the default excludes), changed by mods.
func scanPolicy(repo string, mods ...func(*config.ImagePolicy)) config.ImagePolicy {
	return policy(append([]func(*config.ImagePolicy){func(p *config.ImagePolicy) {
		p.Name, p.Image = repo, fakeHost+"/"+repo
	}}, mods...)...)
}

func pin(p *config.ImagePolicy) { p.Digest = config.DigestPin }

func names(ts []images.Tag) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Name
	}
	slices.Sort(out)
	return out
}

func paths(hits []hit) []string {
	out := make([]string, len(hits))
	for i, h := range hits {
		out[i] = h.String()
	}
	return out
}

// tooMany answers 429 with Retry-After v.
func tooMany(w http.ResponseWriter, v string) {
	if v != "" {
		w.Header().Set("Retry-After", v)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusTooManyRequests)
	io.WriteString(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}`)
}

func isTagList(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, "/tags/list") }

func TestScanChoosesAndCountsRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.push(t, "acme/app", time.Time{}, "1.0.0", "1.1.0", "1.2.0-rc.1", "2.0.0.sig", "latest")
		s := &images.Scanner{Transport: f}
		r := s.Scan(t.Context(), images.Request{Policy: scanPolicy("acme/app")})
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		if r.Choice.Tag.Name != "1.1.0" || r.Choice.Why != "highest of 2 tags in >=1.0.0" {
			t.Errorf("choice = %+v, want 1.1.0, highest of 2 tags in >=1.0.0", r.Choice)
		}
		if r.Repository != fakeHost+"/acme/app" || r.FromCache {
			t.Errorf("repository %q, from cache %v", r.Repository, r.FromCache)
		}
		if diff := cmp.Diff([]string{"1.0.0", "1.1.0", "1.2.0-rc.1", "2.0.0.sig", "latest"}, names(r.Tags)); diff != "" {
			t.Errorf("tags (-want +got):\n%s", diff)
		}
		want := []string{"GET /v2/", "GET /v2/acme/app/tags/list"}
		if diff := cmp.Diff(want, paths(f.log())); diff != "" {
			t.Errorf("requests (-want +got):\n%s", diff)
		}
		if r.Requests != len(want) {
			t.Errorf("Requests = %d, want %d", r.Requests, len(want))
		}
	})
}

func TestScanReadsEveryPage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		tags := []string{"1.0.0", "1.0.1", "1.0.2", "1.1.0", "1.1.1", "1.2.0", "1.3.0", "1.4.0", "1.5.0", "1.6.0"}
		f.push(t, "acme/app", time.Time{}, tags...)
		// The registry sends at most 3 tags a page, whatever n asks,
		// and links the next page as the distribution spec says.
		f.setFault(f.paginate(3))
		for _, tc := range []struct {
			pageSize int
			wantN    string
		}{
			{0, "1000"}, // go-containerregistry's default
			{2, "2"},
		} {
			s := &images.Scanner{Transport: f, PageSize: tc.pageSize}
			r := s.Scan(t.Context(), images.Request{Policy: scanPolicy("acme/app")})
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			if diff := cmp.Diff(tags, names(r.Tags)); diff != "" {
				t.Errorf("page size %d: tags (-want +got):\n%s", tc.pageSize, diff)
			}
			if r.Choice.Tag.Name != "1.6.0" {
				t.Errorf("page size %d: chose %s, want 1.6.0 (from the last page)", tc.pageSize, r.Choice.Tag.Name)
			}
			var lists []hit
			for _, h := range f.log() {
				if strings.HasSuffix(h.path, "/tags/list") {
					lists = append(lists, h)
				}
			}
			perPage := 3
			if tc.pageSize > 0 {
				perPage = min(perPage, tc.pageSize)
			}
			if want := (len(tags) + perPage - 1) / perPage; len(lists) != want {
				t.Errorf("page size %d: %d tag list requests, want %d", tc.pageSize, len(lists), want)
			}
			if got := lists[0].query; got != "n="+tc.wantN {
				t.Errorf("page size %d: the first page asked %q, want n=%s", tc.pageSize, got, tc.wantN)
			}
			if r.Requests != 1+len(lists) {
				t.Errorf("page size %d: Requests = %d, want a ping and %d pages", tc.pageSize, r.Requests, len(lists))
			}
		}
	})
}

// paginate answers tag lists perPage tags at a time (fewer when the client
// asks for fewer) with a Link to the next page, as the distribution spec
// says; the in-process registry reads n and last but links no page.
func (f *fake) paginate(perPage int) func(w http.ResponseWriter, r *http.Request) bool {
	return func(w http.ResponseWriter, r *http.Request) bool {
		if !isTagList(r) || r.Method != http.MethodGet {
			return false
		}
		q := r.URL.Query()
		n := perPage
		if asked, err := strconv.Atoi(q.Get("n")); err == nil && asked < n {
			n = asked
		}
		inner := r.Clone(r.Context())
		iq := inner.URL.Query()
		iq.Set("n", strconv.Itoa(n+1))
		inner.URL.RawQuery = iq.Encode()
		rec := httptest.NewRecorder()
		f.inner.ServeHTTP(rec, inner)
		var page struct {
			Name string   `json:"name"`
			Tags []string `json:"tags"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return true
		}
		if len(page.Tags) > n {
			page.Tags = page.Tags[:n]
			next := fmt.Sprintf("%s?n=%d&last=%s", r.URL.Path, n, page.Tags[n-1])
			w.Header().Set("Link", "<"+next+`>; rel="next"`)
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(page)
		return true
	}
}

func TestScanHonoursRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		name string
		// header is Retry-After, given the time of the 429.
		header func(now time.Time) string
		want   time.Duration
	}{
		{"seconds", func(time.Time) string { return "20" }, 20 * time.Second},
		{"HTTP date", func(now time.Time) string { return now.Add(45 * time.Second).UTC().Format(http.TimeFormat) }, 45 * time.Second},
		{"none: a second", func(time.Time) string { return "" }, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFake()
				f.push(t, "acme/app", time.Time{}, "1.0.0")
				var once sync.Once
				f.setFault(func(w http.ResponseWriter, r *http.Request) bool {
					limited := false
					if isTagList(r) {
						once.Do(func() { tooMany(w, tc.header(time.Now())); limited = true })
					}
					return limited
				})
				s := &images.Scanner{Transport: f}
				start := time.Now()
				r := s.Scan(t.Context(), images.Request{Policy: scanPolicy("acme/app")})
				if r.Err != nil {
					t.Fatal(r.Err)
				}
				if got := time.Since(start); got != tc.want {
					t.Errorf("the scan took %v, want the %v Retry-After asked", got, tc.want)
				}
				hits := f.log()
				want := []string{"GET /v2/", "GET /v2/acme/app/tags/list", "GET /v2/acme/app/tags/list"}
				if diff := cmp.Diff(want, paths(hits)); diff != "" {
					t.Fatalf("requests (-want +got):\n%s", diff)
				}
				if got := hits[2].at.Sub(hits[1].at); got != tc.want {
					t.Errorf("retried %v after the 429, want %v", got, tc.want)
				}
				if r.Requests != 3 || r.Choice.Tag.Name != "1.0.0" {
					t.Errorf("Requests = %d, choice %s; want 3 and 1.0.0", r.Requests, r.Choice.Tag.Name)
				}
			})
		})
	}
}

func TestScanHoldsTheWholeHostAfter429(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.push(t, "acme/a", time.Time{}, "1.0.0")
		f.push(t, "acme/b", time.Time{}, "1.0.0")
		var once sync.Once
		f.setFault(func(w http.ResponseWriter, r *http.Request) bool {
			limited := false
			if r.URL.Path == "/v2/acme/a/tags/list" {
				once.Do(func() { tooMany(w, "30"); limited = true })
			}
			return limited
		})
		s := &images.Scanner{Transport: f}
		start := time.Now()
		done := make(chan images.Result, 1)
		go func() { done <- s.Scan(t.Context(), images.Request{Policy: scanPolicy("acme/a")}) }()
		synctest.Wait() // a's list was answered 429; a waits out its Retry-After

		// b is another repository of the same host: its requests wait
		// too, so the host sees nothing until the time it asked for.
		b := s.Scan(t.Context(), images.Request{Policy: scanPolicy("acme/b")})
		a := <-done
		if a.Err != nil || b.Err != nil {
			t.Fatalf("a: %v; b: %v", a.Err, b.Err)
		}
		for _, h := range f.log() {
			switch at := h.at.Sub(start); {
			case at == 0 && h.path != "/v2/acme/b/tags/list":
				// a's ping and its first list
			case at == 30*time.Second:
			default:
				t.Errorf("%s sent at +%v; want nothing before +30s after the 429", h, at)
			}
		}
	})
}

func TestScanGivesUpOnA429Storm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		var reqs []images.Request
		for i := range 10 {
			repo := fmt.Sprintf("acme/app-%d", i)
			f.push(t, repo, time.Time{}, "1.0.0")
			reqs = append(reqs, images.Request{Policy: scanPolicy(repo)})
		}
		f.setFault(func(w http.ResponseWriter, r *http.Request) bool { tooMany(w, "1"); return true })
		s := &images.Scanner{Transport: f, Concurrency: 2}
		start := time.Now()
		results := s.ScanAll(t.Context(), reqs)
		// Two repositories at once, each request sent at most four
		// times; then the host fails the other scans without a request.
		sent := len(f.log())
		if sent > 2*4 {
			t.Errorf("the storm cost %d requests, want at most 8 (2 at once × 4 attempts)", sent)
		}
		total := 0
		for _, r := range results {
			total += r.Requests
			if !errors.Is(r.Err, images.ErrRateLimited) {
				t.Errorf("%s: %v, want ErrRateLimited", r.Policy, r.Err)
				continue
			}
			msg := r.Err.Error()
			if !strings.HasPrefix(msg, "scan "+fakeHost+"/"+r.Policy+": ") || !strings.Contains(msg, "HTTP 429") || !strings.Contains(msg, "interval") {
				t.Errorf("%s: %q should name the repository, the 429 and what to change", r.Policy, msg)
			}
		}
		if total != sent {
			t.Errorf("Results count %d requests, the registry saw %d", total, sent)
		}
		// A request waits while the other retries, and may then spend
		// its own: two rounds of retries at most.
		if got := time.Since(start); got > 2*4*time.Second {
			t.Errorf("the storm took %v, want at most 8s", got)
		}
		t.Logf("first error: %v", results[0].Err)
		t.Logf("last error: %v", results[len(results)-1].Err)

		// While the host's Retry-After runs, a new scan sends nothing.
		again := s.Scan(t.Context(), reqs[0])
		if !errors.Is(again.Err, images.ErrRateLimited) || again.Requests != 0 || len(f.log()) != 0 {
			t.Errorf("a scan during the hold: %v after %d requests, want ErrRateLimited and none", again.Err, again.Requests)
		}
		// After it, the host is asked again, and answers.
		time.Sleep(2 * time.Second)
		f.setFault(nil)
		if r := s.Scan(t.Context(), reqs[0]); r.Err != nil {
			t.Errorf("a scan after the hold: %v", r.Err)
		}
	})
}

func TestScanGivesUpAtOnceOnALongRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.push(t, "acme/a", time.Time{}, "1.0.0")
		f.push(t, "acme/b", time.Time{}, "1.0.0")
		f.setFault(func(w http.ResponseWriter, r *http.Request) bool {
			if isTagList(r) {
				tooMany(w, "3600")
				return true
			}
			return false
		})
		s := &images.Scanner{Transport: f}
		start := time.Now()
		a := s.Scan(t.Context(), images.Request{Policy: scanPolicy("acme/a")})
		if !errors.Is(a.Err, images.ErrRateLimited) || a.Requests != 2 {
			t.Fatalf("a: %v after %d requests, want ErrRateLimited after a ping and one list", a.Err, a.Requests)
		}
		until := start.Add(time.Hour).UTC().Format(time.RFC3339)
		if !strings.Contains(a.Err.Error(), until) {
			t.Errorf("%q should say when the registry takes requests again (%s)", a.Err, until)
		}
		b := s.Scan(t.Context(), images.Request{Policy: scanPolicy("acme/b")})
		if !errors.Is(b.Err, images.ErrRateLimited) || b.Requests != 0 {
			t.Errorf("b: %v after %d requests, want ErrRateLimited and no request", b.Err, b.Requests)
		}
		if got := time.Since(start); got != 0 {
			t.Errorf("the scans waited %v, want no wait longer than a minute", got)
		}
	})
}

func TestScanCancelledWhileWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.push(t, "acme/app", time.Time{}, "1.0.0")
		f.setFault(func(w http.ResponseWriter, r *http.Request) bool {
			if isTagList(r) {
				tooMany(w, "50")
				return true
			}
			return false
		})
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(10*time.Second, cancel)
		s := &images.Scanner{Transport: f}
		start := time.Now()
		r := s.Scan(ctx, images.Request{Policy: scanPolicy("acme/app")})
		if !errors.Is(r.Err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", r.Err)
		}
		if got := time.Since(start); got != 10*time.Second {
			t.Errorf("the cancelled scan returned after %v, want 10s", got)
		}
		if !strings.HasPrefix(r.Err.Error(), "scan "+fakeHost+"/acme/app: ") {
			t.Errorf("%q should name the repository", r.Err)
		}
	})
}

func TestScanBoundsRequestsPerHost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		var reqs []images.Request
		for i := range 6 {
			repo := fmt.Sprintf("acme/app-%d", i)
			f.push(t, repo, time.Time{}, "1.0.0")
			reqs = append(reqs, images.Request{Policy: scanPolicy(repo)})
		}
		var mu sync.Mutex
		inFlight, peak := 0, 0
		f.setFault(func(w http.ResponseWriter, r *http.Request) bool {
			if !isTagList(r) {
				return false
			}
			mu.Lock()
			inFlight++
			peak = max(peak, inFlight)
			mu.Unlock()
			time.Sleep(time.Second) // a slow registry
			mu.Lock()
			inFlight--
			mu.Unlock()
			return false
		})
		s := &images.Scanner{Transport: f, Concurrency: 2}
		start := time.Now()
		for _, r := range s.ScanAll(t.Context(), reqs) {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
		}
		if peak != 2 {
			t.Errorf("%d tag lists at once, want 2", peak)
		}
		if got := time.Since(start); got != 3*time.Second {
			t.Errorf("6 repositories 2 at a time took %v, want 3s", got)
		}
	})
}

func TestScanCache(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.push(t, "acme/app", time.Time{}, "1.0.0", "1.1.0")
		s := &images.Scanner{Transport: f}
		req := images.Request{Policy: scanPolicy("acme/app")}
		scan := func(what string, r images.Request, fromCache bool, requests int, tag string) {
			t.Helper()
			got := s.Scan(t.Context(), r)
			if got.Err != nil {
				t.Fatalf("%s: %v", what, got.Err)
			}
			if got.FromCache != fromCache || got.Requests != requests || got.Choice.Tag.Name != tag {
				t.Errorf("%s: from cache %v, %d requests, chose %s; want %v, %d, %s",
					what, got.FromCache, got.Requests, got.Choice.Tag.Name, fromCache, requests, tag)
			}
		}
		scan("the first scan", req, false, 2, "1.1.0")
		scan("a scan within the interval", req, true, 0, "1.1.0")
		f.push(t, "acme/app", time.Time{}, "1.2.0")
		scan("a scan within the interval after a push", req, true, 0, "1.1.0")
		scan("a forced scan (a receiver's hint)", images.Request{Policy: req.Policy, Force: true}, false, 2, "1.2.0")
		scan("a scan after the forced one", req, true, 0, "1.2.0")
		time.Sleep(images.DefaultInterval)
		scan("a scan an interval later", req, false, 2, "1.2.0")

		minute := scanPolicy("acme/app", func(p *config.ImagePolicy) { p.Interval.Duration = time.Minute })
		time.Sleep(time.Minute)
		scan("a scan of a policy whose interval passed", images.Request{Policy: minute}, false, 2, "1.2.0")

		// Two policies of one repository share its listing.
		other := scanPolicy("acme/app", func(p *config.ImagePolicy) { p.Name = "other"; p.Policy.Semver.Range = "<1.2.0" })
		results := s.ScanAll(t.Context(), []images.Request{{Policy: minute, Force: true}, {Policy: other}})
		if results[0].Requests != 2 || results[1].Requests != 0 || results[0].FromCache || results[1].FromCache {
			t.Errorf("two policies of a repository: %d and %d requests, from cache %v and %v; want one listing for both",
				results[0].Requests, results[1].Requests, results[0].FromCache, results[1].FromCache)
		}
		if results[0].Choice.Tag.Name != "1.2.0" || results[1].Choice.Tag.Name != "1.1.0" {
			t.Errorf("chose %s and %s, want 1.2.0 and 1.1.0", results[0].Choice.Tag.Name, results[1].Choice.Tag.Name)
		}
	})
}

func TestScanMinimumAgeReadsOnlyTheCandidates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		now := time.Now()
		f.push(t, "acme/app", now.Add(-30*24*time.Hour), "0.9.0", "1.0.0")
		want110 := f.push(t, "acme/app", now.Add(-72*time.Hour), "1.1.0")
		f.push(t, "acme/app", now.Add(-time.Hour), "1.2.0")
		f.push(t, "acme/app", now.Add(-10*time.Minute), "1.3.0")
		s := &images.Scanner{Transport: f}
		p := scanPolicy("acme/app", minimumAge(24*time.Hour), pin)
		r := s.Scan(t.Context(), images.Request{Policy: p})
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		want := images.Choice{
			Tag:  images.Tag{Name: "1.1.0", Created: now.Add(-72 * time.Hour).UTC(), Digest: want110},
			Why:  "highest of 2 of 4 tags in >=1.0.0 (2 held by minimumAge 24h)",
			Held: "1.3.0 is 10m old, younger than minimumAge 24h",
		}
		if diff := cmp.Diff(want, r.Choice); diff != "" {
			t.Errorf("choice (-want +got):\n%s", diff)
		}
		// The created times of 1.3.0, 1.2.0 and 1.1.0 only: 1.1.0 is old
		// enough, so 1.0.0 and 0.9.0 cannot win. The digest to pin came
		// with 1.1.0's manifest: no HEAD.
		var manifests []string
		for _, h := range f.log() {
			if strings.Contains(h.path, "/manifests/") {
				manifests = append(manifests, h.String())
			}
		}
		if diff := cmp.Diff([]string{
			"GET /v2/acme/app/manifests/1.3.0", "GET /v2/acme/app/manifests/1.2.0", "GET /v2/acme/app/manifests/1.1.0",
		}, manifests); diff != "" {
			t.Errorf("manifests read (-want +got):\n%s", diff)
		}
		if r.Requests != 2+3*2 {
			t.Errorf("Requests = %d, want a ping, a list, and a manifest and a config for each of 3 tags", r.Requests)
		}
		if again := s.Scan(t.Context(), images.Request{Policy: p}); again.Requests != 0 || again.Choice.Tag != want.Tag {
			t.Errorf("a scan within the interval: %d requests, chose %+v; want none and the same", again.Requests, again.Choice.Tag)
		}

		// Every tag young: each candidate read, then no choice yet.
		young := scanPolicy("acme/app", minimumAge(100*24*time.Hour), func(p *config.ImagePolicy) { p.Name = "young" })
		r = s.Scan(t.Context(), images.Request{Policy: young})
		if !errors.Is(r.Err, images.ErrTooYoung) {
			t.Errorf("every tag young: %v, want ErrTooYoung", r.Err)
		}
		if r.Requests != 2 { // the others were read above
			t.Errorf("every tag young: %d requests, want 2 (1.0.0's manifest and config)", r.Requests)
		}
	})
}

func TestScanPinsTheDigestWithOneHead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.push(t, "acme/app", time.Time{}, "1.0.0")
		digest := f.push(t, "acme/app", time.Time{}, "1.1.0")
		s := &images.Scanner{Transport: f}
		r := s.Scan(t.Context(), images.Request{Policy: scanPolicy("acme/app", pin)})
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		if r.Choice.Tag.Digest != digest {
			t.Errorf("digest %q, want the pushed %s", r.Choice.Tag.Digest, digest)
		}
		want := []string{"GET /v2/", "GET /v2/acme/app/tags/list", "HEAD /v2/acme/app/manifests/1.1.0"}
		if diff := cmp.Diff(want, paths(f.log())); diff != "" {
			t.Errorf("requests (-want +got):\n%s", diff)
		}
		for _, tag := range r.Tags {
			if want := map[bool]string{true: digest}[tag.Name == "1.1.0"]; tag.Digest != want {
				t.Errorf("Tags: %s has digest %q, want %q", tag.Name, tag.Digest, want)
			}
		}
	})
}

func TestScanErrors(t *testing.T) {
	const canary = "canary-Zx81-secret"
	secret := fmt.Sprintf(`{"auths":{%q:{"username":"robot","password":%q}}}`, fakeHost, canary)
	kc, err := images.Credentials{Secrets: []images.PullSecret{{Name: "ns/registry", DockerConfigJSON: []byte(secret)}}}.Keychain()
	if err != nil {
		t.Fatal(err)
	}
	// echo401 asks for basic auth and answers every request with a 401
	// that echoes it, Authorization header and all, decoded too.
	echo401 := func(w http.ResponseWriter, r *http.Request) bool {
		dump, _ := httputil.DumpRequest(r, false)
		decoded := ""
		if auth, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Basic "); ok {
			b, _ := base64.StdEncoding.DecodeString(auth)
			decoded = string(b)
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="registry.test"`)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]any{{
			"code": "UNAUTHORIZED", "message": "you sent " + string(dump) + " (" + decoded + ")", "detail": r.Header,
		}}})
		return true
	}
	// bearer401 sends the client to a token server that echoes the
	// request in its 401.
	bearer401 := func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/v2/" || !strings.HasPrefix(r.URL.Path, "/token") {
			w.Header().Set("WWW-Authenticate", `Bearer realm="https://registry.test/token",service="registry.test"`)
			w.WriteHeader(http.StatusUnauthorized)
			return true
		}
		return echo401(w, r)
	}
	for _, tc := range []struct {
		name     string
		repo     string
		keychain bool
		fault    func(w http.ResponseWriter, r *http.Request) bool
		kind     error
		says     []string
	}{
		{
			name: "credentials refused", repo: "acme/app", keychain: true, fault: echo401, kind: images.ErrDenied,
			says: []string{"registry.test refused the credentials (HTTP 401 UNAUTHORIZED)", "check the credentials for registry.test", ".dockerconfigjson"},
		},
		{
			name: "token server refuses the credentials", repo: "acme/app", keychain: true, fault: bearer401, kind: images.ErrDenied,
			says: []string{"registry.test refused the credentials (HTTP 401", "check the credentials for registry.test"},
		},
		{
			name: "no credentials", repo: "acme/app", fault: echo401, kind: images.ErrDenied,
			says: []string{"registry.test wants credentials (HTTP 401 UNAUTHORIZED) and the scanner has none for it", "GITOPS_REGISTRY_HOST=registry.test"},
		},
		{
			name: "no such repository", repo: "acme/gone", kind: images.ErrNotFound,
			says: []string{"repository not found (HTTP 404 NAME_UNKNOWN)", "check the image of the policy"},
		},
		{
			name: "server error", repo: "acme/app", kind: nil,
			fault: func(w http.ResponseWriter, r *http.Request) bool {
				if isTagList(r) {
					http.Error(w, "boom", http.StatusInternalServerError)
					return true
				}
				return false
			},
			says: []string{"registry.test answered HTTP 500 Internal Server Error to GET /v2/acme/app/tags/list", "the next scan retries"},
		},
		{
			name: "unreachable", repo: "acme/app", kind: nil,
			says: []string{"cannot reach registry.test", "check the image's registry host and the network"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFake()
				f.push(t, "acme/app", time.Time{}, "1.0.0")
				f.setFault(tc.fault)
				s := &images.Scanner{Transport: f}
				if tc.name == "unreachable" {
					s.Transport = unreachable{}
				}
				if tc.keychain {
					s.Keychain = kc
				}
				r := s.Scan(t.Context(), images.Request{Policy: scanPolicy(tc.repo)})
				if r.Err == nil {
					t.Fatal("no error")
				}
				msg := r.Err.Error()
				t.Log(msg)
				if tc.kind != nil && !errors.Is(r.Err, tc.kind) {
					t.Errorf("%v does not wrap %v", r.Err, tc.kind)
				}
				if want := "scan " + fakeHost + "/" + tc.repo + ": "; !strings.HasPrefix(msg, want) {
					t.Errorf("%q should start %q", msg, want)
				}
				for _, s := range tc.says {
					if !strings.Contains(msg, s) {
						t.Errorf("%q should say %q", msg, s)
					}
				}
				for _, leak := range []string{canary, base64.StdEncoding.EncodeToString([]byte("robot:" + canary))} {
					for _, shown := range []string{msg, fmt.Sprintf("%+v", r), fmt.Sprintf("%#v", r.Err)} {
						if strings.Contains(shown, leak) {
							t.Errorf("the credentials leak: %s", shown)
						}
					}
				}
			})
		})
	}
}

// unreachable is a network that reaches no host.
type unreachable struct{}

func (unreachable) RoundTrip(req *http.Request) (*http.Response, error) {
	return nil, fmt.Errorf("dial tcp: lookup %s: no such host", req.URL.Hostname())
}

func TestScanOneFailingRepositoryFailsOnlyItsPolicies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		var reqs []images.Request
		for i := range 5 {
			repo := fmt.Sprintf("acme/app-%d", i)
			f.push(t, repo, time.Time{}, "1.0.0")
			reqs = append(reqs, images.Request{Policy: scanPolicy(repo)})
		}
		f.setFault(func(w http.ResponseWriter, r *http.Request) bool {
			if r.URL.Path == "/v2/acme/app-2/tags/list" {
				http.Error(w, "boom", http.StatusInternalServerError)
				return true
			}
			return false
		})
		for i, r := range (&images.Scanner{Transport: f}).ScanAll(t.Context(), reqs) {
			if (i == 2) != (r.Err != nil) {
				t.Errorf("%s: %v", r.Policy, r.Err)
			}
		}
	})
}

func TestScanIgnoresTagsThatAreNotTags(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.push(t, "acme/app", time.Time{}, "1.0.0")
		hostile := []string{"2.0.0\nkind: Secret", "$(reboot)", "9.9.9\"", strings.Repeat("9", 129), "", ".1"}
		f.setFault(func(w http.ResponseWriter, r *http.Request) bool {
			if !isTagList(r) {
				return false
			}
			json.NewEncoder(w).Encode(map[string]any{"name": "acme/app", "tags": append([]string{"1.0.0"}, hostile...)})
			return true
		})
		r := (&images.Scanner{Transport: f}).Scan(t.Context(), images.Request{Policy: scanPolicy("acme/app", func(p *config.ImagePolicy) {
			p.Policy = config.TagPolicy{Alphabetical: &config.OrderPolicy{}}
		})})
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		if r.Invalid != len(hostile) || !slices.Equal(names(r.Tags), []string{"1.0.0"}) || r.Choice.Tag.Name != "1.0.0" {
			t.Errorf("Invalid %d, tags %q, chose %q; want %d invalid and only 1.0.0", r.Invalid, names(r.Tags), r.Choice.Tag.Name, len(hostile))
		}
	})
}

func TestScanPolicyErrors(t *testing.T) {
	s := &images.Scanner{Transport: unreachable{}}
	results := s.ScanAll(t.Context(), []images.Request{
		{Policy: scanPolicy("acme/app", func(p *config.ImagePolicy) { p.Image = "ghcr.io/acme/app:1.0" })},
		{Policy: scanPolicy("acme/app", semverRange("not a range"))},
	})
	if err := results[0].Err; err == nil || !strings.Contains(err.Error(), "with no tag") {
		t.Errorf("an image with a tag: %v", err)
	}
	if err := results[1].Err; err == nil || !strings.Contains(err.Error(), "not a semver range") {
		t.Errorf("a bad range: %v", err)
	}
}

func TestRepository(t *testing.T) {
	for image, want := range map[string]string{
		"nginx":                      "index.docker.io/library/nginx",
		"docker.io/library/nginx":    "index.docker.io/library/nginx",
		"ghcr.io/acme/app":           "ghcr.io/acme/app",
		"localhost:5000/team/app":    "localhost:5000/team/app",
		"registry.test/acme/app":     "registry.test/acme/app",
		"index.docker.io/acme/tools": "index.docker.io/acme/tools",
	} {
		if got, err := images.Repository(image); err != nil || got != want {
			t.Errorf("Repository(%q) = %q, %v; want %q", image, got, err, want)
		}
	}
	if _, err := images.Repository("ghcr.io/Acme/App"); err == nil {
		t.Error("Repository of an upper-case path: no error")
	}
}

// The tests below scan a real registry process (internal/testing/
// registrytest), over the loopback: they skip without docker-registry,
// and fail without it when CI=true.

// recorder records the requests that reach the network.
type recorder struct {
	mu   sync.Mutex
	sent []string
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.sent = append(r.sent, req.Method+" "+req.URL.Scheme+" "+req.URL.Path)
	r.mu.Unlock()
	return remote.DefaultTransport.RoundTrip(req)
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	sent := r.sent
	r.sent = nil
	return sent
}

func TestScanRealRegistry(t *testing.T) {
	reg := registrytest.Start(t)
	now := time.Now()
	digests := reg.PushCreated(t, "acme/app", map[string]time.Time{
		"0.9.0":      now.Add(-40 * 24 * time.Hour),
		"1.0.0":      now.Add(-10 * 24 * time.Hour),
		"1.1.0":      now.Add(-time.Hour),
		"1.2.0-rc.1": now.Add(-30 * time.Minute),
		"2.0.0.sig":  now.Add(-time.Minute),
	})
	image := reg.Host + "/acme/app"
	rec := &recorder{}
	s := &images.Scanner{Transport: rec}
	p := policy(func(p *config.ImagePolicy) { p.Image = image })

	r := s.Scan(t.Context(), images.Request{Policy: p})
	if r.Err != nil || r.Choice.Tag.Name != "1.1.0" {
		t.Fatalf("semver >=1.0.0: %+v, %v; want 1.1.0", r.Choice, r.Err)
	}
	sent := rec.take()
	t.Logf("semver: %d requests: %q", r.Requests, sent)
	if r.Requests != len(sent) {
		t.Errorf("Requests = %d, the transport sent %d", r.Requests, len(sent))
	}

	// digest: pin: the digest of the chosen tag's manifest, with a HEAD.
	pinned := policy(func(p *config.ImagePolicy) { p.Name, p.Image, p.Digest = "pinned", image, config.DigestPin })
	r = s.Scan(t.Context(), images.Request{Policy: pinned})
	if r.Err != nil || r.Choice.Tag.Digest != digests["1.1.0"].String() {
		t.Fatalf("digest pin: %+v, %v; want 1.1.0 at %s", r.Choice, r.Err, digests["1.1.0"])
	}
	if sent := rec.take(); !slices.Equal(sent, []string{"HEAD http /v2/acme/app/manifests/1.1.0"}) {
		t.Errorf("digest pin sent %q, want one HEAD", sent)
	}

	// minimumAge 24h: 1.1.0 is an hour old, so 1.0.0; only their
	// manifests and configs are read, not 0.9.0's.
	aged := policy(func(p *config.ImagePolicy) { p.Name, p.Image, p.MinimumAge.Duration = "aged", image, 24*time.Hour })
	r = s.Scan(t.Context(), images.Request{Policy: aged})
	if r.Err != nil || r.Choice.Tag.Name != "1.0.0" {
		t.Fatalf("minimumAge 24h: %+v, %v; want 1.0.0", r.Choice, r.Err)
	}
	sent = rec.take()
	t.Logf("minimumAge: %d requests: %q", r.Requests, sent)
	var manifests []string
	for _, s := range sent {
		if strings.Contains(s, "/manifests/") {
			manifests = append(manifests, s)
		}
	}
	if diff := cmp.Diff([]string{"GET http /v2/acme/app/manifests/1.1.0", "GET http /v2/acme/app/manifests/1.0.0"}, manifests); diff != "" {
		t.Errorf("manifests read (-want +got):\n%s", diff)
	}
	if !r.FromCache || r.Requests != 4 || len(sent) != 4 {
		t.Errorf("minimumAge from the cached listing: from cache %v, %d requests (%d sent); want 4: two manifests and their configs", r.FromCache, r.Requests, len(sent))
	}
	if !strings.Contains(r.Choice.Held, "1.1.0 is 1h") {
		t.Errorf("Held = %q, want 1.1.0 held", r.Choice.Held)
	}

	// The cache: nothing within the interval; a forced scan lists again.
	if r := s.Scan(t.Context(), images.Request{Policy: p}); r.Err != nil || r.Requests != 0 || !r.FromCache {
		t.Errorf("a scan within the interval: %d requests, from cache %v, %v; want none", r.Requests, r.FromCache, r.Err)
	}
	reg.Push(t, "acme/app", "1.3.0")
	r = s.Scan(t.Context(), images.Request{Policy: p, Force: true})
	if r.Err != nil || r.FromCache || r.Requests == 0 || r.Choice.Tag.Name != "1.3.0" {
		t.Errorf("a forced scan: %d requests, from cache %v, chose %s, %v; want a listing and 1.3.0", r.Requests, r.FromCache, r.Choice.Tag.Name, r.Err)
	}
	if got := len(rec.take()); got != r.Requests {
		t.Errorf("Requests = %d, the transport sent %d", r.Requests, got)
	}
}

func TestScanRealRegistryCredentials(t *testing.T) {
	const canary = "canary-7hQ2-password"
	reg := registrytest.Start(t, registrytest.WithBasicAuth("robot", canary))
	reg.Push(t, "private/app", "1.0.0", "1.1.0")
	image := reg.Host + "/private/app"
	p := policy(func(p *config.ImagePolicy) { p.Image = image })

	dir := t.TempDir()
	file := filepath.Join(dir, "config.json")
	auth := base64.StdEncoding.EncodeToString([]byte("robot:" + canary))
	if err := os.WriteFile(file, fmt.Appendf(nil, `{"auths":{"http://%s/v2/":{"auth":%q}}}`, reg.Host, auth), 0o600); err != nil {
		t.Fatal(err)
	}
	kc, err := images.Credentials{DockerConfig: file}.Keychain()
	if err != nil {
		t.Fatal(err)
	}
	if r := (&images.Scanner{Keychain: kc}).Scan(t.Context(), images.Request{Policy: p}); r.Err != nil || r.Choice.Tag.Name != "1.1.0" {
		t.Fatalf("with the docker config's credentials: %+v, %v", r.Choice, r.Err)
	}

	wrong := "wrong-" + canary
	kc, err = images.Credentials{Getenv: func(k string) string {
		return map[string]string{images.EnvRegistryHost: reg.Host, images.EnvRegistryUsername: "robot", images.EnvRegistryPassword: wrong}[k]
	}}.Keychain()
	if err != nil {
		t.Fatal(err)
	}
	r := (&images.Scanner{Keychain: kc}).Scan(t.Context(), images.Request{Policy: p})
	if !errors.Is(r.Err, images.ErrDenied) {
		t.Fatalf("a wrong password: %v, want ErrDenied", r.Err)
	}
	t.Log(r.Err)
	for _, leak := range []string{canary, wrong, base64.StdEncoding.EncodeToString([]byte("robot:" + wrong))} {
		if strings.Contains(r.Err.Error(), leak) || strings.Contains(fmt.Sprintf("%+v %#v", r, kc), leak) {
			t.Errorf("the credentials leak: %v", r.Err)
		}
	}
}

// TestScanBoundsWhatARegistrySends: a registry whose tag list never ends
// (a Link to another page, forever), whose answer is larger than any tag
// list page needs, or that holds more tags than a policy can judge fails
// that scan with a reason, after bounded reading.
func TestScanBoundsWhatARegistrySends(t *testing.T) {
	for _, tc := range []struct {
		name  string
		serve func(w http.ResponseWriter, r *http.Request)
		want  string
	}{
		{"endless pages", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Link", `</v2/acme/app/tags/list?n=1&last=`+r.URL.Query().Get("last")+`x>; rel="next"`)
			json.NewEncoder(w).Encode(map[string]any{"name": "acme/app", "tags": []string{}})
		}, "goes on past 2000 pages"},
		{"a huge page", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"name": "acme/app", "tags": ["1.0.0"`))
			chunk := []byte(strings.Repeat(`,"9.9.9"`, 1<<14))
			for range (17 << 20) / len(chunk) {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
			w.Write([]byte(`]}`))
		}, "over 16 MiB"},
		{"too many tags", func(w http.ResponseWriter, r *http.Request) {
			page, _ := strconv.Atoi(r.URL.Query().Get("page"))
			tags := make([]string, 10_000)
			for i := range tags {
				tags[i] = fmt.Sprintf("1.%d.%d", page, i)
			}
			w.Header().Set("Link", fmt.Sprintf(`</v2/acme/app/tags/list?page=%d>; rel="next"`, page+1))
			json.NewEncoder(w).Encode(map[string]any{"name": "acme/app", "tags": tags})
		}, "holds more than 100000 tags"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFake()
				f.push(t, "acme/app", time.Time{}, "1.0.0")
				f.setFault(func(w http.ResponseWriter, r *http.Request) bool {
					if !isTagList(r) {
						return false
					}
					tc.serve(w, r)
					return true
				})
				r := (&images.Scanner{Transport: f}).Scan(t.Context(), images.Request{Policy: scanPolicy("acme/app")})
				if r.Err == nil || !strings.Contains(r.Err.Error(), tc.want) {
					t.Errorf("err = %v, want one saying %q", r.Err, tc.want)
				}
			})
		})
	}
}
