package render

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"helm.sh/helm/v4/pkg/chart/common"
	commonutil "helm.sh/helm/v4/pkg/chart/common/util"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
	"helm.sh/helm/v4/pkg/engine"
	release "helm.sh/helm/v4/pkg/release/v1"
	releaseutil "helm.sh/helm/v4/pkg/release/v1/util"
)

const (
	// helmNotesSuffix marks the chart's usage notes, which are text, not objects.
	helmNotesSuffix = "NOTES.txt"
	// helmHookAnnotation marks objects Helm runs around a release operation
	// instead of keeping them in the release.
	helmHookAnnotation = "helm.sh/hook"
)

// Helm renders the chart in dir offline and client-only, producing the objects
// `helm template --include-crds <release> <dir>` would print, minus hooks.
//
// Every file is read through the render's jail (Options.Root and
// Options.Limits): the chart folder, honouring its .helmignore, vendored
// subcharts in charts/ (folders or .tgz archives, unpacked in memory under the
// same limits, symlink entries refused) and the values files. Dependencies
// come only from charts/: one declared in Chart.yaml but missing there is an
// error, never a download.
//
// Values are the chart's defaults, then Options.Helm.ValuesFiles in order
// (paths relative to Options.Root, the repository, like the paths in
// gitops.yaml), then Options.Helm.Values, each merged over the last as
// `helm -f … --set-json …` does. The release is named Options.Helm.ReleaseName
// (default: the chart's name) in Options.Namespace (default "default"), as a
// first install (revision 1) against Helm's default capabilities.
//
// Nothing runs but the template engine: no plugins, post-renderers, getters,
// registries or downloaders; `lookup` returns an empty result and
// `getHostByName` an empty string, with no cluster or DNS access; a
// values.schema.json may not reference other files or URLs.
//
// Output is in Helm's install order: CRDs from crds/ folders first (as
// --include-crds prints them), then templates sorted by kind. Hooks
// (helm.sh/hook) and NOTES.txt are left out, with a warning for hooks.
//
// Template functions that take counts or sizes (until, untilStep, seq,
// repeat, indent, nindent, the rand* functions, key and certificate
// generators, bcrypt) and the string and list builders a template could
// double a value with (printf, replace, concat, append, …) are bounded per
// render; a template over a bound fails with ErrUnsafe naming the function.
// They also check ctx, so a cancelled render stops at its next such call.
//
// Go templates cannot be interrupted otherwise, and Helm's own include and
// tpl cannot be wrapped from outside its engine (they close over its
// template set): a template that recurses through tpl, or doubles through
// include without calling a bounded function, runs on. When ctx ends Helm
// returns ctx.Err() at once but the engine goroutine runs on in the
// background until the template finishes, keeping its goroutine and memory.
// Run renders of untrusted charts in a process that can be killed, with a
// memory limit. For the same reason the rendered output is measured against
// Limits.MaxTotalBytes only once the engine returns.
func Helm(ctx context.Context, dir string, opts Options) (*Result, error) {
	j, ch, name, err := openChart(ctx, dir, opts)
	if err != nil {
		return nil, err
	}
	vals, err := helmValues(j, opts.Helm)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	releaseName := opts.Helm.ReleaseName
	if releaseName == "" {
		releaseName = ch.Name()
	}
	if err := chartutil.ValidateReleaseName(releaseName); err != nil {
		return nil, fmt.Errorf("chart %s: release name %q: %w; set a valid release name", name, releaseName, err)
	}
	namespace := opts.Namespace
	if namespace == "" {
		namespace = "default"
	}

	caps := common.DefaultCapabilities.Copy()
	if kv := ch.Metadata.KubeVersion; kv != "" && !chartutil.IsCompatibleRange(kv, caps.KubeVersion.String()) {
		return nil, fmt.Errorf("chart %s requires kubeVersion %s, which is incompatible with Kubernetes %s, the version charts render against", name, kv, caps.KubeVersion.Version)
	}
	if err := chartutil.ProcessDependencies(ch, vals); err != nil {
		return nil, fmt.Errorf("chart %s: cannot process dependencies: %w", name, err)
	}
	renderVals, err := commonutil.ToRenderValuesWithSchemaValidation(ch, vals, common.ReleaseOptions{
		Name:      releaseName,
		Namespace: namespace,
		Revision:  1,
		IsInstall: true,
	}, caps, true)
	if err != nil {
		return nil, fmt.Errorf("chart %s: cannot compose values: %w", name, err)
	}
	if coalesced, ok := renderVals["Values"].(common.Values); ok {
		if err := validateHelmSchemas(ch, coalesced); errors.Is(err, ErrUnsafe) {
			return nil, fmt.Errorf("chart %s: %w", name, err)
		} else if err != nil {
			return nil, fmt.Errorf("chart %s: values don't meet the specifications of the schema(s) in the following chart(s):\n%w", name, err)
		}
	}

	files, err := renderHelmTemplates(ctx, ch, renderVals, j.limits)
	if err != nil {
		return nil, fmt.Errorf("chart %s: %w", name, err)
	}
	var size int64
	for file, content := range files {
		if strings.HasSuffix(file, helmNotesSuffix) {
			delete(files, file)
			continue
		}
		size += int64(len(content))
		if err := j.countNodes(file, []byte(content)); err != nil {
			return nil, fmt.Errorf("chart %s: %w", name, err)
		}
	}
	if size > j.limits.MaxTotalBytes {
		return nil, fmt.Errorf("chart %s rendered more than %d bytes, the most one render may read; check its loops or raise the limit: %w", name, j.limits.MaxTotalBytes, ErrUnsafe)
	}
	hooks, manifests, err := releaseutil.SortManifests(files, nil, releaseutil.InstallOrder)
	if err != nil {
		return nil, fmt.Errorf("chart %s: %w; fix the template so it prints valid YAML", name, err)
	}

	res := &Result{Files: j.files()}
	out := helmOutput{res: res, max: j.limits.MaxObjects}
	for _, crd := range ch.CRDObjects() {
		if err := out.add(crd.Filename, crd.File.Data); err != nil {
			return nil, err
		}
	}
	for _, m := range manifests {
		if err := out.add(m.Name, []byte(m.Content)); err != nil {
			return nil, err
		}
	}
	if n := countHelmHooks(files, hooks); n > 0 {
		res.Warnings = append(res.Warnings, fmt.Sprintf("chart %s: %d hook objects skipped (%s); hooks run only on apply of a Helm release", ch.Name(), n, helmHookAnnotation))
	}
	if ch.Metadata.Deprecated {
		res.Warnings = append(res.Warnings, fmt.Sprintf("chart %s is deprecated", ch.Name()))
	}
	return res, nil
}

// helmOutput collects decoded objects under the object limit.
type helmOutput struct {
	res *Result
	max int
}

func (o *helmOutput) add(name string, data []byte) error {
	dec, err := decodeObjects(name, data)
	if err != nil {
		return err
	}
	if len(o.res.Objects)+len(dec.objects) > o.max {
		return fmt.Errorf("%s: chart renders more than %d objects, the most one render may produce; split the chart or raise the limit: %w", name, o.max, ErrUnsafe)
	}
	o.res.Objects = append(o.res.Objects, dec.objects...)
	if dec.foreign > 0 {
		o.res.Warnings = append(o.res.Warnings, fmt.Sprintf("%s: %d documents are not Kubernetes objects (no apiVersion or kind) and were skipped", name, dec.foreign))
	}
	return nil
}

// countHelmHooks counts the hook objects Helm leaves out of a release,
// including those naming a hook event Helm does not know, which Helm drops
// without a word.
func countHelmHooks(files map[string]string, known []*release.Hook) int {
	total := 0
	for file, content := range files {
		if strings.HasPrefix(path.Base(file), "_") || !strings.Contains(content, helmHookAnnotation) {
			continue
		}
		for _, doc := range releaseutil.SplitManifests(content) {
			dec, err := decodeObjects(file, []byte(doc))
			if err != nil {
				continue
			}
			for _, obj := range dec.objects {
				if _, ok := obj.GetAnnotations()[helmHookAnnotation]; ok {
					total++
				}
			}
		}
	}
	return max(total, len(known))
}

// renderHelmTemplates runs Helm's template engine with no cluster, DNS or
// plugin access, and with the functions that take counts or sizes bounded
// (see templateBudget). text/template cannot be cancelled, so the engine
// runs in a goroutine that is abandoned when ctx ends first; it stops at its
// next call of a bounded function, which checks ctx.
func renderHelmTemplates(ctx context.Context, ch *chart.Chart, vals common.Values, limits Limits) (map[string]string, error) {
	budget := &templateBudget{ctx: ctx, maxBytes: limits.MaxTotalBytes}
	funcs := budget.untrusted()
	eng := engine.Engine{EnableDNS: false, CustomTemplateFuncs: funcs}
	type rendered struct {
		files   map[string]string
		err     error
		refused error
	}
	done := make(chan rendered, 1)
	go func() {
		files, err := eng.RenderWithContext(ctx, ch, vals)
		done <- rendered{files, err, budget.refused}
	}()
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("render timed out or was cancelled: %w", ctx.Err())
	case r := <-done:
		if r.err != nil && r.refused != nil {
			return nil, fmt.Errorf("%w: %w", r.refused, ErrUnsafe)
		}
		if r.err != nil {
			return nil, fmt.Errorf("%w; fix the template or the values", r.err)
		}
		return r.files, nil
	}
}
