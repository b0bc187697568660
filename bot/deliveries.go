package bot

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Delivery ids (and body hashes) handled survive a restart in the
// RecordStore: each replica writes its newest ones to its own record, and
// a starting replica loads every replica's, so a webhook redelivered across
// a restart or a rollout is still processed once.
const (
	deliveriesPrefix = "deliveries:"
	// persistedDeliveries bounds the keys one replica writes: two per
	// delivery, about 100 bytes each in the record.
	persistedDeliveries = 2000
	// deliveriesFlush is how often new deliveries are written: a restart
	// forgets at most this much.
	deliveriesFlush = 2 * time.Second
)

// persistedSeen is the stored form of one remembered key: the key and when
// it was seen (Unix seconds).
type persistedSeen struct {
	K  string `json:"k"`
	At int64  `json:"at"`
}

// snapshot returns the newest n keys, oldest first, and the change count.
func (s *seenSet) snapshot(n int) ([]persistedSeen, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]persistedSeen, 0, min(n, s.order.Len()))
	for e := s.order.Back(); e != nil && len(out) < n; e = e.Prev() {
		se := e.Value.(seenEntry)
		out = append(out, persistedSeen{K: se.key, At: se.at.Unix()})
	}
	slices.Reverse(out)
	return out, s.gen
}

// load adds keys seen before a restart that are still within the TTL and
// not known, in the order seen.
func (s *seenSet) load(entries []persistedSeen) {
	s.mu.Lock()
	defer s.mu.Unlock()
	slices.SortStableFunc(entries, func(a, b persistedSeen) int { return cmp.Compare(a.At, b.At) })
	now := s.now()
	// Newest first, each pushed to the front: the oldest ends first.
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		at := time.Unix(e.At, 0)
		if _, ok := s.items[e.K]; ok || now.Sub(at) >= s.ttl || s.order.Len() >= s.max {
			continue
		}
		// Loaded keys are older than any seen since the start: they go
		// to the front, the first to be evicted.
		s.items[e.K] = s.order.PushFront(seenEntry{key: e.K, at: at})
	}
}

// deliveriesKey is this replica's record.
func (b *Bot) deliveriesKey() string {
	return deliveriesPrefix + cmp.Or(b.deps.Identity, "single")
}

// loadDeliveries reads every replica's record of deliveries handled.
func (b *Bot) loadDeliveries(ctx context.Context) error {
	store := b.deps.Deliveries
	keys, err := store.Keys(ctx)
	if err != nil {
		return fmt.Errorf("read the deliveries handled before the start: %w", err)
	}
	for _, key := range keys {
		if !strings.HasPrefix(key, deliveriesPrefix) {
			continue
		}
		value, ok, err := store.Get(ctx, key)
		if err != nil {
			return fmt.Errorf("read the deliveries handled before the start: %w", err)
		}
		var entries []persistedSeen
		if !ok || json.Unmarshal([]byte(value), &entries) != nil {
			continue // gone, or not ours to read: a memory, not a database
		}
		b.seen.load(entries)
	}
	return nil
}

// persistDeliveries writes this replica's newest deliveries whenever they
// changed, every deliveriesFlush, and once more when ctx ends.
func (b *Bot) persistDeliveries(ctx context.Context) {
	var written uint64
	flush := func(ctx context.Context) {
		entries, gen := b.seen.snapshot(persistedDeliveries)
		if gen == written {
			return
		}
		value, err := json.Marshal(entries)
		if err == nil {
			err = b.deps.Deliveries.Put(ctx, b.deliveriesKey(), string(value))
		}
		if err != nil {
			b.log.Warn("record the deliveries handled", "err", err.Error())
			return
		}
		written = gen
	}
	t := time.NewTicker(deliveriesFlush)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			flush(final)
			cancel()
			return
		case <-t.C:
			flush(ctx)
		}
	}
}
