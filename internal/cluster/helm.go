package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"text/template"
	"time"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/kube"
	ri "helm.sh/helm/v4/pkg/release"
	rcommon "helm.sh/helm/v4/pkg/release/common"
	release "helm.sh/helm/v4/pkg/release/v1"
	releaseutil "helm.sh/helm/v4/pkg/release/v1/util"
	"helm.sh/helm/v4/pkg/storage/driver"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-gitops/kubectl-gitops/internal/diff"
	"github.com/kubectl-gitops/kubectl-gitops/internal/helmrelease"
)

// Defaults for HelmOptions.
const (
	DefaultHelmTimeout    = 5 * time.Minute
	DefaultHelmMaxHistory = 10
	// helmDriver keeps release records in Secrets, Helm's default, so the
	// helm CLI sees our releases.
	helmDriver = "secret"
)

// HelmOptions configure HelmApply.
type HelmOptions struct {
	// Timeout bounds waiting for the release's resources and each hook
	// (default 5m).
	Timeout time.Duration
	// MaxHistory is the most revisions kept per release (default 10).
	MaxHistory int
	// ForceConflicts takes over fields other managers own (server-side
	// apply); without it such a conflict fails the release.
	ForceConflicts bool
	// Description is recorded on the revision (`helm history` shows it).
	Description string
	// Wait waits until the release's resources are ready (kstatus), like
	// `helm --wait=watcher`; hooks are always waited for. Either way a
	// failed release is rolled back.
	Wait bool
}

// HelmResult describes a release revision.
type HelmResult struct {
	Name, Namespace string
	Revision        int
	// Status is Helm's: deployed, failed, superseded, pending-upgrade, …
	Status       string
	Chart        string // chart name
	ChartVersion string
	Description  string
	Updated      time.Time
	// Installed is true when HelmApply installed the release, false when it
	// upgraded it.
	Installed bool
}

// ErrNoHelmRelease says a release does not exist (or was uninstalled).
var ErrNoHelmRelease = errors.New("no such Helm release")

// HelmApply installs the release when it does not exist and upgrades it
// otherwise, like `helm upgrade --install --rollback-on-failure
// --cleanup-on-fail --wait=watcher --create-namespace`: the release is
// recorded in Secrets (driver "secret") so `helm list` and `helm history`
// show it; a failed upgrade rolls back to the last deployed revision and a
// failed install is uninstalled; both return an error, which never quotes
// a value of the release's Secrets (see helmRedactor). No post-renderers
// and no Helm plugins run.
func (c *Client) HelmApply(ctx context.Context, rel helmrelease.Release, opts HelmOptions) (*HelmResult, error) {
	ns := c.helmNamespace(rel.Namespace)
	cfg, err := c.helmConfig(ns, false, nil)
	if err != nil {
		return nil, err
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultHelmTimeout
	}
	if opts.MaxHistory <= 0 {
		opts.MaxHistory = DefaultHelmMaxHistory
	}
	last, uninstalled, err := helmLast(cfg, rel.Name)
	if err != nil {
		return nil, fmt.Errorf("reading Helm release %s/%s: %w", ns, rel.Name, err)
	}
	if last != nil && last.Info != nil && last.Info.Status.IsPending() {
		return nil, fmt.Errorf("the Helm release %s/%s is %s since %s: another operation is running or was interrupted; if none is running, run `helm rollback %s -n %s` and try again",
			ns, rel.Name, last.Info.Status, last.Info.LastDeployed.UTC().Format(time.RFC3339), rel.Name, ns)
	}

	var (
		out     ri.Releaser
		install = last == nil || uninstalled
	)
	if install {
		in := action.NewInstall(cfg)
		in.ReleaseName = rel.Name
		in.Namespace = ns
		in.CreateNamespace = true
		in.Replace = uninstalled
		// Helm rolls back by itself only when it waits (--atomic); without
		// waiting the rollback is ours, below.
		in.RollbackOnFailure = opts.Wait
		in.WaitStrategy = waitStrategy(opts.Wait)
		in.Timeout = opts.Timeout
		in.ForceConflicts = opts.ForceConflicts
		in.Description = opts.Description
		out, err = in.RunWithContext(ctx, rel.Chart, helmrelease.CopyValues(rel.Values))
	} else {
		up := action.NewUpgrade(cfg)
		up.Namespace = ns
		up.MaxHistory = opts.MaxHistory
		up.RollbackOnFailure = opts.Wait
		up.CleanupOnFail = true
		up.WaitStrategy = waitStrategy(opts.Wait)
		up.Timeout = opts.Timeout
		up.ForceConflicts = opts.ForceConflicts
		up.Description = opts.Description
		// The values of a GitOps release are exactly what the repository
		// says, never merged with what an earlier revision had.
		up.ResetValues = true
		out, err = up.RunWithContext(ctx, rel.Name, rel.Chart, helmrelease.CopyValues(rel.Values))
	}
	if err != nil {
		verb := "upgrading"
		if install {
			verb = "installing"
		}
		if !opts.Wait {
			err = undoFailedRelease(cfg, rel.Name, install, opts, err)
		}
		return nil, fmt.Errorf("%s Helm release %s/%s: %w", verb, ns, rel.Name, helmRedactor(rel.Values, out).Error(err))
	}
	r, err := helmV1(out)
	if err != nil {
		return nil, err
	}
	res := helmResult(r)
	res.Installed = install
	return res, nil
}

// HelmStatus returns the latest revision of a release, or ErrNoHelmRelease.
func (c *Client) HelmStatus(ctx context.Context, name, namespace string) (*HelmResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ns := c.helmNamespace(namespace)
	cfg, err := c.helmConfig(ns, false, nil)
	if err != nil {
		return nil, err
	}
	last, uninstalled, err := helmLast(cfg, name)
	if err != nil {
		return nil, fmt.Errorf("reading Helm release %s/%s: %w", ns, name, err)
	}
	if last == nil || uninstalled {
		return nil, fmt.Errorf("%s/%s: %w", ns, name, ErrNoHelmRelease)
	}
	return helmResult(last), nil
}

// helmConfig makes Helm's action configuration for a namespace from the
// client's RESTClientGetter: release records in Secrets there, Helm's
// logging discarded (errors are returned), no registry client. With
// noLookup, templates' lookup returns nothing; funcs override Helm's
// template functions.
func (c *Client) helmConfig(ns string, noLookup bool, funcs template.FuncMap) (*action.Configuration, error) {
	cfg := action.NewConfiguration(action.ConfigurationSetLogger(slog.DiscardHandler))
	if err := cfg.Init(c.getter, ns, helmDriver); err != nil {
		return nil, fmt.Errorf("setting up Helm for namespace %s: %w", ns, err)
	}
	if kc, ok := cfg.KubeClient.(*kube.Client); ok {
		// The release's namespace, not the one of -n or the context.
		kc.Namespace = ns
	}
	if noLookup || len(funcs) > 0 {
		cfg.CustomTemplateFuncs = maps.Clone(funcs)
		if cfg.CustomTemplateFuncs == nil {
			cfg.CustomTemplateFuncs = template.FuncMap{}
		}
	}
	if noLookup {
		cfg.CustomTemplateFuncs["lookup"] = func(string, string, string, string) (map[string]any, error) {
			return map[string]any{}, nil
		}
	}
	return cfg, nil
}

// helmNamespace is ns, else the client's default namespace.
func (c *Client) helmNamespace(ns string) string {
	if ns != "" {
		return ns
	}
	if c.getter != nil {
		if def, _, err := c.getter.ToRawKubeConfigLoader().Namespace(); err == nil && def != "" {
			return def
		}
	}
	return metav1.NamespaceDefault
}

// helmLast returns the latest revision of a release (nil when there is
// none) and whether every revision is uninstalled (kept with
// --keep-history), which `helm upgrade --install` treats as no release.
func helmLast(cfg *action.Configuration, name string) (*release.Release, bool, error) {
	hist, err := cfg.Releases.History(name)
	if errors.Is(err, driver.ErrReleaseNotFound) || (err == nil && len(hist) == 0) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	var (
		last        *release.Release
		uninstalled = true
	)
	for _, h := range hist {
		r, err := helmV1(h)
		if err != nil {
			return nil, false, err
		}
		if r.Info == nil || r.Info.Status != rcommon.StatusUninstalled {
			uninstalled = false
		}
		if last == nil || r.Version > last.Version {
			last = r
		}
	}
	return last, uninstalled, nil
}

func helmV1(r ri.Releaser) (*release.Release, error) {
	switch r := r.(type) {
	case *release.Release:
		return r, nil
	case release.Release:
		return &r, nil
	}
	return nil, fmt.Errorf("unsupported Helm release record %T; this tool handles chart API v2 releases", r)
}

func helmResult(r *release.Release) *HelmResult {
	res := &HelmResult{Name: r.Name, Namespace: r.Namespace, Revision: r.Version}
	if r.Info != nil {
		res.Status = r.Info.Status.String()
		res.Description = r.Info.Description
		res.Updated = r.Info.LastDeployed
	}
	if r.Chart != nil && r.Chart.Metadata != nil {
		res.Chart = r.Chart.Metadata.Name
		res.ChartVersion = r.Chart.Metadata.Version
	}
	return res
}

// helmRedactor keeps out of a Helm error what the release keeps secret: the
// values of the Secrets in r's manifest and hooks (when Helm got as far as
// rendering it; r may be nil), and the values under secret-looking keys
// (helmSecretKey), which a template may quote in an error of its own.
func helmRedactor(values map[string]any, r ri.Releaser) *diff.Redactor {
	var secrets []*unstructured.Unstructured
	if v1, err := helmV1(r); err == nil && v1 != nil {
		manifests := []string{v1.Manifest}
		for _, h := range v1.Hooks {
			if h != nil {
				manifests = append(manifests, h.Manifest)
			}
		}
		for _, manifest := range manifests {
			for _, doc := range releaseutil.SplitManifests(manifest) {
				var m map[string]any
				if yaml.Unmarshal([]byte(doc), &m) == nil && m["kind"] == "Secret" {
					secrets = append(secrets, &unstructured.Unstructured{Object: m})
				}
			}
		}
	}
	red := diff.NewRedactor(secrets...)
	red.Add(secretValues(values, false)...)
	return red
}

// secretValues are the leaves of values under a secret-looking key, as
// text.
func secretValues(v any, secret bool) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		for k, item := range v {
			out = append(out, secretValues(item, secret || helmSecretKey.MatchString(k))...)
		}
	case []any:
		for _, item := range v {
			out = append(out, secretValues(item, secret)...)
		}
	case nil:
	case string:
		if secret {
			out = append(out, v)
		}
	default:
		if j, err := json.Marshal(v); err == nil && secret {
			out = append(out, string(j))
		}
	}
	return out
}

func waitStrategy(wait bool) kube.WaitStrategy {
	if wait {
		return kube.StatusWatcherStrategy
	}
	return kube.HookOnlyStrategy
}

// undoFailedRelease does what Helm's rollback-on-failure does when Helm does
// not wait: a failed upgrade is rolled back to the previous revision and a
// failed install is uninstalled. It returns cause with what was undone.
func undoFailedRelease(cfg *action.Configuration, name string, install bool, opts HelmOptions, cause error) error {
	if install {
		un := action.NewUninstall(cfg)
		un.WaitStrategy = kube.HookOnlyStrategy
		un.Timeout = opts.Timeout
		if _, err := un.Run(name); err != nil {
			return fmt.Errorf("%w; uninstalling the failed release also failed: %v", cause, err)
		}
		return fmt.Errorf("%w; the failed release was uninstalled", cause)
	}
	rb := action.NewRollback(cfg)
	rb.WaitStrategy = kube.HookOnlyStrategy
	rb.Timeout = opts.Timeout
	rb.MaxHistory = opts.MaxHistory
	if err := rb.Run(name); err != nil {
		return fmt.Errorf("%w; rolling back also failed: %v", cause, err)
	}
	return fmt.Errorf("%w; rolled back to the previous revision", cause)
}
