package render

import (
	"reflect"
	"testing"
)

func TestHelmValuesNotMutated(t *testing.T) {
	root, chartDir := helmFixture(t)
	vals := map[string]any{"sub": map[string]any{"message": "mine"}}
	if _, err := Helm(t.Context(), chartDir, Options{Root: root, Helm: HelmOptions{Values: vals}}); err != nil {
		t.Fatal(err)
	}
	if want := map[string]any{"sub": map[string]any{"message": "mine"}}; !reflect.DeepEqual(vals, want) {
		t.Errorf("Values changed to %v", vals)
	}
}
