package images_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-gitops/kubectl-gitops/internal/config"
	"github.com/kubectl-gitops/kubectl-gitops/internal/images"
	"github.com/kubectl-gitops/kubectl-gitops/internal/images/setter"
)

func semverPolicy(t *testing.T, digest config.DigestMode) *images.Policy {
	t.Helper()
	p, err := images.Compile(config.ImagePolicy{Name: "web", Image: "ghcr.io/acme/web", Digest: digest,
		Policy: config.TagPolicy{Semver: &config.SemverPolicy{Range: ">=1.0.0"}}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDecide(t *testing.T) {
	p := semverPolicy(t, config.DigestNone)
	dA, dB := "sha256:"+strings.Repeat("a", 64), "sha256:"+strings.Repeat("b", 64)
	chose := func(tag, digest string) images.Result {
		return images.Result{Policy: "web", Choice: images.Choice{Tag: images.Tag{Name: tag, Digest: digest}, Why: "highest of 3 tags in >=1.0.0"}}
	}
	tags := func(ts ...string) *setter.Current { return &setter.Current{Tags: ts} }
	for _, tc := range []struct {
		name     string
		res      images.Result
		cur      *setter.Current
		hold     *images.Hold
		want     images.Action
		wantTag  string
		whyHas   string
		wantHeld bool
	}{
		{"older tag", chose("1.2.0", ""), tags("1.1.0"), nil, images.ActionUpdate, "1.2.0", "1.1.0 → 1.2.0", false},
		{"files disagree", chose("1.2.0", ""), tags("1.2.0", "1.1.0"), nil, images.ActionUpdate, "1.2.0", "1.1.0 → 1.2.0", false},
		{"current", chose("1.2.0", ""), tags("1.2.0"), nil, images.ActionCurrent, "", "up to date", false},
		{"ahead", chose("1.2.0", ""), tags("1.3.0"), nil, images.ActionAhead, "", "never going back", false},
		{"ahead and behind: never back", chose("1.2.0", ""), tags("1.3.0", "1.0.0"), nil, images.ActionAhead, "", "1.3.0", false},
		{"no marker", chose("1.2.0", ""), nil, nil, images.ActionNoMarker, "", "no file marks", false},
		{"scan error", images.Result{Err: errors.New("registry said no")}, tags("1.0.0"), nil, images.ActionError, "", "registry said no", false},
		{"too young", images.Result{Err: images.ErrTooYoung}, tags("1.0.0"), nil, images.ActionError, "", "", true},
		{"held at the reverted tag", chose("1.2.0", ""), tags("1.1.0"), &images.Hold{At: "1.1.0", Above: "1.2.0"}, images.ActionHeld, "", "/gitops unhold", false},
		{"a newer tag than the hold", chose("1.3.0", ""), tags("1.1.0"), &images.Hold{At: "1.1.0", Above: "1.2.0"}, images.ActionUpdate, "1.3.0", "1.1.0 → 1.3.0", false},
		{"pinned digest moved", chose("1.2.0", dB), &setter.Current{Tags: []string{"1.2.0"}, Digests: []string{dA}}, nil, images.ActionUpdate, "1.2.0", "moved to sha256:bbbb", false},
		{"pinned digest same", chose("1.2.0", dA), &setter.Current{Tags: []string{"1.2.0"}, Digests: []string{dA}}, nil, images.ActionCurrent, "", "up to date", false},
		{"only a digest marker", chose("1.2.0", dB), &setter.Current{Digests: []string{dA}}, nil, images.ActionUpdate, "1.2.0", "moved", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := images.Decide(p, tc.res, tc.cur, tc.hold)
			if d.Action != tc.want {
				t.Fatalf("Action = %s (%s), want %s", d.Action, d.Why, tc.want)
			}
			switch {
			case tc.wantTag == "" && d.Update != nil:
				t.Errorf("Update = %+v, want none", d.Update)
			case tc.wantTag != "" && (d.Update == nil || d.Update.Tag != tc.wantTag || d.Update.Image != "ghcr.io/acme/web" || d.Update.Policy != "web"):
				t.Errorf("Update = %+v, want tag %s", d.Update, tc.wantTag)
			}
			if !strings.Contains(d.Why, tc.whyHas) {
				t.Errorf("Why = %q, want it to contain %q", d.Why, tc.whyHas)
			}
			if (d.Held != "") != tc.wantHeld {
				t.Errorf("Held = %q, want set: %v", d.Held, tc.wantHeld)
			}
		})
	}
}

func TestWentBack(t *testing.T) {
	p := semverPolicy(t, config.DigestNone)
	at := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name                       string
		before, now, latest        string
		wantHold                   bool
		wantAt, wantAbove, comment string
	}{
		{"reverted", "1.1.0", "1.0.0", "1.1.0", true, "1.0.0", "1.1.0", "the reverted tag is held"},
		{"lowered while a newer one waited", "1.1.0", "1.0.0", "1.2.0", true, "1.0.0", "1.2.0", "tags that existed when a person went back are held too"},
		{"moved up", "1.0.0", "1.1.0", "1.1.0", false, "", "", ""},
		{"unchanged", "1.0.0", "1.0.0", "1.1.0", false, "", "", ""},
		{"first look", "", "1.0.0", "1.1.0", false, "", "", ""},
		{"marker removed", "1.0.0", "", "1.1.0", false, "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, ok := images.WentBack(p, tc.before, tc.now, tc.latest, "abc", at)
			if ok != tc.wantHold || h.At != tc.wantAt || h.Above != tc.wantAbove {
				t.Errorf("WentBack = %+v, %v; want hold %v at %q above %q (%s)", h, ok, tc.wantHold, tc.wantAt, tc.wantAbove, tc.comment)
			}
		})
	}
}
