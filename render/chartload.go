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

	"helm.sh/helm/v4/pkg/chart/loader/archive"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/ignore"

	"github.com/kubectl-gitops/kubectl-gitops/internal/config"
	"github.com/kubectl-gitops/kubectl-gitops/internal/helmrelease"
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

// HelmRelease is a Helm app ready to be installed or upgraded as a release:
// its Name is helm.releaseName, else the app's name, and its Namespace the
// app's (AppOptions.Namespace overrides it). It is the type package cluster
// installs, so the release goes from render to the cluster as it is.
type HelmRelease = helmrelease.Release

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

const (
	// helmExpandedSuffix names the in-memory folder a vendored subchart archive
	// is unpacked into, so the loader treats it as a folder subchart. The
	// loader derives the subchart's name from its Chart.yaml, not this folder.
	helmExpandedSuffix = ".d"
	// helmUTF8BOM is stripped from every chart file, as Helm's loader does.
	helmUTF8BOM = "\xEF\xBB\xBF"
)

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
