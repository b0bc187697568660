package main

import (
	"go/parser"
	"go/token"
	"strings"
	"testing"

	// Defines -update, so that `go test ./... -update` runs here too.
	_ "github.com/kubectl-gitops/kubectl-gitops/internal/testing/golden"
)

const mod = "example.com/m"

func TestCheckFile(t *testing.T) {
	tests := []struct {
		name    string
		imports string
		want    []string // one substring per problem, in order
	}{
		{name: "three groups", imports: `
import (
	"context"
	"os"

	"k8s.io/api/core/v1"

	"example.com/m/internal/diff"
)`},
		{name: "a kind in two groups", imports: `
import (
	"context"

	"helm.sh/helm/v4/pkg/chart"

	"k8s.io/api/core/v1"

	"example.com/m/internal/diff"
)`},
		{name: "doc comments do not split a group", imports: `
import (
	"context"
	// for its init
	_ "embed"
)`},
		{name: "separate declarations", imports: `
import "context"

import "example.com/m/render"`},
		{name: "module import in the standard-library group", imports: `
import (
	"context"
	"example.com/m/internal/clock"
	"os"
)`, want: []string{`"example.com/m/internal/clock" (module): in one group with standard library imports ("context")`}},
		{name: "third-party import in the standard-library group", imports: `
import (
	"context"
	"helm.sh/helm/v4/pkg/kube"
)`, want: []string{`"helm.sh/helm/v4/pkg/kube" (third-party): in one group with standard library`}},
		{name: "module group first", imports: `
import (
	"example.com/m/internal/testing/testenv"

	"bytes"
)`, want: []string{`"bytes" (standard library): its group comes after the module imports`}},
		{name: "module group between standard library and third-party", imports: `
import (
	"context"

	"example.com/m/internal/clock"

	"k8s.io/api/core/v1"

	"example.com/m/internal/diff"
)`, want: []string{`"k8s.io/api/core/v1" (third-party): its group comes after the module imports`}},
		{name: "the module itself and a look-alike", imports: `
import (
	"example.com/m"
	"example.com/mother"
)`, want: []string{`"example.com/mother" (third-party): in one group with module imports`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, "x.go", "package x\n"+tt.imports+"\n", parser.ImportsOnly|parser.ParseComments)
			if err != nil {
				t.Fatal(err)
			}
			got := checkFile(fset, f, mod)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%s", len(got), len(tt.want), strings.Join(got, "\n"))
			}
			for i := range got {
				if !strings.Contains(got[i], tt.want[i]) {
					t.Errorf("problem %d = %s\nwant one containing %s", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestClassify(t *testing.T) {
	for path, want := range map[string]class{
		"context":                      std,
		"net/http":                     std,
		"C":                            std,
		"k8s.io/api/core/v1":           thirdParty,
		"example.com/m":                local,
		"example.com/m/render":         local,
		"example.com/mother/pkg":       thirdParty,
		"golang.org/x/sys/unix":        thirdParty,
		"github.com/a/b/example.com/m": thirdParty,
	} {
		if got := classify(path, mod); got != want {
			t.Errorf("classify(%q) = %s, want %s", path, got, want)
		}
	}
}
