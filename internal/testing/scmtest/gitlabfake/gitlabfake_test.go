package gitlabfake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
)

func get(t *testing.T, s *Server, path string, header http.Header) (*http.Response, []map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.URL+"/"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []map[string]any
	if resp.StatusCode == 200 && resp.Header.Get("X-Total") != "" {
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
	}
	return resp, out
}

func TestPaginationAndAuth(t *testing.T) {
	s := New(t, "tok")
	if !strings.HasSuffix(s.URL, "/gitlab/api/v4") {
		t.Fatalf("URL %s is not under the base path", s.URL)
	}
	s.AddProject("g/p")
	for range 130 {
		s.AddMergeRequest("g/p", MergeRequest{Author: "a"})
	}
	resp, items := get(t, s, "projects/g%2Fp/merge_requests?per_page=100&page=2", http.Header{"Authorization": {"Bearer tok"}})
	if resp.StatusCode != 200 || len(items) != 30 || resp.Header.Get("X-Total-Pages") != "2" ||
		resp.Header.Get("X-Next-Page") != "" || resp.Header.Get("X-Prev-Page") != "1" {
		t.Fatalf("page 2: %d, %d items, headers %v", resp.StatusCode, len(items), resp.Header)
	}
	resp, items = get(t, s, "projects/g%2Fp/merge_requests?per_page=500", http.Header{"Private-Token": {"tok"}})
	if len(items) != 100 || resp.Header.Get("X-Next-Page") != "2" {
		t.Fatalf("per_page is capped at 100: %d items, next %q", len(items), resp.Header.Get("X-Next-Page"))
	}
	if resp, _ := get(t, s, "user", http.Header{"Private-Token": {"nope"}}); resp.StatusCode != 401 {
		t.Fatalf("wrong token: %d", resp.StatusCode)
	}
	if resp, _ := get(t, s, "user", http.Header{}); resp.StatusCode != 401 {
		t.Fatalf("no token: %d", resp.StatusCode)
	}
}

func TestRateLimit(t *testing.T) {
	s := New(t, "tok")
	s.SetCurrentUser("bot")
	s.RateLimit(1, http.Header{"Ratelimit-Reset": {"1700000000"}})
	resp, _ := get(t, s, "user", http.Header{"Private-Token": {"tok"}})
	if resp.StatusCode != 429 || resp.Header.Get("RateLimit-Reset") != "1700000000" {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
	if resp, _ := get(t, s, "user", http.Header{"Private-Token": {"tok"}}); resp.StatusCode != 200 {
		t.Fatalf("after the 429: %d", resp.StatusCode)
	}
}

func getJSON(t *testing.T, s *Server, path string) (*http.Response, any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.URL+"/"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Private-Token", "tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp, out
}

func TestGroupsReviewersAndApprovalSettings(t *testing.T) {
	s := New(t, "tok")
	s.AddProject("g/p")
	iid := s.AddMergeRequest("g/p", MergeRequest{Author: "a"})
	var members []GroupMember
	for i := range 150 {
		members = append(members, GroupMember{Username: fmt.Sprintf("u%03d", i), Level: Developer})
	}
	s.SetGroup("g/team", members...)
	resp, items := get(t, s, "groups/g%2Fteam/members/all?per_page=100&page=2", http.Header{"Private-Token": {"tok"}})
	if resp.StatusCode != 200 || len(items) != 50 || items[0]["state"] != "active" || items[0]["access_level"] != float64(Developer) {
		t.Fatalf("group page 2: %d, %d items, first %v", resp.StatusCode, len(items), items)
	}
	if resp, _ := get(t, s, "groups/g%2Fnone/members/all", http.Header{"Private-Token": {"tok"}}); resp.StatusCode != 404 {
		t.Fatalf("a missing group: %d, want 404", resp.StatusCode)
	}

	s.SetReviewers("g/p", iid, Reviewer{Username: "r", State: "requested_changes"})
	_, out := getJSON(t, s, "projects/g%2Fp/merge_requests/1/reviewers")
	if rs, ok := out.([]any); !ok || len(rs) != 1 || rs[0].(map[string]any)["state"] != "requested_changes" {
		t.Fatalf("reviewers: %v", out)
	}

	_, out = getJSON(t, s, "projects/g%2Fp/approvals")
	if out.(map[string]any)["reset_approvals_on_push"] != false {
		t.Fatalf("approval settings: %v", out)
	}
	s.SetResetApprovalsOnPush("g/p", true)
	_, out = getJSON(t, s, "projects/g%2Fp/approvals")
	if out.(map[string]any)["reset_approvals_on_push"] != true {
		t.Fatalf("approval settings after the reset was set: %v", out)
	}
	s.HideApprovalSettings("g/p", http.StatusForbidden)
	if resp, _ := getJSON(t, s, "projects/g%2Fp/approvals"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("hidden approval settings: %d, want 403", resp.StatusCode)
	}
}

func TestDeploymentsAndCommitMergeRequests(t *testing.T) {
	s := New(t, "tok")
	s.AddProject("g/p")
	s.AddMergeRequest("g/p", MergeRequest{Author: "a", SHA: "h", Commits: []string{"c"}})
	_, out := getJSON(t, s, "projects/g%2Fp/repository/commits/c/merge_requests")
	if mrs, ok := out.([]any); !ok || len(mrs) != 1 || mrs[0].(map[string]any)["merge_commit_sha"] != nil ||
		mrs[0].(map[string]any)["merged_at"] != nil {
		t.Fatalf("an open MR of a commit: %v", out)
	}
	for body, want := range map[string]int{
		`{"environment":"e","ref":"main","sha":"h","status":"running"}`:             http.StatusBadRequest, // no tag
		`{"environment":"e","ref":"main","sha":"h","tag":false,"status":"waiting"}`: http.StatusBadRequest,
		`{"environment":"e","ref":"main","sha":"h","tag":false,"status":"running"}`: http.StatusCreated,
	} {
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/projects/g%2Fp/deployments", strings.NewReader(body))
		req.Header = http.Header{"Private-Token": {"tok"}, "Content-Type": {"application/json"}}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", body, resp.StatusCode, want)
		}
	}
	if ds := s.Deployments("g/p"); len(ds) != 1 || ds[0].Status != "running" || ds[0].Ref != "main" {
		t.Fatalf("deployments: %+v", ds)
	}
}

// TestMergeRequestsOpenedThroughTheAPI: as on GitLab, a merge request opens
// only from a branch that exists, once per pair of branches while open; it
// is then one of the project's merge requests like any other.
func TestMergeRequestsOpenedThroughTheAPI(t *testing.T) {
	s := New(t, "tok")
	s.SetCurrentUser("bot")
	id := s.AddProject("g/p")
	s.SetBranch("g/p", "main", "base1")
	send := func(method, path, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, s.URL+"/projects/g%2Fp/"+path, strings.NewReader(body))
		req.Header = http.Header{"Private-Token": {"tok"}, "Content-Type": {"application/json"}}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	const open = `{"title":"app: v2","description":"Bumps app.","source_branch":"update","target_branch":"main"}`
	if code, out := send("POST", "merge_requests", open); code != http.StatusBadRequest {
		t.Errorf("without a resolver: %d %v, want 400", code, out)
	}
	s.SetBranchResolver(func(fullName, branch string) (string, bool) {
		return "head1", fullName == "g/p" && branch == "update"
	})
	for body, want := range map[string]int{
		`{"title":"t","source_branch":"update"}`:                                                       http.StatusBadRequest,
		`{"title":"t","source_branch":"main","target_branch":"main"}`:                                  http.StatusUnprocessableEntity,
		`{"title":"t","source_branch":"other","target_branch":"main"}`:                                 http.StatusBadRequest,
		`{"title":"t","source_branch":"update","target_branch":"nope"}`:                                http.StatusBadRequest,
		`{"title":"` + strings.Repeat("x", 256) + `","source_branch":"update","target_branch":"main"}`: http.StatusBadRequest,
	} {
		if code, out := send("POST", "merge_requests", body); code != want {
			t.Errorf("%s: %d %v, want %d", body, code, out, want)
		}
	}
	code, out := send("POST", "merge_requests", open)
	if code != http.StatusCreated || out["iid"] != float64(1) || out["sha"] != "head1" || out["state"] != "opened" ||
		out["description"] != "Bumps app." || out["author"].(map[string]any)["username"] != "bot" ||
		out["diff_refs"].(map[string]any)["base_sha"] != "base1" || out["source_project_id"] != float64(id) {
		t.Fatalf("open: %d %v", code, out)
	}
	if code, out := send("POST", "merge_requests", open); code != http.StatusConflict ||
		fmt.Sprint(out["message"]) != "[Another open merge request already exists for this source branch: !1]" {
		t.Errorf("a second open merge request: %d %v", code, out)
	}
	if code, out := send("PUT", "merge_requests/1", `{"state_event":"merge"}`); code != http.StatusBadRequest {
		t.Errorf("an unknown state event: %d %v", code, out)
	}
	code, out = send("PUT", "merge_requests/1", `{"state_event":"close","title":"app: v3"}`)
	if code != http.StatusOK || out["state"] != "closed" || out["closed_at"] == nil || out["title"] != "app: v3" {
		t.Errorf("close: %d %v", code, out)
	}
	if code, out := send("POST", "merge_requests", open); code != http.StatusCreated || out["iid"] != float64(2) {
		t.Errorf("open after the close: %d %v", code, out)
	}
	if code, out := send("PUT", "merge_requests/1", `{"state_event":"reopen"}`); code != http.StatusConflict {
		t.Errorf("reopen while !2 is open: %d %v, want 409", code, out)
	}
	s.MergeMergeRequest("g/p", 2, "merge2")
	if code, out := send("PUT", "merge_requests/2", `{"state_event":"close"}`); code != http.StatusOK || out["state"] != "merged" {
		t.Errorf("close a merged merge request: %d %v, want it unchanged", code, out)
	}
	if code, out := send("PUT", "merge_requests/1", `{"state_event":"reopen"}`); code != http.StatusOK || out["state"] != "opened" || out["closed_at"] != nil {
		t.Errorf("reopen once !2 is merged: %d %v", code, out)
	}
	if _, out := getJSON(t, s, "projects/g%2Fp/repository/branches/main"); out.(map[string]any)["commit"].(map[string]any)["id"] != "merge2" {
		t.Errorf("main after MergeMergeRequest: %v, want merge2", out)
	}
	created := s.CreatedMergeRequests("g/p")
	if len(created) != 2 || created[0].Title != "app: v3" || created[0].State != "opened" || created[1].State != "merged" ||
		created[1].MergeCommitSHA != "merge2" {
		t.Errorf("CreatedMergeRequests = %+v", created)
	}
	s.mu.Lock()
	vs := slices.Clone(s.mustMR("g/p", 1).versions)
	s.mu.Unlock()
	if len(vs) != 1 || vs[0].HeadSHA != "head1" {
		t.Errorf("diff versions of !1: %+v, want one of head1", vs)
	}
}
