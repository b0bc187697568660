// Package gitlab is the bot's GitLab forge: scm.Forges, scm.Forge and
// scm.WebhookParser over GitLab's REST API v4 (gitlab.com or self-managed),
// authenticated with a project, group or personal access token.
//
// Pull requests are merge requests: scm.PRRef.Number is the MR's iid and
// scm.RepoRef.FullName the project's full path (ID, the project id, is used
// instead when known). Errors are the neutral ones of package scm; a 429
// becomes *scm.RateLimitError once the bounded waiting for GETs gives up.
//
// Limitations: GitLab does not say which commit an approval was given on
// (ListReviews maps it from the approval's time; see there); one token
// serves every project.
package gitlab

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	gl "gitlab.com/gitlab-org/api/client-go"

	"github.com/kubectl-gitops/kubectl-gitops/internal/clock"
	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
)

// Defaults for Options.
const (
	DefaultMaxRateLimitWait = 60 * time.Second
	DefaultRateLimitRetries = 3
)

// perPage is GitLab's largest page size.
const perPage = 100

// maxPages bounds every listing so that a misbehaving server cannot keep a
// job paging forever (100,000 items).
const maxPages = 1000

// Options configure a Forge.
type Options struct {
	// BaseURL is the API root, e.g. https://gitlab.example.com/api/v4
	// ("/api/v4" is appended when missing). Empty means gitlab.com.
	BaseURL string
	// Token is a project, group or personal access token with the api scope.
	Token string
	// HTTPClient, when set, carries the requests (proxies, custom CAs).
	HTTPClient *http.Client
	// MaxRateLimitWait caps one wait for a rate limit to reset; a longer
	// wait fails at once with *scm.RateLimitError. Zero means
	// DefaultMaxRateLimitWait.
	MaxRateLimitWait time.Duration
	// RateLimitRetries is how many times a GET is retried after a 429.
	// Zero means DefaultRateLimitRetries; negative means never.
	RateLimitRetries int
	// OnRateLimitWait, when set, is called before each wait (for metrics).
	OnRateLimitWait func(time.Duration)
	// CacheTTL is how long group memberships and permissions are
	// remembered (default scm.DefaultCacheTTL; negative: not at all).
	CacheTTL time.Duration
}

// Forge is scm.Forge on one GitLab instance with one token. It is also
// scm.Forges: every repository of the instance uses the same token.
type Forge struct {
	c    *gl.Client
	opts Options
	// sleep waits d or until ctx ends; tests replace it.
	sleep func(ctx context.Context, d time.Duration) error
	now   func() time.Time

	perms *scm.Cache[permKey, scm.Permission]
	teams *scm.Cache[string, []string] // by group full path, lower case

	mu    sync.Mutex
	login string
}

// permKey is a user on a project (its id, or its path in lower case).
type permKey struct {
	project any
	user    string
}

var (
	_ scm.Forge  = (*Forge)(nil)
	_ scm.Forges = (*Forge)(nil)
)

// New returns a Forge; it makes no request.
func New(opts Options) (*Forge, error) {
	if opts.Token == "" {
		return nil, errors.New("gitlab: a token is required: set a project or group access token with the api scope")
	}
	if opts.MaxRateLimitWait <= 0 {
		opts.MaxRateLimitWait = DefaultMaxRateLimitWait
	}
	if opts.RateLimitRetries == 0 {
		opts.RateLimitRetries = DefaultRateLimitRetries
	}
	if opts.CacheTTL == 0 {
		opts.CacheTTL = scm.DefaultCacheTTL
	}
	copts := []gl.ClientOptionFunc{
		// client-go retries 429s itself, unbounded by context-free
		// sleeps of up to RateLimit-Reset; we wait ourselves (capped, for
		// GETs only) and keep its retries for 5xx on idempotent requests.
		gl.WithCustomRetry(checkRetry),
		gl.WithCustomRetryMax(3),
	}
	if opts.BaseURL != "" {
		copts = append(copts, gl.WithBaseURL(opts.BaseURL))
	}
	if opts.HTTPClient != nil {
		copts = append(copts, gl.WithHTTPClient(opts.HTTPClient))
	}
	c, err := gl.NewClient(opts.Token, copts...)
	if err != nil {
		return nil, fmt.Errorf("gitlab: creating the client: %w", err)
	}
	f := &Forge{c: c, opts: opts, sleep: clock.Sleep, now: time.Now}
	// The clock is read through f, so a test that replaces f.now moves it.
	now := func() time.Time { return f.now() }
	f.perms = scm.NewCache[permKey, scm.Permission](opts.CacheTTL, now)
	f.teams = scm.NewCache[string, []string](opts.CacheTTL, now)
	return f, nil
}

// Forge returns f for any GitLab repository; installationID is ignored.
func (f *Forge) Forge(_ context.Context, repo scm.RepoRef, _ int64) (scm.Forge, error) {
	if repo.Kind != "" && repo.Kind != scm.GitLab {
		return nil, fmt.Errorf("gitlab: repository %s is on another forge", repo)
	}
	return f, nil
}

// pid is the project identifier client-go takes: the id when known, else
// the full path (which client-go escapes).
func pid(repo scm.RepoRef) (any, error) {
	if repo.ID != 0 {
		return repo.ID, nil
	}
	if repo.FullName == "" {
		return nil, errors.New("gitlab: repository has neither a project id nor a path")
	}
	return repo.FullName, nil
}

// projectPath is a project id as a path segment of a request.
func projectPath(id any) string {
	switch v := id.(type) {
	case int64:
		return strconv.FormatInt(v, 10)
	case string:
		return gl.PathEscape(v)
	}
	return fmt.Sprint(id)
}

// fetch runs one idempotent call that returns a value.
func fetch[T any](ctx context.Context, f *Forge, what string, call func(o gl.RequestOptionFunc) (T, *gl.Response, error)) (T, error) {
	var v T
	err := f.get(ctx, what, func(o gl.RequestOptionFunc) (*gl.Response, error) {
		var resp *gl.Response
		var err error
		v, resp, err = call(o)
		return resp, err
	})
	return v, err
}

// all pages through a listing, perPage items at a time, following
// X-Next-Page, for at most maxPages pages.
func all[T any](ctx context.Context, f *Forge, what string, call func(lo gl.ListOptions, o gl.RequestOptionFunc) ([]T, *gl.Response, error)) ([]T, error) {
	var out []T
	lo := gl.ListOptions{PerPage: perPage, Page: 1}
	for range maxPages {
		var next int64
		items, err := fetch(ctx, f, what, func(o gl.RequestOptionFunc) ([]T, *gl.Response, error) {
			items, resp, err := call(lo, o)
			if resp != nil {
				next = resp.NextPage
			}
			return items, resp, err
		})
		if err != nil {
			return nil, err
		}
		out = append(out, items...)
		if next == 0 {
			return out, nil
		}
		lo.Page = next
	}
	return nil, fmt.Errorf("gitlab: %s: more than %d pages", what, maxPages)
}

// mapErr wraps err with the neutral error its status means.
func mapErr(what string, err error) error {
	if errors.Is(err, gl.ErrNotFound) {
		return fmt.Errorf("gitlab: %s: %w", what, scm.ErrNotFound)
	}
	var er *gl.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		switch er.Response.StatusCode {
		case http.StatusNotFound:
			return fmt.Errorf("gitlab: %s: %w", what, scm.ErrNotFound)
		case http.StatusUnauthorized:
			return fmt.Errorf("gitlab: %s: %w: check the access token and its expiry (%v)", what, scm.ErrUnauthorized, err)
		case http.StatusForbidden:
			return fmt.Errorf("gitlab: %s: %w: the token needs the api scope and a high enough role (%v)", what, scm.ErrForbidden, err)
		case http.StatusConflict:
			// "Another open merge request already exists for this source
			// branch: !7"
			if strings.Contains(er.Message, "already exists") {
				return fmt.Errorf("gitlab: %s: %w (%v)", what, scm.ErrAlreadyExists, err)
			}
		}
	}
	return fmt.Errorf("gitlab: %s: %w", what, err)
}
