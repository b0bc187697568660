// Package render turns a source tree into Kubernetes objects: folders of plain
// YAML, Kustomize overlays and Helm charts, and the apps of a gitops.yaml file
// (third-party Git sources, in-line patches, image overrides, namespace
// defaulting).
//
// Rendering is offline and deterministic and knows no cluster. It is safe on
// untrusted input by default: nothing outside Options.Root is read (no "../",
// absolute paths or symlink escapes), nothing is fetched over the network from
// a manifest, no exec or KRM-function plugins and no Helm post-renderers run,
// and file sizes, what YAML decodes to (nodes and alias expansion), the cost
// of kustomize builds and of Helm template functions are bounded. No file is
// opened that is not a regular file, so a FIFO cannot block a render.
package render

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Result is what a render produced.
type Result struct {
	// Objects in output order: kustomize's order for kustomizations, Helm's
	// install order for charts, file and document order for plain YAML.
	Objects []*unstructured.Unstructured
	// Warnings are things the user should know that did not stop the render,
	// such as a YAML file that holds no Kubernetes object.
	Warnings []string
	// Files are the files the render read, relative to its root (Options.Root)
	// with forward slashes, sorted and without duplicates: the manifests,
	// kustomize bases and patches, chart files and values files it depends
	// on. A file that changes any of them may change the output.
	Files []string
}

// Options configure a render. The zero value is valid: Root defaults to the
// rendered path itself.
type Options struct {
	// Root confines every read: files outside it, and symlinks that resolve
	// outside it, are refused. For a repository this is its top folder, so an
	// overlay may use "../base" inside the repository but not beyond it.
	Root string
	// Namespace is set on namespaced objects that have none. For Helm charts it
	// is also the release namespace (default "default").
	Namespace string
	// Helm configures chart rendering.
	Helm HelmOptions
	// Limits bound the input; zero fields take the defaults.
	Limits Limits
}

// HelmOptions configure the offline rendering of a chart.
type HelmOptions struct {
	// ReleaseName defaults to the chart's name.
	ReleaseName string
	// ValuesFiles are read in order; relative paths are relative to Root (the
	// repository, like the paths in gitops.yaml), each confined to Root like
	// any other file.
	ValuesFiles []string
	// Values are merged over the values files.
	Values map[string]any
}

// Limits bound what a render reads, so a hostile tree cannot exhaust memory.
type Limits struct {
	// MaxFileBytes is the largest single file read (default 8 MiB).
	MaxFileBytes int64
	// MaxTotalBytes is the most read in one render (default 256 MiB).
	MaxTotalBytes int64
	// MaxObjects is the most objects one render may produce (default 100,000).
	MaxObjects int
	// MaxKustomizations is the most kustomizations one kustomize build may
	// load, counting a base once for every kustomization (overlay,
	// component) that includes it (default 500). Checked before the build.
	MaxKustomizations int
	// MaxKustomizeObjects bounds the objects a kustomize build processes,
	// checked before the build (default 3,000). kustomize's work grows with
	// the square of the objects in each kustomization it loads, so the bound
	// is on the sum over the loads of objects², a base's objects counting in
	// every kustomization that includes it: one kustomization of 3,000
	// objects passes, as do an overlay and its base of 2,000 each.
	MaxKustomizeObjects int
	// MaxYAMLNodes is the most YAML nodes (mappings, sequences and scalars)
	// the files of one render (and a chart's rendered output) may decode to,
	// estimated before parsing (default 2,000,000, some 400 MiB while
	// decoding), so files of flow lists ("[a,a,…]") cannot exhaust memory
	// within the byte limits.
	MaxYAMLNodes int64
}

const (
	defaultMaxFileBytes  = 8 << 20
	defaultMaxTotalBytes = 256 << 20
	defaultMaxObjects    = 100_000

	defaultMaxKustomizations   = 500
	defaultMaxKustomizeObjects = 3_000
	defaultMaxYAMLNodes        = 2_000_000
)

func (l Limits) withDefaults() Limits {
	if l.MaxFileBytes <= 0 {
		l.MaxFileBytes = defaultMaxFileBytes
	}
	if l.MaxTotalBytes <= 0 {
		l.MaxTotalBytes = defaultMaxTotalBytes
	}
	if l.MaxObjects <= 0 {
		l.MaxObjects = defaultMaxObjects
	}
	if l.MaxKustomizations <= 0 {
		l.MaxKustomizations = defaultMaxKustomizations
	}
	if l.MaxKustomizeObjects <= 0 {
		l.MaxKustomizeObjects = defaultMaxKustomizeObjects
	}
	if l.MaxYAMLNodes <= 0 {
		l.MaxYAMLNodes = defaultMaxYAMLNodes
	}
	return l
}

// Kind is how a path is rendered.
type Kind string

const (
	KindPlain     Kind = "plain"
	KindKustomize Kind = "kustomize"
	KindHelm      Kind = "helm"
)

// kustomizationFiles are the names kustomize recognises, in its order.
var kustomizationFiles = []string{"kustomization.yaml", "kustomization.yml", "Kustomization"}

// Detect says how the path would be rendered: a folder with a kustomization
// file is a Kustomize tree, a folder with Chart.yaml a Helm chart, anything
// else (a file or a folder) plain YAML.
func Detect(path string) (Kind, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("cannot read %s: %w", path, err)
	}
	if !fi.IsDir() {
		return KindPlain, nil
	}
	for _, name := range kustomizationFiles {
		if _, err := os.Lstat(filepath.Join(path, name)); err == nil {
			return KindKustomize, nil
		}
	}
	if _, err := os.Lstat(filepath.Join(path, "Chart.yaml")); err == nil {
		return KindHelm, nil
	}
	return KindPlain, nil
}

// Path renders a file or folder, choosing the renderer with Detect, and sets
// Options.Namespace on namespaced objects that have none.
func Path(ctx context.Context, path string, opts Options) (*Result, error) {
	res, err := renderPath(ctx, path, opts)
	if err != nil {
		return nil, err
	}
	DefaultNamespace(res.Objects, opts.Namespace)
	return res, nil
}

// renderPath is Path without the namespace default, which App sets only
// after the app's patches. Options.Namespace is still a chart's release
// namespace.
func renderPath(ctx context.Context, path string, opts Options) (*Result, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("cannot resolve %s: %w", path, err)
	}
	if opts.Root == "" {
		opts.Root = abs
	}
	kind, err := Detect(abs)
	if err != nil {
		return nil, err
	}
	switch kind {
	case KindKustomize:
		return Kustomize(ctx, abs, opts)
	case KindHelm:
		return Helm(ctx, abs, opts)
	default:
		return Plain(ctx, abs, opts)
	}
}

// ErrUnsafe marks a refusal to read or fetch something that untrusted input
// must not reach. Use errors.Is to tell it from other failures.
var ErrUnsafe = errors.New("refused for safety")
