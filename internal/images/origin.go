package images

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
)

// OCI annotation (and label) keys of where an image was built from.
const (
	AnnotationSource   = "org.opencontainers.image.source"
	AnnotationRevision = "org.opencontainers.image.revision"
)

// Origin is where an image says it was built from, for a pull request's
// body: its source repository and revision, from the OCI annotations of its
// manifest (or index), else from the labels of its config. Both may be
// empty. Registries are untrusted: escape them for where they are shown.
type Origin struct {
	Source   string
	Revision string
}

// Origin reads the origin of image:tag, through the scanner's credentials,
// transport and 429 handling.
func (s *Scanner) Origin(ctx context.Context, image, tag string) (Origin, error) {
	s.init()
	repo, err := name.NewRepository(image)
	if err != nil {
		return Origin{}, fmt.Errorf("image %q: %w", image, err)
	}
	c := &session{s: s, repo: repo}
	defer c.release()
	p, err := c.open(ctx)
	if err != nil {
		return Origin{}, err
	}
	d, err := p.Get(ctx, repo.Tag(tag))
	if err != nil {
		return Origin{}, fmt.Errorf("reading %s:%s: %w", image, tag, err)
	}
	var m struct {
		Annotations map[string]string `json:"annotations"`
	}
	if err := json.Unmarshal(d.Manifest, &m); err != nil {
		return Origin{}, fmt.Errorf("reading %s:%s: the manifest is not JSON: %w", image, tag, err)
	}
	o := Origin{Source: m.Annotations[AnnotationSource], Revision: m.Annotations[AnnotationRevision]}
	if o.Source != "" && o.Revision != "" {
		return o, nil
	}
	img, err := d.Image()
	if err != nil {
		return o, nil // an index without a platform image: the annotations are all there is
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return o, nil
	}
	if o.Source == "" {
		o.Source = cf.Config.Labels[AnnotationSource]
	}
	if o.Revision == "" {
		o.Revision = cf.Config.Labels[AnnotationRevision]
	}
	return o, nil
}
