package helmrelease

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCopyValues(t *testing.T) {
	in := map[string]any{"db": map[string]any{"hosts": []any{"a", map[string]any{"port": 5432}}}, "n": 1.5}
	out := CopyValues(in)
	if d := cmp.Diff(in, out); d != "" {
		t.Fatalf("copy differs (-in +copy):\n%s", d)
	}
	out["db"].(map[string]any)["hosts"].([]any)[1].(map[string]any)["port"] = 1
	if got := in["db"].(map[string]any)["hosts"].([]any)[1].(map[string]any)["port"]; got != 5432 {
		t.Errorf("changing the copy changed the original: port = %v", got)
	}
	if got := CopyValues(nil); got == nil || len(got) != 0 {
		t.Errorf("CopyValues(nil) = %#v, want an empty map", got)
	}
}
