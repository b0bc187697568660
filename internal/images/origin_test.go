package images_test

import (
	"math/rand"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kubectl-gitops/kubectl-gitops/internal/images"
)

func TestOrigin(t *testing.T) {
	f := newFake()
	base, err := random.Image(128, 1, random.WithSource(rand.NewSource(7)))
	if err != nil {
		t.Fatal(err)
	}
	cf, err := base.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg := cf.Config
	cfg.Labels = map[string]string{images.AnnotationSource: "https://example.com/label", images.AnnotationRevision: "label-rev"}
	labelled, err := mutate.Config(base, cfg)
	if err != nil {
		t.Fatal(err)
	}
	annotated := mutate.Annotations(labelled, map[string]string{images.AnnotationSource: "https://github.com/acme/web"}).(v1.Image)
	repo, err := name.NewRepository(fakeHost + "/acme/web")
	if err != nil {
		t.Fatal(err)
	}
	for tag, img := range map[string]v1.Image{"plain": base, "labelled": labelled, "annotated": annotated} {
		if err := remote.Write(repo.Tag(tag), img, remote.WithTransport(f)); err != nil {
			t.Fatal(err)
		}
	}
	s := &images.Scanner{Transport: f}
	for _, tc := range []struct {
		tag  string
		want images.Origin
	}{
		{"plain", images.Origin{}},
		{"labelled", images.Origin{Source: "https://example.com/label", Revision: "label-rev"}},
		{"annotated", images.Origin{Source: "https://github.com/acme/web", Revision: "label-rev"}},
	} {
		got, err := s.Origin(t.Context(), fakeHost+"/acme/web", tc.tag)
		if err != nil || got != tc.want {
			t.Errorf("Origin(%s) = %+v, %v; want %+v", tc.tag, got, err, tc.want)
		}
	}
	if _, err := s.Origin(t.Context(), fakeHost+"/acme/web", "missing"); err == nil {
		t.Error("Origin of a missing tag = nil error")
	}
}
