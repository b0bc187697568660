// Package chartrepo fetches Helm charts from HTTP chart repositories
// (index.yaml) and OCI registries, resolves semver ranges to the highest
// matching version, verifies digests and caches each chart by the sha256 of
// its archive, unpacked under bounds into a folder render can read.
//
// Only the engine fetches: a chart never makes this package fetch anything
// (dependencies must be vendored in the chart's charts/ folder). Only http,
// https and OCI are spoken; there are no Helm getter or downloader plugins.
package chartrepo

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"
	"github.com/google/go-containerregistry/pkg/authn"
	"helm.sh/helm/v4/pkg/chart/loader/archive"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
)

// Defaults for Fetcher.
const (
	// DefaultMaxArchiveBytes bounds a chart archive as downloaded (gzipped).
	DefaultMaxArchiveBytes = 20 << 20
	// DefaultMaxIndexBytes bounds a repository's index.yaml; the largest
	// public indexes are a few tens of MiB.
	DefaultMaxIndexBytes = 128 << 20
	// defaultHTTPTimeout bounds one request when ctx has no deadline.
	defaultHTTPTimeout = 2 * time.Minute
)

// Fetcher fetches and caches charts. The zero value is not usable: set
// CacheDir (DefaultCacheDir is the user's cache).
type Fetcher struct {
	// CacheDir holds sha256/<hex>.tgz (the archive), sha256/<hex>/ (the
	// unpacked chart) and refs/ (which digest an exact version resolved to).
	CacheDir string
	// HTTPClient fetches from chart repositories (default: a client with a
	// timeout). OCI registries use its transport too.
	HTTPClient *http.Client
	// Keychain provides OCI registry credentials (default: the Docker and
	// Podman configuration of the user, as `helm pull` and `crane` use).
	Keychain authn.Keychain
	// MaxArchiveBytes bounds a downloaded archive (default 20 MiB). Unpacked,
	// Helm's archive loader bounds a chart to 100 MiB and one file to 5 MiB.
	MaxArchiveBytes int64
	// MaxIndexBytes bounds a downloaded index.yaml (default 128 MiB).
	MaxIndexBytes int64
}

// Chart is a fetched chart.
type Chart struct {
	// Dir is the unpacked chart folder (holding Chart.yaml), in the cache.
	// Treat it as read-only.
	Dir string
	// Name and Version are the chart's, as resolved from the request.
	Name, Version string
	// Digest is "sha256:<hex>" of the chart archive.
	Digest string
	// Cached reports that nothing was downloaded.
	Cached bool
}

// DefaultCacheDir is os.UserCacheDir()/kubectl-gitops/charts.
func DefaultCacheDir() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache folder for charts (set XDG_CACHE_HOME): %w", err)
	}
	return filepath.Join(dir, "kubectl-gitops", "charts"), nil
}

// Fetch fetches chart at version (an exact version, a semver range such as
// 6.7.x, or "" for the newest stable version) from repo, an http(s) chart
// repository; or, with repo empty, chart is an oci://registry/path/name
// reference (a tag or @sha256 digest in the reference is honoured).
//
// An exact version already fetched once is served from the cache without a
// network request. A range is always resolved against the repository, and
// the archive is downloaded only when its digest is not cached.
func (f *Fetcher) Fetch(ctx context.Context, repo, chart, version string) (*Chart, error) {
	if f.CacheDir == "" {
		return nil, errors.New("chart fetcher has no cache folder")
	}
	if strings.HasPrefix(repo, "oci://") {
		// A registry given as repo: the chart is a name under it.
		chart = strings.TrimSuffix(repo, "/") + "/" + chart
		repo = ""
	}
	var (
		ch  *Chart
		err error
	)
	switch {
	case repo == "" && strings.HasPrefix(chart, "oci://"):
		ch, err = f.fetchOCI(ctx, chart, version)
	case repo != "":
		ch, err = f.fetchHTTP(ctx, repo, chart, version)
	default:
		return nil, fmt.Errorf("chart %s has no repository: set helm.repo to the chart repository's URL or use an oci:// reference", chart)
	}
	if err != nil {
		return nil, err
	}
	return ch, nil
}

// isExact reports whether version names one version rather than a range.
func isExact(version string) bool {
	if version == "" {
		return false
	}
	_, err := semver.StrictNewVersion(strings.TrimPrefix(version, "v"))
	return err == nil
}

// refKey names the cache entry of an exact version of a chart in a source.
func refKey(source, chart, version string) string {
	sum := sha256.Sum256([]byte(source + "\x00" + chart + "\x00" + version))
	return hex.EncodeToString(sum[:])
}

// ref is what refs/<key> records: the digest an exact version resolved to.
type ref struct {
	Source  string `json:"source"`
	Chart   string `json:"chart"`
	Version string `json:"version"`
	Digest  string `json:"digest"`
}

// cachedRef returns the cached chart for an exact version, or nil.
func (f *Fetcher) cachedRef(source, chart, version string) *Chart {
	if !isExact(version) {
		return nil
	}
	data, err := os.ReadFile(filepath.Join(f.CacheDir, "refs", refKey(source, chart, version)))
	if err != nil {
		return nil
	}
	var r ref
	if json.Unmarshal(data, &r) != nil || r.Source != source || r.Chart != chart || r.Version != version {
		return nil
	}
	hexDigest, ok := sha256Hex(r.Digest)
	if !ok {
		return nil
	}
	dir := f.chartDir(hexDigest)
	if _, err := os.Stat(filepath.Join(dir, "Chart.yaml")); err != nil {
		return nil
	}
	return &Chart{Dir: dir, Name: path.Base(chart), Version: version, Digest: r.Digest, Cached: true}
}

// remember records that an exact version of a chart resolved to digest.
// Failing to record is not an error: the next fetch asks the network again.
func (f *Fetcher) remember(source, chart, version, digest string) {
	for _, v := range []string{version, strings.TrimPrefix(version, "v")} {
		if !isExact(v) {
			continue
		}
		data, err := json.Marshal(ref{Source: source, Chart: chart, Version: v, Digest: digest})
		if err != nil {
			return
		}
		_ = writeFileAtomic(filepath.Join(f.CacheDir, "refs", refKey(source, chart, v)), data)
	}
}

var sha256HexRE = regexp.MustCompile(`^[a-f0-9]{64}$`)

// sha256Hex returns the hex part of "sha256:<hex>" or "<hex>".
func sha256Hex(digest string) (string, bool) {
	h := strings.TrimPrefix(digest, "sha256:")
	h = strings.ToLower(h)
	return h, sha256HexRE.MatchString(h)
}

func (f *Fetcher) chartDir(hexDigest string) string {
	return filepath.Join(f.CacheDir, "sha256", hexDigest)
}

func (f *Fetcher) archivePath(hexDigest string) string {
	return filepath.Join(f.CacheDir, "sha256", hexDigest+".tgz")
}

// cachedDigest returns the unpacked chart for a digest if it is cached.
func (f *Fetcher) cachedDigest(hexDigest string) (string, bool) {
	dir := f.chartDir(hexDigest)
	if _, err := os.Stat(filepath.Join(dir, "Chart.yaml")); err != nil {
		return "", false
	}
	return dir, true
}

func (f *Fetcher) maxArchive() int64 {
	if f.MaxArchiveBytes > 0 {
		return f.MaxArchiveBytes
	}
	return DefaultMaxArchiveBytes
}

func (f *Fetcher) maxIndex() int64 {
	if f.MaxIndexBytes > 0 {
		return f.MaxIndexBytes
	}
	return DefaultMaxIndexBytes
}

func (f *Fetcher) httpClient() *http.Client {
	if f.HTTPClient != nil {
		return f.HTTPClient
	}
	return &http.Client{Timeout: defaultHTTPTimeout}
}

// store verifies data against wantHex (when set), writes the archive and
// unpacks it into the cache, and checks that it holds chart name at version.
// It returns the chart folder, the archive's hex digest and the chart's
// version.
func (f *Fetcher) store(data []byte, wantHex, name, version, what string) (string, string, string, error) {
	sum := sha256.Sum256(data)
	gotHex := hex.EncodeToString(sum[:])
	if wantHex != "" && gotHex != wantHex {
		return "", "", "", fmt.Errorf("%s: digest mismatch: the archive is sha256:%s, the repository says sha256:%s; the download was corrupted or the repository changed it, try again or ask its owner", what, gotHex, wantHex)
	}
	files, err := unpack(data, what)
	if err != nil {
		return "", "", "", err
	}
	ch, err := loader.LoadFiles(files)
	if err != nil {
		return "", "", "", fmt.Errorf("%s is not a valid chart: %w", what, err)
	}
	if ch.Metadata.Name != name {
		return "", "", "", fmt.Errorf("%s holds chart %q, not %q; check the chart name", what, ch.Metadata.Name, name)
	}
	if version != "" && strings.TrimPrefix(ch.Metadata.Version, "v") != strings.TrimPrefix(version, "v") {
		return "", "", "", fmt.Errorf("%s holds version %s of chart %s, not %s", what, ch.Metadata.Version, name, version)
	}
	if dir, ok := f.cachedDigest(gotHex); ok {
		return dir, gotHex, ch.Metadata.Version, nil
	}
	if err := writeFileAtomic(f.archivePath(gotHex), data); err != nil {
		return "", "", "", fmt.Errorf("caching %s: %w", what, err)
	}
	dir, err := f.writeChart(gotHex, files)
	if err != nil {
		return "", "", "", fmt.Errorf("caching %s: %w", what, err)
	}
	return dir, gotHex, ch.Metadata.Version, nil
}

// unpack reads a chart archive in memory with Helm's archive loader, which
// refuses absolute paths and paths leaving the chart folder and bounds the
// unpacked size, after refusing links and special files, which Helm's loader
// would turn into empty files.
func unpack(data []byte, what string) ([]*archive.BufferedFile, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s is not a gzipped chart archive: %w", what, err)
	}
	tr := tar.NewReader(zr)
	for {
		hd, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: cannot read the archive: %w", what, err)
		}
		switch hd.Typeflag {
		case tar.TypeReg, tar.TypeDir, tar.TypeXGlobalHeader, tar.TypeXHeader:
		default:
			return nil, fmt.Errorf("%s: %s is a link or special file, which chart archives may not hold", what, hd.Name)
		}
	}
	files, err := archive.LoadArchiveFiles(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return files, nil
}

// writeChart writes the unpacked files to sha256/<hex>/ through an os.Root,
// so no name can land outside it, via a temporary folder renamed into place:
// a folder in the cache is always complete.
func (f *Fetcher) writeChart(hexDigest string, files []*archive.BufferedFile) (string, error) {
	final := f.chartDir(hexDigest)
	parent := filepath.Dir(final)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(parent, ".tmp-"+hexDigest[:12]+"-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	root, err := os.OpenRoot(tmp)
	if err != nil {
		return "", err
	}
	defer root.Close()
	for _, file := range files {
		name := filepath.FromSlash(file.Name)
		if d := filepath.Dir(name); d != "." {
			if err := root.MkdirAll(d, 0o755); err != nil {
				return "", err
			}
		}
		if err := root.WriteFile(name, file.Data, 0o644); err != nil {
			return "", err
		}
	}
	if err := os.Rename(tmp, final); err != nil {
		if _, ok := f.cachedDigest(hexDigest); ok {
			// Another process unpacked the same archive first.
			return final, nil
		}
		return "", err
	}
	return final, nil
}

// writeFileAtomic writes data to name via a temporary file in its folder.
func writeFileAtomic(name string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	tmp := name + ".tmp-" + hex.EncodeToString(b[:])
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, name); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// readLimited reads at most max bytes of r, failing beyond.
func readLimited(r io.Reader, max int64, what string) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes, the most a chart download may be", what, max)
	}
	return data, nil
}
