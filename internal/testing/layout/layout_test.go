// Package layout holds no code, only the test that keeps the module's import
// graph to the layout of DESIGN.md §2: imports flow downward, render talks to
// no cluster, approvals is standard library only, bot knows no forge
// provider, only commands make loggers, test support stays in tests, and
// every test binary accepts -update.
//
// One `go list -e -deps -json ./...` gives the whole graph; the rules below
// are checks over it.
package layout

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	// Defines -update, which this package's test binary must accept too.
	_ "github.com/kubectl-gitops/kubectl-gitops/internal/testing/golden"
)

const module = "github.com/kubectl-gitops/kubectl-gitops"

// allowed lists, for each package of the module (path relative to the
// module), the module packages its non-test files may import. It is
// DESIGN.md §2's listing made explicit: a package imports only packages
// listed below it, and only those it has a reason to. A package missing here
// fails the test until it is placed in §2 and here.
//
// The edges that go up the listing: sandbox runs render in its child
// process, so it imports render (and config, for the apps it renders); and
// config imports approvals, a leaf of the standard library only, to check
// an approval policy's cron schedules where gitops.yaml is validated (with
// line numbers) and to turn it into an approvals.Policy.
//
// Packages §2 does not list by name sit with their kin: chartrepo fetches
// charts for the engine as gitrepo fetches trees; helmrelease is the one
// description of a Helm release, a leaf shared by render and cluster; clock
// (waiting), limit (bounded reads of a peer's answers, for gitrepo and
// images) and version (build identity) are leaves; lease (the bot's state
// in Kubernetes Leases and ConfigMaps: leader election, per-app locks,
// records, DESIGN.md §5 "State") is a leaf over client-go that only the
// bot and its command use; gate (the approval decision on a forge's facts)
// sits between approvals and scm below and the bot and plugin above; the
// plugin reads a forge (with a token from the environment) only for apply
// --require-approval, and the bot's state (internal/lease) only for the image
// automation switch.
//
// Test files are not held to this table (a test may drive its package with
// a higher one, as cluster's tests render charts with render); the named
// rules below say where tests are held too.
var allowed = map[string][]string{
	"cmd/kubectl-gitops": {"plugin", "internal/engine", "internal/sandbox", "internal/cluster", "internal/version"},
	"cmd/gitops-bot": {"bot", "internal/engine", "internal/sandbox", "internal/cluster", "internal/config",
		"internal/scm", "internal/scm/github", "internal/scm/gitlab", "internal/images", "internal/notify",
		"internal/gitrepo", "internal/chartrepo", "internal/lease", "internal/version"},
	"plugin": {"internal/engine", "render", "approvals", "internal/gate", "internal/scm", "internal/scm/github",
		"internal/scm/gitlab", "internal/sandbox", "internal/config", "internal/cluster",
		"internal/diff", "internal/report", "internal/images", "internal/images/setter", "internal/gitrepo", "internal/chartrepo",
		"internal/helmrelease", "internal/lease", "internal/clock", "internal/version"},
	"bot": {"internal/engine", "render", "approvals", "internal/gate", "internal/sandbox", "internal/config", "internal/cluster",
		"internal/diff", "internal/report", "internal/scm", "internal/images", "internal/images/setter", "internal/notify",
		"internal/gitrepo", "internal/chartrepo", "internal/helmrelease", "internal/lease", "internal/clock",
		"internal/version"},
	"render":        {"internal/config", "internal/helmrelease"},
	"approvals":     {},
	"internal/gate": {"approvals", "internal/config", "internal/scm"},
	"internal/engine": {"render", "approvals", "internal/sandbox", "internal/config", "internal/cluster",
		"internal/diff", "internal/report", "internal/images", "internal/gitrepo", "internal/chartrepo",
		"internal/helmrelease", "internal/clock"},
	"internal/sandbox":     {"render", "internal/config", "internal/helmrelease"},
	"internal/config":      {"approvals"},
	"internal/cluster":     {"internal/diff", "internal/helmrelease", "internal/clock"},
	"internal/diff":        {},
	"internal/report":      {"internal/diff"},
	"internal/scm":         {},
	"internal/scm/github":  {"internal/scm", "internal/clock"},
	"internal/scm/gitlab":  {"internal/scm", "internal/clock"},
	"internal/images":      {"internal/config", "internal/gitrepo", "internal/clock", "internal/images/setter", "internal/limit"},
	"internal/notify":      {"internal/clock"},
	"internal/gitrepo":     {"internal/limit"},
	"internal/limit":       {},
	"internal/chartrepo":   {},
	"internal/helmrelease": {},
	"internal/lease":       {},
	"internal/clock":       {},
	"internal/version":     {},
	"integration":          {}, // tests only

	"internal/images/setter": {}, // standard library and go.yaml.in/yaml/v3 only: it edits marked bytes (its own test checks)
}

// mayImport reports whether from's non-test files may import to (both
// relative to the module), and whether the table knows from at all.
func mayImport(from, to string) (ok, known bool) {
	switch {
	case under(from, "internal/testing"), under(from, "hack"):
		// Test support and scripts sit outside the layers: they may use
		// any library package and test support, never a command; only
		// scripts use scripts.
		return !under(to, "cmd") && to != "integration" && (under(from, "hack") || !under(to, "hack")), true
	}
	list, known := allowed[from]
	return slices.Contains(list, to), known
}

// under reports whether path is dir or inside it.
func under(path, dir string) bool { return path == dir || strings.HasPrefix(path, dir+"/") }

func TestImportsFlowDownward(t *testing.T) {
	g := load(t)
	for _, p := range g.own() {
		from := rel(p.ImportPath)
		if _, known := mayImport(from, ""); !known {
			t.Errorf("%s is not in the layout table: place it in DESIGN.md §2 and list the module packages it may import in allowed (internal/testing/layout/layout_test.go)", from)
			continue
		}
		for _, imp := range p.Imports {
			to, ok := strings.CutPrefix(imp, module+"/")
			if !ok {
				continue
			}
			if ok, _ := mayImport(from, to); !ok {
				may := strings.Join(allowed[from], ", ")
				switch {
				case under(from, "internal/testing"), under(from, "hack"):
					may = "library packages and test support"
				case may == "":
					may = "no module package"
				}
				t.Errorf("%s imports %s (%s), which DESIGN.md §2 does not allow: imports flow downward, and %s may import only %s",
					from, to, g.site(p, imp, false), from, may)
			}
		}
	}
}

func TestClusterDoesNotImportConfig(t *testing.T) {
	// cluster takes objects, not config.App: not even through another
	// package. Its tests may build what they apply from a gitops.yaml app
	// (config → render → cluster, as the engine does).
	g := load(t)
	if path := g.path(g.pkg(t, "internal/cluster").Imports, isPkg(module+"/internal/config"), nil); path != nil {
		t.Errorf("internal/cluster reaches internal/config (%s): cluster takes objects, not config.App; pass what it needs as arguments",
			g.describe(g.pkg(t, "internal/cluster"), false, path))
	}
}

// kubeClients are client-go's packages that build REST clients or talk to a
// kube-apiserver (with their subpackages). Every other client (cli-runtime,
// controller-runtime, Helm's pkg/kube) is built on k8s.io/client-go/rest, so
// reaching any of them reaches one of these.
var kubeClients = []string{
	"k8s.io/client-go/rest",
	"k8s.io/client-go/dynamic",
	"k8s.io/client-go/kubernetes",
	"k8s.io/client-go/discovery",
	"k8s.io/client-go/metadata",
	"k8s.io/client-go/restmapper",
	"k8s.io/client-go/scale",
	"k8s.io/client-go/tools/clientcmd",
}

// notKubeClients are packages under kubeClients that hold only types.
var notKubeClients = []string{
	"k8s.io/client-go/kubernetes/scheme", // the scheme of the built-in kinds
}

// helmGateways are the two places where Helm's client-only packages pull
// client-go in without making a client of their own: pkg/engine, for the
// template function lookup (render runs the engine without a REST config,
// so lookup returns nothing), and internal/version, which imports
// k8s.io/client-go/kubernetes blank only to read client-go's module version.
var helmGateways = []string{
	"helm.sh/helm/v4/pkg/engine",
	"helm.sh/helm/v4/internal/version",
}

func TestRenderHasNoKubeClient(t *testing.T) {
	// render is offline: it must not reach client-go's REST clients, by
	// its own imports or through any dependency. The walk goes through
	// Helm's packages too (so render importing pkg/action or pkg/kube is
	// caught) and stops only at helmGateways.
	g := load(t)
	render := g.pkg(t, "render")
	isKube := func(p string) bool {
		return !slices.Contains(notKubeClients, p) &&
			slices.ContainsFunc(kubeClients, func(dir string) bool { return under(p, dir) })
	}
	isGateway := func(p string) bool { return slices.Contains(helmGateways, p) }
	if path := g.path(render.Imports, isKube, isGateway); path != nil {
		t.Errorf("render reaches %s (%s): render is offline and knows no cluster; talking to a kube-apiserver (Helm releases included) belongs in internal/cluster",
			path[len(path)-1], g.describe(render, false, path))
	}
}

func TestApprovalsImportsOnlyTheStandardLibrary(t *testing.T) {
	g := load(t)
	approvals := g.pkg(t, "approvals")
	for _, d := range approvals.Deps {
		if q := g.pkgs[d]; q == nil || !q.Standard {
			path := g.path(approvals.Imports, isPkg(d), nil)
			t.Errorf("approvals reaches %s (%s): approvals is pure policy and imports only the standard library",
				d, g.describe(approvals, false, path))
		}
	}
}

// forges are the provider packages and SDKs bot must not know.
var forges = []string{
	module + "/internal/scm/github",
	module + "/internal/scm/gitlab",
	"github.com/google/go-github/",
	"gitlab.com/gitlab-org/api/client-go",
	"github.com/bradleyfalzon/ghinstallation/",
}

func TestBotDoesNotImportForges(t *testing.T) {
	// bot works with internal/scm's interfaces; cmd/gitops-bot picks the
	// providers. Its tests are held too: they drive bot through the forge
	// fakes over HTTP, as a provider would be driven in production.
	g := load(t)
	bot := g.pkg(t, "bot")
	isForge := func(p string) bool {
		return slices.ContainsFunc(forges, func(prefix string) bool { return under(p, strings.TrimSuffix(prefix, "/")) })
	}
	if path := g.path(bot.Imports, isForge, nil); path != nil {
		t.Errorf("bot reaches %s (%s): bot uses internal/scm's interfaces, never a provider; cmd/gitops-bot passes the provider in",
			rel(path[len(path)-1]), g.describe(bot, false, path))
	}
	for _, imports := range [][]string{bot.TestImports, bot.XTestImports} {
		// Module packages are walked; a third-party test import is checked
		// itself (its own dependencies are not in the graph).
		if path := g.path(imports, isForge, nil); path != nil {
			t.Errorf("bot's tests reach %s (%s): test bot through internal/scm and the forge fakes (internal/testing/scmtest), not a provider package",
				rel(path[len(path)-1]), g.describe(bot, true, path))
		}
	}
}

// slogTypesOnly are the packages outside cmd/ that may import log/slog, and
// why: for its types only, to take a logger a command made or to satisfy an
// API. They may not make a handler or use the default logger either.
var slogTypesOnly = map[string]string{
	"bot":              "takes the *slog.Logger cmd/gitops-bot makes; Secret is a slog.LogValuer so that it redacts itself",
	"internal/cluster": "Helm's action.Configuration takes a slog.Handler; cluster gives it slog.DiscardHandler",
}

// slogSinks are log/slog's functions that make a logger write somewhere:
// the handlers and the default logger.
var slogSinks = []string{
	"NewTextHandler", "NewJSONHandler", "Default", "SetDefault", "SetLogLoggerLevel",
	"Debug", "DebugContext", "Info", "InfoContext", "Warn", "WarnContext", "Error", "ErrorContext", "Log", "LogAttrs",
}

func TestOnlyCommandsLog(t *testing.T) {
	// Libraries return errors and warnings as values; a logger is made in
	// cmd/ only. Test files are free to log.
	g := load(t)
	for _, p := range g.own() {
		from := rel(p.ImportPath)
		if under(from, "cmd") || !slices.Contains(p.Imports, "log/slog") {
			continue
		}
		if _, ok := slogTypesOnly[from]; !ok {
			t.Errorf("%s imports log/slog (%s): only cmd/ packages log; return errors and warnings as values (a package that only takes a logger made in cmd/ goes in slogTypesOnly, with the reason)",
				from, g.site(p, "log/slog", false))
			continue
		}
		for _, use := range slogUses(t, p, slogSinks) {
			t.Errorf("%s: %s: only cmd/ makes slog handlers or uses the default logger; take a *slog.Logger or slog.Handler from the caller", use, from)
		}
	}
}

// slogUses returns where p's non-test files use one of log/slog's names.
func slogUses(t *testing.T, p *pkg, names []string) []string {
	t.Helper()
	var uses []string
	fset := token.NewFileSet()
	for _, name := range p.GoFiles {
		f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		local := ""
		for _, is := range f.Imports {
			if is.Path.Value == `"log/slog"` {
				local = "slog"
				if is.Name != nil {
					local = is.Name.Name
				}
			}
		}
		if local == "" || local == "_" {
			continue
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok {
				if x, ok := sel.X.(*ast.Ident); ok && x.Name == local && slices.Contains(names, sel.Sel.Name) {
					uses = append(uses, fmt.Sprintf("%s:%d: slog.%s", relFile(fset.Position(sel.Pos()).Filename), fset.Position(sel.Pos()).Line, sel.Sel.Name))
				}
			}
			return true
		})
	}
	return uses
}

func TestTestSupportOnlyInTests(t *testing.T) {
	g := load(t)
	for _, p := range g.own() {
		from := rel(p.ImportPath)
		if under(from, "internal/testing") || under(from, "hack") {
			continue
		}
		for _, imp := range p.Imports {
			if under(imp, module+"/internal/testing") {
				t.Errorf("%s imports %s (%s): internal/testing is test support, imported only by _test.go files and hack/",
					from, rel(imp), g.site(p, imp, false))
			}
		}
	}
}

func TestEveryTestBinaryAcceptsUpdate(t *testing.T) {
	// `go test ./... -update` fails in any package whose test binary does
	// not define -update: the flag is golden's, so every package with tests
	// must link golden (a blank import in one of its test files will do).
	g := load(t)
	for _, p := range g.own() {
		if len(p.TestGoFiles)+len(p.XTestGoFiles) == 0 {
			continue
		}
		roots := slices.Concat([]string{p.ImportPath}, p.TestImports, p.XTestImports)
		if g.path(roots, isPkg(module+"/internal/testing/golden"), nil) == nil {
			t.Errorf("the tests of %s do not define -update, so `go test ./... -update` fails there: add\n\timport _ %q\nto one of its test files (say update_test.go)",
				rel(p.ImportPath), module+"/internal/testing/golden")
		}
	}
}

// pkg is the part of `go list -json` these checks read.
type pkg struct {
	Dir          string
	ImportPath   string
	Standard     bool
	DepOnly      bool
	GoFiles      []string
	TestGoFiles  []string
	XTestGoFiles []string
	Imports      []string
	Deps         []string
	TestImports  []string
	XTestImports []string
}

type graph struct {
	pkgs map[string]*pkg
}

var loaded = sync.OnceValues(func() (*graph, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("go", "list", "-e", "-deps",
		"-json=Dir,ImportPath,Standard,DepOnly,GoFiles,TestGoFiles,XTestGoFiles,Imports,Deps,TestImports,XTestImports",
		"./...")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list: %v\n%s", err, stderr.Bytes())
	}
	g := &graph{pkgs: map[string]*pkg{}}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		p := new(pkg)
		if err := dec.Decode(p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("decoding go list's output: %w", err)
		}
		g.pkgs[p.ImportPath] = p
	}
	return g, nil
})

func load(t *testing.T) *graph {
	t.Helper()
	g, err := loaded()
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// moduleRoot is the folder of the module's go.mod, above the test's folder.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the test's folder")
		}
		dir = parent
	}
}

// own returns the module's packages, sorted.
func (g *graph) own() []*pkg {
	var own []*pkg
	for path, p := range g.pkgs {
		if !p.DepOnly && under(path, module) {
			own = append(own, p)
		}
	}
	slices.SortFunc(own, func(a, b *pkg) int { return strings.Compare(a.ImportPath, b.ImportPath) })
	return own
}

// pkg returns the module's package at rel.
func (g *graph) pkg(t *testing.T, rel string) *pkg {
	t.Helper()
	p, ok := g.pkgs[module+"/"+rel]
	if !ok {
		t.Fatalf("go list did not list %s", rel)
	}
	return p
}

func isPkg(path string) func(string) bool { return func(p string) bool { return p == path } }

// path walks the import graph breadth first from roots and returns the
// shortest chain of imports that ends in a package match accepts, or nil.
// Packages stop accepts are not walked into (they may still match).
func (g *graph) path(roots []string, match, stop func(string) bool) []string {
	prev := map[string]string{}
	var queue []string
	for _, r := range roots {
		if _, seen := prev[r]; !seen {
			prev[r] = ""
			queue = append(queue, r)
		}
	}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if match(p) {
			var chain []string
			for ; p != ""; p = prev[p] {
				chain = append(chain, p)
			}
			slices.Reverse(chain)
			return chain
		}
		if stop != nil && stop(p) {
			continue
		}
		if q, ok := g.pkgs[p]; ok {
			for _, imp := range q.Imports {
				if _, seen := prev[imp]; !seen {
					prev[imp] = p
					queue = append(queue, imp)
				}
			}
		}
	}
	return nil
}

// describe renders a chain of imports from p (its test files when tests is
// set), naming the file and line of the chain's first import.
func (g *graph) describe(p *pkg, tests bool, chain []string) string {
	parts := []string{rel(p.ImportPath)}
	if tests {
		parts[0] += " (tests)"
	}
	for _, c := range chain {
		parts = append(parts, rel(c))
	}
	return strings.Join(parts, " → ") + ", at " + g.site(p, chain[0], tests)
}

// site finds the file and line where p (its test files when tests is set)
// imports path.
func (g *graph) site(p *pkg, path string, tests bool) string {
	files := p.GoFiles
	if tests {
		files = slices.Concat(p.TestGoFiles, p.XTestGoFiles)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, parser.ImportsOnly)
		if err != nil {
			continue
		}
		for _, is := range f.Imports {
			if v, _ := strconv.Unquote(is.Path.Value); v == path {
				pos := fset.Position(is.Pos())
				return fmt.Sprintf("%s:%d", relFile(pos.Filename), pos.Line)
			}
		}
	}
	return rel(p.ImportPath)
}

// rel strips the module path from an import path of the module.
func rel(path string) string {
	if r, ok := strings.CutPrefix(path, module+"/"); ok {
		return r
	}
	return path
}

// relFile names a file relative to the module root when it can.
func relFile(name string) string {
	if root, err := moduleRoot(); err == nil {
		if r, err := filepath.Rel(root, name); err == nil && !strings.HasPrefix(r, "..") {
			return r
		}
	}
	return name
}
