package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"text/template"

	"helm.sh/helm/v4/pkg/action"
	ri "helm.sh/helm/v4/pkg/release"
	rcommon "helm.sh/helm/v4/pkg/release/common"
	release "helm.sh/helm/v4/pkg/release/v1"
	releaseutil "helm.sh/helm/v4/pkg/release/v1/util"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-gitops/kubectl-gitops/internal/diff"
	"github.com/kubectl-gitops/kubectl-gitops/internal/helmrelease"
)

// The pseudo-object a Helm diff uses to show a release's chart and values:
// helm.sh/Release/<namespace>/<name>.
const (
	HelmReleaseAPIVersion = "helm.sh/v1"
	HelmReleaseKind       = "Release"
)

// helmSecretKey matches values keys whose values a diff never prints.
var helmSecretKey = regexp.MustCompile(`(?i)(password|secret|token|key)`)

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

// HelmDiff shows what HelmApply would change: the objects (hooks included)
// and the values of the deployed release against those of an upgrade
// dry-run, or everything created when there is no release yet. The chart
// and values appear as a pseudo-object helm.sh/Release/<ns>/<name> whose
// values are masked unless opts.Diff.ShowSecrets: values from the stored
// release are shown only where the repository has the same value, values
// under a key that looks secret ((?i)password|secret|token|key) never
// (see helmMask), nor any value a Secret of the release holds, whatever its
// key; Secret objects are masked as in every diff, and errors never quote
// a Secret's values (see helmRedactor).
//
// The dry-run renders against the live cluster as an upgrade would
// (capabilities, `lookup` unless DisableLookup) and checks ownership of
// objects the release would create, but objects are compared as the
// release records them, not as the API server would merge them.
func (c *Client) HelmDiff(ctx context.Context, rel helmrelease.Release, opts HelmDiffOptions) (*diff.ChangeSet, error) {
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
		planned, err = in.RunWithContext(ctx, rel.Chart, helmrelease.CopyValues(rel.Values))
	} else {
		up := action.NewUpgrade(cfg)
		up.Namespace = ns
		up.ResetValues = true
		up.DryRunStrategy = action.DryRunServer
		planned, err = up.RunWithContext(ctx, rel.Name, rel.Chart, helmrelease.CopyValues(rel.Values))
	}
	if err != nil {
		return nil, fmt.Errorf("dry-run of Helm release %s/%s: %w", ns, rel.Name, helmRedactor(rel.Values, planned).Error(err))
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
	if !opts.Diff.ShowSecrets {
		// A value the chart puts into a Secret is that Secret's value,
		// whatever its key in the values is called.
		red := diff.NewRedactor(slices.Concat(before, afterObjs)...)
		redactValues(bv, red)
		redactValues(av, red)
	}
	if bv != nil {
		before = append(before, bv)
	}
	afterObjs = append(afterObjs, av)
	return diff.Objects(before, afterObjs, opts.Diff)
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

// redactValues redacts, in place, the values of a release pseudo-object
// (nil does nothing): text leaves have each Secret value replaced by
// diff.Mask, other leaves that hold one become diff.Mask.
func redactValues(obj *unstructured.Unstructured, red *diff.Redactor) {
	if obj != nil {
		obj.Object["values"] = redactLeaves(obj.Object["values"], red)
	}
}

func redactLeaves(v any, red *diff.Redactor) any {
	switch v := v.(type) {
	case nil:
		return nil
	case map[string]any:
		for k, item := range v {
			v[k] = redactLeaves(item, red)
		}
		return v
	case []any:
		for i, item := range v {
			v[i] = redactLeaves(item, red)
		}
		return v
	case string:
		return red.Text(v)
	}
	if j, err := json.Marshal(v); err != nil || red.Text(string(j)) != string(j) {
		return diff.Mask
	}
	return v
}

// jsonEqual compares values as JSON, so 2 from YAML (int) equals 2 from a
// release record (float64).
func jsonEqual(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}
