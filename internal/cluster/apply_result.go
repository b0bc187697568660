package cluster

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kubectl-gitops/kubectl-gitops/internal/diff"
)

// ObjectResult is what Apply did with one object.
type ObjectResult struct {
	Ref diff.Ref
	// Action is Created, Configured or Unchanged for applied objects and
	// Deleted for pruned ones; empty when nothing was done.
	Action diff.Action
	// Recreated says a change of an immutable field was applied by
	// deleting and creating the object (Force).
	Recreated bool
	// Skipped says why an inventory member left the set but was not
	// pruned.
	Skipped string
	// Unvalidated says a dry run could not ask the server about the object
	// because its namespace or kind is created by the same apply.
	Unvalidated string
	// Attempted is false for objects that were never sent because the
	// apply stopped first (the API server went away, or ctx ended).
	Attempted bool
	// Err is why the object failed.
	Err error
	// Warnings are the API server's warnings for the request.
	Warnings []string
	// DryRun says the result comes from a server-side dry run.
	DryRun bool

	// live is the object as the API server returned it.
	live *unstructured.Unstructured
}

// Line is the object's progress line, in kubectl's words:
// "deployment.apps/web serverside-applied", "configmap/settings unchanged",
// "secret/old pruned".
func (r ObjectResult) Line() string {
	var verb string
	switch {
	case r.Err != nil:
		verb = "failed: " + r.Err.Error()
	case r.Skipped != "":
		verb = "not pruned: " + r.Skipped
	case r.Action == diff.Deleted:
		verb = "pruned"
	case r.Recreated:
		verb = "recreated"
	case r.Action == diff.Unchanged:
		verb = "unchanged"
	case r.Action == diff.Created || r.Action == diff.Configured:
		verb = "serverside-applied"
	default:
		verb = "not attempted"
	}
	if r.Unvalidated != "" {
		verb += " (not validated: " + r.Unvalidated + ")"
	}
	if r.DryRun {
		verb += " (server dry run)"
	}
	return r.Ref.KubectlName() + " " + verb
}

// ApplyResult is the outcome of Apply.
type ApplyResult struct {
	// Objects are the results of the set, in the order they were staged.
	Objects []ObjectResult
	// Pruned are the inventory members that left the set: deleted, skipped
	// or failed.
	Pruned []ObjectResult
	// Wait holds the last status of each waited-for object.
	Wait []ObjectStatus
	// InventoryWritten says the final inventory was recorded.
	InventoryWritten bool
	DryRun           bool
}

// ApplySummary counts an ApplyResult.
type ApplySummary struct {
	Created, Configured, Unchanged, Recreated int
	Failed, NotAttempted                      int
	Pruned, PruneSkipped, PruneFailed         int
}

// Summary counts the results per outcome.
func (r *ApplyResult) Summary() ApplySummary {
	var s ApplySummary
	if r == nil {
		return s
	}
	for _, o := range r.Objects {
		switch {
		case !o.Attempted:
			s.NotAttempted++
		case o.Err != nil:
			s.Failed++
		case o.Recreated:
			s.Recreated++
		case o.Action == diff.Created:
			s.Created++
		case o.Action == diff.Configured:
			s.Configured++
		case o.Action == diff.Unchanged:
			s.Unchanged++
		}
	}
	for _, o := range r.Pruned {
		switch {
		case o.Err != nil:
			s.PruneFailed++
		case o.Skipped != "":
			s.PruneSkipped++
		case o.Action == diff.Deleted:
			s.Pruned++
		}
	}
	return s
}

// String is a one-line summary for people.
func (s ApplySummary) String() string {
	parts := []string{
		fmt.Sprintf("%d created", s.Created),
		fmt.Sprintf("%d configured", s.Configured),
		fmt.Sprintf("%d unchanged", s.Unchanged),
	}
	for _, p := range []struct {
		n    int
		what string
	}{{s.Recreated, "recreated"}, {s.Failed, "failed"}, {s.NotAttempted, "not attempted"},
		{s.Pruned, "pruned"}, {s.PruneSkipped, "not pruned"}, {s.PruneFailed, "failed to prune"}} {
		if p.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", p.n, p.what))
		}
	}
	return strings.Join(parts, ", ")
}

// ApplyError is returned when some objects failed or were not attempted.
// The inventory then holds the old members and every object that applied,
// and nothing was pruned; running the apply again converges.
type ApplyError struct {
	Applied, Total int
	Failed         []ObjectResult
	NotAttempted   []diff.Ref
}

func (e *ApplyError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "applied %d of %d objects", e.Applied, e.Total)
	if len(e.Failed) > 0 {
		fmt.Fprintf(&b, "; %d failed:", len(e.Failed))
		for _, f := range e.Failed {
			fmt.Fprintf(&b, "\n  %s: %v", f.Ref.KubectlName()+namespaceSuffix(f.Ref), f.Err)
		}
	}
	if n := len(e.NotAttempted); n > 0 {
		fmt.Fprintf(&b, "\n%d not attempted (the apply stopped first):", n)
		for i, r := range e.NotAttempted {
			if i == 10 {
				fmt.Fprintf(&b, " and %d more", n-i)
				break
			}
			fmt.Fprintf(&b, " %s%s", r.KubectlName(), namespaceSuffix(r))
		}
	}
	b.WriteString("\nnothing was pruned; the inventory keeps the old objects and those applied: fix the errors and apply again")
	return b.String()
}

// Unwrap returns the per-object errors.
func (e *ApplyError) Unwrap() []error {
	errs := make([]error, 0, len(e.Failed))
	for _, f := range e.Failed {
		errs = append(errs, f.Err)
	}
	return errs
}

func namespaceSuffix(r diff.Ref) string {
	if r.Namespace == "" {
		return ""
	}
	return " (namespace " + r.Namespace + ")"
}

func applyError(res *ApplyResult) error {
	e := &ApplyError{Total: len(res.Objects)}
	for _, o := range res.Objects {
		switch {
		case !o.Attempted:
			e.NotAttempted = append(e.NotAttempted, o.Ref)
		case o.Err != nil:
			e.Failed = append(e.Failed, o)
		default:
			e.Applied++
		}
	}
	if len(e.Failed) == 0 && len(e.NotAttempted) == 0 {
		return nil
	}
	sort.Slice(e.Failed, func(i, j int) bool { return e.Failed[i].Ref.Key() < e.Failed[j].Ref.Key() })
	return e
}
