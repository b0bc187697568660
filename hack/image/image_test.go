package main

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	testVersion  = "v0.1.0-test"
	testRevision = "0123456789abcdef0123456789abcdef01234567"
	testCreated  = "2026-12-01T00:00:00Z"
)

// TestImage builds gitops-bot for linux/<host arch>, builds its images as a
// release would (flags and all), and checks them as a cluster would see them:
// the index, each image's config and files, the binary running from the
// extracted filesystem, the tarballs, the reproducibility of the digests and
// a push to a registry and back.
//
// The other platform's binary is a synthetic static ELF executable for that
// architecture: cross-compiling gitops-bot would take minutes, and nothing
// runs it.
func TestImage(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the image's binary runs only on Linux")
	}
	if testing.Short() {
		t.Skip("builds gitops-bot")
	}
	ctx := t.Context()
	host, other := "linux/"+runtime.GOARCH, "linux/arm64"
	if runtime.GOARCH == "arm64" {
		other = "linux/amd64"
	}
	if _, ok := platform(host); !ok {
		t.Skipf("no image for the host's platform %s", host)
	}
	bins := t.TempDir()
	hostBin := filepath.Join(bins, "host", "gitops-bot")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath",
		"-ldflags", "-s -w -X github.com/kubectl-gitops/kubectl-gitops/internal/version.version="+testVersion,
		"-o", hostBin, "./cmd/gitops-bot")
	build.Dir = filepath.Join("..", "..")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/gitops-bot: %v\n%s", err, out)
	}
	otherTarget, _ := platform(other)
	otherBin := writeELF(t, filepath.Join(bins, "other", "gitops-bot"), fakeELF{machine: otherTarget.machine})
	certs := filepath.Join(bins, "ca-certificates.crt")
	if err := os.WriteFile(certs, []byte("-----BEGIN CERTIFICATE-----\ntest\n-----END CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(reg.Close)
	pushRef := strings.TrimPrefix(reg.URL, "http://") + "/kubectl-gitops/gitops-bot:" + testVersion

	out := t.TempDir()
	args := []string{
		"-name", "gitops-bot",
		"-binary", other + "=" + otherBin, "-binary", host + "=" + hostBin,
		"-version", testVersion, "-revision", testRevision,
		"-source", "https://github.com/kubectl-gitops/kubectl-gitops",
		"-created", testCreated,
		"-repository", "ghcr.io/kubectl-gitops/gitops-bot",
		"-ca-certs", certs,
		"-out", out,
		"-push", pushRef,
	}
	var stdout, stderr bytes.Buffer
	// An empty DOCKER_CONFIG keeps the push anonymous, whatever the
	// machine's docker login.
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	if err := run(ctx, args, &stdout, &stderr, func(string) string { return "" }); err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, stderr.String())
	}
	if stderr.Len() > 0 {
		t.Errorf("run wrote to stderr:\n%s", stderr.String())
	}
	printed := map[string][]string{}
	for line := range strings.Lines(stdout.String()) {
		f := strings.Fields(line)
		printed[f[0]] = append(printed[f[0]], strings.Join(f[1:], " "))
	}
	digest := printed["digest"][0]
	wantPrinted := map[string][]string{
		"digest": {digest},
		"layout": {filepath.Join(out, "oci")},
		"tarball": {
			"linux/amd64 " + filepath.Join(out, "gitops-bot-linux-amd64.tar") + " ghcr.io/kubectl-gitops/gitops-bot:" + testVersion,
			"linux/arm64 " + filepath.Join(out, "gitops-bot-linux-arm64.tar") + " ghcr.io/kubectl-gitops/gitops-bot:" + testVersion,
		},
		"pushed": {strings.TrimSuffix(pushRef, ":"+testVersion) + "@" + digest},
	}
	if diff := cmp.Diff(wantPrinted, printed); diff != "" {
		t.Errorf("printed (-want +got):\n%s", diff)
	}

	// The OCI layout holds the index, named by its version.
	lp, err := layout.FromPath(filepath.Join(out, "oci"))
	if err != nil {
		t.Fatal(err)
	}
	top, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	topManifest, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(topManifest.Manifests) != 1 {
		t.Fatalf("index.json has %d manifests, want the image index only", len(topManifest.Manifests))
	}
	if d := topManifest.Manifests[0]; d.Digest.String() != digest || d.MediaType != types.OCIImageIndex || d.Annotations[annotationRefName] != testVersion {
		t.Errorf("index.json has %s %s named %q, want the image index %s named %q", d.MediaType, d.Digest, d.Annotations[annotationRefName], digest, testVersion)
	}
	idx, err := top.ImageIndex(topManifest.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	wantAnnotations := map[string]string{
		"org.opencontainers.image.source":      "https://github.com/kubectl-gitops/kubectl-gitops",
		"org.opencontainers.image.revision":    testRevision,
		"org.opencontainers.image.version":     testVersion,
		"org.opencontainers.image.created":     testCreated,
		"org.opencontainers.image.title":       "gitops-bot",
		"org.opencontainers.image.licenses":    "Apache-2.0",
		"org.opencontainers.image.description": description("gitops-bot"),
	}
	if diff := cmp.Diff(wantAnnotations, im.Annotations); diff != "" {
		t.Errorf("index annotations (-want +got):\n%s", diff)
	}
	var platforms []string
	images := map[string]v1.Image{}
	for _, d := range im.Manifests {
		p := d.Platform.OS + "/" + d.Platform.Architecture
		platforms = append(platforms, p)
		if d.MediaType != types.OCIManifestSchema1 || d.ArtifactType != "" {
			t.Errorf("%s: media type %s and artifact type %q, want %s and none", p, d.MediaType, d.ArtifactType, types.OCIManifestSchema1)
		}
		if images[p], err = idx.Image(d.Digest); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff([]string{"linux/amd64", "linux/arm64"}, platforms); diff != "" {
		t.Fatalf("index platforms (-want +got):\n%s", diff)
	}

	for p, img := range images {
		t.Run(strings.ReplaceAll(p, "/", "-"), func(t *testing.T) {
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if got := cf.OS + "/" + cf.Architecture; got != p {
				t.Errorf("config platform %s, want %s", got, p)
			}
			if want := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC); !cf.Created.Equal(want) {
				t.Errorf("config created %s, want %s", cf.Created, want)
			}
			wantConfig := v1.Config{
				User:       "65532:65532",
				Entrypoint: []string{"/usr/local/bin/gitops-bot"},
				WorkingDir: "/home/nonroot",
				Env: []string{
					"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
					"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
				},
				Labels: wantAnnotations,
			}
			if diff := cmp.Diff(wantConfig, cf.Config); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
			m, err := img.Manifest()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(wantAnnotations, m.Annotations); diff != "" {
				t.Errorf("manifest annotations (-want +got):\n%s", diff)
			}
			if m.Config.MediaType != types.OCIConfigJSON {
				t.Errorf("config media type %s, want %s", m.Config.MediaType, types.OCIConfigJSON)
			}
			for _, l := range m.Layers {
				if l.MediaType != types.OCILayer {
					t.Errorf("layer %s: media type %s, want %s", l.Digest, l.MediaType, types.OCILayer)
				}
			}

			files := extract(t, img)
			var names []string
			for n := range files {
				names = append(names, n)
			}
			slices.Sort(names)
			wantNames := []string{
				"etc", "etc/group", "etc/passwd", "etc/ssl", "etc/ssl/certs", "etc/ssl/certs/ca-certificates.crt",
				"home", "home/nonroot", "tmp",
				"usr", "usr/local", "usr/local/bin", "usr/local/bin/gitops-bot",
			}
			// No shell, no busybox, nothing under /bin or /sbin.
			if diff := cmp.Diff(wantNames, names); diff != "" {
				t.Errorf("files (-want +got):\n%s", diff)
			}
			for _, shell := range []string{"bin/sh", "bin/bash", "bin/busybox", "sbin/nologin"} {
				if _, ok := files[shell]; ok {
					t.Errorf("the image has /%s", shell)
				}
			}
			wantModes := map[string]string{
				"usr/local/bin/gitops-bot": "0755 0:0",
				"etc/passwd":               "0644 0:0",
				"tmp":                      "1777 0:0",
				"home/nonroot":             "0700 65532:65532",
			}
			gotModes := map[string]string{}
			for n := range wantModes {
				h := files[n].hdr
				gotModes[n] = fmt.Sprintf("%04o %d:%d", h.Mode, h.Uid, h.Gid)
				if !h.ModTime.Equal(cf.Created.Time) {
					t.Errorf("%s: mtime %s, want the build time %s", n, h.ModTime, cf.Created.Time)
				}
			}
			if diff := cmp.Diff(wantModes, gotModes); diff != "" {
				t.Errorf("modes and owners (-want +got):\n%s", diff)
			}
			if passwd := string(files["etc/passwd"].data); !strings.Contains(passwd, "\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n") {
				t.Errorf("/etc/passwd has no nonroot user 65532:\n%s", passwd)
			}
			if group := string(files["etc/group"].data); !strings.Contains(group, "\nnonroot:x:65532:\n") {
				t.Errorf("/etc/group has no nonroot group 65532:\n%s", group)
			}

			// docker load reads manifest.json: the tag, the config, the layers.
			tb := filepath.Join(out, "gitops-bot-"+strings.ReplaceAll(p, "/", "-")+".tar")
			tm, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(tb) })
			if err != nil {
				t.Fatal(err)
			}
			if len(tm) != 1 || !slices.Equal(tm[0].RepoTags, []string{"ghcr.io/kubectl-gitops/gitops-bot:" + testVersion}) {
				t.Errorf("tarball manifest.json %+v, want one image tagged ghcr.io/kubectl-gitops/gitops-bot:%s", tm, testVersion)
			}
			tag := name.MustParseReference("ghcr.io/kubectl-gitops/gitops-bot:" + testVersion).(name.Tag)
			timg, err := tarball.ImageFromPath(tb, &tag)
			if err != nil {
				t.Fatal(err)
			}
			sameImage(t, "tarball", img, timg)

			if p != host {
				return
			}
			root := t.TempDir()
			for n, f := range files {
				writeFile(t, root, n, f)
			}
			cmd := exec.CommandContext(ctx, filepath.Join(root, "usr", "local", "bin", "gitops-bot"), "--version")
			cmd.Env = []string{}
			versionOut, err := cmd.Output()
			if err != nil {
				t.Fatalf("gitops-bot --version from the image: %v", err)
			}
			var v struct{ Version, Platform string }
			if err := json.Unmarshal(versionOut, &v); err != nil {
				t.Fatalf("gitops-bot --version printed %q: %v", versionOut, err)
			}
			if v.Version != testVersion || v.Platform != host {
				t.Errorf("gitops-bot --version from the image: version %q on %q, want %q on %q", v.Version, v.Platform, testVersion, host)
			}
		})
	}

	t.Run("reproducible", func(t *testing.T) {
		o := NewOptions()
		o.Name = "gitops-bot"
		o.Binaries = []Binary{{host, hostBin}, {other, otherBin}}
		o.Version, o.Revision = testVersion, testRevision
		o.Created = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
		o.CACerts = certs
		o.Out = t.TempDir()
		if err := o.Complete(); err != nil {
			t.Fatal(err)
		}
		if err := o.Validate(); err != nil {
			t.Fatal(err)
		}
		if got := indexDigest(ctx, t, o); got != digest {
			t.Errorf("a second build of the same inputs has digest %s, want %s", got, digest)
		}
		o.Created = o.Created.Add(time.Hour)
		if got := indexDigest(ctx, t, o); got == digest {
			t.Errorf("a build an hour later has the same digest %s", got)
		}
	})

	t.Run("pushed", func(t *testing.T) {
		ref, err := name.ParseReference(pushRef)
		if err != nil {
			t.Fatal(err)
		}
		pulled, err := remote.Index(ref, remote.WithContext(ctx), remote.WithAuth(authn.Anonymous))
		if err != nil {
			t.Fatal(err)
		}
		if d, err := pulled.Digest(); err != nil || d.String() != digest {
			t.Errorf("pulled index digest %s (%v), want %s", d, err, digest)
		}
		want, err := v1.ParsePlatform(host)
		if err != nil {
			t.Fatal(err)
		}
		img, err := remote.Image(ref, remote.WithContext(ctx), remote.WithPlatform(*want))
		if err != nil {
			t.Fatal(err)
		}
		sameImage(t, "pulled "+host, images[host], img)
	})
}

// indexDigest builds o's index and returns its digest.
func indexDigest(ctx context.Context, t *testing.T, o *Options) string {
	t.Helper()
	idx, err := o.Build(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// sameImage checks that got has want's config and layers.
func sameImage(t *testing.T, what string, want, got v1.Image) {
	t.Helper()
	wantConfig, err := want.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	gotConfig, err := got.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(wantConfig, gotConfig) {
		t.Errorf("%s: config\n%s\nwant\n%s", what, gotConfig, wantConfig)
	}
	wantLayers, gotLayers := layerDigests(t, want), layerDigests(t, got)
	if diff := cmp.Diff(wantLayers, gotLayers); diff != "" {
		t.Errorf("%s: layers (-want +got):\n%s", what, diff)
	}
}

func layerDigests(t *testing.T, img v1.Image) []string {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, d.String())
	}
	return out
}

// imageFile is one entry of an image's filesystem.
type imageFile struct {
	hdr  tar.Header
	data []byte
}

// extract returns the image's flattened filesystem by path.
func extract(t *testing.T, img v1.Image) map[string]imageFile {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	files := map[string]imageFile{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = imageFile{hdr: *h, data: data}
	}
	return files
}

// writeFile writes f under root, with its mode but not its owner.
func writeFile(t *testing.T, root, name string, f imageFile) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(name))
	switch f.hdr.Typeflag {
	case tar.TypeDir:
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	case tar.TypeReg:
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.data, os.FileMode(f.hdr.Mode).Perm()); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("%s: unexpected tar entry type %c", name, f.hdr.Typeflag)
	}
}

// fakeELF describes a minimal ELF file for the checks of checkBinary.
type fakeELF struct {
	machine elf.Machine
	typ     elf.Type  // default ET_EXEC
	osabi   elf.OSABI // default ELFOSABI_NONE
	interp  string    // a PT_INTERP program header if set
}

// writeELF writes a minimal 64-bit little-endian ELF file at path: a header
// and its program headers, enough for debug/elf.
func writeELF(t *testing.T, path string, f fakeELF) string {
	t.Helper()
	if f.typ == 0 {
		f.typ = elf.ET_EXEC
	}
	const ehsize, phentsize = 64, 56
	var progs []elf.Prog64
	dataOff := uint64(ehsize + phentsize)
	if f.interp != "" {
		dataOff += phentsize
		progs = append(progs, elf.Prog64{Type: uint32(elf.PT_INTERP), Flags: uint32(elf.PF_R), Off: dataOff, Filesz: uint64(len(f.interp) + 1), Memsz: uint64(len(f.interp) + 1), Align: 1})
	}
	progs = append(progs, elf.Prog64{Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R | elf.PF_X), Vaddr: 0x400000, Paddr: 0x400000, Filesz: dataOff, Memsz: dataOff, Align: 0x1000})
	hdr := elf.Header64{
		Ident:     [elf.EI_NIDENT]byte{0x7f, 'E', 'L', 'F', byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT), byte(f.osabi)},
		Type:      uint16(f.typ),
		Machine:   uint16(f.machine),
		Version:   uint32(elf.EV_CURRENT),
		Entry:     0x400000,
		Phoff:     ehsize,
		Ehsize:    ehsize,
		Phentsize: phentsize,
		Phnum:     uint16(len(progs)),
		Shentsize: 64,
	}
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.LittleEndian, hdr); err != nil {
		t.Fatal(err)
	}
	if err := binary.Write(&buf, binary.LittleEndian, progs); err != nil {
		t.Fatal(err)
	}
	if f.interp != "" {
		buf.WriteString(f.interp + "\x00")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestValidate checks that each bad input fails with an error naming the
// flag or file and saying what to do.
func TestValidate(t *testing.T) {
	dir := t.TempDir()
	amd64 := writeELF(t, filepath.Join(dir, "amd64"), fakeELF{machine: elf.EM_X86_64})
	arm64 := writeELF(t, filepath.Join(dir, "arm64"), fakeELF{machine: elf.EM_AARCH64})
	dynamic := writeELF(t, filepath.Join(dir, "dynamic"), fakeELF{machine: elf.EM_X86_64, interp: "/lib64/ld-linux-x86-64.so.2"})
	object := writeELF(t, filepath.Join(dir, "object.o"), fakeELF{machine: elf.EM_X86_64, typ: elf.ET_REL})
	freebsd := writeELF(t, filepath.Join(dir, "freebsd"), fakeELF{machine: elf.EM_X86_64, osabi: elf.ELFOSABI_FREEBSD})
	script := filepath.Join(dir, "script")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho hello\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")

	// valid returns Options that pass; each case changes one thing.
	valid := func() *Options {
		o := NewOptions()
		o.Name = "gitops-bot"
		o.Binaries = []Binary{{"linux/amd64", amd64}, {"linux/arm64", arm64}}
		o.Version = "v0.1.0"
		o.Created = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
		o.CACerts = ""
		o.Out = filepath.Join(dir, "out")
		return o
	}
	for _, tc := range []struct {
		name   string
		change func(o *Options)
		want   []string // substrings of the error; none for no error
	}{
		{"valid", func(*Options) {}, nil},
		{"other name with a description", func(o *Options) { o.Name, o.Description = "other", "Other." }, nil},
		{"missing binary", func(o *Options) { o.Binaries[0].Path = missing },
			[]string{"-binary linux/amd64=" + missing, "no such file", "CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build"}},
		{"binary is a folder", func(o *Options) { o.Binaries[0].Path = dir },
			[]string{"-binary linux/amd64=" + dir, "not a regular file"}},
		{"binary is a script", func(o *Options) { o.Binaries[0].Path = script },
			[]string{"-binary linux/amd64=" + script, "not an ELF executable", "CGO_ENABLED=0"}},
		{"binary for another architecture", func(o *Options) { o.Binaries[0].Path = arm64 },
			[]string{"-binary linux/amd64=" + arm64, "EM_AARCH64, not amd64", "GOARCH=amd64"}},
		{"dynamically linked binary", func(o *Options) { o.Binaries[0].Path = dynamic },
			[]string{"-binary linux/amd64=" + dynamic, `dynamically linked (interpreter "/lib64/ld-linux-x86-64.so.2")`, "CGO_ENABLED=0"}},
		{"object file", func(o *Options) { o.Binaries[0].Path = object },
			[]string{"-binary linux/amd64=" + object, "ET_REL, not an executable"}},
		{"binary for another OS", func(o *Options) { o.Binaries[0].Path = freebsd },
			[]string{"-binary linux/amd64=" + freebsd, "ELFOSABI_FREEBSD, not Linux", "GOOS=linux"}},
		{"unknown platform", func(o *Options) { o.Binaries[1].Platform = "linux/riscv64" },
			[]string{"-binary linux/riscv64=" + arm64, `unknown platform "linux/riscv64"`, "use linux/amd64 or linux/arm64"}},
		{"platform without an OS", func(o *Options) { o.Binaries[0].Platform = "amd64" },
			[]string{`unknown platform "amd64"`}},
		{"platform twice", func(o *Options) { o.Binaries[1] = o.Binaries[0] },
			[]string{"-binary linux/amd64 given twice"}},
		{"no binary", func(o *Options) { o.Binaries = nil },
			[]string{"no -binary given", "-binary linux/amd64=PATH"}},
		{"empty name", func(o *Options) { o.Name = "" },
			[]string{"no -name given", "-name gitops-bot"}},
		{"name with a slash", func(o *Options) { o.Name = "bin/gitops-bot" },
			[]string{`-name "bin/gitops-bot" is not a file name`}},
		{"unknown name without a description", func(o *Options) { o.Name = "other" },
			[]string{`none known for -name "other"`, "pass -description"}},
		{"no version", func(o *Options) { o.Version = "" },
			[]string{"no -version given", "-version v0.1.0"}},
		{"version that is no tag", func(o *Options) { o.Version = "v0.1.0+build.1" },
			[]string{`-version "v0.1.0+build.1" do not make an image tag`}},
		{"no build time", func(o *Options) { o.Created = time.Time{} },
			[]string{"no build time", "-created", "SOURCE_DATE_EPOCH"}},
		{"nothing to write", func(o *Options) { o.Out = "" },
			[]string{"nothing to write", "-out", "-push"}},
		{"bad push reference", func(o *Options) { o.Push = "Registry/UPPER" },
			[]string{`-push "Registry/UPPER" is not an image reference`, "registry/repository:tag"}},
		{"unreadable CA certificates", func(o *Options) { o.CACerts = dir },
			[]string{"-ca-certs", "-ca-certs ''"}},
		{"missing CA certificates leave them out", func(o *Options) { o.CACerts = missing }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := valid()
			tc.change(o)
			err := o.Complete()
			if err == nil {
				err = o.Validate()
			}
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Validate: %v, want no error", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate: no error, want one with %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate: %v\nwant it to contain %q", err, w)
				}
			}
		})
	}
}

// TestBuildTime checks where the build time comes from.
func TestBuildTime(t *testing.T) {
	for _, tc := range []struct {
		name, created, epoch string
		want                 time.Time
		wantErr              string
	}{
		{name: "flag", created: "2026-12-01T01:00:00+01:00", want: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)},
		{name: "flag with fractions", created: "2026-12-01T00:00:00.75Z", want: time.Date(2026, 12, 1, 0, 0, 0, 750_000_000, time.UTC)},
		{name: "flag before SOURCE_DATE_EPOCH", created: "2026-12-01T00:00:00Z", epoch: "1", want: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)},
		{name: "SOURCE_DATE_EPOCH", epoch: "1796083200", want: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)},
		{name: "neither", want: time.Time{}},
		{name: "bad flag", created: "2026-12-01", wantErr: `-created "2026-12-01" is not an RFC 3339 time`},
		{name: "bad SOURCE_DATE_EPOCH", epoch: "yesterday", wantErr: `SOURCE_DATE_EPOCH "yesterday" is not a number`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := buildTime(tc.created, tc.epoch)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("buildTime: %v, want an error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(tc.want) {
				t.Errorf("buildTime: %s, want %s", got, tc.want)
			}
		})
	}
}

// TestRun checks the flags that only run reads, with synthetic binaries.
func TestRun(t *testing.T) {
	dir := t.TempDir()
	amd64 := writeELF(t, filepath.Join(dir, "amd64"), fakeELF{machine: elf.EM_X86_64})
	arm64 := writeELF(t, filepath.Join(dir, "arm64"), fakeELF{machine: elf.EM_AARCH64})
	flags := func(extra ...string) []string {
		return append([]string{
			"-name", "kubectl-gitops", "-binary", "linux/amd64=" + amd64, "-binary", "linux/arm64=" + arm64,
			"-version", "v0.1.0", "-ca-certs", "", "-out", t.TempDir(),
		}, extra...)
	}
	for _, tc := range []struct {
		name       string
		args       []string
		env        map[string]string
		wantErr    string
		wantStderr string
	}{
		{name: "SOURCE_DATE_EPOCH", args: flags(), env: map[string]string{"SOURCE_DATE_EPOCH": "1796083200"},
			wantStderr: "warning: no CA certificates (-ca-certs ''): the image cannot verify HTTPS servers\n"},
		{name: "no build time", args: flags(), wantErr: "no build time: pass -created (RFC 3339) or set SOURCE_DATE_EPOCH"},
		{name: "binary without platform", args: flags("-binary", amd64), wantErr: `invalid value "` + amd64 + `" for flag -binary: want PLATFORM=PATH`},
		{name: "positional argument", args: flags("-created", testCreated, "extra"), wantErr: `unexpected arguments ["extra"]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(t.Context(), tc.args, &stdout, &stderr, func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("run: %v, want an error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			if !strings.HasPrefix(stdout.String(), "digest sha256:") {
				t.Errorf("stdout %q, want the digest first", stdout.String())
			}
			if diff := cmp.Diff(tc.wantStderr, stderr.String()); diff != "" {
				t.Errorf("stderr (-want +got):\n%s", diff)
			}
		})
	}
}
