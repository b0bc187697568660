package bot_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubectl-gitops/kubectl-gitops/bot"
	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
	"github.com/kubectl-gitops/kubectl-gitops/internal/scm/github"
	"github.com/kubectl-gitops/kubectl-gitops/internal/scm/gitlab"
	"github.com/kubectl-gitops/kubectl-gitops/internal/scm/scmtest/githubfake"
	"github.com/kubectl-gitops/kubectl-gitops/internal/scm/scmtest/gitlabfake"
)

// These tests replay public payload corpora through the bot's real HTTP
// handler with the real forge parsers: every delivery a forge may send must
// be answered 2xx (accepted or ignored) when authentic and 401 when not,
// never 4xx or 5xx for a payload shape the parsers did not expect.

const (
	corpusGitHubSecret = "corpus-github-secret"
	corpusGitLabToken  = "corpus-gitlab-token"
)

// corpusGitHubEvents are the X-GitHub-Event kinds replayed from
// @octokit/webhooks-examples: the ones the bot reads, and installation,
// which it must ignore gracefully.
var corpusGitHubEvents = []string{"pull_request", "pull_request_review", "issue_comment", "push", "ping", "installation"}

// noForges hands out no forge client: jobs, if any ran, would fail before
// doing anything. The handler never needs one.
type noForges struct{}

func (noForges) Forge(context.Context, scm.RepoRef, int64) (scm.Forge, error) {
	return nil, errors.New("corpus test: no forge")
}

// corpusBot is a bot with both forges, the real parsers and an allowlist of
// every repository; jobs are queued but never run (Run is not called).
func corpusBot(t *testing.T, metrics *bot.Metrics) (*bot.Bot, *atomic.Int64) {
	t.Helper()
	ghParser, err := github.NewWebhooks([]byte(corpusGitHubSecret))
	if err != nil {
		t.Fatal(err)
	}
	glParser, err := gitlab.NewWebhook(corpusGitLabToken)
	if err != nil {
		t.Fatal(err)
	}
	var work atomic.Int64
	b, err := bot.New(bot.Config{
		GitHub: &bot.GitHubConfig{
			Token:         bot.NewSecret("unused"),
			WebhookSecret: bot.NewSecret(corpusGitHubSecret),
			Repositories:  []string{"*"},
		},
		GitLab: &bot.GitLabConfig{
			Token:         bot.NewSecret("unused"),
			WebhookSecret: bot.NewSecret(corpusGitLabToken),
			Repositories:  []string{"*"},
		},
		CacheDir: t.TempDir(),
	}, bot.Deps{
		Parsers: map[scm.Kind]scm.WebhookParser{scm.GitHub: ghParser, scm.GitLab: glParser},
		Forges:  map[scm.Kind]scm.Forges{scm.GitHub: noForges{}, scm.GitLab: noForges{}},
		Work: func(context.Context, scm.Forge, scm.PRRef, bot.Trigger) error {
			work.Add(1)
			return nil
		},
		Metrics: metrics,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b, &work
}

// corpusPost sends one delivery and returns the status and body.
func corpusPost(t *testing.T, srv *httptest.Server, path, contentType string, header http.Header, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(out))
}

func TestGitHubWebhookCorpus(t *testing.T) {
	examples := githubfake.WebhookExamples(t)
	b, _ := corpusBot(t, nil)
	srv := httptest.NewServer(b.Handler())
	t.Cleanup(srv.Close)

	replayed, results := 0, map[string]int{}
	for _, event := range corpusGitHubEvents {
		if len(examples[event]) == 0 {
			t.Errorf("the corpus has no %s example", event)
		}
		for i, raw := range examples[event] {
			name := fmt.Sprintf("%s[%d]", event, i)
			body := []byte(raw)
			h := http.Header{}
			h.Set("X-GitHub-Event", event)
			h.Set("X-GitHub-Delivery", "corpus-"+name)
			h.Set("X-Hub-Signature-256", githubfake.Sign([]byte(corpusGitHubSecret), body))
			code, result := corpusPost(t, srv, "/webhooks/github", "application/json", h, body)
			if code < 200 || code > 299 {
				t.Errorf("%s: status %d (%s), want 2xx", name, code, result)
			}
			results[result]++
			replayed++

			// The same payload as GitHub's form encoding, verified on
			// the raw form body.
			form := []byte("payload=" + url.QueryEscape(string(raw)))
			h.Set("X-GitHub-Delivery", "corpus-form-"+name)
			h.Set("X-Hub-Signature-256", githubfake.Sign([]byte(corpusGitHubSecret), form))
			if code, result := corpusPost(t, srv, "/webhooks/github", "application/x-www-form-urlencoded", h, form); code < 200 || code > 299 {
				t.Errorf("%s (form): status %d (%s), want 2xx", name, code, result)
			}

			// A forgery: right shape, wrong secret.
			h.Set("X-GitHub-Delivery", "corpus-forged-"+name)
			h.Set("X-Hub-Signature-256", githubfake.Sign([]byte("wrong-secret"), body))
			if code, _ := corpusPost(t, srv, "/webhooks/github", "application/json", h, body); code != http.StatusUnauthorized {
				t.Errorf("%s with a wrong signature: status %d, want 401", name, code)
			}
		}
	}
	t.Logf("replayed %d GitHub examples: %v", replayed, results)
	// The corpus (7.x) holds about 60 examples of these kinds; far fewer
	// means it was not read.
	if replayed < 40 {
		t.Errorf("replayed %d GitHub examples, want at least 40", replayed)
	}
	if results["accepted"] == 0 {
		t.Error("no GitHub example was accepted for a job: the parser or allowlist lost them all")
	}
}

func TestGitLabWebhookCorpus(t *testing.T) {
	corpus := gitlabfake.WebhookCorpus(t)
	b, _ := corpusBot(t, nil)
	srv := httptest.NewServer(b.Handler())
	t.Cleanup(srv.Close)

	replayed, results := 0, map[string]int{}
	for _, p := range corpus {
		name, event, body := p.Name, p.Event, p.Body
		h := http.Header{}
		h.Set("X-Gitlab-Event", event)
		h.Set("X-Gitlab-Event-UUID", "corpus-"+name)
		h.Set("X-Gitlab-Token", corpusGitLabToken)
		code, result := corpusPost(t, srv, "/webhooks/gitlab", "application/json", h, body)
		if code < 200 || code > 299 {
			t.Errorf("%s (%s): status %d (%s), want 2xx", name, event, code, result)
		}
		results[result]++
		replayed++

		h.Set("X-Gitlab-Event-UUID", "corpus-forged-"+name)
		h.Set("X-Gitlab-Token", "wrong-token")
		if code, _ := corpusPost(t, srv, "/webhooks/gitlab", "application/json", h, body); code != http.StatusUnauthorized {
			t.Errorf("%s with a wrong token: status %d, want 401", name, code)
		}
	}
	t.Logf("replayed %d GitLab payloads: %v", replayed, results)
	if replayed < 20 {
		t.Errorf("replayed %d GitLab payloads, want at least 20", replayed)
	}
	if results["accepted"] == 0 {
		t.Error("no GitLab payload was accepted for a job: the parser or allowlist lost them all")
	}
}

// corpusGitLabDir is client-go's testdata/webhooks, from the module cache.
// corpusScrape returns the bot's /metrics page.
func corpusScrape(t *testing.T, b *bot.Bot) string {
	t.Helper()
	rec := httptest.NewRecorder()
	b.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("metrics = %d", rec.Code)
	}
	return rec.Body.String()
}

func corpusWantMetrics(t *testing.T, page string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(page, w) {
			t.Errorf("metrics lack %q", w)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", page)
	}
}

func TestMetricsTransportCountsForgeRequests(t *testing.T) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, "{}")
	}))
	t.Cleanup(api.Close)
	m := bot.NewMetrics()
	b, _ := corpusBot(t, m)
	client := &http.Client{Transport: m.Transport(scm.GitLab, nil)}
	for _, p := range []string{"/ok", "/ok", "/missing"} {
		resp, err := client.Get(api.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
	}
	// A request that gets no response at all.
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	if resp, err := client.Get(dead.URL); err == nil {
		_ = resp.Body.Close()
		t.Fatal("request to a closed server succeeded")
	}
	m.RateLimitWait(scm.GitHub)(1500 * time.Millisecond)

	corpusWantMetrics(t, corpusScrape(t, b),
		`gitops_bot_forge_requests_total{code="2xx",provider="gitlab"} 2`,
		`gitops_bot_forge_requests_total{code="4xx",provider="gitlab"} 1`,
		`gitops_bot_forge_requests_total{code="error",provider="gitlab"} 1`,
		`gitops_bot_forge_rate_limit_waits_total{provider="github"} 1`,
		`gitops_bot_forge_rate_limit_wait_seconds_total{provider="github"} 1.5`,
	)
}

// TestMetricsWiredIntoGitHubForge drives the real GitHub client through the
// metrics transport, as cmd/gitops-bot wires it.
func TestMetricsWiredIntoGitHubForge(t *testing.T) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"login": "gitops-bot", "id": 1})
	}))
	t.Cleanup(api.Close)
	m := bot.NewMetrics()
	b, _ := corpusBot(t, m)
	forges, err := github.New(github.Options{
		BaseURL:         api.URL + "/api/v3/",
		Token:           "t",
		Transport:       m.Transport(scm.GitHub, nil),
		OnRateLimitWait: m.RateLimitWait(scm.GitHub),
	})
	if err != nil {
		t.Fatal(err)
	}
	forge, err := forges.Forge(t.Context(), scm.RepoRef{Kind: scm.GitHub, FullName: "acme/app"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := forge.BotLogin(t.Context()); err != nil {
		t.Fatal(err)
	}
	page := corpusScrape(t, b)
	if !strings.Contains(page, `gitops_bot_forge_requests_total{code="2xx",provider="github"}`) {
		t.Errorf("a GitHub API call was not counted:\n%s", page)
	}
}
