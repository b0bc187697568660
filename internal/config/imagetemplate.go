package config

import (
	"bytes"
	"strings"
	"text/template"
)

// ImageUpdateData is what an image policy's pullRequest templates (branch,
// title, body, commitMessage) see.
type ImageUpdateData struct {
	// Name is the policy's name, or its group's.
	Name string
	// Image, OldTag and NewTag are those of the first update: the
	// policy's, when the pull request has one. OldTag lists the tags the
	// files held, comma-separated when they disagreed.
	Image, OldTag, NewTag string
	// Updates are every policy the pull request updates.
	Updates []ImageUpdate
}

// ImageUpdate is one policy's update in ImageUpdateData. Source and
// Revision come from the image's OCI annotations (or labels) when it has
// them; in a body they are escaped for markdown.
type ImageUpdate struct {
	Policy, Image, OldTag, NewTag, Digest string
	Source, Revision                      string
}

// sampleImageUpdate is the data templates are checked against.
var sampleImageUpdate = ImageUpdateData{
	Name: "web", Image: "ghcr.io/acme/web", OldTag: "1.0.0", NewTag: "1.1.0",
	Updates: []ImageUpdate{{Policy: "web", Image: "ghcr.io/acme/web", OldTag: "1.0.0", NewTag: "1.1.0",
		Digest: "sha256:0", Source: "https://github.com/acme/web", Revision: "0"}},
}

// RenderImageTemplate executes a pullRequest template with data. A field
// the data lacks is an error. oneLine joins the lines of the result (a
// branch, a title) and trims it.
func RenderImageTemplate(text string, data ImageUpdateData, oneLine bool) (string, error) {
	tmpl, err := template.New("pullRequest").Option("missingkey=error").Parse(text)
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, data); err != nil {
		return "", err
	}
	if !oneLine {
		return b.String(), nil
	}
	return strings.TrimSpace(strings.Join(strings.Fields(b.String()), " ")), nil
}
