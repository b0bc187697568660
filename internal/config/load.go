package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// MaxFileBytes caps the size of a repository file; real ones are a few KiB.
const MaxFileBytes = 1 << 20

// Load reads, decodes, defaults and validates the repository file at path.
// File and Dir are set to the absolute file and its folder; errors name the
// file as path names it, with the line and field of each problem.
//
// The file is read safely even when path is in an untrusted tree (Find's
// result in a pull request's checkout): a symlink is followed only while it
// stays in the file's own folder, only a regular file is read (never
// blocking on a FIFO or device), at most MaxFileBytes, and errors never
// quote the file's values.
func Load(path string) (*Repository, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", path, err)
	}
	return load(path, abs, filepath.Dir(abs))
}

// LoadFile is Load for the repository file name (such as "gitops.yaml")
// inside the checkout root: name must be relative and stay inside root, and
// neither it nor a folder on its way may be a symlink that leaves root. Errors
// name the file as name. The bot uses it for the trees it checks out.
func LoadFile(root, name string) (*Repository, error) {
	absRoot, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", root, err)
	}
	clean := filepath.Clean(filepath.FromSlash(name))
	if filepath.IsAbs(clean) || !filepath.IsLocal(clean) {
		return nil, fmt.Errorf("%s: the repository file must be a relative path inside the repository; name it relative to the repository's top folder", name)
	}
	return load(name, filepath.Join(absRoot, clean), absRoot)
}

// load reads the repository file abs (named path in messages), which must
// resolve inside the folder confine.
func load(path, abs, confine string) (*Repository, error) {
	real, err := confinedFile(path, abs, confine)
	if err != nil {
		return nil, err
	}
	data, err := readCapped(path, real)
	if err != nil {
		return nil, err
	}
	r, err := Parse(path, data)
	if err != nil {
		return nil, err
	}
	r.File = abs
	r.Dir = filepath.Dir(abs)
	return r, nil
}

// confinedFile resolves the symlinks of abs and returns its real path, which
// must be in or below the folder confine (itself resolved).
func confinedFile(path, abs, confine string) (string, error) {
	realDir, err := filepath.EvalSymlinks(confine)
	if err != nil {
		return "", fmt.Errorf("read repository file: %w", err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", fmt.Errorf("read repository file %s: %w", path, err)
	}
	if rel, err := filepath.Rel(realDir, real); err != nil || !filepath.IsLocal(rel) {
		return "", fmt.Errorf("%s is a symlink (or is in a linked folder) that leads out of %s; a repository file is read only from inside its repository, so replace the link with the file: %w", path, confine, ErrNotRegular)
	}
	return real, nil
}

// Parse decodes, defaults and validates a repository file held in memory, such
// as one read from a pull request's base branch through a forge API. name is
// used in messages only; File and Dir stay empty.
func Parse(name string, data []byte) (*Repository, error) {
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("%s: file is %d bytes, larger than the %d-byte limit; a repository file should be a few KiB", name, len(data), MaxFileBytes)
	}
	r, err := decode(name, data)
	if err != nil {
		return nil, err
	}
	r.Default()
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return r, nil
}

// readCapped reads the regular file real (named path in messages), at most
// MaxFileBytes.
func readCapped(path, real string) ([]byte, error) {
	f, _, err := OpenRegular(real)
	if errors.Is(err, ErrNotRegular) {
		return nil, fmt.Errorf("%s: not a regular file; pass the path of a %s file: %w", path, FileName, err)
	}
	if err != nil {
		return nil, fmt.Errorf("read repository file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read repository file: %w", err)
	}
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("%s: file is larger than the %d-byte limit; a repository file should be a few KiB", path, MaxFileBytes)
	}
	return data, nil
}

// yamlLine finds the line in the YAML library's messages ("yaml: line 3: ...").
var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// decode parses one YAML document into a Repository, checking its shape
// against the schema first so every problem has a line and a field path.
func decode(name string, data []byte) (*Repository, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{File: name, Msg: "file is empty; start it with apiVersion: " + APIVersion + " and kind: " + Kind}
		}
		return nil, yamlError(name, err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, yamlError(name, err)
	default:
		return nil, &Error{File: name, Line: extra.Line, Msg: "a second YAML document starts here; a repository file holds exactly one document, so remove the \"---\" and merge the documents"}
	}

	w := walker{p: problems{file: name, lines: map[string]int{}}, fields: map[reflect.Type]map[string]reflect.Type{}}
	w.walk(&doc, reflect.TypeFor[Repository](), "")
	if err := w.p.err(); err != nil {
		return nil, err
	}
	r := &Repository{name: name, lines: w.p.lines}
	if err := doc.Decode(r); err != nil {
		return nil, yamlError(name, err)
	}
	for i := range r.Apps {
		r.Apps[i].Line = lineOf(r.lines, fmt.Sprintf("apps[%d]", i))
	}
	return r, nil
}

// yamlError turns the YAML library's errors into Errors with lines.
func yamlError(name string, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		errs := make([]error, 0, len(te.Errors))
		for _, msg := range te.Errors {
			errs = append(errs, lineError(name, msg, err))
		}
		return errors.Join(errs...)
	}
	return lineError(name, err.Error(), err)
}

// yamlQuoted matches the values the YAML library quotes in its messages
// ("cannot unmarshal !!str `…` into int"); a file that is not a repository
// file may hold secrets, so its values never reach a message.
var yamlQuoted = regexp.MustCompile("`[^`]*`")

func lineError(name, msg string, cause error) error {
	msg = yamlQuoted.ReplaceAllString(msg, "a value")
	cause = scrubbed{cause}
	if strings.Contains(msg, "excessive aliasing") {
		return &Error{File: name, Msg: "the document expands too many aliases (*name); write the values out instead", Err: cause}
	}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{File: name, Line: line, Msg: "invalid YAML: " + m[2], Err: cause}
	}
	return &Error{File: name, Msg: "invalid YAML: " + trimYAMLPrefix(msg), Err: cause}
}

// scrubbed is a YAML error whose message is shown without its quoted values;
// errors.Is and errors.As still reach the original.
type scrubbed struct{ err error }

func (s scrubbed) Error() string { return yamlQuoted.ReplaceAllString(s.err.Error(), "a value") }
func (s scrubbed) Unwrap() error { return s.err }

func trimYAMLPrefix(s string) string {
	return strings.TrimPrefix(s, "yaml: ")
}

// Find searches for gitops.yaml in start (a file's folder or a folder) and its
// parents, stopping at the filesystem root or after a folder that holds .git
// (the top of the Git repository). It returns an error wrapping ErrNotFound
// when there is none. The result is relative when start is.
func Find(start string) (string, error) {
	fi, err := os.Stat(start)
	if err != nil {
		return "", fmt.Errorf("find %s: %w", FileName, err)
	}
	dir := start
	if !fi.IsDir() {
		dir = filepath.Dir(start)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("find %s: %w", FileName, err)
	}
	for d := abs; ; {
		candidate := filepath.Join(d, FileName)
		if fi, err := os.Stat(candidate); err == nil && fi.Mode().IsRegular() {
			return relativeLike(start, candidate), nil
		}
		if _, err := os.Lstat(filepath.Join(d, ".git")); err == nil {
			return "", fmt.Errorf("%w in %s or its parents up to the Git repository root %s; pass --config or name a path", ErrNotFound, dir, d)
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("%w in %s or its parents; pass --config or name a path", ErrNotFound, dir)
		}
		d = parent
	}
}

// relativeLike makes found relative to the working directory when start was
// relative, so messages show the path as short as the user wrote theirs.
func relativeLike(start, found string) string {
	if filepath.IsAbs(start) {
		return found
	}
	wd, err := os.Getwd()
	if err != nil {
		return found
	}
	rel, err := filepath.Rel(wd, found)
	if err != nil {
		return found
	}
	return rel
}
