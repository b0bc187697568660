// Package gitlabfake is an HTTP-level fake of the parts of the GitLab REST
// API v4 that internal/scm/gitlab uses: projects (and their approval
// settings, default branch and branches), users, project members, group
// members, merge requests (opened, edited and closed through the API;
// notes, approvals, reviewers, diff versions, diffs, and those of a
// commit), raw repository files, commit statuses and deployments. State
// lives in memory. Like GitLab it checks the token (PRIVATE-TOKEN or
// Authorization: Bearer), paginates with page/per_page and
// X-Next-Page/X-Total-Pages headers, lists notes newest first unless asked
// otherwise, refuses to repeat a commit status or deployment status
// transition, and keeps one open merge request per pair of branches. It
// serves under a non-empty base path (/gitlab/api/v4/) so that a client
// building absolute URLs fails.
package gitlabfake

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// BasePath is where the API is served on the fake's host.
const BasePath = "/gitlab/api/v4/"

// Access levels as GitLab numbers them.
const (
	Guest      = 10
	Reporter   = 20
	Developer  = 30
	Maintainer = 40
	Owner      = 50
)

// Server is a running fake.
type Server struct {
	// URL is the API base URL, e.g. http://127.0.0.1:1234/gitlab/api/v4.
	URL string

	t           testing.TB
	mu          sync.Mutex
	token       string
	srv         *httptest.Server
	nextID      int64
	users       map[string]int64 // username → id
	currentUser string
	projects    map[int64]*project
	groups      map[string][]GroupMember // full path → members/all
	failures    []failure                // queued error responses
	requests    []string
	resolve     func(fullName, branch string) (string, bool)
	created     map[int64][]int64 // project id → iids of MRs opened through the API
}

type failure struct {
	code   int
	header http.Header
}

type project struct {
	id        int64
	path      string
	forbidden bool
	// resetOnPush is reset_approvals_on_push; approvalSettings is how the
	// approval settings answer: 200, or 403/404 as on GitLab Free.
	resetOnPush      bool
	approvalSettings int
	members          map[int64]member // user id → member (inherited included)
	mrs              map[int64]*mergeRequest
	files            map[string][]byte // ref + "\x00" + path
	statuses         []Status
	defaultBranch    string
	branches         map[string]string // name → head SHA
	deployments      []Deployment
}

type member struct {
	level int
	state string
}

type mergeRequest struct {
	MergeRequest
	notes     []Note
	approvals []Approval
	reviewers []Reviewer
	versions  []Version
	diffs     []Diff
}

// MergeRequest is what a test seeds; zero fields get defaults.
type MergeRequest struct {
	IID             int64
	Title           string
	Description     string // markdown; "" renders null
	Author          string
	State           string // opened (default), closed, merged, locked
	Draft           bool
	SourceBranch    string
	TargetBranch    string
	SHA             string // head
	BaseSHA         string
	SourceProjectID int64 // defaults to the target project
	HasConflicts    bool
	// DetailedMergeStatus defaults to "mergeable".
	DetailedMergeStatus string
	UpdatedAt           time.Time
	// MergeCommitSHA and SquashCommitSHA are a merged MR's merge and
	// squash commits (only the squash commit after a fast-forward squash,
	// neither after a fast-forward of rebased commits).
	MergeCommitSHA  string
	SquashCommitSHA string
	// MergedAt defaults to UpdatedAt when State is merged.
	MergedAt time.Time
	// ClosedAt is when a closed MR was closed (UpdatedAt when zero).
	ClosedAt time.Time
	// Commits are the MR's commits other than SHA. The MR is one of a
	// commit's merge requests when the commit is SHA, MergeCommitSHA,
	// SquashCommitSHA or one of these.
	Commits []string
}

// Note is a merge request note.
type Note struct {
	ID        int64
	Author    string
	Body      string
	System    bool
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Approval is one approval of a merge request; a zero ApprovedAt is left
// out of the response, as older GitLab versions do.
type Approval struct {
	Username   string
	ApprovedAt time.Time
}

// Reviewer is a merge request reviewer and the state of their review:
// unreviewed, review_started, reviewed, requested_changes, approved,
// unapproved.
type Reviewer struct {
	Username string
	State    string
}

// GroupMember is a member of a group as members/all lists it: direct,
// inherited or invited.
type GroupMember struct {
	Username string
	Level    int    // Guest… Owner, or 5 for Minimal Access
	State    string // active (default), awaiting, blocked
}

// Version is a merge request diff version (one per push).
type Version struct {
	HeadSHA   string
	CreatedAt time.Time
}

// Diff is one changed file of a merge request.
type Diff struct {
	OldPath, NewPath string
}

// Status is a commit status as posted.
type Status struct {
	SHA, Name, State, Description, TargetURL string
}

// Deployment is a deployment as created and updated through the API.
type Deployment struct {
	ID          int64
	Environment string
	Ref, SHA    string
	Tag         bool
	// Status is running, success, failed or canceled.
	Status string
}

// New starts a fake accepting token, closed when t ends.
func New(t testing.TB, token string) *Server {
	s := &Server{
		t:        t,
		token:    token,
		nextID:   1000,
		users:    map[string]int64{},
		projects: map[int64]*project{},
		groups:   map[string][]GroupMember{},
		created:  map[int64][]int64{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc(BasePath, s.serve)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("gitlabfake: request outside %s: %s %s", BasePath, r.Method, r.URL.Path)
		http.NotFound(w, r)
	})
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	s.URL = s.srv.URL + strings.TrimSuffix(BasePath, "/")
	return s
}

func (s *Server) id() int64 { s.nextID++; return s.nextID }

// AddUser registers a user and returns its id; adding twice is harmless.
func (s *Server) AddUser(username string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addUser(username)
}

func (s *Server) addUser(username string) int64 {
	if id, ok := s.users[username]; ok {
		return id
	}
	id := s.id()
	s.users[username] = id
	return id
}

// SetCurrentUser sets who the token belongs to (GET /user).
func (s *Server) SetCurrentUser(username string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addUser(username)
	s.currentUser = username
}

// AddProject creates a project at path ("group/sub/name") and returns its id.
func (s *Server) AddProject(path string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.id()
	s.projects[id] = &project{id: id, path: path, members: map[int64]member{},
		mrs: map[int64]*mergeRequest{}, files: map[string][]byte{}, approvalSettings: http.StatusOK,
		defaultBranch: "main", branches: map[string]string{}}
	return id
}

// SetDefaultBranch sets the project's default branch ("main" until set).
func (s *Server) SetDefaultBranch(path, branch string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mustProject(path).defaultBranch = branch
}

// SetBranch creates or moves a branch to head sha.
func (s *Server) SetBranch(path, branch, sha string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mustProject(path).branches[branch] = sha
}

// Deployments returns the deployments of a project, oldest first, with
// their current status.
func (s *Server) Deployments(path string) []Deployment {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.mustProject(path).deployments)
}

// SetResetApprovalsOnPush sets the project's "remove all approvals when
// commits are added" setting.
func (s *Server) SetResetApprovalsOnPush(path string, reset bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mustProject(path).resetOnPush = reset
}

// HideApprovalSettings makes the project's approval settings answer code
// (403 or 404), as on a GitLab edition without them.
func (s *Server) HideApprovalSettings(path string, code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mustProject(path).approvalSettings = code
}

// SetGroup makes members the members/all of the group at path (full path,
// "acme/platform"), replacing any before; an empty State is active.
func (s *Server) SetGroup(path string, members ...GroupMember) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range members {
		s.addUser(members[i].Username)
		if members[i].State == "" {
			members[i].State = "active"
		}
	}
	s.groups[path] = slices.Clone(members)
}

// Forbid makes every request on the project answer 403.
func (s *Server) Forbid(path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mustProject(path).forbidden = true
}

// AddMember gives username an access level on the project (direct or
// inherited: the fake answers members/all from the same table).
func (s *Server) AddMember(path, username string, level int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mustProject(path).members[s.addUser(username)] = member{level: level, state: "active"}
}

// AddMergeRequest seeds a merge request and returns its iid.
func (s *Server) AddMergeRequest(path string, mr MergeRequest) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addMR(s.mustProject(path), mr).IID
}

// addMR stores mr in p with the defaults of AddMergeRequest.
func (s *Server) addMR(p *project, mr MergeRequest) *mergeRequest {
	if mr.IID == 0 {
		mr.IID = int64(len(p.mrs) + 1)
		for p.mrs[mr.IID] != nil {
			mr.IID++
		}
	}
	if mr.State == "" {
		mr.State = "opened"
	}
	if mr.SourceProjectID == 0 {
		mr.SourceProjectID = p.id
	}
	if mr.DetailedMergeStatus == "" {
		mr.DetailedMergeStatus = "mergeable"
	}
	if mr.UpdatedAt.IsZero() {
		mr.UpdatedAt = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	}
	if mr.State == "merged" && mr.MergedAt.IsZero() {
		mr.MergedAt = mr.UpdatedAt
	}
	mr.Commits = slices.Clone(mr.Commits)
	s.addUser(mr.Author)
	m := &mergeRequest{MergeRequest: mr}
	p.mrs[mr.IID] = m
	return m
}

// SetBranchResolver makes fn tell the head commit of a project's branch
// (fullName is the project's path) when a merge request is opened through
// the API: sha is fn's answer for the source branch, and the base SHA the
// target branch's head as SetBranch set it, else fn's. Tests pass a
// function that reads a real Git repository (gittest's Repo.Resolve).
// Without a resolver, or when it says !ok for the source branch, opening a
// merge request answers 400 as GitLab does for a source branch that does
// not exist. fn is called without the fake's lock held.
func (s *Server) SetBranchResolver(fn func(fullName, branch string) (sha string, ok bool)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resolve = fn
}

// branchHeadLocked asks the resolver for a branch's head, releasing the
// lock (held by the caller) while it runs.
func (s *Server) branchHeadLocked(fullName, branch string) (string, bool) {
	fn := s.resolve
	if fn == nil || branch == "" {
		return "", false
	}
	s.mu.Unlock()
	defer s.mu.Lock()
	return fn(fullName, branch)
}

// MergeMergeRequest marks merge request iid of the project merged as sha
// (a merge commit; see MergeRequest for squashes and fast-forwards) now,
// and moves its target branch there, as a merge on GitLab would. Its
// notes, approvals, diffs and versions stay.
func (s *Server) MergeMergeRequest(path string, iid int64, sha string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.mustProject(path)
	mr := s.mustMR(path, iid)
	now := time.Now().UTC().Truncate(time.Millisecond)
	mr.State, mr.MergeCommitSHA, mr.MergedAt, mr.UpdatedAt = "merged", sha, now, now
	p.branches[mr.TargetBranch] = sha
}

// CreatedMergeRequests returns the merge requests opened through the API
// in the project, in the order they were opened, as they are now.
func (s *Server) CreatedMergeRequests(path string) []MergeRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.mustProject(path)
	var out []MergeRequest
	for _, iid := range s.created[p.id] {
		if mr, ok := p.mrs[iid]; ok {
			out = append(out, mr.MergeRequest)
		}
	}
	return out
}

// AddNote appends a note to a merge request and returns its id.
func (s *Server) AddNote(path string, iid int64, n Note) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	mr := s.mustMR(path, iid)
	if n.Author != "" {
		s.addUser(n.Author)
	}
	n.ID = s.id()
	if n.CreatedAt.IsZero() {
		n.CreatedAt = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(len(mr.notes)) * time.Minute)
	}
	if n.UpdatedAt.IsZero() {
		n.UpdatedAt = n.CreatedAt
	}
	mr.notes = append(mr.notes, n)
	return n.ID
}

// Notes returns a merge request's notes, oldest first.
func (s *Server) Notes(path string, iid int64) []Note {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.mustMR(path, iid).notes)
}

// AddApproval records an approval.
func (s *Server) AddApproval(path string, iid int64, a Approval) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addUser(a.Username)
	mr := s.mustMR(path, iid)
	mr.approvals = append(mr.approvals, a)
}

// SetReviewers sets a merge request's reviewers.
func (s *Server) SetReviewers(path string, iid int64, reviewers ...Reviewer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range reviewers {
		s.addUser(r.Username)
	}
	s.mustMR(path, iid).reviewers = slices.Clone(reviewers)
}

// AddVersion records a diff version (a push to the merge request).
func (s *Server) AddVersion(path string, iid int64, v Version) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mr := s.mustMR(path, iid)
	mr.versions = append(mr.versions, v)
}

// SetDiffs sets the files a merge request changes.
func (s *Server) SetDiffs(path string, iid int64, diffs []Diff) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mustMR(path, iid).diffs = slices.Clone(diffs)
}

// SetFile stores a file at a ref.
func (s *Server) SetFile(path, ref, file string, content []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mustProject(path).files[ref+"\x00"+file] = slices.Clone(content)
}

// Statuses returns the commit statuses posted to a project.
func (s *Server) Statuses(path string) []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.mustProject(path).statuses)
}

// RateLimit makes the next n requests answer 429 with header (e.g.
// RateLimit-Reset or Retry-After).
func (s *Server) RateLimit(n int, header http.Header) { s.Fail(n, http.StatusTooManyRequests, header) }

// Fail makes the next n authenticated requests answer code with header.
func (s *Server) Fail(n, code int, header http.Header) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failures = append(s.failures, failure{code: code, header: header.Clone()})
	}
}

// Requests returns "METHOD /path?query" of every request so far, the path
// relative to BasePath and still escaped.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

func (s *Server) mustProject(path string) *project {
	for _, p := range s.projects {
		if p.path == path {
			return p
		}
	}
	// A seeding mistake in the test itself: stop it here, naming the path.
	s.t.Fatalf("gitlabfake: no project %s; add it with AddProject first", path)
	return nil
}

func (s *Server) mustMR(path string, iid int64) *mergeRequest {
	mr := s.mustProject(path).mrs[iid]
	if mr == nil {
		s.t.Fatalf("gitlabfake: no merge request %s!%d; add it with AddMergeRequest first", path, iid)
	}
	return mr
}

// project finds a project by id or by URL-decoded path.
func (s *Server) project(key string) *project {
	if id, err := strconv.ParseInt(key, 10, 64); err == nil {
		return s.projects[id]
	}
	for _, p := range s.projects {
		if p.path == key {
			return p
		}
	}
	return nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func message(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]any{"message": msg})
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rel := strings.TrimPrefix(r.URL.EscapedPath(), BasePath)
	req := r.Method + " /" + rel
	if r.URL.RawQuery != "" {
		req += "?" + r.URL.RawQuery
	}
	s.requests = append(s.requests, req)

	tok := r.Header.Get("PRIVATE-TOKEN")
	if b, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && tok == "" {
		tok = b
	}
	if tok == "" || tok != s.token {
		message(w, http.StatusUnauthorized, "401 Unauthorized")
		return
	}
	if len(s.failures) > 0 {
		f := s.failures[0]
		s.failures = s.failures[1:]
		for k, v := range f.header {
			w.Header()[k] = v
		}
		msg := http.StatusText(f.code)
		if f.code == http.StatusTooManyRequests {
			msg = "Retry later"
		}
		message(w, f.code, msg)
		return
	}

	var seg []string
	for _, p := range strings.Split(rel, "/") {
		u, err := url.PathUnescape(p)
		if err != nil {
			message(w, http.StatusBadRequest, "bad path")
			return
		}
		seg = append(seg, u)
	}
	switch {
	case r.Method == http.MethodGet && match(seg, "user"):
		if s.currentUser == "" {
			message(w, http.StatusUnauthorized, "401 Unauthorized")
			return
		}
		writeJSON(w, 200, s.user(s.currentUser))
	case r.Method == http.MethodGet && match(seg, "users"):
		var out []any
		if name := r.URL.Query().Get("username"); name != "" {
			if _, ok := s.users[name]; ok {
				out = append(out, s.user(name))
			}
		}
		if out == nil {
			out = []any{}
		}
		s.paginate(w, r, out)
	case r.Method == http.MethodGet && len(seg) == 4 && seg[0] == "groups" && seg[2] == "members" && seg[3] == "all":
		// seg[1] is the group's full path, unescaped (or an id, which the
		// fake does not know).
		members, ok := s.groups[seg[1]]
		if !ok {
			message(w, http.StatusNotFound, "404 Group Not Found")
			return
		}
		out := make([]any, 0, len(members))
		for _, m := range members {
			out = append(out, map[string]any{"id": s.users[m.Username], "username": m.Username, "name": m.Username,
				"state": m.State, "access_level": m.Level})
		}
		s.paginate(w, r, out)
	case len(seg) >= 2 && seg[0] == "projects":
		p := s.project(seg[1])
		if p == nil {
			message(w, http.StatusNotFound, "404 Project Not Found")
			return
		}
		if p.forbidden {
			message(w, http.StatusForbidden, "403 Forbidden")
			return
		}
		s.serveProject(w, r, p, seg[2:])
	default:
		message(w, http.StatusNotFound, "404 Not Found")
	}
}

// match reports whether seg equals pattern, "*" matching any segment.
func match(seg []string, pattern ...string) bool {
	if len(seg) != len(pattern) {
		return false
	}
	for i, p := range pattern {
		if p != "*" && p != seg[i] {
			return false
		}
	}
	return true
}

func (s *Server) user(name string) map[string]any {
	return map[string]any{"id": s.users[name], "username": name, "name": name, "state": "active"}
}

func (s *Server) projectJSON(p *project) map[string]any {
	host := strings.TrimSuffix(s.URL, strings.TrimSuffix(BasePath, "/"))
	return map[string]any{
		"id": p.id, "path_with_namespace": p.path, "default_branch": p.defaultBranch,
		"http_url_to_repo": host + "/gitlab/" + p.path + ".git",
		"web_url":          host + "/gitlab/" + p.path,
	}
}

func (s *Server) serveProject(w http.ResponseWriter, r *http.Request, p *project, seg []string) {
	get, post, put := r.Method == http.MethodGet, r.Method == http.MethodPost, r.Method == http.MethodPut
	switch {
	case get && len(seg) == 0:
		writeJSON(w, 200, s.projectJSON(p))
	case get && match(seg, "approvals"):
		if p.approvalSettings != http.StatusOK {
			message(w, p.approvalSettings, http.StatusText(p.approvalSettings))
			return
		}
		writeJSON(w, 200, map[string]any{"approvers": []any{}, "approver_groups": []any{},
			"reset_approvals_on_push": p.resetOnPush, "selective_code_owner_removals": false,
			"disable_overriding_approvers_per_merge_request": false, "merge_requests_author_approval": false})
	case get && match(seg, "members", "all", "*"):
		uid, _ := strconv.ParseInt(seg[2], 10, 64)
		m, ok := p.members[uid]
		if !ok {
			message(w, http.StatusNotFound, "404 Not found")
			return
		}
		var name string
		for n, id := range s.users {
			if id == uid {
				name = n
			}
		}
		writeJSON(w, 200, map[string]any{"id": uid, "username": name, "access_level": m.level, "state": m.state})
	case post && match(seg, "statuses", "*"):
		var in struct {
			State       string `json:"state"`
			Name        string `json:"name"`
			Context     string `json:"context"`
			TargetURL   string `json:"target_url"`
			Description string `json:"description"`
		}
		if !decode(w, r, &in) {
			return
		}
		if in.Name == "" {
			in.Name = in.Context
		}
		if in.Name == "" {
			in.Name = "default"
		}
		if !slices.Contains([]string{"pending", "running", "success", "failed", "canceled", "skipped"}, in.State) {
			message(w, http.StatusBadRequest, "state does not have a valid value")
			return
		}
		if len([]rune(in.Description)) > 255 {
			message(w, http.StatusBadRequest, "description is too long (maximum is 255 characters)")
			return
		}
		for i := len(p.statuses) - 1; i >= 0; i-- {
			st := p.statuses[i]
			if st.SHA == seg[1] && st.Name == in.Name {
				if st.State == in.State {
					message(w, http.StatusBadRequest, fmt.Sprintf("Cannot transition status via :%s from :%s", in.State, st.State))
					return
				}
				break
			}
		}
		st := Status{SHA: seg[1], Name: in.Name, State: in.State, Description: in.Description, TargetURL: in.TargetURL}
		p.statuses = append(p.statuses, st)
		writeJSON(w, 201, map[string]any{"id": s.id(), "sha": st.SHA, "name": st.Name, "status": st.State})
	case get && match(seg, "repository", "files", "*", "raw"):
		ref := r.URL.Query().Get("ref")
		if ref == "" {
			ref = "main"
		}
		b, ok := p.files[ref+"\x00"+seg[2]]
		if !ok {
			message(w, http.StatusNotFound, "404 File Not Found")
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write(b)
	case post && match(seg, "merge_requests"):
		s.createMR(w, r, p)
	case get && match(seg, "merge_requests"):
		state := r.URL.Query().Get("state")
		s.paginate(w, r, s.mrsJSON(p, func(mr *mergeRequest) bool {
			return state == "" || state == "all" || mr.State == state
		}))
	case get && match(seg, "repository", "commits", "*", "merge_requests"):
		// Every commit exists: one no MR brought has none.
		sha := seg[2]
		s.paginate(w, r, s.mrsJSON(p, func(mr *mergeRequest) bool {
			return slices.Contains(mr.Commits, sha) ||
				slices.Contains([]string{mr.SHA, mr.MergeCommitSHA, mr.SquashCommitSHA}, sha)
		}))
	case get && match(seg, "repository", "branches", "*"):
		sha, ok := p.branches[seg[2]]
		if !ok {
			message(w, http.StatusNotFound, "404 Branch Not Found")
			return
		}
		writeJSON(w, 200, map[string]any{"name": seg[2], "default": seg[2] == p.defaultBranch,
			"merged": false, "protected": false, "can_push": true,
			"commit": map[string]any{"id": sha, "short_id": sha[:min(8, len(sha))]}})
	case post && match(seg, "deployments"):
		var in struct {
			Environment, Ref, SHA, Status string
			Tag                           *bool
		}
		if !decode(w, r, &in) {
			return
		}
		for _, f := range []struct {
			name    string
			missing bool
		}{{"environment", in.Environment == ""}, {"ref", in.Ref == ""}, {"sha", in.SHA == ""},
			{"tag", in.Tag == nil}, {"status", in.Status == ""}} {
			if f.missing {
				message(w, http.StatusBadRequest, f.name+" is missing")
				return
			}
		}
		if !slices.Contains(deploymentStatuses, in.Status) {
			message(w, http.StatusBadRequest, "status does not have a valid value")
			return
		}
		d := Deployment{ID: s.id(), Environment: in.Environment, Ref: in.Ref, SHA: in.SHA, Tag: *in.Tag, Status: in.Status}
		p.deployments = append(p.deployments, d)
		writeJSON(w, 201, deploymentJSON(d))
	case (get || put) && match(seg, "deployments", "*"):
		id, _ := strconv.ParseInt(seg[1], 10, 64)
		i := slices.IndexFunc(p.deployments, func(d Deployment) bool { return d.ID == id })
		if i < 0 {
			message(w, http.StatusNotFound, "404 Not found")
			return
		}
		d := &p.deployments[i]
		if put {
			var in struct{ Status string }
			if !decode(w, r, &in) {
				return
			}
			if !slices.Contains(deploymentStatuses, in.Status) {
				message(w, http.StatusBadRequest, "status does not have a valid value")
				return
			}
			// GitLab's state machine: running only from created, any
			// other status from any but itself.
			if in.Status == d.Status || in.Status == "running" && d.Status != "created" {
				writeJSON(w, http.StatusBadRequest, map[string]any{"message": map[string]any{
					"status": []string{fmt.Sprintf("cannot transition status to %q", in.Status)}}})
				return
			}
			d.Status = in.Status
		}
		writeJSON(w, 200, deploymentJSON(*d))
	case len(seg) >= 2 && seg[0] == "merge_requests":
		iid, _ := strconv.ParseInt(seg[1], 10, 64)
		mr := p.mrs[iid]
		if mr == nil {
			message(w, http.StatusNotFound, "404 Not found")
			return
		}
		s.serveMR(w, r, p, mr, seg[2:], get, post, put)
	default:
		message(w, http.StatusNotFound, "404 Not Found")
	}
}

func (s *Server) serveMR(w http.ResponseWriter, r *http.Request, p *project, mr *mergeRequest, seg []string, get, post, put bool) {
	switch {
	case get && len(seg) == 0:
		writeJSON(w, 200, s.mrJSON(p, mr))
	case put && len(seg) == 0:
		s.updateMR(w, r, p, mr)
	case get && match(seg, "notes"):
		notes := slices.Clone(mr.notes)
		if r.URL.Query().Get("sort") != "asc" {
			slices.Reverse(notes)
		}
		out := make([]any, 0, len(notes))
		for _, n := range notes {
			out = append(out, s.noteJSON(n))
		}
		s.paginate(w, r, out)
	case post && match(seg, "notes"):
		var in struct {
			Body string `json:"body"`
		}
		if !decode(w, r, &in) {
			return
		}
		if in.Body == "" {
			message(w, http.StatusBadRequest, "body is missing")
			return
		}
		now := time.Now().UTC().Truncate(time.Millisecond)
		n := Note{ID: s.id(), Author: s.currentUser, Body: in.Body, CreatedAt: now, UpdatedAt: now}
		mr.notes = append(mr.notes, n)
		writeJSON(w, 201, s.noteJSON(n))
	case put && match(seg, "notes", "*"):
		id, _ := strconv.ParseInt(seg[1], 10, 64)
		var in struct {
			Body string `json:"body"`
		}
		if !decode(w, r, &in) {
			return
		}
		for i := range mr.notes {
			if mr.notes[i].ID == id {
				if mr.notes[i].Author != s.currentUser {
					message(w, http.StatusForbidden, "403 Forbidden")
					return
				}
				mr.notes[i].Body = in.Body
				mr.notes[i].UpdatedAt = time.Now().UTC().Truncate(time.Millisecond)
				writeJSON(w, 200, s.noteJSON(mr.notes[i]))
				return
			}
		}
		message(w, http.StatusNotFound, "404 Note Not Found")
	case get && match(seg, "approvals"):
		by := make([]any, 0, len(mr.approvals))
		for _, a := range mr.approvals {
			e := map[string]any{"user": s.user(a.Username)}
			if !a.ApprovedAt.IsZero() {
				e["approved_at"] = a.ApprovedAt.Format(time.RFC3339Nano)
			}
			by = append(by, e)
		}
		writeJSON(w, 200, map[string]any{"id": mr.IID + 5000, "iid": mr.IID, "project_id": p.id,
			"approved": len(by) > 0, "approved_by": by})
	case get && match(seg, "reviewers"):
		out := make([]any, 0, len(mr.reviewers))
		for _, rv := range mr.reviewers {
			out = append(out, map[string]any{"user": s.user(rv.Username), "state": rv.State,
				"created_at": mr.UpdatedAt.Format(time.RFC3339Nano)})
		}
		writeJSON(w, 200, out) // not paginated, as on GitLab
	case get && match(seg, "versions"):
		out := make([]any, 0, len(mr.versions))
		for i := len(mr.versions) - 1; i >= 0; i-- { // newest first, like GitLab
			v := mr.versions[i]
			out = append(out, map[string]any{"id": i + 1, "head_commit_sha": v.HeadSHA,
				"created_at": v.CreatedAt.Format(time.RFC3339Nano), "state": "collected"})
		}
		s.paginate(w, r, out)
	case get && match(seg, "diffs"):
		out := make([]any, 0, len(mr.diffs))
		for _, d := range mr.diffs {
			out = append(out, map[string]any{"old_path": d.OldPath, "new_path": d.NewPath,
				"renamed_file": d.OldPath != d.NewPath, "diff": "@@ -1 +1 @@\n"})
		}
		s.paginate(w, r, out)
	default:
		message(w, http.StatusNotFound, "404 Not Found")
	}
}

// titleLimit is GitLab's limit on a merge request's title.
const titleLimit = 255

// validation writes GitLab's 400 for an invalid attribute.
func validation(w http.ResponseWriter, field, msg string) {
	writeJSON(w, http.StatusBadRequest, map[string]any{"message": map[string]any{field: []string{msg}}})
}

// titleTooLong refuses, as GitLab does, a title over 255 characters.
func titleTooLong(w http.ResponseWriter, title string) bool {
	if len([]rune(title)) <= titleLimit {
		return false
	}
	validation(w, "title", fmt.Sprintf("is too long (maximum is %d characters)", titleLimit))
	return true
}

// openDuplicate is the open MR of p, other than iid except, between the
// same branches of p; nil when there is none: GitLab keeps one per pair.
func openDuplicate(p *project, source, target string, except int64) *mergeRequest {
	for _, iid := range slices.Sorted(maps.Keys(p.mrs)) {
		mr := p.mrs[iid]
		if iid != except && (mr.State == "opened" || mr.State == "locked") && mr.SourceProjectID == p.id &&
			mr.SourceBranch == source && mr.TargetBranch == target {
			return mr
		}
	}
	return nil
}

// conflict writes GitLab's 409 for a second open MR between two branches.
func conflict(w http.ResponseWriter, dup *mergeRequest) {
	writeJSON(w, http.StatusConflict, map[string]any{"message": []string{
		fmt.Sprintf("Another open merge request already exists for this source branch: !%d", dup.IID)}})
}

// createMR opens a merge request between two branches of p, by the
// current user, with one diff version. Its head is the resolver's (see
// SetBranchResolver), its base the target branch's head. Like GitLab it
// answers 400 for a missing attribute, a title over 255 characters or a
// branch that does not exist, 422 for the same source and target, and 409
// for a second open merge request between the same branches.
func (s *Server) createMR(w http.ResponseWriter, r *http.Request, p *project) {
	var in struct {
		Title           string `json:"title"`
		Description     string `json:"description"`
		SourceBranch    string `json:"source_branch"`
		TargetBranch    string `json:"target_branch"`
		TargetProjectID int64  `json:"target_project_id"`
	}
	if !decode(w, r, &in) {
		return
	}
	var missing []string
	for _, f := range []struct{ name, v string }{{"source_branch", in.SourceBranch}, {"target_branch", in.TargetBranch}, {"title", in.Title}} {
		if f.v == "" {
			missing = append(missing, f.name+" is missing")
		}
	}
	if len(missing) > 0 {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": strings.Join(missing, ", ")})
		return
	}
	if in.TargetProjectID != 0 && in.TargetProjectID != p.id {
		// The bot opens merge requests within one project only; one into
		// another project fails the test, and nothing is opened.
		s.t.Errorf("gitlabfake: a client opened a merge request into project %d from %d; the bot must keep to one project", in.TargetProjectID, p.id)
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "target_project_id is invalid"})
		return
	}
	if titleTooLong(w, in.Title) {
		return
	}
	if in.SourceBranch == in.TargetBranch {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"message": []string{"You can't use same project/branch for source and target"}})
		return
	}
	head, ok := s.branchHeadLocked(p.path, in.SourceBranch)
	if !ok {
		validation(w, "source_branch", "does not exist")
		return
	}
	base, ok := p.branches[in.TargetBranch]
	if !ok {
		base, ok = s.branchHeadLocked(p.path, in.TargetBranch)
	}
	if !ok {
		validation(w, "target_branch", "does not exist")
		return
	}
	if dup := openDuplicate(p, in.SourceBranch, in.TargetBranch, 0); dup != nil {
		conflict(w, dup)
		return
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	mr := s.addMR(p, MergeRequest{
		Title: in.Title, Description: in.Description, Author: s.currentUser,
		SourceBranch: in.SourceBranch, TargetBranch: in.TargetBranch, SHA: head, BaseSHA: base, UpdatedAt: now,
	})
	mr.versions = append(mr.versions, Version{HeadSHA: head, CreatedAt: now})
	s.created[p.id] = append(s.created[p.id], mr.IID)
	writeJSON(w, http.StatusCreated, s.mrJSON(p, mr))
}

// updateMR sets an MR's title and description and applies its
// state_event: close (an open MR), reopen (a closed one, unless another
// open MR has the same branches: 409). Like GitLab it ignores an event the
// MR's state does not allow, such as closing a merged MR.
func (s *Server) updateMR(w http.ResponseWriter, r *http.Request, p *project, mr *mergeRequest) {
	var in struct {
		Title        *string `json:"title"`
		Description  *string `json:"description"`
		StateEvent   *string `json:"state_event"`
		TargetBranch *string `json:"target_branch"`
	}
	if !decode(w, r, &in) {
		return
	}
	if in.TargetBranch != nil {
		// The bot never retargets a merge request; one that tries fails
		// the test, and the fake changes nothing.
		s.t.Errorf("gitlabfake: a client changed the target branch of a merge request; the bot must never do that")
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "target_branch may not change"})
		return
	}
	if in.Title != nil && titleTooLong(w, *in.Title) {
		return
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	if in.StateEvent != nil {
		switch ev := *in.StateEvent; {
		case ev != "close" && ev != "reopen":
			message(w, http.StatusBadRequest, "state_event does not have a valid value")
			return
		case ev == "close" && (mr.State == "opened" || mr.State == "locked"):
			mr.State, mr.ClosedAt = "closed", now
		case ev == "reopen" && mr.State == "closed":
			if dup := openDuplicate(p, mr.SourceBranch, mr.TargetBranch, mr.IID); dup != nil {
				conflict(w, dup)
				return
			}
			mr.State, mr.ClosedAt = "opened", time.Time{}
		}
	}
	if in.Title != nil {
		mr.Title = *in.Title
	}
	if in.Description != nil {
		mr.Description = *in.Description
	}
	mr.UpdatedAt = now
	writeJSON(w, 200, s.mrJSON(p, mr))
}

// mrsJSON lists the project's MRs that keep holds, newest first as GitLab
// does (created_at desc).
func (s *Server) mrsJSON(p *project, keep func(*mergeRequest) bool) []any {
	var iids []int64
	for iid, mr := range p.mrs {
		if keep(mr) {
			iids = append(iids, iid)
		}
	}
	slices.Sort(iids)
	slices.Reverse(iids)
	out := make([]any, 0, len(iids))
	for _, iid := range iids {
		out = append(out, s.mrJSON(p, p.mrs[iid]))
	}
	return out
}

func (s *Server) mrJSON(p *project, mr *mergeRequest) map[string]any {
	web := s.projectJSON(p)["web_url"].(string)
	var mergedAt, closedAt any
	if !mr.MergedAt.IsZero() {
		mergedAt = mr.MergedAt.Format(time.RFC3339Nano)
	}
	if mr.State == "closed" {
		closedAt = cmp.Or(mr.ClosedAt, mr.UpdatedAt).Format(time.RFC3339Nano)
	}
	return map[string]any{
		"id": mr.IID + 5000, "iid": mr.IID, "project_id": p.id, "title": mr.Title,
		"description": nullable(mr.Description), "closed_at": closedAt,
		"state": mr.State, "draft": mr.Draft, "author": s.user(mr.Author),
		"source_branch": mr.SourceBranch, "target_branch": mr.TargetBranch,
		"source_project_id": mr.SourceProjectID, "target_project_id": p.id,
		"sha": mr.SHA, "has_conflicts": mr.HasConflicts,
		"detailed_merge_status": mr.DetailedMergeStatus,
		"updated_at":            mr.UpdatedAt.Format(time.RFC3339Nano),
		"web_url":               fmt.Sprintf("%s/-/merge_requests/%d", web, mr.IID),
		"diff_refs":             map[string]any{"base_sha": mr.BaseSHA, "head_sha": mr.SHA, "start_sha": mr.BaseSHA},
		"merge_commit_sha":      nullable(mr.MergeCommitSHA),
		"squash_commit_sha":     nullable(mr.SquashCommitSHA),
		"squash":                mr.SquashCommitSHA != "",
		"merged_at":             mergedAt,
	}
}

// nullable is v, or JSON null when empty, as GitLab sends unset SHAs.
func nullable(v string) any {
	if v == "" {
		return nil
	}
	return v
}

// deploymentStatuses are the statuses the deployments API takes.
var deploymentStatuses = []string{"running", "success", "failed", "canceled"}

func deploymentJSON(d Deployment) map[string]any {
	return map[string]any{"id": d.ID, "iid": d.ID, "ref": d.Ref, "sha": d.SHA, "status": d.Status,
		"environment": map[string]any{"name": d.Environment}, "deployable": nil}
}

func (s *Server) noteJSON(n Note) map[string]any {
	return map[string]any{
		"id": n.ID, "body": n.Body, "system": n.System, "noteable_type": "MergeRequest",
		"author":     s.user(n.Author),
		"created_at": n.CreatedAt.Format(time.RFC3339Nano),
		"updated_at": n.UpdatedAt.Format(time.RFC3339Nano),
	}
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	// client-go sends JSON bodies; accept form bodies too, as GitLab does.
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		if err := json.NewDecoder(r.Body).Decode(v); err != nil {
			message(w, http.StatusBadRequest, "malformed JSON")
			return false
		}
		return true
	}
	if err := r.ParseForm(); err != nil {
		message(w, http.StatusBadRequest, "malformed form")
		return false
	}
	m := map[string]string{}
	for k := range r.PostForm {
		m[k] = r.PostForm.Get(k)
	}
	b, _ := json.Marshal(m)
	_ = json.Unmarshal(b, v)
	return true
}

// paginate writes one page of items with GitLab's pagination headers
// (per_page defaults to 20, at most 100).
func (s *Server) paginate(w http.ResponseWriter, r *http.Request, items []any) {
	q := r.URL.Query()
	page, _ := strconv.Atoi(q.Get("page"))
	if page < 1 {
		page = 1
	}
	per, _ := strconv.Atoi(q.Get("per_page"))
	if per < 1 {
		per = 20
	}
	per = min(per, 100)
	total := len(items)
	pages := max((total+per-1)/per, 1)
	lo := min((page-1)*per, total)
	hi := min(lo+per, total)
	h := w.Header()
	h.Set("X-Page", strconv.Itoa(page))
	h.Set("X-Per-Page", strconv.Itoa(per))
	h.Set("X-Total", strconv.Itoa(total))
	h.Set("X-Total-Pages", strconv.Itoa(pages))
	h.Set("X-Next-Page", "")
	if page < pages {
		h.Set("X-Next-Page", strconv.Itoa(page+1))
	}
	h.Set("X-Prev-Page", "")
	if page > 1 {
		h.Set("X-Prev-Page", strconv.Itoa(page-1))
	}
	writeJSON(w, 200, items[lo:hi])
}
