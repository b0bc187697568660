package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"

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
	return encodeJSON(buf, r)
}

// encodeJSON is the one way the reports write JSON: encoding/json, never
// strings put together, indented for people. HTML is not escaped (<, >
// and & read as themselves; the output is not for a browser), but the
// characters EscapeText quotes and encoding/json leaves raw — DEL, C1
// controls, bidirectional overrides — are written as \u escapes, so the
// output is safe to show on a terminal and decodes to the same strings.
func encodeJSON(buf *bytes.Buffer, v any) error {
	var raw bytes.Buffer
	enc := json.NewEncoder(&raw)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return err
	}
	// encoding/json has escaped the C0 controls in strings; the others are
	// not ASCII but DEL, and outside strings JSON is ASCII and no DEL, so
	// each is inside a string, where a \u escape means the same.
	for s := raw.String(); s != ""; {
		r, size := utf8.DecodeRuneInString(s)
		if r >= 0x7f && unsafeRune(r) {
			fmt.Fprintf(buf, `\u%04x`, r)
		} else {
			buf.WriteString(s[:size])
		}
		s = s[size:]
	}
	return nil
}
