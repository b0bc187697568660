package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"sort"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kubectl-gitops/kubectl-gitops/internal/diff"
)

// ApplySet label and annotation keys (kubectl's ApplySet specification, KEP
// 3659), so kubectl and other tools see our inventories for what they are.
const (
	LabelApplySetID                = "applyset.kubernetes.io/id"
	LabelPartOf                    = "applyset.kubernetes.io/part-of"
	AnnotationTooling              = "applyset.kubernetes.io/tooling"
	AnnotationContainsGroupKinds   = "applyset.kubernetes.io/contains-group-kinds"
	AnnotationAdditionalNamespaces = "applyset.kubernetes.io/additional-namespaces"

	// Our own annotations on the parent: what was applied and when.
	AnnotationRevision  = "gitops.kubectl.dev/revision"
	AnnotationAppliedAt = "gitops.kubectl.dev/applied-at"
	AnnotationApp       = "gitops.kubectl.dev/app"
	// The approved change an apply came from (Provenance), when the bot
	// synced it.
	AnnotationPullRequest = "gitops.kubectl.dev/pull-request"
	AnnotationApprovedBy  = "gitops.kubectl.dev/approved-by"
	AnnotationPlanHash    = "gitops.kubectl.dev/plan-hash"

	// Tooling is the value of AnnotationTooling: <tool>/<version>.
	Tooling = "kubectl-gitops/v1"
)

// InventoryRef names an app's inventory: the ApplySet parent, a Secret named
// gitops-<app> (kubectl's default parent kind) in Namespace.
type InventoryRef struct {
	App       string
	Namespace string
}

// Name is the parent Secret's name.
func (r InventoryRef) Name() string { return "gitops-" + r.App }

// ID is the ApplySet id: base64url(sha256(name.namespace.kind.group)) in the
// v1 format, as kubectl computes it.
func (r InventoryRef) ID() string {
	sum := sha256.Sum256([]byte(strings.Join([]string{r.Name(), r.Namespace, "Secret", ""}, ".")))
	return "applyset-" + base64.RawURLEncoding.EncodeToString(sum[:]) + "-v1"
}

// Provenance is the approved change an apply came from: the pull request
// (its URL, or forge:owner/repo#number), who approved it and the plan
// hash they approved. An apply without one (`kubectl gitops apply`)
// records none.
type Provenance struct {
	PullRequest string
	Approvers   []string
	PlanHash    string
}

// annotations are p's inventory annotations; empty fields are left out.
func (p Provenance) annotations() map[string]string {
	out := map[string]string{}
	if p.PullRequest != "" {
		out[AnnotationPullRequest] = p.PullRequest
	}
	if len(p.Approvers) > 0 {
		out[AnnotationApprovedBy] = strings.Join(p.Approvers, ",")
	}
	if p.PlanHash != "" {
		out[AnnotationPlanHash] = p.PlanHash
	}
	return out
}

func provenanceOf(ann map[string]string) Provenance {
	p := Provenance{PullRequest: ann[AnnotationPullRequest], PlanHash: ann[AnnotationPlanHash]}
	if by := ann[AnnotationApprovedBy]; by != "" {
		p.Approvers = strings.Split(by, ",")
	}
	return p
}

// Inventory is what an app applied last: the parent's record and its members
// found in the cluster.
type Inventory struct {
	Ref InventoryRef
	// Exists is false when the app was never applied.
	Exists     bool
	Revision   string
	AppliedAt  time.Time
	Provenance Provenance
	GroupKinds []schema.GroupKind
	Namespaces []string
	// Members are the live objects labelled as part of the ApplySet, found
	// by listing each group-kind in each namespace.
	Members []*unstructured.Unstructured
}

// Contains reports whether the inventory holds an object with ref's key.
func (inv *Inventory) Contains(ref diff.Ref) bool {
	if inv == nil {
		return false
	}
	for _, m := range inv.Members {
		if diff.RefOf(m).Key() == ref.Key() {
			return true
		}
	}
	return false
}

var secretGVR = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}

// ReadInventory reads an app's ApplySet parent and lists its members. An app
// never applied has an inventory with Exists false and no members.
func (c *Client) ReadInventory(ctx context.Context, ref InventoryRef) (*Inventory, error) {
	inv := &Inventory{Ref: ref}
	parent, err := c.dynamic.Resource(secretGVR).Namespace(ref.Namespace).Get(ctx, ref.Name(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return inv, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the inventory Secret %s/%s: %w", ref.Namespace, ref.Name(), err)
	}
	if id := parent.GetLabels()[LabelApplySetID]; id != ref.ID() {
		return nil, fmt.Errorf("Secret %s/%s is not the inventory of app %s (label %s is %q, want %q); rename the app or remove the Secret",
			ref.Namespace, ref.Name(), ref.App, LabelApplySetID, id, ref.ID())
	}
	ann := parent.GetAnnotations()
	if tool := ann[AnnotationTooling]; !strings.HasPrefix(tool, "kubectl-gitops/") {
		return nil, fmt.Errorf("inventory %s/%s belongs to %q, not kubectl-gitops; refusing to use it", ref.Namespace, ref.Name(), tool)
	}
	inv.Exists = true
	inv.Revision = ann[AnnotationRevision]
	inv.Provenance = provenanceOf(ann)
	if t, err := time.Parse(time.RFC3339, ann[AnnotationAppliedAt]); err == nil {
		inv.AppliedAt = t
	}
	inv.GroupKinds = parseGroupKinds(ann[AnnotationContainsGroupKinds])
	inv.Namespaces = []string{ref.Namespace}
	for _, ns := range strings.Split(ann[AnnotationAdditionalNamespaces], ",") {
		if ns = strings.TrimSpace(ns); ns != "" && ns != ref.Namespace {
			inv.Namespaces = append(inv.Namespaces, ns)
		}
	}
	members, err := c.listMembers(ctx, ref.ID(), inv.GroupKinds, inv.Namespaces)
	if err != nil {
		return nil, err
	}
	inv.Members = members
	return inv, nil
}

// listMembers lists the objects labelled part-of id, per group-kind (and per
// namespace for namespaced kinds). Kinds the cluster no longer serves hold no
// members.
func (c *Client) listMembers(ctx context.Context, id string, gks []schema.GroupKind, namespaces []string) ([]*unstructured.Unstructured, error) {
	selector := LabelPartOf + "=" + id
	var out []*unstructured.Unstructured
	for _, gk := range gks {
		m, err := c.mapper.RESTMapping(gk)
		if err != nil {
			continue
		}
		scopes := []string{""}
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			scopes = namespaces
		}
		for _, ns := range scopes {
			list, err := c.resourceFor(m, ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
			if apierrors.IsNotFound(err) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("listing %s of inventory %s: %w", gk, id, err)
			}
			for i := range list.Items {
				out = append(out, &list.Items[i])
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return diff.RefOf(out[i]).Key() < diff.RefOf(out[j]).Key() })
	return out, nil
}

// FormatGroupKinds writes group-kinds as the ApplySet annotation does:
// sorted, comma-separated Kind.group.
func FormatGroupKinds(gks []schema.GroupKind) string {
	seen := map[string]bool{}
	var parts []string
	for _, gk := range gks {
		s := gk.Kind
		if gk.Group != "" {
			s += "." + gk.Group
		}
		if !seen[s] {
			seen[s] = true
			parts = append(parts, s)
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func parseGroupKinds(s string) []schema.GroupKind {
	var out []schema.GroupKind
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		out = append(out, schema.ParseGroupKind(part))
	}
	return out
}
