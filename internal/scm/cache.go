package scm

import (
	"context"
	"sync"
	"time"
)

// DefaultCacheTTL is how long the forges remember team memberships and
// permissions unless configured otherwise: long enough that evaluating a
// policy for many apps, or many pull requests in one reconcile, asks the
// forge once; short enough that a revoked membership stops counting
// within a minute.
const DefaultCacheTTL = 60 * time.Second

// maxCacheEntries bounds a Cache: past it, expired entries are dropped,
// and if none were, everything is.
const maxCacheEntries = 10_000

// Cache remembers facts the forge implementations read often and that
// change rarely (team memberships, permissions) for a fixed time. Errors
// are never remembered. The clock is a function so that tests can move it.
// It is safe for concurrent use; concurrent misses of one key may each ask
// the forge.
type Cache[K comparable, V any] struct {
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	entries map[K]cacheEntry[V]
}

type cacheEntry[V any] struct {
	v       V
	expires time.Time
}

// NewCache returns a cache keeping values for ttl by the clock now; a ttl
// of zero or less keeps nothing.
func NewCache[K comparable, V any](ttl time.Duration, now func() time.Time) *Cache[K, V] {
	return &Cache[K, V]{ttl: ttl, now: now, entries: map[K]cacheEntry[V]{}}
}

// Get returns the value of key: the one remembered while it is fresh, else
// what load returns now (remembered unless it is an error).
func (c *Cache[K, V]) Get(ctx context.Context, key K, load func(ctx context.Context) (V, error)) (V, error) {
	if c.ttl <= 0 {
		return load(ctx)
	}
	c.mu.Lock()
	e, ok := c.entries[key]
	if ok && c.now().Before(e.expires) {
		c.mu.Unlock()
		return e.v, nil
	}
	c.mu.Unlock()
	v, err := load(ctx)
	if err != nil {
		return v, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if len(c.entries) >= maxCacheEntries {
		for k, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= maxCacheEntries {
			clear(c.entries)
		}
	}
	c.entries[key] = cacheEntry[V]{v: v, expires: now.Add(c.ttl)}
	return v, nil
}
