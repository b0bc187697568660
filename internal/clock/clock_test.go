package clock

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// The tests run in a synctest bubble: its clock advances only when every
// goroutine in the bubble is blocked, so the elapsed times below are exact
// and no test waits in real time.

func TestSleepWaitsTheWholeDuration(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		if err := Sleep(t.Context(), time.Hour); err != nil {
			t.Errorf("Sleep: %v", err)
		}
		if got := time.Since(start); got != time.Hour {
			t.Errorf("Sleep(1h) returned after %v, want 1h", got)
		}
	})
}

func TestSleepWithAnEndedContextReturnsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		start := time.Now()
		if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
			t.Errorf("Sleep with an ended context: %v, want context.Canceled", err)
		}
		if got := time.Since(start); got != 0 {
			t.Errorf("Sleep with an ended context waited %v", got)
		}
	})
}

func TestSleepEndsWhenTheContextDoes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		start := time.Now()
		done := make(chan error, 1)
		go func() { done <- Sleep(ctx, time.Hour) }()
		time.Sleep(time.Minute)
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Sleep cancelled after 1m: %v, want context.Canceled", err)
		}
		if got := time.Since(start); got != time.Minute {
			t.Errorf("Sleep cancelled after 1m returned after %v, want 1m", got)
		}
	})
}

func TestSleepEndsAtTheContextsDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		start := time.Now()
		if err := Sleep(ctx, time.Hour); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Sleep past the context's deadline: %v, want context.DeadlineExceeded", err)
		}
		if got := time.Since(start); got != time.Minute {
			t.Errorf("Sleep past a 1m deadline returned after %v, want 1m", got)
		}
	})
}
