package render

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/resmap"
	"sigs.k8s.io/kustomize/api/resource"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/yaml"
)

// vendorAdvice is what to do about a reference that is refused.
const vendorAdvice = "vendor it into the repository or declare it as an app source in gitops.yaml"

// kustLint checks, before a build, every kustomization reachable from the
// built one.
type kustLint struct {
	jail *jail
	// done holds the kustomizations already checked and what each costs.
	done map[lintKey]kustCount
	// rf and rmf read plugin configurations as kustomize reads them.
	rf  *resource.Factory
	rmf *resmap.Factory
	// warnings are kustomize's deprecation notices, which it would print to
	// the process's stderr.
	warnings []string
	// customSchema is set when a kustomization sets openapi.
	customSchema bool
}

// lintKey identifies one check of a kustomization: the same folder may be
// used as a base and as a list of plugin configurations.
type lintKey struct {
	dir, pluginBase string
}

// dir checks the kustomization in the real folder dir. stack holds the
// kustomization files on the way here, to report cycles. pluginBase is nil
// for an ordinary kustomization; for one listed under generators,
// transformers or validators it is the folder of the kustomization that
// listed it, against which the plugin configurations' paths resolve.
func (l *kustLint) dir(ctx context.Context, dir string, stack []string, pluginBase *string) (kustCount, error) {
	if err := ctx.Err(); err != nil {
		return kustCount{}, err
	}
	kfile := ""
	for _, n := range kustomizationFiles {
		if fi, err := os.Lstat(filepath.Join(dir, n)); err == nil && !fi.IsDir() {
			kfile = filepath.Join(dir, n)
			break
		}
	}
	if kfile == "" {
		// kustomize reports the missing kustomization itself.
		return kustCount{}, nil
	}
	name := l.jail.rel(kfile)
	for i, s := range stack {
		if s == name {
			cycle := append(append([]string{}, stack[i:]...), name)
			return kustCount{}, fmt.Errorf("kustomization cycle: %s; remove one of these references", strings.Join(cycle, " → "))
		}
	}
	key := lintKey{dir: dir}
	if pluginBase != nil {
		key.pluginBase = *pluginBase
	}
	if count, ok := l.done[key]; ok {
		return count, nil
	}
	stack = append(stack, name)

	data, err := l.jail.readFile(kfile)
	if err != nil {
		return kustCount{}, fmt.Errorf("%s: %w", name, err)
	}
	var k types.Kustomization
	if err := k.Unmarshal(data); err != nil {
		return kustCount{}, fmt.Errorf("%s: %w", name, err)
	}
	if msgs := k.CheckDeprecatedFields(); msgs != nil {
		for _, m := range *msgs {
			m = strings.TrimPrefix(strings.TrimSpace(m), "# Warning: ")
			l.warnings = append(l.warnings, fmt.Sprintf("%s: %s", name, m))
		}
	}
	var generic map[string]any
	if err := yaml.Unmarshal(data, &generic); err != nil {
		return kustCount{}, fmt.Errorf("%s: %w", name, err)
	}
	if err := noRemote(name, "", generic, kustomizationSkip); err != nil {
		return kustCount{}, err
	}
	c := kustCheck{lint: l, name: name, dir: dir, stack: stack, count: kustCount{loads: 1}}
	if pluginBase != nil {
		err = c.pluginList(ctx, &k, *pluginBase)
	} else {
		err = c.kustomization(ctx, &k)
	}
	if err != nil {
		return kustCount{}, err
	}
	c.count.fieldPaths += countFieldPaths(generic["replacements"])
	if err := c.count.checkReplacements(name, l.jail.limits.MaxTotalBytes, l.jail.readFile); err != nil {
		return kustCount{}, err
	}
	c.count.fieldPaths = 0 // a base's replacements are checked in the base
	c.count.finish()
	l.done[key] = c.count
	return c.count, nil
}

// kustCheck checks the references of one kustomization file.
type kustCheck struct {
	lint  *kustLint
	name  string // the kustomization file, relative to the root
	dir   string // its real folder
	stack []string
	count kustCount // what building it costs, its bases included
}

// refKind is what a reference must resolve to.
type refKind int

const (
	refFile refKind = iota
	refDir
	refAny
)

func (c *kustCheck) kustomization(ctx context.Context, k *types.Kustomization) error {
	if len(k.HelmCharts) > 0 || k.HelmGlobals != nil || len(k.HelmChartInflationGenerator) > 0 {
		field := "helmCharts"
		switch {
		case len(k.HelmChartInflationGenerator) > 0:
			field = "helmChartInflationGenerator"
		case len(k.HelmCharts) == 0:
			field = "helmGlobals"
		}
		return fmt.Errorf("%s: %s: kustomize would run the helm binary and may pull charts from the network; declare the chart as a Helm app in gitops.yaml instead: %w", c.name, field, ErrUnsafe)
	}
	for _, ref := range k.Resources {
		if err := c.base(ctx, "resources", ref, refAny, nil); err != nil {
			return err
		}
	}
	for _, ref := range k.Bases {
		if err := c.base(ctx, "bases", ref, refDir, nil); err != nil {
			return err
		}
	}
	for _, ref := range k.Components {
		if err := c.base(ctx, "components", ref, refDir, nil); err != nil {
			return err
		}
	}
	files := []struct {
		field string
		refs  []string
	}{
		{"crds", k.Crds},
		{"configurations", k.Configurations},
		{"openapi.path", optional(k.OpenAPI["path"])},
	}
	for i, p := range k.Patches {
		files = append(files, struct {
			field string
			refs  []string
		}{fmt.Sprintf("patches[%d].path", i), optional(p.Path)})
	}
	for i, p := range k.PatchesJson6902 {
		files = append(files, struct {
			field string
			refs  []string
		}{fmt.Sprintf("patchesJson6902[%d].path", i), optional(p.Path)})
	}
	for i, r := range k.Replacements {
		files = append(files, struct {
			field string
			refs  []string
		}{fmt.Sprintf("replacements[%d].path", i), optional(r.Path)})
	}
	for _, f := range files {
		for _, ref := range f.refs {
			if _, err := c.ref(f.field, ref, refFile); err != nil {
				return err
			}
		}
	}
	if len(k.OpenAPI) > 0 {
		c.lint.customSchema = true
	}
	for _, p := range k.PatchesStrategicMerge {
		if _, ok := inlineObjects(c.name, string(p)); ok {
			continue
		}
		if _, err := c.ref("patchesStrategicMerge", string(p), refFile); err != nil {
			return err
		}
	}
	c.count.objects += int64(len(k.ConfigMapGenerator) + len(k.SecretGenerator))
	for i, r := range k.Replacements {
		if r.Path == "" {
			continue
		}
		if err := c.dataFile(fmt.Sprintf("replacements[%d].path", i), r.Path); err != nil {
			return err
		}
	}
	for i, g := range k.ConfigMapGenerator {
		if err := c.generatorSources(fmt.Sprintf("configMapGenerator[%d]", i), g.KvPairSources); err != nil {
			return err
		}
	}
	for i, g := range k.SecretGenerator {
		if err := c.generatorSources(fmt.Sprintf("secretGenerator[%d]", i), g.KvPairSources); err != nil {
			return err
		}
	}
	plugins := []struct {
		field   string
		entries []string
	}{{"generators", k.Generators}, {"transformers", k.Transformers}, {"validators", k.Validators}}
	for _, p := range plugins {
		for _, entry := range p.entries {
			if err := c.plugin(ctx, p.field, entry); err != nil {
				return err
			}
		}
	}
	return nil
}

// pluginListFields are what a kustomization listed under generators,
// transformers or validators may set besides resources: nothing that could
// rewrite the plugin configurations into something the check did not see.
func (c *kustCheck) pluginList(ctx context.Context, k *types.Kustomization, base string) error {
	rest := *k
	rest.TypeMeta, rest.MetaData = types.TypeMeta{}, nil
	rest.Resources, rest.Namespace, rest.NamePrefix, rest.NameSuffix = nil, "", "", ""
	rest.CommonLabels, rest.Labels, rest.CommonAnnotations = nil, nil, nil
	rest.BuildMetadata, rest.SortOptions = nil, nil
	if !reflect.ValueOf(rest).IsZero() {
		return fmt.Errorf("%s: a kustomization listed under generators, transformers or validators may only list resources (and set names, labels and annotations); its plugin configurations cannot be checked otherwise: %w", c.name, ErrUnsafe)
	}
	for _, ref := range k.Resources {
		real, err := c.ref("resources", ref, refAny)
		if err != nil {
			return err
		}
		if isDir(real) {
			sub, err := c.lint.dir(ctx, real, c.stack, &base)
			c.count.add(sub)
			if err != nil {
				return err
			}
			continue
		}
		if err := c.pluginFile("resources", ref, real, base); err != nil {
			return err
		}
	}
	return nil
}

// base checks a reference that may be another kustomization and checks that
// one too.
func (c *kustCheck) base(ctx context.Context, field, ref string, kind refKind, pluginBase *string) error {
	real, err := c.ref(field, ref, kind)
	if err != nil {
		return err
	}
	if isDir(real) {
		sub, err := c.lint.dir(ctx, real, c.stack, pluginBase)
		c.count.add(sub)
		return err
	}
	return c.countFile(real)
}

// countFile counts the objects of a resource file.
func (c *kustCheck) countFile(real string) error {
	data, err := c.lint.jail.readFile(real)
	if err != nil {
		return fmt.Errorf("%s: %w", c.name, err)
	}
	n, largest := countDocuments(data)
	c.count.objects += n
	c.count.largestDoc = max(c.count.largestDoc, largest)
	c.count.addFile(real)
	return nil
}

// generatorSources checks the files and env files of a ConfigMap or Secret
// generator.
func (c *kustCheck) generatorSources(field string, s types.KvPairSources) error {
	for _, f := range s.FileSources {
		// "[key=]path", as kustomize parses it.
		if _, path, ok := strings.Cut(f, "="); ok {
			f = path
		}
		if _, err := c.ref(field+".files", f, refFile); err != nil {
			return err
		}
	}
	for _, e := range s.EnvSources {
		if _, err := c.ref(field+".envs", e, refFile); err != nil {
			return err
		}
	}
	if s.EnvSource != "" {
		if _, err := c.ref(field+".env", s.EnvSource, refFile); err != nil {
			return err
		}
	}
	return nil
}

// plugin checks an entry of generators, transformers or validators: an inline
// plugin configuration, a file of them, or a kustomization that lists them.
func (c *kustCheck) plugin(ctx context.Context, field, entry string) error {
	// As kustomize decides: an entry that parses as resources is an
	// in-line configuration, anything else a path.
	if rm, err := c.lint.rmf.NewResMapFromBytes([]byte(entry)); err == nil {
		for _, r := range rm.Resources() {
			if err := c.pluginConfig(field, "", r, c.dir); err != nil {
				return err
			}
		}
		return nil
	}
	real, err := c.ref(field, entry, refAny)
	if err != nil {
		return err
	}
	if isDir(real) {
		base := c.dir
		sub, err := c.lint.dir(ctx, real, c.stack, &base)
		c.count.add(sub)
		return err
	}
	return c.pluginFile(field, entry, real, c.dir)
}

// pluginFile checks a file of plugin configurations whose paths resolve
// against the folder base. The file is read by kustomize's own rules: every
// document is a configuration, and only a kind ending in "List" with items
// is a list of them (a ConfigMapGenerator with "items: []" is still a
// ConfigMapGenerator).
func (c *kustCheck) pluginFile(field, ref, real, base string) error {
	data, err := c.lint.jail.readFile(real)
	if err != nil {
		return fmt.Errorf("%s: %s %q: %w", c.name, field, ref, err)
	}
	rs, err := c.lint.rf.SliceFromBytes(data)
	if err != nil {
		return fmt.Errorf("%s: %s %q: %w; fix its YAML", c.name, field, ref, err)
	}
	for _, r := range rs {
		if err := c.pluginConfig(field, ref, r, base); err != nil {
			return err
		}
	}
	return nil
}

// dataFile checks a file kustomize reads as configuration (replacements):
// it must be safe to read and may not name anything remote.
func (c *kustCheck) dataFile(field, ref string) error {
	real, err := c.ref(field, ref, refFile)
	if err != nil {
		return err
	}
	data, err := c.lint.jail.readFile(real)
	if err != nil {
		return fmt.Errorf("%s: %s %q: %w", c.name, field, ref, err)
	}
	var content any
	if err := yaml.Unmarshal(data, &content); err != nil {
		// kustomize reports the YAML error itself.
		return nil
	}
	c.count.fieldPaths += countFieldPaths(content)
	return noRemote(fmt.Sprintf("%s: %s %q", c.name, field, ref), "", content, pluginSkip)
}

// functionAnnotations mark a KRM function (exec or container).
var functionAnnotations = []string{"config.kubernetes.io/function", "config.k8s.io/function"}

// pluginConfig checks one plugin configuration: it must be a builtin that
// does not run Helm, and the paths it reads must be safe.
func (c *kustCheck) pluginConfig(field, ref string, r *resource.Resource, base string) error {
	where := field
	if ref != "" {
		where = fmt.Sprintf("%s %q", field, ref)
	}
	obj, err := r.Map()
	if err != nil {
		return fmt.Errorf("%s: %s: %w", c.name, where, err)
	}
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	annotations, _, _ := unstructured.NestedMap(obj, "metadata", "annotations")
	for _, a := range functionAnnotations {
		if _, ok := annotations[a]; ok {
			return fmt.Errorf("%s: %s: %s %s is a KRM function; functions and exec plugins do not run here, only kustomize's builtin plugins (builtins only): %w", c.name, where, apiVersion, kind, ErrUnsafe)
		}
	}
	if apiVersion != "builtin" {
		return fmt.Errorf("%s: %s: %s %s is an exec or Go plugin; only kustomize's builtin plugins run here (builtins only): %w", c.name, where, apiVersion, kind, ErrUnsafe)
	}
	if kind == "HelmChartInflationGenerator" {
		return fmt.Errorf("%s: %s: kustomize would run the helm binary and may pull charts from the network; declare the chart as a Helm app in gitops.yaml instead: %w", c.name, where, ErrUnsafe)
	}
	if err := noRemote(fmt.Sprintf("%s: %s (%s)", c.name, where, kind), "", obj, pluginSkip); err != nil {
		return err
	}
	c.count.objects++
	// Paths in a plugin configuration resolve against the kustomization
	// that lists it.
	at := kustCheck{lint: c.lint, name: c.name, dir: base, stack: c.stack}
	field = fmt.Sprintf("%s (%s)", where, kind)
	strs := func(key string) []string {
		switch v := obj[key].(type) {
		case string:
			return optional(v)
		case []any:
			var out []string
			for _, e := range v {
				if s, ok := e.(string); ok {
					out = append(out, s)
				}
			}
			return out
		}
		return nil
	}
	var paths []string
	switch kind {
	case "HelmChartInflationGenerator":
		return fmt.Errorf("%s: %s: kustomize would run the helm binary and may pull charts from the network; declare the chart as a Helm app in gitops.yaml instead: %w", c.name, where, ErrUnsafe)
	case "ConfigMapGenerator", "SecretGenerator":
		for _, f := range strs("files") {
			if _, p, ok := strings.Cut(f, "="); ok {
				f = p
			}
			paths = append(paths, f)
		}
		paths = append(paths, strs("envs")...)
		paths = append(paths, strs("env")...)
	case "PatchTransformer", "PatchJson6902Transformer":
		paths = strs("path")
	case "PatchStrategicMergeTransformer":
		for _, p := range strs("paths") {
			if _, ok := inlineObjects(c.name, p); !ok {
				paths = append(paths, p)
			}
		}
	case "ReplacementTransformer":
		if list, ok := obj["replacements"].([]any); ok {
			for _, r := range list {
				if m, ok := r.(map[string]any); ok {
					if p, ok := m["path"].(string); ok && p != "" {
						if err := at.dataFile(field, p); err != nil {
							return err
						}
					}
				}
			}
		}
		// The replacements write into the kustomization that lists them.
		c.count.fieldPaths += countFieldPaths(obj["replacements"]) + at.count.fieldPaths
	}
	for _, p := range paths {
		if _, err := at.ref(field, p, refFile); err != nil {
			return err
		}
	}
	return nil
}

// ref checks one reference of the kustomization and returns its real path:
// it must not be remote or absolute, and must resolve to an existing file
// or folder (as kind says) inside the root.
func (c *kustCheck) ref(field, ref string, kind refKind) (string, error) {
	if ref == "" {
		return "", fmt.Errorf("%s: %s has an empty entry; remove it", c.name, field)
	}
	if why := remoteReason(ref); why != "" {
		return "", fmt.Errorf("%s: %s %q is %s, which kustomize would fetch during the build; %s: %w", c.name, field, redact(ref), why, vendorAdvice, ErrUnsafe)
	}
	if filepath.IsAbs(ref) {
		return "", fmt.Errorf("%s: %s %q is an absolute path; use a path relative to the kustomization, inside the repository: %w", c.name, field, ref, ErrUnsafe)
	}
	real, err := c.lint.jail.resolve(filepath.Join(c.dir, ref))
	if errors.Is(err, ErrUnsafe) {
		return "", fmt.Errorf("%s: %s %q is not in or below the repository root %s (by \"..\" or a symlink); %s: %w", c.name, field, ref, c.lint.jail.root, vendorAdvice, ErrUnsafe)
	}
	if err != nil {
		return "", fmt.Errorf("%s: %s %q does not exist in the repository; fix the path, or %s: %w", c.name, field, ref, vendorAdvice, ErrUnsafe)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return "", fmt.Errorf("%s: %s %q: %w", c.name, field, ref, err)
	}
	switch {
	case kind == refFile && !fi.Mode().IsRegular():
		return "", fmt.Errorf("%s: %s %q is not a file: %w", c.name, field, ref, ErrUnsafe)
	case kind == refDir && !fi.IsDir():
		return "", fmt.Errorf("%s: %s %q is not a folder: %w", c.name, field, ref, ErrUnsafe)
	case kind == refAny && !fi.IsDir() && !fi.Mode().IsRegular():
		return "", fmt.Errorf("%s: %s %q is neither a file nor a folder: %w", c.name, field, ref, ErrUnsafe)
	}
	return real, nil
}

// scpUser matches the "user@" that makes kustomize read "git@host:org/repo"
// as a Git repository.
var scpUser = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9-]*@`)

// remoteReason says why kustomize would take ref for something to fetch
// (an http(s) file or a Git repository to clone), or "" if it would not. It
// is a superset of kustomize's own tests (loader.IsRemoteFile and
// git.NewRepoSpecFromURL), which are internal to kustomize, and of
// fetchReason, which every string field is checked with.
func remoteReason(ref string) string {
	if why := fetchReason(ref); why != "" {
		return why
	}
	switch {
	case scpUser.MatchString(ref):
		return "a Git repository (user@host)"
	case strings.Contains(ref, "//"):
		return "a repository folder (repo//folder)"
	}
	if u, err := url.Parse(ref); err == nil && len(u.Scheme) > 1 {
		return "a URL"
	}
	return ""
}

// redact hides a password or token in a URL's user information.
func redact(ref string) string {
	u, err := url.Parse(ref)
	if err != nil || u.User == nil {
		return ref
	}
	if _, ok := u.User.Password(); ok {
		return u.Redacted()
	}
	if u.Scheme == "https" || u.Scheme == "http" {
		// A token alone may sit in the user name.
		u.User = url.User("xxxxx")
		return u.String()
	}
	return ref
}

// inlineObjects returns the objects of a generators/transformers/validators
// or patchesStrategicMerge entry that is YAML content rather than a path.
// kustomize takes an entry for content only if it parses as resources, and
// for a path otherwise, so an entry that is anything else ("https://x: y"
// parses as a mapping) is checked as a path.
func inlineObjects(name, entry string) ([]*unstructured.Unstructured, bool) {
	if !strings.ContainsAny(entry, ":\n") {
		return nil, false
	}
	d, err := decodeObjects(name, []byte(entry))
	if err != nil || d.foreign > 0 || len(d.objects) == 0 {
		return nil, false
	}
	return d.objects, true
}

func isDir(real string) bool {
	fi, err := os.Stat(real)
	return err == nil && fi.IsDir()
}

func optional(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}
