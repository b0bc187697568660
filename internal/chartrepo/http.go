package chartrepo

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	repov1 "helm.sh/helm/v4/pkg/repo/v1"
)

// fetchHTTP fetches a chart from an http(s) chart repository: its
// index.yaml picks the version and the archive's URL and digest.
func (f *Fetcher) fetchHTTP(ctx context.Context, repo, chart, version string) (*Chart, error) {
	repo = strings.TrimSuffix(repo, "/")
	u, err := url.Parse(repo)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("chart repository %q is not an http(s) URL; write https://host/path", repo)
	}
	if u.User != nil {
		return nil, fmt.Errorf("chart repository URL has credentials in it; remove them from the URL")
	}
	if ch := f.cachedRef(repo, chart, version); ch != nil {
		return ch, nil
	}

	idx, err := f.index(ctx, repo)
	if err != nil {
		return nil, err
	}
	cv, err := idx.Get(chart, version)
	if err != nil {
		switch {
		case errors.Is(err, repov1.ErrNoChartName):
			return nil, fmt.Errorf("chart repository %s has no chart %s; check helm.chart", repo, chart)
		case version == "":
			return nil, fmt.Errorf("chart %s in %s: %w", chart, repo, err)
		default:
			return nil, fmt.Errorf("chart repository %s has no version of %s matching %q; check helm.version", repo, chart, version)
		}
	}
	if len(cv.URLs) == 0 {
		return nil, fmt.Errorf("chart repository %s lists %s %s without a download URL; ask the repository's owner to fix its index", repo, chart, cv.Version)
	}
	archiveURL, err := repov1.ResolveReferenceURL(repo, cv.URLs[0])
	if err != nil {
		return nil, fmt.Errorf("chart %s %s in %s: %w", chart, cv.Version, repo, err)
	}
	if au, err := url.Parse(archiveURL); err != nil || (au.Scheme != "http" && au.Scheme != "https") {
		return nil, fmt.Errorf("chart %s %s in %s: the download URL is not http(s); only http and https are fetched", chart, cv.Version, repo)
	}

	what := fmt.Sprintf("chart %s %s from %s", chart, cv.Version, repo)
	wantHex := ""
	if cv.Digest != "" {
		h, ok := sha256Hex(cv.Digest)
		if !ok {
			return nil, fmt.Errorf("%s: the index gives digest %q, which is not a sha256; ask the repository's owner to fix its index", what, cv.Digest)
		}
		wantHex = h
		if dir, ok := f.cachedDigest(h); ok {
			f.remember(repo, chart, cv.Version, "sha256:"+h)
			return &Chart{Dir: dir, Name: chart, Version: cv.Version, Digest: "sha256:" + h, Cached: true}, nil
		}
	}
	data, err := f.get(ctx, archiveURL, f.maxArchive(), what)
	if err != nil {
		return nil, err
	}
	dir, gotHex, _, err := f.store(data, wantHex, chart, cv.Version, what)
	if err != nil {
		return nil, err
	}
	f.remember(repo, chart, cv.Version, "sha256:"+gotHex)
	return &Chart{Dir: dir, Name: chart, Version: cv.Version, Digest: "sha256:" + gotHex}, nil
}

// index downloads and parses the repository's index.yaml with Helm's own
// loader (which skips invalid entries and sorts versions newest first).
func (f *Fetcher) index(ctx context.Context, repo string) (*repov1.IndexFile, error) {
	indexURL, err := repov1.ResolveReferenceURL(repo, "index.yaml")
	if err != nil {
		return nil, fmt.Errorf("chart repository %s: %w", repo, err)
	}
	data, err := f.get(ctx, indexURL, f.maxIndex(), "the index of chart repository "+repo)
	if err != nil {
		return nil, err
	}
	// Helm parses index files only from disk.
	dir := filepath.Join(f.CacheDir, "tmp")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("caching the index of %s: %w", repo, err)
	}
	tmp, err := os.CreateTemp(dir, "index-*.yaml")
	if err != nil {
		return nil, fmt.Errorf("caching the index of %s: %w", repo, err)
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.Write(data)
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return nil, fmt.Errorf("caching the index of %s: %w", repo, werr)
	}
	idx, err := repov1.LoadIndexFile(tmp.Name())
	if err != nil {
		return nil, fmt.Errorf("chart repository %s has an invalid index.yaml: %s; check helm.repo", repo, strings.TrimPrefix(err.Error(), "error loading "+tmp.Name()+": "))
	}
	return idx, nil
}

// get fetches url with ctx, at most max bytes.
func (f *Fetcher) get(ctx context.Context, url string, max int64, what string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", what, err)
	}
	req.Header.Set("User-Agent", "kubectl-gitops")
	resp, err := f.httpClient().Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", what, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching %s: %s from %s; check the URL and that the repository is reachable", what, resp.Status, redactURL(url))
	}
	if resp.ContentLength > max {
		return nil, fmt.Errorf("%s is %d bytes, more than %d, the most a chart download may be", what, resp.ContentLength, max)
	}
	return readLimited(resp.Body, max, what)
}

// redactURL drops a URL's query, which may carry a signed token.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "the repository"
	}
	u.RawQuery, u.User = "", nil
	return u.String()
}
