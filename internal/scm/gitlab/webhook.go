package gitlab

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	gl "gitlab.com/gitlab-org/api/client-go"

	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
)

// Webhook verifies and parses GitLab webhook deliveries (project, group
// and, for merge requests, system hooks).
type Webhook struct {
	secrets [][]byte // X-Gitlab-Token values
	signing [][]byte // decoded signing keys
	now     func() time.Time
}

// signingPrefix marks a Standard-Webhooks signing token ("whsec_" and the
// base64 of the key).
const signingPrefix = "whsec_"

// signatureTolerance is how far webhook-timestamp may be from now.
const signatureTolerance = 5 * time.Minute

var _ scm.WebhookParser = (*Webhook)(nil)

// NewWebhook returns a parser for deliveries authenticated by secrets
// (more than one during a rotation). A secret is either the hook's secret
// token, sent back as X-Gitlab-Token, or a signing token ("whsec_…",
// GitLab's Standard-Webhooks HMAC in webhook-signature). When secrets of
// both kinds are given, a delivery must pass both checks. It refuses an
// empty list or an empty secret: GitLab sends no token then, and anyone
// could post.
func NewWebhook(secrets ...string) (*Webhook, error) {
	if len(secrets) == 0 {
		return nil, errors.New("gitlab: a webhook secret is required: set the hook's secret token")
	}
	w := &Webhook{now: time.Now}
	for _, s := range secrets {
		if s == "" {
			return nil, errors.New("gitlab: empty webhook secret: set the hook's secret token")
		}
		if b64, ok := strings.CutPrefix(s, signingPrefix); ok {
			key, err := base64.StdEncoding.DecodeString(b64)
			if err != nil || len(key) == 0 {
				return nil, errors.New("gitlab: a signing token must be whsec_ and the base64 of its key: copy it again from GitLab")
			}
			w.signing = append(w.signing, key)
			continue
		}
		w.secrets = append(w.secrets, []byte(s))
	}
	return w, nil
}

// Verify compares X-Gitlab-Token with every secret token in constant time
// and, with signing tokens, checks webhook-signature over
// "{webhook-id}.{webhook-timestamp}.{body}" and that the timestamp is
// within five minutes.
func (w *Webhook) Verify(header http.Header, body []byte) error {
	if len(w.secrets) > 0 {
		got := []byte(header.Get("X-Gitlab-Token"))
		ok := 0
		for _, s := range w.secrets {
			ok |= subtle.ConstantTimeCompare(got, s)
		}
		if len(got) == 0 || ok != 1 {
			return fmt.Errorf("gitlab: X-Gitlab-Token: %w", scm.ErrBadSignature)
		}
	}
	if len(w.signing) > 0 {
		return w.verifySignature(header, body)
	}
	return nil
}

func (w *Webhook) verifySignature(header http.Header, body []byte) error {
	id, ts, sigs := header.Get("webhook-id"), header.Get("webhook-timestamp"), header.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return fmt.Errorf("gitlab: webhook-id, webhook-timestamp or webhook-signature missing: %w", scm.ErrBadSignature)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("gitlab: webhook-timestamp is not Unix seconds: %w", scm.ErrBadSignature)
	}
	if d := w.now().Sub(time.Unix(sec, 0)); d > signatureTolerance || d < -signatureTolerance {
		return fmt.Errorf("gitlab: webhook-timestamp is %s off (replayed or clock skew): %w", d.Round(time.Second), scm.ErrBadSignature)
	}
	for _, key := range w.signing {
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(id + "." + ts + "."))
		mac.Write(body)
		want := mac.Sum(nil)
		for _, sig := range strings.Fields(sigs) {
			b64, ok := strings.CutPrefix(sig, "v1,")
			if !ok {
				continue
			}
			got, err := base64.StdEncoding.DecodeString(b64)
			if err == nil && hmac.Equal(got, want) {
				return nil
			}
		}
	}
	return fmt.Errorf("gitlab: webhook-signature: %w", scm.ErrBadSignature)
}

// DeliveryID is the delivery's id for deduplication: Idempotency-Key
// (GitLab ≥ 17.4, the same across GitLab's retries of a delivery; equal to
// webhook-id on signed deliveries), else X-Gitlab-Event-UUID, else
// X-Gitlab-Webhook-UUID. Without Idempotency-Key a retried delivery may
// not keep its UUID, so dedupe is best effort; the bot is level-triggered
// anyway.
func DeliveryID(header http.Header) string {
	for _, k := range []string{"Idempotency-Key", "webhook-id", "X-Gitlab-Event-UUID", "X-Gitlab-Webhook-UUID"} {
		if v := header.Get(k); v != "" {
			return v
		}
	}
	return ""
}

// MediaTypes is JSON only: GitLab sends nothing else.
func (w *Webhook) MediaTypes() []string { return []string{"application/json"} }

// Parse turns a verified delivery into an Event by X-Gitlab-Event.
//
//   - Merge Request Hook: EventPullRequest with the action in GitHub's
//     words: opened, reopened, synchronize (an update with new commits,
//     i.e. with oldrev), edited (any other update), closed, merged; approval
//     actions (approved, unapproved, approval, unapproval) are EventReview
//     with Action approved or unapproved.
//   - Note Hook on a merge request: EventComment (created or edited).
//   - Push Hook to a branch: EventPush with Branch.
//   - Service Hook and System Hook carrying the above are treated alike.
//   - Anything else, including event types this version of client-go does
//     not know, is EventUninteresting: GitLab disables a hook that keeps
//     failing, so an authenticated delivery must not be an error.
//
// A missing X-Gitlab-Event or a body that does not decode as the event it
// claims is an error.
func (w *Webhook) Parse(header http.Header, body []byte) (*scm.Event, error) {
	kind := header.Get("X-Gitlab-Event")
	if kind == "" {
		return nil, errors.New("gitlab: delivery has no X-Gitlab-Event header")
	}
	ev := &scm.Event{Kind: scm.EventUninteresting, DeliveryID: DeliveryID(header), Action: kind}
	if !known(gl.EventType(kind)) {
		return ev, nil
	}
	payload, err := gl.ParseHook(gl.EventType(kind), body)
	if err != nil {
		if kind == string(gl.EventTypeSystemHook) || unknownNote(err) {
			// system events and note targets client-go does not model
			return ev, nil
		}
		return nil, fmt.Errorf("gitlab: parsing %q delivery: %w", kind, err)
	}
	switch p := payload.(type) {
	case *gl.MergeEvent:
		err = mergeEvent(ev, p)
	case *gl.MergeCommentEvent:
		err = commentEvent(ev, p)
	case *gl.PushEvent:
		err = pushEvent(ev, p)
	}
	if err != nil {
		return nil, err
	}
	return ev, nil
}

func known(t gl.EventType) bool {
	switch t {
	case gl.EventConfidentialIssue, gl.EventConfidentialNote, gl.EventTypeBuild, gl.EventTypeDeployment,
		gl.EventTypeEmoji, gl.EventTypeFeatureFlag, gl.EventTypeIssue, gl.EventTypeJob, gl.EventTypeMember,
		gl.EventTypeMergeRequest, gl.EventTypeMilestone, gl.EventTypeNote, gl.EventTypePipeline,
		gl.EventTypeProject, gl.EventTypePush, gl.EventTypeRelease, gl.EventTypeResourceAccessToken,
		gl.EventTypeServiceHook, gl.EventTypeSubGroup, gl.EventTypeSystemHook, gl.EventTypeTagPush,
		gl.EventTypeVulnerability, gl.EventTypeWikiPage:
		return true
	}
	return false
}

// unknownNote reports client-go's error for a note on something it does
// not model (e.g. a design or an epic).
func unknownNote(err error) bool {
	return strings.HasPrefix(err.Error(), "unexpected noteable type")
}

// mergeRequestRef checks that a delivery names its project and a merge
// request (client-go decodes a null or missing object as its zero value).
func mergeRequestRef(what string, repo scm.RepoRef, iid int64) (*scm.PRRef, error) {
	if repo.FullName == "" {
		return nil, fmt.Errorf("gitlab: a %s delivery without its project: %w", what, scm.ErrInvalidEvent)
	}
	if iid < 1 {
		return nil, fmt.Errorf("gitlab: a %s delivery without a valid merge request iid: %w", what, scm.ErrInvalidEvent)
	}
	return &scm.PRRef{Repo: repo, Number: int(iid)}, nil
}

func mergeEvent(ev *scm.Event, p *gl.MergeEvent) error {
	repo := scm.RepoRef{Kind: scm.GitLab, FullName: p.Project.PathWithNamespace, ID: p.Project.ID}
	a := p.ObjectAttributes
	pr, err := mergeRequestRef("merge request", repo, a.IID)
	if err != nil {
		return err
	}
	ev.Repo = repo
	ev.PR = pr
	ev.HeadSHA = a.LastCommit.ID
	if p.User != nil {
		ev.Sender = p.User.Username
	}
	ev.Kind = scm.EventPullRequest
	switch a.Action {
	case "open":
		ev.Action = "opened"
	case "reopen":
		ev.Action = "reopened"
	case "update":
		ev.Action = "edited"
		if a.OldRev != "" {
			ev.Action = "synchronize"
		}
	case "close":
		ev.Action = "closed"
	case "merge":
		ev.Action = "merged"
	case "approved", "approval":
		ev.Kind, ev.Action = scm.EventReview, "approved"
	case "unapproved", "unapproval":
		ev.Kind, ev.Action = scm.EventReview, "unapproved"
	default:
		ev.Action = a.Action
	}
	return nil
}

func commentEvent(ev *scm.Event, p *gl.MergeCommentEvent) error {
	a := p.ObjectAttributes
	if a.System {
		return nil
	}
	repo := scm.RepoRef{Kind: scm.GitLab, FullName: p.Project.PathWithNamespace, ID: p.Project.ID}
	if repo.ID == 0 {
		repo.ID = p.ProjectID
	}
	pr, err := mergeRequestRef("note", repo, p.MergeRequest.IID)
	if err != nil {
		return err
	}
	if p.User == nil || p.User.Username == "" {
		return fmt.Errorf("gitlab: a note delivery without its author: %w", scm.ErrInvalidEvent)
	}
	ev.Kind = scm.EventComment
	ev.Action = "created"
	if a.Action == "update" {
		ev.Action = "edited"
	}
	ev.Repo = repo
	ev.PR = pr
	ev.HeadSHA = p.MergeRequest.LastCommit.ID
	ev.Sender = p.User.Username
	ev.Comment = &scm.Comment{ID: a.ID, Author: p.User.Username, Body: a.Note, CreatedAt: hookTime(a.CreatedAt), UpdatedAt: hookTime(a.UpdatedAt)}
	return nil
}

func pushEvent(ev *scm.Event, p *gl.PushEvent) error {
	branch, ok := strings.CutPrefix(p.Ref, "refs/heads/")
	if !ok {
		return nil
	}
	repo := scm.RepoRef{Kind: scm.GitLab, FullName: p.Project.PathWithNamespace, ID: p.Project.ID}
	if repo.ID == 0 {
		repo.ID = p.ProjectID
	}
	if repo.FullName == "" {
		return fmt.Errorf("gitlab: a push delivery without its project: %w", scm.ErrInvalidEvent)
	}
	ev.Kind = scm.EventPush
	ev.Action = "pushed"
	if strings.Trim(p.After, "0") == "" {
		ev.Action = "deleted"
	}
	ev.Repo = repo
	ev.Branch = branch
	ev.HeadSHA = p.After
	ev.Sender = p.UserUsername
	return nil
}

// hookTime parses the time formats GitLab hooks use ("2006-01-02 15:04:05
// UTC" and RFC 3339); zero when it cannot.
func hookTime(s string) time.Time {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05 MST", "2006-01-02 15:04:05 -0700"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t
		}
	}
	return time.Time{}
}
