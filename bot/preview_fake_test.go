package bot

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubectl-gitops/kubectl-gitops/internal/gittest"
	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
)

// previewForge is an in-memory scm.Forge for one pull request whose files are
// read from a real Git repository.
type previewForge struct {
	t    testing.TB
	repo *gittest.Repo

	mu       sync.Mutex
	pr       scm.PullRequest
	login    string
	user     string // clone credentials
	pass     string
	comments []scm.Comment
	statuses []scm.Status
	nextID   int64
	creates  int
	edits    int
}

var _ scm.Forge = (*previewForge)(nil)

func (f *previewForge) GetPullRequest(_ context.Context, ref scm.PRRef) (*scm.PullRequest, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if ref != f.pr.Ref {
		return nil, scm.ErrNotFound
	}
	pr := f.pr
	return &pr, nil
}

func (f *previewForge) ListOpenPullRequests(context.Context, scm.RepoRef) ([]scm.PullRequest, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return []scm.PullRequest{f.pr}, nil
}

func (f *previewForge) ChangedFiles(_ context.Context, ref scm.PRRef) ([]string, error) {
	f.mu.Lock()
	base, head := f.pr.BaseSHA, f.pr.HeadSHA
	f.mu.Unlock()
	out, err := f.git("diff", "--name-only", base, head)
	if err != nil {
		return nil, err
	}
	return strings.Fields(out), nil
}

func (f *previewForge) ReadFile(_ context.Context, _ scm.RepoRef, ref, path string) ([]byte, error) {
	out, err := f.git("show", ref+":"+path)
	if err != nil {
		return nil, fmt.Errorf("%s at %s: %w", path, ref, scm.ErrNotFound)
	}
	return []byte(out), nil
}

func (f *previewForge) git(args ...string) (string, error) {
	cmd := exec.Command("git", append([]string{"-C", f.repo.Dir}, args...)...)
	out, err := cmd.Output()
	return string(out), err
}

func (f *previewForge) ListComments(context.Context, scm.PRRef) ([]scm.Comment, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]scm.Comment(nil), f.comments...), nil
}

func (f *previewForge) CreateComment(_ context.Context, _ scm.PRRef, body string) (scm.Comment, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.addComment(f.login, body), nil
}

func (f *previewForge) addComment(author, body string) scm.Comment {
	f.nextID++
	if author == f.login {
		f.creates++
	}
	c := scm.Comment{ID: f.nextID, Author: author, Body: body, CreatedAt: time.Now()}
	f.comments = append(f.comments, c)
	return c
}

func (f *previewForge) EditComment(_ context.Context, _ scm.PRRef, id int64, body string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.comments {
		if f.comments[i].ID == id {
			if f.comments[i].Author != f.login {
				f.t.Errorf("the bot edited comment %d of %s", id, f.comments[i].Author)
			}
			f.comments[i].Body = body
			f.edits++
			return nil
		}
	}
	return scm.ErrNotFound
}

func (f *previewForge) SetStatus(_ context.Context, _ scm.RepoRef, st scm.Status) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.statuses = append(f.statuses, st)
	return nil
}

func (f *previewForge) ListReviews(context.Context, scm.PRRef) ([]scm.Review, error) { return nil, nil }

func (f *previewForge) Permission(context.Context, scm.RepoRef, string) (scm.Permission, error) {
	return scm.PermissionRead, nil
}

func (f *previewForge) BotLogin(context.Context) (string, error) { return f.login, nil }

func (f *previewForge) CloneCredentials(context.Context, scm.RepoRef) (string, string, error) {
	return f.user, f.pass, nil
}

// botComments returns the bodies of the bot's comments.
func (f *previewForge) botComments() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.comments {
		if c.Author == f.login {
			out = append(out, c.Body)
		}
	}
	return out
}

// statesFor returns the states set on sha, in order.
func (f *previewForge) statesFor(sha string) []scm.StatusState {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []scm.StatusState
	for _, s := range f.statuses {
		if s.SHA == sha {
			out = append(out, s.State)
		}
	}
	return out
}

func (f *previewForge) lastStatus() scm.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.statuses) == 0 {
		return scm.Status{}
	}
	return f.statuses[len(f.statuses)-1]
}

func (f *previewForge) setHead(sha string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pr.HeadSHA = sha
}
