package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-gitops/kubectl-gitops/approvals"
)

// writeRepo writes a gitops.yaml into a fresh folder and returns its path.
func writeRepo(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), FileName)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadFullExample(t *testing.T) {
	r, err := Load("testdata/full.yaml")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	abs, _ := filepath.Abs("testdata/full.yaml")
	if r.File != abs || r.Dir != filepath.Dir(abs) {
		t.Errorf("File, Dir = %q, %q; want %q, %q", r.File, r.Dir, abs, filepath.Dir(abs))
	}
	a, ok := r.App("podinfo")
	if !ok {
		t.Fatal("App(podinfo) not found")
	}
	if a.Line != 4 {
		t.Errorf("podinfo Line = %d, want 4", a.Line)
	}
	if infra, _ := r.App("infra"); infra == nil || infra.Line != 28 {
		t.Errorf("infra = %+v, want Line 28", infra)
	}
	if _, ok := r.App("nope"); ok {
		t.Error("App(nope) found")
	}
	if a.Source == nil || a.Source.Ref != "6.7.0" || a.Source.Path != "kustomize" {
		t.Errorf("Source = %+v", a.Source)
	}
	if len(a.Patches) != 1 || a.Patches[0].Target.Kind != "Deployment" || !strings.Contains(a.Patches[0].Patch, "/spec/replicas") {
		t.Errorf("Patches = %+v", a.Patches)
	}
	if a.Helm == nil || a.Helm.Chart != "./charts/podinfo" || a.Helm.Version != "6.7.x" || a.Helm.Values["replicaCount"] != 2 || a.Helm.Remote() {
		t.Errorf("Helm = %+v", a.Helm)
	}
	if a.Wait.Timeout.Duration != 5*time.Minute || !a.Prune || a.Approval != "prod" {
		t.Errorf("app = %+v", a)
	}
	p := r.Images[0]
	if p.Policy.Semver == nil || p.Policy.Semver.Range != ">=6.0.0" || p.FilterTags.Extract != "$ts" {
		t.Errorf("image policy = %+v", p)
	}
	if p.PullRequest.Branch != "gitops/images/{{.Name}}" || p.PullRequest.Title != "Update {{.Name}} to {{.NewTag}}" {
		t.Errorf("pullRequest = %+v", p.PullRequest)
	}
	if ap := r.Approvals[0]; ap.MinApprovals != 2 || !ap.Codeowners || ap.DismissStale != StaleCommit || !slices.Equal(ap.Reviewers.Teams, []string{"platform"}) {
		t.Errorf("approval = %+v", ap)
	}
	n := r.Notifications
	if n.Providers[0].SecretRef.Env != "SLACK_WEBHOOK_URL" || n.Alerts[0].Severity != "info" || len(n.Alerts[0].Events) != 3 {
		t.Errorf("notifications = %+v", n)
	}
}

func TestLoadDefaults(t *testing.T) {
	r, err := Load(writeRepo(t, `apiVersion: gitops.kubectl.dev/v1alpha1
kind: Repository
apps:
  - name: a
    path: a
  - name: b
    path: b
    wait: {timeout: 90s}
images:
  - name: a
    image: example.com/a
    policy: {numerical: {}}
  - name: b
    image: example.com/b
    policy: {alphabetical: {order: desc}}
    exclude: []
    digest: pin
    minimumAge: 24h
    group: base
    pullRequest: {branch: 'images/{{.Name}}'}
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Apps[0].Wait.Timeout.Duration; got != DefaultWaitTimeout {
		t.Errorf("default wait timeout = %v", got)
	}
	if got := r.Apps[1].Wait.Timeout.Duration; got != 90*time.Second {
		t.Errorf("wait timeout = %v, want 90s", got)
	}
	a, b := r.Images[0], r.Images[1]
	if !slices.Equal(a.Exclude, []string{`^.*\.sig$`, `^.*\.att$`, `^.*\.sbom$`}) || len(b.Exclude) != 0 {
		t.Errorf("exclude = %q, %q; want the default, then none", a.Exclude, b.Exclude)
	}
	if a.Digest != DigestNone || b.Digest != DigestPin || a.MinimumAge.Duration != 0 || b.MinimumAge.Duration != 24*time.Hour || b.Group != "base" {
		t.Errorf("digest, minimumAge, group = %q %v %q, %q %v %q", a.Digest, a.MinimumAge, a.Group, b.Digest, b.MinimumAge, b.Group)
	}
	if a.Policy.Numerical.Order != OrderAsc || b.Policy.Alphabetical.Order != OrderDesc {
		t.Errorf("orders = %q, %q", a.Policy.Numerical.Order, b.Policy.Alphabetical.Order)
	}
	if a.PullRequest.Branch != DefaultPullRequestBranch || b.PullRequest.Branch != "images/{{.Name}}" || b.PullRequest.Title != DefaultPullRequestTitle {
		t.Errorf("pull requests = %+v, %+v", a.PullRequest, b.PullRequest)
	}
	before := *r.Apps[0].Wait
	r.Default()
	if *r.Apps[0].Wait != before || len(r.Images[0].Exclude) != 3 {
		t.Error("Default is not idempotent")
	}
}

func TestLoadApprovals(t *testing.T) {
	r, err := Load(writeRepo(t, `apiVersion: gitops.kubectl.dev/v1alpha1
kind: Repository
apps:
  - {name: web, path: web, approval: prod}
approvals:
  - name: prod
    minApprovals: 2
    reviewers: {teams: ['@acme/platform', sre], users: [octocat]}
    codeowners: true
    windows:
      - {kind: allow, schedule: "0 9 * * MON-FRI", duration: 8h, timeZone: Europe/Berlin}
      - {kind: deny, schedule: "0 18 * * FRI", duration: 63h}
  - {name: legacy-commit, dismissStale: true}
  - {name: legacy-plan, dismissStale: false}
  - {name: by-commit, dismissStale: commit}
  - {name: by-plan, dismissStale: plan}
`))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]Staleness{"prod": StalePlan, "legacy-commit": StaleCommit, "legacy-plan": StalePlan, "by-commit": StaleCommit, "by-plan": StalePlan} {
		if a, ok := r.Approval(name); !ok || a.DismissStale != want {
			t.Errorf("Approval(%q) = %+v, %v; want dismissStale %q", name, a, ok, want)
		}
	}
	if _, ok := r.Approval("nope"); ok {
		t.Error("Approval(nope) found")
	}
	web, _ := r.App("web")
	if got := r.SyncOf(web); got != SyncManual {
		t.Errorf("SyncOf(web) = %q with no sync set, want manual", got)
	}
	r.Sync = SyncOnMerge
	if got := r.SyncOf(web); got != SyncOnMerge {
		t.Errorf("SyncOf(web) = %q under the repository's onMerge, want onMerge", got)
	}
	web.Sync = SyncManual
	if got := r.SyncOf(web); got != SyncManual {
		t.Errorf("SyncOf(web) = %q with its own manual, want manual", got)
	}
	if _, ok := r.Approval("nope"); ok {
		t.Error("Approval(nope) found")
	}
	prod, _ := r.Approval("prod")
	if tz := prod.Windows[1].TimeZone; tz != DefaultTimeZone {
		t.Errorf("default time zone = %q", tz)
	}
	before := prod.Windows[1]
	r.Default()
	if prod.Windows[1] != before || prod.DismissStale != StalePlan {
		t.Error("Default is not idempotent")
	}

	p, err := prod.Policy()
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "prod" || p.MinApprovals != 2 || !p.Codeowners || p.DismissStale != approvals.StalePlan ||
		!slices.Equal(p.Teams, []string{"@acme/platform", "sre"}) || !slices.Equal(p.Users, []string{"octocat"}) || len(p.Windows) != 2 {
		t.Fatalf("Policy() = %+v", p)
	}
	allow, deny := p.Windows[0], p.Windows[1]
	if allow.Kind != approvals.Allow || allow.Schedule.String() != "0 9 * * MON-FRI" || allow.Duration != 8*time.Hour || allow.Location.String() != "Europe/Berlin" ||
		deny.Kind != approvals.Deny || deny.Location != time.UTC {
		t.Errorf("windows = %+v, %+v", allow, deny)
	}
	// The policy the approvals package evaluates: on a Saturday, closed
	// until the weekend's deny window ends on Monday at 09:00 UTC.
	d := approvals.Evaluate(p, approvals.Facts{Now: time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)})
	if want := "deploy window closed until 2026-12-07 10:00 CET"; !slices.Contains(d.Reasons, want) {
		t.Errorf("Evaluate reasons = %q, want %q among them", d.Reasons, want)
	}
	if c, _ := r.Approval("by-commit"); c != nil {
		if p, err := c.Policy(); err != nil || p.DismissStale != approvals.StaleCommit {
			t.Errorf("by-commit Policy() = %+v, %v", p, err)
		}
	}
	bad := Approval{Name: "x", Windows: []Window{{Kind: WindowAllow, Schedule: "0 9 * * *", Duration: Duration{time.Hour}, TimeZone: "Nowhere/Special"}}}
	if _, err := bad.Policy(); err == nil || !strings.Contains(err.Error(), `approval policy "x": windows[0]: unknown time zone "Nowhere/Special"`) {
		t.Errorf("Policy() with an unknown zone: err = %v", err)
	}
}

func TestLoadValidVariants(t *testing.T) {
	_, err := Load(writeRepo(t, `apiVersion: gitops.kubectl.dev/v1alpha1
kind: Repository
apps:
  - name: remote-chart
    helm: {chart: podinfo, repo: https://stefanprodan.github.io/podinfo, version: 6.7.x}
  - name: oci-chart
    helm: {chart: oci://ghcr.io/stefanprodan/charts/podinfo}
  - name: vendored
    source: {git: 'git@github.com:stefanprodan/podinfo.git', ref: 0123456789abcdef0123456789abcdef01234567}
  - name: merged
    <<: &common {path: apps/common, namespace: shared}
  - <<: *common
    name: merged-too
  - name: patched
    path: apps/patched
    patches:
      - patch: |
          apiVersion: apps/v1
          kind: Deployment
          metadata: {name: web}
          spec: {replicas: 2}
      - target: {kind: Deployment, labelSelector: app=web}
        patch: |
          - {op: move, from: /spec/a, path: /spec/b}
          - {op: remove, path: /spec/c}
          - {op: add, path: /spec/d, value: null}
    images: [{name: nginx, newName: registry.example.com:5000/mirror/nginx, digest: 'sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef'}]
    helm: {chart: charts/web, valuesFiles: [apps/web/values.yaml, apps/shared/values.yaml], releaseName: web.prod}
images:
  - name: tags
    image: localhost:5000/app
    policy: {numerical: {order: desc}}
    filterTags: {pattern: '^build-([0-9]+)$', extract: '$1'}
    group: nightly
  - name: tags-too
    image: localhost:5000/other
    policy: {semver: {range: '>=1.0.0-0'}}
    digest: pin
    minimumAge: 1h30m
    group: nightly
    pullRequest: {branch: 'gitops/images/{{.Name}}', title: 'Nightly builds'}
  - name: web
    image: localhost:5000/web
    policy: {alphabetical: {}}
    group: tags
notifications:
  providers:
    - {name: am, type: alertmanager, address: 'http://alertmanager.monitoring:9093'}
    - {name: hook, type: generic-hmac, address: 'https://hooks.example.com/gitops', secretRef: {file: /run/secrets/hmac}}
  alerts:
    - {providers: [am, hook], events: ['*'], severity: error, apps: [patched]}
sources:
  allow: ['git@github.com:stefanprodan/']
`))
	if err != nil {
		t.Fatal(err)
	}
}

func TestLoadErrors(t *testing.T) {
	const head = "apiVersion: gitops.kubectl.dev/v1alpha1\nkind: Repository\n"
	tests := []struct {
		name string
		yaml string
		want []string // substrings of the error
		not  []string // must not appear (secrets)
	}{{
		name: "unknown field",
		yaml: head + "apps:\n  - name: a\n    pathh: a\n",
		want: []string{"gitops.yaml:5: apps[0]: field `pathh` not found in app; did you mean `path`?"},
	}, {
		name: "unknown top-level field without suggestion",
		yaml: head + "widgets: []\n",
		want: []string{"gitops.yaml:3: field `widgets` not found in the repository file; known fields: apiVersion, kind, apps"},
	}, {
		name: "wrong apiVersion",
		yaml: "apiVersion: gitops.kubectl.dev/v1\nkind: Repository\n",
		want: []string{`gitops.yaml:1: apiVersion: is "gitops.kubectl.dev/v1", expected "gitops.kubectl.dev/v1alpha1"`},
	}, {
		name: "missing kind",
		yaml: "apiVersion: gitops.kubectl.dev/v1alpha1\napps: []\n",
		want: []string{"gitops.yaml:1: kind: missing; add kind: Repository"},
	}, {
		name: "duplicate app",
		yaml: head + "apps:\n  - name: a\n    path: a\n  - name: a\n    path: b\n",
		want: []string{`gitops.yaml:6: apps[1].name: app name "a" is already used by apps[0] (line 4)`},
	}, {
		name: "app name not a DNS label",
		yaml: head + "apps:\n  - name: Pod_Info\n    path: a\n",
		want: []string{`gitops.yaml:4: apps[0].name: app name "Pod_Info" is not a DNS label`},
	}, {
		name: "missing path",
		yaml: head + "apps:\n  - name: a\n    namespace: a\n",
		want: []string{"gitops.yaml:4: apps[0].path: missing"},
	}, {
		name: "absolute path",
		yaml: head + "apps:\n  - name: a\n    path: /etc\n",
		want: []string{`gitops.yaml:5: apps[0].path: "/etc" is absolute`},
	}, {
		name: "path escapes",
		yaml: head + "apps:\n  - name: a\n    path: apps/../../x\n",
		want: []string{`gitops.yaml:5: apps[0].path: "apps/../../x" leaves the repository`},
	}, {
		name: "unclean path",
		yaml: head + "apps:\n  - name: a\n    path: apps//a/./b/\n",
		want: []string{`gitops.yaml:5: apps[0].path: "apps//a/./b/" is not clean; write "apps/a/b"`},
	}, {
		name: "path climbs out",
		yaml: head + "apps:\n  - name: a\n    path: ../x\n",
		want: []string{`gitops.yaml:5: apps[0].path: "../x" leaves the repository`},
	}, {
		name: "values file climbs out",
		yaml: head + "apps:\n  - name: a\n    path: apps/a\n    helm:\n      chart: ../../charts/a\n      valuesFiles: [../../../v.yaml]\n",
		want: []string{`gitops.yaml:8: apps[0].helm.valuesFiles[0]: "../../../v.yaml" leaves the repository`},
	}, {
		name: "namespace",
		yaml: head + "apps:\n  - name: a\n    path: a\n    namespace: Prod\n",
		want: []string{`gitops.yaml:6: apps[0].namespace: "Prod" is not a valid namespace`},
	}, {
		name: "source with file URL and no ref",
		yaml: head + "apps:\n  - name: a\n    source:\n      git: file:///srv/repo\n",
		want: []string{"gitops.yaml:6: apps[0].source.git: uses file://, which is not allowed", "gitops.yaml:5: apps[0].source.ref: missing"},
	}, {
		name: "source with credentials",
		yaml: head + "apps:\n  - name: a\n    source: {git: 'https://bob:s3cr3t@example.com/a.git', ref: 'a..b'}\n",
		want: []string{"gitops.yaml:5: apps[0].source.git: contains credentials", `apps[0].source.ref: "a..b" is not a valid Git ref`},
		not:  []string{"s3cr3t"},
	}, {
		name: "source option injection",
		yaml: head + "apps:\n  - name: a\n    source: {git: '--upload-pack=evil', ref: main}\n",
		want: []string{"apps[0].source.git: starts with '-'"},
	}, {
		name: "source not allowed",
		yaml: head + "apps:\n  - name: a\n    source: {git: 'https://github.com/acme-evil/a', ref: main}\nsources:\n  allow: [https://github.com/acme]\n",
		want: []string{"gitops.yaml:5: apps[0].source.git: is not allowed by sources.allow"},
	}, {
		name: "empty patch",
		yaml: head + "apps:\n  - name: a\n    path: a\n    patches:\n      - patch: ''\n",
		want: []string{"gitops.yaml:7: apps[0].patches[0].patch: is empty"},
	}, {
		name: "patch not YAML",
		yaml: head + "apps:\n  - name: a\n    path: a\n    patches:\n      - patch: '{a: [}'\n",
		want: []string{"gitops.yaml:7: apps[0].patches[0].patch: does not parse as YAML"},
	}, {
		name: "JSON6902 without target and with a bad op",
		yaml: head + "apps:\n  - name: a\n    path: a\n    patches:\n      - patch: |\n          - op: replace\n            path: /spec/replicas\n          - op: frobnicate\n            path: /x\n",
		want: []string{
			"gitops.yaml:7: apps[0].patches[0].patch: is a JSON6902 patch, which needs a target",
			"apps[0].patches[0].patch: operation 1 (patch line 1): replace needs a value",
			`apps[0].patches[0].patch: operation 2 (patch line 3): has op "frobnicate"`,
		},
	}, {
		name: "strategic merge without kind",
		yaml: head + "apps:\n  - name: a\n    path: a\n    patches:\n      - patch: |\n          metadata: {name: a}\n          spec: {replicas: 2}\n",
		want: []string{"gitops.yaml:7: apps[0].patches[0].patch: is a strategic-merge patch without a target, so it needs kind and metadata.name"},
	}, {
		name: "strategic merge without name",
		yaml: head + "apps:\n  - name: a\n    path: a\n    patches:\n      - patch: |\n          kind: Deployment\n          spec: {replicas: 2}\n",
		want: []string{"apps[0].patches[0].patch: is a strategic-merge patch without a target, so it needs metadata.name to say which Deployment"},
	}, {
		name: "patch written as a mapping",
		yaml: head + "apps:\n  - name: a\n    path: a\n    patches:\n      - patch:\n          kind: Deployment\n",
		want: []string{"gitops.yaml:8: apps[0].patches[0].patch: expected a string, got a mapping; write the patch as a block string (patch: |)"},
	}, {
		name: "image override",
		yaml: head + "apps:\n  - name: a\n    path: a\n    images:\n      - newTag: '1.0'\n      - name: nginx\n      - name: nginx\n        digest: md5:abc\n",
		want: []string{
			"gitops.yaml:7: apps[0].images[0].name: missing",
			"gitops.yaml:8: apps[0].images[1]: changes nothing; set newName, newTag or digest",
			`gitops.yaml:10: apps[0].images[2].digest: "md5:abc" is not a digest`,
		},
	}, {
		name: "helm",
		yaml: head + "apps:\n  - name: a\n    path: a\n    helm:\n      repo: https://charts.example.com\n      version: '>>1'\n  - name: b\n    helm: {chart: oci://ghcr.io/x/y, repo: https://charts.example.com}\n",
		want: []string{
			"gitops.yaml:6: apps[0].helm.chart: missing",
			`gitops.yaml:8: apps[0].helm.version: ">>1" is not a version or semver range`,
			"gitops.yaml:10: apps[1].helm.repo: is set with an oci:// chart",
		},
	}, {
		name: "dependsOn",
		yaml: head + "apps:\n  - name: web\n    path: a\n    dependsOn: [web, infar]\n  - name: infra\n    path: b\n",
		want: []string{
			`gitops.yaml:6: apps[0].dependsOn[0]: app "web" depends on itself`,
			`gitops.yaml:6: apps[0].dependsOn[1]: app "infar" is not defined (did you mean "infra"?)`,
		},
	}, {
		name: "cycle",
		yaml: head + "apps:\n  - name: a\n    path: a\n    dependsOn: [b]\n  - name: b\n    path: b\n    dependsOn: [c]\n  - name: c\n    path: c\n    dependsOn: [a]\n  - name: d\n    path: d\n    dependsOn: [a]\n",
		want: []string{"gitops.yaml:12: apps[2].dependsOn[0]: dependency cycle a → b → c → a; remove one of these dependsOn entries"},
	}, {
		name: "unknown approval",
		yaml: head + "apps:\n  - name: a\n    path: a\n    approval: prdo\napprovals:\n  - name: prod\n",
		want: []string{`gitops.yaml:6: apps[0].approval: approval policy "prdo" is not defined (did you mean "prod"?)`},
	}, {
		name: "sync modes",
		yaml: head + "sync: always\napps:\n  - {name: a, path: a, sync: onmerge}\n  - {name: b, path: b, sync: manual}\n",
		want: []string{
			`gitops.yaml:3: sync: is "always"; use onMerge (the bot applies approved merges) or manual (only on /gitops sync)`,
			`gitops.yaml:5: apps[0].sync: is "onmerge"; use onMerge (the bot applies approved merges) or manual (only on /gitops sync)`,
		},
	}, {
		name: "approval",
		yaml: head + "approvals:\n  - name: prod\n    minApprovals: -1\n  - name: prod\n    minApprovals: two\n",
		want: []string{"gitops.yaml:7: approvals[1].minApprovals: expected a whole number, got a string"},
	}, {
		name: "approval policies",
		yaml: head + `approvals:
  - name: prod
    minApprovals: -1
    reviewers: {teams: ['', 'acme platform', acme/], users: [' ', acme/bob, 'bob smith']}
    dismissStale: yes
  - name: prod
  - name: Staging
`,
		want: []string{
			"gitops.yaml:5: approvals[0].minApprovals: is negative; use 0 or more",
			"gitops.yaml:6: approvals[0].reviewers.teams[0]: is empty; name a team",
			`gitops.yaml:6: approvals[0].reviewers.teams[1]: "acme platform" is not a team`,
			`gitops.yaml:6: approvals[0].reviewers.teams[2]: "acme/" is not a team`,
			"gitops.yaml:6: approvals[0].reviewers.users[0]: is empty; name a user",
			`gitops.yaml:6: approvals[0].reviewers.users[1]: "acme/bob" names a team; move it to reviewers.teams`,
			`gitops.yaml:6: approvals[0].reviewers.users[2]: "bob smith" is not a user name`,
			`gitops.yaml:7: approvals[0].dismissStale: is "yes"; use commit (an approval counts only on the commit it was given on) or plan`,
			`gitops.yaml:8: approvals[1].name: approval policy name "prod" is already used by approvals[0] (line 4)`,
			`gitops.yaml:9: approvals[2].name: approval policy name "Staging" is not a DNS label`,
		},
	}, {
		name: "approval policy shape",
		yaml: head + "approvals:\n  - name: prod\n    dismissStale: [commit]\n    windows: {kind: allow}\n",
		want: []string{
			"gitops.yaml:5: approvals[0].dismissStale: expected a string, got a list",
			"gitops.yaml:6: approvals[0].windows: expected a list, got a mapping",
		},
	}, {
		name: "deploy windows",
		yaml: head + `approvals:
  - name: prod
    windows:
      - {kind: allow, schedule: "0 9 * * 1-5", duration: 8h, timeZone: Europe/Berlin}
      - {kind: alow, schedule: "0 25 * * *", duration: 1h, timeZone: Mars/Olympus}
      - {schedule: "0 9 * *", timeZone: Local}
      - kind: deny
        schedule: "@reboot"
        duration: 0s
`,
		want: []string{
			`gitops.yaml:7: approvals[0].windows[1].kind: is "alow" (did you mean "allow"?); use allow or deny`,
			`gitops.yaml:7: approvals[0].windows[1].schedule: cron schedule "0 25 * * *": hour 25 is out of range 0-23`,
			`gitops.yaml:7: approvals[0].windows[1].timeZone: unknown time zone "Mars/Olympus"; use an IANA name such as Europe/Berlin`,
			"gitops.yaml:8: approvals[0].windows[2].kind: missing; use allow (syncs only inside) or deny (no syncs inside)",
			`gitops.yaml:8: approvals[0].windows[2].schedule: cron schedule "0 9 * *" has 4 fields, want 5`,
			"gitops.yaml:8: approvals[0].windows[2].duration: missing; set how long the window stays open after each start, such as 8h",
			"gitops.yaml:8: approvals[0].windows[2].timeZone: time zone Local is the zone of whichever machine evaluates the policy",
			`gitops.yaml:10: approvals[0].windows[3].schedule: cron schedule "@reboot": unknown macro`,
			"gitops.yaml:11: approvals[0].windows[3].duration: missing",
		},
	}, {
		name: "deploy window shape",
		yaml: head + "approvals:\n  - name: prod\n    windows:\n      - kind: deny\n        schedule: '0 18 * * FRI'\n        duration: -63h\n      - {kind: deny, schedule: '0 0 * * *', duration: 1h, when: later}\n",
		want: []string{
			`gitops.yaml:8: approvals[0].windows[0].duration: duration "-63h" is negative`,
			"gitops.yaml:9: approvals[0].windows[1]: field `when` not found in deploy window; known fields: kind, schedule, duration, timeZone",
		},
	}, {
		name: "image policy shape",
		yaml: head + "images:\n  - name: a\n    image: ghcr.io/a:1.0\n    policy: {}\n  - name: b\n    image: ghcr.io/b\n    policy: {semver: {range: '>=1'}, numerical: {order: up}}\n",
		want: []string{
			`gitops.yaml:5: images[0].image: "ghcr.io/a:1.0" is not an image repository; write it without tag or digest`,
			"gitops.yaml:6: images[0].policy: sets 0 of semver, alphabetical and numerical; set exactly one",
			"gitops.yaml:9: images[1].policy: sets 2 of semver, alphabetical and numerical",
			`gitops.yaml:9: images[1].policy.numerical.order: is "up"; use asc or desc`,
		},
	}, {
		name: "image policy regexps",
		yaml: head + "images:\n  - name: a\n    image: ghcr.io/a\n    policy:\n      semver:\n        range: 'not a range'\n    filterTags: {pattern: '^main-(?P<ts>[0-9]+)$', extract: '$tss'}\n    exclude: ['(']\n    pullRequest: {title: '{{.Name'}\n",
		want: []string{
			`gitops.yaml:8: images[0].policy.semver.range: "not a range" is not a semver range`,
			`gitops.yaml:9: images[0].filterTags.extract: refers to group "tss", which pattern does not define (did you mean "ts"?)`,
			`gitops.yaml:10: images[0].exclude[0]: "(" is not a regular expression`,
			"gitops.yaml:11: images[0].pullRequest.title: is not a valid template",
		},
	}, {
		name: "image pull request templates",
		yaml: head + "images:\n  - name: a\n    image: ghcr.io/a\n    policy: {numerical: {}}\n    pullRequest:\n      body: '{{.Tag}}'\n      commitMessage: '{{range .Updates}}{{.Policy}} {{.Version}}{{end}}'\n",
		want: []string{
			`gitops.yaml:8: images[0].pullRequest.body: is not a valid template: template: pullRequest:1:2: executing "pullRequest" at <.Tag>: can't evaluate field Tag`,
			`gitops.yaml:9: images[0].pullRequest.commitMessage: is not a valid template`,
		},
	}, {
		name: "filter pattern",
		yaml: head + "images:\n  - name: a\n    image: ghcr.io/a\n    policy: {numerical: {}}\n    filterTags: {pattern: '[', extract: '$1'}\n",
		want: []string{`gitops.yaml:7: images[0].filterTags.pattern: "[" is not a regular expression`},
	}, {
		name: "filter extract",
		yaml: head + "images:\n  - name: a\n    image: ghcr.io/a\n    policy: {numerical: {}}\n    filterTags:\n      pattern: '^main-[a-f0-9]+-(?P<ts>[0-9]+)$'\n      extract: '$stamp'\n" +
			"  - name: b\n    image: ghcr.io/b\n    policy: {numerical: {}}\n    filterTags: {pattern: '^build-([0-9]+)$', extract: '$2'}\n" +
			"  - name: c\n    image: ghcr.io/c\n    policy: {numerical: {}}\n    filterTags: {pattern: '^build-([0-9]+)$', extract: 'build'}\n",
		want: []string{
			`gitops.yaml:9: images[0].filterTags.extract: refers to group "stamp", which pattern does not define; name a group with (?P<stamp>...)`,
			"gitops.yaml:13: images[1].filterTags.extract: refers to group $2, but pattern has 1 groups",
			`gitops.yaml:17: images[2].filterTags.extract: "build" refers to no group of pattern; write $name for a group (?P<name>...)`,
		},
	}, {
		name: "exclude regexps",
		yaml: head + "images:\n  - name: a\n    image: ghcr.io/a\n    policy: {numerical: {}}\n    exclude:\n      - '^.*\\.sig$'\n      - '^(?P<x.*$'\n",
		want: []string{"gitops.yaml:9: images[0].exclude[1]: \"^(?P<x.*$\" is not a regular expression: error parsing regexp: invalid named capture"},
	}, {
		name: "negative minimumAge",
		yaml: head + "images:\n  - name: a\n    image: ghcr.io/a\n    policy: {numerical: {}}\n    minimumAge: -24h\n",
		want: []string{`gitops.yaml:7: images[0].minimumAge: duration "-24h" is negative; use a positive duration such as 5m`},
	}, {
		name: "minimumAge without unit",
		yaml: head + "images:\n  - name: a\n    image: ghcr.io/a\n    policy: {numerical: {}}\n    minimumAge: 7\n",
		want: []string{"gitops.yaml:7: images[0].minimumAge: duration 7 has no unit; write it with one, such as 7s or 7m"},
	}, {
		name: "digest mode",
		yaml: head + "images:\n  - name: a\n    image: ghcr.io/a\n    policy: {numerical: {}}\n    digest: pinn\n  - name: b\n    image: ghcr.io/b\n    policy: {numerical: {}}\n    digest: sha256\n",
		want: []string{
			`gitops.yaml:7: images[0].digest: is "pinn" (did you mean "pin"?); use pin (write image:tag@sha256:…, keeping the tag for readers) or none (write image:tag)`,
			`gitops.yaml:11: images[1].digest: is "sha256"; use pin`,
		},
	}, {
		name: "group name",
		yaml: head + "images:\n  - name: a\n    image: ghcr.io/a\n    policy: {numerical: {}}\n    group: Base Images\n  - name: b\n    image: ghcr.io/b\n    policy: {numerical: {}}\n    group: -base\n",
		want: []string{
			`gitops.yaml:7: images[0].group: "Base Images" is not a DNS label; use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit`,
			`gitops.yaml:11: images[1].group: "-base" is not a DNS label`,
		},
	}, {
		name: "group branches differ",
		yaml: head + "images:\n  - name: a\n    image: ghcr.io/a\n    policy: {numerical: {}}\n    group: base\n  - name: b\n    image: ghcr.io/b\n    policy: {numerical: {}}\n    group: base\n    pullRequest: {branch: 'deps/{{.Name}}'}\n",
		want: []string{`gitops.yaml:12: images[1].pullRequest.branch: is "deps/{{.Name}}", but images[0] (line 4) in group "base" has "gitops/images/{{.Name}}"; the policies of a group share one pull request, so give them the same branch or leave it unset`},
	}, {
		name: "group named like a policy",
		yaml: head + "images:\n  - name: web\n    image: ghcr.io/web\n    policy: {numerical: {}}\n  - name: a\n    image: ghcr.io/a\n    policy: {numerical: {}}\n    group: web\n",
		want: []string{`gitops.yaml:10: images[1].group: group "web" has the name of images[0] (line 4), which is not in the group, so both pull requests would use one branch; rename the group or the policy`},
	}, {
		name: "durations",
		yaml: head + "apps:\n  - name: a\n    path: a\n    wait: {timeout: 5 minutes}\nimages:\n  - name: a\n    image: ghcr.io/a\n    policy: {numerical: {}}\n    interval: 300\n",
		want: []string{
			`gitops.yaml:6: apps[0].wait.timeout: invalid duration "5 minutes"; use a number with a unit such as 30s, 5m or 1h`,
			"gitops.yaml:11: images[0].interval: duration 300 has no unit; write it with one, such as 300s or 300m",
		},
	}, {
		name: "providers",
		yaml: head + `notifications:
  providers:
    - name: chat
      type: slak
      secretRef: {env: SLACK}
    - name: chat
      type: slack
    - name: hook
      type: generic
      secretRef: {env: 'https://hooks.example.com/s3cr3t', file: /x}
    - name: am
      type: alertmanager
      address: 'https://u:s3cr3t@am.example.com'
`,
		want: []string{
			`gitops.yaml:6: notifications.providers[0].type: "slak" is not a provider type (did you mean "slack"?)`,
			`gitops.yaml:8: notifications.providers[1].name: provider name "chat" is already used by notifications.providers[0] (line 5)`,
			"gitops.yaml:8: notifications.providers[1].secretRef: missing; a slack provider needs a secret",
			"gitops.yaml:12: notifications.providers[2].secretRef: sets both env and file; keep one",
			"gitops.yaml:12: notifications.providers[2].secretRef.env: is not an environment variable name",
			"gitops.yaml:15: notifications.providers[3].address: contains credentials",
		},
		not: []string{"s3cr3t"},
	}, {
		name: "secret pasted as secretRef",
		yaml: head + "notifications:\n  providers:\n    - name: chat\n      type: discord\n      secretRef: 's3cr3t'\n",
		want: []string{"gitops.yaml:7: notifications.providers[0].secretRef: expected a mapping (secretRef: env, file), got a string"},
		not:  []string{"s3cr3t"},
	}, {
		name: "alerts",
		yaml: head + "notifications:\n  providers: [{name: chat, type: slack, secretRef: {file: /run/secrets/slack}}]\n  alerts:\n    - providers: [caht]\n      events: [sync.failed, sync.faled, bogus]\n      severity: debug\n      apps: [nope]\n    - {}\n",
		want: []string{
			`gitops.yaml:6: notifications.alerts[0].providers[0]: provider "caht" is not defined (did you mean "chat"?)`,
			`gitops.yaml:7: notifications.alerts[0].events[1]: "sync.faled" is not an event (did you mean "sync.failed"?)`,
			`gitops.yaml:7: notifications.alerts[0].events[2]: "bogus" is not an event`,
			`gitops.yaml:8: notifications.alerts[0].severity: is "debug"; use info or error`,
			`gitops.yaml:9: notifications.alerts[0].apps[0]: app "nope" is not defined`,
			"gitops.yaml:10: notifications.alerts[1].providers: missing",
			"gitops.yaml:10: notifications.alerts[1].events: missing",
		},
	}, {
		name: "sources",
		yaml: head + "sources:\n  allow: ['https://github.com/acme', 'git@github.com:acme', 'github.com/acme']\n",
		want: []string{`gitops.yaml:4: sources.allow[2]: "github.com/acme" is not a URL prefix`},
	}, {
		name: "wrong shapes",
		yaml: head + "apps:\n  - name: a\n    path: a\n    dependsOn: infra\n    prune: yes please\n    helm: oci://x\n",
		want: []string{
			"gitops.yaml:6: apps[0].dependsOn: expected a list, got a string",
			"gitops.yaml:7: apps[0].prune: expected true or false, got a string",
			"gitops.yaml:8: apps[0].helm: expected a mapping (helm: chart, repo,",
		},
	}, {
		name: "repeated key",
		yaml: head + "apps:\n  - name: a\n    path: a\n    path: b\n",
		want: []string{"gitops.yaml:6: apps[0].path: field `path` is repeated (first at line 5); keep one"},
	}, {
		name: "not a mapping",
		yaml: "- a\n- b\n",
		want: []string{"gitops.yaml:1: expected a mapping (the repository file: apiVersion, kind, apps"},
	}, {
		name: "two documents",
		yaml: head + "---\n" + head,
		want: []string{"gitops.yaml:3: a second YAML document starts here"},
	}, {
		name: "empty",
		yaml: "",
		want: []string{"gitops.yaml: file is empty"},
	}, {
		name: "syntax error",
		yaml: head + "apps:\n  - name: a\n    path: [a\n",
		want: []string{"gitops.yaml:4: invalid YAML: did not find expected ',' or ']'"},
	}, {
		name: "alias bomb in free-form values",
		yaml: head + "apps:\n  - name: a\n    path: a\n    helm:\n      chart: c\n      values:\n" + billionLaughs("        "),
		want: []string{"gitops.yaml: the document expands too many aliases (*name); write the values out instead"},
	}, {
		name: "alias bomb through merge keys",
		yaml: head + "apps:\n" + mergeBomb(),
		want: []string{"the document expands to too many values through aliases"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(writeRepo(t, tt.yaml))
			if err == nil {
				t.Fatalf("Load succeeded; want errors %q", tt.want)
			}
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q; got:\n%s", w, msg)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(msg, n) {
					t.Errorf("error leaks %q:\n%s", n, msg)
				}
			}
		})
	}
}

// billionLaughs is nine levels of nine aliases each: 9^9 values if expanded.
func billionLaughs(indent string) string {
	var b strings.Builder
	b.WriteString(indent + `l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]` + "\n")
	for i := 1; i < 9; i++ {
		prev := "*l" + string(rune('0'+i-1))
		b.WriteString(indent + "l" + string(rune('0'+i)) + ": &l" + string(rune('0'+i)) + " [" + strings.TrimSuffix(strings.Repeat(prev+",", 9), ",") + "]\n")
	}
	return b.String()
}

// mergeBomb nests merge keys so that one app expands to 10^8 merged mappings.
func mergeBomb() string {
	var b strings.Builder
	b.WriteString("  - &m0 {name: a, path: a}\n")
	for i := 1; i < 9; i++ {
		prev := "*m" + string(rune('0'+i-1))
		b.WriteString("  - &m" + string(rune('0'+i)) + " {<<: [" + strings.TrimSuffix(strings.Repeat(prev+", ", 10), ", ") + "]}\n")
	}
	return b.String()
}

func TestLoadLimits(t *testing.T) {
	big := "apiVersion: gitops.kubectl.dev/v1alpha1\nkind: Repository\n# " + strings.Repeat("x", MaxFileBytes) + "\n"
	if _, err := Load(writeRepo(t, big)); err == nil || !strings.Contains(err.Error(), "larger than the 1048576-byte limit") {
		t.Errorf("oversized file: err = %v", err)
	}
	if _, err := Load(t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("folder: err = %v", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), FileName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v, want os.ErrNotExist", err)
	}
}

func TestErrorsCarryPositions(t *testing.T) {
	_, err := Load(writeRepo(t, "apiVersion: gitops.kubectl.dev/v1alpha1\nkind: Repository\napps:\n  - name: a\n    path: /a\n  - name: b\n"))
	var errs []*Error
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *Error
		if !errors.As(e, &fe) {
			t.Fatalf("%v is not an *Error", e)
		}
		errs = append(errs, fe)
	}
	if len(errs) != 2 || errs[0].Line != 5 || errs[0].Field != "apps[0].path" || errs[1].Line != 6 || errs[1].Field != "apps[1].path" {
		t.Errorf("errors = %+v", errs)
	}
}

func TestValidateBuiltInCode(t *testing.T) {
	r := &Repository{APIVersion: APIVersion, Kind: Kind, Apps: []App{{Name: "a", Path: "a", DependsOn: []string{"b"}}}}
	r.Default()
	err := r.Validate()
	if err == nil || err.Error() != `gitops.yaml: apps[0].dependsOn[0]: app "b" is not defined; name an app from apps` {
		t.Errorf("Validate() = %v", err)
	}
}

func TestValidateImagePolicyBuiltInCode(t *testing.T) {
	// Without Default: no pull request templates, no digest mode. The
	// decoder rejects a negative duration in a file; Validate catches one
	// built in code.
	r := &Repository{APIVersion: APIVersion, Kind: Kind, Images: []ImagePolicy{
		{Name: "a", Image: "ghcr.io/a", Policy: TagPolicy{Numerical: &OrderPolicy{}}, Group: "g", MinimumAge: Duration{-time.Hour}},
		{Name: "b", Image: "ghcr.io/b", Policy: TagPolicy{Numerical: &OrderPolicy{}}, Group: "g", PullRequest: &PullRequest{Branch: DefaultPullRequestBranch}},
	}}
	err := r.Validate()
	if err == nil || err.Error() != "gitops.yaml: images[0].minimumAge: is negative; use a positive duration such as 24h" {
		t.Errorf("Validate() = %v", err)
	}
}

func TestParse(t *testing.T) {
	r, err := Parse("base:gitops.yaml", []byte("apiVersion: gitops.kubectl.dev/v1alpha1\nkind: Repository\napps: [{name: a, path: a}]\n"))
	if err != nil || r.File != "" || r.Apps[0].Line != 3 {
		t.Fatalf("Parse = %+v, %v", r, err)
	}
	_, err = Parse("base:gitops.yaml", []byte("kind: Repository\n"))
	if err == nil || !strings.HasPrefix(err.Error(), "base:gitops.yaml:1: apiVersion: missing") {
		t.Errorf("Parse error = %v", err)
	}
}

func TestSourcePolicyAllows(t *testing.T) {
	p := SourcePolicy{Allow: []string{"https://github.com/acme/", "git@gitlab.com:", "https://example.com/one.git"}}
	for url, want := range map[string]bool{
		"https://github.com/acme/app.git":      true,
		"https://github.com/acme":              true,
		"https://github.com/acme-evil/app.git": false,
		"https://github.com/acmeapp":           false,
		"git@gitlab.com:group/app.git":         true,
		"git@gitlab.com.evil:group/app.git":    false,
		"https://example.com/one":              true,
		"https://example.com/one.git":          true,
		"https://example.com/one-two.git":      false,
	} {
		if got := p.Allows(url); got != want {
			t.Errorf("Allows(%q) = %v, want %v", url, got, want)
		}
	}
	if !(SourcePolicy{}).Allows("https://anything.example/x") {
		t.Error("empty policy must allow everything")
	}
}

func TestDurationRoundTrip(t *testing.T) {
	d := Duration{90 * time.Second}
	v, err := d.MarshalYAML()
	if err != nil || v != "1m30s" {
		t.Errorf("MarshalYAML = %v, %v", v, err)
	}
}

func TestFind(t *testing.T) {
	root := t.TempDir()
	mkdir := func(p string) string {
		t.Helper()
		p = filepath.Join(root, p)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write := func(p string) string {
		t.Helper()
		p = filepath.Join(root, p)
		if err := os.WriteFile(p, []byte("kind: Repository\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// root/outer/gitops.yaml is outside the Git repository root/outer/repo.
	mkdir("outer/repo/.git")
	mkdir("outer/repo/apps/web")
	write("outer/gitops.yaml")
	manifest := write("outer/repo/apps/web/deploy.yaml")
	// root/mono is a repository with gitops.yaml at its top; .git is a file, as in a worktree.
	mkdir("mono/apps/web")
	write("mono/.git")
	found := write("mono/gitops.yaml")
	// A gitops.yaml folder is not a repository file.
	mkdir("mono/apps/gitops.yaml")

	for _, start := range []string{write("mono/apps/web/deploy.yaml"), filepath.Join(root, "mono/apps/web"), filepath.Join(root, "mono/apps/web/"), filepath.Join(root, "mono")} {
		if got, err := Find(start); err != nil || got != found {
			t.Errorf("Find(%q) = %q, %v; want %q", start, got, err, found)
		}
	}
	if _, err := Find(manifest); !errors.Is(err, ErrNotFound) {
		t.Errorf("Find past .git: err = %v, want ErrNotFound", err)
	}
	if _, err := Find(mkdir("empty")); !errors.Is(err, ErrNotFound) {
		t.Errorf("Find without a repository: err = %v, want ErrNotFound", err)
	}
	if _, err := Find(filepath.Join(root, "missing")); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("Find(missing path): err = %v, want a stat error", err)
	}

	t.Chdir(filepath.Join(root, "mono/apps/web"))
	if got, err := Find("."); err != nil || got != filepath.Join("..", "..", FileName) {
		t.Errorf(`Find(".") = %q, %v; want ../../gitops.yaml`, got, err)
	}
}
