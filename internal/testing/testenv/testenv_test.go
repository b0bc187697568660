package testenv

import (
	"context"
	"os"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

var env *Env

func TestMain(m *testing.M) { os.Exit(Run(m, &env)) }

// TestServerSideApply proves the control plane is real: it applies an object,
// sees a server-side dry-run leave no trace, and gets a field-manager
// conflict that a fake clientset would not raise.
func TestServerSideApply(t *testing.T) {
	ns := env.Namespace(t)
	ctx := context.Background()
	cms := env.Clientset.CoreV1().ConfigMaps(ns)

	apply := func(manager, value string, opts metav1.PatchOptions) error {
		body := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"smoke"},"data":{"key":"` + value + `"}}`
		opts.FieldManager = manager
		_, err := cms.Patch(ctx, "smoke", types.ApplyPatchType, []byte(body), opts)
		return err
	}

	if err := apply("testenv", "dry", metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Fatalf("dry-run apply: %v", err)
	}
	if _, err := cms.Get(ctx, "smoke", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("a dry-run apply must persist nothing; Get returned %v", err)
	}
	if err := apply("testenv", "one", metav1.PatchOptions{}); err != nil {
		t.Fatalf("apply: %v", err)
	}
	got, err := cms.Get(ctx, "smoke", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if got.Data["key"] != "one" {
		t.Fatalf("data.key = %q, want one", got.Data["key"])
	}
	err = apply("someone-else", "two", metav1.PatchOptions{})
	if !apierrors.IsConflict(err) {
		t.Fatalf("apply by another manager: got %v, want a conflict", err)
	}
	force := true
	if err := apply("someone-else", "two", metav1.PatchOptions{Force: &force}); err != nil {
		t.Fatalf("forced apply: %v", err)
	}
	var cm *corev1.ConfigMap
	if cm, err = cms.Get(ctx, "smoke", metav1.GetOptions{}); err != nil || cm.Data["key"] != "two" {
		t.Fatalf("after forced apply: %v %v", cm, err)
	}
}
