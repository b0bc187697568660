package bot

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/kubectl-gitops/kubectl-gitops/internal/sandbox"
	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
)

// memoryBomb is a chart template that doubles a string 40 times.
const memoryBomb = `{{- $s := "x" }}{{- range $i := list 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 }}{{- $s = print $s $s }}{{- end }}
apiVersion: v1
kind: ConfigMap
metadata: {name: web}
data: {n: "{{ len $s }}"}
`

func TestPreviewRenderOverMemoryLimit(t *testing.T) {
	s := newPreviewSetup(t)
	s.p.Sandbox = sandbox.Runner{Memory: 128 << 20}
	head := s.push(t, map[string]string{
		"apps/web/Chart.yaml":          "apiVersion: v2\nname: web\nversion: 0.1.0\n",
		"apps/web/templates/bomb.yaml": memoryBomb,
		"apps/api/config.yaml":         configMap("api", "two"),
	})
	s.preview(t, false)

	body := s.botComments()[0]
	if !strings.Contains(body, "the render of app web was stopped: over 128 MiB of memory") {
		t.Errorf("the comment does not say which limit stopped app web:\n%s", body)
	}
	if !strings.Contains(body, "| api | test | 1 | 0 | 0 |") || !strings.Contains(body, "+  value: two") {
		t.Errorf("app api, in the same pull request, is not previewed:\n%s", body)
	}
	if st := s.lastStatus(); st.SHA != head || st.State != scm.StatusFailure || !strings.Contains(st.Description, "web") {
		t.Errorf("status %+v, want failure naming web", st)
	}

	// The bot goes on: the next push is previewed with the same sandbox.
	head = s.push(t, map[string]string{
		"apps/web/Chart.yaml":          "",
		"apps/web/templates/bomb.yaml": "",
		"apps/web/config.yaml":         configMap("web", "three"),
	})
	s.preview(t, false)
	body = s.botComments()[0]
	if !strings.HasPrefix(body, previewMarker(head)) || !strings.Contains(body, "+  value: three") {
		t.Errorf("the next head is not previewed:\n%s", body)
	}
	if st := s.lastStatus(); st.SHA != head || st.State != scm.StatusSuccess {
		t.Errorf("status %+v, want success", st)
	}
}

func TestRenderConfig(t *testing.T) {
	tests := []struct {
		name    string
		yaml    string
		want    sandbox.Runner
		wantErr string
	}{
		{"defaults", "{}", sandbox.Runner{}, ""},
		{"quantities", "{timeout: 30s, memory: 512Mi, cpu: 20s, maxOutputBytes: 64Mi}",
			sandbox.Runner{Timeout: 30 * time.Second, Memory: 512 << 20, CPU: 20 * time.Second, MaxOutputBytes: 64 << 20}, ""},
		{"plain bytes", "{memory: 1073741824}", sandbox.Runner{Memory: 1 << 30}, ""},
		{"not a size", "{memory: lots}", sandbox.Runner{}, `"lots" is not a size`},
		{"negative", "{timeout: -1s}", sandbox.Runner{}, "render.timeout must not be negative"},
		{"too little memory", "{memory: 1Mi}", sandbox.Runner{}, "below 64Mi"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c RenderConfig
			err := yaml.Unmarshal([]byte(tc.yaml), &c)
			if err == nil {
				err = errors.Join(c.validate()...)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, c.Runner(), cmp.AllowUnexported(sandbox.Runner{})); diff != "" {
				t.Errorf("Runner() (-want +got):\n%s", diff)
			}
		})
	}
}
