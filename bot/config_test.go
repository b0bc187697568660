package bot

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func lookup(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestParseConfig(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "gl-token")
	if err := os.WriteFile(keyFile, []byte("gl-canary-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	data := []byte(`
listen: ":9000"
github:
  appID: 42
  privateKeyFile: /keys/app.pem
  webhookSecret: {env: GH_HOOK}
  repositories: ["acme/*", "!acme/secret"]
gitlab:
  baseURL: https://gitlab.example.com
  token: {file: ` + keyFile + `}
  webhookSecret: {env: GL_HOOK}
  repositories: ["group/app"]
clusters:
  prod: {kubeconfig: /kube/prod, context: prod}
defaultCluster: prod
jobTimeout: 2m
allowForks: true
`)
	cfg, err := ParseConfig(data, lookup(map[string]string{"GH_HOOK": "gh-canary", "GL_HOOK": "gl-canary"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != ":9000" || cfg.GitHub.AppID != 42 || cfg.JobTimeout != 2*time.Minute || !cfg.AllowForks {
		t.Errorf("cfg = %+v", cfg)
	}
	if cfg.Workers != DefaultWorkers || cfg.ReconcileInterval != DefaultReconcileInterval || cfg.MaxBodyBytes != 3<<20 {
		t.Errorf("defaults not applied: %+v", cfg)
	}
	if cfg.GitHub.WebhookSecret.Reveal() != "gh-canary" || cfg.GitLab.Token.Reveal() != "gl-canary-token" {
		t.Errorf("secrets not resolved")
	}
	if cfg.Clusters["prod"].Context != "prod" {
		t.Errorf("clusters = %+v", cfg.Clusters)
	}
}

func TestParseConfigErrors(t *testing.T) {
	base := "github:\n  token: {env: TOKEN}\n  webhookSecret: {env: HOOK}\n"
	vars := lookup(map[string]string{"TOKEN": "t", "HOOK": "h", "EMPTY": ""})
	for name, tc := range map[string]struct{ yaml, want string }{
		"inline secret":     {"github:\n  token: {env: TOKEN}\n  webhookSecret: hunter2\n", "never an inline value"},
		"both env and file": {"github:\n  token: {env: TOKEN}\n  webhookSecret: {env: HOOK, file: /x}\n", "exactly one"},
		"unset env":         {"github:\n  token: {env: TOKEN}\n  webhookSecret: {env: NOPE}\n", "NOPE is not set"},
		"empty secret":      {"github:\n  token: {env: TOKEN}\n  webhookSecret: {env: EMPTY}\n", "webhookSecret is empty"},
		"missing secret":    {"github:\n  token: {env: TOKEN}\n", "webhookSecret is empty"},
		"no forge":          {"listen: :1\n", "at least one forge"},
		"unknown field":     {base + "wokers: 3\n", "wokers"},
		"bad pattern":       {base + "  repositories: ['a/*/b']\n", "only at the end"},
		"bad workers":       {base + "workers: -1\n", "workers"},
		"default cluster":   {base + "defaultCluster: nope\n", "not among clusters"},
		"missing file":      {"github:\n  token: {env: TOKEN}\n  webhookSecret: {file: /does/not/exist}\n", "/does/not/exist"},
		"gitlab no secret":  {"gitlab:\n  token: {env: TOKEN}\n", "gitlab.webhookSecret is empty"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.yaml), vars)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to mention %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error echoes the inline secret: %v", err)
			}
		})
	}
}

func TestSecretRedacted(t *testing.T) {
	cfg := testConfig()
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("cfg", "cfg", cfg, "secret", cfg.GitHub.WebhookSecret)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("cfg", "cfg", cfg, "secret", cfg.GitHub.WebhookSecret)
	j, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	y, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	out := strings.Join([]string{
		logs.String(), string(j), string(y),
		fmt.Sprintf("%v %+v %#v %s", cfg.GitHub, cfg.GitHub, cfg.GitHub, cfg.GitHub.WebhookSecret),
		fmt.Sprintf("%v %+v %#v", *cfg.GitHub, *cfg.GitHub, *cfg.GitHub),
	}, "\n")
	for _, s := range []string{canary, "canary-token"} {
		if strings.Contains(out, s) {
			t.Errorf("secret %q printed:\n%s", s, out)
		}
	}
	if !strings.Contains(out, redacted) {
		t.Errorf("no redaction marker in:\n%s", out)
	}
}
