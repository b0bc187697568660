// Command importgroups checks the import grouping that
// `goimports -local <module>` writes, without needing goimports: in every
// .go file of the module, standard-library imports come first, then
// third-party imports, then the module's own; no group (imports not
// separated by a blank line) mixes two kinds. A kind may span several
// groups (say, Helm's imports apart from Kubernetes'), as goimports allows.
//
//	go run ./hack/importgroups [DIR...]
//
// An import is standard library when the first element of its path has no
// dot (as goimports decides). Folders named testdata or vendor, hidden
// folders, nested modules and generated files are skipped. It prints one
// line per misplaced import and exits 1 when there is any.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "importgroups:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	module, err := modulePath("go.mod")
	if err != nil {
		return fmt.Errorf("%w (run it from the module's root folder)", err)
	}
	if len(args) == 0 {
		args = []string{"."}
	}
	var problems []string
	for _, root := range args {
		p, err := checkTree(root, module)
		if err != nil {
			return err
		}
		problems = append(problems, p...)
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(os.Stderr, p)
		}
		return fmt.Errorf("%d misplaced imports: group them standard library, then third-party, then %s, kinds separated by a blank line (`goimports -local %s -w FILE` splits mixed groups; move groups by hand)", len(problems), module, module)
	}
	return nil
}

// modulePath reads the module path from a go.mod file.
func modulePath(gomod string) (string, error) {
	f, err := os.Open(gomod)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			rest = strings.TrimSpace(rest)
			if strings.HasPrefix(rest, `"`) || strings.HasPrefix(rest, "`") {
				return strconv.Unquote(rest)
			}
			return strings.Fields(rest)[0], nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", errors.New(gomod + " has no module line")
}

func checkTree(root, module string) ([]string, error) {
	var problems []string
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path == root {
				return nil
			}
			name := d.Name()
			if name == "testdata" || name == "vendor" || name == "node_modules" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir // another module, with its own local prefix
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			return err
		}
		if ast.IsGenerated(f) {
			return nil
		}
		problems = append(problems, checkFile(fset, f, module)...)
		return nil
	})
	return problems, err
}

type class int

const (
	std class = iota
	thirdParty
	local
)

func (c class) String() string {
	return [...]string{"standard library", "third-party", "module"}[c]
}

func classify(path, module string) class {
	switch {
	case path == module || strings.HasPrefix(path, module+"/"):
		return local
	case !strings.Contains(strings.SplitN(path, "/", 2)[0], "."):
		return std
	default:
		return thirdParty
	}
}

type spec struct {
	path       string
	class      class
	start, end int // lines, the start including the spec's doc comment
}

// checkFile reports imports that share a group with another kind of import
// and groups that come after a group of a later kind. goimports -local
// fixes the first (it splits a mixed group) but not the second.
func checkFile(fset *token.FileSet, f *ast.File, module string) []string {
	// Split the imports into groups: a new group starts after a blank line
	// and with each import declaration.
	var groups [][]spec
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.IMPORT {
			continue
		}
		var prev *spec
		for _, s := range gd.Specs {
			is := s.(*ast.ImportSpec)
			path, err := strconv.Unquote(is.Path.Value)
			if err != nil || path == "C" {
				continue // cgo's pseudo-package stands in a declaration of its own
			}
			sp := spec{path: path, class: classify(path, module), start: fset.Position(is.Pos()).Line, end: fset.Position(is.End()).Line}
			if is.Doc != nil {
				sp.start = fset.Position(is.Doc.Pos()).Line
			}
			if prev == nil || sp.start > prev.end+1 {
				groups = append(groups, nil)
			}
			groups[len(groups)-1] = append(groups[len(groups)-1], sp)
			prev = &groups[len(groups)-1][len(groups[len(groups)-1])-1]
		}
	}

	name := fset.Position(f.Package).Filename
	var problems []string
	report := func(s spec, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("%s:%d: %q (%s): %s", name, s.start, s.path, s.class, fmt.Sprintf(format, args...)))
	}
	last := class(-1)
	for _, g := range groups {
		// The group's kind is that of its first import; the others must match.
		kind := g[0].class
		for _, s := range g[1:] {
			if s.class != kind {
				report(s, "in one group with %s imports (%q); give each kind its own group", kind, g[0].path)
			}
		}
		if kind < last {
			report(g[0], "its group comes after the %s imports; put it before them", last)
		}
		last = max(last, kind)
	}
	return problems
}
