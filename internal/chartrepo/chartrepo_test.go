package chartrepo

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"helm.sh/helm/v4/pkg/chart/loader/archive"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
	"helm.sh/helm/v4/pkg/registry"
	repov1 "helm.sh/helm/v4/pkg/repo/v1"
)

// fixtureChart is a small chart at version.
func fixtureChart(t *testing.T, name, version string) *chart.Chart {
	t.Helper()
	files := []*archive.BufferedFile{
		{Name: "Chart.yaml", Data: []byte("apiVersion: v2\nname: " + name + "\nversion: " + version + "\n")},
		{Name: "values.yaml", Data: []byte("greeting: hello\n")},
		{Name: "templates/configmap.yaml", Data: []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\ndata:\n  version: " + version + "\n")},
	}
	ch, err := loader.LoadFiles(files)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// packageChart packs a chart as `helm package` does and returns the archive.
func packageChart(t *testing.T, ch *chart.Chart) []byte {
	t.Helper()
	file, err := chartutil.Save(ch, t.TempDir())
	if err != nil {
		t.Fatalf("packaging %s: %v", ch.Name(), err)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func sha256Of(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// chartServer is an HTTP chart repository under /charts serving index.yaml
// and the archives, counting requests.
type chartServer struct {
	*httptest.Server
	files    map[string][]byte
	requests atomic.Int64
}

func (s *chartServer) URL() string { return s.Server.URL + "/charts" }

// newChartServer serves the given versions of chart demo; digests maps a
// version to the digest the index claims (default: the real one, "-" for
// none).
func newChartServer(t *testing.T, versions []string, digests map[string]string) *chartServer {
	t.Helper()
	s := &chartServer{files: map[string][]byte{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		data, ok := s.files[strings.TrimPrefix(r.URL.Path, "/charts/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(data)
	}))
	t.Cleanup(s.Close)
	idx := repov1.NewIndexFile()
	for _, v := range versions {
		ch := fixtureChart(t, "demo", v)
		data := packageChart(t, ch)
		file := "demo-" + v + ".tgz"
		s.files[file] = data
		digest := sha256Of(data)
		switch d := digests[v]; d {
		case "":
		case "-":
			digest = ""
		default:
			digest = d
		}
		if err := idx.MustAdd(ch.Metadata, file, "", digest); err != nil {
			t.Fatal(err)
		}
	}
	idx.SortEntries()
	dir := t.TempDir()
	if err := idx.WriteFile(filepath.Join(dir, "index.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	index, err := os.ReadFile(filepath.Join(dir, "index.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s.files["index.yaml"] = index
	return s
}

func newFetcher(t *testing.T) *Fetcher {
	return &Fetcher{CacheDir: t.TempDir(), Keychain: authn.NewMultiKeychain()}
}

func chartVersionIn(t *testing.T, dir string) string {
	t.Helper()
	ch, err := loader.LoadDir(dir)
	if err != nil {
		t.Fatalf("loading the fetched chart: %v", err)
	}
	return ch.Metadata.Version
}

func TestFetchHTTPRange(t *testing.T) {
	srv := newChartServer(t, []string{"1.2.3", "1.3.0", "1.3.1", "1.4.0-rc.1", "2.0.0"}, nil)
	f := newFetcher(t)
	ctx := t.Context()

	ch, err := f.Fetch(ctx, srv.URL(), "demo", "1.x")
	if err != nil {
		t.Fatal(err)
	}
	if ch.Version != "1.3.1" || ch.Cached || chartVersionIn(t, ch.Dir) != "1.3.1" {
		t.Fatalf("Fetch 1.x = %+v, want 1.3.1 downloaded", ch)
	}
	if want := "sha256:" + sha256Of(srv.files["demo-1.3.1.tgz"]); ch.Digest != want {
		t.Errorf("digest = %s, want %s", ch.Digest, want)
	}
	if ch.Dir != filepath.Join(f.CacheDir, "sha256", strings.TrimPrefix(ch.Digest, "sha256:")) {
		t.Errorf("chart folder %s is not the digest's", ch.Dir)
	}
	if _, err := os.Stat(filepath.Join(f.CacheDir, "sha256", strings.TrimPrefix(ch.Digest, "sha256:")+".tgz")); err != nil {
		t.Errorf("the archive is not cached by digest: %v", err)
	}
	if got := srv.requests.Load(); got != 2 {
		t.Errorf("first fetch made %d requests, want 2 (index, archive)", got)
	}

	// A range is resolved again (the index), but the archive is cached.
	srv.requests.Store(0)
	ch, err = f.Fetch(ctx, srv.URL(), "demo", "~1.3.0")
	if err != nil {
		t.Fatal(err)
	}
	if ch.Version != "1.3.1" || !ch.Cached {
		t.Errorf("Fetch ~1.3.0 = %+v, want 1.3.1 from the cache", ch)
	}
	if got := srv.requests.Load(); got != 1 {
		t.Errorf("range fetch with the archive cached made %d requests, want 1 (index)", got)
	}

	// The exact version that range resolved to needs no request at all.
	srv.requests.Store(0)
	ch, err = f.Fetch(ctx, srv.URL(), "demo", "1.3.1")
	if err != nil {
		t.Fatal(err)
	}
	if ch.Version != "1.3.1" || !ch.Cached {
		t.Errorf("Fetch 1.3.1 = %+v, want it cached", ch)
	}
	if got := srv.requests.Load(); got != 0 {
		t.Errorf("cached exact fetch made %d requests, want 0", got)
	}

	// No version: the newest stable one.
	ch, err = f.Fetch(ctx, srv.URL(), "demo", "")
	if err != nil {
		t.Fatal(err)
	}
	if ch.Version != "2.0.0" {
		t.Errorf("Fetch of no version = %s, want 2.0.0", ch.Version)
	}
}

func TestFetchHTTPExactCachedZeroRequests(t *testing.T) {
	srv := newChartServer(t, []string{"1.2.3"}, map[string]string{"1.2.3": "-"})
	f := newFetcher(t)
	if _, err := f.Fetch(t.Context(), srv.URL(), "demo", "1.2.3"); err != nil {
		t.Fatal(err)
	}
	srv.requests.Store(0)
	// A second fetcher on the same cache, as a second run would be.
	g := &Fetcher{CacheDir: f.CacheDir}
	ch, err := g.Fetch(t.Context(), srv.URL()+"/", "demo", "1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	if !ch.Cached || chartVersionIn(t, ch.Dir) != "1.2.3" {
		t.Errorf("second fetch = %+v, want the cached 1.2.3", ch)
	}
	if got := srv.requests.Load(); got != 0 {
		t.Errorf("second fetch made %d requests, want 0", got)
	}
}

func TestFetchHTTPErrors(t *testing.T) {
	wrong := strings.Repeat("ab", 32)
	srv := newChartServer(t, []string{"1.0.0", "1.1.0"}, map[string]string{"1.1.0": wrong})
	for _, tc := range []struct {
		name, chart, version, want string
	}{
		{"digest mismatch", "demo", "1.1.0", "digest mismatch"},
		{"no such chart", "nope", "1.0.0", "has no chart nope"},
		{"no matching version", "demo", "3.x", `no version of demo matching "3.x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFetcher(t)
			_, err := f.Fetch(t.Context(), srv.URL(), tc.chart, tc.version)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if entries, _ := os.ReadDir(filepath.Join(f.CacheDir, "sha256")); len(entries) != 0 {
				t.Errorf("a failed fetch left %d cache entries", len(entries))
			}
		})
	}
	t.Run("not http", func(t *testing.T) {
		if _, err := newFetcher(t).Fetch(t.Context(), "file:///etc", "demo", ""); err == nil || !strings.Contains(err.Error(), "not an http(s) URL") {
			t.Fatalf("err = %v", err)
		}
	})
}

// tgz builds a gzipped tar from headers and contents.
func tgz(t *testing.T, entries ...*tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, hd := range entries {
		content := hd.Linkname
		if hd.Typeflag == tar.TypeReg {
			hd.Size = int64(len(content))
			hd.Linkname = ""
		}
		hd.Mode = 0o644
		if err := tw.WriteHeader(hd); err != nil {
			t.Fatal(err)
		}
		if hd.Typeflag == tar.TypeReg {
			tw.Write([]byte(content))
		}
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

func TestUnpackRefusesUnsafeArchives(t *testing.T) {
	chartYAML := &tar.Header{Name: "demo/Chart.yaml", Typeflag: tar.TypeReg, Linkname: "apiVersion: v2\nname: demo\nversion: 1.0.0\n"}
	for name, data := range map[string][]byte{
		"symlink":  tgz(t, chartYAML, &tar.Header{Name: "demo/values.yaml", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}),
		"hardlink": tgz(t, chartYAML, &tar.Header{Name: "demo/values.yaml", Typeflag: tar.TypeLink, Linkname: "demo/Chart.yaml"}),
		"parent":   tgz(t, chartYAML, &tar.Header{Name: "demo/../../evil.yaml", Typeflag: tar.TypeReg, Linkname: "x"}),
		"absolute": tgz(t, chartYAML, &tar.Header{Name: "/demo/evil.yaml", Typeflag: tar.TypeReg, Linkname: "x"}),
		"not gzip": []byte("plain text"),
	} {
		t.Run(name, func(t *testing.T) {
			f := newFetcher(t)
			if _, _, _, err := f.store(data, "", "demo", "1.0.0", "test chart"); err == nil {
				t.Fatal("unsafe archive accepted")
			}
			if entries, _ := os.ReadDir(f.CacheDir); len(entries) != 0 {
				t.Errorf("an unsafe archive left cache entries")
			}
		})
	}
	t.Run("too large", func(t *testing.T) {
		srv := newChartServer(t, []string{"1.0.0"}, nil)
		f := newFetcher(t)
		f.MaxArchiveBytes = 100
		if _, err := f.Fetch(t.Context(), srv.URL(), "demo", "1.0.0"); err == nil || !strings.Contains(err.Error(), "more than 100") && !strings.Contains(err.Error(), "larger than 100") {
			t.Fatalf("err = %v, want a size error", err)
		}
	})
}

// ociRegistry is an in-process OCI registry counting requests.
type ociRegistry struct {
	*httptest.Server
	requests atomic.Int64
}

func (r *ociRegistry) host() string { return strings.TrimPrefix(r.Server.URL, "http://") }

func newOCIRegistry(t *testing.T) *ociRegistry {
	t.Helper()
	r := &ociRegistry{}
	h := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.requests.Add(1)
		h.ServeHTTP(w, req)
	}))
	t.Cleanup(r.Close)
	return r
}

// push pushes chart demo at each version with Helm's own registry client,
// as `helm push` does.
func (r *ociRegistry) push(t *testing.T, versions ...string) {
	t.Helper()
	client, err := registry.NewClient(registry.ClientOptPlainHTTP(), registry.ClientOptCredentialsFile(filepath.Join(t.TempDir(), "config.json")))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range versions {
		data := packageChart(t, fixtureChart(t, "demo", v))
		if _, err := client.Push(data, r.host()+"/charts/demo:"+v); err != nil {
			t.Fatalf("pushing demo %s: %v", v, err)
		}
	}
}

func TestFetchOCI(t *testing.T) {
	reg := newOCIRegistry(t)
	reg.push(t, "1.2.3", "1.3.0", "1.3.1+build.7", "2.0.0")
	ref := "oci://" + reg.host() + "/charts/demo"
	f := newFetcher(t)
	ctx := t.Context()

	ch, err := f.Fetch(ctx, "", ref, "1.3.x")
	if err != nil {
		t.Fatal(err)
	}
	if ch.Version != "1.3.1+build.7" || chartVersionIn(t, ch.Dir) != "1.3.1+build.7" || ch.Cached {
		t.Fatalf("Fetch 1.3.x = %+v, want 1.3.1+build.7 downloaded", ch)
	}

	// The exact version is now cached: no request.
	reg.requests.Store(0)
	ch, err = f.Fetch(ctx, "", ref, "1.3.1+build.7")
	if err != nil {
		t.Fatal(err)
	}
	if !ch.Cached {
		t.Errorf("exact fetch = %+v, want cached", ch)
	}
	if got := reg.requests.Load(); got != 0 {
		t.Errorf("cached exact fetch made %d registry requests, want 0", got)
	}

	// A tag in the reference, not yet cached: fetched by tag, no listing.
	ch, err = f.Fetch(ctx, "", ref+":1.2.3", "")
	if err != nil {
		t.Fatal(err)
	}
	if ch.Version != "1.2.3" || chartVersionIn(t, ch.Dir) != "1.2.3" {
		t.Errorf("Fetch :1.2.3 = %+v", ch)
	}

	// By digest.
	byDigest, err := f.Fetch(ctx, "", ref+"@"+manifestDigest(t, reg, "2.0.0"), "")
	if err != nil {
		t.Fatal(err)
	}
	if byDigest.Version != "2.0.0" {
		t.Errorf("Fetch by digest = %+v, want 2.0.0", byDigest)
	}

	if _, err := f.Fetch(ctx, "", ref, "9.x"); err == nil {
		t.Error("Fetch 9.x succeeded, want no matching version")
	}
	if _, err := f.Fetch(ctx, "", ref+":1.2.3", "1.3.0"); err == nil || !strings.Contains(err.Error(), "keep one of them") {
		t.Errorf("tag and version mismatch: err = %v", err)
	}
}

func manifestDigest(t *testing.T, reg *ociRegistry, tag string) string {
	t.Helper()
	client, err := registry.NewClient(registry.ClientOptPlainHTTP(), registry.ClientOptCredentialsFile(filepath.Join(t.TempDir(), "config.json")))
	if err != nil {
		t.Fatal(err)
	}
	desc, err := client.Resolve(reg.host() + "/charts/demo:" + tag)
	if err != nil {
		t.Fatal(err)
	}
	return desc.Digest.String()
}

func TestFetchOCIRefusesImages(t *testing.T) {
	reg := newOCIRegistry(t)
	// A plain (non-chart) manifest under a version tag.
	req, _ := http.NewRequest(http.MethodPut, reg.Server.URL+"/v2/charts/demo/manifests/1.0.0", strings.NewReader(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}`))
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	// Upload the config blob first.
	blob, _ := http.NewRequest(http.MethodPost, reg.Server.URL+"/v2/charts/demo/blobs/uploads/?digest=sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", strings.NewReader("{}"))
	if resp, err := http.DefaultClient.Do(blob); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("pushing an image manifest: %s", resp.Status)
	}
	_, err = newFetcher(t).Fetch(t.Context(), "", "oci://"+reg.host()+"/charts/demo", "1.0.0")
	if err == nil || !strings.Contains(err.Error(), "is not a Helm chart") {
		t.Fatalf("err = %v, want a not-a-chart error", err)
	}
}
