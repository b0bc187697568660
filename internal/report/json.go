package report

import (
	"bytes"
	"encoding/json"

	"github.com/kubectl-gitops/kubectl-gitops/internal/diff"
)

// The JSON schema is a contract with scripts: add fields, never rename or
// remove them.
type jsonReport struct {
	Summary jsonSummary  `json:"summary"`
	Changes []jsonChange `json:"changes"`
}

type jsonSummary struct {
	Created    int `json:"created"`
	Configured int `json:"configured"`
	Deleted    int `json:"deleted"`
	Unchanged  int `json:"unchanged"`
}

type jsonChange struct {
	Group     string `json:"group"`
	Version   string `json:"version"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Action    string `json:"action"`
	Diff      string `json:"diff,omitempty"`
	Message   string `json:"message,omitempty"`
}

func writeJSON(buf *bytes.Buffer, cs *diff.ChangeSet) error {
	s := cs.Summary()
	r := jsonReport{
		Summary: jsonSummary(s),
		Changes: make([]jsonChange, 0, len(cs.Changes)),
	}
	for _, c := range cs.Changes {
		r.Changes = append(r.Changes, jsonChange{
			Group:     c.Ref.Group,
			Version:   c.Ref.Version,
			Kind:      c.Ref.Kind,
			Namespace: c.Ref.Namespace,
			Name:      c.Ref.Name,
			Action:    string(c.Action),
			Diff:      c.Diff,
			Message:   c.Message,
		})
	}
	enc := json.NewEncoder(buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(r)
}
