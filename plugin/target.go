package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kubectl-gitops/kubectl-gitops/internal/config"
	"github.com/kubectl-gitops/kubectl-gitops/internal/report"
	"github.com/kubectl-gitops/kubectl-gitops/internal/sandbox"
	"github.com/kubectl-gitops/kubectl-gitops/render"
)

// target is what a PATH|APP argument names: a path to render as it is, or an
// app of a gitops.yaml file.
type target struct {
	arg  string
	path string             // absolute; empty for an app with a remote source
	repo *config.Repository // nil when no gitops.yaml was found
	app  *config.App        // nil in path mode
	all  bool               // the path is the repository's folder: every app
	root string             // the folder rendering is confined to
}

// repositoryHere loads the gitops.yaml above the current folder (or the
// --config file) and returns it, nil when there is none, with the folder.
func (f *Flags) repositoryHere() (*config.Repository, string, error) {
	cwd, err := os.Getwd()
	if err != nil {
		return nil, "", err
	}
	repo, err := f.loadRepository(cwd)
	return repo, cwd, err
}

// resolveTarget decides what arg names. An existing path wins over an app
// name; a path that is exactly an app's path renders as that app, so its
// patches, images and namespace apply; the folder of gitops.yaml itself
// renders every app.
func (f *Flags) resolveTarget(arg string) (*target, error) {
	if arg == "" {
		return nil, errors.New("no path or app given: pass a folder, a file or the name of an app in gitops.yaml")
	}
	t := &target{arg: arg}
	if _, err := os.Stat(arg); err == nil {
		abs, err := filepath.Abs(arg)
		if err != nil {
			return nil, fmt.Errorf("cannot resolve %s: %w", arg, err)
		}
		t.path = abs
		repo, err := f.loadRepository(abs)
		if err != nil {
			return nil, err
		}
		t.repo = repo
		if repo != nil && abs == repo.Dir && !isRenderable(abs) {
			t.all = true
		}
		if repo != nil && !t.all {
			for i := range repo.Apps {
				app := &repo.Apps[i]
				if app.Source == nil && app.Path != "" && filepath.Join(repo.Dir, app.Path) == abs {
					t.app = app
					break
				}
			}
		}
		if t.root, err = f.rootFor(abs, repo); err != nil {
			return nil, err
		}
		return t, nil
	}
	cwd, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("cannot read the current folder: %w", err)
	}
	repo, err := f.loadRepository(cwd)
	if err != nil {
		return nil, err
	}
	if repo == nil {
		return nil, fmt.Errorf("%s is neither a path nor an app: no %s found above %s; pass a path or --config", arg, config.FileName, cwd)
	}
	app, ok := repo.App(arg)
	if !ok {
		return nil, fmt.Errorf("%s is neither a path nor an app of %s (apps: %s)", arg, repo.File, strings.Join(appNames(repo), ", "))
	}
	t.repo, t.app = repo, app
	if app.Source == nil {
		t.path = filepath.Join(repo.Dir, app.Path)
	}
	if t.root, err = f.rootFor(repo.Dir, repo); err != nil {
		return nil, err
	}
	return t, nil
}

// loadRepository loads --config, or the gitops.yaml found upward from start;
// nil when there is none.
func (f *Flags) loadRepository(start string) (*config.Repository, error) {
	file := f.ConfigFile
	if file == "" {
		found, err := config.Find(start)
		if errors.Is(err, config.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		file = found
	}
	repo, err := config.Load(file)
	if err != nil {
		return nil, err
	}
	if err := repo.Validate(); err != nil {
		return nil, err
	}
	return repo, nil
}

// rootFor picks the folder rendering of path is confined to: --root, else the
// repository (gitops.yaml's folder or the Git work tree) holding it, else the
// current folder if it holds path, else path itself. Only --root may make it
// the file system's root or the home folder, which would confine nothing.
func (f *Flags) rootFor(path string, repo *config.Repository) (string, error) {
	if f.Root != "" {
		if abs, err := filepath.Abs(f.Root); err == nil {
			return abs, nil
		}
		return f.Root, nil
	}
	root := implicitRoot(path, repo)
	if home, err := os.UserHomeDir(); root == filepath.Dir(root) || (err == nil && root == filepath.Clean(home)) {
		return "", fmt.Errorf("refusing to render with %s as the folder reads are confined to, as it holds far more than manifests: run inside a repository (a folder with .git or %s) or pass --root", root, config.FileName)
	}
	return root, nil
}

// implicitRoot is rootFor without --root.
func implicitRoot(path string, repo *config.Repository) string {
	if repo != nil && isWithin(repo.Dir, path) {
		return repo.Dir
	}
	for dir := path; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, ".git")); err == nil {
			return dir
		}
		if parent := filepath.Dir(dir); parent == dir {
			break
		}
	}
	if cwd, err := os.Getwd(); err == nil && isWithin(cwd, path) {
		return cwd
	}
	if fi, err := os.Stat(path); err == nil && !fi.IsDir() {
		return filepath.Dir(path)
	}
	return path
}

// render renders the target, in a sandbox unless --sandbox=false. The
// namespace flag, when set, overrides the app's namespace.
func (f *Flags) render(ctx context.Context, t *target) (*render.Result, error) {
	namespace := ""
	if f.Kube.Namespace != nil {
		namespace = *f.Kube.Namespace
	}
	var runner sandbox.Runner
	if t.app == nil && !t.all {
		opts := render.Options{Root: t.root, Namespace: namespace}
		if f.Sandbox {
			return runner.Path(ctx, t.path, opts)
		}
		return render.Path(ctx, t.path, opts)
	}
	opts, err := f.appOptions(t)
	if err != nil {
		return nil, err
	}
	switch {
	case t.all && f.Sandbox:
		return runner.Repository(ctx, t.repo, opts)
	case t.all:
		return render.Repository(ctx, t.repo, opts)
	case f.Sandbox:
		return runner.App(ctx, t.repo, *t.app, opts)
	}
	return render.App(ctx, t.repo, *t.app, opts)
}

// isRenderable reports whether dir is a kustomization or a chart, which
// render as themselves even at a repository's top.
func isRenderable(dir string) bool {
	kind, err := render.Detect(dir)
	return err == nil && kind != render.KindPlain
}

// sourceCache is where third-party sources are cached by commit.
func sourceCache() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache folder for Git sources (set XDG_CACHE_HOME): %w", err)
	}
	return filepath.Join(dir, "kubectl-gitops", "sources"), nil
}

// printWarnings writes a render's warnings to w, kubectl style.
func printWarnings(w io.Writer, res *render.Result) {
	for _, warning := range res.Warnings {
		// A warning can carry a file or object name from the tree:
		// control characters are shown, never sent to the terminal.
		fmt.Fprintf(w, "Warning: %s\n", report.EscapeText(warning))
	}
}

func appNames(repo *config.Repository) []string {
	names := make([]string, 0, len(repo.Apps))
	for _, app := range repo.Apps {
		names = append(names, app.Name)
	}
	sort.Strings(names)
	return names
}

func isWithin(dir, path string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// errorText is err's message for the terminal: each line escaped (an error
// can quote a file or object name from the tree, and its control characters
// must be shown, not run), continuation lines indented by indent.
func errorText(err error, indent string) string {
	lines := strings.Split(err.Error(), "\n")
	for i, line := range lines {
		lines[i] = report.EscapeText(line)
	}
	return strings.Join(lines, "\n"+indent)
}
