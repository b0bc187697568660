package main

import (
	"archive/tar"
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image's user: distroless's nonroot, so the same numeric ids work with
// runAsUser/runAsGroup in deploy/base and with runAsNonRoot, which needs a
// numeric User.
const (
	uid        = 65532
	userName   = "nonroot"
	home       = "/home/nonroot"
	binDir     = "/usr/local/bin"
	caCertFile = "/etc/ssl/certs/ca-certificates.crt"
	pathEnv    = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// The OCI annotation keys the images carry as labels and annotations.
const (
	annotationCreated     = "org.opencontainers.image.created"
	annotationSource      = "org.opencontainers.image.source"
	annotationRevision    = "org.opencontainers.image.revision"
	annotationVersion     = "org.opencontainers.image.version"
	annotationTitle       = "org.opencontainers.image.title"
	annotationLicenses    = "org.opencontainers.image.licenses"
	annotationDescription = "org.opencontainers.image.description"
	annotationRefName     = "org.opencontainers.image.ref.name"
)

// Binary is the program's static executable for one platform.
type Binary struct {
	Platform string // os/arch, like linux/arm64
	Path     string
}

// Options is one image build: what goes into the images and where they go.
type Options struct {
	// Name is the program's name: its path is /usr/local/bin/<Name>.
	Name string
	// Binaries has one static Linux executable per platform.
	Binaries []Binary
	// Version tags the image; Revision, Source and Description only label it.
	Version, Revision, Source, Description string
	// Repository is the tarballs' tag without the version.
	Repository string
	// Created is the build time: every timestamp in the image.
	Created time.Time
	// CACerts is the certificate bundle to copy into the image if it exists.
	CACerts string
	// Out is the folder of the OCI layout and the tarballs; empty for none.
	Out string
	// Push is the reference to push the index to; empty for none.
	Push string
	// Keychain finds the credentials for Push.
	Keychain authn.Keychain

	tag   name.Tag       // Repository:Version, set by Validate
	push  name.Reference // Push, set by Validate
	certs []byte         // CACerts' content, read by Validate
}

// NewOptions returns Options with the defaults of the flags.
func NewOptions() *Options {
	return &Options{
		Source:   "https://github.com/kubectl-gitops/kubectl-gitops",
		CACerts:  caCertFile,
		Keychain: authn.DefaultKeychain,
	}
}

// Complete fills what follows from the name (the repository, the
// description), rounds the build time to seconds and sorts the binaries by
// platform, the order of the index.
func (o *Options) Complete() error {
	if o.Repository == "" && o.Name != "" {
		o.Repository = "ghcr.io/kubectl-gitops/" + o.Name
	}
	if o.Description == "" {
		o.Description = description(o.Name)
	}
	// Tar headers hold whole seconds; so does every other timestamp.
	o.Created = o.Created.UTC().Truncate(time.Second)
	if o.Keychain == nil {
		o.Keychain = authn.DefaultKeychain
	}
	slices.SortFunc(o.Binaries, func(a, b Binary) int { return cmp.Compare(a.Platform, b.Platform) })
	return nil
}

// description returns the default description of the named program.
func description(name string) string {
	switch name {
	case "gitops-bot":
		return "gitops-bot: previews GitHub and GitLab pull requests of a GitOps repository against the live cluster, gates them on approvals and applies them."
	case "kubectl-gitops":
		return "kubectl gitops: render, diff and apply the manifests of a Git tree."
	}
	return ""
}

// Validate checks every input, binaries included, so that Run fails only on
// writing or pushing, and keeps what it parsed and read for Run.
func (o *Options) Validate() error {
	if o.Name == "" {
		return errors.New("no -name given: pass the program's name, like -name gitops-bot")
	}
	if strings.ContainsAny(o.Name, `/\`) || o.Name == "." || o.Name == ".." {
		return fmt.Errorf("-name %q is not a file name: pass the program's name, like -name gitops-bot", o.Name)
	}
	if o.Description == "" {
		return fmt.Errorf("no -description given and none known for -name %q: pass -description", o.Name)
	}
	if len(o.Binaries) == 0 {
		return errors.New("no -binary given: pass -binary linux/amd64=PATH and -binary linux/arm64=PATH")
	}
	for i, b := range o.Binaries {
		if i > 0 && o.Binaries[i-1].Platform == b.Platform {
			return fmt.Errorf("-binary %s given twice: pass one binary per platform", b.Platform)
		}
		p, ok := platform(b.Platform)
		if !ok {
			return fmt.Errorf("-binary %s=%s: unknown platform %q: use linux/amd64 or linux/arm64", b.Platform, b.Path, b.Platform)
		}
		if err := checkBinary(b.Path, p); err != nil {
			return fmt.Errorf("-binary %s=%s: %w", b.Platform, b.Path, err)
		}
	}
	if o.Version == "" {
		return errors.New("no -version given: pass the release's version, like -version v0.1.0")
	}
	if o.Created.IsZero() {
		return errors.New("no build time: pass -created (RFC 3339) or set SOURCE_DATE_EPOCH, like -created \"$(git log -1 --format=%cI)\"")
	}
	tag, err := name.NewTag(o.Repository+":"+o.Version, name.StrictValidation)
	if err != nil {
		return fmt.Errorf("-repository %q and -version %q do not make an image tag: %w", o.Repository, o.Version, err)
	}
	o.tag = tag
	if o.Out == "" && o.Push == "" {
		return errors.New("nothing to write: pass -out FOLDER, -push REFERENCE or both")
	}
	if o.Push != "" {
		ref, err := name.ParseReference(o.Push)
		if err != nil {
			return fmt.Errorf("-push %q is not an image reference: %w; pass registry/repository:tag", o.Push, err)
		}
		o.push = ref
	}
	o.certs = nil
	if o.CACerts != "" {
		// The bot calls the GitHub and GitLab APIs over HTTPS, and Go (and
		// git) verify their certificates against the system's roots: an
		// image with no roots fails every call with "certificate signed by
		// unknown authority". The bundle is the build machine's, so it is an
		// input of the build like the binaries.
		certs, err := os.ReadFile(o.CACerts)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return fmt.Errorf("-ca-certs: %w; pass -ca-certs '' to build an image without CA certificates", err)
		default:
			o.certs = certs
		}
	}
	return nil
}

// Result is what Run built and wrote.
type Result struct {
	// Index is the multi-platform image index.
	Index v1.ImageIndex
	// Digest is the index's digest.
	Digest v1.Hash
	// Layout is the OCI layout folder, if written.
	Layout string
	// Tarballs are the `docker load` tarballs, one per platform, if written.
	Tarballs []Tarball
	// Pushed is the pushed reference with its digest, if pushed.
	Pushed string
	// CACerts is where the image's CA certificates came from; empty if it
	// has none.
	CACerts string
}

// Tarball is one platform's `docker load` tarball.
type Tarball struct {
	Platform string
	Path     string
	Tag      string
}

// Run builds the index and writes and pushes it as asked. Call Complete and
// Validate first.
func (o *Options) Run(ctx context.Context) (Result, error) {
	idx, err := o.Build(ctx)
	if err != nil {
		return Result{}, err
	}
	res := Result{Index: idx}
	if res.Digest, err = idx.Digest(); err != nil {
		return Result{}, err
	}
	if o.certs != nil {
		res.CACerts = o.CACerts
	}
	if o.Out != "" {
		if res.Layout, err = o.writeLayout(idx); err != nil {
			return Result{}, err
		}
		if res.Tarballs, err = o.writeTarballs(ctx, idx); err != nil {
			return Result{}, err
		}
	}
	if o.push != nil {
		if err := remote.WriteIndex(o.push, idx, remote.WithContext(ctx), remote.WithAuthFromKeychain(o.Keychain)); err != nil {
			return Result{}, fmt.Errorf("push to %s: %w; check the registry's address and `docker login`", o.push, err)
		}
		res.Pushed = o.push.Context().Digest(res.Digest.String()).String()
	}
	return res, nil
}

// Build returns the image index, one image per binary, without writing
// anything.
func (o *Options) Build(ctx context.Context) (v1.ImageIndex, error) {
	base, err := o.baseLayer()
	if err != nil {
		return nil, err
	}
	annotations := o.annotations()
	var adds []mutate.IndexAddendum
	for _, b := range o.Binaries {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p, _ := platform(b.Platform)
		img, err := o.image(base, b, p.platform, annotations)
		if err != nil {
			return nil, err
		}
		adds = append(adds, mutate.IndexAddendum{Add: plainImage{img}, Descriptor: v1.Descriptor{Platform: &p.platform}})
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	idx = mutate.AppendManifests(idx, adds...)
	return mutate.Annotations(idx, annotations).(v1.ImageIndex), nil
}

// plainImage is an image whose index descriptor has no artifactType:
// go-containerregistry would set the config's media type there, which the
// image spec keeps for artifacts and `docker buildx` does not write.
type plainImage struct{ v1.Image }

// ArtifactType is the one partial.Descriptor asks for.
func (plainImage) ArtifactType() (string, error) { return "", nil }

// annotations returns the OCI annotations of the index and of each image,
// which are also the images' labels.
func (o *Options) annotations() map[string]string {
	a := map[string]string{
		annotationCreated:     o.Created.UTC().Format(time.RFC3339),
		annotationVersion:     o.Version,
		annotationTitle:       o.Name,
		annotationLicenses:    "Apache-2.0",
		annotationDescription: o.Description,
	}
	if o.Source != "" {
		a[annotationSource] = o.Source
	}
	if o.Revision != "" {
		a[annotationRevision] = o.Revision
	}
	return a
}

// image returns the image of one platform: the base layer, then the binary.
func (o *Options) image(base v1.Layer, b Binary, p v1.Platform, annotations map[string]string) (v1.Image, error) {
	bin, err := os.ReadFile(b.Path)
	if err != nil {
		return nil, fmt.Errorf("-binary %s=%s: %w", b.Platform, b.Path, err)
	}
	exe := path.Join(binDir, o.Name)
	binLayer, err := o.layer([]entry{
		dir("usr/", 0, 0o755), dir("usr/local/", 0, 0o755), dir("usr/local/bin/", 0, 0o755),
		file(exe[1:], 0o755, bin),
	})
	if err != nil {
		return nil, err
	}
	env := []string{pathEnv}
	if o.certs != nil {
		env = append(env, "SSL_CERT_FILE="+caCertFile)
	}
	created := v1.Time{Time: o.Created.UTC()}
	cfg := &v1.ConfigFile{
		Architecture: p.Architecture,
		OS:           p.OS,
		Variant:      p.Variant,
		Created:      created,
		Config: v1.Config{
			User:       strconv.Itoa(uid) + ":" + strconv.Itoa(uid),
			Entrypoint: []string{exe},
			WorkingDir: home,
			Env:        env,
			Labels:     annotations,
		},
		RootFS: v1.RootFS{Type: "layers"},
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, err
	}
	files := "/etc/passwd, /etc/group, " + home + ", /tmp"
	if o.certs != nil {
		files += ", " + caCertFile
	}
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, History: v1.History{Created: created, CreatedBy: "hack/image: " + files}},
		mutate.Addendum{Layer: binLayer, History: v1.History{Created: created, CreatedBy: "hack/image: " + exe}},
	)
	if err != nil {
		return nil, err
	}
	return mutate.Annotations(img, annotations).(v1.Image), nil
}

// baseLayer returns the files every platform's image shares. There is no
// shell or other program: /sbin/nologin, the user's shell, does not exist.
func (o *Options) baseLayer() (v1.Layer, error) {
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\n%s:x:%d:%d:%s:%s:/sbin/nologin\n", userName, uid, uid, userName, home)
	group := fmt.Sprintf("root:x:0:\n%s:x:%d:\n", userName, uid)
	entries := []entry{
		dir("etc/", 0, 0o755),
		file("etc/group", 0o644, []byte(group)),
		file("etc/passwd", 0o644, []byte(passwd)),
		dir("home/", 0, 0o755),
		dir("home/nonroot/", uid, 0o700),
		dir("tmp/", 0, 0o1777),
	}
	if o.certs != nil {
		entries = append(entries,
			dir("etc/ssl/", 0, 0o755),
			dir("etc/ssl/certs/", 0, 0o755),
			file(caCertFile[1:], 0o644, o.certs),
		)
	}
	return o.layer(entries)
}

// entry is one file or folder of a layer.
type entry struct {
	hdr  tar.Header
	data []byte
}

func dir(name string, owner, mode int) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: int64(mode), Uid: owner, Gid: owner}}
}

func file(name string, mode int, data []byte) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: int64(mode), Size: int64(len(data))}, data: data}
}

// layer returns a gzipped layer of entries, sorted by name, all with the
// build time: the same entries always give the same digest.
func (o *Options) layer(entries []entry) (v1.Layer, error) {
	slices.SortFunc(entries, func(a, b entry) int { return cmp.Compare(a.hdr.Name, b.hdr.Name) })
	var buf bytes.Buffer
	// gzip's header has no time or name unless set, and the compressor's
	// output depends only on its input and level.
	zw, err := gzip.NewWriterLevel(&buf, gzip.DefaultCompression)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(zw)
	mtime := o.Created.UTC()
	for _, e := range entries {
		hdr := e.hdr
		hdr.ModTime = mtime
		hdr.Format = tar.FormatPAX
		if hdr.Uid == uid {
			hdr.Uname, hdr.Gname = userName, userName
		} else {
			hdr.Uname, hdr.Gname = "root", "root"
		}
		if err := tw.WriteHeader(&hdr); err != nil {
			return nil, fmt.Errorf("write %s to a layer: %w", hdr.Name, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("write %s to a layer: %w", hdr.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	gz := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(gz)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// writeLayout writes idx as an OCI layout in Out/oci, replacing what an
// earlier run left there, so that index.json has this index only.
func (o *Options) writeLayout(idx v1.ImageIndex) (string, error) {
	dir := filepath.Join(o.Out, "oci")
	if err := os.RemoveAll(dir); err != nil {
		return "", fmt.Errorf("replace the OCI layout: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("write the OCI layout: %w", err)
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return "", fmt.Errorf("write the OCI layout: %w", err)
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{annotationRefName: o.Version})); err != nil {
		return "", fmt.Errorf("write the OCI layout: %w", err)
	}
	return dir, nil
}

// writeTarballs writes one `docker load` tarball per platform, tagged
// Repository:Version: Docker's tarball format holds no index.
func (o *Options) writeTarballs(ctx context.Context, idx v1.ImageIndex) ([]Tarball, error) {
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var out []Tarball
	for _, d := range m.Manifests {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			return nil, err
		}
		p := d.Platform.OS + "/" + d.Platform.Architecture
		file := filepath.Join(o.Out, o.Name+"-"+d.Platform.OS+"-"+d.Platform.Architecture+".tar")
		if err := tarball.WriteToFile(file, o.tag, img); err != nil {
			return nil, fmt.Errorf("write the %s tarball: %w", p, err)
		}
		out = append(out, Tarball{Platform: p, Path: file, Tag: o.tag.String()})
	}
	return out, nil
}

// buildTime returns the build time from -created (RFC 3339), else from
// SOURCE_DATE_EPOCH (seconds since 1970), else the zero time.
func buildTime(created, sourceDateEpoch string) (time.Time, error) {
	if created != "" {
		t, err := time.Parse(time.RFC3339, created)
		if err != nil {
			return time.Time{}, fmt.Errorf("-created %q is not an RFC 3339 time: pass one like 2026-12-01T00:00:00Z", created)
		}
		return t.UTC(), nil
	}
	if sourceDateEpoch != "" {
		s, err := strconv.ParseInt(sourceDateEpoch, 10, 64)
		if err != nil || s < 0 {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q is not a number of seconds since 1970: set it like SOURCE_DATE_EPOCH=$(git log -1 --format=%%ct)", sourceDateEpoch)
		}
		return time.Unix(s, 0).UTC(), nil
	}
	return time.Time{}, nil
}
