package cluster

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	chart "helm.sh/helm/v4/pkg/chart/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"

	"github.com/kubectl-gitops/kubectl-gitops/internal/diff"
	"github.com/kubectl-gitops/kubectl-gitops/internal/helmrelease"
	"github.com/kubectl-gitops/kubectl-gitops/internal/report"
)

// redactCanary starts every Secret value of the redaction tests; no output
// may show it in any form.
const redactCanary = "CANARY-d4t4-7f3a"

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// redactLeaks are the forms of the canary values that must not appear: as
// they are (which is also how data decodes), and base64-encoded (any value
// starting with the canary encodes to a string starting with this).
func redactLeaks() []string {
	return []string{redactCanary, b64(redactCanary[:15])}
}

// canaryLastApplied is a kubectl last-applied-configuration annotation
// recording older values than the Secret now holds, the stringData one as
// it was written (kubectl records a manifest as it is).
var canaryLastApplied = `{"apiVersion":"v1","kind":"Secret","data":{"old":"` + b64(redactCanary+"-last") + `"},"stringData":{"token":"` + redactCanary + `-string-last"}}`

// canarySecret is a Secret with canary values in data, stringData and the
// last-applied annotation, labelled so that the echo policy refuses it.
func canarySecret(ns, name string) *unstructured.Unstructured {
	s := obj("v1", "Secret", ns, name, map[string]any{
		"data":       map[string]any{"password": b64(redactCanary + "-data")},
		"stringData": map[string]any{"token": redactCanary + "-string"},
	})
	s.SetLabels(map[string]string{"echo": "true"})
	s.SetAnnotations(map[string]string{diff.LastAppliedAnnotation: canaryLastApplied})
	return s
}

// echoPolicy makes the API server refuse Secrets labelled echo=true in ns,
// and warn about those labelled echo=warn, quoting their values
// (testenv.EchoSecretPolicy), and checks that it quotes canarySecret's.
func echoPolicy(t *testing.T, ns string) {
	t.Helper()
	env.EchoSecretPolicy(t, ns)
	_, err := env.Dynamic.Resource(secretGVR).Namespace(ns).Create(t.Context(), canarySecret(ns, "probe"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	if err == nil {
		t.Fatal("the echo policy admitted the canary Secret")
	}
	for _, quoted := range []string{b64(redactCanary + "-data"), b64(redactCanary + "-string"), b64(redactCanary + "-last"), redactCanary + "-string-last"} {
		if !strings.Contains(err.Error(), quoted) {
			t.Fatalf("the echo policy does not quote %q: %v", quoted, err)
		}
	}
}

// canaryChart is a chart with a Secret holding canary values: in data as
// written in the template, and in stringData from a values key that does
// not look secret (auth.pass). With fail set, rendering fails quoting
// apiToken.
func canaryChart(t *testing.T) *chart.Chart {
	t.Helper()
	files := map[string]string{
		"Chart.yaml":  "apiVersion: v2\nname: canary\nversion: 0.1.0\n",
		"values.yaml": "echo: \"false\"\nfail: false\nauth:\n  pass: \"\"\napiToken: \"\"\n",
		"templates/secret.yaml": `{{- if .Values.fail }}{{ fail (printf "refusing token %s" .Values.apiToken) }}{{ end -}}
apiVersion: v1
kind: Secret
metadata:
  name: {{ .Release.Name }}-db
  labels:
    echo: {{ .Values.echo | quote }}
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: '` + canaryLastApplied + `'
data:
  password: ` + b64(redactCanary+"-data") + `
stringData:
  token: {{ .Values.auth.pass | quote }}
`,
	}
	return chartOf(t, "canary", files)
}

func canaryRelease(t *testing.T, ns string, values map[string]any) helmrelease.Release {
	base := map[string]any{"auth": map[string]any{"pass": redactCanary + "-values"}, "apiToken": redactCanary + "-token"}
	for k, v := range values {
		base[k] = v
	}
	return helmrelease.Release{Name: "canary", Namespace: ns, Chart: canaryChart(t), Values: base}
}

// changeSetText is everything a ChangeSet can show: each report format,
// and the objects compared.
func changeSetText(t *testing.T, cs *diff.ChangeSet) string {
	t.Helper()
	if cs == nil {
		return ""
	}
	var b strings.Builder
	for _, f := range report.Formats() {
		var buf bytes.Buffer
		if err := report.Write(&buf, cs, report.Options{Format: f}); err != nil {
			t.Fatal(err)
		}
		b.Write(buf.Bytes())
	}
	for _, ch := range cs.Changes {
		b.WriteString(ch.Diff + ch.Message)
		for _, o := range []*unstructured.Unstructured{ch.Before, ch.After} {
			if o != nil {
				j, _ := json.Marshal(o.Object)
				b.Write(j)
			}
		}
	}
	return b.String()
}

// recordWarnings keeps the warnings client-go hands to the handler of a
// configuration.
type recordWarnings struct {
	mu    sync.Mutex
	texts []string
}

func (r *recordWarnings) HandleWarningHeaderWithContext(_ context.Context, _ int, _, text string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.texts = append(r.texts, text)
}

func (r *recordWarnings) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.texts, "\n")
}

// applyText is everything an apply can show: progress lines, each
// object's line and warnings.
func applyText(res *ApplyResult, progress []string) string {
	var b strings.Builder
	b.WriteString(strings.Join(progress, "\n"))
	if res != nil {
		for _, o := range append(res.Objects, res.Pruned...) {
			b.WriteString("\n" + o.Line() + "\n" + strings.Join(o.Warnings, "\n"))
		}
	}
	return b.String()
}

// TestSecretValuesNeverShown runs a Secret with canary values in data,
// stringData and the last-applied annotation through every path that can
// print an object or an API error, against an API server whose admission
// policy quotes the values it refuses: the canary never appears, raw,
// base64 or decoded, in any output or error.
func TestSecretValuesNeverShown(t *testing.T) {
	ns := env.Namespace(t)
	c := newClient(t, Options{})
	echoPolicy(t, ns)
	ref := InventoryRef{App: "redact", Namespace: ns}

	tests := []struct {
		name string
		run  func(t *testing.T, ctx context.Context) (string, error)
		// wantErr is part of the error the path must return, and wantOut
		// of its output: proof that the refusal or warning (and with it
		// the quoted values) came through.
		wantErr, wantOut string
	}{
		{
			name: "plan",
			run: func(t *testing.T, ctx context.Context) (string, error) {
				cs, err := c.Plan(ctx, []*unstructured.Unstructured{canarySecret(ns, "db")}, ref, PlanOptions{Prune: true})
				return changeSetText(t, cs), err
			},
			wantErr: "denied request: echo: data ",
		},
		{
			name: "dry-run",
			run: func(t *testing.T, ctx context.Context) (string, error) {
				res := c.DryRun(ctx, []*unstructured.Unstructured{canarySecret(ns, "db")})
				return "", res[0].Err
			},
			wantErr: "denied request: echo: data ",
		},
		{
			name: "apply",
			run: func(t *testing.T, ctx context.Context) (string, error) {
				var progress []string
				res, err := c.Apply(ctx, []*unstructured.Unstructured{canarySecret(ns, "db")}, ApplyOptions{Inventory: ref,
					Progress: func(r ObjectResult) { progress = append(progress, r.Line()) }})
				return applyText(res, progress), err
			},
			wantErr: "denied request: echo: data ",
		},
		{
			name: "apply, server dry run",
			run: func(t *testing.T, ctx context.Context) (string, error) {
				var progress []string
				res, err := c.Apply(ctx, []*unstructured.Unstructured{canarySecret(ns, "db")}, ApplyOptions{Inventory: ref, DryRun: true,
					Progress: func(r ObjectResult) { progress = append(progress, r.Line()) }})
				return applyText(res, progress), err
			},
			wantErr: "denied request: echo: data ",
		},
		{
			name: "plan and apply, a warning",
			run: func(t *testing.T, ctx context.Context) (string, error) {
				// What client-go prints of warnings by itself goes
				// through the handler of the configuration.
				printed := &recordWarnings{}
				wc := newClientWrapped(t, Options{}, func(cfg *rest.Config) *rest.Config {
					cfg.WarningHandlerWithContext = printed
					return cfg
				})
				warned := canarySecret(ns, "warned")
				warned.SetLabels(map[string]string{"echo": "warn"})
				cs, perr := wc.Plan(ctx, []*unstructured.Unstructured{warned}, ref, PlanOptions{})
				res, err := wc.Apply(ctx, []*unstructured.Unstructured{warned}, ApplyOptions{Inventory: ref})
				if !strings.Contains(printed.String(), "echo: data ") {
					t.Errorf("client-go was handed no warning: %q", printed)
				}
				return changeSetText(t, cs) + applyText(res, nil) + "\n" + printed.String(), errors.Join(perr, err)
			},
			wantOut: "echo: data ",
		},
		{
			name: "apply over another manager's value",
			run: func(t *testing.T, ctx context.Context) (string, error) {
				// kubectl edit owns the password, with a canary value of
				// its own; the Secret is not labelled, so the policy
				// lets it in.
				theirs := obj("v1", "Secret", ns, "taken", map[string]any{"data": map[string]any{"password": b64(redactCanary + "-theirs")}})
				body, _ := theirs.MarshalJSON()
				if _, err := env.Dynamic.Resource(secretGVR).Namespace(ns).Patch(ctx, "taken", types.ApplyPatchType, body,
					metav1.PatchOptions{FieldManager: "kubectl-edit"}); err != nil {
					t.Fatal(err)
				}
				ours := canarySecret(ns, "taken")
				ours.SetLabels(nil)
				var progress []string
				res, err := c.Apply(ctx, []*unstructured.Unstructured{ours}, ApplyOptions{Inventory: ref,
					Progress: func(r ObjectResult) { progress = append(progress, r.Line()) }})
				cs, perr := c.Plan(ctx, []*unstructured.Unstructured{ours}, ref, PlanOptions{})
				return applyText(res, progress) + changeSetText(t, cs), errors.Join(err, perr)
			},
			wantErr: "--force-conflicts",
		},
		{
			name: "helm diff",
			run: func(t *testing.T, ctx context.Context) (string, error) {
				cs, err := c.HelmDiff(ctx, canaryRelease(t, ns, nil), HelmDiffOptions{DisableLookup: true})
				return changeSetText(t, cs), err
			},
		},
		{
			name: "helm diff, a template quoting a value",
			run: func(t *testing.T, ctx context.Context) (string, error) {
				cs, err := c.HelmDiff(ctx, canaryRelease(t, ns, map[string]any{"fail": true}), HelmDiffOptions{DisableLookup: true})
				return changeSetText(t, cs), err
			},
			wantErr: "refusing token ***",
		},
		{
			name: "helm apply",
			run: func(t *testing.T, ctx context.Context) (string, error) {
				res, err := c.HelmApply(ctx, canaryRelease(t, ns, map[string]any{"echo": "true"}), HelmOptions{})
				return fmt.Sprintf("%+v", res), err
			},
			wantErr: "denied request: echo: data ",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := tt.run(t, t.Context())
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("error %v, want one with %q", err, tt.wantErr)
			case strings.Contains(tt.wantErr, "echo") && !strings.Contains(err.Error(), diff.Mask):
				t.Errorf("error %v quotes no masked value", err)
			}
			if !strings.Contains(out, tt.wantOut) || (tt.wantOut != "" && !strings.Contains(out, diff.Mask)) {
				t.Errorf("output lacks %q with a masked value:\n%s", tt.wantOut, out)
			}
			if err != nil {
				out += "\n" + err.Error()
			}
			for _, leak := range redactLeaks() {
				if strings.Contains(out, leak) {
					t.Errorf("the output shows %q:\n%s", leak, out)
				}
			}
		})
	}
}
