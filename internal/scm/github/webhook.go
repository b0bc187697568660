package github

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"

	gh "github.com/google/go-github/v88/github"

	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
)

// Webhooks verifies and parses GitHub webhook deliveries. Only
// X-Hub-Signature-256 is accepted: never the SHA-1 X-Hub-Signature, never an
// unsigned delivery.
type Webhooks struct {
	secrets [][]byte
}

var _ scm.WebhookParser = (*Webhooks)(nil)

// NewWebhooks returns a parser for deliveries signed with secret. More
// secrets are accepted as well, to rotate the secret without dropping
// deliveries: add the new one, change the hook, then remove the old one.
// No secret may be empty.
func NewWebhooks(secret []byte, more ...[]byte) (*Webhooks, error) {
	w := &Webhooks{}
	for _, s := range append([][]byte{secret}, more...) {
		if len(s) == 0 {
			return nil, errors.New("github: a webhook secret is empty; set one on the hook (or the App) and here")
		}
		w.secrets = append(w.secrets, append([]byte(nil), s...))
	}
	return w, nil
}

// Verify checks X-Hub-Signature-256 (HMAC-SHA256 of the raw body) in
// constant time.
func (w *Webhooks) Verify(header http.Header, body []byte) error {
	sig := header.Get("X-Hub-Signature-256")
	if sig == "" {
		return fmt.Errorf("github: no X-Hub-Signature-256 header: %w", scm.ErrBadSignature)
	}
	hexSum, ok := strings.CutPrefix(sig, "sha256=")
	if !ok {
		return fmt.Errorf("github: X-Hub-Signature-256 is not sha256=<hex>: %w", scm.ErrBadSignature)
	}
	got, err := hex.DecodeString(hexSum)
	if err != nil {
		return fmt.Errorf("github: X-Hub-Signature-256 is not hex: %w", scm.ErrBadSignature)
	}
	ok = false
	for _, secret := range w.secrets {
		mac := hmac.New(sha256.New, secret)
		mac.Write(body)
		// Every secret is tried, so the time does not tell which matched.
		if hmac.Equal(got, mac.Sum(nil)) {
			ok = true
		}
	}
	if !ok {
		return scm.ErrBadSignature
	}
	return nil
}

// mediaTypes are the Content-Types a hook may be configured with.
var mediaTypes = []string{"application/json", "application/x-www-form-urlencoded"}

// MediaTypes are JSON and the form GitHub wraps the JSON in (the hook's
// "Content type" setting).
func (w *Webhooks) MediaTypes() []string { return slices.Clone(mediaTypes) }

// handled are the X-GitHub-Event kinds Parse reads.
var handled = []string{
	"ping", "pull_request", "pull_request_review", "issue_comment", "push",
	"installation", "installation_repositories",
}

// Parse turns a verified delivery into an Event. A form-encoded delivery
// is verified as sent and unwrapped here.
func (w *Webhooks) Parse(header http.Header, body []byte) (*scm.Event, error) {
	kind := header.Get("X-GitHub-Event")
	if kind == "" {
		return nil, errors.New("github: no X-GitHub-Event header")
	}
	payload, err := payloadOf(header.Get("Content-Type"), body)
	if err != nil {
		return nil, err
	}
	ev := &scm.Event{Kind: scm.EventUninteresting, DeliveryID: header.Get("X-GitHub-Delivery")}
	// Only the kinds the bot handles are parsed: a payload of another kind
	// that go-github cannot read must not fail an authenticated delivery.
	if !slices.Contains(handled, kind) {
		return ev, nil
	}
	// A delivery is a JSON object: null would decode as a nil event.
	if t := bytes.TrimSpace(payload); len(t) == 0 || t[0] != '{' {
		return nil, fmt.Errorf("github: a %s delivery that is not a JSON object: %w", kind, scm.ErrInvalidEvent)
	}
	parsed, err := gh.ParseWebHook(kind, payload)
	if err != nil {
		return nil, fmt.Errorf("github: parsing a %s delivery: %w", kind, err)
	}
	repoRef := func(r *gh.Repository) scm.RepoRef {
		return scm.RepoRef{Kind: scm.GitHub, FullName: r.GetFullName(), ID: r.GetID()}
	}
	switch e := parsed.(type) {
	case *gh.PingEvent:
		ev.Kind = scm.EventPing
		ev.InstallationID = e.GetInstallation().GetID()
		// A repository hook's ping names its repository; an App's does not.
		var p struct {
			Repository *gh.Repository `json:"repository"`
			Sender     *gh.User       `json:"sender"`
		}
		_ = json.Unmarshal(payload, &p)
		if p.Repository != nil {
			ev.Repo = repoRef(p.Repository)
		}
		ev.Sender = p.Sender.GetLogin()
	case *gh.PullRequestEvent:
		ev.Kind = scm.EventPullRequest
		ev.Action = e.GetAction()
		ev.Sender = e.GetSender().GetLogin()
		ev.InstallationID = e.GetInstallation().GetID()
		if err := pullRequestRef(ev, kind, e.GetRepo(), e.GetPullRequest().GetNumber()); err != nil {
			return nil, err
		}
		ev.HeadSHA = e.GetPullRequest().GetHead().GetSHA()
	case *gh.PullRequestReviewEvent:
		ev.Action = e.GetAction()
		ev.Repo = repoRef(e.GetRepo())
		ev.Sender = e.GetSender().GetLogin()
		ev.InstallationID = e.GetInstallation().GetID()
		switch ev.Action {
		case "submitted", "dismissed", "edited":
			ev.Kind = scm.EventReview
			if err := pullRequestRef(ev, kind, e.GetRepo(), e.GetPullRequest().GetNumber()); err != nil {
				return nil, err
			}
			ev.HeadSHA = e.GetPullRequest().GetHead().GetSHA()
		}
	case *gh.IssueCommentEvent:
		ev.Action = e.GetAction()
		ev.Repo = repoRef(e.GetRepo())
		ev.Sender = e.GetSender().GetLogin()
		ev.InstallationID = e.GetInstallation().GetID()
		issue := e.GetIssue()
		if issue == nil {
			return nil, fmt.Errorf("github: an issue_comment delivery without its issue: %w", scm.ErrInvalidEvent)
		}
		if issue.IsPullRequest() && (ev.Action == "created" || ev.Action == "edited") {
			ev.Kind = scm.EventComment
			if err := pullRequestRef(ev, kind, e.GetRepo(), issue.GetNumber()); err != nil {
				return nil, err
			}
			if e.GetComment() == nil || e.GetComment().GetUser().GetLogin() == "" {
				return nil, fmt.Errorf("github: an issue_comment delivery without its comment or author: %w", scm.ErrInvalidEvent)
			}
			c := comment(e.GetComment())
			ev.Comment = &c
		}
	case *gh.PushEvent:
		ev.Sender = e.GetSender().GetLogin()
		ev.InstallationID = e.GetInstallation().GetID()
		if b, ok := strings.CutPrefix(e.GetRef(), "refs/heads/"); ok {
			r := e.GetRepo()
			if r.GetFullName() == "" {
				return nil, fmt.Errorf("github: a push delivery without its repository: %w", scm.ErrInvalidEvent)
			}
			ev.Repo = scm.RepoRef{Kind: scm.GitHub, FullName: r.GetFullName(), ID: r.GetID()}
			ev.Kind = scm.EventPush
			ev.Branch = b
			ev.HeadSHA = e.GetAfter()
		}
	case *gh.InstallationEvent:
		ev.Kind = scm.EventInstallation
		ev.Action = e.GetAction()
		ev.Sender = e.GetSender().GetLogin()
		ev.InstallationID = e.GetInstallation().GetID()
	case *gh.InstallationRepositoriesEvent:
		ev.Kind = scm.EventInstallation
		ev.Action = e.GetAction()
		ev.Sender = e.GetSender().GetLogin()
		ev.InstallationID = e.GetInstallation().GetID()
	}
	return ev, nil
}

// pullRequestRef sets ev's repository and pull request, and refuses a
// delivery that names no repository or no pull request (null, missing, or a
// number below 1): it must never become a job.
func pullRequestRef(ev *scm.Event, kind string, repo *gh.Repository, number int) error {
	if repo.GetFullName() == "" {
		return fmt.Errorf("github: a %s delivery without its repository: %w", kind, scm.ErrInvalidEvent)
	}
	if number < 1 {
		return fmt.Errorf("github: a %s delivery without a valid pull request number: %w", kind, scm.ErrInvalidEvent)
	}
	ev.Repo = scm.RepoRef{Kind: scm.GitHub, FullName: repo.GetFullName(), ID: repo.GetID()}
	ev.PR = &scm.PRRef{Repo: ev.Repo, Number: number}
	return nil
}

// payloadOf returns the JSON of a delivery, which GitHub sends either as the
// body or, for form-encoded hooks, in the payload field.
func payloadOf(contentType string, body []byte) ([]byte, error) {
	mt, _, err := mime.ParseMediaType(contentType)
	if contentType == "" {
		mt, err = "application/json", nil
	}
	if err != nil {
		return nil, fmt.Errorf("github: bad Content-Type %q: %w", contentType, err)
	}
	switch mt {
	case "application/json":
		return body, nil
	case "application/x-www-form-urlencoded":
		v, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, fmt.Errorf("github: reading a form-encoded delivery: %w", err)
		}
		payload := v.Get("payload")
		if payload == "" {
			return nil, errors.New("github: a form-encoded delivery without its payload field")
		}
		return []byte(payload), nil
	default:
		return nil, fmt.Errorf("github: unsupported Content-Type %q: configure the hook for application/json", mt)
	}
}
