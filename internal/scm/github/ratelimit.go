package github

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
)

// rateLimitTransport recognises GitHub's primary and secondary rate limits
// below go-github: a GET waits for the reset (each wait capped by
// Options.MaxRateLimitWait, at most Options.MaxRateLimitRetries times) and
// is retried; anything else comes back as *scm.RateLimitError. A GET that
// meets a server error is retried too, after 1 s, 2 s, 4 s. Only GETs are
// retried, so a comment is never posted twice.
type rateLimitTransport struct {
	next http.RoundTripper
	f    *Forges
}

func (t *rateLimitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	retryable := req.Method == http.MethodGet || req.Method == http.MethodHead
	for attempt := 0; ; attempt++ {
		resp, err := t.next.RoundTrip(req)
		if err != nil {
			return resp, err
		}
		rl := t.classify(resp)
		if rl == nil {
			// A GET that met a passing server error (502, 503, 504…) is
			// retried after a short backoff, as GitHub advises.
			if !retryable || resp.StatusCode < 500 || resp.StatusCode == http.StatusNotImplemented || attempt >= t.f.opts.MaxRateLimitRetries {
				return resp, nil
			}
			_ = resp.Body.Close()
			if err := t.f.sleep(req.Context(), serverErrorBackoff(attempt)); err != nil {
				return nil, fmt.Errorf("waiting to retry after GitHub answered %d: %w", resp.StatusCode, err)
			}
			continue
		}
		_ = resp.Body.Close()
		wait := rl.Reset.Sub(t.f.now())
		if wait < 0 {
			wait = 0
		}
		if !retryable || attempt >= t.f.opts.MaxRateLimitRetries || wait > t.f.opts.MaxRateLimitWait {
			return nil, rl
		}
		if cb := t.f.opts.OnRateLimitWait; cb != nil {
			cb(wait)
		}
		if err := t.f.sleep(req.Context(), wait); err != nil {
			return nil, fmt.Errorf("waiting for the GitHub rate limit to reset: %w", err)
		}
	}
}

// classify returns the rate limit resp reports, nil when it is not one.
// Primary: 403/429 with x-ratelimit-remaining: 0, until x-ratelimit-reset.
// Secondary: 403/429 with Retry-After, or whose message says "secondary
// rate limit" (a minute, as GitHub advises when it gives no time).
func (t *rateLimitTransport) classify(resp *http.Response) *scm.RateLimitError {
	if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusTooManyRequests {
		return nil
	}
	now := t.f.now()
	errFor := func(kind string) error {
		return fmt.Errorf("%s %s: %d %s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, kind)
	}
	retryAfter, hasRetryAfter := parseRetryAfter(resp.Header.Get("Retry-After"), now)
	if resp.Header.Get("X-Ratelimit-Remaining") == "0" {
		reset := now.Add(time.Minute)
		if hasRetryAfter {
			reset = retryAfter
		} else if s, err := strconv.ParseInt(resp.Header.Get("X-Ratelimit-Reset"), 10, 64); err == nil {
			reset = time.Unix(s, 0)
		}
		return &scm.RateLimitError{Reset: reset, Err: errFor("primary rate limit")}
	}
	if hasRetryAfter {
		return &scm.RateLimitError{Secondary: true, Reset: retryAfter, Err: errFor("secondary rate limit")}
	}
	// Peek at the message without consuming it for go-github.
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if resp.StatusCode == http.StatusTooManyRequests || strings.Contains(strings.ToLower(string(body)), "secondary rate limit") {
		return &scm.RateLimitError{Secondary: true, Reset: now.Add(time.Minute), Err: errFor("secondary rate limit")}
	}
	return nil
}

func parseRetryAfter(v string, now time.Time) (time.Time, bool) {
	if v == "" {
		return time.Time{}, false
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return now.Add(time.Duration(s) * time.Second), true
	}
	if t, err := http.ParseTime(v); err == nil {
		return t, true
	}
	return time.Time{}, false
}

// serverErrorBackoff is the wait before retry attempt+1 after a 5xx.
func serverErrorBackoff(attempt int) time.Duration {
	return time.Second << min(attempt, 4)
}
