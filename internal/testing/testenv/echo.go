package testenv

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kubectl-gitops/kubectl-gitops/internal/clock"
)

// The labels that EchoSecretPolicy acts on: a Secret labelled
// EchoLabel=EchoDeny is refused, one labelled EchoLabel=EchoWarn admitted
// with a warning, both quoting the Secret's values.
const (
	EchoLabel = "echo"
	EchoDeny  = "true"
	EchoWarn  = "warn"
)

const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

var (
	vapGVR        = schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingadmissionpolicies"}
	vapBindingGVR = schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingadmissionpolicybindings"}
	secretGVR     = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
)

// EchoSecretPolicy makes the API server refuse every Secret labelled
// echo=true in ns with a message that quotes its data (base64, as the API
// server holds it; stringData is in data by then) and its last-applied
// annotation, as a policy engine quoting what it refused would, and warn
// with the same message about those labelled echo=warn. It returns once the
// API server enforces it; the policy is deleted when the test ends.
func (e *Env) EchoSecretPolicy(t testing.TB, ns string) {
	t.Helper()
	e.Require(t)
	ctx := t.Context()
	name := "echo-" + ns
	policy := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "admissionregistration.k8s.io/v1",
		"kind":       "ValidatingAdmissionPolicy",
		"metadata":   map[string]any{"name": name},
		"spec": map[string]any{
			"failurePolicy": "Fail",
			"matchConstraints": map[string]any{"resourceRules": []any{map[string]any{
				"apiGroups": []any{""}, "apiVersions": []any{"v1"}, "operations": []any{"CREATE", "UPDATE"}, "resources": []any{"secrets"},
			}}},
			"validations": []any{map[string]any{
				"expression": "false",
				"messageExpression": `'echo: data ' + (has(object.data) ? object.data.map(k, k + '=' + object.data[k]).join(',') : '') +` +
					` ' last-applied ' + (has(object.metadata.annotations) && '` + lastApplied + `' in object.metadata.annotations ? object.metadata.annotations['` + lastApplied + `'] : '')`,
			}},
		},
	}}
	binding := func(name, action, label string) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "admissionregistration.k8s.io/v1",
			"kind":       "ValidatingAdmissionPolicyBinding",
			"metadata":   map[string]any{"name": name},
			"spec": map[string]any{
				"policyName":        policy.GetName(),
				"validationActions": []any{action},
				"matchResources": map[string]any{
					"namespaceSelector": map[string]any{"matchLabels": map[string]any{"kubernetes.io/metadata.name": ns}},
					"objectSelector":    map[string]any{"matchLabels": map[string]any{EchoLabel: label}},
				},
			},
		}}
	}
	for _, o := range []struct {
		gvr schema.GroupVersionResource
		obj *unstructured.Unstructured
	}{{vapGVR, policy}, {vapBindingGVR, binding(name+"-warn", "Warn", EchoWarn)}, {vapBindingGVR, binding(name, "Deny", EchoDeny)}} {
		if _, err := e.Dynamic.Resource(o.gvr).Create(ctx, o.obj, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating the echo policy: %v", err)
		}
		t.Cleanup(func() {
			_ = e.Dynamic.Resource(o.gvr).Delete(context.Background(), o.obj.GetName(), metav1.DeleteOptions{})
		})
	}
	// The API server loads policies asynchronously (in the order they were
	// created): probe until it refuses, and check that it does quote the
	// values unredacted.
	const value = "echo-probe-value"
	quoted := base64.StdEncoding.EncodeToString([]byte(value))
	probe := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Secret",
		"metadata": map[string]any{"name": "echo-probe", "namespace": ns, "labels": map[string]any{EchoLabel: EchoDeny}},
		"data":     map[string]any{"probe": quoted},
	}}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		_, err := e.Dynamic.Resource(secretGVR).Namespace(ns).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil && strings.Contains(err.Error(), "echo: data") {
			if !strings.Contains(err.Error(), quoted) {
				t.Fatalf("the echo policy does not quote the Secret's data: %v", err)
			}
			return
		}
		if clock.Sleep(ctx, 200*time.Millisecond) != nil {
			t.Fatalf("the echo policy is not enforced after a minute: last answer %v", err)
		}
	}
}
