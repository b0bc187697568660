// Package memforge is the in-memory forge of the bot's tests: one
// scm.Forge (and scm.Forges, for every repository) that keeps pull
// requests, comments, statuses, reviews, teams and permissions in memory, reads a
// repository's files from a Git repository on disk when it is given one,
// and records every call the bot makes. It behaves as a forge does where the
// bot could tell: nobody edits another's comment, a comment over the size
// limit is refused, a pull request it does not hold is scm.ErrNotFound, a
// second open pull request from the same branch is scm.ErrAlreadyExists.
//
// It is for tests of what the bot does with a forge. Tests of a forge
// client's HTTP use the fakes beside it, githubfake and gitlabfake.
package memforge

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
)

// Defaults of New.
const (
	DefaultLogin    = "gitops-bot"
	DefaultUsername = "x-access-token"
	DefaultPassword = "token"
	// DefaultMaxComment is GitHub's limit on a comment.
	DefaultMaxComment = 65_536
)

// epoch is when the first comment was written; each one after is a second
// later, so that nothing depends on the wall clock.
var epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// Call is one call the bot made.
type Call struct {
	// Method is the scm method: "CreateComment", "Permission", …
	Method string
	// Target is the pull request or repository it was about.
	Target string
	// Arg is what else tells the call apart: the user of Permission, the
	// team of TeamMembers, the comment id of EditComment, "ref:path" of
	// ReadFile, the context and state of SetStatus, "head->base" of
	// CreatePullRequest.
	Arg string
}

// Forge is an in-memory forge. Set its exported fields before the bot uses
// it; the methods are safe for concurrent use.
type Forge struct {
	// Login is the bot's user: the author of its comments.
	Login string
	// Username and Password are the clone credentials.
	Username, Password string
	// MaxComment is the longest comment body it takes.
	MaxComment int
	// OpenByDefault makes a pull request it does not hold read as an open
	// one with nothing but its ref, instead of scm.ErrNotFound.
	OpenByDefault bool

	mu       sync.Mutex
	pulls    []*scm.PullRequest
	bodies   map[prKey]string // of pull requests opened or edited through the forge
	comments map[prKey][]scm.Comment
	nextID   int64
	statuses []scm.Status
	perms    map[string]scm.Permission
	reviews  map[prKey][]scm.Review
	teams    map[string][]string   // "org/team" in lower case → members
	gitDirs  map[string]string     // repository full name → Git repository
	branches map[string]scm.Branch // repository full name → default branch
	deploys  []Deployment
	calls    []Call
}

// Deployment is a deployment the bot recorded, with every state it was
// moved to, in order.
type Deployment struct {
	ID   int64
	Repo string
	scm.Deployment
	States []DeploymentState
}

// DeploymentState is one state a deployment was moved to.
type DeploymentState struct {
	State       scm.DeploymentState
	Description string
}

// prKey names a pull request whatever else its ref carries (a project id
// known to one caller and not to another).
type prKey struct {
	repo   string
	number int
}

func keyOf(pr scm.PRRef) prKey { return prKey{pr.Repo.FullName, pr.Number} }

var (
	_ scm.Forge  = (*Forge)(nil)
	_ scm.Forges = (*Forge)(nil)
)

// New returns an empty forge with the defaults.
func New() *Forge {
	return &Forge{
		Login:      DefaultLogin,
		Username:   DefaultUsername,
		Password:   DefaultPassword,
		MaxComment: DefaultMaxComment,
		comments:   map[prKey][]scm.Comment{},
		bodies:     map[prKey]string{},
		perms:      map[string]scm.Permission{},
		reviews:    map[prKey][]scm.Review{},
		teams:      map[string][]string{},
		gitDirs:    map[string]string{},
		branches:   map[string]scm.Branch{},
	}
}

// SetDefaultBranch sets repo's default branch and its head.
func (f *Forge) SetDefaultBranch(repo scm.RepoRef, b scm.Branch) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.branches[repo.FullName] = b
}

// Deployments returns the deployments recorded so far, oldest first.
func (f *Forge) Deployments() []Deployment {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Deployment, len(f.deploys))
	for i, d := range f.deploys {
		d.States = append([]DeploymentState(nil), d.States...)
		out[i] = d
	}
	return out
}

// AddPull adds a pull request; an empty State is "open".
func (f *Forge) AddPull(pr scm.PullRequest) {
	if pr.State == "" {
		pr.State = "open"
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pulls = append(f.pulls, &pr)
}

// UpdatePull changes a pull request added before.
func (f *Forge) UpdatePull(ref scm.PRRef, update func(*scm.PullRequest)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if pr := f.pullLocked(ref); pr != nil {
		update(pr)
	}
}

func (f *Forge) pullLocked(ref scm.PRRef) *scm.PullRequest {
	for _, pr := range f.pulls {
		if keyOf(pr.Ref) == keyOf(ref) {
			return pr
		}
	}
	return nil
}

// Body returns the body a pull request was opened or last edited with
// through the forge ("" for one only added).
func (f *Forge) Body(ref scm.PRRef) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bodies[keyOf(ref)]
}

// SetGitDir makes the Git repository at dir hold repo's commits: ReadFile
// reads them, ChangedFiles diffs a pull request's base and head.
func (f *Forge) SetGitDir(repo scm.RepoRef, dir string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gitDirs[repo.FullName] = dir
}

// SetPermission gives user perm on every repository; others have none.
// Nothing is cached: a change is seen by the next call.
func (f *Forge) SetPermission(user string, perm scm.Permission) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.perms[user] = perm
}

// SetReviews makes reviews the reviews of pr, as ListReviews returns them
// (oldest first), replacing any before.
func (f *Forge) SetReviews(pr scm.PRRef, reviews ...scm.Review) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reviews[keyOf(pr)] = append([]scm.Review(nil), reviews...)
}

// AddReview appends a review to pr's.
func (f *Forge) AddReview(pr scm.PRRef, r scm.Review) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reviews[keyOf(pr)] = append(f.reviews[keyOf(pr)], r)
}

// SetTeam makes members the members of team, "org/name" ("@" optional),
// replacing any before. As on both forges, a team named without its
// organisation (GitHub) or top-level group (GitLab) in TeamMembers is
// looked up in the repository's first path segment.
func (f *Forge) SetTeam(team string, members ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.teams[strings.ToLower(strings.TrimPrefix(team, "@"))] = append([]string(nil), members...)
}

// AddComment adds a comment by author, as a user would (no call is
// recorded).
func (f *Forge) AddComment(pr scm.PRRef, author, body string) scm.Comment {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.addCommentLocked(pr, author, body)
}

func (f *Forge) addCommentLocked(pr scm.PRRef, author, body string) scm.Comment {
	f.nextID++
	at := epoch.Add(time.Duration(f.nextID) * time.Second)
	c := scm.Comment{ID: f.nextID, Author: author, Body: body, CreatedAt: at, UpdatedAt: at}
	f.comments[keyOf(pr)] = append(f.comments[keyOf(pr)], c)
	return c
}

// Comments returns a pull request's comments, oldest first.
func (f *Forge) Comments(pr scm.PRRef) []scm.Comment {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]scm.Comment(nil), f.comments[keyOf(pr)]...)
}

// Statuses returns every status set, in order.
func (f *Forge) Statuses() []scm.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]scm.Status(nil), f.statuses...)
}

// Calls returns the calls of method ("" for all), in order.
func (f *Forge) Calls(method string) []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Call
	for _, c := range f.calls {
		if method == "" || c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

func (f *Forge) record(method, target, arg string) {
	f.calls = append(f.calls, Call{Method: method, Target: target, Arg: arg})
}

// Forge returns f for every repository.
func (f *Forge) Forge(context.Context, scm.RepoRef, int64) (scm.Forge, error) { return f, nil }

func (f *Forge) ListComments(_ context.Context, pr scm.PRRef) ([]scm.Comment, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("ListComments", pr.String(), "")
	return append([]scm.Comment(nil), f.comments[keyOf(pr)]...), nil
}

func (f *Forge) CreateComment(_ context.Context, pr scm.PRRef, body string) (scm.Comment, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("CreateComment", pr.String(), "")
	if err := f.checkSizeLocked(body); err != nil {
		return scm.Comment{}, err
	}
	return f.addCommentLocked(pr, f.Login, body), nil
}

func (f *Forge) EditComment(_ context.Context, pr scm.PRRef, id int64, body string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("EditComment", pr.String(), strconv.FormatInt(id, 10))
	if err := f.checkSizeLocked(body); err != nil {
		return err
	}
	cs := f.comments[keyOf(pr)]
	for i := range cs {
		if cs[i].ID != id {
			continue
		}
		if cs[i].Author != f.Login {
			return fmt.Errorf("comment %d is %s's: %w", id, cs[i].Author, scm.ErrForbidden)
		}
		cs[i].Body = body
		cs[i].UpdatedAt = epoch.Add(time.Duration(f.nextID) * time.Second)
		return nil
	}
	return fmt.Errorf("comment %d on %s: %w", id, pr, scm.ErrNotFound)
}

func (f *Forge) checkSizeLocked(body string) error {
	if len(body) > f.MaxComment {
		return fmt.Errorf("a comment of %d bytes is over the limit of %d", len(body), f.MaxComment)
	}
	return nil
}

// MaxCommentBytes is MaxComment.
func (f *Forge) MaxCommentBytes() int { return f.MaxComment }

func (f *Forge) SetStatus(_ context.Context, repo scm.RepoRef, st scm.Status) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("SetStatus", repo.String(), st.Context+"="+string(st.State))
	f.statuses = append(f.statuses, st)
	return nil
}

// ListReviews returns the reviews set for pr, none by default.
func (f *Forge) ListReviews(_ context.Context, pr scm.PRRef) ([]scm.Review, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("ListReviews", pr.String(), "")
	return append([]scm.Review(nil), f.reviews[keyOf(pr)]...), nil
}

// TeamMembers returns the members set for team; a team never set is
// scm.ErrNotFound.
func (f *Forge) TeamMembers(_ context.Context, repo scm.RepoRef, team string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("TeamMembers", repo.String(), team)
	name := strings.ToLower(strings.TrimPrefix(team, "@"))
	if !strings.Contains(name, "/") {
		owner, _, _ := strings.Cut(repo.FullName, "/")
		name = strings.ToLower(owner) + "/" + name
	}
	members, ok := f.teams[name]
	if !ok {
		return nil, fmt.Errorf("team %s: %w", team, scm.ErrNotFound)
	}
	return append([]string(nil), members...), nil
}

func (f *Forge) GetPullRequest(_ context.Context, ref scm.PRRef) (*scm.PullRequest, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("GetPullRequest", ref.String(), "")
	if pr := f.pullLocked(ref); pr != nil {
		out := *pr
		return &out, nil
	}
	if f.OpenByDefault {
		return &scm.PullRequest{Ref: ref, State: "open"}, nil
	}
	return nil, fmt.Errorf("pull request %s: %w", ref, scm.ErrNotFound)
}

// ListOpenPullRequests returns the open pull requests of repo, in the
// order they were added.
func (f *Forge) ListOpenPullRequests(_ context.Context, repo scm.RepoRef) ([]scm.PullRequest, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("ListOpenPullRequests", repo.String(), "")
	var out []scm.PullRequest
	for _, pr := range f.pulls {
		if pr.Ref.Repo.FullName == repo.FullName && pr.State == "open" {
			out = append(out, *pr)
		}
	}
	return out, nil
}

// CreatePullRequest opens a pull request by Login, numbered after the
// repository's highest. With a Git repository (SetGitDir) its head and
// base SHAs are the branches' heads there, and a missing branch is an
// error; without one they are empty. A second open pull request from the
// same head into the same base is scm.ErrAlreadyExists.
func (f *Forge) CreatePullRequest(_ context.Context, repo scm.RepoRef, npr scm.NewPullRequest) (*scm.PullRequest, error) {
	f.mu.Lock()
	f.record("CreatePullRequest", repo.String(), npr.Head+"->"+npr.Base)
	dir := f.gitDirs[repo.FullName]
	f.mu.Unlock()
	var head, base string
	if dir != "" {
		for _, b := range []struct {
			name string
			sha  *string
		}{{npr.Head, &head}, {npr.Base, &base}} {
			out, err := git(dir, "rev-parse", "--verify", "--quiet", "refs/heads/"+b.name+"^{commit}")
			if err != nil {
				return nil, fmt.Errorf("opening a pull request from %s into %s of %s: branch %s: %w", npr.Head, npr.Base, repo, b.name, err)
			}
			*b.sha = strings.TrimSpace(out)
		}
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	number := 0
	for _, pr := range f.pulls {
		if pr.Ref.Repo.FullName != repo.FullName {
			continue
		}
		number = max(number, pr.Ref.Number)
		if pr.State == "open" && !pr.Fork && pr.HeadRef == npr.Head && pr.BaseRef == npr.Base {
			return nil, fmt.Errorf("%s is open from %s into %s: %w", pr.Ref, npr.Head, npr.Base, scm.ErrAlreadyExists)
		}
	}
	pr := &scm.PullRequest{
		Ref:   scm.PRRef{Repo: repo, Number: number + 1},
		Title: npr.Title, Author: f.Login, State: "open",
		HeadSHA: head, HeadRef: npr.Head, BaseSHA: base, BaseRef: npr.Base,
	}
	f.nextID++
	pr.UpdatedAt = epoch.Add(time.Duration(f.nextID) * time.Second)
	f.pulls = append(f.pulls, pr)
	f.bodies[keyOf(pr.Ref)] = npr.Body
	out := *pr
	return &out, nil
}

// EditPullRequest sets the title and body of a pull request it holds.
func (f *Forge) EditPullRequest(_ context.Context, ref scm.PRRef, title, body string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("EditPullRequest", ref.String(), "")
	pr := f.pullLocked(ref)
	if pr == nil {
		return fmt.Errorf("pull request %s: %w", ref, scm.ErrNotFound)
	}
	pr.Title = title
	f.bodies[keyOf(ref)] = body
	return nil
}

// ClosePullRequest closes an open pull request it holds; a closed or
// merged one stays as it is, as on both forges.
func (f *Forge) ClosePullRequest(_ context.Context, ref scm.PRRef) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("ClosePullRequest", ref.String(), "")
	pr := f.pullLocked(ref)
	if pr == nil {
		return fmt.Errorf("pull request %s: %w", ref, scm.ErrNotFound)
	}
	if pr.State == "open" {
		pr.State = "closed"
	}
	return nil
}

// ChangedFiles diffs the pull request's base and head in its repository's
// Git repository; without one, it changes nothing.
func (f *Forge) ChangedFiles(_ context.Context, ref scm.PRRef) ([]string, error) {
	f.mu.Lock()
	f.record("ChangedFiles", ref.String(), "")
	pr, dir := f.pullLocked(ref), f.gitDirs[ref.Repo.FullName]
	var base, head string
	if pr != nil {
		base, head = pr.BaseSHA, pr.HeadSHA
	}
	f.mu.Unlock()
	if pr == nil {
		return nil, fmt.Errorf("pull request %s: %w", ref, scm.ErrNotFound)
	}
	if dir == "" {
		return nil, nil
	}
	out, err := git(dir, "diff", "--name-only", base, head)
	if err != nil {
		return nil, err
	}
	return strings.Fields(out), nil
}

// ReadFile reads path at ref from the repository's Git repository; without
// one, every file is missing.
func (f *Forge) ReadFile(_ context.Context, repo scm.RepoRef, ref, path string) ([]byte, error) {
	f.mu.Lock()
	f.record("ReadFile", repo.String(), ref+":"+path)
	dir := f.gitDirs[repo.FullName]
	f.mu.Unlock()
	if dir == "" {
		return nil, fmt.Errorf("%s at %s: %w", path, ref, scm.ErrNotFound)
	}
	out, err := git(dir, "show", ref+":"+path)
	if err != nil {
		return nil, fmt.Errorf("%s at %s: %w", path, ref, scm.ErrNotFound)
	}
	return []byte(out), nil
}

func (f *Forge) Permission(_ context.Context, repo scm.RepoRef, user string) (scm.Permission, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("Permission", repo.String(), user)
	if p, ok := f.perms[user]; ok {
		return p, nil
	}
	return scm.PermissionNone, nil
}

func (f *Forge) BotLogin(context.Context) (string, error) { return f.Login, nil }

// PullRequestsOfCommit returns the pull requests merged as sha or whose
// head is sha, in the order they were added.
func (f *Forge) PullRequestsOfCommit(_ context.Context, repo scm.RepoRef, sha string) ([]scm.PullRequest, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("PullRequestsOfCommit", repo.String(), sha)
	var out []scm.PullRequest
	for _, pr := range f.pulls {
		if pr.Ref.Repo.FullName == repo.FullName && (pr.MergeCommitSHA == sha || pr.HeadSHA == sha) {
			out = append(out, *pr)
		}
	}
	return out, nil
}

// DefaultBranch returns the branch SetDefaultBranch set; without one,
// "main" at the head of the repository's Git repository's main branch.
func (f *Forge) DefaultBranch(_ context.Context, repo scm.RepoRef) (scm.Branch, error) {
	f.mu.Lock()
	f.record("DefaultBranch", repo.String(), "")
	b, ok := f.branches[repo.FullName]
	dir := f.gitDirs[repo.FullName]
	f.mu.Unlock()
	if ok {
		return b, nil
	}
	if dir == "" {
		return scm.Branch{}, fmt.Errorf("default branch of %s: %w", repo, scm.ErrNotFound)
	}
	out, err := git(dir, "rev-parse", "refs/heads/main")
	if err != nil {
		return scm.Branch{}, fmt.Errorf("default branch of %s: %w", repo, scm.ErrNotFound)
	}
	return scm.Branch{Name: "main", SHA: strings.TrimSpace(out)}, nil
}

// CreateDeployment records d in progress.
func (f *Forge) CreateDeployment(_ context.Context, repo scm.RepoRef, d scm.Deployment) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("CreateDeployment", repo.String(), d.Environment+"@"+d.SHA)
	id := int64(len(f.deploys) + 1)
	f.deploys = append(f.deploys, Deployment{ID: id, Repo: repo.FullName, Deployment: d,
		States: []DeploymentState{{State: scm.DeploymentInProgress}}})
	return id, nil
}

// SetDeploymentState appends a state to deployment id.
func (f *Forge) SetDeploymentState(_ context.Context, repo scm.RepoRef, id int64, state scm.DeploymentState, description string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record("SetDeploymentState", repo.String(), fmt.Sprintf("%d %s", id, state))
	if id < 1 || id > int64(len(f.deploys)) || f.deploys[id-1].Repo != repo.FullName {
		return fmt.Errorf("deployment %d of %s: %w", id, repo, scm.ErrNotFound)
	}
	f.deploys[id-1].States = append(f.deploys[id-1].States, DeploymentState{State: state, Description: description})
	return nil
}

func (f *Forge) CloneCredentials(context.Context, scm.RepoRef) (string, string, error) {
	return f.Username, f.Password, nil
}

func git(dir string, args ...string) (string, error) {
	out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).Output()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(exit.Stderr)))
	}
	return string(out), err
}
