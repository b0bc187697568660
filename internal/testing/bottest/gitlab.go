package bottest

import (
	"cmp"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/scmtest/gitlabfake"
)

// GitLabOptions say what a bot configured for GitLab serves.
type GitLabOptions struct {
	// Binary is the gitops-bot executable.
	Binary string
	// BaseURL is the API the bot talks to; empty means the fake's URL.
	BaseURL string
	// Token is the access token the fake accepts; the bot gets it, as the
	// deployed bot does, through the environment (GITLAB_TOKEN).
	Token string
	// WebhookSecret is the hook's secret token (X-Gitlab-Token), passed
	// through the environment (GITLAB_WEBHOOK_SECRET).
	WebhookSecret string
	// Repository is the one project on the allowlist, group/name.
	Repository string
	// Kubeconfig reaches the cluster named "test", the default cluster.
	Kubeconfig string
	// Logs receives the bot's log (nil: kept in a file in the test's
	// temporary folder, printed when the test fails).
	Logs io.Writer
	// Env is added to the bot's environment.
	Env []string
	// ReconcileInterval defaults to 1h (no reconcile after the first).
	ReconcileInterval time.Duration
	// Config is appended to the bot's YAML config (top-level keys).
	Config string
}

// StartGitLab runs the bot configured for GitLab against fake (its API at
// opts.BaseURL, or fake.URL), waits until /readyz answers, and stops it
// (SIGINT, then SIGKILL after 20 s) when tb ends. Webhooks go to
// http://Addr/webhooks/gitlab with X-Gitlab-Token: opts.WebhookSecret.
func StartGitLab(tb testing.TB, fake *gitlabfake.Server, opts GitLabOptions) *Bot {
	tb.Helper()
	if opts.Token == "" || opts.WebhookSecret == "" {
		tb.Fatal("bottest: StartGitLab needs the fake's token and a webhook secret")
	}
	dir := tb.TempDir()
	addr := freeAddr(tb)
	config := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(config, fmt.Appendf(nil, `listen: %q
gitlab:
  baseURL: %q
  token: {env: GITLAB_TOKEN}
  webhookSecret: {env: GITLAB_WEBHOOK_SECRET}
  repositories: [%q]
clusters:
  test: {kubeconfig: %q}
defaultCluster: test
cacheDir: %q
reconcileInterval: %s
%s`, addr, cmp.Or(opts.BaseURL, fake.URL), opts.Repository, opts.Kubeconfig, filepath.Join(dir, "cache"),
		cmp.Or(opts.ReconcileInterval, time.Hour), opts.Config), 0o600); err != nil {
		tb.Fatal(err)
	}
	env := append([]string{"GITLAB_TOKEN=" + opts.Token, "GITLAB_WEBHOOK_SECRET=" + opts.WebhookSecret}, opts.Env...)
	return launch(tb, opts.Binary, dir, addr, config, env, opts.Logs)
}
