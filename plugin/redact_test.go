package plugin

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/testenv"
)

// secretCanary starts every Secret value of TestSecretsNeverPrinted.
const secretCanary = "CANARY-plugin-9c2e"

// canaryManifest is a Secret with canary values in data, stringData and
// the last-applied annotation, labelled for the echo policy when label is
// set.
func canaryManifest(name, version, label string) string {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	labels := ""
	if label != "" {
		labels = fmt.Sprintf("  labels: {%s: %q}\n", testenv.EchoLabel, label)
	}
	lastApplied := `{"apiVersion":"v1","kind":"Secret","data":{"old":"` + b64(secretCanary+"-last-"+version) + `"},"stringData":{"token":"` + secretCanary + `-string-last-` + version + `"}}`
	return "apiVersion: v1\nkind: Secret\nmetadata:\n  name: " + name + "\n" + labels +
		"  annotations:\n    kubectl.kubernetes.io/last-applied-configuration: '" + lastApplied + "'\n" +
		"data:\n  password: " + b64(secretCanary+"-data-"+version) + "\n" +
		"stringData:\n  token: " + secretCanary + "-string-" + version + "\n"
}

// TestSecretsNeverPrinted runs every command that talks to the cluster, in
// every output format, on an app whose Secrets hold canary values in data,
// stringData and the last-applied annotation, while an admission policy
// refuses one of them and warns about another with messages that quote
// their values: no output, warning or error shows a value, as written or
// base64-encoded.
func TestSecretsNeverPrinted(t *testing.T) {
	ns := env.Namespace(t)
	env.EchoSecretPolicy(t, ns)
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("gitops.yaml", fmt.Sprintf("apiVersion: gitops.kubectl.dev/v1alpha1\nkind: Repository\napps:\n  - {name: vault, path: vault, namespace: %s, prune: true}\n", ns))
	write("vault/db.yaml", canaryManifest("db", "one", ""))
	write("vault/warned.yaml", canaryManifest("warned", "one", testenv.EchoWarn))
	write("vault/denied.yaml", canaryManifest("denied", "one", testenv.EchoDeny))
	if err := os.Mkdir(filepath.Join(dir, ".git"), 0o755); err != nil {
		t.Fatal(err)
	}

	leaks := []string{secretCanary, base64.StdEncoding.EncodeToString([]byte(secretCanary[:15]))}
	check := func(what string, wantCode int, wantErr string, code int, out, errOut string) {
		t.Helper()
		if code != wantCode {
			t.Errorf("%s: exit %d, want %d\nstdout: %s\nstderr: %s", what, code, wantCode, out, errOut)
		}
		if wantErr != "" && !strings.Contains(errOut, wantErr) {
			t.Errorf("%s: stderr lacks %q:\n%s", what, wantErr, errOut)
		}
		for _, leak := range leaks {
			if strings.Contains(out, leak) || strings.Contains(errOut, leak) {
				t.Errorf("%s shows a Secret value (%q)\nstdout: %s\nstderr: %s", what, leak, out, errOut)
			}
		}
	}

	// The first apply: db and warned are applied, denied is refused.
	code, out, errOut := onCluster(t, dir, "apply", "vault")
	check("apply", ExitError, "echo: data", code, out, errOut)
	if !strings.Contains(errOut, "Warning") {
		t.Errorf("apply: the policy's warning about Secret warned is not shown:\n%s", errOut)
	}

	// New values: every diff shows db and warned changed, masked, and
	// denied as an error.
	write("vault/db.yaml", canaryManifest("db", "two", ""))
	write("vault/warned.yaml", canaryManifest("warned", "two", testenv.EchoWarn))
	for _, format := range []string{"text", "markdown", "json"} {
		code, out, errOut := onCluster(t, dir, "diff", "vault", "-o", format, "--color", "never")
		check("diff -o "+format, ExitError, "echo: data", code, out, errOut)
		if !strings.Contains(out, "db") {
			t.Errorf("diff -o %s: the change of Secret db is not reported:\n%s", format, out)
		}
	}
	code, out, errOut = onCluster(t, dir, "apply", "vault", "--dry-run")
	check("apply --dry-run", ExitError, "echo: data", code, out, errOut)
	for _, format := range []string{"text", "json"} {
		code, out, errOut := onCluster(t, dir, "status", "vault", "-o", format)
		check("status -o "+format, ExitOK, "", code, out, errOut)
	}
	code, out, errOut = onCluster(t, dir, "apply", "vault", "--force-conflicts")
	check("apply again", ExitError, "echo: data", code, out, errOut)
}
