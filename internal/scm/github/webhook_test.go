package github

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/scmtest/githubfake"
)

func TestNewWebhooksRefusesEmptySecret(t *testing.T) {
	if _, err := NewWebhooks(nil); err == nil {
		t.Error("NewWebhooks accepted an empty secret")
	}
	if _, err := NewWebhooks([]byte("s"), []byte{}); err == nil {
		t.Error("NewWebhooks accepted an empty second secret")
	}
}

func TestVerifyDuringRotation(t *testing.T) {
	body := []byte(`{"zen":"x"}`)
	w, err := NewWebhooks([]byte("old"), []byte("new"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"old", "new"} {
		if err := w.Verify(http.Header{"X-Hub-Signature-256": {githubfake.Sign([]byte(s), body)}}, body); err != nil {
			t.Errorf("signed with %s: %v", s, err)
		}
	}
	if err := w.Verify(http.Header{"X-Hub-Signature-256": {githubfake.Sign([]byte("other"), body)}}, body); !errors.Is(err, scm.ErrBadSignature) {
		t.Errorf("signed with another secret: %v", err)
	}
}

func FuzzVerify(f *testing.F) {
	f.Add([]byte("Hello, World!"), "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
	f.Add([]byte("{}"), "sha1=00")
	secret := []byte("It's a Secret to Everybody")
	w, err := NewWebhooks(secret)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, sig string) {
		if err := w.Verify(http.Header{"X-Hub-Signature-256": {githubfake.Sign(secret, body)}}, body); err != nil {
			t.Errorf("a correct signature failed: %v", err)
		}
		if err := w.Verify(http.Header{"X-Hub-Signature-256": {sig}}, body); err == nil && sig != githubfake.Sign(secret, body) {
			// Hex is case-insensitive; anything else accepted is a forgery.
			if !strings.EqualFold(sig, githubfake.Sign(secret, body)) {
				t.Errorf("accepted signature %q", sig)
			}
		}
	})
}

func TestVerify(t *testing.T) {
	secret := []byte("It's a Secret to Everybody")
	body := []byte("Hello, World!")
	w, err := NewWebhooks(secret)
	if err != nil {
		t.Fatal(err)
	}
	sha1mac := hmac.New(sha1.New, secret)
	sha1mac.Write(body)
	for _, tc := range []struct {
		name   string
		header http.Header
		body   []byte
		ok     bool
	}{
		// GitHub's documented test vector.
		{"docs vector", http.Header{"X-Hub-Signature-256": {"sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"}}, body, true},
		{"computed", http.Header{"X-Hub-Signature-256": {githubfake.Sign(secret, body)}}, body, true},
		{"body altered", http.Header{"X-Hub-Signature-256": {githubfake.Sign(secret, body)}}, []byte("Hello, World! "), false},
		{"other secret", http.Header{"X-Hub-Signature-256": {githubfake.Sign([]byte("other"), body)}}, body, false},
		{"missing", http.Header{}, body, false},
		{"sha1 only", http.Header{"X-Hub-Signature": {"sha1=" + hex.EncodeToString(sha1mac.Sum(nil))}}, body, false},
		{"sha1 in the sha256 header", http.Header{"X-Hub-Signature-256": {"sha1=" + hex.EncodeToString(sha1mac.Sum(nil))}}, body, false},
		{"not hex", http.Header{"X-Hub-Signature-256": {"sha256=zz"}}, body, false},
		{"empty", http.Header{"X-Hub-Signature-256": {""}}, body, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := w.Verify(tc.header, tc.body)
			if tc.ok && err != nil {
				t.Errorf("Verify: %v", err)
			}
			if !tc.ok && !errors.Is(err, scm.ErrBadSignature) {
				t.Errorf("Verify = %v, want ErrBadSignature", err)
			}
		})
	}
}

func parse(t *testing.T, event string, payload []byte) *scm.Event {
	t.Helper()
	w, err := NewWebhooks([]byte("s"))
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{"X-Github-Event": {event}, "X-Github-Delivery": {"d-1"}, "Content-Type": {"application/json"}}
	ev, err := w.Parse(h, payload)
	if err != nil {
		t.Fatalf("Parse(%s): %v", event, err)
	}
	if ev.DeliveryID != "d-1" {
		t.Errorf("DeliveryID = %q", ev.DeliveryID)
	}
	return ev
}

func TestParseHandWritten(t *testing.T) {
	ev := parse(t, "issue_comment", []byte(`{"action":"created","issue":{"number":5,"pull_request":{"url":"x"}},
		"comment":{"id":9,"body":"/gitops sync","user":{"login":"alice"}},
		"repository":{"id":3,"full_name":"acme/app"},"sender":{"login":"alice"},"installation":{"id":7}}`))
	if ev.Kind != scm.EventComment || ev.PR == nil || ev.PR.Number != 5 || ev.Comment.Body != "/gitops sync" || ev.InstallationID != 7 || ev.Repo.FullName != "acme/app" {
		t.Errorf("comment event = %+v", ev)
	}
	ev = parse(t, "issue_comment", []byte(`{"action":"created","issue":{"number":5},"comment":{"id":9},"repository":{"full_name":"acme/app"}}`))
	if ev.Kind != scm.EventUninteresting {
		t.Errorf("comment on an issue: %s, want uninteresting", ev.Kind)
	}
	ev = parse(t, "push", []byte(`{"ref":"refs/heads/main","after":"abc","repository":{"full_name":"acme/app","id":3}}`))
	if ev.Kind != scm.EventPush || ev.Branch != "main" || ev.HeadSHA != "abc" {
		t.Errorf("push = %+v", ev)
	}
	ev = parse(t, "push", []byte(`{"ref":"refs/tags/v1","repository":{"full_name":"acme/app"}}`))
	if ev.Kind != scm.EventUninteresting {
		t.Errorf("tag push: %s", ev.Kind)
	}
	ev = parse(t, "some_future_event", []byte(`{}`))
	if ev.Kind != scm.EventUninteresting {
		t.Errorf("unknown event: %s", ev.Kind)
	}

	// Form-encoded hooks carry the JSON in the payload field.
	w, _ := NewWebhooks([]byte("s"))
	form := url.Values{"payload": {`{"zen":"Keep it simple.","hook_id":1}`}}.Encode()
	ev, err := w.Parse(http.Header{"X-Github-Event": {"ping"}, "Content-Type": {"application/x-www-form-urlencoded"}}, []byte(form))
	if err != nil || ev.Kind != scm.EventPing {
		t.Errorf("form ping = %+v, %v", ev, err)
	}
	if _, err := w.Parse(http.Header{"X-Github-Event": {"ping"}, "Content-Type": {"text/plain"}}, []byte("{}")); err == nil {
		t.Error("Parse accepted text/plain")
	}
}

// TestFormEncodedDelivery: a hook set to application/x-www-form-urlencoded
// is signed over the form as sent; Parse unwraps its payload field.
func TestFormEncodedDelivery(t *testing.T) {
	secret := []byte("s")
	w, err := NewWebhooks(secret)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := w.MediaTypes(), []string{"application/json", "application/x-www-form-urlencoded"}; !slices.Equal(got, want) {
		t.Errorf("MediaTypes = %q, want %q", got, want)
	}
	payload := `{"action":"opened","number":3,"pull_request":{"number":3,"head":{"sha":"abc"}},"repository":{"id":3,"full_name":"acme/app"}}`
	form := []byte(url.Values{"payload": {payload}}.Encode())
	h := http.Header{
		"X-Github-Event":      {"pull_request"},
		"Content-Type":        {"application/x-www-form-urlencoded"},
		"X-Hub-Signature-256": {githubfake.Sign(secret, form)},
	}
	if err := w.Verify(h, form); err != nil {
		t.Fatalf("Verify over the raw form: %v", err)
	}
	ev, err := w.Parse(h, form)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := scm.PRRef{Repo: scm.RepoRef{Kind: scm.GitHub, FullName: "acme/app", ID: 3}, Number: 3}
	if ev.PR == nil || *ev.PR != want || ev.HeadSHA != "abc" {
		t.Errorf("form pull_request = %+v, want %s at abc", ev, want)
	}
	for _, body := range []string{"zen=x", "payload=", "%zz"} {
		if _, err := w.Parse(h, []byte(body)); err == nil || errors.Is(err, scm.ErrInvalidEvent) {
			t.Errorf("a form %q: %v, want an error that is not ErrInvalidEvent", body, err)
		}
	}
}

// TestParseCorpus parses every api.github.com example of
// @octokit/webhooks-examples.
func TestParseCorpus(t *testing.T) {
	data, err := os.ReadFile(githubfake.WebhookExamplesPath(t))
	if err != nil {
		t.Fatal(err)
	}
	var index []struct {
		Name     string            `json:"name"`
		Examples []json.RawMessage `json:"examples"`
	}
	if err := json.Unmarshal(data, &index); err != nil {
		t.Fatal(err)
	}
	// The corpus comments are all on issues: add a pull request comment by
	// marking the first one's issue as a pull request, as GitHub does.
	for i, e := range index {
		if e.Name != "issue_comment" {
			continue
		}
		var ex map[string]any
		if err := json.Unmarshal(e.Examples[0], &ex); err != nil {
			t.Fatal(err)
		}
		ex["issue"].(map[string]any)["pull_request"] = map[string]any{"url": "https://api.github.com/repos/o/r/pulls/1"}
		b, err := json.Marshal(ex)
		if err != nil {
			t.Fatal(err)
		}
		index[i].Examples = append(index[i].Examples, b)
	}
	seen := map[scm.EventKind]int{}
	for _, e := range index {
		for i, ex := range e.Examples {
			var head struct {
				Action string `json:"action"`
				Ref    string `json:"ref"`
				Issue  *struct {
					PullRequest json.RawMessage `json:"pull_request"`
				} `json:"issue"`
			}
			_ = json.Unmarshal(ex, &head)
			ev := parse(t, e.Name, ex)
			seen[ev.Kind]++
			want := scm.EventUninteresting
			switch e.Name {
			case "ping":
				want = scm.EventPing
			case "pull_request":
				want = scm.EventPullRequest
			case "pull_request_review":
				if head.Action == "submitted" || head.Action == "dismissed" || head.Action == "edited" {
					want = scm.EventReview
				}
			case "issue_comment":
				if head.Issue != nil && len(head.Issue.PullRequest) > 0 && string(head.Issue.PullRequest) != "null" && (head.Action == "created" || head.Action == "edited") {
					want = scm.EventComment
				}
			case "push":
				if len(head.Ref) > len("refs/heads/") && head.Ref[:len("refs/heads/")] == "refs/heads/" {
					want = scm.EventPush
				}
			case "installation", "installation_repositories":
				want = scm.EventInstallation
			}
			if ev.Kind != want {
				t.Errorf("%s example %d (action %q): kind %s, want %s", e.Name, i, head.Action, ev.Kind, want)
				continue
			}
			switch ev.Kind {
			case scm.EventPullRequest, scm.EventReview, scm.EventComment:
				if ev.PR == nil || ev.PR.Number == 0 || ev.Repo.FullName == "" || ev.Repo.Kind != scm.GitHub {
					t.Errorf("%s example %d: no pull request or repository: %+v", e.Name, i, ev)
				}
				if ev.Kind == scm.EventComment && (ev.Comment == nil || ev.Comment.ID == 0 || ev.Comment.Author == "") {
					t.Errorf("%s example %d: comment missing: %+v", e.Name, i, ev.Comment)
				}
			case scm.EventPush:
				if ev.Branch == "" || ev.Repo.FullName == "" {
					t.Errorf("%s example %d: push without branch or repository: %+v", e.Name, i, ev)
				}
			}
		}
	}
	for _, k := range []scm.EventKind{scm.EventPing, scm.EventPullRequest, scm.EventReview, scm.EventComment, scm.EventPush, scm.EventInstallation, scm.EventUninteresting} {
		if seen[k] == 0 {
			t.Errorf("the corpus gave no %s event", k)
		}
	}
	t.Logf("events by kind: %v", seen)
}

// TestParseStructurallyInvalid: deliveries of the kinds the bot reads that
// name no pull request or repository are ErrInvalidEvent, never a panic
// and never an event with a pull request number below 1.
func TestParseStructurallyInvalid(t *testing.T) {
	w, err := NewWebhooks([]byte("s"))
	if err != nil {
		t.Fatal(err)
	}
	const repo = `"repository":{"id":1,"full_name":"acme/app"}`
	for _, tc := range []struct{ event, body string }{
		{"issue_comment", `{"action":"created","comment":{"body":"/gitops preview","user":{"login":"u"}},` + repo + `}`},
		{"issue_comment", `{"action":"created","issue":null,` + repo + `}`},
		{"issue_comment", `{"action":"created","issue":{"number":5,"pull_request":{}},"comment":null,` + repo + `}`},
		{"issue_comment", `{"action":"created","issue":{"number":-1,"pull_request":{}},"comment":{"user":{"login":"u"}},` + repo + `}`},
		{"pull_request", `{"action":"opened","pull_request":null,` + repo + `}`},
		{"pull_request", `{"action":"opened","pull_request":{"number":0},` + repo + `}`},
		{"pull_request", `{"action":"opened","pull_request":{"number":7},"repository":null}`},
		{"pull_request_review", `{"action":"submitted","pull_request":null,` + repo + `}`},
		{"push", `{"ref":"refs/heads/main","repository":null}`},
		{"pull_request", `null`},
		{"ping", `[]`},
	} {
		ev, err := w.Parse(http.Header{"X-Github-Event": {tc.event}}, []byte(tc.body))
		if !errors.Is(err, scm.ErrInvalidEvent) {
			t.Errorf("%s %s: %+v, %v; want ErrInvalidEvent", tc.event, tc.body, ev, err)
		}
	}
}

// TestReviewDeliveries: pull_request_review deliveries (submitted, edited,
// dismissed) of the corpus and its variants become EventReview for their
// pull request once verified; a delivery signed with another secret fails
// Verify, which the bot runs before Parse; an action the bot has no use for
// is uninteresting (answered 2xx), not an error.
func TestReviewDeliveries(t *testing.T) {
	secret := []byte("s")
	w, err := NewWebhooks(secret)
	if err != nil {
		t.Fatal(err)
	}
	examples := githubfake.WebhookExamples(t)["pull_request_review"]
	if len(examples) == 0 {
		t.Fatal("the corpus has no pull_request_review example")
	}
	var base map[string]any
	if err := json.Unmarshal(examples[0], &base); err != nil {
		t.Fatal(err)
	}
	withAction := func(action string) []byte {
		base["action"] = action
		b, err := json.Marshal(base)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	pr := base["pull_request"].(map[string]any)
	repo := base["repository"].(map[string]any)
	wantPR := scm.PRRef{Repo: scm.RepoRef{Kind: scm.GitHub, FullName: repo["full_name"].(string), ID: int64(repo["id"].(float64))}, Number: int(pr["number"].(float64))}
	headSHA := pr["head"].(map[string]any)["sha"].(string)
	sender := base["sender"].(map[string]any)["login"].(string)

	for _, tc := range []struct {
		name     string
		body     []byte
		signWith []byte
		want     scm.EventKind // "" means refused by Verify
	}{
		{"submitted", withAction("submitted"), secret, scm.EventReview},
		{"edited", withAction("edited"), secret, scm.EventReview},
		{"dismissed", withAction("dismissed"), secret, scm.EventReview},
		{"a future action", withAction("reconsidered"), secret, scm.EventUninteresting},
		{"signed with another secret", withAction("submitted"), []byte("other"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{
				"X-Github-Event":      {"pull_request_review"},
				"X-Github-Delivery":   {"d-review"},
				"Content-Type":        {"application/json"},
				"X-Hub-Signature-256": {githubfake.Sign(tc.signWith, tc.body)},
			}
			if err := w.Verify(h, tc.body); tc.want == "" {
				if !errors.Is(err, scm.ErrBadSignature) {
					t.Fatalf("Verify = %v, want ErrBadSignature", err)
				}
				return
			} else if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			ev, err := w.Parse(h, tc.body)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if ev.Kind != tc.want {
				t.Fatalf("kind %s, want %s", ev.Kind, tc.want)
			}
			if tc.want != scm.EventReview {
				return
			}
			if ev.PR == nil || *ev.PR != wantPR || ev.Repo != wantPR.Repo || ev.HeadSHA != headSHA || ev.Sender != sender || ev.DeliveryID != "d-review" || ev.Action != tc.name {
				t.Errorf("event = %+v (PR %v), want %s at %s by %s", ev, ev.PR, wantPR, headSHA, sender)
			}
		})
	}
}
