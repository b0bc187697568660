package diff

import (
	"encoding/base64"
	"encoding/json"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// minRedacted is the shortest value a Redactor replaces: shorter ones would
// garble every message and protect nothing.
const minRedacted = 4

// secretFields are the fields of a Secret that hold its values. Masking (in
// a diff) and redaction (in text) cover the same ones, and the
// last-applied-configuration annotation, which holds them all again.
var secretFields = []string{"data", "stringData"}

// Redactor keeps the values of Secrets out of text that is about to be
// shown: API errors (the API server or an admission webhook may quote what
// it refused), warnings, Helm's errors and the values of a Helm release.
// Each occurrence of a value is replaced by Mask. The zero value redacts
// nothing; a nil *Redactor neither.
type Redactor struct {
	values []string // longest first, so a value containing another goes whole
	seen   map[string]bool
}

// NewRedactor returns a Redactor for the values of the core v1 Secrets
// among objs (other objects and nil add nothing):
//
//   - each value of data as written (base64), decoded, and encoded again;
//   - each value of stringData as written and base64-encoded;
//   - the last-applied-configuration annotation whole, and the data and
//     stringData values of the object it records.
//
// Every form is also redacted as it appears inside a quoted Go or JSON
// string (with its escapes), since API errors quote the values they cite.
func NewRedactor(objs ...*unstructured.Unstructured) *Redactor {
	r := &Redactor{}
	for _, obj := range objs {
		if !isSecret(obj) {
			continue
		}
		r.addSecret(obj.Object)
		if s, ok := annotations(obj.Object)[LastAppliedAnnotation].(string); ok {
			r.Add(s)
			var last map[string]any
			if json.Unmarshal([]byte(s), &last) == nil {
				r.addSecret(last)
			}
		}
	}
	return r
}

// addSecret adds the values of data and stringData of a Secret's fields.
func (r *Redactor) addSecret(obj map[string]any) {
	for _, f := range secretFields {
		m, _ := obj[f].(map[string]any)
		for _, v := range m {
			if s, ok := v.(string); ok {
				r.Add(s)
			}
		}
	}
}

// Add adds values to redact, each as it is, base64-encoded, and decoded
// when it is base64. Values shorter than four bytes are left alone.
func (r *Redactor) Add(values ...string) {
	for _, v := range values {
		r.add(v)
		r.add(base64.StdEncoding.EncodeToString([]byte(v)))
		if dec, err := base64.StdEncoding.DecodeString(v); err == nil {
			r.add(string(dec))
		}
	}
	sort.SliceStable(r.values, func(i, j int) bool { return len(r.values[i]) > len(r.values[j]) })
}

// add adds one form of a value, and its quoted forms when they differ.
func (r *Redactor) add(v string) {
	if len(v) < minRedacted {
		return
	}
	if r.seen == nil {
		r.seen = map[string]bool{}
	}
	forms := []string{v, unquoted(strconv.Quote(v))}
	if j, err := json.Marshal(v); err == nil {
		forms = append(forms, unquoted(string(j)))
	}
	for _, f := range forms {
		if !r.seen[f] {
			r.seen[f] = true
			r.values = append(r.values, f)
		}
	}
}

func unquoted(q string) string { return q[1 : len(q)-1] }

// Text returns s with every value replaced by Mask.
func (r *Redactor) Text(s string) string {
	if r == nil {
		return s
	}
	for _, v := range r.values {
		s = strings.ReplaceAll(s, v, Mask)
	}
	return s
}

// Error returns err with every value replaced by Mask in its message. The
// result still unwraps to err, so errors.Is and errors.As see through it;
// err itself is returned when its message holds no value.
func (r *Redactor) Error(err error) error {
	if err == nil || r == nil {
		return err
	}
	msg := err.Error()
	if red := r.Text(msg); red != msg {
		return &redactedError{msg: red, err: err}
	}
	return err
}

// RedactSecretText returns msg with the values of obj replaced by Mask
// when obj is a core v1 Secret (see NewRedactor).
func RedactSecretText(obj *unstructured.Unstructured, msg string) string {
	return NewRedactor(obj).Text(msg)
}

// RedactSecretError returns err with the values of obj replaced by Mask in
// its message when obj is a core v1 Secret (see Redactor.Error).
func RedactSecretError(obj *unstructured.Unstructured, err error) error {
	return NewRedactor(obj).Error(err)
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
