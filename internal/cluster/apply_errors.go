package cluster

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-gitops/kubectl-gitops/internal/diff"
)

// isImmutable reports whether err says a field may not change.
func isImmutable(err error) bool {
	if !apierrors.IsInvalid(err) {
		return false
	}
	msg := strings.ToLower(err.Error())
	for _, s := range []string{"immutable", "may not change once set", "cannot change", "updates to statefulset spec for fields other than"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// immutableError names the object and the immutable fields, and says how to
// go on.
func immutableError(it *item, err error) error {
	var fields []string
	var st apierrors.APIStatus
	if errors.As(err, &st) && st.Status().Details != nil {
		for _, c := range st.Status().Details.Causes {
			if c.Field != "" && !slices.Contains(fields, c.Field) {
				fields = append(fields, c.Field)
			}
		}
	}
	what := "an immutable field"
	if len(fields) > 0 {
		what = "immutable field " + strings.Join(fields, ", ")
	}
	return &objectError{Ref: it.ref, Err: err, msg: fmt.Sprintf("cannot change %s (%s); re-run with --force to delete and recreate the object",
		what, diff.RedactSecretText(it.obj, statusMessage(err)))}
}

// describe turns an API error into a message that names the object and says
// what to do, with Secret values masked.
func describe(it *item, err error) error {
	var st apierrors.APIStatus
	msg := diff.RedactSecretText(it.obj, err.Error())
	switch {
	case apierrors.IsConflict(err) && errors.As(err, &st) && hasCause(st.Status(), metav1.CauseTypeFieldManagerConflict):
		msg = diff.RedactSecretText(it.obj, statusMessage(err)) + "; another field manager owns these fields: re-run with --force-conflicts to take them over"
	case apierrors.IsForbidden(err):
		msg += "; check your RBAC permissions for this kind and namespace"
	case apierrors.IsNotFound(err) && it.namespaced:
		msg += fmt.Sprintf("; does namespace %s exist? Add a Namespace object to the app", it.ref.Namespace)
	case isUnreachable(err):
		msg = "the API server did not answer: " + msg
	}
	return &objectError{Ref: it.ref, Err: err, msg: msg}
}

// objectError is a failure of one object. Its message never carries a
// Secret's values.
type objectError struct {
	Ref diff.Ref
	Err error
	msg string
}

func (e *objectError) Error() string { return e.msg }

func (e *objectError) Unwrap() error { return e.Err }

func statusMessage(err error) string {
	var st apierrors.APIStatus
	if errors.As(err, &st) && st.Status().Message != "" {
		return st.Status().Message
	}
	return err.Error()
}

func hasCause(st metav1.Status, t metav1.CauseType) bool {
	if st.Details == nil {
		return false
	}
	for _, c := range st.Details.Causes {
		if c.Type == t {
			return true
		}
	}
	return false
}
