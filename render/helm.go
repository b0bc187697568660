package render

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"helm.sh/helm/v4/pkg/chart/common"
	commonutil "helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/loader/archive"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
	"helm.sh/helm/v4/pkg/engine"
	"helm.sh/helm/v4/pkg/ignore"
	release "helm.sh/helm/v4/pkg/release/v1"
	releaseutil "helm.sh/helm/v4/pkg/release/v1/util"
)

const (
	// helmNotesSuffix marks the chart's usage notes, which are text, not objects.
	helmNotesSuffix = "NOTES.txt"
	// helmHookAnnotation marks objects Helm runs around a release operation
	// instead of keeping them in the release.
	helmHookAnnotation = "helm.sh/hook"
	// helmSchemaURL is where a chart's values.schema.json is registered for
	// validation; Helm uses the same name, so error messages match.
	helmSchemaURL = "file:///values.schema.json"
	// helmExpandedSuffix names the in-memory folder a vendored subchart archive
	// is unpacked into, so the loader treats it as a folder subchart. The
	// loader derives the subchart's name from its Chart.yaml, not this folder.
	helmExpandedSuffix = ".d"
	// helmUTF8BOM is stripped from every chart file, as Helm's loader does.
	helmUTF8BOM = "\xEF\xBB\xBF"
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

// checkHelmChart refuses charts Helm would not install and dependencies that
// are not vendored, at every level of the chart tree.
func checkHelmChart(ch *chart.Chart, name string) error {
	switch ch.Metadata.Type {
	case "", "application":
	default:
		return fmt.Errorf("chart %s is a %s chart, which cannot be rendered on its own; render a chart that depends on it", name, ch.Metadata.Type)
	}
	return checkHelmDependencies(ch, name)
}

func checkHelmDependencies(ch *chart.Chart, name string) error {
	have := map[string]bool{}
	for _, dep := range ch.Dependencies() {
		have[dep.Name()] = true
	}
	var missing []string
	for _, req := range ch.Metadata.Dependencies {
		if req != nil && !have[req.Name] {
			missing = append(missing, req.Name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("chart %s: dependencies %s are in Chart.yaml but missing from %s; run `helm dependency build` in the chart folder and commit charts/ (renders never download dependencies)",
			name, strings.Join(missing, ", "), path.Join(ch.ChartFullPath(), "charts"))
	}
	for _, dep := range ch.Dependencies() {
		if err := checkHelmDependencies(dep, name); err != nil {
			return err
		}
	}
	return nil
}

// helmValues reads the values files through the jail and merges them, then
// the in-line values, as `helm -f a -f b --set-json …` does.
func helmValues(j *jail, opts HelmOptions) (map[string]any, error) {
	vals := map[string]any{}
	for _, file := range opts.ValuesFiles {
		data, err := j.readFile(file)
		if err != nil {
			return nil, fmt.Errorf("values file %s: %w", file, err)
		}
		current, err := loader.LoadValues(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("values file %s: %w; fix its YAML", file, err)
		}
		vals = loader.MergeMaps(vals, current)
	}
	if len(opts.Values) > 0 {
		// Helm's dependency processing may write into the values it is
		// given; the caller's map stays untouched.
		vals = loader.MergeMaps(vals, copyHelmValues(opts.Values))
	}
	return vals, nil
}

func copyHelmValues(in map[string]any) map[string]any {
	out := make(map[string]any, len(in))
	for k, v := range in {
		out[k] = copyHelmValue(v)
	}
	return out
}

func copyHelmValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		return copyHelmValues(v)
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

// loadHelmChart loads the chart folder dir through the jail, as Helm's
// directory loader would, and sorts subcharts by name so output is the same
// on every run.
func loadHelmChart(ctx context.Context, j *jail, dir string) (*chart.Chart, error) {
	real, err := j.resolve(dir)
	if err != nil {
		return nil, fmt.Errorf("chart %s: %w", j.rel(dir), err)
	}
	w := helmWalker{j: j, rules: ignore.Empty(), visiting: map[string]bool{}, visited: map[string]int{}}
	ignoreFile := filepath.Join(dir, ignore.HelmIgnore)
	if _, err := os.Lstat(ignoreFile); err == nil {
		data, err := j.readFile(ignoreFile)
		if err != nil {
			return nil, err
		}
		rules, err := ignore.Parse(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%s: %w; fix the ignore file", j.rel(ignoreFile), err)
		}
		w.rules = rules
	}
	w.rules.AddDefaults()
	w.visiting[real] = true
	w.visited[real] = 1
	if err := w.walk(ctx, dir, ""); err != nil {
		return nil, err
	}
	files, err := expandHelmArchives(j, w.files, j.rel(dir))
	if err != nil {
		return nil, err
	}
	ch, err := loader.LoadFiles(files)
	if err != nil {
		return nil, fmt.Errorf("chart %s: %w; fix the chart", j.rel(dir), err)
	}
	sortHelmDependencies(ch)
	return ch, nil
}

func sortHelmDependencies(ch *chart.Chart) {
	deps := ch.Dependencies()
	sort.SliceStable(deps, func(a, b int) bool { return deps[a].Name() < deps[b].Name() })
	ch.SetDependencies(deps...)
	for _, dep := range deps {
		sortHelmDependencies(dep)
	}
}

// maxFolderLinks is how often a chart may hold the same folder, linked in
// under several names.
const maxFolderLinks = 4

// helmWalker collects a chart folder's files, following symlinks that stay in
// the jail like Helm's loader does, and refusing those that leave it.
type helmWalker struct {
	j        *jail
	rules    *ignore.Rules
	visiting map[string]bool // real paths of the folders being walked, against symlink loops
	// visited counts how often each folder (by real path) was walked:
	// Helm copies a folder linked in twice, but a DAG of links would make
	// that exponential.
	visited map[string]int
	files   []*archive.BufferedFile
}

// walk reads the folder at path, whose chart-relative name is name ("" for
// the chart folder). Entries are visited in lexical order, as Helm does.
func (w *helmWalker) walk(ctx context.Context, dir, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("cannot read %s: %w", w.j.rel(dir), err)
	}
	for _, entry := range entries {
		full := filepath.Join(dir, entry.Name())
		n := path.Join(name, entry.Name())
		real, err := w.j.resolve(full)
		if err != nil {
			return err
		}
		fi, err := os.Stat(real)
		if err != nil {
			return fmt.Errorf("cannot read %s: %w", w.j.rel(full), err)
		}
		if fi.IsDir() {
			if w.rules.Ignore(n, fi) {
				continue
			}
			if w.visiting[real] {
				return fmt.Errorf("%s: symlink loop back to %s; remove the link: %w", w.j.rel(full), w.j.rel(real), ErrUnsafe)
			}
			if w.visited[real]++; w.visited[real] > maxFolderLinks {
				return fmt.Errorf("%s: the folder %s is reached through links more than %d times; link it in fewer places: %w", w.j.rel(full), w.j.rel(real), maxFolderLinks, ErrUnsafe)
			}
			w.visiting[real] = true
			err := w.walk(ctx, full, n)
			delete(w.visiting, real)
			if err != nil {
				return err
			}
			continue
		}
		if w.rules.Ignore(n, fi) {
			continue
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file; remove it from the chart or list it in .helmignore: %w", w.j.rel(full), ErrUnsafe)
		}
		data, err := w.j.readFile(full)
		if err != nil {
			return err
		}
		w.files = append(w.files, &archive.BufferedFile{Name: n, ModTime: fi.ModTime(), Data: bytes.TrimPrefix(data, []byte(helmUTF8BOM))})
	}
	return nil
}

// expandHelmArchives replaces each vendored subchart archive (charts/x.tgz at
// any chart level) with its unpacked files, so the limits of the jail bound
// what the archives hold, not only their compressed size.
func expandHelmArchives(j *jail, files []*archive.BufferedFile, name string) ([]*archive.BufferedFile, error) {
	out := make([]*archive.BufferedFile, 0, len(files))
	for _, f := range files {
		prefix, ok := helmArchivePrefix(f.Name)
		if !ok {
			out = append(out, f)
			continue
		}
		inner, err := untarHelmChart(j, f.Data, name+"/"+f.Name)
		if err != nil {
			return nil, err
		}
		inner, err = expandHelmArchives(j, inner, name+"/"+f.Name)
		if err != nil {
			return nil, err
		}
		for _, g := range inner {
			g.Name = prefix + "/" + g.Name
			out = append(out, g)
		}
	}
	return out, nil
}

// helmArchivePrefix reports whether name is a subchart archive as Helm's
// loader sees one — charts/<x>.tgz directly in a chart or in a folder
// subchart — and returns the folder its files are placed in instead.
func helmArchivePrefix(name string) (string, bool) {
	parts := strings.Split(name, "/")
	if len(parts)%2 != 0 || path.Ext(name) != ".tgz" {
		return "", false
	}
	for i := 0; i < len(parts); i += 2 {
		if parts[i] != "charts" || parts[i+1] == "" {
			return "", false
		}
		if i+2 < len(parts) && path.Ext(parts[i+1]) == ".tgz" {
			return "", false
		}
	}
	if strings.IndexAny(parts[len(parts)-1], "_.") == 0 {
		// Helm skips subcharts whose names start with "_" or ".".
		return "", false
	}
	return name + helmExpandedSuffix, true
}

// untarHelmChart unpacks a chart archive in memory with the checks of Helm's
// archive loader, counting every unpacked byte against the jail's limits and
// refusing links and special files.
func untarHelmChart(j *jail, data []byte, name string) ([]*archive.BufferedFile, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: not a gzipped chart archive: %w", name, err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	var files []*archive.BufferedFile
	for {
		hd, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: cannot read archive: %w", name, err)
		}
		switch hd.Typeflag {
		case tar.TypeDir, tar.TypeXGlobalHeader, tar.TypeXHeader:
			continue
		case tar.TypeReg:
		default:
			return nil, fmt.Errorf("%s: %s is a link or special file, which chart archives may not hold; repackage the chart with `helm package`: %w", name, hd.Name, ErrUnsafe)
		}
		n := strings.ReplaceAll(hd.Name, "\\", "/")
		_, n, _ = strings.Cut(n, "/")
		if path.IsAbs(n) || hasDriveLetter(n) {
			return nil, fmt.Errorf("%s: %s is an absolute path: %w", name, hd.Name, ErrUnsafe)
		}
		n = path.Clean(n)
		if n == "." || n == ".." || strings.HasPrefix(n, "../") {
			return nil, fmt.Errorf("%s: %s is outside the chart folder: %w", name, hd.Name, ErrUnsafe)
		}
		if hd.Name == "Chart.yaml" {
			return nil, fmt.Errorf("%s: Chart.yaml is not in a chart folder; repackage the chart with `helm package`", name)
		}
		content, err := io.ReadAll(io.LimitReader(tr, j.limits.MaxFileBytes+1))
		if err != nil {
			return nil, fmt.Errorf("%s: cannot read %s: %w", name, hd.Name, err)
		}
		if int64(len(content)) > j.limits.MaxFileBytes {
			return nil, fmt.Errorf("%s: %s is larger than %d bytes, the most one file may hold: %w", name, hd.Name, j.limits.MaxFileBytes, ErrUnsafe)
		}
		j.read += int64(len(content))
		if j.read > j.limits.MaxTotalBytes {
			return nil, fmt.Errorf("render read more than %d bytes unpacking %s; the chart is too large to render safely: %w", j.limits.MaxTotalBytes, name, ErrUnsafe)
		}
		if err := j.countNodes(name+"/"+n, content); err != nil {
			return nil, err
		}
		files = append(files, &archive.BufferedFile{Name: n, ModTime: hd.ModTime, Data: bytes.TrimPrefix(content, []byte(helmUTF8BOM))})
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: no files in chart archive; repackage the chart with `helm package`", name)
	}
	return files, nil
}

// hasDriveLetter reports whether an archive path starts with a Windows drive
// ("c:/"), which Helm refuses as well.
func hasDriveLetter(n string) bool {
	if len(n) < 3 || n[1] != ':' || n[2] != '/' {
		return false
	}
	c := n[0] | 0x20
	return c >= 'a' && c <= 'z'
}

// validateHelmSchemas checks values against each chart's values.schema.json
// as Helm does, but offline: Helm's validator follows $ref to local files and
// http(s) URLs, which would let a chart read outside the jail or reach the
// network.
func validateHelmSchemas(ch *chart.Chart, values map[string]any) error {
	var sb strings.Builder
	if ch.Schema != nil {
		if err := validateHelmSchema(values, ch.Schema); errors.Is(err, ErrUnsafe) {
			return fmt.Errorf("%s: %w", ch.Name(), err)
		} else if err != nil {
			fmt.Fprintf(&sb, "%s:\n%s", ch.Name(), err)
			if !strings.HasSuffix(sb.String(), "\n") {
				sb.WriteString("\n")
			}
		}
	}
	for _, dep := range ch.Dependencies() {
		raw, ok := values[dep.Name()]
		if !ok || raw == nil {
			continue
		}
		sub, ok := raw.(map[string]any)
		if !ok {
			fmt.Fprintf(&sb, "%s:\ninvalid type for values: expected object (map), got %T\n", dep.Name(), raw)
			continue
		}
		if err := validateHelmSchemas(dep, sub); errors.Is(err, ErrUnsafe) {
			return err
		} else if err != nil {
			sb.WriteString(err.Error() + "\n")
		}
	}
	if sb.Len() > 0 {
		return errors.New(strings.TrimRight(sb.String(), "\n"))
	}
	return nil
}

func validateHelmSchema(values map[string]any, schemaJSON []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("unable to validate schema: %v", r)
		}
	}()
	schema, err := jsonschema.UnmarshalJSON(bytes.NewReader(schemaJSON))
	if err != nil {
		return fmt.Errorf("values.schema.json is not valid JSON: %w", err)
	}
	loader := &helmSchemaLoader{}
	compiler := jsonschema.NewCompiler()
	compiler.UseLoader(loader)
	if err := compiler.AddResource(helmSchemaURL, schema); err != nil {
		return err
	}
	validator, err := compiler.Compile(helmSchemaURL)
	if loader.refused != nil {
		// The validator's error does not wrap the loader's.
		return loader.refused
	}
	if err != nil {
		return err
	}
	if err := validator.Validate(values); err != nil {
		msg := strings.TrimPrefix(err.Error(), "jsonschema validation failed with '"+helmSchemaURL+"#'\n")
		return errors.New(msg)
	}
	return nil
}

// helmSchemaLoader resolves only the references that need no I/O. Standard
// meta-schemas are built into the validator and never reach a loader.
type helmSchemaLoader struct {
	refused error // the first reference refused
}

func (l *helmSchemaLoader) Load(url string) (any, error) {
	if strings.HasPrefix(url, "urn:") {
		// Helm accepts unresolved URNs as an always-true schema.
		return true, nil
	}
	err := fmt.Errorf("values.schema.json references %s; renders resolve no files or URLs, so inline the referenced schema: %w", url, ErrUnsafe)
	if l.refused == nil {
		l.refused = err
	}
	return nil, err
}
