package render

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/konfig"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/kustomize/kyaml/resid"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-gitops/kubectl-gitops/internal/config"
)

// FetchFunc fetches a third-party Git source pinned to ref and returns the
// folder of its checkout. Only the engine fetches; manifests never do.
type FetchFunc func(ctx context.Context, url, ref string) (dir string, err error)

// ChartFetchFunc fetches a chart from a chart repository (repo, an http(s)
// URL, and chart, its name there) or an OCI registry (repo empty, chart an
// oci:// reference) at version, an exact version or a semver range, and
// returns the folder of the unpacked chart. Only the engine fetches charts;
// a chart's own dependencies are never downloaded.
type ChartFetchFunc func(ctx context.Context, repo, chart, version string) (dir string, err error)

// AppOptions configure the render of an app of gitops.yaml.
type AppOptions struct {
	// Root confines reads for apps in this repository (default: the
	// repository's folder). An app with a Git source is confined to its
	// checkout instead.
	Root string
	// Namespace, when set, overrides the app's namespace.
	Namespace string
	// Fetch gets the app's Git source; required for apps that have one.
	Fetch FetchFunc
	// FetchChart gets the chart of a Helm app from a chart repository or
	// an OCI registry; required for apps with such a chart.
	FetchChart ChartFetchFunc
	// Limits bound the input; zero fields take the defaults.
	Limits Limits
}

// App renders an app of gitops.yaml: its path in this repository or in its
// Git source, as plain YAML, a kustomization or a chart; then its in-line
// patches and image overrides; then its namespace, on the namespaced objects
// that have none.
//
// Patches come before the namespace as in a kustomization, whose builtin
// transformers run patches, then namespace, then images (the order of
// transformerConfigurators in kustomize's
// api/internal/target/kusttarget_configplugin.go), and so in a Flux
// Kustomization, whose patches kustomize applies before its targetNamespace.
// A patch may therefore name an object by metadata.name alone, as Flux's
// documentation writes them; naming the namespace the object will end up in
// matches too, in a patch or a target selector.
func App(ctx context.Context, repo *config.Repository, app config.App, opts AppOptions) (*Result, error) {
	base, ropts, err := appBase(ctx, repo, app, opts)
	if err != nil {
		return nil, err
	}
	var res *Result
	if app.Helm != nil {
		res, err = renderAppChart(ctx, app, base, ropts, opts.FetchChart)
	} else {
		res, err = renderPath(ctx, filepath.Join(base, appPath(app)), ropts)
	}
	if err != nil {
		return nil, fmt.Errorf("app %s: %w", app.Name, err)
	}
	if len(app.Patches) > 0 || len(app.Images) > 0 {
		if res.Objects, err = customize(res.Objects, ropts.Namespace, app.Patches, app.Images); err != nil {
			return nil, fmt.Errorf("app %s: %w", app.Name, err)
		}
	}
	DefaultNamespace(res.Objects, ropts.Namespace)
	return res, nil
}

// appBase fetches the app's Git source if it has one and returns the folder
// its paths are relative to (the repository, or the source's checkout) and
// the render options: confined to that folder, with the app's namespace
// unless opts overrides it.
func appBase(ctx context.Context, repo *config.Repository, app config.App, opts AppOptions) (string, Options, error) {
	base, root := repo.Dir, opts.Root
	if root == "" {
		root = repo.Dir
	}
	if app.Source != nil {
		if opts.Fetch == nil {
			return "", Options{}, fmt.Errorf("app %s has a Git source but no fetcher was given", app.Name)
		}
		dir, err := opts.Fetch(ctx, app.Source.Git, app.Source.Ref)
		if err != nil {
			return "", Options{}, fmt.Errorf("app %s: fetching source %s at %s: %w", app.Name, app.Source.Git, app.Source.Ref, err)
		}
		base, root = dir, dir
	}
	namespace := app.Namespace
	if opts.Namespace != "" {
		namespace = opts.Namespace
	}
	return base, Options{Root: root, Namespace: namespace, Limits: opts.Limits}, nil
}

// appPath is the app's folder within its base: the source's path for an app
// with a Git source, else its path.
func appPath(app config.App) string {
	if app.Source != nil {
		if app.Source.Path != "" {
			return app.Source.Path
		}
		return "."
	}
	return app.Path
}

// renderAppChart renders an app's chart: a folder in base (the repository,
// or the app's Git source), or a chart fetched from a chart repository or
// an OCI registry with AppOptions.FetchChart. Values files are paths in base
// either way. opts.Namespace is the release namespace; App sets it on the
// objects that have none.
func renderAppChart(ctx context.Context, app config.App, base string, opts Options, fetch ChartFetchFunc) (*Result, error) {
	src, err := locateAppChart(ctx, app, base, opts, fetch)
	if err != nil {
		return nil, err
	}
	opts.Root = src.root
	opts.Helm = HelmOptions{ReleaseName: src.release, Values: src.values}
	res, err := Helm(ctx, src.dir, opts)
	if err != nil {
		return nil, err
	}
	if app.Helm.Remote() {
		// A fetched chart's files are relative to its cache folder, not
		// to the root: only the values files name files of the root.
		res.Files = src.files
	} else {
		res.Files = mergeFiles(res.Files, src.files)
	}
	return res, nil
}

// appChart is where a Helm app's chart is and what values it gets.
type appChart struct {
	dir     string         // the chart folder
	root    string         // the folder reads of the chart are confined to
	release string         // the release name
	values  map[string]any // the values files, then the in-line values, merged
	files   []string       // the values files read, relative to the root
}

// locateAppChart finds an app's chart folder, fetching a remote chart, and
// reads its values files through a jail rooted at opts.Root. A local chart
// is read through the same jail; a fetched chart through one rooted at its
// own folder in the cache.
func locateAppChart(ctx context.Context, app config.App, base string, opts Options, fetch ChartFetchFunc) (*appChart, error) {
	h := app.Helm
	out := &appChart{release: h.ReleaseName}
	if out.release == "" {
		out.release = app.Name
	}
	if h.Remote() {
		if fetch == nil {
			return nil, fmt.Errorf("chart %s comes from a chart repository or registry but no chart fetcher was given", chartDisplay(h))
		}
		dir, err := fetch(ctx, h.Repo, h.Chart, h.Version)
		if err != nil {
			return nil, fmt.Errorf("fetching chart %s: %w", chartDisplay(h), err)
		}
		out.dir, out.root = dir, dir
	} else {
		chart := h.Chart
		if chart == "" {
			chart = appPath(app)
		}
		out.dir, out.root = filepath.Join(base, chart), opts.Root
	}
	hopts := HelmOptions{Values: h.Values}
	for _, f := range h.ValuesFiles {
		hopts.ValuesFiles = append(hopts.ValuesFiles, filepath.Join(base, f))
	}
	root := opts.Root
	if root == "" {
		root = base
	}
	j, err := newJail(root, opts.Limits)
	if err != nil {
		return nil, err
	}
	if out.values, err = helmValues(j, hopts); err != nil {
		return nil, err
	}
	out.files = j.files()
	return out, nil
}

// chartDisplay names a Helm app's chart for messages.
func chartDisplay(h *config.Helm) string {
	s := h.Chart
	if h.Repo != "" {
		s = strings.TrimSuffix(h.Repo, "/") + "/" + h.Chart
	}
	if h.Version != "" {
		s += " " + h.Version
	}
	return s
}

// prevIDAnnotations are kustomize's build annotations for an object's
// previous ids (internal/utils.BuildAnnotationPrevious* in kustomize's api
// module, which is internal): a patch or target selector that names a
// previous id selects the object as if it named the current one. kustomize
// removes them from its output.
var prevIDAnnotations = struct{ names, kinds, namespaces string }{
	konfig.ConfigAnnoDomain + "/previousNames",
	konfig.ConfigAnnoDomain + "/previousKinds",
	konfig.ConfigAnnoDomain + "/previousNamespaces",
}

// customize applies in-line patches and image overrides with kustomize's own
// patch and image transformers, on an in-memory copy of the objects: the
// same semantics as a kustomization's patches and images fields, target
// selectors included.
//
// It runs before the namespace ns is defaulted, as kustomize runs patches
// before its namespace transformer. Images run here too, though kustomize
// runs them after the namespace: the two touch different fields and select
// no objects by namespace, so their order does not change the output. An
// object that is to get ns carries it as a previous id, so a patch that
// names ns (in metadata.namespace or target.namespace) selects it as well as
// one that names no namespace.
func customize(objs []*unstructured.Unstructured, ns string, patches []config.Patch, images []config.Image) ([]*unstructured.Unstructured, error) {
	pending := map[*unstructured.Unstructured]bool{}
	if ns != "" {
		for _, obj := range withoutNamespace(objs) {
			pending[obj] = true
		}
	}
	var resources bytes.Buffer
	for _, obj := range objs {
		if pending[obj] {
			obj = obj.DeepCopy()
			ann := obj.GetAnnotations()
			if ann == nil {
				ann = map[string]string{}
			}
			ann[prevIDAnnotations.names] = obj.GetName()
			ann[prevIDAnnotations.kinds] = obj.GetKind()
			ann[prevIDAnnotations.namespaces] = ns
			obj.SetAnnotations(ann)
		}
		data, err := yaml.Marshal(obj.Object)
		if err != nil {
			return nil, fmt.Errorf("encoding %s %s: %w", obj.GetKind(), obj.GetName(), err)
		}
		resources.WriteString("---\n")
		resources.Write(data)
	}
	k := types.Kustomization{
		TypeMeta:  types.TypeMeta{APIVersion: types.KustomizationVersion, Kind: types.KustomizationKind},
		Resources: []string{"resources.yaml"},
	}
	for _, p := range patches {
		kp := types.Patch{Patch: p.Patch}
		if t := p.Target; t != nil {
			kp.Target = &types.Selector{
				ResId:              resid.ResId{Gvk: resid.Gvk{Group: t.Group, Version: t.Version, Kind: t.Kind}, Name: t.Name, Namespace: t.Namespace},
				LabelSelector:      t.LabelSelector,
				AnnotationSelector: t.AnnotationSelector,
			}
		}
		k.Patches = append(k.Patches, kp)
	}
	for _, img := range images {
		k.Images = append(k.Images, types.Image{Name: img.Name, NewName: img.NewName, NewTag: img.NewTag, Digest: img.Digest})
	}
	kdata, err := yaml.Marshal(k)
	if err != nil {
		return nil, fmt.Errorf("encoding patches: %w", err)
	}
	fs := filesys.MakeFsInMemory()
	if err := fs.WriteFile("/app/kustomization.yaml", kdata); err != nil {
		return nil, err
	}
	if err := fs.WriteFile("/app/resources.yaml", resources.Bytes()); err != nil {
		return nil, err
	}
	kopts := krusty.MakeDefaultOptions()
	kopts.LoadRestrictions = types.LoadRestrictionsRootOnly
	kopts.PluginConfig = types.DisabledPluginConfig()
	kopts.Reorder = krusty.ReorderOptionNone
	resMap, err := runKrusty(fs, "/app", kopts, false)
	if err != nil {
		return nil, fmt.Errorf("applying patches and images: %w", err)
	}
	d, err := resMapObjects(resMap, Limits{}.withDefaults().MaxTotalBytes)
	if err != nil {
		return nil, fmt.Errorf("applying patches and images: %w", err)
	}
	return d.objects, nil
}

// Repository renders every app of the repository file, in file order, and
// concatenates their objects. Errors of all apps are joined, so one broken
// app does not hide another's.
func Repository(ctx context.Context, repo *config.Repository, opts AppOptions) (*Result, error) {
	out := &Result{}
	var errs []error
	for _, app := range repo.Apps {
		res, err := App(ctx, repo, app, opts)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out.Objects = append(out.Objects, res.Objects...)
		for _, w := range res.Warnings {
			out.Warnings = append(out.Warnings, "app "+app.Name+": "+w)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}
