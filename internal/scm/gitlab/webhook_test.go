package gitlab

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/scmtest/gitlabfake"
)

func TestNewWebhookRefusesEmptySecret(t *testing.T) {
	if _, err := NewWebhook(); err == nil {
		t.Error("no secret accepted")
	}
	if _, err := NewWebhook(""); err == nil {
		t.Error("empty secret accepted")
	}
	if _, err := NewWebhook("new", ""); err == nil {
		t.Error("empty second secret accepted")
	}
}

func TestVerify(t *testing.T) {
	w, err := NewWebhook("s3cret", "old-s3cret")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		token *string
		ok    bool
	}{
		{"right", ptr("s3cret"), true},
		{"rotated-out secret still in the window", ptr("old-s3cret"), true},
		{"wrong", ptr("nope"), false},
		{"different case", ptr("S3CRET"), false},
		{"trailing newline", ptr("s3cret\n"), false},
		{"prefix", ptr("s3cre"), false},
		{"empty", ptr(""), false},
		{"missing", nil, false},
	} {
		h := http.Header{}
		if tc.token != nil {
			h.Set("X-Gitlab-Token", *tc.token)
		}
		err := w.Verify(h, []byte(`{}`))
		if tc.ok && err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
		if !tc.ok && !errors.Is(err, scm.ErrBadSignature) {
			t.Errorf("%s: %v, want ErrBadSignature", tc.name, err)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: error leaks the secret: %v", tc.name, err)
		}
	}
}

func ptr(s string) *string { return &s }

func TestParseWithoutEventHeader(t *testing.T) {
	w, _ := NewWebhook("s")
	if _, err := w.Parse(http.Header{}, []byte(`{}`)); err == nil {
		t.Fatal("delivery without X-Gitlab-Event parsed")
	}
}

func TestParseUnknownEventIsUninteresting(t *testing.T) {
	w, _ := NewWebhook("s")
	ev, err := w.Parse(http.Header{"X-Gitlab-Event": {"Brand New Hook"}}, []byte(`{}`))
	if err != nil || ev.Kind != scm.EventUninteresting {
		t.Fatalf("Parse = %+v, %v", ev, err)
	}
}

func TestParseMalformedBodyIsError(t *testing.T) {
	w, _ := NewWebhook("s")
	if _, err := w.Parse(http.Header{"X-Gitlab-Event": {"Merge Request Hook"}}, []byte(`{"object_attributes":`)); err == nil {
		t.Fatal("truncated body parsed")
	}
}

func TestParseMergeRequestActions(t *testing.T) {
	w, _ := NewWebhook("s")
	for _, tc := range []struct {
		action, oldrev string
		kind           scm.EventKind
		want           string
	}{
		{"open", "", scm.EventPullRequest, "opened"},
		{"reopen", "", scm.EventPullRequest, "reopened"},
		{"update", "abc", scm.EventPullRequest, "synchronize"},
		{"update", "", scm.EventPullRequest, "edited"},
		{"close", "", scm.EventPullRequest, "closed"},
		{"merge", "", scm.EventPullRequest, "merged"},
		{"approved", "", scm.EventReview, "approved"},
		{"approval", "", scm.EventReview, "approved"},
		{"unapproved", "", scm.EventReview, "unapproved"},
		{"unapproval", "", scm.EventReview, "unapproved"},
	} {
		body := `{"object_kind":"merge_request","user":{"username":"alice"},
			"project":{"id":7,"path_with_namespace":"g/p"},
			"object_attributes":{"iid":3,"action":"` + tc.action + `","oldrev":"` + tc.oldrev + `",
			"last_commit":{"id":"head"}}}`
		ev, err := w.Parse(http.Header{"X-Gitlab-Event": {"Merge Request Hook"}, "X-Gitlab-Event-Uuid": {"u-1"}}, []byte(body))
		if err != nil {
			t.Fatalf("%s: %v", tc.action, err)
		}
		if ev.Kind != tc.kind || ev.Action != tc.want || ev.PR == nil || ev.PR.Number != 3 ||
			ev.Repo.FullName != "g/p" || ev.Repo.ID != 7 || ev.HeadSHA != "head" || ev.Sender != "alice" || ev.DeliveryID != "u-1" {
			t.Errorf("%s/%s: %+v", tc.action, tc.oldrev, ev)
		}
	}
}

func TestDeliveryID(t *testing.T) {
	h := http.Header{}
	h.Set("X-Gitlab-Webhook-UUID", "hook")
	if DeliveryID(h) != "hook" {
		t.Error("X-Gitlab-Webhook-UUID not used")
	}
	h.Set("X-Gitlab-Event-UUID", "event")
	if DeliveryID(h) != "event" {
		t.Error("X-Gitlab-Event-UUID not preferred")
	}
	h.Set("Idempotency-Key", "idem")
	if DeliveryID(h) != "idem" {
		t.Error("Idempotency-Key not preferred")
	}
}

func TestParseCorpus(t *testing.T) {
	w, _ := NewWebhook("s")
	corpus := gitlabfake.WebhookCorpus(t)
	if len(corpus) < 20 {
		t.Fatalf("corpus: %d files", len(corpus))
	}
	parsed := map[string]*scm.Event{}
	invalid := map[string]bool{}
	for _, p := range corpus {
		name, event, body := p.Name, p.Event, p.Body
		h := http.Header{"X-Gitlab-Event": {event}, "X-Gitlab-Token": {"s"}, "X-Gitlab-Event-Uuid": {"uuid-" + name}}
		if err := w.Verify(h, body); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		ev, err := w.Parse(h, body)
		if errors.Is(err, scm.ErrInvalidEvent) {
			invalid[name] = true
			t.Logf("%-36s %-28s → invalid: %v", name, event, err)
			continue
		}
		if err != nil {
			t.Errorf("%s (%s): %v", name, event, err)
			continue
		}
		if ev.DeliveryID != "uuid-"+name {
			t.Errorf("%s: delivery id %q", name, ev.DeliveryID)
		}
		if ev.Kind != scm.EventUninteresting && (ev.Repo.FullName == "" || ev.Repo.Kind != scm.GitLab) {
			t.Errorf("%s: %s event without a repository: %+v", name, ev.Kind, ev)
		}
		parsed[name] = ev
		t.Logf("%-36s %-28s → %s %s", name, event, ev.Kind, ev.Action)
	}

	// client-go's group_merge_request.json has no iid: it names no merge
	// request, so it must never become a job.
	if !invalid["group_merge_request.json"] {
		t.Errorf("group_merge_request.json (no iid): %+v, want ErrInvalidEvent", parsed["group_merge_request.json"])
	}
	if len(invalid) != 1 {
		t.Errorf("invalid: %v, want only group_merge_request.json", invalid)
	}
	want := map[string]scm.EventKind{
		"merge_request.json":         scm.EventPullRequest,
		"service_merge_request.json": scm.EventPullRequest,
		"note_merge_request.json":    scm.EventComment,
		"push.json":                  scm.EventPush,
		"tag_push.json":              scm.EventUninteresting,
		"note_issue.json":            scm.EventUninteresting,
		"note_commit.json":           scm.EventUninteresting,
		"pipeline.json":              scm.EventUninteresting,
		"job.json":                   scm.EventUninteresting,
		"issue.json":                 scm.EventUninteresting,
		"wiki_page.json":             scm.EventUninteresting,
	}
	for name, kind := range want {
		if ev := parsed[name]; ev == nil || ev.Kind != kind {
			t.Errorf("%s: %+v, want %s", name, ev, kind)
		}
	}

	if ev := parsed["merge_request.json"]; ev != nil {
		if ev.PR == nil || ev.PR.Number == 0 || ev.Repo.ID == 0 || ev.HeadSHA == "" || ev.Sender == "" || ev.PR.Repo != ev.Repo {
			t.Errorf("merge_request.json: %+v", ev)
		}
	}
	if ev := parsed["note_merge_request.json"]; ev != nil {
		if ev.PR == nil || ev.PR.Number == 0 || ev.Comment == nil || ev.Comment.ID == 0 || ev.Comment.Body == "" ||
			ev.Comment.Author == "" || ev.Comment.CreatedAt.IsZero() || ev.HeadSHA == "" {
			t.Errorf("note_merge_request.json: %+v comment %+v", ev, ev.Comment)
		}
	}
	if ev := parsed["push.json"]; ev != nil {
		if ev.Branch == "" || strings.HasPrefix(ev.Branch, "refs/") || ev.HeadSHA == "" || ev.Sender == "" || ev.Repo.ID == 0 {
			t.Errorf("push.json: %+v", ev)
		}
	}
}

func TestParseSystemHookMergeRequest(t *testing.T) {
	w, _ := NewWebhook("s")
	body := `{"object_kind":"merge_request","event_type":"merge_request","user":{"username":"alice"},
		"project":{"id":7,"path_with_namespace":"g/p"},
		"object_attributes":{"iid":4,"action":"open","last_commit":{"id":"h"}}}`
	ev, err := w.Parse(http.Header{"X-Gitlab-Event": {"System Hook"}}, []byte(body))
	if err != nil || ev.Kind != scm.EventPullRequest || ev.PR.Number != 4 {
		t.Fatalf("Parse = %+v, %v", ev, err)
	}
	ev, err = w.Parse(http.Header{"X-Gitlab-Event": {"System Hook"}}, []byte(`{"event_name":"user_create"}`))
	if err != nil || ev.Kind != scm.EventUninteresting {
		t.Fatalf("user_create: %+v, %v", ev, err)
	}
}

func TestParsePushToTagOrDeletedBranch(t *testing.T) {
	w, _ := NewWebhook("s")
	h := http.Header{"X-Gitlab-Event": {"Push Hook"}}
	ev, err := w.Parse(h, []byte(`{"object_kind":"push","ref":"refs/tags/v1","after":"a","project":{"path_with_namespace":"g/p"}}`))
	if err != nil || ev.Kind != scm.EventUninteresting {
		t.Fatalf("tag push: %+v, %v", ev, err)
	}
	ev, err = w.Parse(h, []byte(`{"object_kind":"push","ref":"refs/heads/feature/x","after":"0000000000000000000000000000000000000000","project_id":9,"project":{"path_with_namespace":"g/p"}}`))
	if err != nil || ev.Kind != scm.EventPush || ev.Branch != "feature/x" || ev.Action != "deleted" || ev.Repo.ID != 9 {
		t.Fatalf("branch deletion: %+v, %v", ev, err)
	}
}

func TestVerifySigningToken(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	token := "whsec_" + base64.StdEncoding.EncodeToString(key)
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"object_kind":"push"}`)
	sign := func(id, ts string, body []byte) string {
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(id + "." + ts + "."))
		mac.Write(body)
		return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	good := http.Header{}
	good.Set("webhook-id", "idem-1")
	good.Set("webhook-timestamp", ts)
	good.Set("webhook-signature", "v1,bm9pc2U= "+sign("idem-1", ts, body))

	w, err := NewWebhook(token)
	if err != nil {
		t.Fatal(err)
	}
	w.now = func() time.Time { return now }
	if err := w.Verify(good, body); err != nil {
		t.Fatalf("valid signature: %v", err)
	}

	stale := good.Clone()
	old := strconv.FormatInt(now.Add(-6*time.Minute).Unix(), 10)
	stale.Set("webhook-timestamp", old)
	stale.Set("webhook-signature", sign("idem-1", old, body))
	tamperedID := good.Clone()
	tamperedID.Set("webhook-id", "idem-2")
	missing := good.Clone()
	missing.Del("webhook-signature")
	for name, tc := range map[string]struct {
		h    http.Header
		body []byte
	}{
		"stale timestamp":  {stale, body},
		"tampered id":      {tamperedID, body},
		"tampered body":    {good, []byte(`{"object_kind":"push" }`)},
		"signature absent": {missing, body},
	} {
		if err := w.Verify(tc.h, tc.body); !errors.Is(err, scm.ErrBadSignature) {
			t.Errorf("%s: %v, want ErrBadSignature", name, err)
		}
	}

	// both kinds configured: both are required
	both, err := NewWebhook("plain", token)
	if err != nil {
		t.Fatal(err)
	}
	both.now = w.now
	if err := both.Verify(good, body); !errors.Is(err, scm.ErrBadSignature) {
		t.Errorf("signature without X-Gitlab-Token: %v", err)
	}
	withToken := good.Clone()
	withToken.Set("X-Gitlab-Token", "plain")
	if err := both.Verify(withToken, body); err != nil {
		t.Errorf("both valid: %v", err)
	}
	if _, err := NewWebhook("whsec_***"); err == nil {
		t.Error("a malformed signing token was accepted")
	}
}

// TestParseStructurallyInvalid: client-go decodes null or missing objects
// as zero values; a merge request or note event without its merge request,
// project or author is ErrInvalidEvent, never an event numbered 0.
func TestParseStructurallyInvalid(t *testing.T) {
	w, err := NewWebhook("s")
	if err != nil {
		t.Fatal(err)
	}
	const project = `"project":{"id":1,"path_with_namespace":"g/app"}`
	for _, tc := range []struct{ event, body string }{
		{"Merge Request Hook", `{"object_kind":"merge_request",` + project + `,"object_attributes":null}`},
		{"Merge Request Hook", `{"object_kind":"merge_request",` + project + `,"object_attributes":{"iid":-1}}`},
		{"Merge Request Hook", `{"object_kind":"merge_request","project":null,"object_attributes":{"iid":3}}`},
		{"Note Hook", `{"object_kind":"note","user":{"username":"u"},` + project + `,"object_attributes":{"noteable_type":"MergeRequest","note":"x"},"merge_request":null}`},
		{"Note Hook", `{"object_kind":"note","user":null,` + project + `,"object_attributes":{"noteable_type":"MergeRequest","note":"x"},"merge_request":{"iid":3}}`},
		{"Push Hook", `{"object_kind":"push","ref":"refs/heads/main","project":null}`},
	} {
		ev, err := w.Parse(http.Header{"X-Gitlab-Event": {tc.event}}, []byte(tc.body))
		if !errors.Is(err, scm.ErrInvalidEvent) {
			t.Errorf("%s %s: %+v, %v; want ErrInvalidEvent", tc.event, tc.body, ev, err)
		}
	}
}

// TestApprovalDeliveries: GitLab announces approvals as merge request
// deliveries whose action is approved or approval (given), unapproved or
// unapproval (taken back). Built from client-go's merge_request.json, they
// are EventReview once the token verifies; a wrong token fails Verify,
// which the bot runs before Parse.
func TestApprovalDeliveries(t *testing.T) {
	w, err := NewWebhook("s")
	if err != nil {
		t.Fatal(err)
	}
	var body []byte
	for _, p := range gitlabfake.WebhookCorpus(t) {
		if p.Name == "merge_request.json" {
			body = p.Body
		}
	}
	if body == nil {
		t.Fatal("client-go's corpus has no merge_request.json")
	}
	var base map[string]any
	if err := json.Unmarshal(body, &base); err != nil {
		t.Fatal(err)
	}
	attrs := base["object_attributes"].(map[string]any)
	project := base["project"].(map[string]any)
	wantPR := scm.PRRef{Repo: scm.RepoRef{Kind: scm.GitLab, FullName: project["path_with_namespace"].(string), ID: int64(project["id"].(float64))}, Number: int(attrs["iid"].(float64))}
	for _, tc := range []struct {
		action, token string
		kind          scm.EventKind // "" means refused by Verify
		want          string
	}{
		{"approved", "s", scm.EventReview, "approved"},
		{"approval", "s", scm.EventReview, "approved"},
		{"unapproved", "s", scm.EventReview, "unapproved"},
		{"unapproval", "s", scm.EventReview, "unapproved"},
		// An action this bot does not know stays a merge request event
		// with GitLab's word for it, which the bot ignores with a 2xx.
		{"some_future_action", "s", scm.EventPullRequest, "some_future_action"},
		{"approved", "wrong", "", ""},
	} {
		attrs["action"] = tc.action
		b, err := json.Marshal(base)
		if err != nil {
			t.Fatal(err)
		}
		h := http.Header{"X-Gitlab-Event": {"Merge Request Hook"}, "X-Gitlab-Token": {tc.token}, "Idempotency-Key": {"idem-" + tc.action}}
		if err := w.Verify(h, b); tc.kind == "" {
			if !errors.Is(err, scm.ErrBadSignature) {
				t.Errorf("%s with a wrong token: Verify = %v, want ErrBadSignature", tc.action, err)
			}
			continue
		} else if err != nil {
			t.Fatalf("%s: Verify: %v", tc.action, err)
		}
		ev, err := w.Parse(h, b)
		if err != nil {
			t.Fatalf("%s: %v", tc.action, err)
		}
		if ev.Kind != tc.kind || ev.Action != tc.want || ev.PR == nil || *ev.PR != wantPR || ev.DeliveryID != "idem-"+tc.action || ev.Sender == "" {
			t.Errorf("%s: %+v (PR %v), want %s %s on %s", tc.action, ev, ev.PR, tc.kind, tc.want, wantPR)
		}
	}
}
