package render

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/kyaml/openapi"
	kyaml "sigs.k8s.io/kustomize/kyaml/yaml"
)

// DefaultNamespace sets ns on every namespaced object that has no namespace.
// Whether a kind is namespaced comes from the built-in Kubernetes schema and
// from CustomResourceDefinitions among objs; kinds known to neither are
// treated as namespaced, as kubectl does for custom resources by default.
func DefaultNamespace(objs []*unstructured.Unstructured, ns string) {
	if ns == "" {
		return
	}
	for _, obj := range withoutNamespace(objs) {
		obj.SetNamespace(ns)
	}
}

// withoutNamespace returns the objects of objs that DefaultNamespace gives a
// namespace: the namespaced ones that have none.
func withoutNamespace(objs []*unstructured.Unstructured) []*unstructured.Unstructured {
	crdScope := customResourceScopes(objs)
	// kyaml's schema is process-wide and krusty rewrites it during builds.
	kyamlGlobals.Lock()
	defer kyamlGlobals.Unlock()
	var out []*unstructured.Unstructured
	for _, obj := range objs {
		if obj.GetNamespace() == "" && namespaced(obj, crdScope) {
			out = append(out, obj)
		}
	}
	return out
}

// groupKind identifies a kind across versions.
type groupKind struct{ group, kind string }

// customResourceScopes maps the kinds that CRDs in objs define to whether they
// are namespaced.
func customResourceScopes(objs []*unstructured.Unstructured) map[groupKind]bool {
	scopes := map[groupKind]bool{}
	for _, obj := range objs {
		gvk := obj.GroupVersionKind()
		if gvk.Group != "apiextensions.k8s.io" || gvk.Kind != "CustomResourceDefinition" {
			continue
		}
		group, _, _ := unstructured.NestedString(obj.Object, "spec", "group")
		kind, _, _ := unstructured.NestedString(obj.Object, "spec", "names", "kind")
		scope, _, _ := unstructured.NestedString(obj.Object, "spec", "scope")
		scopes[groupKind{group, kind}] = scope != "Cluster"
	}
	return scopes
}

func namespaced(obj *unstructured.Unstructured, crdScope map[groupKind]bool) bool {
	gvk := obj.GroupVersionKind()
	if ns, ok := crdScope[groupKind{gvk.Group, gvk.Kind}]; ok {
		return ns
	}
	ns, found := openapi.IsNamespaceScoped(kyaml.TypeMeta{APIVersion: obj.GetAPIVersion(), Kind: obj.GetKind()})
	return !found || ns
}
