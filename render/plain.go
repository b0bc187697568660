package render

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// plainExtensions are the file names Plain reads in a folder.
var plainExtensions = []string{".yaml", ".yml", ".json"}

// Plain renders a YAML or JSON file, or every *.yaml, *.yml and *.json file in
// a folder and its subfolders, in lexical path order. Files may hold several
// documents and List kinds. Files and folders whose names start with a dot
// (.git, .github, .gitlab-ci.yml) are skipped, and files that hold no
// Kubernetes object (a Helm values file, a CI configuration) are ignored with
// a warning.
//
// Symlinks are followed only while they stay inside opts.Root; a file reached
// twice, through a link and directly, is read once.
func Plain(ctx context.Context, path string, opts Options) (*Result, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("cannot resolve %s: %w", path, err)
	}
	root := opts.Root
	if root == "" {
		root = abs
	}
	j, err := newJail(root, opts.Limits)
	if err != nil {
		return nil, err
	}
	w := &plainWalk{jail: j, seenDirs: map[string]bool{}, seenFiles: map[string]bool{}}
	real, err := j.resolve(abs)
	if err != nil {
		return nil, fmt.Errorf("cannot render %s: %w", path, err)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return nil, fmt.Errorf("cannot render %s: %w", path, err)
	}
	if fi.IsDir() {
		if err := w.dir(ctx, abs, real); err != nil {
			return nil, err
		}
	} else {
		// A file named explicitly is read whatever its extension.
		w.files = append(w.files, plainFile{path: abs, real: real})
	}

	res := &Result{}
	for _, f := range w.files {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		name := j.rel(f.path)
		data, err := j.readFile(f.real)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		d, err := decodeObjects(name, data)
		if err != nil {
			return nil, err
		}
		switch {
		case len(d.objects) == 0 && d.foreign > 0:
			res.Warnings = append(res.Warnings, fmt.Sprintf("%s: no Kubernetes objects (no apiVersion/kind); ignored", name))
		case len(d.objects) == 0:
			res.Warnings = append(res.Warnings, fmt.Sprintf("%s: empty; ignored", name))
		case d.foreign > 0:
			res.Warnings = append(res.Warnings, fmt.Sprintf("%s: %d of its documents have no apiVersion/kind; those were ignored", name, d.foreign))
		}
		res.Objects = append(res.Objects, d.objects...)
		if len(res.Objects) > j.limits.MaxObjects {
			return nil, fmt.Errorf("%s: more than %d objects in one render; split the app or raise the limit: %w", name, j.limits.MaxObjects, ErrUnsafe)
		}
	}
	res.Files = j.files()
	return res, nil
}

// plainFile is a file to read: the path as walked (for messages) and its
// real, confined path.
type plainFile struct {
	path, real string
}

// plainWalk collects the files of a folder in a deterministic order.
type plainWalk struct {
	jail      *jail
	files     []plainFile
	seenDirs  map[string]bool // real paths, so symlink loops end
	seenFiles map[string]bool // real paths, so a linked file is read once
}

// dir walks the folder at path (as named) whose real path is real.
func (w *plainWalk) dir(ctx context.Context, path, real string) error {
	if w.seenDirs[real] {
		return nil
	}
	w.seenDirs[real] = true
	entries, err := os.ReadDir(real) // sorted by name
	if err != nil {
		return fmt.Errorf("cannot read %s: %w", w.jail.rel(path), err)
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		child := filepath.Join(path, name)
		childReal := filepath.Join(real, name)
		mode := e.Type()
		if mode&os.ModeSymlink != 0 {
			if !hasPlainExtension(name) {
				// Only links that would be read are followed, so a
				// dangling link, or one to a binary outside the
				// root, is not an error.
				if fi, err := os.Stat(childReal); err != nil || !fi.IsDir() {
					continue
				}
			}
			resolved, err := w.jail.resolve(childReal)
			if err != nil {
				return fmt.Errorf("%s: %w", w.jail.rel(child), err)
			}
			fi, err := os.Stat(resolved)
			if err != nil {
				return fmt.Errorf("%s: %w", w.jail.rel(child), err)
			}
			childReal, mode = resolved, fi.Mode()
		}
		switch {
		case mode.IsDir():
			if err := w.dir(ctx, child, childReal); err != nil {
				return err
			}
		case mode.IsRegular() && hasPlainExtension(name):
			if w.seenFiles[childReal] {
				continue
			}
			w.seenFiles[childReal] = true
			w.files = append(w.files, plainFile{path: child, real: childReal})
		}
	}
	return nil
}

func hasPlainExtension(name string) bool {
	ext := strings.ToLower(filepath.Ext(name))
	for _, e := range plainExtensions {
		if ext == e {
			return true
		}
	}
	return false
}
