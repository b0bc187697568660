package render

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/kubectl-gitops/kubectl-gitops/internal/config"
)

// confined resolves path, which must be absolute or relative to root, to a
// real path inside root: every symlink on the way is followed and the result
// must still be root or below it. Paths that leave root are refused with
// ErrUnsafe, whether by "..", by an absolute path or by a symlink.
//
// root itself must be an absolute, clean path; realRoot is root with its own
// symlinks resolved (the two differ on systems where /tmp is a link).
func confined(root, realRoot, path string) (string, error) {
	if !filepath.IsAbs(path) {
		path = filepath.Join(root, path)
	}
	path = filepath.Clean(path)
	if !within(root, path) && !within(realRoot, path) {
		return "", fmt.Errorf("%s is not in or below %s: %w", path, root, ErrUnsafe)
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", err
	}
	if !within(realRoot, real) {
		return "", fmt.Errorf("%s resolves through a symlink to %s, outside %s: %w", path, real, root, ErrUnsafe)
	}
	return real, nil
}

// within reports whether path is dir or below it; both must be clean.
func within(dir, path string) bool {
	if path == dir {
		return true
	}
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

// jail confines the reads of one render to a root and counts the bytes read
// against the limits.
type jail struct {
	root     string // absolute, clean
	realRoot string // root with symlinks resolved
	limits   Limits
	read     int64
	// nodes counts the YAML nodes the files read may decode to (an
	// estimate, see estimateYAMLNodes), against Limits.MaxYAMLNodes.
	nodes int64
	// seen records the files read, relative to realRoot with forward
	// slashes, so a caller can tell which files a render depends on.
	seen map[string]bool
}

// newJail makes a jail for root.
func newJail(root string, limits Limits) (*jail, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("cannot resolve root %s: %w", root, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("cannot resolve root %s: %w", root, err)
	}
	return &jail{root: abs, realRoot: real, limits: limits.withDefaults()}, nil
}

// resolve confines path (see confined).
func (j *jail) resolve(path string) (string, error) {
	return confined(j.root, j.realRoot, path)
}

// readFile reads a confined regular file, bounded by the limits. The error
// names the file and never quotes its content.
func (j *jail) readFile(path string) ([]byte, error) {
	real, err := j.resolve(path)
	if err != nil {
		return nil, err
	}
	// Non-blocking and regular files only: a FIFO named like a manifest
	// would otherwise hang the render until someone wrote to it.
	f, _, err := config.OpenRegular(real)
	if errors.Is(err, config.ErrNotRegular) {
		return nil, fmt.Errorf("%s is not a regular file (%w); replace it with a file: %w", j.rel(path), err, ErrUnsafe)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", path, err)
	}
	defer f.Close()
	max := j.limits.MaxFileBytes
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %w", path, err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes, the most one file may hold; split it or raise the limit: %w", path, max, ErrUnsafe)
	}
	j.record(real)
	j.read += int64(len(data))
	if j.read > j.limits.MaxTotalBytes {
		return nil, fmt.Errorf("render read more than %d bytes at %s; the tree is too large to render safely: %w", j.limits.MaxTotalBytes, path, ErrUnsafe)
	}
	if err := j.countNodes(j.rel(path), data); err != nil {
		return nil, err
	}
	return data, nil
}

// countNodes counts what YAML data may decode to against the render's node
// budget, before anything parses it.
func (j *jail) countNodes(name string, data []byte) error {
	j.nodes += estimateYAMLNodes(data)
	if j.nodes > j.limits.MaxYAMLNodes {
		return fmt.Errorf("%s: the render's YAML would decode to more than %d nodes (flow lists such as [a,a,…] or a tree of this size); split the app or raise the limit: %w", name, j.limits.MaxYAMLNodes, ErrUnsafe)
	}
	return nil
}

// rel names path relative to the root, for messages.
func (j *jail) rel(path string) string {
	if r, err := filepath.Rel(j.root, path); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return path
}

// record notes that real, a resolved path inside realRoot, was read.
func (j *jail) record(real string) {
	r, err := filepath.Rel(j.realRoot, real)
	if err != nil || r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator)) {
		return
	}
	if j.seen == nil {
		j.seen = map[string]bool{}
	}
	j.seen[filepath.ToSlash(r)] = true
}

// files returns the files read so far, relative to the root, sorted.
func (j *jail) files() []string {
	out := make([]string, 0, len(j.seen))
	for f := range j.seen {
		out = append(out, f)
	}
	slices.Sort(out)
	return out
}

// mergeFiles returns the union of the lists, sorted and without duplicates.
func mergeFiles(lists ...[]string) []string {
	out := slices.Concat(lists...)
	slices.Sort(out)
	return slices.Compact(out)
}
