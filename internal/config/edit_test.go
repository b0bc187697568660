package config

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func TestSetImageSuspend(t *testing.T) {
	const base = `# the shop
apiVersion: gitops.kubectl.dev/v1alpha1
kind: Repository
images:
  - name: web   # the storefront
    image: ghcr.io/example/web
    policy: {semver: {range: ">=1.0.0"}}
  - image: ghcr.io/example/api
    name: "api"
    suspend: false # paused in March
`
	cases := []struct {
		name    string
		in      string
		policy  string
		suspend bool
		want    string // "" when unchanged
		err     string
	}{
		{name: "adds suspend after the name", in: base, policy: "web", suspend: true,
			want: strings.Replace(base, "  - name: web   # the storefront\n", "  - name: web   # the storefront\n    suspend: true\n", 1)},
		{name: "sets an existing value, keeping its comment", in: base, policy: "api", suspend: true,
			want: strings.Replace(base, "suspend: false # paused", "suspend: true # paused", 1)},
		{name: "resume of an unsuspended policy changes nothing", in: base, policy: "web"},
		{name: "resume sets false", in: strings.Replace(base, "false #", "true #", 1), policy: "api", want: base},
		{name: "already suspended", in: strings.Replace(base, "false #", "true #", 1), policy: "api", suspend: true},
		{name: "CRLF kept", in: strings.ReplaceAll(base, "\n", "\r\n"), policy: "web", suspend: true,
			want: strings.ReplaceAll(strings.Replace(base, "  - name: web   # the storefront\n", "  - name: web   # the storefront\n    suspend: true\n", 1), "\n", "\r\n")},
		{name: "name on the last line without a line end", in: "images:\n  - image: x\n    name: web", policy: "web", suspend: true,
			want: "images:\n  - image: x\n    name: web\n    suspend: true\n"},
		{name: "unknown policy", in: base, policy: "webb", suspend: true, err: `"webb" is not an image policy of gitops.yaml: use one of web, api`},
		{name: "no images", in: "apps: []\n", policy: "web", suspend: true, err: "declares no image policies"},
		{name: "flow style", in: "images: [{name: web, image: x}]\n", policy: "web", suspend: true, err: "gitops.yaml:1: images[0] is written in flow style"},
		{name: "quoted suspend", in: "images:\n  - name: web\n    suspend: \"false\"\n", policy: "web", suspend: true, err: "gitops.yaml:3: images[0].suspend is not a plain true or false"},
		{name: "not YAML", in: "images: [\n", policy: "web", suspend: true, err: "gitops.yaml: yaml:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, changed, err := SetImageSuspend([]byte(tc.in), tc.policy, tc.suspend)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := tc.want
			if want == "" {
				want = tc.in
			}
			if changed != (tc.want != "") || string(got) != want {
				t.Fatalf("changed=%v\n got:\n%s\nwant:\n%s", changed, got, want)
			}
			// What it wrote says what was asked, and a second run changes
			// nothing.
			var r struct {
				Images []ImagePolicy `yaml:"images"`
			}
			if err := yaml.Unmarshal(got, &r); err != nil {
				t.Fatal(err)
			}
			for _, p := range r.Images {
				if p.Name == tc.policy && p.Suspend != tc.suspend {
					t.Errorf("%s suspend = %v after the edit", p.Name, p.Suspend)
				}
			}
			again, changed, err := SetImageSuspend(got, tc.policy, tc.suspend)
			if err != nil || changed || string(again) != string(got) {
				t.Errorf("second run: changed=%v err=%v", changed, err)
			}
		})
	}
}
