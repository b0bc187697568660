package plugin

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-gitops/kubectl-gitops/internal/images"
	"github.com/kubectl-gitops/kubectl-gitops/internal/lease"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/registrytest"
)

// scanRepo is a repository whose files mark web (behind the registry) and
// api (current), on the registry at host.
func scanRepo(t *testing.T, host string) string {
	t.Helper()
	repo := t.TempDir()
	write(t, repo, "gitops.yaml", fmt.Sprintf(`apiVersion: gitops.kubectl.dev/v1alpha1
kind: Repository
apps:
  - name: web
    path: apps/web
images:
  - name: web
    image: %[1]s/acme/web
    policy: {semver: {range: ">=1.0.0"}}
  - name: api
    image: %[1]s/acme/api
    policy: {semver: {range: "~2.0"}}
`, host))
	write(t, repo, "apps/web/deploy.yaml", fmt.Sprintf(`# the web tier
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      containers:
        - name: web
          image: %[1]s/acme/web:1.0.0   # {"$imagepolicy": "web"}
        - name: api
          image: '%[1]s/acme/api:2.0.1' # {"$imagepolicy": "api"}
`, host))
	write(t, repo, "apps/web/values.yaml", "image:\r\n  tag: \"1.1.0\" # {\"$imagepolicy\": \"web:tag\"}\r\n  pullPolicy: IfNotPresent\r\n")
	return repo
}

func scanRows(t *testing.T, out string) map[string]imageRow {
	t.Helper()
	var rows []imageRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("scan -o json: %v\n%s", err, out)
	}
	m := map[string]imageRow{}
	for _, r := range rows {
		m[r.Policy] = r
	}
	return m
}

func TestImagesScanUpdate(t *testing.T) {
	reg := registrytest.Start(t)
	reg.Push(t, "acme/web", "1.0.0", "1.1.0", "1.2.0", "1.3.0-rc.1", "sha256-abc.sig", "latest")
	reg.Push(t, "acme/api", "2.0.0", "2.0.1", "3.0.0")
	repo := scanRepo(t, reg.Host)
	before := readTree(t, repo)

	code, out, errOut := run(t, repo, "images", "scan", "-o", "json", "--bot-namespace", "")
	if code != ExitOK {
		t.Fatalf("scan: exit %d: %s", code, errOut)
	}
	rows := scanRows(t, out)
	if web := rows["web"]; web.Action != images.ActionUpdate || web.Latest != "1.2.0" || strings.Join(web.Current, ",") != "1.0.0,1.1.0" ||
		!strings.Contains(web.Why, "1.0.0, 1.1.0 → 1.2.0") || len(web.Markers) != 2 {
		t.Errorf("web = %+v, want an update from 1.0.0 and 1.1.0 to 1.2.0 with two markers", web)
	}
	if api := rows["api"]; api.Action != images.ActionCurrent || api.Latest != "2.0.1" {
		t.Errorf("api = %+v, want current at 2.0.1 (~2.0 leaves 3.0.0 out)", api)
	}

	code, out, errOut = run(t, repo, "images", "scan", "--bot-namespace", "")
	if code != ExitOK || !strings.Contains(out, "POLICY") || !strings.Contains(out, "1.0.0,1.1.0") || !strings.Contains(out, "up to date") {
		t.Errorf("scan table: exit %d:\n%s%s", code, out, errOut)
	}

	code, out, errOut = run(t, repo, "images", "update", "--bot-namespace", "")
	if code != ExitOK {
		t.Fatalf("update: exit %d: %s", code, errOut)
	}
	var minus, plus []string
	for l := range strings.Lines(out) {
		switch {
		case strings.HasPrefix(l, "---"), strings.HasPrefix(l, "+++"):
		case strings.HasPrefix(l, "-"):
			minus = append(minus, l)
		case strings.HasPrefix(l, "+"):
			plus = append(plus, l)
		}
	}
	if len(minus) != 2 || len(plus) != 2 || !strings.Contains(plus[0], "acme/web:1.2.0   # {") || !strings.Contains(plus[1], `tag: "1.2.0" # {`) {
		t.Errorf("update diff changes %d/%d lines, want exactly the two marked ones:\n%s", len(minus), len(plus), out)
	}
	if got := readTree(t, repo); !maps.Equal(got, before) {
		t.Error("update without --write changed the files")
	}

	code, out, errOut = run(t, repo, "images", "update", "--write", "--bot-namespace", "")
	if code != ExitOK || !strings.Contains(out, "apps/web/deploy.yaml:11: "+reg.Host+"/acme/web:1.0.0 → "+reg.Host+"/acme/web:1.2.0") {
		t.Fatalf("update --write: exit %d:\n%s%s", code, out, errOut)
	}
	after := readTree(t, repo)
	wantValues := strings.ReplaceAll(before["apps/web/values.yaml"], `"1.1.0"`, `"1.2.0"`)
	if after["apps/web/values.yaml"] != wantValues {
		t.Errorf("values.yaml = %q, want only the tag changed (CRLF kept): %q", after["apps/web/values.yaml"], wantValues)
	}
	wantDeploy := strings.ReplaceAll(before["apps/web/deploy.yaml"], "acme/web:1.0.0", "acme/web:1.2.0")
	if after["apps/web/deploy.yaml"] != wantDeploy {
		t.Errorf("deploy.yaml =\n%s\nwant\n%s", after["apps/web/deploy.yaml"], wantDeploy)
	}
	code, _, errOut = run(t, repo, "images", "update", "--write", "--bot-namespace", "")
	if code != ExitOK || !strings.Contains(errOut, "nothing to update") {
		t.Errorf("second update: exit %d, stderr %q; want nothing to update", code, errOut)
	}
}

func TestImagesScanShowsBotState(t *testing.T) {
	reg := registrytest.Start(t)
	reg.Push(t, "acme/web", "1.0.0", "1.1.0", "1.2.0")
	reg.Push(t, "acme/api", "2.0.1")
	repo := scanRepo(t, reg.Host)
	botNS := env.Namespace(t)
	hold, _ := json.Marshal(images.Hold{At: "1.1.0", Above: "1.2.0", Since: time.Now()})
	records := &lease.Records{Client: env.Clientset, Namespace: botNS, Name: lease.ImageStateName}
	if err := records.Put(t.Context(), lease.ImageHoldKey("github:acme/app", "web"), string(hold)); err != nil {
		t.Fatal(err)
	}
	if err := (&lease.Suspensions{Client: env.Clientset, Namespace: botNS}).Suspend(t.Context(), "api", "ana: release freeze"); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := onCluster(t, repo, "images", "scan", "-o", "json", "--bot-namespace", botNS)
	if code != ExitOK {
		t.Fatalf("scan: exit %d: %s", code, errOut)
	}
	rows := scanRows(t, out)
	if web := rows["web"]; web.Action != images.ActionHeld || web.Hold == nil || !strings.Contains(web.Why, "/gitops unhold") {
		t.Errorf("web = %+v, want held with the way to lift it", web)
	}
	if api := rows["api"]; !strings.Contains(api.Suspended, "ana: release freeze") {
		t.Errorf("api = %+v, want suspended by ana", api)
	}
	code, out, _ = onCluster(t, repo, "images", "scan", "--bot-namespace", botNS)
	if code != ExitOK || !strings.Contains(out, "held at 1.1.0") || !strings.Contains(out, "suspended (by ana: release freeze)") {
		t.Errorf("scan table: exit %d:\n%s", code, out)
	}
}

func TestImagesScanBadInput(t *testing.T) {
	reg := registrytest.Start(t)
	reg.Push(t, "acme/web", "1.0.0")
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, repo string)
		args  []string
		code  int
		want  string
	}{
		{"unknown policy", nil, []string{"images", "scan", "nope"}, ExitError, `"nope" is not an image policy of`},
		{"bad output", nil, []string{"images", "scan", "-o", "yaml"}, ExitError, `--output "yaml": use table or json`},
		{"unknown policy in a marker", func(t *testing.T, repo string) {
			write(t, repo, "apps/web/extra.yaml", "image: x:1 # {\"$imagepolicy\": \"wbe\"}\n")
		}, []string{"images", "update"}, ExitError, `apps/web/extra.yaml:1: marker names image policy "wbe"`},
		{"missing repository in the registry", func(t *testing.T, repo string) {
			data, _ := os.ReadFile(filepath.Join(repo, "gitops.yaml"))
			write(t, repo, "gitops.yaml", strings.ReplaceAll(string(data), "acme/api", "acme/gone"))
		}, []string{"images", "scan"}, ExitError, "could not be scanned"},
		{"no gitops.yaml", func(t *testing.T, repo string) {
			if err := os.Remove(filepath.Join(repo, "gitops.yaml")); err != nil {
				t.Fatal(err)
			}
		}, []string{"images", "scan"}, ExitError, "no gitops.yaml found above"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repo := scanRepo(t, reg.Host)
			if tc.setup != nil {
				tc.setup(t, repo)
			}
			before := readTree(t, repo)
			code, out, errOut := run(t, repo, append(tc.args, "--bot-namespace", "")...)
			if code != tc.code || !strings.Contains(out+errOut, tc.want) {
				t.Errorf("exit %d, output:\n%s%s\nwant exit %d and %q", code, out, errOut, tc.code, tc.want)
			}
			if got := readTree(t, repo); !maps.Equal(got, before) {
				t.Error("the files changed")
			}
		})
	}
}

// readTree reads every file under dir by slash-separated path.
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		rel, _ := filepath.Rel(dir, path)
		out[filepath.ToSlash(rel)] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
