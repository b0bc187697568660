package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"text/template"
	"time"

	"helm.sh/helm/v4/pkg/action"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/kube"
	ri "helm.sh/helm/v4/pkg/release"
	rcommon "helm.sh/helm/v4/pkg/release/common"
	release "helm.sh/helm/v4/pkg/release/v1"
	releaseutil "helm.sh/helm/v4/pkg/release/v1/util"
	"helm.sh/helm/v4/pkg/storage/driver"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-gitops/kubectl-gitops/internal/diff"
)

// Defaults for HelmOptions.
const (
	DefaultHelmTimeout    = 5 * time.Minute
	DefaultHelmMaxHistory = 10
	// helmDriver keeps release records in Secrets, Helm's default, so the
	// helm CLI sees our releases.
	helmDriver = "secret"
)

// The pseudo-object a Helm diff uses to show a release's chart and values:
// helm.sh/Release/<namespace>/<name>.
const (
	HelmReleaseAPIVersion = "helm.sh/v1"
	HelmReleaseKind       = "Release"
)

// helmSecretKey matches values keys whose values a diff never prints.
var helmSecretKey = regexp.MustCompile(`(?i)(password|secret|token|key)`)

// HelmRelease is a chart to install or upgrade as a Helm release.
type HelmRelease struct {
	Name string
	// Namespace defaults to the client's namespace (-n or the kubeconfig
	// context's, else "default").
	Namespace string
	// Chart is loaded, with its dependencies vendored (render.LoadChart).
	// Helm may prune disabled subcharts from it; load it again for another
	// operation.
	Chart *chart.Chart
	// Values are the user-supplied values (`helm -f … --set-json …`); they
	// are copied, never modified.
	Values map[string]any
}

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

// HelmDiffOptions configure HelmDiff.
type HelmDiffOptions struct {
	// Diff tunes the comparison and masking.
	Diff diff.Options
	// DisableLookup makes the chart's `lookup` calls return nothing instead
	// of reading the cluster, for charts from untrusted changes: lookup
	// could copy any object the caller can read into the printed diff.
	DisableLookup bool
	// TemplateFuncs override Helm's template functions, for charts from
	// untrusted changes: render.HelmFuncs caps the functions that take
	// counts or sizes, as the sandboxed render of the same chart does, so
	// the SDK's own render of the release cannot be made to exhaust the
	// caller's memory by them.
	TemplateFuncs template.FuncMap
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
// failed install is uninstalled; both return an error. No post-renderers
// and no Helm plugins run.
func (c *Client) HelmApply(ctx context.Context, rel HelmRelease, opts HelmOptions) (*HelmResult, error) {
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
		out, err = in.RunWithContext(ctx, rel.Chart, copyHelmValues(rel.Values))
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
		out, err = up.RunWithContext(ctx, rel.Name, rel.Chart, copyHelmValues(rel.Values))
	}
	if err != nil {
		verb := "upgrading"
		if install {
			verb = "installing"
		}
		if !opts.Wait {
			err = undoFailedRelease(cfg, rel.Name, install, opts, err)
		}
		return nil, fmt.Errorf("%s Helm release %s/%s: %w", verb, ns, rel.Name, err)
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

// HelmDiff shows what HelmApply would change: the objects (hooks included)
// and the values of the deployed release against those of an upgrade
// dry-run, or everything created when there is no release yet. The chart
// and values appear as a pseudo-object helm.sh/Release/<ns>/<name> whose
// values are masked unless opts.Diff.ShowSecrets: values from the stored
// release are shown only where the repository has the same value, values
// under a key that looks secret ((?i)password|secret|token|key) never
// (see helmMask); Secret objects are masked as in every diff.
//
// The dry-run renders against the live cluster as an upgrade would
// (capabilities, `lookup` unless DisableLookup) and checks ownership of
// objects the release would create, but objects are compared as the
// release records them, not as the API server would merge them.
func (c *Client) HelmDiff(ctx context.Context, rel HelmRelease, opts HelmDiffOptions) (*diff.ChangeSet, error) {
	ns := c.helmNamespace(rel.Namespace)
	cfg, err := c.helmConfig(ns, opts.DisableLookup, opts.TemplateFuncs)
	if err != nil {
		return nil, err
	}
	last, uninstalled, err := helmLast(cfg, rel.Name)
	if err != nil {
		return nil, fmt.Errorf("reading Helm release %s/%s: %w", ns, rel.Name, err)
	}
	var current *release.Release
	if last != nil && !uninstalled {
		current = last
		if last.Info == nil || last.Info.Status != rcommon.StatusDeployed {
			// Diff against what is deployed, as the upgrade does; a
			// release that never deployed is compared with its last try.
			if d, err := cfg.Releases.Deployed(rel.Name); err == nil {
				if dr, err := helmV1(d); err == nil {
					current = dr
				}
			}
		}
	}

	var planned ri.Releaser
	if current == nil {
		in := action.NewInstall(cfg)
		in.ReleaseName = rel.Name
		in.Namespace = ns
		in.Replace = uninstalled
		in.DryRunStrategy = action.DryRunServer
		planned, err = in.RunWithContext(ctx, rel.Chart, copyHelmValues(rel.Values))
	} else {
		up := action.NewUpgrade(cfg)
		up.Namespace = ns
		up.ResetValues = true
		up.DryRunStrategy = action.DryRunServer
		planned, err = up.RunWithContext(ctx, rel.Name, rel.Chart, copyHelmValues(rel.Values))
	}
	if err != nil {
		return nil, fmt.Errorf("dry-run of Helm release %s/%s: %w", ns, rel.Name, err)
	}
	after, err := helmV1(planned)
	if err != nil {
		return nil, err
	}

	var before []*unstructured.Unstructured
	if current != nil {
		if before, err = c.helmObjects(current, ns, false); err != nil {
			return nil, fmt.Errorf("the Helm release %s/%s, revision %d: %w", ns, rel.Name, current.Version, err)
		}
	}
	afterObjs, err := c.helmObjects(after, ns, current == nil)
	if err != nil {
		return nil, fmt.Errorf("the Helm release %s/%s: %w", ns, rel.Name, err)
	}
	bv, av := helmValuesObjects(current, after, rel.Name, ns, opts.Diff.ShowSecrets)
	if bv != nil {
		before = append(before, bv)
	}
	afterObjs = append(afterObjs, av)
	return diff.Objects(before, afterObjs, opts.Diff)
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

// helmObjects decodes a release's manifest and hooks into objects, with the
// release namespace set on namespaced objects that name none (as Helm
// applies them). With crds, the chart's crds/ objects are included, as an
// install creates them first.
func (c *Client) helmObjects(r *release.Release, ns string, crds bool) ([]*unstructured.Unstructured, error) {
	docs := []string{}
	if crds && r.Chart != nil {
		for _, crd := range r.Chart.CRDObjects() {
			docs = append(docs, string(crd.File.Data))
		}
	}
	for _, m := range releaseutil.SplitManifests(r.Manifest) {
		docs = append(docs, m)
	}
	for _, h := range r.Hooks {
		if h != nil {
			docs = append(docs, h.Manifest)
		}
	}
	seen := map[string]bool{}
	var out []*unstructured.Unstructured
	for _, doc := range docs {
		for _, part := range releaseutil.SplitManifests(doc) {
			var m map[string]any
			if err := yaml.Unmarshal([]byte(part), &m); err != nil {
				return nil, fmt.Errorf("decoding the release manifest: %w", err)
			}
			if len(m) == 0 {
				continue
			}
			obj := &unstructured.Unstructured{Object: m}
			if obj.GetKind() == "" || obj.GetName() == "" {
				continue
			}
			if obj.GetNamespace() == "" {
				if mp, err := c.mapping(obj.GroupVersionKind()); err == nil && mp.Scope.Name() == meta.RESTScopeNameNamespace {
					obj.SetNamespace(ns)
				}
			}
			key := obj.GroupVersionKind().GroupKind().String() + "/" + obj.GetNamespace() + "/" + obj.GetName()
			if seen[key] {
				// A hook that is also a template (Helm allows it): once.
				continue
			}
			seen[key] = true
			out = append(out, obj)
		}
	}
	return out, nil
}

// helmValuesObjects builds the pseudo-objects that show a release's chart
// and user-supplied values before and after; before is nil without a
// release. Unless show, values are masked leaf by leaf (see helmMask): the
// stored release's values are shown only where the repository has the
// same value, and values under a secret-looking key are masked on both
// sides.
func helmValuesObjects(current, after *release.Release, name, ns string, show bool) (before, next *unstructured.Unstructured) {
	var bvals any
	if current != nil {
		bvals = helmValuesOf(current)
	}
	avals := helmValuesOf(after)
	if !show {
		bvals, avals = helmMask(bvals, avals, current != nil, true, false)
	}
	if current != nil {
		before = helmReleaseObject(current, name, ns, bvals)
	}
	return before, helmReleaseObject(after, name, ns, avals)
}

// helmMask masks one path of a release's values: b from the cluster (the
// stored release; present when bok), a from the repository (present when
// aok). Maps and lists are walked key by key and item by item, keeping
// keys and lengths visible. At a leaf:
//
//   - Under a key that looks secret (helmSecretKey), both sides are masked:
//     "***" when equal, "*** (before)" / "*** (after)" when they differ.
//   - A cluster value equal to the repository's is shown, as the
//     repository shows it.
//   - Any other cluster value — set by hand with helm, by another tool, or
//     changed by this pull request — is masked, as "*** (before)" when the
//     repository has a different value there and "***" when it has none;
//     the repository's value is shown.
//
// So nothing that only the cluster knows (a DSN, a webhook URL) reaches a
// diff, whatever its key is called.
func helmMask(b, a any, bok, aok, secret bool) (any, any) {
	bm, bMap := b.(map[string]any)
	am, aMap := a.(map[string]any)
	if (bMap || !bok) && (aMap || !aok) {
		outB, outA := map[string]any{}, map[string]any{}
		keys := map[string]bool{}
		for k := range bm {
			keys[k] = true
		}
		for k := range am {
			keys[k] = true
		}
		for k := range keys {
			bv, bHas := bm[k]
			av, aHas := am[k]
			mb, ma := helmMask(bv, av, bHas, aHas, secret || helmSecretKey.MatchString(k))
			if bHas {
				outB[k] = mb
			}
			if aHas {
				outA[k] = ma
			}
		}
		return outB, outA
	}
	bl, bList := b.([]any)
	al, aList := a.([]any)
	if (bList || !bok) && (aList || !aok) {
		var outB, outA []any
		if bok {
			outB = make([]any, len(bl))
		}
		if aok {
			outA = make([]any, len(al))
		}
		for i := range max(len(bl), len(al)) {
			var bv, av any
			if i < len(bl) {
				bv = bl[i]
			}
			if i < len(al) {
				av = al[i]
			}
			mb, ma := helmMask(bv, av, i < len(bl), i < len(al), secret)
			if i < len(bl) {
				outB[i] = mb
			}
			if i < len(al) {
				outA[i] = ma
			}
		}
		return outB, outA
	}
	// A leaf, or a map on one side and something else on the other.
	same := bok && aok && jsonEqual(b, a)
	switch {
	case secret && same:
		return maskLeaves(b, diff.Mask), maskLeaves(a, diff.Mask)
	case secret && bok && aok:
		return maskLeaves(b, diff.MaskBefore), maskLeaves(a, diff.MaskAfter)
	case secret:
		return maskLeaves(b, diff.Mask), maskLeaves(a, diff.Mask)
	case !bok:
		return nil, a
	case same:
		return b, a
	}
	mask := diff.Mask
	if aok {
		mask = diff.MaskBefore
		// The repository's value is shown, but for what it holds under
		// secret-looking keys.
		_, a = helmMask(nil, a, false, true, false)
	}
	return maskLeaves(b, mask), a
}

// maskLeaves replaces every leaf of v by mask, keeping map keys and list
// lengths.
func maskLeaves(v any, mask string) any {
	switch v := v.(type) {
	case nil:
		return nil
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, item := range v {
			out[k] = maskLeaves(item, mask)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, item := range v {
			out[i] = maskLeaves(item, mask)
		}
		return out
	}
	return mask
}

// helmValuesOf is a release's user values as JSON decodes them (int64,
// float64, …), so values given in code and values read back from a stored
// release compare alike and deep-copy like any object.
func helmValuesOf(r *release.Release) any {
	if r.Config == nil {
		return map[string]any{}
	}
	data, err := json.Marshal(map[string]any(r.Config))
	if err != nil {
		return "*** (values that cannot be shown)"
	}
	var out map[string]any
	if err := utiljson.Unmarshal(data, &out); err != nil {
		return "*** (values that cannot be shown)"
	}
	return out
}

func helmReleaseObject(r *release.Release, name, ns string, values any) *unstructured.Unstructured {
	obj := map[string]any{
		"apiVersion": HelmReleaseAPIVersion,
		"kind":       HelmReleaseKind,
		"metadata":   map[string]any{"name": name, "namespace": ns},
		"values":     values,
	}
	if r.Chart != nil && r.Chart.Metadata != nil {
		ch := map[string]any{"name": r.Chart.Metadata.Name, "version": r.Chart.Metadata.Version}
		if v := r.Chart.Metadata.AppVersion; v != "" {
			ch["appVersion"] = v
		}
		obj["chart"] = ch
	}
	return &unstructured.Unstructured{Object: obj}
}

// jsonEqual compares values as JSON, so 2 from YAML (int) equals 2 from a
// release record (float64).
func jsonEqual(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}

func copyHelmValues(in map[string]any) map[string]any {
	if in == nil {
		return map[string]any{}
	}
	return copyHelmValue(in).(map[string]any)
}

func copyHelmValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, item := range v {
			out[k] = copyHelmValue(item)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, item := range v {
			out[i] = copyHelmValue(item)
		}
		return out
	default:
		return v
	}
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
