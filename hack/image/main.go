// Command image builds the OCI container images of gitops-bot and
// kubectl-gitops from prebuilt static Linux binaries, without Docker and
// without pulling a base image: an OCI image index with one image per
// platform, written as an OCI layout folder and as a `docker load` tarball per
// platform, and pushed to a registry if asked.
//
//	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -trimpath -o dist/amd64/gitops-bot ./cmd/gitops-bot
//	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 go build -trimpath -o dist/arm64/gitops-bot ./cmd/gitops-bot
//	go run ./hack/image -name gitops-bot \
//	    -binary linux/amd64=dist/amd64/gitops-bot -binary linux/arm64=dist/arm64/gitops-bot \
//	    -version v0.1.0 -revision "$(git rev-parse HEAD)" \
//	    -created "$(git log -1 --format=%cI)" -out dist/image
//
// The same inputs always give the same digests: every timestamp is the build
// time given by -created (or $SOURCE_DATE_EPOCH), and nothing of the build
// machine goes into the image but its CA certificates (see -ca-certs).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

// run parses args into Options, builds and writes the images and prints what
// it wrote to stdout; warnings go to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	o := NewOptions()
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.Name, "name", "", "program name: the binary goes to /usr/local/bin/NAME and is the entrypoint (gitops-bot or kubectl-gitops)")
	fs.Var((*binaryFlag)(&o.Binaries), "binary", "PLATFORM=PATH of a static Linux binary, once per platform (linux/amd64, linux/arm64)")
	fs.StringVar(&o.Version, "version", "", "version: the image tag and the org.opencontainers.image.version label (v0.1.0)")
	fs.StringVar(&o.Revision, "revision", "", "commit the binaries were built from (org.opencontainers.image.revision)")
	fs.StringVar(&o.Source, "source", o.Source, "source repository URL (org.opencontainers.image.source)")
	fs.StringVar(&o.Description, "description", "", "image description (default: one for -name gitops-bot or kubectl-gitops)")
	created := fs.String("created", "", "build time, RFC 3339 (default: $SOURCE_DATE_EPOCH, in seconds since 1970)")
	fs.StringVar(&o.Repository, "repository", "", "repository of the tag in the tarballs (default ghcr.io/kubectl-gitops/NAME)")
	fs.StringVar(&o.CACerts, "ca-certs", o.CACerts, "CA certificate bundle to put in the image if it exists; empty for none")
	fs.StringVar(&o.Out, "out", "", "folder for the OCI layout (OUT/oci, replaced) and the tarballs (OUT/NAME-OS-ARCH.tar)")
	fs.StringVar(&o.Push, "push", "", "also push the index to this reference (registry/repository:tag), with docker's credentials if any")
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q: every input is a flag (see -h)", fs.Args())
	}
	t, err := buildTime(*created, getenv("SOURCE_DATE_EPOCH"))
	if err != nil {
		return err
	}
	o.Created = t
	if err := o.Complete(); err != nil {
		return err
	}
	if err := o.Validate(); err != nil {
		return err
	}
	res, err := o.Run(ctx)
	if err != nil {
		return err
	}
	switch {
	case res.CACerts != "":
	case o.CACerts == "":
		fmt.Fprintln(stderr, "warning: no CA certificates (-ca-certs ''): the image cannot verify HTTPS servers")
	default:
		fmt.Fprintf(stderr, "warning: no CA certificates at %s: the image cannot verify HTTPS servers\n", o.CACerts)
	}
	fmt.Fprintln(stdout, "digest", res.Digest)
	if res.Layout != "" {
		fmt.Fprintln(stdout, "layout", res.Layout)
	}
	for _, t := range res.Tarballs {
		fmt.Fprintln(stdout, "tarball", t.Platform, t.Path, t.Tag)
	}
	if res.Pushed != "" {
		fmt.Fprintln(stdout, "pushed", res.Pushed)
	}
	return nil
}

// binaryFlag collects the repeated -binary PLATFORM=PATH flags.
type binaryFlag []Binary

func (b *binaryFlag) String() string {
	if b == nil {
		return ""
	}
	var parts []string
	for _, x := range *b {
		parts = append(parts, x.Platform+"="+x.Path)
	}
	return strings.Join(parts, ",")
}

func (b *binaryFlag) Set(s string) error {
	platform, path, ok := strings.Cut(s, "=")
	if !ok || platform == "" || path == "" {
		return fmt.Errorf("want PLATFORM=PATH, like linux/amd64=dist/amd64/gitops-bot")
	}
	*b = append(*b, Binary{Platform: platform, Path: path})
	return nil
}
