package render

import (
	"context"
	"fmt"
	"path/filepath"

	chart "helm.sh/helm/v4/pkg/chart/v2"

	"github.com/kubectl-gitops/kubectl-gitops/internal/config"
)

// LoadChart loads the chart folder dir for installing it as a Helm release:
// the chart Helm renders, read exactly as Helm reads it for a render —
// through the jail of Options.Root (default: dir) and Options.Limits, with
// vendored subcharts only and the same checks. Values and release options in
// opts are not used.
func LoadChart(ctx context.Context, dir string, opts Options) (*chart.Chart, error) {
	_, ch, _, err := openChart(ctx, dir, opts)
	return ch, err
}

// openChart loads and checks the chart folder dir through a jail of
// opts.Root (default: dir), and returns the jail for reading values files
// and the chart's name for messages.
func openChart(ctx context.Context, dir string, opts Options) (*jail, *chart.Chart, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, "", err
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, nil, "", fmt.Errorf("cannot resolve chart %s: %w", dir, err)
	}
	if opts.Root == "" {
		opts.Root = dir
	}
	j, err := newJail(opts.Root, opts.Limits)
	if err != nil {
		return nil, nil, "", err
	}
	name := j.rel(dir)
	if name == "." {
		name = filepath.Base(dir)
	}
	ch, err := loadHelmChart(ctx, j, dir)
	if err != nil {
		return nil, nil, "", err
	}
	if err := checkHelmChart(ch, name); err != nil {
		return nil, nil, "", err
	}
	return j, ch, name, nil
}

// HelmRelease is a Helm app ready to be installed or upgraded as a release.
type HelmRelease struct {
	// Name is helm.releaseName, else the app's name.
	Name string
	// Namespace is the app's namespace (AppOptions.Namespace overrides it);
	// empty means the cluster client's default namespace.
	Namespace string
	// Chart is the loaded chart.
	Chart *chart.Chart
	// Values are what the user supplies (`helm -f … --set-json …`): the
	// values files in order, then the in-line values. The chart's defaults
	// are not included; Helm coalesces them at install.
	Values map[string]any
}

// AppRelease prepares a Helm app (app.Helm set) for installation as a real
// Helm release: the same chart and values App renders, from the repository,
// the app's Git source, or a chart repository or registry via
// AppOptions.FetchChart, with the same confinement.
//
// In-line patches and image overrides cannot be applied to a Helm release
// (releases get no post-renderers), so an app with either is refused rather
// than installed differently from what render and diff show.
func AppRelease(ctx context.Context, repo *config.Repository, app config.App, opts AppOptions) (*HelmRelease, error) {
	if app.Helm == nil {
		return nil, fmt.Errorf("app %s is not a Helm app; set helm in gitops.yaml or apply it with server-side apply", app.Name)
	}
	if len(app.Patches) > 0 || len(app.Images) > 0 {
		return nil, fmt.Errorf("app %s: a Helm release cannot take in-line patches or image overrides (Helm releases get no post-renderers); set them through the chart's values instead", app.Name)
	}
	base, ropts, err := appBase(ctx, repo, app, opts)
	if err != nil {
		return nil, err
	}
	src, err := locateAppChart(ctx, app, base, ropts, opts.FetchChart)
	if err != nil {
		return nil, fmt.Errorf("app %s: %w", app.Name, err)
	}
	ropts.Root = src.root
	ch, err := LoadChart(ctx, src.dir, ropts)
	if err != nil {
		return nil, fmt.Errorf("app %s: %w", app.Name, err)
	}
	return &HelmRelease{Name: src.release, Namespace: ropts.Namespace, Chart: ch, Values: src.values}, nil
}
