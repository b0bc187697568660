package render

import (
	"bytes"
	"fmt"

	"helm.sh/helm/v4/pkg/chart/v2/loader"

	"github.com/kubectl-gitops/kubectl-gitops/internal/helmrelease"
)

// helmValues reads the values files through the jail and merges them, then
// the in-line values, as `helm -f a -f b --set-json …` does.
func helmValues(j *jail, opts HelmOptions) (map[string]any, error) {
	vals := map[string]any{}
	for _, file := range opts.ValuesFiles {
		data, err := j.readFile(file)
		if err != nil {
			return nil, fmt.Errorf("values file %s: %w", file, err)
		}
		current, err := loader.LoadValues(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("values file %s: %w; fix its YAML", file, err)
		}
		vals = loader.MergeMaps(vals, current)
	}
	if len(opts.Values) > 0 {
		// Helm's dependency processing may write into the values it is
		// given; the caller's map stays untouched.
		vals = loader.MergeMaps(vals, helmrelease.CopyValues(opts.Values))
	}
	return vals, nil
}
