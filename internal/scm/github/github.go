// Package github is the bot's GitHub forge: scm.Forges, scm.Forge and
// scm.WebhookParser over go-github, authenticated as a GitHub App (one
// installation transport per installation, tokens refreshed by
// ghinstallation) or with a plain token, on github.com or GitHub Enterprise
// Server. It maps GitHub's errors and rate limits to the neutral ones of
// package scm, so the bot never imports go-github.
package github

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/bradleyfalzon/ghinstallation/v2"
	gh "github.com/google/go-github/v88/github"

	"github.com/kubectl-gitops/kubectl-gitops/internal/clock"
	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
)

// Options configure Forges. Set either AppID and PrivateKey (a GitHub App)
// or Token.
type Options struct {
	// BaseURL is the API root: empty for api.github.com, or a GitHub
	// Enterprise Server's "https://ghe.example.com/api/v3/" (a bare host
	// gets /api/v3/ appended).
	BaseURL string
	// AppID and PrivateKey (PEM, RSA) authenticate as a GitHub App.
	AppID      int64
	PrivateKey []byte
	// Token authenticates as a user or with a fine-grained token.
	Token string
	// Transport carries every request; http.DefaultTransport when nil.
	Transport http.RoundTripper
	// MaxRateLimitWait caps one wait for a rate limit to reset (default
	// 60s); a longer wait returns *scm.RateLimitError instead.
	MaxRateLimitWait time.Duration
	// MaxRateLimitRetries bounds the retries of one request after rate
	// limits (default 3).
	MaxRateLimitRetries int
	// OnRateLimitWait, when set, is called before each wait, so the caller
	// can count them.
	OnRateLimitWait func(d time.Duration)
	// CacheTTL is how long team memberships and permissions are
	// remembered, per installation (default scm.DefaultCacheTTL; negative:
	// not at all).
	CacheTTL time.Duration
}

// Forges hands out the Forge of a repository. It caches one client per
// GitHub App installation and the installation of each repository it has
// looked up. It is safe for concurrent use.
type Forges struct {
	opts    Options
	baseURL string // with the trailing slash, "" for api.github.com
	rt      http.RoundTripper

	// App mode.
	apps *ghinstallation.AppsTransport
	app  *gh.Client // authenticated with the app's JWT

	// Token mode.
	token  *gh.Client
	tokenF *forge

	mu            sync.Mutex
	installations map[int64]*forge // by installation id
	repoInstall   map[string]int64 // repo full name → installation id
	login         string           // cached BotLogin

	sleep func(ctx context.Context, d time.Duration) error
	now   func() time.Time
}

var _ scm.Forges = (*Forges)(nil)

// New returns Forges for a GitHub App or a token.
func New(opts Options) (*Forges, error) {
	app := opts.AppID != 0 || len(opts.PrivateKey) > 0
	switch {
	case app && opts.Token != "":
		return nil, errors.New("github: set either an app id and private key or a token, not both")
	case app && (opts.AppID == 0 || len(opts.PrivateKey) == 0):
		return nil, errors.New("github: a GitHub App needs both its app id and its private key")
	case !app && opts.Token == "":
		return nil, errors.New("github: no credentials: set an app id and private key, or a token")
	}
	if opts.MaxRateLimitWait <= 0 {
		opts.MaxRateLimitWait = 60 * time.Second
	}
	if opts.MaxRateLimitRetries <= 0 {
		opts.MaxRateLimitRetries = 3
	}
	if opts.CacheTTL == 0 {
		opts.CacheTTL = scm.DefaultCacheTTL
	}
	base := opts.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	f := &Forges{
		opts:          opts,
		installations: map[int64]*forge{},
		repoInstall:   map[string]int64{},
		sleep:         clock.Sleep,
		now:           time.Now,
	}
	if opts.BaseURL != "" {
		u, err := url.Parse(opts.BaseURL)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("github: base URL %q is not an absolute URL like https://ghe.example.com/api/v3/", opts.BaseURL)
		}
		if u.Path == "" || u.Path == "/" {
			// A GitHub Enterprise Server's host alone: its API is under /api/v3/.
			u.Path = "/api/v3/"
		}
		f.baseURL = strings.TrimRight(u.String(), "/") + "/"
	}
	f.rt = &rateLimitTransport{next: base, f: f}

	if app {
		atr, err := ghinstallation.NewAppsTransport(f.rt, opts.AppID, opts.PrivateKey)
		if err != nil {
			return nil, fmt.Errorf("github: reading the app's private key: %w", err)
		}
		atr.BaseURL = f.apiRoot()
		f.apps = atr
		c, err := f.newClient(atr)
		if err != nil {
			return nil, err
		}
		f.app = c
		return f, nil
	}
	tok := opts.Token
	c, err := f.newClient(roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		req = req.Clone(req.Context())
		req.Header.Set("Authorization", "Bearer "+tok)
		return f.rt.RoundTrip(req)
	}))
	if err != nil {
		return nil, err
	}
	f.token = c
	f.tokenF = f.newForge(c, func(context.Context) (string, error) { return tok, nil })
	return f, nil
}

// apiRoot is the API root without the trailing slash, as ghinstallation
// wants it.
func (f *Forges) apiRoot() string {
	if f.baseURL == "" {
		return "https://api.github.com"
	}
	return strings.TrimRight(f.baseURL, "/")
}

func (f *Forges) newClient(rt http.RoundTripper) (*gh.Client, error) {
	opts := []gh.ClientOptionsFunc{
		gh.WithHTTPClient(&http.Client{Transport: rt}),
		// Rate limits are handled (and waited for) by rateLimitTransport;
		// go-github's own pre-check would fail requests without trying.
		gh.WithDisableRateLimitCheck(),
	}
	if f.baseURL != "" {
		// Not WithEnterpriseURLs, which appends api/v3/ to any other path.
		opts = append(opts, gh.WithURLs(&f.baseURL, &f.baseURL))
	}
	c, err := gh.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("github: creating the client: %w", err)
	}
	return c, nil
}

// Forge returns the Forge for repo. With a GitHub App, installationID picks
// the installation (the webhook's installation.id); 0 looks it up.
func (f *Forges) Forge(ctx context.Context, repo scm.RepoRef, installationID int64) (scm.Forge, error) {
	if repo.Kind != "" && repo.Kind != scm.GitHub {
		return nil, fmt.Errorf("github: repository %s is not on GitHub", repo)
	}
	owner, name, err := splitRepo(repo)
	if err != nil {
		return nil, err
	}
	if f.tokenF != nil {
		return f.tokenF, nil
	}
	if installationID == 0 {
		f.mu.Lock()
		installationID = f.repoInstall[repo.FullName]
		f.mu.Unlock()
	}
	if installationID == 0 {
		inst, _, err := f.app.Apps.GetRepositoryInstallation(ctx, owner, name)
		if err != nil {
			return nil, mapErr(fmt.Sprintf("finding the app installation of %s (is the app installed on it?)", repo.FullName), err)
		}
		installationID = inst.GetID()
		f.mu.Lock()
		f.repoInstall[repo.FullName] = installationID
		f.mu.Unlock()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if fg, ok := f.installations[installationID]; ok {
		return fg, nil
	}
	itr := ghinstallation.NewFromAppsTransport(f.apps, installationID)
	itr.BaseURL = f.apiRoot()
	// Without options ghinstallation posts the body "null", which GitHub's
	// description does not allow; an empty object asks for the same token.
	itr.InstallationTokenOptions = &gh.InstallationTokenOptions{}
	c, err := f.newClient(itr)
	if err != nil {
		return nil, err
	}
	fg := f.newForge(c, func(ctx context.Context) (string, error) {
		tok, err := itr.Token(ctx)
		if err != nil {
			return "", mapErr("minting an installation token", err)
		}
		return tok, nil
	})
	f.installations[installationID] = fg
	return fg, nil
}

// botLogin is the bot's login: "<app-slug>[bot]" for an App (GET /app with
// the JWT), the token's user otherwise.
func (f *Forges) botLogin(ctx context.Context) (string, error) {
	f.mu.Lock()
	l := f.login
	f.mu.Unlock()
	if l != "" {
		return l, nil
	}
	if f.app != nil {
		app, _, err := f.app.Apps.Get(ctx, "")
		if err != nil {
			return "", mapErr("reading the GitHub App", err)
		}
		l = app.GetSlug() + "[bot]"
	} else {
		u, _, err := f.token.Users.Get(ctx, "")
		if err != nil {
			return "", mapErr("reading the token's user", err)
		}
		l = u.GetLogin()
	}
	f.mu.Lock()
	f.login = l
	f.mu.Unlock()
	return l, nil
}

func splitRepo(repo scm.RepoRef) (owner, name string, err error) {
	owner, name, ok := strings.Cut(repo.FullName, "/")
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
		return "", "", fmt.Errorf("github: repository %q is not owner/name", repo.FullName)
	}
	return owner, name, nil
}

// mapErr wraps go-github and ghinstallation errors in the neutral ones.
func mapErr(op string, err error) error {
	if err == nil {
		return nil
	}
	var rl *scm.RateLimitError
	if errors.As(err, &rl) {
		return fmt.Errorf("github: %s: %w", op, rl)
	}
	var prl *gh.RateLimitError
	if errors.As(err, &prl) {
		return fmt.Errorf("github: %s: %w", op, &scm.RateLimitError{Reset: prl.Rate.Reset.Time, Err: err})
	}
	var arl *gh.AbuseRateLimitError
	if errors.As(err, &arl) {
		reset := time.Now().Add(time.Minute)
		if arl.RetryAfter != nil {
			reset = time.Now().Add(*arl.RetryAfter)
		}
		return fmt.Errorf("github: %s: %w", op, &scm.RateLimitError{Secondary: true, Reset: reset, Err: err})
	}
	status := 0
	var er *gh.ErrorResponse
	var he *ghinstallation.HTTPError
	switch {
	case errors.As(err, &er) && er.Response != nil:
		status = er.Response.StatusCode
	case errors.As(err, &he) && he.Response != nil:
		status = he.Response.StatusCode
		// ghinstallation leaves the body open for the caller.
		_ = he.Response.Body.Close()
	}
	switch status {
	case http.StatusNotFound:
		return fmt.Errorf("github: %s: %w (%v)", op, scm.ErrNotFound, err)
	case http.StatusUnauthorized:
		return fmt.Errorf("github: %s: %w (%v)", op, scm.ErrUnauthorized, err)
	case http.StatusForbidden:
		return fmt.Errorf("github: %s: %w (%v)", op, scm.ErrForbidden, err)
	case http.StatusUnprocessableEntity:
		if alreadyExists(er) {
			return fmt.Errorf("github: %s: %w (%v)", op, scm.ErrAlreadyExists, err)
		}
	}
	return fmt.Errorf("github: %s: %w", op, err)
}

// alreadyExists reports whether a 422 says the resource exists already:
// "A pull request already exists for owner:branch." (code custom), or the
// already_exists code other resources use.
func alreadyExists(er *gh.ErrorResponse) bool {
	if er == nil {
		return false
	}
	for _, e := range er.Errors {
		if e.Code == "already_exists" || strings.Contains(strings.ToLower(e.Message), "already exists") {
			return true
		}
	}
	return false
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
