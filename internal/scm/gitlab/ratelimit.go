package gitlab

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	gl "gitlab.com/gitlab-org/api/client-go"

	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
)

// checkRetry retries server errors of idempotent requests only; never a
// 429 (handled by Forge.get) nor a POST or PUT that may have been applied.
func checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if err != nil || resp == nil {
		return false, nil
	}
	if resp.Request == nil || resp.Request.Method != http.MethodGet {
		return false, nil
	}
	return resp.StatusCode >= 500 && resp.StatusCode != http.StatusNotImplemented, nil
}

// get runs an idempotent call, waiting out rate limits: each wait is
// capped by MaxRateLimitWait and the context, and after RateLimitRetries
// waits the *scm.RateLimitError is returned.
func (f *Forge) get(ctx context.Context, what string, call func(opt gl.RequestOptionFunc) (*gl.Response, error)) error {
	for attempt := 0; ; attempt++ {
		resp, err := call(gl.WithContext(ctx))
		if err == nil {
			return nil
		}
		rl := f.rateLimit(resp, err, attempt)
		if rl == nil {
			return mapErr(what, err)
		}
		wait := max(rl.Reset.Sub(f.now()), 0)
		if attempt >= f.opts.RateLimitRetries || wait > f.opts.MaxRateLimitWait {
			return fmt.Errorf("gitlab: %s: %w", what, rl)
		}
		if f.opts.OnRateLimitWait != nil {
			f.opts.OnRateLimitWait(wait)
		}
		if err := f.sleep(ctx, wait); err != nil {
			return fmt.Errorf("gitlab: %s: waiting for the rate limit to reset: %w", what, err)
		}
	}
}

// write runs a non-idempotent call once.
func (f *Forge) write(ctx context.Context, what string, call func(opt gl.RequestOptionFunc) (*gl.Response, error)) error {
	resp, err := call(gl.WithContext(ctx))
	if err == nil {
		return nil
	}
	if rl := f.rateLimit(resp, err, 0); rl != nil {
		return fmt.Errorf("gitlab: %s: %w", what, rl)
	}
	return mapErr(what, err)
}

// rateLimit returns the rate limit error a 429 response means, nil for
// any other outcome. The reset time comes from Retry-After (seconds or an
// HTTP date), else RateLimit-Reset (Unix seconds), else an exponential
// guess from one second.
func (f *Forge) rateLimit(resp *gl.Response, err error, attempt int) *scm.RateLimitError {
	if resp == nil || resp.Response == nil || resp.StatusCode != http.StatusTooManyRequests {
		return nil
	}
	now := f.now()
	reset := now.Add(time.Second << min(attempt, 10))
	if v := resp.Header.Get("Retry-After"); v != "" {
		if s, perr := strconv.Atoi(strings.TrimSpace(v)); perr == nil {
			reset = now.Add(time.Duration(s) * time.Second)
		} else if t, perr := http.ParseTime(v); perr == nil {
			reset = t
		}
	} else if v := resp.Header.Get("RateLimit-Reset"); v != "" {
		if s, perr := strconv.ParseInt(strings.TrimSpace(v), 10, 64); perr == nil {
			reset = time.Unix(s, 0)
		}
	}
	return &scm.RateLimitError{Reset: reset, Err: err}
}
