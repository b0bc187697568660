// Package githubfake is an HTTP-level fake of the GitHub REST API for
// tests: in-memory repositories, branches, pull requests (opened, edited
// and closed through the API too), comments, reviews, statuses,
// deployments, files, permissions, organisation teams and App
// installations. Every request is validated against GitHub's published
// OpenAPI description (npm @octokit/openapi, fetched by
// hack/test-data.sh); a request the description does not allow fails the
// test. Installation tokens are minted only for a valid RS256 JWT of the
// App, and expire.
package githubfake

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"
)

// BasePath is where the API is served, like a GitHub Enterprise Server's
// /api/v3/: a non-empty prefix catches clients that build absolute paths.
const BasePath = "/api-v3/"

// Repo is a repository in the fake.
type Repo struct {
	Owner, Name string
	ID          int64
	// Installation is the GitHub App installation that covers it (0: none).
	Installation int64
	// Files by ref, then by path.
	Files map[string]map[string]string
	// Permissions by login: admin, maintain, write, triage, read, none.
	Permissions map[string]string
	Pulls       map[int]*Pull
	Statuses    []Status
	// DefaultBranch is the default branch's name; AddRepo makes it "main"
	// when empty.
	DefaultBranch string
	// Branches are the heads (name → SHA) of the branches the fake knows;
	// another branch is 404, as the default branch of an empty repository.
	Branches    map[string]string
	Deployments []Deployment
}

// FullName is owner/name.
func (r *Repo) FullName() string { return r.Owner + "/" + r.Name }

// Pull is a pull request. A merged one (Merged) is reported closed,
// whatever State says, merged at MergedAt (UpdatedAt when zero).
type Pull struct {
	Number               int
	Title, Author, State string // State: open, closed
	// Body is the description in markdown; "" renders null.
	Body             string
	Draft, Merged    bool
	Mergeable        *bool
	HeadSHA, HeadRef string
	BaseSHA, BaseRef string
	HeadRepo         string // owner/name of a fork; "" for the same repository
	// MergeCommitSHA is the merge commit, or an open pull request's test
	// merge commit; "" renders null.
	MergeCommitSHA string
	MergedAt       time.Time
	// Commits are commits the pull request brought besides HeadSHA and
	// MergeCommitSHA: GET commits/{sha}/pulls lists it for any of them.
	Commits              []string
	Comments             []Comment
	Reviews              []Review
	Files                []File
	CreatedAt, UpdatedAt time.Time
	// ClosedAt is when it was closed (or merged); UpdatedAt when zero.
	ClosedAt time.Time
}

// state is the state GitHub reports: a merged pull request is closed.
func (p *Pull) state() string {
	if p.Merged {
		return "closed"
	}
	return p.State
}

// hasCommit reports whether GitHub associates p with commit sha.
func (p *Pull) hasCommit(sha string) bool {
	return p.HeadSHA == sha || p.MergeCommitSHA == sha || slices.Contains(p.Commits, sha)
}

// Comment is an issue comment on a pull request.
type Comment struct {
	ID                   int64
	Author, Body         string
	CreatedAt, UpdatedAt time.Time
}

// Review is a pull request review; State as GitHub spells it (APPROVED,
// CHANGES_REQUESTED, COMMENTED, DISMISSED, PENDING). An empty CommitID is
// null, as for a review of a commit that a force-push removed; a PENDING
// review has no submitted_at.
type Review struct {
	ID                      int64
	Author, State, CommitID string
	SubmittedAt             time.Time
}

// File is a file a pull request changes.
type File struct {
	Filename, PreviousFilename, Status string
}

// Status is a commit status as created.
type Status struct {
	SHA, State, Context, Description, TargetURL string
}

// Deployment is a deployment as created, with the defaults GitHub gives
// what the request left out, and its statuses oldest first.
type Deployment struct {
	ID int64
	// Ref is as requested; SHA is its commit: the head of a branch in
	// Repo.Branches, or else Ref itself.
	Ref, SHA                       string
	Task, Environment, Description string
	Creator                        string
	AutoMerge                      bool
	// RequiredContexts are the contexts whose latest status on SHA had to
	// be success (else 409, as GitHub); nil when the request left it out,
	// which requires every context the commit has a status of.
	RequiredContexts                            []string
	TransientEnvironment, ProductionEnvironment bool
	CreatedAt                                   time.Time
	Statuses                                    []DeploymentStatus
}

// DeploymentStatus is a deployment status as created.
type DeploymentStatus struct {
	ID                 int64
	State, Description string
}

// Response is a canned response Inject makes the fake answer with.
type Response struct {
	Status int
	Header http.Header
	Body   string
}

type injection struct {
	method, path string
	left         int
	resp         Response
}

type token struct {
	installation int64  // App installation token
	login        string // personal token
	expires      time.Time
}

// Server is the fake. Its fields are set by New; change state through its
// methods, which lock.
type Server struct {
	t   testing.TB
	srv *httptest.Server

	AppID   int64
	AppSlug string
	// Key signs the App's JWTs; KeyPEM is it PEM-encoded, for the client.
	Key    *rsa.PrivateKey
	KeyPEM []byte

	// CloneURL gives a repository's clone_url (owner/name → URL), such as a
	// gittest server's; nil means https://github.example/owner/name.git.
	CloneURL func(fullName string) string

	mu           sync.Mutex
	tokenTTL     time.Duration
	repos        map[string]*Repo
	teams        map[string][]string // "org/slug" → member logins
	tokens       map[string]token
	injections   []*injection
	tokensIssued int
	nextID       int64
	requests     []string
	resolve      func(fullName, branch string) (string, bool)
	filesOf      func(fullName, base, head string) ([]File, bool)
	created      map[string][]int // repository full name → pull numbers opened through the API
}

// New starts a fake for t, stopped at cleanup. It skips t when the OpenAPI
// description is missing (fails when CI=true).
func New(t testing.TB) *Server {
	t.Helper()
	rt := router(t)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{
		t:        t,
		AppID:    4242,
		AppSlug:  "gitops-test",
		Key:      key,
		KeyPEM:   pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}),
		tokenTTL: time.Hour,
		repos:    map[string]*Repo{},
		teams:    map[string][]string{},
		tokens:   map[string]token{},
		nextID:   1000,
		created:  map[string][]int{},
	}
	mux := http.NewServeMux()
	s.routes(mux)
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.serve(w, r, rt, mux)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// URL is the API root, with its trailing slash: pass it as the client's
// base URL.
func (s *Server) URL() string { return s.srv.URL + BasePath }

// SetTokenTTL sets the lifetime of the installation tokens minted next.
func (s *Server) SetTokenTTL(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenTTL = d
}

// AddRepo adds (or replaces) a repository, filling nil maps.
func (s *Server) AddRepo(r *Repo) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.Files == nil {
		r.Files = map[string]map[string]string{}
	}
	if r.Permissions == nil {
		r.Permissions = map[string]string{}
	}
	if r.Pulls == nil {
		r.Pulls = map[int]*Pull{}
	}
	if r.DefaultBranch == "" {
		r.DefaultBranch = "main"
	}
	if r.Branches == nil {
		r.Branches = map[string]string{}
	}
	if r.ID == 0 {
		s.nextID++
		r.ID = s.nextID
	}
	s.repos[r.FullName()] = r
}

// Update runs fn on the repository under the lock, to change or read it.
func (s *Server) Update(fullName string, fn func(r *Repo)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.repos[fullName]
	if !ok {
		s.t.Fatalf("githubfake: no repository %s", fullName)
	}
	fn(r)
}

// SetBranchResolver makes fn tell the head commit of a repository's branch
// when a pull request is opened (or reopened) through the API: head.sha is
// fn's answer for the head branch, and base.sha the base branch's head in
// Repo.Branches, else fn's. Tests pass a function that reads a real Git
// repository (gittest's Repo.Resolve). Without a resolver, or when it says
// !ok for the head, opening a pull request answers 422 as GitHub does for
// a head branch it does not know. fn is called without the fake's lock
// held, from the request's goroutine.
func (s *Server) SetBranchResolver(fn func(fullName, branch string) (sha string, ok bool)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resolve = fn
}

// SetFilesResolver makes fn tell the files a pull request opened through
// the API changes (GET …/pulls/{n}/files), from its base and head commits:
// tests pass a function that diffs a real Git repository. Without one, such
// a pull request lists the files the test set, none by default. fn is
// called without the fake's lock held.
func (s *Server) SetFilesResolver(fn func(fullName, base, head string) ([]File, bool)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.filesOf = fn
}

// branchHead asks the resolver for a branch's head; it must be called
// without the lock held.
func (s *Server) branchHead(fullName, branch string) (string, bool) {
	s.mu.Lock()
	fn := s.resolve
	s.mu.Unlock()
	if fn == nil || branch == "" {
		return "", false
	}
	return fn(fullName, branch)
}

// MergePull marks pull request n of the repository merged as sha (a
// merge, the commit of a squash, or a fast-forward's head) now, and moves
// its base branch in Repo.Branches there, as a merge on GitHub would.
func (s *Server) MergePull(fullName string, n int, sha string) {
	s.Update(fullName, func(r *Repo) {
		p, ok := r.Pulls[n]
		if !ok {
			s.t.Fatalf("githubfake: no pull request %s#%d", fullName, n)
		}
		now := time.Now()
		p.Merged, p.MergeCommitSHA, p.MergedAt, p.ClosedAt, p.UpdatedAt = true, sha, now, now, now
		r.Branches[p.BaseRef] = sha
	})
}

// CreatedPulls returns copies of the pull requests opened through the API
// in the repository, in the order they were opened, as they are now.
func (s *Server) CreatedPulls(fullName string) []Pull {
	var out []Pull
	s.Update(fullName, func(r *Repo) {
		for _, n := range s.created[fullName] {
			if p, ok := r.Pulls[n]; ok {
				out = append(out, *p)
			}
		}
	})
	return out
}

// SetTeam makes members (logins, in order) the members of the team slug of
// organisation org, replacing any before. An App installation sees the
// teams of an organisation it has a repository of; a personal token sees
// every team.
func (s *Server) SetTeam(org, slug string, members ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.teams[org+"/"+slug] = append([]string(nil), members...)
}

// AddToken makes tok a personal token of login.
func (s *Server) AddToken(tok, login string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[tok] = token{login: login, expires: time.Now().Add(24 * time.Hour)}
}

// TokensIssued counts the installation tokens minted.
func (s *Server) TokensIssued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokensIssued
}

// Requests lists "METHOD /path" of every request served, base path cut.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.requests...)
}

// Inject answers the next times requests for method and path (after the
// base path, without query: "/repos/o/r/pulls/1") with resp instead.
func (s *Server) Inject(method, path string, times int, resp Response) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.injections = append(s.injections, &injection{method: method, path: path, left: times, resp: resp})
}

func (s *Server) cloneURL(fullName string) string {
	if s.CloneURL != nil {
		return s.CloneURL(fullName)
	}
	return "https://github.example/" + fullName + ".git"
}

// ValidToken reports whether tok is a token the fake issued (or was given)
// and has not expired: a Git server in front of the same repositories checks
// clone credentials with it.
func (s *Server) ValidToken(tok string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[tok]
	return ok && time.Now().Before(t.expires)
}
