package gitrepo

import (
	"fmt"
	"slices"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// checkFilePath refuses a path of Change.Files that git would refuse in a
// tree, or that would write outside the work tree or into .git on a
// checkout: empty, absolute, "." or ".." segments, ".git" in any spelling
// a case-insensitive (NTFS, HFS+) file system reads as .git, backslashes
// (a separator on Windows) and control characters.
func checkFilePath(p string) error {
	const fix = "use a slash-separated path inside the repository"
	switch {
	case p == "":
		return fmt.Errorf("a file path is empty; %s", fix)
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("file path %q is absolute; %s", p, fix)
	case strings.ContainsRune(p, '\\'):
		return fmt.Errorf("file path %q contains a backslash; %s", p, fix)
	case strings.ContainsFunc(p, func(r rune) bool { return r < ' ' || r == 0x7f }):
		return fmt.Errorf("file path %q contains a control character; %s", p, fix)
	}
	for seg := range strings.SplitSeq(p, "/") {
		switch {
		case seg == "":
			return fmt.Errorf("file path %q has an empty segment (a leading, doubled or trailing slash); %s", p, fix)
		case seg == "." || seg == "..":
			return fmt.Errorf("file path %q contains a %q segment; %s", p, seg, fix)
		case isDotGit(seg):
			return fmt.Errorf("file path %q names a .git folder; %s, outside .git", p, fix)
		}
	}
	return nil
}

// isDotGit reports whether a path segment is .git, or a name that Windows
// (trailing dots and spaces, the 8.3 short name GIT~1) or macOS (ignored
// Unicode code points) opens as .git, as git's verify_path does.
func isDotGit(seg string) bool {
	s := strings.Map(func(r rune) rune {
		switch {
		case r >= 0x200c && r <= 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x206a && r <= 0x206f, r == 0xfeff:
			return -1
		}
		return r
	}, seg)
	s = strings.ToLower(strings.TrimRight(s, ". "))
	return s == ".git" || s == "git~1"
}

// treeEditor applies a change's files to a commit's tree. It reads the trees
// it needs from base (a shallow fetch of the commit, perhaps without blobs)
// and writes only objects the remote lacks to out: the pack to push.
type treeEditor struct {
	base storer.EncodedObjectStorer
	out  storer.EncodedObjectStorer
	// known holds the objects of base's trees read so far: the remote has
	// them, so an unchanged file or folder is not sent again.
	known map[plumbing.Hash]bool
}

// folder is a tree being edited: its entries, with the folders below it
// that were read (to edit them) in subdirs instead of in entries.
type folder struct {
	entries map[string]object.TreeEntry
	subdirs map[string]*folder
}

// newFolder returns an empty folder, for a path's missing folders.
func newFolder() *folder {
	return &folder{entries: map[string]object.TreeEntry{}, subdirs: map[string]*folder{}}
}

// apply returns the hash of tree root with files (path → content; nil
// deletes) applied. Deletions go first, then writes, each in path order, so
// the result and any error are the same for the same files.
func (e *treeEditor) apply(root plumbing.Hash, files map[string][]byte) (plumbing.Hash, error) {
	top, err := e.load(root)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		if files[p] == nil {
			if err := e.remove(top, p); err != nil {
				return plumbing.ZeroHash, err
			}
		}
	}
	for _, p := range paths {
		if files[p] != nil {
			if err := e.write(top, p, files[p]); err != nil {
				return plumbing.ZeroHash, err
			}
		}
	}
	h, _, err := e.store(top, true)
	return h, err
}

// load reads tree h into a folder and records its objects as known.
func (e *treeEditor) load(h plumbing.Hash) (*folder, error) {
	t, err := object.GetTree(e.base, h)
	if err != nil {
		return nil, fmt.Errorf("read tree %s of the base commit: %w", h, err)
	}
	e.known[h] = true
	f := newFolder()
	for _, entry := range t.Entries {
		f.entries[entry.Name] = entry
		e.known[entry.Hash] = true
	}
	return f, nil
}

// walk returns the folder that holds path p, reading the trees on the way.
// With create, missing folders are made; without, a missing folder gives
// nil. Only folders can be walked through: a file, a symbolic link or a
// submodule on the way is an error.
func (e *treeEditor) walk(top *folder, p string, create bool) (*folder, string, error) {
	segs := strings.Split(p, "/")
	f := top
	for i, name := range segs[:len(segs)-1] {
		if sub := f.subdirs[name]; sub != nil {
			f = sub
			continue
		}
		at := strings.Join(segs[:i+1], "/")
		entry, ok := f.entries[name]
		var sub *folder
		switch {
		case !ok && !create:
			return nil, "", nil
		case !ok:
			sub = newFolder()
		case entry.Mode == filemode.Dir:
			var err error
			if sub, err = e.load(entry.Hash); err != nil {
				return nil, "", err
			}
		case entry.Mode == filemode.Symlink:
			return nil, "", fmt.Errorf("file %s runs through %s, a symbolic link; write to the path it points to", p, at)
		case entry.Mode == filemode.Submodule:
			return nil, "", fmt.Errorf("file %s is inside %s, a submodule; change the submodule's own repository", p, at)
		default:
			return nil, "", fmt.Errorf("file %s needs a folder %s, but that is a file", p, at)
		}
		delete(f.entries, name)
		f.subdirs[name] = sub
		f = sub
	}
	return f, segs[len(segs)-1], nil
}

// write sets file p to content, keeping an existing file's mode (regular or
// executable); a new file is a regular one.
func (e *treeEditor) write(top *folder, p string, content []byte) error {
	f, name, err := e.walk(top, p, true)
	if err != nil {
		return err
	}
	mode := filemode.Regular
	if f.subdirs[name] != nil {
		return fmt.Errorf("path %s is a folder; write files inside it instead", p)
	}
	if entry, ok := f.entries[name]; ok {
		switch entry.Mode {
		case filemode.Regular, filemode.Executable, filemode.Deprecated:
			mode = entry.Mode
		case filemode.Dir:
			return fmt.Errorf("path %s is a folder; write files inside it instead", p)
		case filemode.Symlink:
			return fmt.Errorf("path %s is a symbolic link; write to the path it points to", p)
		case filemode.Submodule:
			return fmt.Errorf("path %s is a submodule; change the submodule's own repository", p)
		default:
			return fmt.Errorf("file %s has file mode %o, which this bot does not write", p, uint32(entry.Mode))
		}
	}
	obj := e.out.NewEncodedObject()
	obj.SetType(plumbing.BlobObject)
	w, err := obj.Writer()
	if err != nil {
		return err
	}
	if _, err := w.Write(content); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	h := obj.Hash()
	if !e.known[h] {
		if _, err := e.out.SetEncodedObject(obj); err != nil {
			return err
		}
	}
	f.entries[name] = object.TreeEntry{Name: name, Mode: mode, Hash: h}
	return nil
}

// remove deletes file (or symbolic link, or submodule) p; a path that does
// not exist is already deleted. Folders are refused: a change lists every
// file it deletes.
func (e *treeEditor) remove(top *folder, p string) error {
	f, name, err := e.walk(top, p, false)
	if err != nil || f == nil {
		return err
	}
	if f.subdirs[name] != nil || f.entries[name].Mode == filemode.Dir {
		return fmt.Errorf("path %s is a folder; list the files in it to delete them", p)
	}
	delete(f.entries, name)
	return nil
}

// store writes folder f and the folders below it as trees and returns f's
// hash. A folder left empty is dropped (Git has no empty folders), except
// the top one: a commit may have an empty tree.
func (e *treeEditor) store(f *folder, top bool) (plumbing.Hash, bool, error) {
	for name, sub := range f.subdirs {
		h, empty, err := e.store(sub, false)
		if err != nil {
			return plumbing.ZeroHash, false, err
		}
		if !empty {
			f.entries[name] = object.TreeEntry{Name: name, Mode: filemode.Dir, Hash: h}
		}
	}
	if len(f.entries) == 0 && !top {
		return plumbing.ZeroHash, true, nil
	}
	t := &object.Tree{Entries: make([]object.TreeEntry, 0, len(f.entries))}
	for _, entry := range f.entries {
		t.Entries = append(t.Entries, entry)
	}
	// Git orders a tree's entries by name, a folder's name read as if it
	// ended in a slash.
	key := func(entry object.TreeEntry) string {
		if entry.Mode == filemode.Dir {
			return entry.Name + "/"
		}
		return entry.Name
	}
	slices.SortFunc(t.Entries, func(a, b object.TreeEntry) int { return strings.Compare(key(a), key(b)) })
	obj := e.out.NewEncodedObject()
	if err := t.Encode(obj); err != nil {
		return plumbing.ZeroHash, false, err
	}
	h := obj.Hash()
	if !e.known[h] {
		if _, err := e.out.SetEncodedObject(obj); err != nil {
			return plumbing.ZeroHash, false, err
		}
	}
	return h, false, nil
}
