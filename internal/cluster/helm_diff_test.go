package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"helm.sh/helm/v4/pkg/chart/common"
	chart "helm.sh/helm/v4/pkg/chart/v2"

	"github.com/kubectl-gitops/kubectl-gitops/internal/diff"
	"github.com/kubectl-gitops/kubectl-gitops/internal/helmrelease"
	"github.com/kubectl-gitops/kubectl-gitops/internal/report"
	"github.com/kubectl-gitops/kubectl-gitops/render"
)

// jsonDiff compares values as JSON, so 2 from YAML (int) equals 2 from a
// release record (float64), and returns cmp.Diff of the two.
func jsonDiff(t *testing.T, want, got any) string {
	t.Helper()
	norm := func(v any) any {
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var out any
		if err := json.Unmarshal(j, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	return cmp.Diff(norm(want), norm(got))
}

func changeOf(t *testing.T, cs *diff.ChangeSet, ref string) diff.Change {
	t.Helper()
	for _, c := range cs.Changes {
		if c.Ref.String() == ref {
			return c
		}
	}
	var refs []string
	for _, c := range cs.Changes {
		refs = append(refs, c.Ref.String()+" "+string(c.Action))
	}
	t.Fatalf("no change for %s in %v", ref, refs)
	return diff.Change{}
}

func TestHelmDiff(t *testing.T) {
	ns := env.Namespace(t)
	c := newClient(t, Options{})
	ctx := t.Context()
	release := "helm.sh/Release/" + ns + "/demo"

	// No release yet: everything is created, hooks and values included,
	// and nothing is written.
	cs, err := c.HelmDiff(ctx, demoRelease(t, ns, map[string]any{"greeting": "hello"}), HelmDiffOptions{})
	if err != nil {
		t.Fatalf("diff before install: %v", err)
	}
	for _, ref := range []string{"ConfigMap/" + ns + "/demo-config", "ConfigMap/" + ns + "/demo-hook", "Secret/" + ns + "/demo-db", release} {
		if got := changeOf(t, cs, ref).Action; got != diff.Created {
			t.Errorf("%s: %s, want created", ref, got)
		}
	}
	if len(cs.Changes) != 4 {
		t.Errorf("diff before install has %d changes, want 4", len(cs.Changes))
	}
	if _, err := c.HelmStatus(ctx, "demo", ns); !errors.Is(err, ErrNoHelmRelease) {
		t.Fatalf("the diff installed something: HelmStatus err = %v", err)
	}

	first := map[string]any{"greeting": "hello", "db": map[string]any{"password": helmCanary + "-1"}}
	if _, err := c.HelmApply(ctx, demoRelease(t, ns, first), HelmOptions{}); err != nil {
		t.Fatalf("install: %v", err)
	}

	// Same chart and values: no changes.
	cs, err = c.HelmDiff(ctx, demoRelease(t, ns, first), HelmDiffOptions{})
	if err != nil {
		t.Fatalf("diff of the deployed release: %v", err)
	}
	if cs.HasChanges() {
		t.Errorf("diff of the deployed release has changes: %+v", cs.Changes)
	}
	if d := jsonDiff(t, map[string]any{"greeting": "hello", "db": map[string]any{"password": "***"}}, changeOf(t, cs, release).After.Object["values"]); d != "" {
		t.Errorf("unchanged values (-want +got):\n%s", d)
	}

	// Changed values: the ConfigMap, the hook, the Secret and the values
	// change, with every secret masked.
	second := map[string]any{"greeting": "hi", "db": map[string]any{"password": helmCanary + "-2"}}
	cs, err = c.HelmDiff(ctx, demoRelease(t, ns, second), HelmDiffOptions{})
	if err != nil {
		t.Fatalf("diff of an upgrade: %v", err)
	}
	for _, ref := range []string{"ConfigMap/" + ns + "/demo-config", "ConfigMap/" + ns + "/demo-hook", "Secret/" + ns + "/demo-db", release} {
		if got := changeOf(t, cs, ref).Action; got != diff.Configured {
			t.Errorf("%s: %s, want configured", ref, got)
		}
	}
	cm := changeOf(t, cs, "ConfigMap/"+ns+"/demo-config")
	if !strings.Contains(cm.Diff, `-  greeting: hello`) || !strings.Contains(cm.Diff, `+  greeting: hi`) {
		t.Errorf("ConfigMap diff does not show the greeting change:\n%s", cm.Diff)
	}
	rel := changeOf(t, cs, release)
	for _, line := range []string{"-    password: '*** (before)'", "+    password: '*** (after)'", "-  greeting: '*** (before)'", "+  greeting: hi"} {
		if !strings.Contains(rel.Diff, line+"\n") {
			t.Errorf("values diff lacks %q:\n%s", line, rel.Diff)
		}
	}
	for _, c := range cs.Changes {
		if strings.Contains(c.Diff, helmCanary) {
			t.Errorf("%s: the diff shows a secret value:\n%s", c.Ref, c.Diff)
		}
	}
	hist := helmHistory(t, ns, "demo")
	if len(hist) != 1 {
		t.Errorf("the diff changed the release history: %+v", hist)
	}
	if got := configMapData(t, ns, "demo-config")["greeting"]; got != "hello" {
		t.Errorf("the diff changed the live ConfigMap: greeting = %q", got)
	}

	// Values without secret-looking keys are shown.
	third := map[string]any{"greeting": "hey"}
	if _, err := c.HelmApply(ctx, demoRelease(t, ns, third), HelmOptions{}); err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	cs, err = c.HelmDiff(ctx, demoRelease(t, ns, map[string]any{"greeting": "howdy"}), HelmDiffOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rel = changeOf(t, cs, release)
	if !strings.Contains(rel.Diff, "-  greeting: '*** (before)'") || !strings.Contains(rel.Diff, "+  greeting: howdy") {
		t.Errorf("values diff does not show the greeting change, masking the release's value:\n%s", rel.Diff)
	}
	// A dry-run of an upgrade the API server would reject is not an error
	// here: the objects are compared as the release records them.
	if _, err := c.HelmDiff(ctx, demoRelease(t, ns, map[string]any{"invalid": true}), HelmDiffOptions{DisableLookup: true}); err != nil {
		t.Errorf("diff of an invalid upgrade: %v", err)
	}
}

// TestHelmDiffClusterValues stores a release whose values hold a DSN and a
// webhook URL that the repository does not have (set by hand with helm):
// no output of the diff shows them, while the repository's values show as
// they are.
func TestHelmDiffClusterValues(t *testing.T) {
	ns := env.Namespace(t)
	c := newClient(t, Options{})
	ctx := t.Context()
	const (
		dsn     = "postgres://app:canary-dsn-pw@db.internal:5432/app"
		webhook = "https://hooks.example.com/services/canary-webhook-token"
	)
	stored := map[string]any{
		"greeting": "hello",
		"dsn":      dsn,
		"alerts":   map[string]any{"url": webhook, "channels": []any{"#ops", webhook}},
		"replicas": 2,
	}
	if _, err := c.HelmApply(ctx, demoRelease(t, ns, stored), HelmOptions{}); err != nil {
		t.Fatalf("install: %v", err)
	}
	repo := map[string]any{"greeting": "hello", "replicas": 3, "alerts": map[string]any{"channels": []any{"#ops"}}, "image": "repo-visible:1.0"}
	cs, err := c.HelmDiff(ctx, demoRelease(t, ns, repo), HelmDiffOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rel := changeOf(t, cs, "helm.sh/Release/"+ns+"/demo")
	wantBefore := map[string]any{
		"greeting": "hello",
		"dsn":      "***",
		"alerts":   map[string]any{"url": "***", "channels": []any{"#ops", "***"}},
		"replicas": "*** (before)",
	}
	if d := jsonDiff(t, wantBefore, rel.Before.Object["values"]); d != "" {
		t.Errorf("stored values shown as (-want +got):\n%s", d)
	}
	if d := jsonDiff(t, repo, rel.After.Object["values"]); d != "" {
		t.Errorf("repository values shown as (-want +got):\n%s", d)
	}
	for _, f := range report.Formats() {
		var buf bytes.Buffer
		if err := report.Write(&buf, cs, report.Options{Format: f}); err != nil {
			t.Fatal(err)
		}
		out := buf.String()
		for _, canary := range []string{"canary-dsn-pw", "canary-webhook-token", "db.internal", "hooks.example.com"} {
			if strings.Contains(out, canary) {
				t.Errorf("%s output shows %q from the stored release", f, canary)
			}
		}
		for _, shown := range []string{"repo-visible:1.0", "#ops"} {
			if !strings.Contains(out, shown) {
				t.Errorf("%s output lacks the repository's %q", f, shown)
			}
		}
	}
}

func TestHelmMask(t *testing.T) {
	tests := []struct {
		name                  string
		before, after         any
		wantBefore, wantAfter any
	}{
		{
			name:       "equal values are shown",
			before:     map[string]any{"a": "x", "n": 1.0},
			after:      map[string]any{"a": "x", "n": 1.0},
			wantBefore: map[string]any{"a": "x", "n": 1.0},
			wantAfter:  map[string]any{"a": "x", "n": 1.0},
		},
		{
			name:       "cluster-only values are masked",
			before:     map[string]any{"dsn": "postgres://u:p@h/db", "nested": map[string]any{"url": "https://x"}},
			after:      map[string]any{},
			wantBefore: map[string]any{"dsn": "***", "nested": map[string]any{"url": "***"}},
			wantAfter:  map[string]any{},
		},
		{
			name:       "changed values: the cluster's masked, the repository's shown",
			before:     map[string]any{"url": "https://old.internal"},
			after:      map[string]any{"url": "https://new.example"},
			wantBefore: map[string]any{"url": "*** (before)"},
			wantAfter:  map[string]any{"url": "https://new.example"},
		},
		{
			name:       "secret-looking keys are masked on both sides",
			before:     map[string]any{"db": map[string]any{"password": "a", "user": "app"}, "apiKey": "k"},
			after:      map[string]any{"db": map[string]any{"password": "b", "user": "app"}, "apiKey": "k"},
			wantBefore: map[string]any{"db": map[string]any{"password": "*** (before)", "user": "app"}, "apiKey": "***"},
			wantAfter:  map[string]any{"db": map[string]any{"password": "*** (after)", "user": "app"}, "apiKey": "***"},
		},
		{
			name:       "lists item by item",
			before:     []any{"same", "cluster", "more"},
			after:      []any{"same", "repo"},
			wantBefore: []any{"same", "*** (before)", "***"},
			wantAfter:  []any{"same", "repo"},
		},
		{
			name:       "a map replacing a value",
			before:     map[string]any{"db": "postgres://u:p@h/db"},
			after:      map[string]any{"db": map[string]any{"host": "h", "token": "t"}},
			wantBefore: map[string]any{"db": "*** (before)"},
			wantAfter:  map[string]any{"db": map[string]any{"host": "h", "token": "***"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, a := helmMask(tt.before, tt.after, true, true, false)
			if d := jsonDiff(t, tt.wantBefore, b); d != "" {
				t.Errorf("helmMask before (-want +got):\n%s", d)
			}
			if d := jsonDiff(t, tt.wantAfter, a); d != "" {
				t.Errorf("helmMask after (-want +got):\n%s", d)
			}
		})
	}
}

// demoChartWithConfigMap is the demo chart with one more template: a
// ConfigMap named name holding one data line.
func demoChartWithConfigMap(t *testing.T, name, dataLine string) *chart.Chart {
	t.Helper()
	ch := demoChart(t)
	ch.Templates = append(ch.Templates, &common.File{Name: "templates/" + name + ".yaml",
		Data: []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\ndata:\n  " + dataLine + "\n")})
	return ch
}

func TestHelmDiffLookup(t *testing.T) {
	ns := env.Namespace(t)
	c := newClient(t, Options{})
	ch := demoChartWithConfigMap(t, "lookup", `found: {{ dig "metadata" "name" "none" (lookup "v1" "Namespace" "" .Release.Namespace) | quote }}`)
	rel := helmrelease.Release{Name: "demo", Namespace: ns, Chart: ch}
	for _, tc := range []struct {
		disable bool
		want    string
	}{{false, ns}, {true, "none"}} {
		cs, err := c.HelmDiff(t.Context(), rel, HelmDiffOptions{DisableLookup: tc.disable})
		if err != nil {
			t.Fatal(err)
		}
		got := changeOf(t, cs, "ConfigMap/"+ns+"/lookup").After.Object["data"].(map[string]any)["found"]
		if got != tc.want {
			t.Errorf("DisableLookup=%v: lookup found %v, want %s", tc.disable, got, tc.want)
		}
	}
}

// TestHelmDiffTemplateFuncs: the SDK's own render of a release from an
// untrusted change (outside the sandbox) gets render's capped functions, so
// a template that asks for a 3 GB string is refused before it is made,
// while the chart's ordinary functions still work.
func TestHelmDiffTemplateFuncs(t *testing.T) {
	ns := env.Namespace(t)
	c := newClient(t, Options{})
	bomb := demoChartWithConfigMap(t, "bomb", `x: {{ repeat 3000000000 "x" | quote }}`)
	funcs := render.HelmFuncs(t.Context(), render.Limits{})
	_, err := c.HelmDiff(t.Context(), helmrelease.Release{Name: "demo", Namespace: ns, Chart: bomb}, HelmDiffOptions{DisableLookup: true, TemplateFuncs: funcs})
	if err == nil || !strings.Contains(err.Error(), "repeat") {
		t.Fatalf("HelmDiff of a chart repeating a string 3e9 times = %v, want a refusal naming repeat", err)
	}

	cs, err := c.HelmDiff(t.Context(), helmrelease.Release{Name: "demo", Namespace: ns, Chart: demoChart(t)}, HelmDiffOptions{DisableLookup: true, TemplateFuncs: funcs})
	if err != nil {
		t.Fatalf("HelmDiff of the demo chart with capped functions: %v", err)
	}
	if !cs.HasChanges() {
		t.Error("HelmDiff of a release not yet installed shows no changes")
	}
}
