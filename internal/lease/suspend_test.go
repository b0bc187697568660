package lease

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestSuspensions(t *testing.T) {
	ns := env.Namespace(t)
	ctx := t.Context()
	s := &Suspensions{Client: newClient(t), Namespace: ns}
	// Another replica reads the same switch through its own client.
	other := &Suspensions{Client: newClient(t), Namespace: ns}

	check := func(step string, want []Suspension, suspended map[string]bool) {
		t.Helper()
		got, err := other.List(ctx)
		if err != nil {
			t.Fatalf("%s: List: %v", step, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: List (-want +got):\n%s", step, diff)
		}
		for policy, want := range suspended {
			if got, err := other.Suspended(ctx, policy); err != nil || got != want {
				t.Errorf("%s: Suspended(%s) = %v, %v; want %v", step, policy, got, err, want)
			}
		}
	}
	check("nothing suspended, no ConfigMap", nil, map[string]bool{"web": false})
	if err := s.Resume(ctx, "web"); err != nil {
		t.Fatalf("resuming what was never suspended: %v", err)
	}

	steps := []struct {
		name      string
		do        func() error
		want      []Suspension
		suspended map[string]bool
	}{
		{"suspend web", func() error { return s.Suspend(ctx, "web", "alice: a bad release") },
			[]Suspension{{Policy: "web", By: "alice: a bad release"}}, map[string]bool{"web": true, "api": false}},
		{"suspend all", func() error { return s.Suspend(ctx, "", "bob") },
			[]Suspension{{All: true, By: "bob"}, {Policy: "web", By: "alice: a bad release"}}, map[string]bool{"web": true, "api": true}},
		{"resume web: all still holds it", func() error { return s.Resume(ctx, "web") },
			[]Suspension{{All: true, By: "bob"}}, map[string]bool{"web": true, "api": true}},
		{"suspend api again", func() error { return s.Suspend(ctx, "api", "carol") },
			[]Suspension{{All: true, By: "bob"}, {Policy: "api", By: "carol"}}, map[string]bool{"api": true}},
		{"resume all clears every switch", func() error { return s.Resume(ctx, "") },
			nil, map[string]bool{"web": false, "api": false}},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		check(st.name, st.want, st.suspended)
	}

	cm, err := env.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, ImageSuspensionsName, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the switch's ConfigMap: %v", err)
	}
	if len(cm.Data) != 0 {
		t.Errorf("after resume --all the ConfigMap holds %v", cm.Data)
	}

	for _, bad := range []string{"a/b", "x\ny"} {
		if err := s.Suspend(ctx, bad, "eve"); err == nil || !strings.Contains(err.Error(), "is not an image policy name") {
			t.Errorf("Suspend(%q) = %v, want it refused", bad, err)
		}
	}
	if _, err := (&Suspensions{Client: newClient(t)}).List(ctx); err == nil {
		t.Error("List without a namespace: no error")
	}
}

func TestImageHoldKey(t *testing.T) {
	for _, tc := range []struct{ repo, policy string }{{"github:acme/app", "web"}, {"gitlab:g/sub/p", "api-1"}} {
		repo, policy, ok := ParseImageHoldKey(ImageHoldKey(tc.repo, tc.policy))
		if !ok || repo != tc.repo || policy != tc.policy {
			t.Errorf("ParseImageHoldKey(ImageHoldKey(%q, %q)) = %q, %q, %v", tc.repo, tc.policy, repo, policy, ok)
		}
	}
	for _, key := range []string{"seen/github:acme/app", "hold/", "hold/web", "hold/github:acme/app/"} {
		if _, _, ok := ParseImageHoldKey(key); ok {
			t.Errorf("ParseImageHoldKey(%q) ok, want not", key)
		}
	}
}
