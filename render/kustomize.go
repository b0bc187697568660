package render

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"

	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/kustomize/api/hasher"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/resmap"
	"sigs.k8s.io/kustomize/api/resource"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/kustomize/kyaml/openapi"
)

// kyamlGlobals serialises the use of kyaml's process-wide OpenAPI schema.
// krusty sets and reads it on every build and kyaml does not guard all of
// its reads, so concurrent builds race (kustomize#3659); Flux serialises
// builds the same way. DefaultNamespace reads the schema too.
var kyamlGlobals sync.Mutex

// Kustomize builds the kustomization in dir, as `kubectl kustomize dir` does,
// with krusty's restrictive defaults: builtin plugins only, each
// kustomization loading files only from its own folder and below, and no
// Helm.
//
// Before the build, every kustomization reachable from dir is checked, and
// references that would make kustomize fetch something (http(s) URLs, remote
// Git bases) or read outside opts.Root are refused with ErrUnsafe; no request
// is ever made. Besides the known path fields, every string field of every
// kustomization and of every builtin plugin configuration (read by
// kustomize's own rules, in-line or from files) is refused if it names
// anything remote, except the fields that hold data (literals, labels,
// annotations, images, in-line patches). The check also counts, with
// multiplicity, the kustomizations the build would load and the objects it
// would process, and refuses a build over Limits.MaxKustomizations or
// Limits.MaxKustomizeObjects before it starts; the output is bounded by
// Limits.MaxTotalBytes once built. The build itself then runs on a filesystem confined to
// opts.Root, which also refuses symlinks that leave it, bounds file sizes
// and bounds YAML alias expansion (kyaml's parser does not).
//
// Objects come out in kustomize's order (its legacy kind order, unless the
// kustomization sets sortOptions).
func Kustomize(ctx context.Context, dir string, opts Options) (*Result, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("cannot resolve %s: %w", dir, err)
	}
	root := opts.Root
	if root == "" {
		root = abs
	}
	j, err := newJail(root, opts.Limits)
	if err != nil {
		return nil, err
	}
	real, err := j.resolve(abs)
	if err != nil {
		return nil, fmt.Errorf("cannot render %s: %w", dir, err)
	}
	name := j.rel(abs)

	rf := resource.NewFactory(&hasher.Hasher{}) // as kustomize's provider makes it
	l := &kustLint{jail: j, done: map[lintKey]kustCount{}, rf: rf, rmf: resmap.NewFactory(rf)}
	count, err := l.dir(ctx, real, nil, nil)
	if err != nil {
		return nil, err
	}
	if err := j.limits.checkKustomize(name, count); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	// A fresh jail, so the bytes the check read do not count twice.
	bj, err := newJail(root, opts.Limits)
	if err != nil {
		return nil, err
	}
	fsys := newConfinedFS(bj)
	kopts := krusty.MakeDefaultOptions()
	kopts.LoadRestrictions = types.LoadRestrictionsRootOnly
	kopts.PluginConfig = types.DisabledPluginConfig()
	// As `kubectl kustomize`: the legacy kind order unless the
	// kustomization sets sortOptions.
	kopts.Reorder = krusty.ReorderOptionUnspecified

	resMap, err := runKrusty(fsys, real, kopts, l.customSchema)
	if err != nil {
		if refused := fsys.refusal(); refused != nil {
			return nil, fmt.Errorf("kustomize build of %s: %w (kustomize: %v)", name, refused, err)
		}
		if types.IsErrOnlyBuiltinPluginsAllowed(err) {
			return nil, fmt.Errorf("kustomize build of %s: %v; only kustomize's builtin plugins run (builtins only): %w", name, err, ErrUnsafe)
		}
		return nil, fmt.Errorf("kustomize build of %s: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if n := resMap.Size(); n > j.limits.MaxObjects {
		return nil, fmt.Errorf("kustomize build of %s: %d objects, more than the %d one render may produce; split the app or raise the limit: %w", name, n, j.limits.MaxObjects, ErrUnsafe)
	}
	d, err := resMapObjects(resMap, j.limits.MaxTotalBytes)
	if err != nil {
		return nil, fmt.Errorf("kustomize build of %s: %w", name, err)
	}
	res := &Result{Objects: d.objects, Warnings: l.warnings, Files: mergeFiles(j.files(), bj.files())}
	if d.foreign > 0 {
		res.Warnings = append(res.Warnings, fmt.Sprintf("%s: %d documents without apiVersion/kind in the output; ignored", name, d.foreign))
	}
	return res, nil
}

// resMapObjects converts a kustomize build's resources to objects through
// JSON, which is several times cheaper than writing the whole set out as YAML
// and parsing it back.
func resMapObjects(resMap resmap.ResMap, maxBytes int64) (decoded, error) {
	var out decoded
	var size int64
	for _, r := range resMap.Resources() {
		data, err := r.MarshalJSON()
		if err != nil {
			return out, fmt.Errorf("encoding %s: %w", r.CurId(), err)
		}
		if size += int64(len(data)); size > maxBytes {
			return out, fmt.Errorf("the output is larger than %d bytes, the most one render may produce (replacements or generators copying large values?); split the app or raise the limit: %w", maxBytes, ErrUnsafe)
		}
		var content map[string]any
		if err := utiljson.Unmarshal(data, &content); err != nil {
			return out, fmt.Errorf("decoding %s: %w", r.CurId(), err)
		}
		objs, foreign, err := objectsOf(content, 0)
		if err != nil {
			return out, fmt.Errorf("%s: %w", r.CurId(), err)
		}
		out.objects = append(out.objects, objs...)
		out.foreign += foreign
	}
	return out, nil
}

// runKrusty runs a kustomize build under kyamlGlobals. A panic inside
// kustomize (some malformed inputs, such as inconsistent
// internal.config.kubernetes.io/previous* annotations, reach one) is the
// build's error, and the lock is released either way, so one bad tree can
// neither crash the process nor hang the renders after it. resetSchema
// drops a kustomization's own openapi schema, which replaces the
// process-wide one, so that it does not reach the next render.
func runKrusty(fsys filesys.FileSystem, path string, kopts *krusty.Options, resetSchema bool) (m resmap.ResMap, err error) {
	kyamlGlobals.Lock()
	defer kyamlGlobals.Unlock()
	defer func() {
		if resetSchema {
			openapi.ResetOpenAPI()
		}
		if r := recover(); r != nil {
			m, err = nil, fmt.Errorf("kustomize failed on this input: %v", r)
		}
	}()
	return krusty.MakeKustomizer(kopts).Run(fsys, path)
}
