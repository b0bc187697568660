package githubfake

import (
	"fmt"
	"io"
	"net/http"
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
