package setter

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Value is one marked value as the files hold it.
type Value struct {
	File   string // slash-separated path
	Line   int    // 1-based
	Policy string
	// Field is what the marker sets: "" (the whole reference), "tag",
	// "name" or "digest".
	Field string
	// Value is the scalar as YAML reads it, without quotes.
	Value string
}

// Current is what the files hold for one policy.
type Current struct {
	// Tags are the distinct tags the policy's NAME and NAME:tag markers
	// hold, in file and line order; more than one means the files
	// disagree, and an update will align them.
	Tags []string
	// Digests are the distinct digests of NAME (image:tag@digest) and
	// NAME:digest markers.
	Digests []string
	Values  []Value
}

// Read returns, by policy, the values of every marker in files (keyed by
// slash-separated path): what Git holds now, so a scan can show it and an
// update can tell a newer tag from a rollback. Markers and files are
// checked as Apply checks them, and every problem is reported with
// file:line; opts.Policies nil declares every policy a marker names.
func Read(files map[string][]byte, opts Options) (map[string]*Current, error) {
	out := map[string]*Current{}
	errs := eachFile(files, opts.Policies, opts.MaxFileSize, func(f *file) {
		docs, err := f.parse()
		if err != nil {
			f.errs = append(f.errs, err)
			return
		}
		f.lines = lineStarts(f.data)
		for _, doc := range docs {
			for _, n := range f.marked(doc) {
				_, _, policy, field, ok := f.read(n)
				if !ok {
					continue
				}
				c := out[policy]
				if c == nil {
					c = &Current{}
					out[policy] = c
				}
				c.Values = append(c.Values, Value{File: f.name, Line: n.Line, Policy: policy, Field: field, Value: n.Value})
				tag, digest := "", ""
				switch field {
				case "":
					_, tag, digest = SplitRef(n.Value)
				case "tag":
					tag = n.Value
				case "digest":
					digest = n.Value
				}
				if tag != "" && !slices.Contains(c.Tags, tag) {
					c.Tags = append(c.Tags, tag)
				}
				if digest != "" && !slices.Contains(c.Digests, digest) {
					c.Digests = append(c.Digests, digest)
				}
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, c := range out {
		slices.SortStableFunc(c.Values, func(a, b Value) int {
			return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line))
		})
	}
	return out, nil
}

// SplitRef splits an image reference into its repository, tag and digest:
// ghcr.io/org/app:1.2@sha256:… → ghcr.io/org/app, 1.2, sha256:…. A port
// in the registry host (localhost:5000/app) is not a tag.
func SplitRef(ref string) (image, tag, digest string) {
	image = ref
	if i := strings.Index(image, "@"); i >= 0 {
		image, digest = image[:i], image[i+1:]
	}
	if i := strings.LastIndex(image, ":"); i >= 0 && !strings.Contains(image[i+1:], "/") {
		image, tag = image[:i], image[i+1:]
	}
	return image, tag, digest
}

// MaxTreeYAML bounds the YAML ReadDir reads from a tree.
const MaxTreeYAML = 256 << 20

// ReadDir reads every .yaml and .yml file under dir (not following
// symbolic links, skipping .git), keyed by slash-separated path.
func ReadDir(dir string) (map[string][]byte, error) {
	files := map[string][]byte{}
	total := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == ".git" {
				return filepath.SkipDir
			}
			return nil
		}
		ext := strings.ToLower(filepath.Ext(path))
		if !d.Type().IsRegular() || (ext != ".yaml" && ext != ".yml") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if total += len(data); total > MaxTreeYAML {
			return fmt.Errorf("more than %d MiB of YAML under %s; run it in a smaller repository", MaxTreeYAML>>20, dir)
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		files[filepath.ToSlash(rel)] = data
		return nil
	})
	if err != nil && !errors.Is(err, fs.SkipAll) {
		return nil, err
	}
	return files, nil
}
