package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

var testDate = time.Date(2026, 11, 30, 12, 34, 56, 0, time.UTC)

// options is a valid release of the repository into a temporary dist.
func options(t *testing.T, mutate ...func(*Options)) *Options {
	t.Helper()
	o := &Options{Root: "../..", Dist: filepath.Join(t.TempDir(), "dist"), Version: "v1.2.3", Commit: "0123456789abcdef0123456789abcdef01234567", Date: testDate}
	for _, m := range mutate {
		m(o)
	}
	if err := o.Complete(); err != nil {
		t.Fatal(err)
	}
	return o
}

// fakeBuild writes a binary made of the artifact's name, so the archive
// tests run without compiling.
func fakeBuild(o *Options) func(context.Context, Artifact) error {
	return func(_ context.Context, a Artifact) error {
		path := o.binPath(a)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		return os.WriteFile(path, []byte("binary of "+a.Name), 0o755)
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*Options)
		want   string
	}{
		{"valid", func(*Options) {}, ""},
		{"pre-release", func(o *Options) { o.Version = "v0.0.0-dev.20261130123456" }, ""},
		{"no v", func(o *Options) { o.Version = "1.2.3" }, `-version "1.2.3" is not a semantic version with a leading v`},
		{"short version", func(o *Options) { o.Version = "v1.2" }, `-version "v1.2" is not a semantic version`},
		{"empty version", func(o *Options) { o.Version = "" }, `-version "" is not a semantic version`},
		{"no date", func(o *Options) { o.Date = time.Time{} }, "-date is missing"},
		{"dist is the repository", func(o *Options) { o.Dist = "../.." }, "holds a go.mod: it is emptied first"},
		{"no dist", func(o *Options) { o.Dist = "" }, "-dist is missing"},
		{"unknown platform", func(o *Options) { o.Platforms = []Platform{{"plan9", "amd64"}} }, "plan9/amd64 is not a released platform"},
		{"unknown program", func(o *Options) { o.Programs = []string{"kubectl-nope"} }, "there is no cmd/kubectl-nope"},
		{"plain http", func(o *Options) { o.DownloadURL = "http://example.com/{version}" }, "must be an https:// URL"},
		{"not the repository", func(o *Options) { o.Root = t.TempDir() }, "has no LICENSE: run from the repository's root"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := options(t, tc.mutate).Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Validate = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestParseFlags(t *testing.T) {
	ps, err := parsePlatforms(" linux/amd64,windows/arm64,")
	if err != nil || !slices.Equal(ps, []Platform{{"linux", "amd64"}, {"windows", "arm64"}}) {
		t.Errorf("parsePlatforms = %v, %v", ps, err)
	}
	for _, bad := range []string{"linux", "linux/", "/amd64"} {
		if _, err := parsePlatforms(bad); err == nil || !strings.Contains(err.Error(), "is not os/arch") {
			t.Errorf("parsePlatforms(%q) = %v, want an os/arch error", bad, err)
		}
	}
	for in, want := range map[string]time.Time{
		"2026-11-30T12:34:56Z":      testDate,
		"2026-11-30T13:34:56+01:00": testDate,
		"1795999999":                time.Unix(1795999999, 0),
	} {
		if got, err := parseDate(in); err != nil || !got.Equal(want) {
			t.Errorf("parseDate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"yesterday", "2026-11-30", "12x"} {
		if _, err := parseDate(bad); err == nil || !strings.Contains(err.Error(), "neither RFC 3339") {
			t.Errorf("parseDate(%q) = %v, want an error", bad, err)
		}
	}
}

// readDist reads every file under dist by its relative path.
func readDist(t *testing.T, dist string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dist, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		rel, _ := filepath.Rel(dist, path)
		files[filepath.ToSlash(rel)] = data
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// archiveEntry is what a test checks of an archive's entry.
type archiveEntry struct {
	Name  string
	Mode  os.FileMode
	MTime time.Time
	Owner string
	Data  string
}

func readArchive(t *testing.T, name string, data []byte) []archiveEntry {
	t.Helper()
	var out []archiveEntry
	if strings.HasSuffix(name, ".zip") {
		zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, f := range zr.File {
			rc, err := f.Open()
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(rc)
			rc.Close()
			out = append(out, archiveEntry{Name: f.Name, Mode: f.Mode().Perm(), MTime: f.Modified.UTC(), Data: string(b)})
		}
		return out
	}
	gz, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if gz.Name != "" || !gz.ModTime.IsZero() {
		t.Errorf("%s: gzip header carries name %q and time %v; want neither", name, gz.Name, gz.ModTime)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b, _ := io.ReadAll(tr)
		out = append(out, archiveEntry{Name: h.Name, Mode: os.FileMode(h.Mode).Perm(), MTime: h.ModTime.UTC(), Owner: fmt.Sprintf("%s:%s/%d:%d", h.Uname, h.Gname, h.Uid, h.Gid), Data: string(b)})
	}
	return out
}

// krewManifestDoc is the part of krew's Plugin the tests read.
type krewManifestDoc struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Version          string `json:"version"`
		Homepage         string `json:"homepage"`
		ShortDescription string `json:"shortDescription"`
		Description      string `json:"description"`
		Caveats          string `json:"caveats"`
		Platforms        []struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			URI    string `json:"uri"`
			SHA256 string `json:"sha256"`
			Bin    string `json:"bin"`
			Files  []struct {
				From string `json:"from"`
				To   string `json:"to"`
			} `json:"files"`
		} `json:"platforms"`
	} `json:"spec"`
}

func TestReleaseLayout(t *testing.T) {
	run := func() (*Options, map[string][]byte) {
		o := options(t)
		o.build = fakeBuild(o)
		if err := o.Validate(); err != nil {
			t.Fatal(err)
		}
		if _, err := o.Run(t.Context()); err != nil {
			t.Fatalf("Run: %v", err)
		}
		return o, readDist(t, o.Dist)
	}
	o, first := run()
	_, second := run()

	// Reproducible: a second run writes the same bytes.
	if len(first) != len(second) {
		t.Fatalf("runs wrote %d and %d files", len(first), len(second))
	}
	for name, data := range first {
		if !bytes.Equal(data, second[name]) {
			t.Errorf("%s differs between two runs", name)
		}
	}

	license, _ := os.ReadFile("../../LICENSE")
	readme, _ := os.ReadFile("../../README.md")
	sums := string(first["checksums.txt"])
	var archives []string
	for _, prog := range []string{"kubectl-gitops", "gitops-bot"} {
		for _, p := range o.Platforms {
			a := o.artifact(prog, p)
			archives = append(archives, a.Name)
			data, ok := first[a.Name]
			if !ok {
				t.Errorf("no %s", a.Name)
				continue
			}
			if want := digest(data) + "  " + a.Name + "\n"; !strings.Contains(sums, want) {
				t.Errorf("checksums.txt lacks %q", want)
			}
			entries := readArchive(t, a.Name, data)
			var names []string
			for _, e := range entries {
				names = append(names, e.Name)
				if !e.MTime.Equal(testDate) {
					t.Errorf("%s: %s dated %v, want the commit's date %v", a.Name, e.Name, e.MTime, testDate)
				}
				if e.Owner != "" && e.Owner != "root:root/0:0" {
					t.Errorf("%s: %s owned by %s, want root", a.Name, e.Name, e.Owner)
				}
			}
			want := []string{prog, "LICENSE", "README.md"}
			if p.OS == "windows" {
				want[0] = prog + ".exe"
				if !strings.HasSuffix(a.Name, ".zip") {
					t.Errorf("%s: a Windows archive is a .zip", a.Name)
				}
			}
			if prog == "kubectl-gitops" {
				want = append(want, map[bool]string{true: "kubectl_complete-gitops.cmd", false: "kubectl_complete-gitops"}[p.OS == "windows"])
			}
			if !slices.Equal(names, want) {
				t.Errorf("%s holds %v, want %v", a.Name, names, want)
				continue
			}
			if entries[0].Mode != 0o755 || entries[0].Data != "binary of "+a.Name {
				t.Errorf("%s: binary mode %v, content %q", a.Name, entries[0].Mode, entries[0].Data)
			}
			if entries[1].Data != string(license) || entries[2].Data != string(readme) || entries[1].Mode != 0o644 {
				t.Errorf("%s: LICENSE or README.md is not the repository's", a.Name)
			}
			if len(entries) == 4 && (entries[3].Mode != 0o755 || !strings.Contains(entries[3].Data, "kubectl-gitops")) {
				t.Errorf("%s: completion shim mode %v, content %q", a.Name, entries[3].Mode, entries[3].Data)
			}
		}
	}
	if got := strings.Count(sums, "\n"); got != len(archives) {
		t.Errorf("checksums.txt has %d lines, want %d (no SBOM tool given)", got, len(archives))
	}
	if !regexp.MustCompile(`^([0-9a-f]{64}  \S+\n)+$`).MatchString(sums) {
		t.Errorf("checksums.txt is not sha256sum's format:\n%s", sums)
	}

	var m krewManifestDoc
	if err := yaml.UnmarshalStrict(first["gitops.yaml"], &m); err != nil {
		t.Fatalf("gitops.yaml: %v\n%s", err, first["gitops.yaml"])
	}
	if m.APIVersion != "krew.googlecontainertools.github.com/v1alpha2" || m.Kind != "Plugin" || m.Metadata.Name != "gitops" || m.Spec.Version != "v1.2.3" {
		t.Errorf("manifest header = %s %s %s %s", m.APIVersion, m.Kind, m.Metadata.Name, m.Spec.Version)
	}
	if strings.Contains(m.Spec.ShortDescription, "\n") || m.Spec.Description == "" || m.Spec.Caveats == "" || m.Spec.Homepage == "" {
		t.Errorf("manifest descriptions: short %q, description %q, caveats %q, homepage %q", m.Spec.ShortDescription, m.Spec.Description, m.Spec.Caveats, m.Spec.Homepage)
	}
	if len(m.Spec.Platforms) != 6 {
		t.Fatalf("manifest has %d platforms, want 6", len(m.Spec.Platforms))
	}
	for _, p := range m.Spec.Platforms {
		plat := Platform{p.Selector.MatchLabels["os"], p.Selector.MatchLabels["arch"]}
		a := o.artifact("kubectl-gitops", plat)
		if want := "https://github.com/kubectl-gitops/kubectl-gitops/releases/download/v1.2.3/" + a.Name; p.URI != want {
			t.Errorf("%s: uri %s, want %s", plat, p.URI, want)
		}
		if p.SHA256 != digest(first[a.Name]) {
			t.Errorf("%s: sha256 %s is not the archive's", plat, p.SHA256)
		}
		if p.Bin != a.Bin {
			t.Errorf("%s: bin %s, want %s", plat, p.Bin, a.Bin)
		}
		var from []string
		for _, f := range p.Files {
			from = append(from, f.From)
			if f.To != "." {
				t.Errorf("%s: file %s goes to %s", plat, f.From, f.To)
			}
		}
		if !slices.Contains(from, "LICENSE") || !slices.Contains(from, shim(plat)) || !slices.Contains(from, a.Bin) {
			t.Errorf("%s: files %v, want the binary, LICENSE and %s", plat, from, shim(plat))
		}
	}
	if validator := asset(t, "validate-krew-manifest"); validator != "" {
		if out, err := exec.Command(validator, "-manifest", filepath.Join(o.Dist, "gitops.yaml"), "-skip-install").CombinedOutput(); err != nil {
			t.Errorf("krew's validator refuses dist/gitops.yaml: %v\n%s\n%s", err, out, first["gitops.yaml"])
		}
	}
}

func TestReleaseFailures(t *testing.T) {
	t.Run("build error names the program and platform", func(t *testing.T) {
		o := options(t, func(o *Options) { o.Platforms = []Platform{{"linux", "amd64"}} })
		o.build = func(_ context.Context, a Artifact) error {
			return fmt.Errorf("building %s for %s: exit status 1", a.Program, a.Platform)
		}
		_, err := o.Run(t.Context())
		if err == nil || !strings.Contains(err.Error(), "building kubectl-gitops for linux/amd64") {
			t.Fatalf("Run = %v", err)
		}
		if _, err := os.Stat(filepath.Join(o.Dist, "checksums.txt")); err == nil {
			t.Error("a failed release wrote checksums.txt")
		}
	})
	t.Run("a broken manifest template names the file", func(t *testing.T) {
		root := t.TempDir()
		for _, name := range []string{"go.mod", "LICENSE", "README.md", "krew/kubectl_complete-gitops", "cmd/kubectl-gitops/main.go"} {
			if err := os.MkdirAll(filepath.Join(root, filepath.Dir(name)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, name), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(root, "krew", "gitops.yaml.tmpl"), []byte("version: {{ .Versoin }}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		o := options(t, func(o *Options) {
			o.Root, o.Programs, o.Platforms = root, []string{"kubectl-gitops"}, []Platform{{"linux", "amd64"}}
		})
		o.build = fakeBuild(o)
		if err := o.Validate(); err != nil {
			t.Fatal(err)
		}
		_, err := o.Run(t.Context())
		if err == nil || !strings.Contains(err.Error(), "gitops.yaml.tmpl") || !strings.Contains(err.Error(), "Versoin") {
			t.Fatalf("Run = %v, want the template's error", err)
		}
	})
}

// asset is a tool built by hack/test-assets.sh; without it the caller
// skips, or fails under CI.
func asset(t *testing.T, name string) string {
	t.Helper()
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	path := filepath.Join(dir, name)
	if _, err := os.Stat(path); dir == "" || err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing from KUBEBUILDER_ASSETS (%q): run hack/test-assets.sh", name, dir)
		}
		t.Logf("skipping the %s check: run hack/test-assets.sh and set KUBEBUILDER_ASSETS", name)
		return ""
	}
	return path
}

// TestKrewInstall releases the plugin for this machine with the Go
// toolchain, twice, and installs the archive with krew built from its
// module, offline, into a temporary KREW_ROOT; kubectl then runs it.
func TestKrewInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin")
	}
	krew, validator, kubectl := asset(t, "kubectl-krew"), asset(t, "validate-krew-manifest"), asset(t, "kubectl")
	sbomTool := asset(t, "cyclonedx-gomod")
	if krew == "" || validator == "" || kubectl == "" || sbomTool == "" {
		t.Skip("krew, its validator, kubectl or cyclonedx-gomod is missing")
	}
	if runtime.GOOS != "linux" {
		t.Skip("installs a linux archive")
	}
	release := func() *Options {
		o := options(t, func(o *Options) {
			o.Programs = []string{"kubectl-gitops"}
			o.Platforms = []Platform{{"linux", runtime.GOARCH}}
			o.SBOMTool = sbomTool
		})
		if err := o.Validate(); err != nil {
			t.Fatal(err)
		}
		if _, err := o.Run(t.Context()); err != nil {
			t.Fatalf("Run: %v", err)
		}
		return o
	}
	o, again := release(), release()
	a := o.artifact("kubectl-gitops", Platform{"linux", runtime.GOARCH})
	first, second := readDist(t, o.Dist), readDist(t, again.Dist)
	for _, name := range []string{a.Name, a.Name + ".cdx.json", "checksums.txt", "gitops.yaml"} {
		if len(first[name]) == 0 || !bytes.Equal(first[name], second[name]) {
			t.Errorf("%s: missing or not reproducible (%d and %d bytes)", name, len(first[name]), len(second[name]))
		}
	}
	var bom struct {
		BOMFormat    string `json:"bomFormat"`
		SerialNumber string `json:"serialNumber"`
		Metadata     struct {
			Timestamp string `json:"timestamp"`
			Component struct {
				Name    string `json:"name"`
				Version string `json:"version"`
			} `json:"component"`
		} `json:"metadata"`
		Components []struct {
			Name string `json:"name"`
		} `json:"components"`
	}
	if err := json.Unmarshal(first[a.Name+".cdx.json"], &bom); err != nil {
		t.Fatalf("SBOM: %v", err)
	}
	if bom.BOMFormat != "CycloneDX" || bom.SerialNumber != "" || bom.Metadata.Timestamp != "" || bom.Metadata.Component.Version != "v1.2.3" || len(bom.Components) < 10 {
		t.Errorf("SBOM: format %q, serial %q, timestamp %q, component %+v, %d components", bom.BOMFormat, bom.SerialNumber, bom.Metadata.Timestamp, bom.Metadata.Component, len(bom.Components))
	}
	if !strings.Contains(string(first["checksums.txt"]), digest(first[a.Name+".cdx.json"])+"  "+a.Name+".cdx.json") {
		t.Errorf("checksums.txt lacks the SBOM:\n%s", first["checksums.txt"])
	}

	manifest := filepath.Join(o.Dist, "gitops.yaml")
	if out, err := exec.Command(validator, "-manifest", manifest, "-skip-install").CombinedOutput(); err != nil {
		t.Fatalf("validate-krew-manifest: %v\n%s", err, out)
	}

	// krew and kubectl find each other and the plugin through PATH.
	krewRoot := t.TempDir()
	tools := t.TempDir()
	for name, path := range map[string]string{"kubectl": kubectl, "kubectl-krew": krew} {
		if err := os.Symlink(path, filepath.Join(tools, name)); err != nil {
			t.Fatal(err)
		}
	}
	env := append(os.Environ(),
		"KREW_ROOT="+krewRoot, "KREW_NO_UPGRADE_CHECK=1", "HOME="+t.TempDir(),
		"PATH="+filepath.Join(krewRoot, "bin")+string(os.PathListSeparator)+tools+string(os.PathListSeparator)+"/usr/bin:/bin",
		// Nothing may be fetched: an install that tries fails fast.
		"HTTPS_PROXY=http://127.0.0.1:1", "HTTP_PROXY=http://127.0.0.1:1")
	kc := func(args ...string) (string, error) {
		cmd := exec.Command("kubectl", args...)
		cmd.Env = env
		cmd.Path = filepath.Join(tools, "kubectl")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := kc("krew", "install", "--manifest="+manifest, "--archive="+filepath.Join(o.Dist, a.Name)); err != nil {
		t.Fatalf("kubectl krew install: %v\n%s", err, out)
	}
	for _, f := range []string{"LICENSE", "kubectl_complete-gitops", "kubectl-gitops"} {
		if _, err := os.Stat(filepath.Join(krewRoot, "store", "gitops", "v1.2.3", f)); err != nil {
			t.Errorf("krew did not install %s: %v", f, err)
		}
	}
	out, err := kc("gitops", "version")
	if err != nil {
		t.Fatalf("kubectl gitops version: %v\n%s", err, out)
	}
	if !strings.Contains(out, "v1.2.3") || !strings.Contains(out, o.Commit) {
		t.Errorf("kubectl gitops version = %q, want v1.2.3 and the commit %s", out, o.Commit)
	}
	if out, err := kc("plugin", "list"); err != nil || !strings.Contains(out, "kubectl-gitops") {
		t.Errorf("kubectl plugin list = %q, %v", out, err)
	}
	// uninstall wants the local plugin index that "kubectl krew update" clones;
	// an empty Git repository stands in for it offline.
	index := filepath.Join(krewRoot, "index", "default")
	if err := os.MkdirAll(filepath.Join(index, "plugins"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("git", "init", "-q", index).CombinedOutput(); err != nil {
		t.Fatalf("git init: %v\n%s", err, out)
	}
	if out, err := kc("krew", "uninstall", "gitops"); err != nil {
		t.Fatalf("kubectl krew uninstall: %v\n%s", err, out)
	}
	if _, err := os.Lstat(filepath.Join(krewRoot, "bin", "kubectl-gitops")); err == nil {
		t.Error("kubectl-gitops is still on krew's PATH after uninstall")
	}
	if out, err := kc("gitops", "version"); err == nil {
		t.Errorf("kubectl gitops version after uninstall = %q, want an error", out)
	}
}
