package githubfake

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/golang-jwt/jwt/v4"
)

// serve validates r against the description, applies injections, and
// hands it to the mux with the base path cut.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, rt routers.Router, mux *http.ServeMux) {
	if !strings.HasPrefix(r.URL.Path, BasePath) {
		s.t.Errorf("githubfake: %s %s is outside the API base path %s (an absolute path?)", r.Method, r.URL.Path, BasePath)
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "reading the body")
		return
	}
	apiPath := "/" + strings.TrimPrefix(r.URL.Path, BasePath)

	// The description's {path} of the contents API and {branch} are one
	// segment; a nested file's path or a branch named a/b is one parameter
	// with its slashes.
	vpath := apiPath
	if parts := strings.SplitN(apiPath, "/", 6); len(parts) == 6 && parts[1] == "repos" && (parts[4] == "contents" || parts[4] == "branches") {
		vpath = strings.Join(parts[:5], "/") + "/" + strings.ReplaceAll(parts[5], "/", "%2F")
	}
	vurl, err := url.Parse("https://api.github.com" + vpath)
	if err != nil {
		s.t.Errorf("githubfake: %s %s: bad path: %v", r.Method, r.URL.Path, err)
		writeError(w, http.StatusBadRequest, "bad path")
		return
	}
	vurl.RawQuery = r.URL.RawQuery
	vreq := r.Clone(r.Context())
	vreq.URL = vurl
	vreq.RequestURI = ""
	vreq.Body = io.NopCloser(bytes.NewReader(body))
	route, params, err := rt.FindRoute(vreq)
	if err != nil {
		s.t.Errorf("githubfake: %s %s is not in GitHub's API description: %v", r.Method, apiPath, err)
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	if err := openapi3filter.ValidateRequest(r.Context(), &openapi3filter.RequestValidationInput{
		Request:    vreq,
		PathParams: params,
		Route:      route,
		Options:    &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
	}); err != nil {
		s.t.Errorf("githubfake: %s %s does not match GitHub's API description: %v", r.Method, apiPath, err)
		writeError(w, http.StatusUnprocessableEntity, "Validation Failed")
		return
	}

	s.mu.Lock()
	s.requests = append(s.requests, r.Method+" "+apiPath)
	var inj *Response
	for _, in := range s.injections {
		if in.left > 0 && in.method == r.Method && in.path == apiPath {
			in.left--
			resp := in.resp
			inj = &resp
			break
		}
	}
	s.mu.Unlock()
	if inj != nil {
		for k, v := range inj.Header {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(inj.Status)
		_, _ = io.WriteString(w, inj.Body)
		return
	}

	r2 := r.Clone(r.Context())
	r2.URL.Path = apiPath
	r2.URL.RawPath = ""
	r2.Body = io.NopCloser(bytes.NewReader(body))
	mux.ServeHTTP(w, r2)
}

func (s *Server) routes(mux *http.ServeMux) {
	mux.HandleFunc("POST /app/installations/{id}/access_tokens", s.accessToken)
	mux.HandleFunc("GET /app", s.app)
	mux.HandleFunc("GET /user", s.user)
	mux.HandleFunc("GET /repos/{owner}/{repo}", s.getRepo)
	mux.HandleFunc("GET /repos/{owner}/{repo}/installation", s.repoInstallation)
	mux.HandleFunc("GET /repos/{owner}/{repo}/branches/{branch...}", s.getBranch)
	mux.HandleFunc("GET /repos/{owner}/{repo}/commits/{sha}/pulls", s.commitPulls)
	mux.HandleFunc("POST /repos/{owner}/{repo}/deployments", s.createDeployment)
	mux.HandleFunc("POST /repos/{owner}/{repo}/deployments/{id}/statuses", s.createDeploymentStatus)
	mux.HandleFunc("GET /repos/{owner}/{repo}/issues/{n}/comments", s.listComments)
	mux.HandleFunc("POST /repos/{owner}/{repo}/issues/{n}/comments", s.createComment)
	mux.HandleFunc("PATCH /repos/{owner}/{repo}/issues/comments/{id}", s.editComment)
	mux.HandleFunc("POST /repos/{owner}/{repo}/statuses/{sha}", s.createStatus)
	mux.HandleFunc("GET /repos/{owner}/{repo}/pulls", s.listPulls)
	mux.HandleFunc("POST /repos/{owner}/{repo}/pulls", s.createPull)
	mux.HandleFunc("GET /repos/{owner}/{repo}/pulls/{n}", s.getPull)
	mux.HandleFunc("PATCH /repos/{owner}/{repo}/pulls/{n}", s.editPull)
	mux.HandleFunc("GET /repos/{owner}/{repo}/pulls/{n}/reviews", s.listReviews)
	mux.HandleFunc("GET /repos/{owner}/{repo}/pulls/{n}/files", s.listFiles)
	mux.HandleFunc("GET /repos/{owner}/{repo}/contents/{path...}", s.contents)
	mux.HandleFunc("GET /repos/{owner}/{repo}/collaborators/{user}/permission", s.permission)
	mux.HandleFunc("GET /orgs/{org}/teams/{slug}/members", s.teamMembers)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{
		"message":           msg,
		"documentation_url": "https://docs.github.com/rest",
	})
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	for _, p := range []string{"Bearer ", "bearer ", "token "} {
		if v, ok := strings.CutPrefix(h, p); ok {
			return v
		}
	}
	return ""
}

// appJWT checks the request carries a JWT of the App: RS256 with the App's
// key, iss the app id, issued no later than a minute from now, expiring in
// the future and at most ten minutes after issue.
func (s *Server) appJWT(w http.ResponseWriter, r *http.Request) bool {
	raw := bearer(r)
	claims := &jwt.RegisteredClaims{}
	_, err := jwt.ParseWithClaims(raw, claims, func(tk *jwt.Token) (any, error) {
		if tk.Method.Alg() != "RS256" {
			return nil, fmt.Errorf("alg %s, want RS256", tk.Method.Alg())
		}
		return &s.Key.PublicKey, nil
	})
	now := time.Now()
	switch {
	case err != nil:
	case claims.Issuer != strconv.FormatInt(s.AppID, 10):
		err = fmt.Errorf("iss %q, want %d", claims.Issuer, s.AppID)
	case claims.IssuedAt == nil || claims.ExpiresAt == nil:
		err = fmt.Errorf("no iat or exp")
	case claims.IssuedAt.After(now.Add(time.Minute)):
		err = fmt.Errorf("iat in the future")
	case claims.ExpiresAt.Sub(claims.IssuedAt.Time) > 10*time.Minute:
		err = fmt.Errorf("exp more than 10 minutes after iat")
	}
	if err != nil {
		writeError(w, http.StatusUnauthorized, "A JSON web token could not be decoded: "+err.Error())
		return false
	}
	return true
}

// repoFor authenticates a token for the repository named by the path and
// returns it; it writes the error response and returns nil otherwise.
func (s *Server) repoFor(w http.ResponseWriter, r *http.Request) *Repo {
	tok, ok := s.tokens[bearer(r)]
	if !ok || time.Now().After(tok.expires) {
		writeError(w, http.StatusUnauthorized, "Bad credentials")
		return nil
	}
	repo, ok := s.repos[r.PathValue("owner")+"/"+r.PathValue("repo")]
	if !ok || (tok.installation != 0 && repo.Installation != tok.installation) {
		writeError(w, http.StatusNotFound, "Not Found")
		return nil
	}
	return repo
}

func (s *Server) accessToken(w http.ResponseWriter, r *http.Request) {
	if !s.appJWT(w, r) {
		return
	}
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	s.mu.Lock()
	defer s.mu.Unlock()
	found := false
	for _, repo := range s.repos {
		found = found || repo.Installation == id
	}
	if !found {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	tok := "ghs_" + hex.EncodeToString(b)
	exp := time.Now().Add(s.tokenTTL)
	s.tokens[tok] = token{installation: id, expires: exp}
	s.tokensIssued++
	writeJSON(w, http.StatusCreated, map[string]any{
		"token":      tok,
		"expires_at": exp.UTC().Format(time.RFC3339),
	})
}

func (s *Server) app(w http.ResponseWriter, r *http.Request) {
	if !s.appJWT(w, r) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": s.AppID, "slug": s.AppSlug, "name": s.AppSlug})
}

func (s *Server) user(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tok, ok := s.tokens[bearer(r)]
	if !ok || tok.login == "" {
		writeError(w, http.StatusUnauthorized, "Bad credentials")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"login": tok.login, "id": 1, "type": "User"})
}

func (s *Server) repoInstallation(w http.ResponseWriter, r *http.Request) {
	if !s.appJWT(w, r) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	repo, ok := s.repos[r.PathValue("owner")+"/"+r.PathValue("repo")]
	if !ok || repo.Installation == 0 {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": repo.Installation, "app_id": s.AppID})
}

func (s *Server) getRepo(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	repo := s.repoFor(w, r)
	if repo == nil {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"id": repo.ID, "name": repo.Name, "full_name": repo.FullName(), "owner": user(repo.Owner),
		"private": false, "default_branch": repo.DefaultBranch, "clone_url": s.cloneURL(repo.FullName()),
		"html_url": "https://github.example/" + repo.FullName(),
	})
}

func (s *Server) getBranch(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	repo := s.repoFor(w, r)
	if repo == nil {
		return
	}
	name := r.PathValue("branch")
	sha, ok := repo.Branches[name]
	if !ok {
		writeError(w, http.StatusNotFound, "Branch not found")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"name": name, "commit": map[string]any{"sha": sha}, "protected": false})
}

func (s *Server) createDeployment(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	repo := s.repoFor(w, r)
	if repo == nil {
		return
	}
	// Decoded over GitHub's defaults, which stay where the request is silent.
	in := struct {
		Ref                   string   `json:"ref"`
		Task                  string   `json:"task"`
		AutoMerge             bool     `json:"auto_merge"`
		RequiredContexts      []string `json:"required_contexts"`
		Environment           string   `json:"environment"`
		Description           string   `json:"description"`
		TransientEnvironment  bool     `json:"transient_environment"`
		ProductionEnvironment *bool    `json:"production_environment"`
	}{Task: "deploy", AutoMerge: true, Environment: "production"}
	_ = json.NewDecoder(r.Body).Decode(&in)
	d := Deployment{
		Ref: in.Ref, SHA: in.Ref, Task: in.Task, Environment: in.Environment, Description: in.Description,
		Creator: s.author(r), AutoMerge: in.AutoMerge, RequiredContexts: in.RequiredContexts,
		TransientEnvironment: in.TransientEnvironment, ProductionEnvironment: in.Environment == "production",
		CreatedAt: time.Now(),
	}
	if in.ProductionEnvironment != nil {
		d.ProductionEnvironment = *in.ProductionEnvironment
	}
	if sha, ok := repo.Branches[in.Ref]; ok {
		d.SHA = sha
	}
	latest := map[string]string{} // context → state of d.SHA's latest status
	for _, st := range repo.Statuses {
		if st.SHA == d.SHA {
			latest[st.Context] = st.State
		}
	}
	required := d.RequiredContexts
	if required == nil {
		required = slices.Sorted(maps.Keys(latest))
	}
	for _, c := range required {
		if latest[c] != "success" {
			writeError(w, http.StatusConflict, fmt.Sprintf("Conflict: Commit status checks failed for %s: %s is not success.", in.Ref, c))
			return
		}
	}
	s.nextID++
	d.ID = s.nextID
	repo.Deployments = append(repo.Deployments, d)
	created := d.CreatedAt.UTC().Format(time.RFC3339)
	writeJSON(w, http.StatusCreated, map[string]any{
		"id": d.ID, "sha": d.SHA, "ref": d.Ref, "task": d.Task, "payload": map[string]any{},
		"environment": d.Environment, "original_environment": d.Environment, "description": d.Description,
		"creator": user(d.Creator), "created_at": created, "updated_at": created,
		"transient_environment": d.TransientEnvironment, "production_environment": d.ProductionEnvironment,
	})
}

func (s *Server) createDeploymentStatus(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	repo := s.repoFor(w, r)
	if repo == nil {
		return
	}
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	i := slices.IndexFunc(repo.Deployments, func(d Deployment) bool { return d.ID == id })
	if i < 0 {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	var in struct {
		State       string `json:"state"`
		Description string `json:"description"`
	}
	_ = json.NewDecoder(r.Body).Decode(&in)
	if descriptionTooLong(w, in.Description) {
		return
	}
	s.nextID++
	st := DeploymentStatus{ID: s.nextID, State: in.State, Description: in.Description}
	d := &repo.Deployments[i]
	d.Statuses = append(d.Statuses, st)
	now := time.Now().UTC().Format(time.RFC3339)
	writeJSON(w, http.StatusCreated, map[string]any{
		"id": st.ID, "state": st.State, "description": st.Description, "environment": d.Environment,
		"creator": user(s.author(r)), "created_at": now, "updated_at": now,
	})
}

// page writes items[page] with GitHub's Link header.
func page[T any](w http.ResponseWriter, r *http.Request, items []T, render func(T) any) {
	q := r.URL.Query()
	per, _ := strconv.Atoi(q.Get("per_page"))
	if per <= 0 {
		per = 30
	}
	per = min(per, 100)
	p, _ := strconv.Atoi(q.Get("page"))
	p = max(p, 1)
	last := max((len(items)+per-1)/per, 1)
	lo := min((p-1)*per, len(items))
	hi := min(lo+per, len(items))
	link := func(n int, rel string) string {
		u := *r.URL
		u.Path = strings.TrimSuffix(BasePath, "/") + r.URL.Path
		q := u.Query()
		q.Set("page", strconv.Itoa(n))
		q.Set("per_page", strconv.Itoa(per))
		u.RawQuery = q.Encode()
		return fmt.Sprintf(`<http://%s%s>; rel="%s"`, r.Host, u.RequestURI(), rel)
	}
	var links []string
	if p < last {
		links = append(links, link(p+1, "next"), link(last, "last"))
	}
	if p > 1 {
		links = append(links, link(1, "first"), link(p-1, "prev"))
	}
	if len(links) > 0 {
		w.Header().Set("Link", strings.Join(links, ", "))
	}
	out := make([]any, 0, hi-lo)
	for _, it := range items[lo:hi] {
		out = append(out, render(it))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) pull(w http.ResponseWriter, r *http.Request, repo *Repo) *Pull {
	n, _ := strconv.Atoi(r.PathValue("n"))
	pr, ok := repo.Pulls[n]
	if !ok {
		writeError(w, http.StatusNotFound, "Not Found")
		return nil
	}
	return pr
}

func user(login string) map[string]any { return map[string]any{"login": login, "type": "User"} }

func commentJSON(c Comment) any {
	return map[string]any{
		"id": c.ID, "body": c.Body, "user": user(c.Author),
		"created_at": c.CreatedAt.UTC().Format(time.RFC3339), "updated_at": c.UpdatedAt.UTC().Format(time.RFC3339),
	}
}

func (s *Server) listComments(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	repo := s.repoFor(w, r)
	if repo == nil {
		return
	}
	if pr := s.pull(w, r, repo); pr != nil {
		page(w, r, pr.Comments, commentJSON)
	}
}

func (s *Server) author(r *http.Request) string {
	if tok := s.tokens[bearer(r)]; tok.login != "" {
		return tok.login
	}
	return s.AppSlug + "[bot]"
}

func (s *Server) createComment(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	repo := s.repoFor(w, r)
	if repo == nil {
		return
	}
	pr := s.pull(w, r, repo)
	if pr == nil {
		return
	}
	var in struct {
		Body string `json:"body"`
	}
	_ = json.NewDecoder(r.Body).Decode(&in)
	s.nextID++
	now := time.Now()
	c := Comment{ID: s.nextID, Author: s.author(r), Body: in.Body, CreatedAt: now, UpdatedAt: now}
	pr.Comments = append(pr.Comments, c)
	writeJSON(w, http.StatusCreated, commentJSON(c))
}

func (s *Server) editComment(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	repo := s.repoFor(w, r)
	if repo == nil {
		return
	}
	id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
	var in struct {
		Body string `json:"body"`
	}
	_ = json.NewDecoder(r.Body).Decode(&in)
	for _, pr := range repo.Pulls {
		for i := range pr.Comments {
			if pr.Comments[i].ID == id {
				pr.Comments[i].Body = in.Body
				pr.Comments[i].UpdatedAt = time.Now()
				writeJSON(w, http.StatusOK, commentJSON(pr.Comments[i]))
				return
			}
		}
	}
	writeError(w, http.StatusNotFound, "Not Found")
}

func (s *Server) createStatus(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	repo := s.repoFor(w, r)
	if repo == nil {
		return
	}
	var in struct {
		State       string `json:"state"`
		Context     string `json:"context"`
		Description string `json:"description"`
		TargetURL   string `json:"target_url"`
	}
	_ = json.NewDecoder(r.Body).Decode(&in)
	if descriptionTooLong(w, in.Description) {
		return
	}
	st := Status{SHA: r.PathValue("sha"), State: in.State, Context: in.Context, Description: in.Description, TargetURL: in.TargetURL}
	repo.Statuses = append(repo.Statuses, st)
	s.nextID++
	writeJSON(w, http.StatusCreated, map[string]any{"id": s.nextID, "state": st.State, "context": st.Context, "description": st.Description})
}

// descriptionTooLong refuses, as GitHub does, a status description (of a
// commit or a deployment) longer than 140 characters.
func descriptionTooLong(w http.ResponseWriter, d string) bool {
	if len([]rune(d)) <= 140 {
		return false
	}
	writeError(w, http.StatusUnprocessableEntity, "description is too long (maximum is 140 characters)")
	return true
}

func (s *Server) pullJSON(repo *Repo, pr *Pull) any {
	base := map[string]any{"full_name": repo.FullName(), "id": repo.ID, "clone_url": s.cloneURL(repo.FullName())}
	head := base
	if pr.HeadRepo != "" {
		head = map[string]any{"full_name": pr.HeadRepo, "fork": true, "clone_url": s.cloneURL(pr.HeadRepo)}
	}
	out := map[string]any{
		"number": pr.Number, "title": pr.Title, "body": nil, "user": user(pr.Author), "state": pr.state(),
		"draft": pr.Draft, "merged": pr.Merged, "mergeable": pr.Mergeable,
		"merged_at": nil, "merge_commit_sha": nil, "closed_at": nil,
		"html_url":   fmt.Sprintf("https://github.example/%s/pull/%d", repo.FullName(), pr.Number),
		"head":       map[string]any{"sha": pr.HeadSHA, "ref": pr.HeadRef, "repo": head},
		"base":       map[string]any{"sha": pr.BaseSHA, "ref": pr.BaseRef, "repo": base},
		"created_at": cmp.Or(pr.CreatedAt, pr.UpdatedAt).UTC().Format(time.RFC3339),
		"updated_at": pr.UpdatedAt.UTC().Format(time.RFC3339),
	}
	if pr.Body != "" {
		out["body"] = pr.Body
	}
	if pr.state() == "closed" {
		out["closed_at"] = cmp.Or(pr.ClosedAt, pr.MergedAt, pr.UpdatedAt).UTC().Format(time.RFC3339)
	}
	if pr.Merged {
		out["merged_at"] = cmp.Or(pr.MergedAt, pr.UpdatedAt).UTC().Format(time.RFC3339)
	}
	if pr.MergeCommitSHA != "" {
		out["merge_commit_sha"] = pr.MergeCommitSHA
	}
	return out
}

func (s *Server) listPulls(w http.ResponseWriter, r *http.Request) {
	s.syncHeads(r.PathValue("owner") + "/" + r.PathValue("repo"))
	s.mu.Lock()
	defer s.mu.Unlock()
	repo := s.repoFor(w, r)
	if repo == nil {
		return
	}
	state := r.URL.Query().Get("state")
	if state == "" {
		state = "open"
	}
	var prs []*Pull
	for _, n := range slices.Sorted(maps.Keys(repo.Pulls)) {
		if pr := repo.Pulls[n]; state == "all" || pr.state() == state {
			prs = append(prs, pr)
		}
	}
	page(w, r, prs, func(pr *Pull) any { return s.pullJSON(repo, pr) })
}

func (s *Server) getPull(w http.ResponseWriter, r *http.Request) {
	s.syncHeads(r.PathValue("owner") + "/" + r.PathValue("repo"))
	s.mu.Lock()
	defer s.mu.Unlock()
	repo := s.repoFor(w, r)
	if repo == nil {
		return
	}
	if pr := s.pull(w, r, repo); pr != nil {
		writeJSON(w, http.StatusOK, s.pullJSON(repo, pr))
	}
}

// titleMax is GitHub's limit on a pull request's title.
const titleMax = 256

// validationFailed writes GitHub's 422 with the errors given.
func validationFailed(w http.ResponseWriter, errs ...map[string]any) {
	writeJSON(w, http.StatusUnprocessableEntity, map[string]any{
		"message":           "Validation Failed",
		"errors":            errs,
		"documentation_url": "https://docs.github.com/rest/pulls/pulls",
	})
}

// customError is an entry of a 422's errors with a message of its own.
func customError(msg string) map[string]any {
	return map[string]any{"resource": "PullRequest", "code": "custom", "message": msg}
}

// titleTooLong refuses, as GitHub does, a title over 256 characters.
func titleTooLong(w http.ResponseWriter, title string) bool {
	if len([]rune(title)) <= titleMax {
		return false
	}
	validationFailed(w, map[string]any{"resource": "Issue", "field": "title", "code": "custom",
		"message": fmt.Sprintf("title is too long (maximum is %d characters)", titleMax)})
	return true
}

// openDuplicate is the open pull request of repo other than except from
// head into base, nil when there is none: GitHub keeps one per pair.
func openDuplicate(repo *Repo, head, base string, except int) *Pull {
	for _, n := range slices.Sorted(maps.Keys(repo.Pulls)) {
		p := repo.Pulls[n]
		if n != except && p.state() == "open" && p.HeadRepo == "" && p.HeadRef == head && p.BaseRef == base {
			return p
		}
	}
	return nil
}

// createPull opens a pull request from a branch of the same repository
// ("branch" or "owner:branch"). Its head is the resolver's (see
// SetBranchResolver), its base the base branch's head. Like GitHub it
// answers 422 for an unknown head or base, a head with no commits over the
// base, and a second open pull request from the same head into the same
// base. The answer says mergeable null, as GitHub's does while it
// computes; later reads say true.
func (s *Server) createPull(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Title string `json:"title"`
		Body  string `json:"body"`
		Head  string `json:"head"`
		Base  string `json:"base"`
		Draft bool   `json:"draft"`
	}
	_ = json.NewDecoder(r.Body).Decode(&in)
	fullName := r.PathValue("owner") + "/" + r.PathValue("repo")
	head := in.Head
	if owner, branch, ok := strings.Cut(in.Head, ":"); ok && owner == r.PathValue("owner") {
		head = branch
	}
	// The resolver runs without the lock: it may take a while.
	headSHA, headOK := s.branchHead(fullName, head)
	baseSHA, baseOK := s.branchHead(fullName, in.Base)

	s.mu.Lock()
	defer s.mu.Unlock()
	repo := s.repoFor(w, r)
	if repo == nil {
		return
	}
	if sha, ok := repo.Branches[in.Base]; ok {
		baseSHA, baseOK = sha, true
	}
	switch {
	case titleTooLong(w, in.Title):
		return
	case !baseOK:
		validationFailed(w, map[string]any{"resource": "PullRequest", "field": "base", "code": "invalid"})
		return
	case !headOK || strings.Contains(head, ":"):
		validationFailed(w, map[string]any{"resource": "PullRequest", "field": "head", "code": "invalid"})
		return
	case openDuplicate(repo, head, in.Base, 0) != nil:
		validationFailed(w, customError(fmt.Sprintf("A pull request already exists for %s:%s.", repo.Owner, head)))
		return
	case headSHA == baseSHA:
		validationFailed(w, customError(fmt.Sprintf("No commits between %s and %s", in.Base, head)))
		return
	}
	n := 1
	if len(repo.Pulls) > 0 {
		n = slices.Max(slices.Collect(maps.Keys(repo.Pulls))) + 1
	}
	now := time.Now()
	pr := &Pull{
		Number: n, Title: in.Title, Body: in.Body, Author: s.author(r), State: "open", Draft: in.Draft,
		HeadSHA: headSHA, HeadRef: head, BaseSHA: baseSHA, BaseRef: in.Base,
		CreatedAt: now, UpdatedAt: now,
	}
	repo.Pulls[n] = pr
	s.created[repo.FullName()] = append(s.created[repo.FullName()], n)
	w.Header().Set("Location", fmt.Sprintf("%s/repos/%s/pulls/%d", strings.TrimSuffix(BasePath, "/"), repo.FullName(), n))
	writeJSON(w, http.StatusCreated, s.pullJSON(repo, pr))
	mergeable := true
	pr.Mergeable = &mergeable
}

// editPull sets a pull request's title, body and state. Closing stamps
// closed_at; reopening is refused while another pull request from the
// same head into the same base is open, and a merged pull request's state
// does not change, as on GitHub.
func (s *Server) editPull(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	repo := s.repoFor(w, r)
	if repo == nil {
		return
	}
	pr := s.pull(w, r, repo)
	if pr == nil {
		return
	}
	var in struct {
		Title *string `json:"title"`
		Body  *string `json:"body"`
		State *string `json:"state"`
		Base  *string `json:"base"`
	}
	_ = json.NewDecoder(r.Body).Decode(&in)
	if in.Base != nil {
		// The bot never moves a pull request to another base; one that
		// tries fails the test, and the fake changes nothing.
		s.t.Errorf("githubfake: a client changed the base of #%d; the bot must never do that", pr.Number)
		writeError(w, http.StatusUnprocessableEntity, "Validation Failed")
		return
	}
	if in.Title != nil && titleTooLong(w, *in.Title) {
		return
	}
	now := time.Now()
	if in.State != nil && *in.State != pr.state() {
		switch {
		case pr.Merged:
			validationFailed(w, customError("state cannot be changed. The pull request has been merged."))
			return
		case *in.State == "open" && openDuplicate(repo, pr.HeadRef, pr.BaseRef, pr.Number) != nil:
			validationFailed(w, customError(fmt.Sprintf("A pull request already exists for %s:%s.", repo.Owner, pr.HeadRef)))
			return
		case *in.State == "closed":
			pr.State, pr.ClosedAt = "closed", now
		default:
			pr.State, pr.ClosedAt = "open", time.Time{}
		}
	}
	if in.Title != nil {
		pr.Title = *in.Title
	}
	if in.Body != nil {
		pr.Body = *in.Body
	}
	pr.UpdatedAt = now
	writeJSON(w, http.StatusOK, s.pullJSON(repo, pr))
}

// commitPulls lists the pull requests associated with a commit (see
// Pull.hasCommit), by number.
func (s *Server) commitPulls(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	repo := s.repoFor(w, r)
	if repo == nil {
		return
	}
	var prs []*Pull
	for _, n := range slices.Sorted(maps.Keys(repo.Pulls)) {
		if pr := repo.Pulls[n]; pr.hasCommit(r.PathValue("sha")) {
			prs = append(prs, pr)
		}
	}
	page(w, r, prs, func(pr *Pull) any { return s.pullJSON(repo, pr) })
}

func (s *Server) listReviews(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	repo := s.repoFor(w, r)
	if repo == nil {
		return
	}
	if pr := s.pull(w, r, repo); pr != nil {
		page(w, r, pr.Reviews, func(rv Review) any {
			out := map[string]any{"id": rv.ID, "user": user(rv.Author), "state": rv.State, "commit_id": nil}
			if rv.CommitID != "" {
				out["commit_id"] = rv.CommitID
			}
			if rv.State != "PENDING" {
				out["submitted_at"] = rv.SubmittedAt.UTC().Format(time.RFC3339)
			}
			return out
		})
	}
}

func (s *Server) listFiles(w http.ResponseWriter, r *http.Request) {
	s.syncFiles(r.PathValue("owner")+"/"+r.PathValue("repo"), r.PathValue("n"))
	s.mu.Lock()
	defer s.mu.Unlock()
	repo := s.repoFor(w, r)
	if repo == nil {
		return
	}
	if pr := s.pull(w, r, repo); pr != nil {
		page(w, r, pr.Files, func(f File) any {
			out := map[string]any{"filename": f.Filename, "status": f.Status}
			if f.PreviousFilename != "" {
				out["previous_filename"] = f.PreviousFilename
			}
			return out
		})
	}
}

func (s *Server) contents(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	repo := s.repoFor(w, r)
	if repo == nil {
		return
	}
	if !strings.Contains(r.Header.Get("Accept"), "raw") {
		s.t.Errorf("githubfake: contents read without the raw media type (Accept: %q)", r.Header.Get("Accept"))
	}
	ref := r.URL.Query().Get("ref")
	if ref == "" {
		ref = "main"
	}
	data, ok := repo.Files[ref][r.PathValue("path")]
	if !ok {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	w.Header().Set("Content-Type", "application/vnd.github.raw")
	_, _ = io.WriteString(w, data)
}

func (s *Server) permission(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	repo := s.repoFor(w, r)
	if repo == nil {
		return
	}
	login := r.PathValue("user")
	p, ok := repo.Permissions[login]
	if !ok {
		p = "none"
	}
	role := p
	switch p {
	case "maintain":
		p = "write"
	case "triage":
		p = "read"
	}
	writeJSON(w, http.StatusOK, map[string]any{"permission": p, "role_name": role, "user": user(login)})
}

// teamMembers lists a team's members. Like GitHub, a team the credentials
// cannot see is 404: an installation sees the teams of the organisations
// it has repositories of.
func (s *Server) teamMembers(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tok, ok := s.tokens[bearer(r)]
	if !ok || time.Now().After(tok.expires) {
		writeError(w, http.StatusUnauthorized, "Bad credentials")
		return
	}
	org := r.PathValue("org")
	members, ok := s.teams[org+"/"+r.PathValue("slug")]
	if ok && tok.installation != 0 {
		ok = false
		for _, repo := range s.repos {
			ok = ok || (strings.EqualFold(repo.Owner, org) && repo.Installation == tok.installation)
		}
	}
	if !ok {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	if role := r.URL.Query().Get("role"); role != "" && role != "all" {
		s.t.Errorf("githubfake: team members listed with role=%s; the fake knows no maintainers", role)
	}
	page(w, r, members, func(login string) any { return user(login) })
}

// syncHeads moves the head of every open pull request opened through the
// API to where the resolver says its branch is, as GitHub follows a push to
// a pull request's branch.
func (s *Server) syncHeads(fullName string) {
	type head struct {
		n      int
		branch string
	}
	var heads []head
	s.mu.Lock()
	repo := s.repos[fullName]
	for _, n := range s.created[fullName] {
		if pr := repo.Pulls[n]; repo != nil && pr != nil && pr.state() == "open" {
			heads = append(heads, head{n, pr.HeadRef})
		}
	}
	s.mu.Unlock()
	for _, h := range heads {
		sha, ok := s.branchHead(fullName, h.branch)
		if !ok {
			continue
		}
		s.mu.Lock()
		if pr := repo.Pulls[h.n]; pr.HeadSHA != sha {
			pr.HeadSHA, pr.UpdatedAt = sha, time.Now()
		}
		s.mu.Unlock()
	}
}

// syncFiles sets the files of pull request n, opened through the API, to
// what the files resolver says its base and head differ in, as GitHub
// compares them.
func (s *Server) syncFiles(fullName, number string) {
	n, err := strconv.Atoi(number)
	if err != nil {
		return
	}
	s.syncHeads(fullName)
	s.mu.Lock()
	fn, repo := s.filesOf, s.repos[fullName]
	var pr *Pull
	if repo != nil && slices.Contains(s.created[fullName], n) {
		pr = repo.Pulls[n]
	}
	var base, head string
	if pr != nil {
		base, head = pr.BaseSHA, pr.HeadSHA
	}
	s.mu.Unlock()
	if fn == nil || pr == nil {
		return
	}
	files, ok := fn(fullName, base, head)
	if !ok {
		return
	}
	s.mu.Lock()
	pr.Files = files
	s.mu.Unlock()
}
