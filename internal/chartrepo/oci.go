package chartrepo

import (
	"bytes"
	"context"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/Masterminds/semver/v3"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"helm.sh/helm/v4/pkg/registry"
)

// fetchOCI fetches a chart from an OCI registry, as `helm pull oci://…`
// does: the tag is the version ("+" written as "_"), a range is resolved
// against the repository's tags, and the chart is the manifest's layer of
// Helm's chart media type.
func (f *Fetcher) fetchOCI(ctx context.Context, chartRef, version string) (*Chart, error) {
	raw := strings.TrimPrefix(chartRef, "oci://")
	repoStr, digest, _ := strings.Cut(raw, "@")
	tag := ""
	if i := strings.LastIndex(repoStr, ":"); i > strings.LastIndex(repoStr, "/") {
		repoStr, tag = repoStr[:i], repoStr[i+1:]
	}
	repo, err := name.NewRepository(repoStr)
	if err != nil {
		return nil, fmt.Errorf("%s is not an OCI chart reference: %w; write oci://registry/path/chart", chartRef, err)
	}
	chart := path.Base(repo.RepositoryStr())
	if tag != "" {
		v := tagVersion(tag)
		if version != "" && version != v {
			return nil, fmt.Errorf("chart %s names version %s but helm.version is %s; keep one of them", chartRef, v, version)
		}
		version = v
	}
	source := "oci://" + repo.Name()
	if digest == "" {
		if ch := f.cachedRef(source, chart, version); ch != nil {
			return ch, nil
		}
	}

	keychain := f.Keychain
	if keychain == nil {
		keychain = authn.DefaultKeychain
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(keychain), remote.WithUserAgent("kubectl-gitops")}
	if f.HTTPClient != nil && f.HTTPClient.Transport != nil {
		opts = append(opts, remote.WithTransport(f.HTTPClient.Transport))
	}

	var ref name.Reference
	switch {
	case digest != "":
		d, err := name.NewDigest(repo.Name() + "@" + digest)
		if err != nil {
			return nil, fmt.Errorf("%s is not an OCI chart reference: %w", chartRef, err)
		}
		ref = d
	case isExact(version):
		ref = repo.Tag(versionTag(version))
	default:
		tags, err := remote.List(repo, opts...)
		if err != nil {
			return nil, fmt.Errorf("listing the versions of chart %s: %w", source, err)
		}
		v, err := pickVersion(tags, version)
		if err != nil {
			return nil, fmt.Errorf("chart %s: %w; check helm.version", source, err)
		}
		version = v
		ref = repo.Tag(versionTag(v))
	}

	what := fmt.Sprintf("chart %s", ref.Name())
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", what, err)
	}
	mf, err := v1.ParseManifest(bytes.NewReader(desc.Manifest))
	if err != nil {
		return nil, fmt.Errorf("%s: not an OCI image manifest: %w", what, err)
	}
	if mf.Config.MediaType != registry.ConfigMediaType {
		return nil, fmt.Errorf("%s is not a Helm chart (config media type %q, want %q)", what, mf.Config.MediaType, registry.ConfigMediaType)
	}
	var layer *v1.Descriptor
	for i := range mf.Layers {
		switch mf.Layers[i].MediaType {
		case registry.ChartLayerMediaType, registry.LegacyChartLayerMediaType:
			layer = &mf.Layers[i]
		}
	}
	if layer == nil {
		return nil, fmt.Errorf("%s has no layer of media type %s", what, registry.ChartLayerMediaType)
	}
	if layer.Digest.Algorithm != "sha256" {
		return nil, fmt.Errorf("%s: chart layer digest %s is not sha256", what, layer.Digest)
	}
	if layer.Size > f.maxArchive() {
		return nil, fmt.Errorf("%s is %d bytes, more than %d, the most a chart download may be", what, layer.Size, f.maxArchive())
	}
	hexDigest := layer.Digest.Hex
	if dir, ok := f.cachedDigest(hexDigest); ok && version != "" {
		f.remember(source, chart, version, "sha256:"+hexDigest)
		return &Chart{Dir: dir, Name: chart, Version: version, Digest: "sha256:" + hexDigest, Cached: true}, nil
	}

	l, err := remote.Layer(repo.Digest(layer.Digest.String()), opts...)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", what, err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", what, err)
	}
	defer rc.Close()
	data, err := readLimited(rc, f.maxArchive(), what)
	if err != nil {
		return nil, err
	}
	dir, gotHex, chartVersion, err := f.store(data, hexDigest, chart, version, what)
	if err != nil {
		return nil, err
	}
	f.remember(source, chart, chartVersion, "sha256:"+gotHex)
	return &Chart{Dir: dir, Name: chart, Version: chartVersion, Digest: "sha256:" + gotHex}, nil
}

// tagVersion and versionTag convert between OCI tags and chart versions:
// tags cannot hold "+", so Helm writes it as "_".
func tagVersion(tag string) string     { return strings.ReplaceAll(tag, "_", "+") }
func versionTag(version string) string { return strings.ReplaceAll(version, "+", "_") }

// pickVersion picks the highest version among tags that matches constraint
// (any stable version when it is empty), with Helm's rules for OCI charts.
func pickVersion(tags []string, constraint string) (string, error) {
	var versions []*semver.Version
	for _, tag := range tags {
		if v, err := semver.StrictNewVersion(tagVersion(tag)); err == nil {
			versions = append(versions, v)
		}
	}
	if len(versions) == 0 {
		return "", fmt.Errorf("the repository has no version tags")
	}
	sort.Sort(sort.Reverse(semver.Collection(versions)))
	names := make([]string, len(versions))
	for i, v := range versions {
		names[i] = v.Original()
	}
	return registry.GetTagMatchingVersionOrConstraint(names, constraint)
}
