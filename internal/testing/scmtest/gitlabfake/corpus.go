package gitlabfake

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// WebhookPayload is one delivery of GitLab's webhook corpus.
type WebhookPayload struct {
	// Name is the file name in client-go's testdata/webhooks.
	Name string
	// Event is the X-Gitlab-Event header GitLab sends with it.
	Event string
	Body  []byte
}

// corpusEvents maps each file of client-go's testdata/webhooks, by name
// prefix, to its X-Gitlab-Event. Every file there is a hook payload; a file
// no prefix matches fails the test, so a new client-go fixture gets a
// decision.
var corpusEvents = []struct{ prefix, event string }{
	{"build", "Build Hook"},
	{"deployment", "Deployment Hook"},
	{"emoji_", "Emoji Hook"},
	{"feature_flag", "Feature Flag Hook"},
	{"group_merge_request", "Merge Request Hook"},
	{"issue", "Issue Hook"},
	{"job", "Job Hook"},
	{"member", "Member Hook"},
	{"merge_request", "Merge Request Hook"},
	{"milestone_", "Milestone Hook"},
	{"note_", "Note Hook"},
	{"pipeline", "Pipeline Hook"},
	{"project", "Project Hook"},
	{"push", "Push Hook"},
	{"release", "Release Hook"},
	{"resource_access_token_", "Resource Access Token Hook"},
	{"service_", "Service Hook"},
	{"subgroup", "Subgroup Hook"},
	{"tag_push", "Tag Push Hook"},
	{"vulnerability", "Vulnerability Hook"},
	{"wiki_page", "Wiki Page Hook"},
}

// WebhookCorpus returns the webhook payloads of client-go's own
// testdata/webhooks (the module this project builds with), each with the
// X-Gitlab-Event GitLab sends it under.
func WebhookCorpus(t testing.TB) []WebhookPayload {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "gitlab.com/gitlab-org/api/client-go").Output()
	if err != nil {
		t.Fatalf("finding client-go's module directory (go mod download gitlab.com/gitlab-org/api/client-go): %v", err)
	}
	files, err := filepath.Glob(filepath.Join(strings.TrimSpace(string(out)), "testdata", "webhooks", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("client-go's webhook corpus: %d files, %v", len(files), err)
	}
	var payloads []WebhookPayload
	for _, f := range files {
		name := filepath.Base(f)
		event := ""
		for _, c := range corpusEvents {
			if strings.HasPrefix(name, c.prefix) {
				event = c.event
				break
			}
		}
		if event == "" {
			t.Errorf("%s: no X-Gitlab-Event known for this file; add it to gitlabfake's corpusEvents", name)
			continue
		}
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		payloads = append(payloads, WebhookPayload{Name: name, Event: event, Body: body})
	}
	return payloads
}
