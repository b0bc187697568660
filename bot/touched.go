package bot

import (
	"path"
	"reflect"
	"strings"

	"github.com/kubectl-gitops/kubectl-gitops/internal/config"
)

// Touched returns the apps of head (the pull request's gitops.yaml) that a
// change touches, in head's order. An app is touched when
//
//   - a changed path is in its folder, its local chart's folder or is one
//     of its values files;
//   - a changed path is a file its render read (files[app.Name], from
//     render.Result.Files, relative to the repository): this catches
//     kustomize bases and patches outside the app's folder;
//   - its entry in gitops.yaml differs from base's, or base has none.
//
// changed are repository-relative, slash-separated paths, both sides of a
// rename included. base may be nil (no gitops.yaml on the base branch):
// then every app is new, and touched.
//
// An app with a Git source is rendered from outside the repository, so only
// a change of its entry touches it; files[app.Name] must not be given for it
// (its paths are relative to the source's checkout).
func Touched(base, head *config.Repository, changed []string, files map[string][]string) []config.App {
	var out []config.App
	for _, app := range head.Apps {
		if touched(base, app, changed, files[app.Name]) {
			out = append(out, app)
		}
	}
	return out
}

func touched(base *config.Repository, app config.App, changed, files []string) bool {
	if entryChanged(base, app) {
		return true
	}
	if app.Source != nil {
		return false
	}
	var dirs, exact []string
	if app.Path != "" {
		dirs = append(dirs, cleanPath(app.Path))
	}
	if app.Helm != nil {
		if app.Helm.Chart != "" && !app.Helm.Remote() {
			dirs = append(dirs, cleanPath(app.Helm.Chart))
		}
		for _, f := range app.Helm.ValuesFiles {
			exact = append(exact, cleanPath(f))
		}
	}
	for _, f := range files {
		exact = append(exact, cleanPath(f))
	}
	for _, c := range changed {
		c = cleanPath(c)
		for _, d := range dirs {
			if inDir(d, c) {
				return true
			}
		}
		for _, e := range exact {
			if c == e {
				return true
			}
		}
	}
	return false
}

// entryChanged reports whether app differs from its entry in base, or base
// has none.
func entryChanged(base *config.Repository, app config.App) bool {
	if base == nil {
		return true
	}
	old, ok := base.App(app.Name)
	if !ok {
		return true
	}
	a, b := app, *old
	// Where the entry sits in the file is not part of it.
	a.Line, b.Line = 0, 0
	return !reflect.DeepEqual(a, b)
}

// inDir reports whether p is dir or below it; "." is the whole repository.
func inDir(dir, p string) bool {
	return dir == "." || p == dir || strings.HasPrefix(p, dir+"/")
}

// cleanPath makes a slash-separated repository path comparable.
func cleanPath(p string) string {
	return strings.TrimPrefix(path.Clean(strings.ReplaceAll(p, "\\", "/")), "/")
}
