package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/kubectl-gitops/kubectl-gitops/bot"
	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
	"github.com/kubectl-gitops/kubectl-gitops/internal/scm/github"
	"github.com/kubectl-gitops/kubectl-gitops/internal/scm/gitlab"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/scmtest/githubfake"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/scmtest/gitlabfake"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/scmtest/memforge"
)

// The bot's intake with the real forge parsers, in process: public payload
// corpora, structurally invalid deliveries, replays and fuzzing through the
// bot's HTTP handler. Package bot tests its intake with a fake parser; it
// never imports a forge's package, so the two meet here. Every delivery a
// forge may send must be answered 2xx (accepted or ignored) when authentic
// and 401 when not, never 4xx or 5xx for a payload shape the parsers did
// not expect.

const (
	corpusGitHubSecret = "corpus-github-secret"
	corpusGitLabToken  = "corpus-gitlab-token"
)

// corpusGitHubEvents are the X-GitHub-Event kinds replayed from
// @octokit/webhooks-examples: the ones the bot reads, and installation,
// which it must ignore gracefully.
var corpusGitHubEvents = []string{"pull_request", "pull_request_review", "issue_comment", "push", "ping", "installation"}

// corpusBot is a bot with both forges, the real parsers and an allowlist of
// every repository; jobs are queued but never run (Run is not called).
func corpusBot(t testing.TB, metrics *bot.Metrics) *bot.Bot {
	t.Helper()
	ghParser, err := github.NewWebhooks([]byte(corpusGitHubSecret))
	if err != nil {
		t.Fatal(err)
	}
	glParser, err := gitlab.NewWebhook(corpusGitLabToken)
	if err != nil {
		t.Fatal(err)
	}
	cfg := bot.Config{
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
	}
	forge := memforge.New()
	b, err := bot.New(cfg, bot.Deps{
		Parsers:   map[scm.Kind]scm.WebhookParser{scm.GitHub: ghParser, scm.GitLab: glParser},
		Forges:    map[scm.Kind]scm.Forges{scm.GitHub: forge, scm.GitLab: forge},
		Previewer: bot.NewPreviewer(cfg),
		Metrics:   metrics,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
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
	b := corpusBot(t, nil)
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
	b := corpusBot(t, nil)
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

// scrapeBot returns the bot's /metrics page.
func scrapeBot(t testing.TB, b *bot.Bot) string {
	t.Helper()
	rec := httptest.NewRecorder()
	b.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("metrics = %d", rec.Code)
	}
	return rec.Body.String()
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
	b := corpusBot(t, m)
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
	page := scrapeBot(t, b)
	if !strings.Contains(page, `gitops_bot_forge_requests_total{code="2xx",provider="github"}`) {
		t.Errorf("a GitHub API call was not counted:\n%s", page)
	}
}

// serve sends one delivery straight to the handler.
func serve(b *bot.Bot, path string, header http.Header, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	b.Handler().ServeHTTP(rec, req)
	return rec
}

func githubHeader(event, delivery string, body []byte) http.Header {
	h := http.Header{}
	h.Set("X-GitHub-Event", event)
	if delivery != "" {
		h.Set("X-GitHub-Delivery", delivery)
	}
	h.Set("X-Hub-Signature-256", githubfake.Sign([]byte(corpusGitHubSecret), body))
	return h
}

func gitlabHeader(event, key string) http.Header {
	h := http.Header{}
	h.Set("X-Gitlab-Event", event)
	h.Set("X-Gitlab-Token", corpusGitLabToken)
	if key != "" {
		h.Set("Idempotency-Key", key)
	}
	return h
}

// queueDepth reads gitops_bot_queue_depth from the bot's metrics.
func queueDepth(t *testing.T, b *bot.Bot) string {
	t.Helper()
	for line := range strings.Lines(scrapeBot(t, b)) {
		if v, ok := strings.CutPrefix(line, "gitops_bot_queue_depth "); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatal("no gitops_bot_queue_depth")
	return ""
}

const (
	ghRepo   = `{"id":1,"name":"app","full_name":"acme/app","owner":{"login":"acme"}}`
	ghSender = `{"login":"dev"}`
	ghPR     = `{"number":7,"state":"open","head":{"sha":"abc","ref":"x"},"base":{"ref":"main"},"user":{"login":"dev"}}`
)

func TestInvalidGitHubDeliveriesNeverQueued(t *testing.T) {
	for _, tc := range []struct {
		name, event, body string
		want              int
	}{
		{"issue_comment without issue", "issue_comment", `{"action":"created","comment":{"id":1,"body":"/gitops preview","user":{"login":"dev"}},"repository":` + ghRepo + `,"sender":` + ghSender + `}`, 400},
		{"issue_comment issue null", "issue_comment", `{"action":"created","issue":null,"comment":{"id":1,"body":"/gitops preview","user":{"login":"dev"}},"repository":` + ghRepo + `}`, 400},
		{"issue_comment comment null", "issue_comment", `{"action":"created","issue":{"number":7,"pull_request":{"url":"x"}},"comment":null,"repository":` + ghRepo + `}`, 400},
		{"issue_comment number 0", "issue_comment", `{"action":"created","issue":{"number":0,"pull_request":{"url":"x"}},"comment":{"id":1,"body":"/gitops preview","user":{"login":"dev"}},"repository":` + ghRepo + `}`, 400},
		{"issue_comment repository null", "issue_comment", `{"action":"created","issue":{"number":7,"pull_request":{"url":"x"}},"comment":{"id":1,"body":"/gitops preview","user":{"login":"dev"}},"repository":null}`, 400},
		{"pull_request null", "pull_request", `{"action":"opened","number":7,"pull_request":null,"repository":` + ghRepo + `,"sender":` + ghSender + `}`, 400},
		{"pull_request missing", "pull_request", `{"action":"opened","number":7,"repository":` + ghRepo + `}`, 400},
		{"pull_request number 0", "pull_request", `{"action":"opened","pull_request":{"number":0},"repository":` + ghRepo + `}`, 400},
		{"pull_request number -1", "pull_request", `{"action":"opened","pull_request":{"number":-1},"repository":` + ghRepo + `}`, 400},
		{"pull_request repository null", "pull_request", `{"action":"opened","pull_request":` + ghPR + `,"repository":null}`, 400},
		{"pull_request wrong number type", "pull_request", `{"action":"opened","pull_request":{"number":"7"},"repository":` + ghRepo + `}`, 400},
		{"pull_request wrong object type", "pull_request", `{"action":"opened","pull_request":"7","repository":` + ghRepo + `}`, 400},
		{"pull_request repository a number", "pull_request", `{"action":"opened","pull_request":` + ghPR + `,"repository":5}`, 400},
		{"review submitted pull_request null", "pull_request_review", `{"action":"submitted","review":{"state":"approved"},"pull_request":null,"repository":` + ghRepo + `}`, 400},
		{"push repository null", "push", `{"ref":"refs/heads/main","after":"abc","repository":null}`, 400},
		{"not JSON", "pull_request", `{"action":`, 400},
		{"JSON null", "pull_request", `null`, 400},
		{"JSON array", "issue_comment", `[]`, 400},
		// Valid shapes with missing optional parts are fine.
		{"pull_request sender null", "pull_request", `{"action":"opened","pull_request":` + ghPR + `,"repository":` + ghRepo + `,"sender":null}`, 202},
		{"issue_comment on an issue", "issue_comment", `{"action":"created","issue":{"number":3},"comment":{"id":1,"body":"/gitops preview","user":{"login":"dev"}},"repository":` + ghRepo + `}`, 200},
		{"review commented, no pull_request", "pull_request_review", `{"action":"commented","repository":` + ghRepo + `}`, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := corpusBot(t, nil)
			body := []byte(tc.body)
			rec := serve(b, "/webhooks/github", githubHeader(tc.event, "d-"+tc.name, body), body)
			if rec.Code != tc.want {
				t.Errorf("status %d (%s), want %d", rec.Code, strings.TrimSpace(rec.Body.String()), tc.want)
			}
			want := "0"
			if tc.want == http.StatusAccepted {
				want = "1"
			}
			if got := queueDepth(t, b); got != want {
				t.Errorf("queue depth %s, want %s", got, want)
			}
		})
	}
}

func TestInvalidGitLabDeliveriesIgnoredNeverQueued(t *testing.T) {
	const (
		project = `{"id":1,"path_with_namespace":"group/app"}`
		user    = `{"username":"dev"}`
		mr      = `{"iid":7,"last_commit":{"id":"abc"}}`
	)
	for _, tc := range []struct {
		name, event, body string
		want              int
		queued            string
	}{
		{"object_attributes null", "Merge Request Hook", `{"object_kind":"merge_request","user":` + user + `,"project":` + project + `,"object_attributes":null}`, 200, "0"},
		{"object_attributes missing", "Merge Request Hook", `{"object_kind":"merge_request","project":` + project + `}`, 200, "0"},
		{"iid 0", "Merge Request Hook", `{"object_kind":"merge_request","project":` + project + `,"object_attributes":{"iid":0,"action":"open"}}`, 200, "0"},
		{"iid -1", "Merge Request Hook", `{"object_kind":"merge_request","project":` + project + `,"object_attributes":{"iid":-1,"action":"open"}}`, 200, "0"},
		{"project null", "Merge Request Hook", `{"object_kind":"merge_request","project":null,"object_attributes":{"iid":7,"action":"open"}}`, 200, "0"},
		{"iid a string", "Merge Request Hook", `{"object_kind":"merge_request","project":` + project + `,"object_attributes":{"iid":"7","action":"open"}}`, 200, "0"},
		{"note merge_request null", "Note Hook", `{"object_kind":"note","user":` + user + `,"project":` + project + `,"object_attributes":{"id":1,"note":"/gitops preview","noteable_type":"MergeRequest"},"merge_request":null}`, 200, "0"},
		{"note user null", "Note Hook", `{"object_kind":"note","user":null,"project":` + project + `,"object_attributes":{"id":1,"note":"/gitops preview","noteable_type":"MergeRequest"},"merge_request":` + mr + `}`, 200, "0"},
		{"note object_attributes null", "Note Hook", `{"object_kind":"note","user":` + user + `,"project":` + project + `,"object_attributes":null,"merge_request":` + mr + `}`, 200, "0"},
		{"not JSON", "Merge Request Hook", `{"object_kind":`, 200, "0"},
		{"JSON null", "Note Hook", `null`, 200, "0"},
		{"valid", "Merge Request Hook", `{"object_kind":"merge_request","user":` + user + `,"project":` + project + `,"object_attributes":{"iid":7,"action":"open","last_commit":{"id":"abc"}}}`, 202, "1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := corpusBot(t, nil)
			rec := serve(b, "/webhooks/gitlab", gitlabHeader(tc.event, "k-"+tc.name), []byte(tc.body))
			if rec.Code != tc.want {
				t.Errorf("status %d (%s), want %d", rec.Code, strings.TrimSpace(rec.Body.String()), tc.want)
			}
			if got := queueDepth(t, b); got != tc.queued {
				t.Errorf("queue depth %s, want %s", got, tc.queued)
			}
		})
	}
}

func TestReplayUnderNewDeliveryIDIsDuplicate(t *testing.T) {
	b := corpusBot(t, nil)
	body := []byte(`{"action":"synchronize","pull_request":` + ghPR + `,"repository":` + ghRepo + `,"sender":` + ghSender + `}`)
	for i, tc := range []struct {
		delivery string
		want     string
	}{
		{"d-original", "accepted"},
		{"d-original", "duplicate"},       // a redelivery
		{"d-forged-new-id", "duplicate"},  // a replay under a new id
		{"", "duplicate"},                 // a replay without an id
		{"d-forged-another", "duplicate"}, // and again
	} {
		rec := serve(b, "/webhooks/github", githubHeader("pull_request", tc.delivery, body), body)
		if got := strings.TrimSpace(rec.Body.String()); got != tc.want || rec.Code/100 != 2 {
			t.Errorf("delivery %d (%q): %d %q, want 2xx %q", i, tc.delivery, rec.Code, got, tc.want)
		}
	}
	// A distinct event (another head) is its own delivery, even without an id.
	other := bytes.Replace(body, []byte(`"sha":"abc"`), []byte(`"sha":"def"`), 1)
	if rec := serve(b, "/webhooks/github", githubHeader("pull_request", "", other), other); rec.Code != http.StatusAccepted {
		t.Errorf("a distinct event: %d %q, want 202", rec.Code, rec.Body.String())
	}
}

func TestGitLabReplayUnderNewIdempotencyKeyIsDuplicate(t *testing.T) {
	b := corpusBot(t, nil)
	body := []byte(`{"object_kind":"merge_request","user":{"username":"dev"},"project":{"id":1,"path_with_namespace":"group/app"},"object_attributes":{"iid":7,"action":"update","oldrev":"a","last_commit":{"id":"abc"}}}`)
	for i, tc := range []struct {
		key, want string
	}{
		{"key-1", "accepted"},
		{"key-1", "duplicate"},
		{"key-2", "duplicate"},
		{"", "duplicate"},
	} {
		rec := serve(b, "/webhooks/gitlab", gitlabHeader("Merge Request Hook", tc.key), body)
		if got := strings.TrimSpace(rec.Body.String()); got != tc.want || rec.Code/100 != 2 {
			t.Errorf("delivery %d (key %q): %d %q, want 2xx %q", i, tc.key, rec.Code, got, tc.want)
		}
	}
}

// TestDistinctEventsNeverCollide replays every pull-request-like example of
// both corpora once: distinct bodies are never taken for one another.
func TestDistinctEventsNeverCollide(t *testing.T) {
	b := corpusBot(t, nil)
	seen := map[string]bool{}
	for i, raw := range githubfake.WebhookExamples(t)["pull_request"] {
		if seen[string(raw)] {
			continue
		}
		seen[string(raw)] = true
		body := []byte(raw)
		rec := serve(b, "/webhooks/github", githubHeader("pull_request", fmt.Sprintf("d-%d", i), body), body)
		if strings.TrimSpace(rec.Body.String()) == "duplicate" {
			t.Errorf("pull_request[%d] was taken for a duplicate", i)
		}
	}
	for _, p := range gitlabfake.WebhookCorpus(t) {
		rec := serve(b, "/webhooks/gitlab", gitlabHeader(p.Event, "k-"+p.Name), p.Body)
		if strings.TrimSpace(rec.Body.String()) == "duplicate" {
			t.Errorf("%s was taken for a duplicate", p.Name)
		}
	}
}

// fuzzGitHubEvents are every X-GitHub-Event kind the parser reads.
var fuzzGitHubEvents = []string{"ping", "pull_request", "pull_request_review", "issue_comment", "push", "installation", "installation_repositories"}

// FuzzGitHubWebhook sends signed payloads of every event kind through the
// real handler and the real parser: never a panic, never a 5xx, and a
// queued job only for a pull request with a positive number or a push to
// a branch.
func FuzzGitHubWebhook(f *testing.F) {
	examples := githubfake.WebhookExamples(f)
	for _, event := range fuzzGitHubEvents {
		for _, raw := range examples[event] {
			f.Add(event, []byte(raw))
		}
		f.Add(event, []byte(`{"action":"created","issue":null,"pull_request":null,"repository":null,"sender":null}`))
	}
	f.Fuzz(func(t *testing.T, event string, body []byte) {
		b := corpusBot(t, nil)
		rec := serve(b, "/webhooks/github", githubHeader(event, "", body), body)
		if rec.Code >= 500 {
			t.Fatalf("%s: status %d", event, rec.Code)
		}
		if rec.Code == http.StatusAccepted && strings.TrimSpace(rec.Body.String()) == "accepted" {
			assertQueuedValid(t, body)
		}
	})
}

// FuzzGitLabWebhook is FuzzGitHubWebhook for GitLab: every authenticated
// delivery is answered 2xx (GitLab disables a hook after 4xx), never 5xx.
func FuzzGitLabWebhook(f *testing.F) {
	events := map[string]bool{}
	for _, p := range gitlabfake.WebhookCorpus(f) {
		f.Add(p.Event, p.Body)
		events[p.Event] = true
	}
	for event := range events {
		f.Add(event, []byte(`{"object_attributes":null,"merge_request":null,"project":null,"user":null}`))
	}
	f.Fuzz(func(t *testing.T, event string, body []byte) {
		b := corpusBot(t, nil)
		rec := serve(b, "/webhooks/gitlab", gitlabHeader(event, ""), body)
		if rec.Code/100 != 2 {
			t.Fatalf("%s: status %d (%s), want 2xx", event, rec.Code, strings.TrimSpace(rec.Body.String()))
		}
	})
}

// assertQueuedValid checks an accepted GitHub body names a pull request
// with a positive number, wherever the event keeps it.
func assertQueuedValid(t *testing.T, body []byte) {
	t.Helper()
	var p struct {
		PullRequest *struct{ Number int } `json:"pull_request"`
		Issue       *struct{ Number int } `json:"issue"`
		Ref         string                `json:"ref"`
		Repository  *struct {
			FullName string `json:"full_name"`
		} `json:"repository"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("accepted a body that does not decode: %v", err)
	}
	switch {
	case p.PullRequest != nil && p.PullRequest.Number > 0:
	case p.Issue != nil && p.Issue.Number > 0:
	case strings.HasPrefix(p.Ref, "refs/heads/") && p.Repository != nil && p.Repository.FullName != "":
		// A push to a branch, for a bot that syncs.
	default:
		t.Fatalf("accepted a delivery without a pull request number: %s", body)
	}
}
