package githubfake

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder keeps the fake's test failures instead of failing the test.
type recorder struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.errs
	r.errs = nil
	return e
}

func TestValidatesAgainstTheDescription(t *testing.T) {
	rec := &recorder{TB: t}
	s := New(rec)
	s.AddRepo(&Repo{Owner: "acme", Name: "app"})
	s.AddToken("tok", "octocat")
	do := func(method, path, body string) int {
		req, err := http.NewRequest(method, s.srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer tok")
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct {
		name, method, path, body string
		wantErr                  bool
	}{
		{"valid", "POST", BasePath + "repos/acme/app/statuses/abc", `{"state":"success","context":"c"}`, false},
		{"missing required field", "POST", BasePath + "repos/acme/app/statuses/abc", `{"context":"c"}`, true},
		{"bad enum", "POST", BasePath + "repos/acme/app/statuses/abc", `{"state":"great"}`, true},
		{"unknown path", "GET", BasePath + "repos/acme/app/pullz", "", true},
		{"wrong method", "DELETE", BasePath + "repos/acme/app/pulls/1", "", true},
		{"outside the base path", "GET", "/repos/acme/app/pulls/1", "", true},
		{"bad query type", "GET", BasePath + "repos/acme/app/pulls?per_page=lots", "", true},
		{"team members", "GET", BasePath + "orgs/acme/teams/sre/members?role=all&per_page=100", "", false},
		{"team members of a bad role", "GET", BasePath + "orgs/acme/teams/sre/members?role=owner", "", true},
		{"branch named with a slash", "GET", BasePath + "repos/acme/app/branches/release%2F1", "", false},
		{"commit pulls", "GET", BasePath + "repos/acme/app/commits/abc/pulls?per_page=100", "", false},
		{"deployment", "POST", BasePath + "repos/acme/app/deployments", `{"ref":"abc","required_contexts":[]}`, false},
		{"deployment without a ref", "POST", BasePath + "repos/acme/app/deployments", `{"environment":"prod"}`, true},
		{"deployment status of a bad state", "POST", BasePath + "repos/acme/app/deployments/1/statuses", `{"state":"done"}`, true},
		{"pull request", "POST", BasePath + "repos/acme/app/pulls", `{"title":"t","head":"feature","base":"main","body":"b"}`, false},
		{"pull request without a base", "POST", BasePath + "repos/acme/app/pulls", `{"title":"t","head":"feature"}`, true},
		{"pull request edit", "PATCH", BasePath + "repos/acme/app/pulls/1", `{"title":"t","body":"b","state":"closed"}`, false},
		{"pull request edit of a bad state", "PATCH", BasePath + "repos/acme/app/pulls/1", `{"state":"merged"}`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code := do(tc.method, tc.path, tc.body)
			errs := rec.take()
			if tc.wantErr && len(errs) == 0 {
				t.Errorf("%s %s (%d) was not reported", tc.method, tc.path, code)
			}
			if !tc.wantErr && len(errs) > 0 {
				t.Errorf("%s %s reported: %v", tc.method, tc.path, errs)
			}
		})
	}
}

func TestTeamsAreSeenByTheirOrganisationsInstallations(t *testing.T) {
	s := New(t)
	s.AddRepo(&Repo{Owner: "acme", Name: "app", Installation: 1})
	s.SetTeam("acme", "sre", "alice", "bob")
	s.SetTeam("other", "sre", "mallory")
	s.AddToken("pat", "octocat")
	s.mu.Lock()
	s.tokens["inst-1"] = token{installation: 1, expires: time.Now().Add(time.Hour)}
	s.mu.Unlock()
	for _, tc := range []struct {
		tok, path string
		want      int
	}{
		{"inst-1", "orgs/acme/teams/sre/members", http.StatusOK},
		{"inst-1", "orgs/other/teams/sre/members", http.StatusNotFound}, // no repository of other
		{"inst-1", "orgs/acme/teams/missing/members", http.StatusNotFound},
		{"pat", "orgs/other/teams/sre/members", http.StatusOK},
		{"expired", "orgs/acme/teams/sre/members", http.StatusUnauthorized},
	} {
		req, _ := http.NewRequest(http.MethodGet, s.srv.URL+BasePath+tc.path, nil)
		req.Header.Set("Authorization", "Bearer "+tc.tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s with %s: %d, want %d", tc.path, tc.tok, resp.StatusCode, tc.want)
		}
	}
}

// TestDeploymentsVerifyStatuses: as GitHub, a deployment is refused unless
// the latest status of each required context (every context, when the
// request names none) on its commit is success.
func TestDeploymentsVerifyStatuses(t *testing.T) {
	s := New(t)
	s.AddRepo(&Repo{Owner: "acme", Name: "app", Branches: map[string]string{"main": "abc"}})
	s.AddToken("tok", "octocat")
	post := func(path, body string) int {
		req, _ := http.NewRequest(http.MethodPost, s.URL()+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer tok")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	post("repos/acme/app/statuses/abc", `{"state":"success","context":"ci"}`)
	post("repos/acme/app/statuses/abc", `{"state":"pending","context":"gitops/sync"}`)
	if code := post("repos/acme/app/deployments", `{"ref":"main"}`); code != http.StatusConflict {
		t.Errorf("deployment of a commit with a pending status: %d, want 409", code)
	}
	if code := post("repos/acme/app/deployments", `{"ref":"main","required_contexts":["ci","lint"]}`); code != http.StatusConflict {
		t.Errorf("deployment requiring a context without a status: %d, want 409", code)
	}
	if code := post("repos/acme/app/deployments", `{"ref":"main","required_contexts":["ci"]}`); code != http.StatusCreated {
		t.Errorf("deployment requiring ci only: %d, want 201", code)
	}
	if code := post("repos/acme/app/deployments/999/statuses", `{"state":"success"}`); code != http.StatusNotFound {
		t.Errorf("status of a missing deployment: %d, want 404", code)
	}
	s.Update("acme/app", func(r *Repo) {
		if len(r.Deployments) != 1 || r.Deployments[0].SHA != "abc" || !r.Deployments[0].AutoMerge || !r.Deployments[0].ProductionEnvironment {
			t.Errorf("deployments = %+v, want one of main's head abc with GitHub's defaults", r.Deployments)
		}
	})
}

// TestPullsOpenedThroughTheAPI: as on GitHub, a pull request opens only
// from a branch the resolver knows, once per head and base while open; it
// is then one of the repository's pulls like any other.
func TestPullsOpenedThroughTheAPI(t *testing.T) {
	s := New(t)
	s.AddRepo(&Repo{Owner: "acme", Name: "app", Branches: map[string]string{"main": "base1"}})
	s.AddToken("tok", "octocat")
	send := func(method, path, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, s.URL()+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer tok")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	const open = `{"title":"app: v2","head":"acme:update","base":"main","body":"Bumps app."}`
	if code, out := send("POST", "repos/acme/app/pulls", open); code != http.StatusUnprocessableEntity {
		t.Errorf("without a resolver: %d %v, want 422", code, out)
	}
	var asked []string
	s.SetBranchResolver(func(fullName, branch string) (string, bool) {
		asked = append(asked, fullName+" "+branch)
		return "head1", branch == "update"
	})
	code, out := send("POST", "repos/acme/app/pulls", open)
	if code != http.StatusCreated || out["number"] != float64(1) || out["mergeable"] != nil || out["body"] != "Bumps app." ||
		out["user"].(map[string]any)["login"] != "octocat" {
		t.Fatalf("open: %d %v", code, out)
	}
	if head, base := out["head"].(map[string]any), out["base"].(map[string]any); head["sha"] != "head1" || head["ref"] != "update" ||
		base["sha"] != "base1" || base["ref"] != "main" {
		t.Errorf("open: head %v, base %v", head, base)
	}
	if !slices.Contains(asked, "acme/app update") {
		t.Errorf("resolver asked %q, want acme/app update", asked)
	}
	code, out = send("POST", "repos/acme/app/pulls", open)
	if errs, _ := out["errors"].([]any); code != http.StatusUnprocessableEntity || len(errs) != 1 ||
		errs[0].(map[string]any)["message"] != "A pull request already exists for acme:update." {
		t.Errorf("a second open pull request: %d %v", code, out)
	}
	if code, out := send("POST", "repos/acme/app/pulls", `{"title":"t","head":"other","base":"main"}`); code != http.StatusUnprocessableEntity {
		t.Errorf("from a branch the resolver does not know: %d %v", code, out)
	}
	if code, out := send("GET", "repos/acme/app/pulls/1", ""); code != http.StatusOK || out["mergeable"] != true || out["closed_at"] != nil {
		t.Errorf("read after opening: %d %v, want mergeable", code, out)
	}

	code, out = send("PATCH", "repos/acme/app/pulls/1", `{"state":"closed","title":"app: v3"}`)
	if code != http.StatusOK || out["state"] != "closed" || out["merged"] != false || out["closed_at"] == nil || out["title"] != "app: v3" {
		t.Errorf("close: %d %v", code, out)
	}
	if code, out := send("POST", "repos/acme/app/pulls", open); code != http.StatusCreated || out["number"] != float64(2) {
		t.Errorf("open after the close: %d %v", code, out)
	}
	if code, out := send("PATCH", "repos/acme/app/pulls/1", `{"state":"open"}`); code != http.StatusUnprocessableEntity {
		t.Errorf("reopen while #2 is open: %d %v, want 422", code, out)
	}
	s.MergePull("acme/app", 2, "merge2")
	if code, out := send("PATCH", "repos/acme/app/pulls/2", `{"state":"closed"}`); code != http.StatusOK || out["merged"] != true {
		t.Errorf("close a merged (so closed) pull request: %d %v, want it unchanged", code, out)
	}
	if code, out := send("PATCH", "repos/acme/app/pulls/2", `{"state":"open"}`); code != http.StatusUnprocessableEntity {
		t.Errorf("reopen a merged pull request: %d %v, want 422", code, out)
	}
	if code, out := send("PATCH", "repos/acme/app/pulls/1", `{"state":"open"}`); code != http.StatusOK || out["state"] != "open" || out["closed_at"] != nil {
		t.Errorf("reopen once #2 is merged: %d %v", code, out)
	}

	created := s.CreatedPulls("acme/app")
	if len(created) != 2 || created[0].Title != "app: v3" || created[0].State != "open" || !created[1].Merged ||
		created[1].MergeCommitSHA != "merge2" || created[1].ClosedAt.IsZero() {
		t.Errorf("CreatedPulls = %+v", created)
	}
	s.Update("acme/app", func(r *Repo) {
		if r.Branches["main"] != "merge2" {
			t.Errorf("main at %s after MergePull, want merge2", r.Branches["main"])
		}
	})
}

func TestPullsOpenedThroughTheAPIFollowTheirBranch(t *testing.T) {
	s := New(t)
	s.AddRepo(&Repo{Owner: "acme", Name: "app", Branches: map[string]string{"main": "base1"}})
	s.AddToken("tok", "octocat")
	head := "head1"
	s.SetBranchResolver(func(_, branch string) (string, bool) { return head, branch == "update" })
	s.SetFilesResolver(func(fullName, base, h string) ([]File, bool) {
		return []File{{Filename: fullName + ":" + base + ".." + h, Status: "modified"}}, true
	})
	get := func(path string, out any) {
		t.Helper()
		req, _ := http.NewRequest("GET", s.URL()+path, nil)
		req.Header.Set("Authorization", "Bearer tok")
		if path == "repos/acme/app/pulls" {
			req.Method, req.Body = "POST", io.NopCloser(strings.NewReader(`{"title":"t","head":"update","base":"main"}`))
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
	var created map[string]any
	get("repos/acme/app/pulls", &created)
	head = "head2" // a push to the branch
	var pr map[string]any
	get("repos/acme/app/pulls/1", &pr)
	if got := pr["head"].(map[string]any)["sha"]; got != "head2" {
		t.Errorf("head.sha after a push = %v, want head2", got)
	}
	var files []map[string]any
	get("repos/acme/app/pulls/1/files", &files)
	if len(files) != 1 || files[0]["filename"] != "acme/app:base1..head2" {
		t.Errorf("files = %v, want the resolver's for base1..head2", files)
	}
}
