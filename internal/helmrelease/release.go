// Package helmrelease owns the one description of a Helm release to
// install, upgrade or diff: package render prepares it from a repository
// and package cluster installs or diffs it. It imports only Helm's chart
// packages, so either side can use it.
package helmrelease

import (
	chart "helm.sh/helm/v4/pkg/chart/v2"
)

// Release is a chart to install or upgrade as a Helm release, with the
// values the user supplies.
type Release struct {
	// Name is the release's name (helm.releaseName, else the app's name).
	Name string
	// Namespace is the release's namespace; empty means the cluster
	// client's default namespace (-n or the kubeconfig context's, else
	// "default").
	Namespace string
	// Chart is loaded, with its dependencies vendored (render.LoadChart).
	// Helm may prune disabled subcharts from it; load it again for another
	// operation.
	Chart *chart.Chart
	// Values are what the user supplies (`helm -f … --set-json …`): the
	// values files in order, then the in-line values. The chart's defaults
	// are not included; Helm coalesces them at install. They are copied,
	// never modified.
	Values map[string]any
}

// CopyValues returns a deep copy of values, never nil: maps and lists are
// copied, other values shared. Helm modifies the values it is given, and a
// Release's must stay as they are.
func CopyValues(values map[string]any) map[string]any {
	out := make(map[string]any, len(values))
	for k, v := range values {
		out[k] = copyValue(v)
	}
	return out
}

func copyValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		return CopyValues(v)
	case []any:
		out := make([]any, len(v))
		for i, item := range v {
			out[i] = copyValue(item)
		}
		return out
	default:
		return v
	}
}
