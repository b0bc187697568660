// Package diff owns the comparison of Kubernetes objects: it pairs (before,
// after) objects by identity, normalizes them, masks Secret values and
// produces a ChangeSet with a unified, field-level diff per object.
//
// The ChangeSet is the one vocabulary shared by the offline diff, the live
// diff and the PR bot; package report renders it, and Ref is the one object
// reference, in a diff and in the cluster. Every sink must receive objects
// that went through this package (or MaskSecrets), and text about a Secret
// (an API error, a warning) through a Redactor, so that Secret values never
// reach an output.
package diff

import (
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Action is what applying the after state would do to an object.
type Action string

// The actions, named like fluxcd/pkg/ssa.
const (
	Created    Action = "created"
	Configured Action = "configured"
	Unchanged  Action = "unchanged"
	Deleted    Action = "deleted"
)

// Ref identifies an object, in a diff and in the cluster alike. Objects
// are matched on Group, Kind, Namespace and Name; Version is informational
// (apps/v1 and apps/v1beta1 Deployments with the same name are the same
// object).
type Ref struct {
	Group, Version, Kind, Namespace, Name string
}

// String returns group/Kind/namespace/name, leaving out the group of core
// objects and the namespace of cluster-scoped ones: apps/Deployment/ns/web,
// ConfigMap/ns/settings, rbac.authorization.k8s.io/ClusterRole/view.
func (r Ref) String() string {
	parts := make([]string, 0, 4)
	for _, p := range []string{r.Group, r.Kind, r.Namespace, r.Name} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, "/")
}

// Qualified names the object as Kind.group/namespace/name, leaving out the
// group of core objects and the namespace of cluster-scoped ones:
// Deployment.apps/ns/web, ConfigMap/ns/settings, ClusterRole.rbac.authorization.k8s.io/view.
// Per-object errors of the live diff use it.
func (r Ref) Qualified() string {
	kind := r.Kind
	if r.Group != "" {
		kind = r.Kind + "." + r.Group
	}
	if r.Namespace == "" {
		return kind + "/" + r.Name
	}
	return kind + "/" + r.Namespace + "/" + r.Name
}

// KubectlName names the object as kubectl's progress lines do:
// kind.group/name, in lower case (deployment.apps/web, configmap/settings).
func (r Ref) KubectlName() string {
	kind := strings.ToLower(r.Kind)
	if r.Group != "" {
		kind += "." + r.Group
	}
	return kind + "/" + r.Name
}

// Key identifies the object regardless of version, as group/Kind/namespace/name
// with empty parts kept, so that it orders objects and keys maps of them.
func (r Ref) Key() string {
	return r.Group + "/" + r.Kind + "/" + r.Namespace + "/" + r.Name
}

// GroupKind is the ref's group and kind.
func (r Ref) GroupKind() schema.GroupKind {
	return schema.GroupKind{Group: r.Group, Kind: r.Kind}
}

// RefOf returns the identity of obj.
func RefOf(obj *unstructured.Unstructured) Ref {
	gvk := obj.GroupVersionKind()
	return Ref{
		Group:     gvk.Group,
		Version:   gvk.Version,
		Kind:      gvk.Kind,
		Namespace: obj.GetNamespace(),
		Name:      obj.GetName(),
	}
}

// Change is the outcome for one object.
type Change struct {
	Ref    Ref
	Action Action
	// Diff is a unified diff of the normalized, masked YAML; empty when
	// the object is unchanged. When the changed lines would cost too much
	// to find (Options.MaxWork), the ---/+++ header is followed by one
	// line "values differ (too large to show: …)" instead of hunks.
	Diff string
	// Before and After are the normalized, masked copies that were
	// compared; nil where the object is absent.
	Before, After *unstructured.Unstructured
	// Message is an optional note for the reader, such as an ownership
	// conflict found by the live diff.
	Message string
}

// ChangeSet is the outcome for a set of objects, sorted by group, kind,
// namespace and name.
type ChangeSet struct {
	Changes []Change
}

// Summary counts the changes per action.
type Summary struct {
	Created, Configured, Deleted, Unchanged int
}

// HasChanges reports whether any object would be created, configured or
// deleted.
func (cs *ChangeSet) HasChanges() bool {
	if cs == nil {
		return false
	}
	for _, c := range cs.Changes {
		if c.Action != Unchanged {
			return true
		}
	}
	return false
}

// Summary counts the changes per action.
func (cs *ChangeSet) Summary() Summary {
	var s Summary
	if cs == nil {
		return s
	}
	for _, c := range cs.Changes {
		switch c.Action {
		case Created:
			s.Created++
		case Configured:
			s.Configured++
		case Deleted:
			s.Deleted++
		case Unchanged:
			s.Unchanged++
		}
	}
	return s
}
