package plugin

import (
	"context"
	"fmt"

	"github.com/kubectl-gitops/kubectl-gitops/internal/chartrepo"
	"github.com/kubectl-gitops/kubectl-gitops/internal/cluster"
	"github.com/kubectl-gitops/kubectl-gitops/internal/config"
	"github.com/kubectl-gitops/kubectl-gitops/internal/diff"
	"github.com/kubectl-gitops/kubectl-gitops/internal/gitrepo"
	"github.com/kubectl-gitops/kubectl-gitops/render"
)

// isHelmApp reports whether an app is applied as a Helm release rather than
// with server-side apply: it has a helm section.
func isHelmApp(app *config.App) bool { return app != nil && app.Helm != nil }

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

// helmRelease prepares app, a Helm app of t's repository, for installation:
// the same chart and values `render` shows, fetched and confined the same
// way.
func (f *Flags) helmRelease(ctx context.Context, t *target, app *config.App) (*render.HelmRelease, error) {
	if t.repo == nil || !isHelmApp(app) {
		return nil, fmt.Errorf("%s is not a Helm app of a gitops.yaml", t.arg)
	}
	opts, err := f.appOptions(t)
	if err != nil {
		return nil, err
	}
	return render.AppRelease(ctx, t.repo, *app, opts)
}

// helmDiff previews a Helm app against its deployed release: objects (hooks
// included) and values, masked; everything created when there is no
// release. Nothing is written to the cluster. Helm's SDK renders the chart
// again here, outside the sandbox, so it gets the same capped template
// functions as the sandboxed render.
func helmDiff(ctx context.Context, c *cluster.Client, rel *render.HelmRelease, opts diff.Options) (*diff.ChangeSet, error) {
	return c.HelmDiff(ctx, clusterRelease(rel), cluster.HelmDiffOptions{Diff: opts, TemplateFuncs: render.HelmFuncs(ctx, render.Limits{})})
}

// helmApply installs or upgrades a Helm app's release; a failed upgrade is
// rolled back (a failed install uninstalled) and returned as an error.
// opts.Description is recorded on the revision (`helm history`), such as the
// Git revision applied.
func helmApply(ctx context.Context, c *cluster.Client, rel *render.HelmRelease, opts cluster.HelmOptions) (*cluster.HelmResult, error) {
	return c.HelmApply(ctx, clusterRelease(rel), opts)
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

func clusterRelease(rel *render.HelmRelease) cluster.HelmRelease {
	return cluster.HelmRelease{Name: rel.Name, Namespace: rel.Namespace, Chart: rel.Chart, Values: rel.Values}
}
