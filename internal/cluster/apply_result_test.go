package cluster

import (
	"testing"

	"github.com/kubectl-gitops/kubectl-gitops/internal/diff"
)

func TestApplyResultLines(t *testing.T) {
	ref := diff.Ref{Group: "apps", Version: "v1", Kind: "Deployment", Namespace: "shop", Name: "web"}
	for _, tt := range []struct {
		r    ObjectResult
		want string
	}{
		{ObjectResult{Ref: ref, Action: diff.Created, Attempted: true}, "deployment.apps/web serverside-applied"},
		{ObjectResult{Ref: ref, Action: diff.Unchanged, Attempted: true}, "deployment.apps/web unchanged"},
		{ObjectResult{Ref: ref, Action: diff.Deleted, Attempted: true}, "deployment.apps/web pruned"},
		{ObjectResult{Ref: ref, Action: diff.Configured, Recreated: true, Attempted: true, DryRun: true}, "deployment.apps/web recreated (server dry run)"},
		{ObjectResult{Ref: diff.Ref{Version: "v1", Kind: "ConfigMap", Name: "x"}, Action: diff.Unchanged}, "configmap/x unchanged"},
	} {
		if got := tt.r.Line(); got != tt.want {
			t.Errorf("Line() = %q, want %q", got, tt.want)
		}
	}
}
