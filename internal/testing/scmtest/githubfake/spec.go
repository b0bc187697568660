package githubfake

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// Versions of the npm packages hack/test-data.sh fetches.
const (
	OpenAPIPackage         = "octokit-openapi-23.0.2"
	WebhookExamplesPackage = "octokit-webhooks-examples-7.6.1"
)

// DataDir is the directory holding the npm packages: $GITOPS_TEST_DATA, or
// the cache hack/test-data.sh fills. When it is missing the test is
// skipped, or fails when CI=true.
func DataDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("GITOPS_TEST_DATA")
	if dir == "" {
		cache := os.Getenv("KUBECTL_GITOPS_CACHE")
		if cache == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				missing(t, "no home directory to find the test-data cache in")
			}
			cache = filepath.Join(home, ".cache", "kubectl-gitops")
		}
		dir = filepath.Join(cache, "npm")
	}
	if _, err := os.Stat(dir); err != nil {
		missing(t, fmt.Sprintf("test data %s missing: run `bash hack/test-data.sh` (or set GITOPS_TEST_DATA)", dir))
	}
	return dir
}

// SpecPath is GitHub's OpenAPI description, api.github.com.json.
func SpecPath(t testing.TB) string {
	t.Helper()
	p := filepath.Join(DataDir(t), OpenAPIPackage, "generated", "api.github.com.json")
	if _, err := os.Stat(p); err != nil {
		missing(t, fmt.Sprintf("%s missing: run `bash hack/test-data.sh`", p))
	}
	return p
}

// WebhookExamplesPath is @octokit/webhooks-examples' index of example
// payloads for api.github.com: a JSON array of {name, examples: [...]}.
func WebhookExamplesPath(t testing.TB) string {
	t.Helper()
	p := filepath.Join(DataDir(t), WebhookExamplesPackage, "api.github.com", "index.json")
	if _, err := os.Stat(p); err != nil {
		missing(t, fmt.Sprintf("%s missing: run `bash hack/test-data.sh`", p))
	}
	return p
}

func missing(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// usedPaths are the operations the fake serves; the description is
// stripped to them before the router is built, which is much faster than
// routing over all of GitHub.
var usedPaths = []string{
	"/app",
	"/app/installations/{installation_id}/access_tokens",
	"/user",
	"/repos/{owner}/{repo}",
	"/repos/{owner}/{repo}/installation",
	"/repos/{owner}/{repo}/branches/{branch}",
	"/repos/{owner}/{repo}/commits/{commit_sha}/pulls",
	"/repos/{owner}/{repo}/deployments",
	"/repos/{owner}/{repo}/deployments/{deployment_id}/statuses",
	"/repos/{owner}/{repo}/issues/{issue_number}/comments",
	"/repos/{owner}/{repo}/issues/comments/{comment_id}",
	"/repos/{owner}/{repo}/statuses/{sha}",
	"/repos/{owner}/{repo}/pulls",
	"/repos/{owner}/{repo}/pulls/{pull_number}",
	"/repos/{owner}/{repo}/pulls/{pull_number}/reviews",
	"/repos/{owner}/{repo}/pulls/{pull_number}/files",
	"/repos/{owner}/{repo}/contents/{path}",
	"/repos/{owner}/{repo}/collaborators/{username}/permission",
	"/orgs/{org}/teams/{team_slug}/members",
}

var (
	specOnce   sync.Once
	specRouter routers.Router
	specErr    error
)

// router loads the description once per process.
func router(t testing.TB) routers.Router {
	t.Helper()
	path := SpecPath(t)
	specOnce.Do(func() { specRouter, specErr = loadRouter(path) })
	if specErr != nil {
		t.Fatalf("loading GitHub's OpenAPI description: %v", specErr)
	}
	return specRouter
}

func loadRouter(path string) (routers.Router, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	var paths map[string]json.RawMessage
	if err := json.Unmarshal(raw["paths"], &paths); err != nil {
		return nil, err
	}
	kept := map[string]json.RawMessage{}
	for _, p := range usedPaths {
		v, ok := paths[p]
		if !ok {
			return nil, fmt.Errorf("the description has no path %s", p)
		}
		kept[p] = v
	}
	if raw["paths"], err = json.Marshal(kept); err != nil {
		return nil, err
	}
	// Webhook descriptions are not needed to validate requests.
	delete(raw, "webhooks")
	if data, err = json.Marshal(raw); err != nil {
		return nil, err
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(data)
	if err != nil {
		return nil, err
	}
	return gorillamux.NewRouter(doc)
}

// WebhookExamples loads the api.github.com examples of
// @octokit/webhooks-examples by event name (X-GitHub-Event).
func WebhookExamples(t testing.TB) map[string][]json.RawMessage {
	t.Helper()
	data, err := os.ReadFile(WebhookExamplesPath(t))
	if err != nil {
		t.Fatal(err)
	}
	var index []struct {
		Name     string            `json:"name"`
		Examples []json.RawMessage `json:"examples"`
	}
	if err := json.Unmarshal(data, &index); err != nil {
		t.Fatalf("reading %s: %v", WebhookExamplesPath(t), err)
	}
	out := map[string][]json.RawMessage{}
	for _, e := range index {
		out[e.Name] = append(out[e.Name], e.Examples...)
	}
	return out
}

// Sign is the X-Hub-Signature-256 value GitHub sends for body.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}
