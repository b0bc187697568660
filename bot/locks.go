package bot

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kubectl-gitops/kubectl-gitops/internal/lease"
	"github.com/kubectl-gitops/kubectl-gitops/internal/scm"
)

// Locker holds named locks: a pull request's lock of an app it synced
// (until it merges or closes) and the short lock of an app while one
// replica applies it. *lease.Locks keeps them in Kubernetes Leases, shared
// by every replica; NewMemLocks keeps them in this process.
type Locker interface {
	// Acquire takes key for holder: free, expired (ttl > 0) or already
	// holder's. It returns the lock as it is and whether holder has it.
	Acquire(ctx context.Context, key, holder string, ttl time.Duration) (lease.Lock, bool, error)
	// Release gives key back; only its holder may.
	Release(ctx context.Context, key, holder string) error
	// ForceRelease gives key back whoever holds it.
	ForceRelease(ctx context.Context, key string) error
	Get(ctx context.Context, key string) (lease.Lock, bool, error)
	List(ctx context.Context) ([]lease.Lock, error)
}

var _ Locker = (*lease.Locks)(nil)

// Lock keys.
func prLockKey(repo scm.RepoRef, app string) string    { return "pr:" + repo.String() + "/" + app }
func applyLockKey(repo scm.RepoRef, app string) string { return "apply:" + repo.String() + "/" + app }

// prHolder is how a pull request holds a lock: its ref.
func prHolder(ref scm.PRRef) string { return ref.String() }

// heldLockTTL is how long a lock taken with hold (an app's apply, a pull
// request's job) outlives its holder's last renewal: a replica that dies
// mid-apply holds the app up at most this long. The holder renews it every
// heldLockTTL/4.
const heldLockTTL = 20 * time.Second

// hold takes key for holder with heldLockTTL and keeps renewing it until
// release is called. The context it returns ends when a renewal finds the
// lock taken by another (this holder stalled past the TTL), so that work
// under a lock no longer held stops. Without the lock, it returns who has
// it and false.
func hold(ctx context.Context, locks Locker, key, holder string) (held context.Context, release func(), l lease.Lock, ok bool, err error) {
	l, ok, err = locks.Acquire(ctx, key, holder, heldLockTTL)
	if err != nil || !ok {
		return nil, nil, l, ok, err
	}
	held, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(heldLockTTL / 4)
		defer t.Stop()
		for {
			select {
			case <-held.Done():
				return
			case <-t.C:
			}
			// A failed renewal (the API server briefly away) is tried
			// again at the next tick; a lock lost is the end.
			if _, still, err := locks.Acquire(held, key, holder, heldLockTTL); err == nil && !still {
				cancel()
				return
			}
		}
	}()
	release = func() {
		cancel()
		<-done
		_ = locks.Release(context.WithoutCancel(ctx), key, holder)
	}
	return held, release, l, true, nil
}

// memLocks is a Locker in one process: enough for one replica.
type memLocks struct {
	mu    sync.Mutex
	locks map[string]lease.Lock
	now   func() time.Time
}

// NewMemLocks is a Locker for a bot that runs as one replica.
func NewMemLocks() Locker { return &memLocks{locks: map[string]lease.Lock{}, now: time.Now} }

func (m *memLocks) Acquire(_ context.Context, key, holder string, ttl time.Duration) (lease.Lock, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	l, held := m.locks[key]
	expired := held && l.TTL > 0 && now.After(l.Renewed.Add(l.TTL))
	if held && l.Holder != holder && !expired {
		return l, false, nil
	}
	if !held || l.Holder != holder {
		l = lease.Lock{Key: key, Holder: holder, Acquired: now}
	}
	l.Renewed, l.TTL = now, ttl
	m.locks[key] = l
	return l, true, nil
}

func (m *memLocks) Release(_ context.Context, key, holder string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	l, ok := m.locks[key]
	if !ok {
		return nil
	}
	if l.Holder != holder {
		return fmt.Errorf("lock %s is held by %s: %w", key, l.Holder, lease.ErrNotHolder)
	}
	delete(m.locks, key)
	return nil
}

func (m *memLocks) ForceRelease(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.locks, key)
	return nil
}

func (m *memLocks) Get(_ context.Context, key string) (lease.Lock, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l, ok := m.locks[key]
	return l, ok, nil
}

func (m *memLocks) List(context.Context) ([]lease.Lock, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]lease.Lock, 0, len(m.locks))
	for _, l := range m.locks {
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b lease.Lock) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}
