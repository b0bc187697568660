package diff

import (
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// bigConfigMap is a ConfigMap whose one value has n lines, each made by
// line(i); YAML writes it as a block scalar, one YAML line per value line.
func bigConfigMap(n int, line func(i int) string) *unstructured.Unstructured {
	var b strings.Builder
	for i := range n {
		b.WriteString(line(i))
		b.WriteByte('\n')
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "big", "namespace": "default"},
		"data":     map[string]any{"value": b.String()},
	}}
}

type largeCase struct {
	name          string
	before, after *unstructured.Unstructured
}

// largeCases are pairs of n-line values: changed in one line and entirely
// different, with unique lines and with lines that repeat (each of 200
// lines n/200 times, the shape that makes difflib quadratic).
func largeCases(n int) []largeCase {
	unique := func(prefix string) func(int) string {
		return func(i int) string { return fmt.Sprintf("%s %d", prefix, i) }
	}
	repeated := func(prefix string) func(int) string {
		return func(i int) string { return fmt.Sprintf("%s %d", prefix, i%200) }
	}
	oneChanged := func(line func(int) string) func(int) string {
		return func(i int) string {
			if i == n/2 {
				return "changed"
			}
			return line(i)
		}
	}
	return []largeCase{
		{"one-line", bigConfigMap(n, unique("line")), bigConfigMap(n, oneChanged(unique("line")))},
		{"all-different", bigConfigMap(n, unique("line")), bigConfigMap(n, unique("other"))},
		{"repeated-one-line", bigConfigMap(n, repeated("line")), bigConfigMap(n, oneChanged(repeated("line")))},
		{"repeated-all-different", bigConfigMap(n, repeated("line")), bigConfigMap(n, repeated("other"))},
	}
}

func BenchmarkPairLarge(b *testing.B) {
	for _, n := range []int{25_000, 250_000} {
		for _, tc := range largeCases(n) {
			b.Run(fmt.Sprintf("%s/lines=%d", tc.name, n), func(b *testing.B) {
				for b.Loop() {
					if _, err := Pair(tc.before, tc.after, Options{}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
