package cluster

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubectl-gitops/kubectl-gitops/internal/diff"
)

// DryRunResult is the outcome of the server-side apply dry-run of one object.
type DryRunResult struct {
	// Object is the object as sent.
	Object *unstructured.Unstructured
	// Merged is what the API server would store: the live object with
	// Object applied, or the would-be object when there is none yet,
	// defaults and admission included. Nil when Err is set.
	Merged *unstructured.Unstructured
	// Created reports that the object does not exist yet.
	Created bool
	// Err says why the dry-run failed. A field-manager conflict is a
	// *ConflictError; a kind the cluster does not serve is a *NoKindError.
	// For a Secret, the message never holds its values.
	Err error
}

// DryRun server-side applies each object with DryRun=All and without
// forcing conflicts, at most Options.Concurrency at a time, and returns one
// result per object in the same order. Nothing is persisted. Objects whose
// dry-run did not start before ctx ended carry ctx's error.
func (c *Client) DryRun(ctx context.Context, objs []*unstructured.Unstructured) []DryRunResult {
	res := make([]DryRunResult, len(objs))
	kinds := c.mappings(objs)
	c.forEach(ctx, len(objs), func(ctx context.Context, i int) {
		res[i] = c.dryRun(ctx, objs[i], kinds[objs[i].GroupVersionKind()])
	})
	for i := range res {
		if res[i].Object == nil {
			res[i] = DryRunResult{Object: objs[i], Err: fmt.Errorf("not dry-run: %w", context.Cause(ctx))}
		}
	}
	return res
}

// kindMapping is the REST mapping of one kind, or why there is none.
type kindMapping struct {
	mapping *meta.RESTMapping
	err     error
}

// mappings resolves the REST mapping of each kind in objs once, so that a
// missing CRD resets the discovery cache once rather than once per object.
func (c *Client) mappings(objs []*unstructured.Unstructured) map[schema.GroupVersionKind]kindMapping {
	out := map[schema.GroupVersionKind]kindMapping{}
	for _, obj := range objs {
		gvk := obj.GroupVersionKind()
		if _, ok := out[gvk]; ok {
			continue
		}
		m, err := c.mapping(gvk)
		out[gvk] = kindMapping{mapping: m, err: err}
	}
	return out
}

// dryRun dry-runs one object whose kind maps to km.
func (c *Client) dryRun(ctx context.Context, obj *unstructured.Unstructured, km kindMapping) DryRunResult {
	r := DryRunResult{Object: obj}
	if km.err != nil {
		r.Err = km.err
		return r
	}
	data, err := obj.MarshalJSON()
	if err != nil {
		r.Err = diff.RedactSecretError(obj, fmt.Errorf("encoding the object: %w", err))
		return r
	}
	force := false
	merged, err := c.resourceFor(km.mapping, obj.GetNamespace()).Patch(withObject(ctx, obj), obj.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{
		FieldManager: c.fieldManager,
		DryRun:       []string{metav1.DryRunAll},
		Force:        &force,
	})
	if err != nil {
		if conflict := conflictOf(err); conflict != nil {
			err = conflict
		}
		// The API server or an admission webhook may quote what it
		// refused.
		r.Err = diff.RedactSecretError(obj, err)
		return r
	}
	r.Merged = merged
	// A dry-run create never reaches storage, so the would-be object has
	// no resourceVersion; an existing object always has one.
	r.Created = merged.GetResourceVersion() == ""
	return r
}

// FieldConflict is one field another manager owns with a different value.
type FieldConflict struct {
	// Field is the field path, such as .spec.replicas.
	Field string
	// Manager is the field manager that owns it, such as kubectl-edit.
	Manager string
}

// ConflictError is a server-side apply that would change fields other
// field managers own. Applying with force would take them over.
type ConflictError struct {
	Conflicts []FieldConflict
	Err       error
}

func (e *ConflictError) Error() string {
	var b strings.Builder
	b.WriteString("conflict with other field managers: ")
	for i, fc := range e.Conflicts {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s (managed by %q)", fc.Field, fc.Manager)
	}
	b.WriteString("; set these fields to the live values, or take them over with a forced apply (--force-conflicts)")
	return b.String()
}

func (e *ConflictError) Unwrap() error { return e.Err }

// Managers are the distinct managers in conflict, sorted.
func (e *ConflictError) Managers() []string {
	seen := map[string]bool{}
	var out []string
	for _, fc := range e.Conflicts {
		if !seen[fc.Manager] {
			seen[fc.Manager] = true
			out = append(out, fc.Manager)
		}
	}
	sort.Strings(out)
	return out
}

// conflictManager reads the manager out of a conflict cause's message:
// `conflict with "kubectl-edit" using v1 at 2025-01-01T00:00:00Z`.
var conflictManager = regexp.MustCompile(`^conflict with ("(?:[^"\\]|\\.)*")`)

// conflictOf turns an apply conflict into a *ConflictError, or returns nil.
func conflictOf(err error) *ConflictError {
	var status apierrors.APIStatus
	if !apierrors.IsConflict(err) || !errors.As(err, &status) {
		return nil
	}
	details := status.Status().Details
	if details == nil {
		return nil
	}
	ce := &ConflictError{Err: err}
	for _, cause := range details.Causes {
		if cause.Type != metav1.CauseTypeFieldManagerConflict {
			continue
		}
		manager := "unknown"
		if m := conflictManager.FindStringSubmatch(cause.Message); m != nil {
			if s, err := strconv.Unquote(m[1]); err == nil {
				manager = s
			}
		}
		ce.Conflicts = append(ce.Conflicts, FieldConflict{Field: cause.Field, Manager: manager})
	}
	if len(ce.Conflicts) == 0 {
		return nil
	}
	sort.Slice(ce.Conflicts, func(i, j int) bool {
		a, b := ce.Conflicts[i], ce.Conflicts[j]
		if a.Field != b.Field {
			return a.Field < b.Field
		}
		return a.Manager < b.Manager
	})
	return ce
}
