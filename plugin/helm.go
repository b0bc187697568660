package plugin

import (
	"context"
	"fmt"

	"github.com/kubectl-gitops/kubectl-gitops/internal/chartrepo"
	"github.com/kubectl-gitops/kubectl-gitops/internal/cluster"
	"github.com/kubectl-gitops/kubectl-gitops/internal/gitrepo"
	"github.com/kubectl-gitops/kubectl-gitops/render"
)

// appOptions are the render options for the apps of t's repository: its
// root, the -n override, Git sources fetched into the source cache and
// remote charts into the chart cache.
func (f *Flags) appOptions(t *target) (render.AppOptions, error) {
	namespace := ""
	if f.Kube.Namespace != nil {
		namespace = *f.Kube.Namespace
	}
	opts := render.AppOptions{Root: t.root, Namespace: namespace}
	if t.repo == nil {
		return opts, nil
	}
	sources, err := sourceCache()
	if err != nil {
		return opts, err
	}
	fetcher := &gitrepo.Fetcher{CacheDir: sources, Allow: t.repo.Sources.Allow}
	opts.Fetch = func(ctx context.Context, url, ref string) (string, error) {
		co, err := fetcher.Fetch(ctx, url, ref)
		return co.Dir, err
	}
	charts, err := chartrepo.DefaultCacheDir()
	if err != nil {
		return opts, err
	}
	chartFetcher := &chartrepo.Fetcher{CacheDir: charts}
	opts.FetchChart = func(ctx context.Context, repo, chart, version string) (string, error) {
		ch, err := chartFetcher.Fetch(ctx, repo, chart, version)
		if err != nil {
			return "", err
		}
		return ch.Dir, nil
	}
	return opts, nil
}

// helmResultLine describes an applied release, for the apply report.
func helmResultLine(res *cluster.HelmResult) string {
	verb := "upgraded"
	if res.Installed {
		verb = "installed"
	}
	return fmt.Sprintf("%s/%s/%s/%s %s (revision %d, chart %s-%s, %s)",
		"helm.sh", cluster.HelmReleaseKind, res.Namespace, res.Name, verb, res.Revision, res.Chart, res.ChartVersion, res.Status)
}
