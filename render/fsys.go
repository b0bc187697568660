package render

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"sigs.k8s.io/kustomize/kyaml/filesys"
	kyaml "sigs.k8s.io/kustomize/kyaml/yaml"
)

// confinedFS is the filesystem kustomize builds on. Every read goes through
// the jail: paths, "..", absolute paths and symlinks that leave the root are
// refused, files are bounded by the limits and the bytes read are counted.
// Writes are refused: a build has no reason to write, and kustomize only
// writes when it clones a remote base, which is never allowed.
//
// kustomize drops the error chain in places (it formats some errors with %q),
// so the first refusal is also remembered and reported by refusal.
type confinedFS struct {
	disk filesys.FileSystem

	mu      sync.Mutex // guards jail (its byte count) and refused
	jail    *jail
	refused error
}

var _ filesys.FileSystem = (*confinedFS)(nil)

// newConfinedFS makes a confined filesystem reading through j.
func newConfinedFS(j *jail) *confinedFS {
	return &confinedFS{disk: filesys.MakeFsOnDisk(), jail: j}
}

// refusal returns the first read refused for safety, if any.
func (c *confinedFS) refusal() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.refused
}

// note remembers err if it is the first refusal.
func (c *confinedFS) note(err error) error {
	if err != nil && errors.Is(err, ErrUnsafe) {
		c.mu.Lock()
		if c.refused == nil {
			c.refused = err
		}
		c.mu.Unlock()
	}
	return err
}

// resolve confines path to the root and returns its real path.
func (c *confinedFS) resolve(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	real, err := c.jail.resolve(abs)
	return real, c.note(err)
}

func (c *confinedFS) readOnly(op, path string) error {
	return c.note(fmt.Errorf("cannot %s %s: the render filesystem is read-only: %w", op, c.jail.rel(path), ErrUnsafe))
}

// Create is refused.
func (c *confinedFS) Create(path string) (filesys.File, error) {
	return nil, c.readOnly("create", path)
}

// Mkdir is refused.
func (c *confinedFS) Mkdir(path string) error { return c.readOnly("create", path) }

// MkdirAll is refused.
func (c *confinedFS) MkdirAll(path string) error { return c.readOnly("create", path) }

// RemoveAll is refused.
func (c *confinedFS) RemoveAll(path string) error { return c.readOnly("remove", path) }

// WriteFile is refused.
func (c *confinedFS) WriteFile(path string, _ []byte) error { return c.readOnly("write", path) }

// Open reads the whole confined file, within the limits, and serves it from
// memory, so the limits hold however the caller reads.
func (c *confinedFS) Open(path string) (filesys.File, error) {
	data, err := c.ReadFile(path)
	if err != nil {
		return nil, err
	}
	real, err := c.resolve(path)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(real)
	if err != nil {
		return nil, err
	}
	return &memFile{Reader: bytes.NewReader(data), info: fi}, nil
}

// IsDir reports whether path is a directory inside the root.
func (c *confinedFS) IsDir(path string) bool {
	real, err := c.resolve(path)
	return err == nil && c.disk.IsDir(real)
}

// Exists reports whether path exists inside the root.
func (c *confinedFS) Exists(path string) bool {
	real, err := c.resolve(path)
	return err == nil && c.disk.Exists(real)
}

// ReadDir lists a directory inside the root. Entries that are symlinks out of
// the root are listed but cannot be read.
func (c *confinedFS) ReadDir(path string) ([]string, error) {
	real, err := c.resolve(path)
	if err != nil {
		return nil, err
	}
	return c.disk.ReadDir(real)
}

// CleanedAbs splits the real path of path, which must be inside the root,
// into a directory and a file name (empty when path is a directory).
func (c *confinedFS) CleanedAbs(path string) (filesys.ConfirmedDir, string, error) {
	real, err := c.resolve(path)
	if err != nil {
		return "", "", err
	}
	fi, err := os.Stat(real)
	if err != nil {
		return "", "", err
	}
	if fi.IsDir() {
		return filesys.ConfirmedDir(real), "", nil
	}
	return filesys.ConfirmedDir(filepath.Dir(real)), filepath.Base(real), nil
}

// Glob matches a pattern inside the root and drops matches that resolve
// outside it.
func (c *confinedFS) Glob(pattern string) ([]string, error) {
	abs, err := filepath.Abs(pattern)
	if err != nil {
		return nil, err
	}
	if !within(c.jail.root, abs) && !within(c.jail.realRoot, abs) {
		return nil, c.note(fmt.Errorf("pattern %s is not in or below %s: %w", pattern, c.jail.root, ErrUnsafe))
	}
	matches, err := c.disk.Glob(abs)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range matches {
		if _, err := c.jail.resolve(m); err == nil {
			out = append(out, m)
		}
	}
	return out, nil
}

// ReadFile reads a confined regular file within the limits.
func (c *confinedFS) ReadFile(path string) ([]byte, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	data, err := c.jail.readFile(abs)
	c.mu.Unlock()
	if err != nil {
		return nil, c.note(err)
	}
	if err := checkAliases(data); err != nil {
		return nil, c.note(fmt.Errorf("%s: %w", c.jail.rel(abs), err))
	}
	return data, nil
}

// maxExpandedNodes bounds the YAML nodes a file may expand to through
// aliases. kyaml (unlike the parser decodeObjects uses) expands aliases
// without a bound, so a "billion laughs" file would hang a build.
const maxExpandedNodes = 1 << 20

// checkAliases refuses YAML whose aliases expand to more than
// maxExpandedNodes nodes. Files that are not YAML, or hold no anchors, pass:
// kustomize also reads data files (a ConfigMap's properties) this way.
func checkAliases(data []byte) error {
	if !bytes.Contains(data, []byte("&")) || !bytes.Contains(data, []byte("*")) {
		return nil
	}
	dec := kyaml.NewDecoder(bytes.NewReader(data))
	for doc := 1; ; doc++ {
		var n kyaml.Node
		if err := dec.Decode(&n); err != nil {
			// The end, or not YAML: either way nothing is expanded
			// here, and kustomize reports a YAML error itself.
			return nil
		}
		size := map[*kyaml.Node]int64{}
		if expandedSize(&n, size, 0) > maxExpandedNodes {
			return fmt.Errorf("document %d: YAML aliases expand to more than %d nodes (an alias bomb?): %w", doc, maxExpandedNodes, ErrUnsafe)
		}
	}
}

// expandedSize counts the nodes n stands for once its aliases are expanded,
// saturating just above maxExpandedNodes. size memoises shared anchors; a
// node under evaluation counts as too large, which also ends alias cycles.
func expandedSize(n *kyaml.Node, size map[*kyaml.Node]int64, depth int) int64 {
	const tooLarge = maxExpandedNodes + 1
	if n == nil {
		return 0
	}
	if s, ok := size[n]; ok {
		return s
	}
	if depth > 10_000 {
		return tooLarge
	}
	size[n] = tooLarge
	total := int64(1)
	if n.Kind == kyaml.AliasNode {
		total += expandedSize(n.Alias, size, depth+1)
	}
	for _, c := range n.Content {
		total += expandedSize(c, size, depth+1)
		if total > maxExpandedNodes {
			total = tooLarge
			break
		}
	}
	size[n] = min(total, tooLarge)
	return size[n]
}

// Walk walks a directory inside the root. It does not follow symlinks (as
// filepath.Walk), and a symlink read later goes through ReadFile.
func (c *confinedFS) Walk(path string, walkFn filepath.WalkFunc) error {
	real, err := c.resolve(path)
	if err != nil {
		return err
	}
	return c.disk.Walk(real, walkFn)
}

// memFile is a read-only file served from memory.
type memFile struct {
	*bytes.Reader
	info os.FileInfo
}

func (f *memFile) Write([]byte) (int, error) {
	return 0, fmt.Errorf("cannot write %s: the render filesystem is read-only: %w", f.info.Name(), ErrUnsafe)
}

func (f *memFile) Close() error { return nil }

func (f *memFile) Stat() (os.FileInfo, error) { return f.info, nil }
