package diff

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// redactCanary is a Secret value that must never survive redaction, in
// any of its forms.
const redactCanary = "CANARY-d4t4-7f3a"

// forms are the ways a value may appear in a message: as it is, base64,
// and quoted as API errors quote values.
func forms(v string) []string {
	q := strconv.Quote(v)
	return []string{v, b64(v), q[1 : len(q)-1]}
}

// lastApplied records obj as kubectl apply does, in its
// last-applied-configuration annotation.
func lastApplied(t *testing.T, obj, recorded *unstructured.Unstructured) *unstructured.Unstructured {
	t.Helper()
	j, err := json.Marshal(recorded.Object)
	if err != nil {
		t.Fatal(err)
	}
	obj.SetAnnotations(map[string]string{LastAppliedAnnotation: string(j)})
	return obj
}

func TestRedactor(t *testing.T) {
	secretOf := func(field, value string) *unstructured.Unstructured {
		return obj(t, "apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: shop}\n"+field+": {password: "+strconv.Quote(value)+"}\n")
	}
	tests := []struct {
		name string
		obj  *unstructured.Unstructured
		// secrets are the values whose every form must go; kept must stay.
		secrets, kept []string
	}{
		{
			name:    "data: as written, decoded and encoded again",
			obj:     secretOf("data", b64(redactCanary)),
			secrets: append(forms(redactCanary), b64(b64(redactCanary))),
		},
		{
			name:    "stringData: as written and base64-encoded",
			obj:     secretOf("stringData", redactCanary),
			secrets: forms(redactCanary),
		},
		{
			name: "the last-applied annotation and the values it records",
			obj: lastApplied(t, secretOf("data", b64("current-value")),
				secretOf("stringData", redactCanary+"-old")),
			secrets: append(forms(redactCanary+"-old"), "current-value"),
		},
		{
			name:    "values quoted with escapes",
			obj:     secretOf("stringData", `CANARY-"quoted"-7f3a`),
			secrets: forms(`CANARY-"quoted"-7f3a`),
		},
		{
			name: "values shorter than four bytes stay",
			obj:  secretOf("stringData", "abc"),
			kept: []string{"abc"},
		},
		{
			name: "a ConfigMap is not redacted",
			obj:  obj(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: db}\ndata: {password: "+redactCanary+"}\n"),
			kept: []string{redactCanary},
		},
		{
			name: "a Secret of another group is not redacted",
			obj:  obj(t, "apiVersion: example.com/v1\nkind: Secret\nmetadata: {name: db}\ndata: {password: "+redactCanary+"}\n"),
			kept: []string{redactCanary},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := fmt.Sprintf(`Secret "db" is invalid: %q; raw %s`, strings.Join(tt.secrets, ", "), strings.Join(append(tt.secrets, tt.kept...), " "))
			got := RedactSecretText(tt.obj, msg)
			for _, s := range tt.secrets {
				if strings.Contains(got, s) {
					t.Errorf("redacted text holds %q: %s", s, got)
				}
			}
			for _, s := range tt.kept {
				if !strings.Contains(got, s) {
					t.Errorf("redacted text lost %q: %s", s, got)
				}
			}
			if len(tt.secrets) > 0 && !strings.Contains(got, Mask) {
				t.Errorf("redacted text shows no mask: %s", got)
			}
			if e := RedactSecretError(tt.obj, errors.New(msg)); e.Error() != got {
				t.Errorf("RedactSecretError = %q, want %q", e, got)
			}
		})
	}
}

// TestRedactSecretError: the redacted error still unwraps to the original;
// nil stays nil and an error that quotes nothing is returned as it is.
func TestRedactSecretError(t *testing.T) {
	s := secret(t, "db", map[string]string{"k": b64(redactCanary)}, nil)
	cause := errors.New("refused " + redactCanary)
	err := RedactSecretError(s, fmt.Errorf("apply: %w", cause))
	if strings.Contains(err.Error(), redactCanary) || !errors.Is(err, cause) {
		t.Errorf("RedactSecretError = %v (unwraps to the cause: %v)", err, errors.Is(err, cause))
	}
	if RedactSecretError(s, nil) != nil {
		t.Error("RedactSecretError(nil) is not nil")
	}
	if plain := errors.New("not found"); RedactSecretError(s, plain) != plain {
		t.Error("an error quoting no value was wrapped")
	}
	var r *Redactor
	if r.Text(redactCanary) != redactCanary || r.Error(cause) != cause {
		t.Error("a nil Redactor changed its input")
	}
}

// TestRedactorSeveralSecrets: one Redactor covers the values of every
// Secret it is given, and values added by hand.
func TestRedactorSeveralSecrets(t *testing.T) {
	r := NewRedactor(
		secret(t, "a", map[string]string{"k": b64(redactCanary + "-a")}, nil),
		nil,
		cm(t, "shop", "c", "not-a-secret"),
		secret(t, "b", nil, map[string]string{"p": redactCanary + "-b"}),
	)
	r.Add(redactCanary + "-added")
	got := r.Text("a=" + redactCanary + "-a b=" + b64(redactCanary+"-b") + " added=" + redactCanary + "-added cm=not-a-secret")
	if want := "a=*** b=*** added=*** cm=not-a-secret"; got != want {
		t.Errorf("Text = %q, want %q", got, want)
	}
}

// TestApplyErrorsNeverEchoSecretValues: an API error quoting a Secret's
// values, as written and decoded, loses them.
func TestApplyErrorsNeverEchoSecretValues(t *testing.T) {
	secret := obj(t, "apiVersion: v1\nkind: Secret\nmetadata: {name: creds, namespace: ns}\n")
	secret.Object["data"] = map[string]any{"password": "c2VjcmV0LXZhbHVlLTQy"} // secret-value-42
	secret.Object["stringData"] = map[string]any{"token": "tok-123456"}
	msg := RedactSecretText(secret, `Secret "creds" is invalid: data[password]: Invalid value: "secret-value-42", token tok-123456, raw c2VjcmV0LXZhbHVlLTQy`)
	for _, v := range []string{"secret-value-42", "tok-123456", "c2VjcmV0LXZhbHVlLTQy"} {
		if strings.Contains(msg, v) {
			t.Errorf("masked message still holds %q: %s", v, msg)
		}
	}
}
