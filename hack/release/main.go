// Command release builds the release of kubectl-gitops and gitops-bot into
// a dist folder: one archive per program and platform (.tar.gz, .zip for
// Windows) holding the stripped, version-stamped binary, LICENSE, README.md
// and, for the plugin, the kubectl completion shim; a CycloneDX SBOM per
// archive when cyclonedx-gomod is given; checksums.txt (sha256); and the
// krew manifest gitops.yaml, written from krew/gitops.yaml.tmpl.
//
// The output is reproducible: the same commit gives the same bytes. Builds
// are -trimpath, stamped with the commit's date rather than the clock, and
// archive entries carry that date, root ownership and fixed modes, in a
// fixed order. hack/release.sh runs it with the version and date of HEAD.
//
//	go run ./hack/release -version v0.1.0 -commit "$(git rev-parse HEAD)" \
//	  -date "$(git log -1 --format=%cI)" -dist dist
package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/Masterminds/semver/v3"
)

const (
	module = "github.com/kubectl-gitops/kubectl-gitops"
	// plugin is the program krew installs.
	plugin = "kubectl-gitops"
	// completion is kubectl's completion shim for the plugin.
	completion = "kubectl_complete-gitops"
	// defaultDownloadURL is where the archives of a release are published;
	// {version} is replaced by the version.
	defaultDownloadURL = "https://github.com/kubectl-gitops/kubectl-gitops/releases/download/{version}"
)

// defaultPlatforms are the released os/arch pairs.
var defaultPlatforms = "linux/amd64,linux/arm64,darwin/amd64,darwin/arm64,windows/amd64,windows/arm64"

// knownPlatforms are the pairs a release may name.
var knownPlatforms = map[string]bool{
	"linux/amd64": true, "linux/arm64": true, "darwin/amd64": true, "darwin/arm64": true,
	"windows/amd64": true, "windows/arm64": true,
}

// Platform is one os/arch pair.
type Platform struct{ OS, Arch string }

func (p Platform) String() string { return p.OS + "/" + p.Arch }

// exe is name as an executable file of p.
func (p Platform) exe(name string) string {
	if p.OS == "windows" {
		return name + ".exe"
	}
	return name
}

// Options say what to release.
type Options struct {
	// Root is the repository (go.mod, LICENSE, README.md, krew/).
	Root string
	// Dist receives the release; it is emptied first.
	Dist string
	// Version is the release's semantic version with its v.
	Version string
	// Commit is the released commit.
	Commit string
	// Date is the commit's date: the build's stamp and every archive
	// entry's modification time.
	Date time.Time
	// Programs are the commands under cmd/ to release.
	Programs []string
	// Platforms are the os/arch pairs to build for.
	Platforms []Platform
	// DownloadURL is the folder the archives are published in, for the
	// krew manifest; {version} is replaced by Version.
	DownloadURL string
	// SBOMTool is the cyclonedx-gomod executable; empty writes no SBOMs.
	SBOMTool string
	// Jobs is how many builds run at once.
	Jobs int
	// Stderr receives the progress and the tools' output.
	Stderr io.Writer

	// build compiles one binary; nil is the Go toolchain (o.goBuild).
	build func(context.Context, Artifact) error
}

// Complete fills the defaults.
func (o *Options) Complete() error {
	if o.Root == "" {
		o.Root = "."
	}
	if len(o.Programs) == 0 {
		o.Programs = []string{plugin, "gitops-bot"}
	}
	if len(o.Platforms) == 0 {
		ps, err := parsePlatforms(defaultPlatforms)
		if err != nil {
			return err
		}
		o.Platforms = ps
	}
	if o.DownloadURL == "" {
		o.DownloadURL = defaultDownloadURL
	}
	if o.Jobs <= 0 {
		o.Jobs = max(1, runtime.NumCPU()/2)
	}
	if o.Stderr == nil {
		o.Stderr = io.Discard
	}
	if o.build == nil {
		o.build = o.goBuild
	}
	return nil
}

// Validate checks the options before anything is built.
func (o *Options) Validate() error {
	var errs []error
	if _, err := semver.StrictNewVersion(strings.TrimPrefix(o.Version, "v")); err != nil || !strings.HasPrefix(o.Version, "v") {
		errs = append(errs, fmt.Errorf("-version %q is not a semantic version with a leading v (like v0.1.0)", o.Version))
	}
	if o.Date.IsZero() {
		errs = append(errs, errors.New("-date is missing: pass the commit's date (git log -1 --format=%cI) so builds are reproducible"))
	}
	if o.Dist == "" {
		errs = append(errs, errors.New("-dist is missing"))
	} else if _, err := os.Stat(filepath.Join(o.Dist, "go.mod")); err == nil {
		errs = append(errs, fmt.Errorf("-dist %s holds a go.mod: it is emptied first, so name a folder of its own (dist)", o.Dist))
	}
	for _, name := range []string{"go.mod", "LICENSE", "README.md", filepath.Join("krew", "gitops.yaml.tmpl"), filepath.Join("krew", completion)} {
		if _, err := os.Stat(filepath.Join(o.Root, name)); err != nil {
			errs = append(errs, fmt.Errorf("the repository at %s has no %s: run from the repository's root or pass -root", o.Root, name))
		}
	}
	for _, p := range o.Programs {
		if _, err := os.Stat(filepath.Join(o.Root, "cmd", p)); err != nil {
			errs = append(errs, fmt.Errorf("-programs: there is no cmd/%s", p))
		}
	}
	for _, p := range o.Platforms {
		if !knownPlatforms[p.String()] {
			errs = append(errs, fmt.Errorf("-platforms: %s is not a released platform (one of %s)", p, defaultPlatforms))
		}
	}
	if !strings.HasPrefix(o.DownloadURL, "https://") {
		errs = append(errs, fmt.Errorf("-download-url %q must be an https:// URL (krew refuses others)", o.DownloadURL))
	}
	return errors.Join(errs...)
}

// Artifact is one archive of the release.
type Artifact struct {
	Program  string
	Platform Platform
	// Name is the archive's file name in Dist.
	Name string
	// Bin is the binary's name in the archive.
	Bin string
	// Files are the archive's entries, in order.
	Files []string
	// SHA256 is the archive's lowercase hex digest.
	SHA256 string
}

// Run builds, archives, writes the SBOMs, the checksums and the krew
// manifest, and returns the archives.
func (o *Options) Run(ctx context.Context) ([]Artifact, error) {
	if err := os.RemoveAll(o.Dist); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(o.Dist, "bin"), 0o755); err != nil {
		return nil, err
	}
	var arts []Artifact
	for _, prog := range o.Programs {
		for _, p := range o.Platforms {
			arts = append(arts, o.artifact(prog, p))
		}
	}
	if err := o.buildAll(ctx, arts); err != nil {
		return nil, err
	}
	var sums []string
	for i := range arts {
		a := &arts[i]
		data, err := o.archive(*a)
		if err != nil {
			return nil, fmt.Errorf("archiving %s: %w", a.Name, err)
		}
		if err := os.WriteFile(filepath.Join(o.Dist, a.Name), data, 0o644); err != nil {
			return nil, err
		}
		a.SHA256 = digest(data)
		sums = append(sums, a.SHA256+"  "+a.Name)
		if o.SBOMTool != "" {
			name, sum, err := o.sbom(ctx, *a)
			if err != nil {
				return nil, err
			}
			sums = append(sums, sum+"  "+name)
		}
	}
	slices.SortFunc(sums, func(a, b string) int { return strings.Compare(a[66:], b[66:]) })
	if err := os.WriteFile(filepath.Join(o.Dist, "checksums.txt"), []byte(strings.Join(sums, "\n")+"\n"), 0o644); err != nil {
		return nil, err
	}
	manifest, err := o.krewManifest(arts)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(o.Dist, "gitops.yaml"), manifest, 0o644); err != nil {
		return nil, err
	}
	return arts, nil
}

// artifact names the archive of prog for p and its entries.
func (o *Options) artifact(prog string, p Platform) Artifact {
	a := Artifact{Program: prog, Platform: p, Bin: p.exe(prog)}
	a.Name = fmt.Sprintf("%s_%s_%s.tar.gz", prog, p.OS, p.Arch)
	if p.OS == "windows" {
		a.Name = strings.TrimSuffix(a.Name, ".tar.gz") + ".zip"
	}
	a.Files = []string{a.Bin, "LICENSE", "README.md"}
	if prog == plugin {
		a.Files = append(a.Files, shim(p))
	}
	return a
}

// shim is the completion shim's name on p: kubectl finds a .cmd on
// Windows through PATHEXT.
func shim(p Platform) string {
	if p.OS == "windows" {
		return completion + ".cmd"
	}
	return completion
}

// binPath is where the binary of a is built.
func (o *Options) binPath(a Artifact) string {
	return filepath.Join(o.Dist, "bin", a.Program+"_"+a.Platform.OS+"_"+a.Platform.Arch, a.Bin)
}

// buildAll builds every binary, Jobs at a time.
func (o *Options) buildAll(ctx context.Context, arts []Artifact) error {
	sem := make(chan struct{}, o.Jobs)
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, a := range arts {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := o.build(ctx, a); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// goBuild compiles a's program: static, -trimpath, stripped, stamped.
func (o *Options) goBuild(ctx context.Context, a Artifact) error {
	fmt.Fprintf(o.Stderr, "release: building %s for %s\n", a.Program, a.Platform)
	pkg := module + "/internal/version"
	ldflags := strings.Join([]string{
		"-s", "-w", "-buildid=",
		"-X", pkg + ".version=" + o.Version,
		"-X", pkg + ".commit=" + o.Commit,
		"-X", pkg + ".date=" + o.Date.UTC().Format(time.RFC3339),
	}, " ")
	out, err := filepath.Abs(o.binPath(a))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags", ldflags, "-o", out, "./cmd/"+a.Program)
	cmd.Dir = o.Root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+a.Platform.OS, "GOARCH="+a.Platform.Arch, "GOFLAGS=-mod=readonly")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = o.Stderr, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("building %s for %s: %w\n%s", a.Program, a.Platform, err, stderr.Bytes())
	}
	return nil
}

// entry is one file of an archive.
type entry struct {
	name string
	mode os.FileMode
	data []byte
}

// entries reads a's files: the built binary and the repository's files.
func (o *Options) entries(a Artifact) ([]entry, error) {
	var out []entry
	for _, name := range a.Files {
		var path string
		mode := os.FileMode(0o644)
		switch name {
		case a.Bin:
			path, mode = o.binPath(a), 0o755
		case completion, completion + ".cmd":
			path, mode = filepath.Join(o.Root, "krew", name), 0o755
		default:
			path = filepath.Join(o.Root, name)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		out = append(out, entry{name: name, mode: mode, data: data})
	}
	return out, nil
}

// archive is a's archive: entries in a fixed order, each dated Date,
// owned by root, with fixed modes; gzip without a name or time.
func (o *Options) archive(a Artifact) ([]byte, error) {
	files, err := o.entries(a)
	if err != nil {
		return nil, err
	}
	mtime := o.Date.UTC()
	var buf bytes.Buffer
	if a.Platform.OS == "windows" {
		zw := zip.NewWriter(&buf)
		for _, f := range files {
			h := &zip.FileHeader{Name: f.name, Method: zip.Deflate, Modified: mtime}
			h.SetMode(f.mode)
			w, err := zw.CreateHeader(h)
			if err != nil {
				return nil, err
			}
			if _, err := w.Write(f.data); err != nil {
				return nil, err
			}
		}
		if err := zw.Close(); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	}
	gz, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(gz)
	for _, f := range files {
		h := &tar.Header{
			Typeflag: tar.TypeReg, Name: f.name, Mode: int64(f.mode), Size: int64(len(f.data)),
			ModTime: mtime, Uname: "root", Gname: "root", Format: tar.FormatPAX,
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// sbom writes the CycloneDX SBOM of a's binary next to its archive (no
// serial number and no timestamp: the same binary gives the same bytes)
// and returns its name and digest.
func (o *Options) sbom(ctx context.Context, a Artifact) (string, string, error) {
	name := a.Name + ".cdx.json"
	out := filepath.Join(o.Dist, name)
	cmd := exec.CommandContext(ctx, o.SBOMTool, "bin", "-json", "-noserial", "-notimestamp", "-version", o.Version, "-output", out, o.binPath(a))
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = o.Stderr, &stderr
	if err := cmd.Run(); err != nil {
		return "", "", fmt.Errorf("the SBOM of %s (%s): %w\n%s", a.Name, o.SBOMTool, err, stderr.Bytes())
	}
	data, err := os.ReadFile(out)
	if err != nil {
		return "", "", err
	}
	return name, digest(data), nil
}

// krewPlatform is one platform of the krew manifest.
type krewPlatform struct {
	OS, Arch, URI, SHA256, Bin string
	Files                      []string
}

// krewManifest renders krew/gitops.yaml.tmpl with the plugin's archives.
func (o *Options) krewManifest(arts []Artifact) ([]byte, error) {
	path := filepath.Join(o.Root, "krew", "gitops.yaml.tmpl")
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	tmpl, err := template.New(filepath.Base(path)).Option("missingkey=error").Parse(string(text))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	base := strings.TrimSuffix(strings.ReplaceAll(o.DownloadURL, "{version}", o.Version), "/")
	var platforms []krewPlatform
	for _, a := range arts {
		if a.Program != plugin {
			continue
		}
		platforms = append(platforms, krewPlatform{
			OS: a.Platform.OS, Arch: a.Platform.Arch, URI: base + "/" + a.Name,
			SHA256: a.SHA256, Bin: a.Bin, Files: a.Files,
		})
	}
	if len(platforms) == 0 {
		return nil, fmt.Errorf("no %s archive to describe in the krew manifest: add %s to -programs", plugin, plugin)
	}
	var out bytes.Buffer
	if err := tmpl.Execute(&out, map[string]any{"Version": o.Version, "Platforms": platforms}); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out.Bytes(), nil
}

func digest(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// parsePlatforms reads "os/arch,os/arch".
func parsePlatforms(s string) ([]Platform, error) {
	var out []Platform
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		osName, arch, ok := strings.Cut(f, "/")
		if !ok || osName == "" || arch == "" {
			return nil, fmt.Errorf("-platforms: %q is not os/arch (like linux/amd64)", f)
		}
		out = append(out, Platform{OS: osName, Arch: arch})
	}
	return out, nil
}

// parseDate reads an RFC 3339 time or Unix seconds (SOURCE_DATE_EPOCH).
func parseDate(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	var secs int64
	if _, err := fmt.Sscanf(s, "%d", &secs); err == nil && fmt.Sprint(secs) == s {
		return time.Unix(secs, 0), nil
	}
	return time.Time{}, fmt.Errorf("-date %q is neither RFC 3339 (2026-12-01T10:00:00Z) nor Unix seconds", s)
}

func main() {
	o := &Options{Stderr: os.Stderr}
	var platforms, programs, date string
	flag.StringVar(&o.Root, "root", ".", "the repository's root")
	flag.StringVar(&o.Dist, "dist", "dist", "the folder to write the release into (emptied first)")
	flag.StringVar(&o.Version, "version", "", "the release's version, like v0.1.0")
	flag.StringVar(&o.Commit, "commit", "", "the released commit")
	flag.StringVar(&date, "date", os.Getenv("SOURCE_DATE_EPOCH"), "the commit's date, RFC 3339 or Unix seconds (default $SOURCE_DATE_EPOCH)")
	flag.StringVar(&programs, "programs", "", "the programs under cmd/ to release, comma-separated (default kubectl-gitops,gitops-bot)")
	flag.StringVar(&platforms, "platforms", defaultPlatforms, "os/arch pairs, comma-separated")
	flag.StringVar(&o.DownloadURL, "download-url", defaultDownloadURL, "where the archives are published, for the krew manifest")
	flag.StringVar(&o.SBOMTool, "cyclonedx-gomod", "", "the cyclonedx-gomod executable: write an SBOM per archive")
	flag.IntVar(&o.Jobs, "jobs", 0, "builds at once (default half the CPUs)")
	flag.Parse()
	if err := run(o, platforms, programs, date); err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(2)
	}
}

func run(o *Options, platforms, programs, date string) error {
	var err error
	if o.Platforms, err = parsePlatforms(platforms); err != nil {
		return err
	}
	if programs != "" {
		o.Programs = strings.Split(programs, ",")
	}
	if o.Date, err = parseDate(date); err != nil {
		return err
	}
	if err := o.Complete(); err != nil {
		return err
	}
	if err := o.Validate(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	arts, err := o.Run(ctx)
	if err != nil {
		return err
	}
	for _, a := range arts {
		fmt.Printf("%s  %s\n", a.SHA256, filepath.Join(o.Dist, a.Name))
	}
	return nil
}
