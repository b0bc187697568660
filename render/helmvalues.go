package render

import (
	"bytes"
	"fmt"

	"helm.sh/helm/v4/pkg/chart/v2/loader"
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
		vals = loader.MergeMaps(vals, copyHelmValues(opts.Values))
	}
	return vals, nil
}

func copyHelmValues(in map[string]any) map[string]any {
	out := make(map[string]any, len(in))
	for k, v := range in {
		out[k] = copyHelmValue(v)
	}
	return out
}

func copyHelmValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		return copyHelmValues(v)
	case []any:
		out := make([]any, len(v))
		for i, item := range v {
			out[i] = copyHelmValue(item)
		}
		return out
	default:
		return v
	}
}
