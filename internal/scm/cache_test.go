package scm

import (
	"context"
	"errors"
	"testing"
	"time"
)

// clockAt is a clock tests move by hand.
type clockAt struct{ t time.Time }

func (c *clockAt) now() time.Time { return c.t }

func TestCacheKeepsValuesForTheirTTL(t *testing.T) {
	ctx := t.Context()
	clk := &clockAt{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	c := NewCache[string, int](time.Minute, clk.now)
	loads := 0
	load := func(context.Context) (int, error) { loads++; return loads, nil }

	for _, step := range []struct {
		advance time.Duration
		key     string
		want    int
	}{
		{0, "a", 1},                // miss
		{59 * time.Second, "a", 1}, // within the TTL: remembered
		{0, "b", 2},                // another key is its own
		{time.Second, "a", 3},      // at the TTL: asked again
		{30 * time.Second, "a", 3}, // the refreshed value is remembered
		{30 * time.Second, "b", 4}, // b expired meanwhile
		{time.Minute - 1, "a", 5},  // a expired meanwhile too
		{time.Minute - 1, "a", 5},  // the last instant of the TTL
		{time.Nanosecond, "a", 6},  // the first instant after it
		{-time.Hour, "a", 6},       // a clock going back keeps it
		{2 * time.Hour, "a", 7},    // forward past the TTL drops it
	} {
		clk.t = clk.t.Add(step.advance)
		got, err := c.Get(ctx, step.key, load)
		if err != nil || got != step.want {
			t.Fatalf("after %v, Get(%s) = %d, %v; want %d", step.advance, step.key, got, err, step.want)
		}
	}
}

func TestCacheDoesNotRememberErrors(t *testing.T) {
	ctx := t.Context()
	clk := &clockAt{t: time.Unix(0, 0)}
	c := NewCache[string, string](time.Minute, clk.now)
	boom := errors.New("boom")
	if _, err := c.Get(ctx, "k", func(context.Context) (string, error) { return "", boom }); !errors.Is(err, boom) {
		t.Fatalf("Get = %v, want the load's error", err)
	}
	got, err := c.Get(ctx, "k", func(context.Context) (string, error) { return "v", nil })
	if err != nil || got != "v" {
		t.Fatalf("after an error, Get = %q, %v; want a fresh load", got, err)
	}
}

func TestCacheWithoutTTLKeepsNothing(t *testing.T) {
	ctx := t.Context()
	for _, ttl := range []time.Duration{0, -time.Second} {
		c := NewCache[string, int](ttl, time.Now)
		loads := 0
		for range 3 {
			_, _ = c.Get(ctx, "k", func(context.Context) (int, error) { loads++; return loads, nil })
		}
		if loads != 3 {
			t.Errorf("TTL %v: %d loads for 3 gets, want 3", ttl, loads)
		}
	}
}

func TestCacheIsBounded(t *testing.T) {
	ctx := t.Context()
	clk := &clockAt{t: time.Unix(0, 0)}
	c := NewCache[int, int](time.Minute, clk.now)
	one := func(context.Context) (int, error) { return 1, nil }
	for i := range maxCacheEntries {
		_, _ = c.Get(ctx, i, one)
	}
	// All fresh and the cache full: the next one empties it.
	_, _ = c.Get(ctx, -1, one)
	if n := len(c.entries); n != 1 {
		t.Fatalf("%d entries after overflowing with fresh ones, want 1", n)
	}
	for i := range maxCacheEntries - 1 {
		_, _ = c.Get(ctx, i, one)
	}
	// Expired ones are dropped first; the fresh one stays.
	clk.t = clk.t.Add(2 * time.Minute)
	_, _ = c.Get(ctx, -2, one)
	if _, ok := c.entries[-2]; !ok || len(c.entries) != 1 {
		t.Fatalf("%d entries after overflowing with expired ones, want only the new one", len(c.entries))
	}
}
