// Package scm is the bot's neutral view of a forge (GitHub, GitLab): small
// role interfaces (comments, statuses, reviews, pull requests, files,
// permissions, teams, webhook parsing), the types they exchange, neutral
// errors, and the short-lived cache the forges keep their facts in. Each
// forge lives in a subpackage (scm/github, scm/gitlab); the bot imports
// only this package, never a forge SDK.
package scm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Kind names a forge.
type Kind string

const (
	GitHub Kind = "github"
	GitLab Kind = "gitlab"
)

// RepoRef names a repository on a forge. FullName is "owner/name" on GitHub
// and the project's full path ("group/sub/project") on GitLab.
type RepoRef struct {
	Kind     Kind
	FullName string
	// ID is the forge's numeric id (the GitLab project id), 0 if unknown.
	ID int64
}

func (r RepoRef) String() string { return string(r.Kind) + ":" + r.FullName }

// PRRef names a pull request (GitHub) or merge request (GitLab, by iid).
type PRRef struct {
	Repo   RepoRef
	Number int
}

func (p PRRef) String() string { return fmt.Sprintf("%s#%d", p.Repo, p.Number) }

// PullRequest is a pull or merge request as the forge reports it now.
type PullRequest struct {
	Ref     PRRef
	Title   string
	Author  string
	URL     string
	State   string // open, closed, merged
	Draft   bool
	HeadSHA string
	HeadRef string
	BaseSHA string
	BaseRef string
	// CloneURL is the base repository's; HeadCloneURL the head's, which
	// differs for a pull request from a fork.
	CloneURL     string
	HeadCloneURL string
	Fork         bool
	// Mergeable is nil while the forge is still computing it.
	Mergeable *bool
	UpdatedAt time.Time
	// MergeCommitSHA is the commit the merge made on the base branch (a
	// merge, squash or the last rebased commit); empty until merged.
	MergeCommitSHA string
	// MergedAt is zero unless State is merged.
	MergedAt time.Time
}

// Comment is a comment on a pull request's conversation.
type Comment struct {
	ID        int64
	Author    string
	Body      string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// ReviewState is the verdict of a review.
type ReviewState string

const (
	ReviewApproved         ReviewState = "approved"
	ReviewChangesRequested ReviewState = "changes_requested"
	ReviewCommented        ReviewState = "commented"
	ReviewDismissed        ReviewState = "dismissed"
)

// Review is one review (GitHub) or approval (GitLab) of a pull request.
type Review struct {
	ID     int64
	Author string
	State  ReviewState
	// CommitSHA is the head commit the review was given on; empty when the
	// forge cannot tell (see each forge's ListReviews): such a review is
	// bound to no particular head.
	CommitSHA string
	// SubmittedAt is zero when the forge does not say.
	SubmittedAt time.Time
}

// StatusState is the state of a commit status.
type StatusState string

const (
	StatusPending StatusState = "pending"
	StatusSuccess StatusState = "success"
	StatusFailure StatusState = "failure"
	StatusError   StatusState = "error"
)

// Status is a commit status (GitHub) or pipeline status (GitLab) under a
// context name such as gitops/preview.
type Status struct {
	SHA         string
	Context     string
	State       StatusState
	Description string // trimmed to the forge's limit by the implementation
	TargetURL   string
}

// Permission is a user's access to a repository.
type Permission string

const (
	PermissionNone  Permission = "none"
	PermissionRead  Permission = "read"
	PermissionWrite Permission = "write"
	PermissionAdmin Permission = "admin"
)

// CanWrite reports whether p allows pushing (and so running /gitops commands).
func (p Permission) CanWrite() bool { return p == PermissionWrite || p == PermissionAdmin }

// Commenter reads and writes a pull request's comments.
type Commenter interface {
	// ListComments returns every comment, across all pages, oldest first.
	ListComments(ctx context.Context, pr PRRef) ([]Comment, error)
	CreateComment(ctx context.Context, pr PRRef, body string) (Comment, error)
	EditComment(ctx context.Context, pr PRRef, id int64, body string) error
	// MaxCommentBytes is the longest body the forge takes for a comment
	// (GitHub 65,536, GitLab 1,000,000); longer ones must be cut or split.
	MaxCommentBytes() int
}

// StatusSetter sets commit statuses.
type StatusSetter interface {
	SetStatus(ctx context.Context, repo RepoRef, st Status) error
}

// ReviewLister lists a pull request's reviews, across all pages.
type ReviewLister interface {
	// ListReviews returns every submitted review as the forge reports
	// them now, oldest first where the forge tells the time. A dismissed
	// review is ReviewDismissed (GitHub) or gone (a GitLab approval taken
	// back); pending (draft) reviews are left out. Policies are evaluated
	// on these facts, re-read when a job runs, never on a webhook's
	// payload.
	ListReviews(ctx context.Context, pr PRRef) ([]Review, error)
}

// ChangeLister lists what a pull request changes.
type ChangeLister interface {
	// ChangedFiles lists the paths a pull request changes (both sides of a
	// rename), across all pages.
	ChangedFiles(ctx context.Context, pr PRRef) ([]string, error)
}

// PullRequestReader reads pull requests.
type PullRequestReader interface {
	GetPullRequest(ctx context.Context, pr PRRef) (*PullRequest, error)
	// ListOpenPullRequests returns every open pull request, across all pages.
	ListOpenPullRequests(ctx context.Context, repo RepoRef) ([]PullRequest, error)
	ChangeLister
}

// NewPullRequest is a pull request the bot opens from a branch it pushed.
type NewPullRequest struct {
	Title string
	Body  string // markdown
	Head  string // the branch with the change (in the same repository)
	Base  string // the branch to merge into
}

// PullRequestWriter opens, edits and closes pull requests: the bot's image
// update pull requests.
type PullRequestWriter interface {
	// CreatePullRequest opens a pull (merge) request and returns it as the
	// forge reports it. A title longer than the forge takes (GitHub 256
	// characters, GitLab 255) is cut. An open pull request from the same
	// head into the same base is ErrAlreadyExists.
	CreatePullRequest(ctx context.Context, repo RepoRef, pr NewPullRequest) (*PullRequest, error)
	// EditPullRequest sets the title (cut as by CreatePullRequest) and body
	// of an open pull request.
	EditPullRequest(ctx context.Context, pr PRRef, title, body string) error
	// ClosePullRequest closes a pull request without merging it.
	ClosePullRequest(ctx context.Context, pr PRRef) error
}

// FileReader reads a file of a repository at a ref (branch, tag or SHA).
// A missing file is ErrNotFound.
type FileReader interface {
	ReadFile(ctx context.Context, repo RepoRef, ref, path string) ([]byte, error)
}

// PermissionChecker tells a user's access to a repository. Answers may be
// cached for a short while (a minute by default), per credentials.
type PermissionChecker interface {
	Permission(ctx context.Context, repo RepoRef, user string) (Permission, error)
}

// TeamReader tells who belongs to a team, for review policies that require
// a team's approval. Answers may be cached for a short while (a minute by
// default), per credentials.
type TeamReader interface {
	// TeamMembers returns the logins of every member of team, across all
	// pages; members of nested teams (GitHub child teams, GitLab members
	// inherited from parent groups or invited groups) count. A leading "@"
	// is ignored.
	//
	// GitHub: "org/slug", or a slug of repo's owner organisation. GitLab: a
	// group's full path ("group/subgroup", or "@group" for a top-level
	// group, as GitLab mentions it), or a bare name without "@" for a
	// subgroup of repo's top-level group. A team that does not exist (or
	// that the credentials may not see) is ErrNotFound.
	TeamMembers(ctx context.Context, repo RepoRef, team string) ([]string, error)
}

// CommitPullRequests finds the pull requests of a commit, for sync on
// merge: which pull request (if any) a push to the default branch merged.
type CommitPullRequests interface {
	// PullRequestsOfCommit returns the pull requests the forge associates
	// with commit sha (merged as sha, or with sha among their commits), as
	// the forge reports them now, across all pages. A commit no pull
	// request brought (a direct push) has none.
	PullRequestsOfCommit(ctx context.Context, repo RepoRef, sha string) ([]PullRequest, error)
}

// Branch is a branch and its head commit, with the repository's clone
// URL to fetch it from.
type Branch struct {
	Name     string
	SHA      string
	CloneURL string
}

// BranchReader reads the repository's default branch.
type BranchReader interface {
	// DefaultBranch returns the repository's default branch and its head
	// commit now.
	DefaultBranch(ctx context.Context, repo RepoRef) (Branch, error)
}

// DeploymentState is the state of a deployment record.
type DeploymentState string

const (
	DeploymentInProgress DeploymentState = "in_progress" // GitLab: running
	DeploymentSuccess    DeploymentState = "success"
	DeploymentFailure    DeploymentState = "failure" // GitLab: failed
)

// Deployment is a record of a sync to an environment: a GitHub deployment
// with statuses, a GitLab environment's deployment.
type Deployment struct {
	// Ref is the branch deployed (GitLab requires one), SHA the commit.
	Ref string
	SHA string
	// Environment is the forge's environment name (the app, or
	// cluster/app).
	Environment string
	Description string
}

// Deployer records syncs as deployments.
type Deployer interface {
	// CreateDeployment records d in progress and returns its id.
	CreateDeployment(ctx context.Context, repo RepoRef, d Deployment) (int64, error)
	// SetDeploymentState moves deployment id to state; description is
	// trimmed to the forge's limit (GitHub 140 characters).
	SetDeploymentState(ctx context.Context, repo RepoRef, id int64, state DeploymentState, description string) error
}

// Identity is who the bot is on the forge: its comments are found by this
// author as well as by their hidden marker.
type Identity interface {
	BotLogin(ctx context.Context) (string, error)
}

// CloneCredentials gives the credentials to fetch a repository over HTTPS,
// per call (a GitHub App's installation token expires within the hour).
type CloneCredentials interface {
	CloneCredentials(ctx context.Context, repo RepoRef) (username, password string, err error)
}

// Forge is everything the bot does on one forge, scoped to one repository's
// credentials (a GitHub App installation, or a token).
type Forge interface {
	Commenter
	StatusSetter
	ReviewLister
	PullRequestReader
	PullRequestWriter
	FileReader
	PermissionChecker
	TeamReader
	Identity
	CloneCredentials
	CommitPullRequests
	BranchReader
	Deployer
}

// Forges picks the Forge for a repository; installationID is the GitHub App
// installation a webhook named (0 when unknown: the implementation looks it
// up).
type Forges interface {
	Forge(ctx context.Context, repo RepoRef, installationID int64) (Forge, error)
}

// EventKind is what a webhook delivery says happened.
type EventKind string

const (
	EventPing          EventKind = "ping"
	EventPullRequest   EventKind = "pull_request"  // opened, synchronized, reopened, closed, edited…
	EventReview        EventKind = "review"        // a review submitted, edited or dismissed; an approval given or taken back
	EventComment       EventKind = "comment"       // a comment on a pull request
	EventPush          EventKind = "push"          // to a branch
	EventInstallation  EventKind = "installation"  // a GitHub App installation changed
	EventUninteresting EventKind = "uninteresting" // authenticated, but nothing for the bot
)

// Event is a verified, parsed webhook delivery. The bot never trusts the
// state it carries (head SHAs, review states): it re-reads the forge when
// it acts, so only the identities matter.
type Event struct {
	Kind EventKind
	// Action is the forge's action: opened, synchronize, created, … For
	// EventReview: submitted, edited or dismissed (GitHub), approved or
	// unapproved (GitLab).
	Action     string
	DeliveryID string
	Repo       RepoRef
	// PR is set for pull-request, review and comment events.
	PR *PRRef
	// HeadSHA is the head the delivery speaks of, a hint only.
	HeadSHA string
	// Comment is set for comment events.
	Comment        *Comment
	Sender         string
	InstallationID int64
	// Branch is the pushed branch, for push events.
	Branch string
}

// WebhookParser verifies and parses a forge's webhook deliveries.
type WebhookParser interface {
	// MediaTypes are the Content-Types the forge delivers in (GitHub: JSON
	// or a form with the JSON in its payload field; GitLab: JSON only). A
	// delivery of another type is refused before its body is read.
	MediaTypes() []string
	// Verify authenticates a delivery before anything parses it: GitHub's
	// X-Hub-Signature-256 HMAC, GitLab's X-Gitlab-Token (constant time).
	Verify(header http.Header, body []byte) error
	// Parse turns a verified delivery, the raw body Verify checked (a form
	// is unwrapped here), into an Event; kinds the bot does not handle are
	// EventUninteresting, not errors.
	Parse(header http.Header, body []byte) (*Event, error)
}

// Neutral errors. Implementations wrap them so errors.Is works.
var (
	ErrNotFound     = errors.New("not found on the forge")
	ErrForbidden    = errors.New("forbidden by the forge")
	ErrUnauthorized = errors.New("the forge refused the credentials")
	// ErrAlreadyExists: the forge holds the thing already, such as an open
	// pull request from the same branch (GitHub 422, GitLab 409).
	ErrAlreadyExists = errors.New("already exists on the forge")
	// ErrBadSignature: a webhook delivery failed verification.
	ErrBadSignature = errors.New("webhook signature does not match")
	// ErrInvalidEvent: an authenticated delivery of a kind the bot reads is
	// structurally invalid (no pull request, a number below 1, no
	// repository). It is never queued.
	ErrInvalidEvent = errors.New("webhook delivery is structurally invalid")
)

// RateLimitError says the forge's rate limit was hit and when to try again.
type RateLimitError struct {
	// Secondary is GitHub's secondary (abuse) limit.
	Secondary bool
	// Reset is when the limit resets (from x-ratelimit-reset, RateLimit-Reset
	// or Retry-After).
	Reset time.Time
	Err   error
}

func (e *RateLimitError) Error() string {
	kind := "rate limit"
	if e.Secondary {
		kind = "secondary rate limit"
	}
	return fmt.Sprintf("forge %s exceeded; retry after %s", kind, e.Reset.UTC().Format(time.RFC3339))
}

func (e *RateLimitError) Unwrap() error { return e.Err }
