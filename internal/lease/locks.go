package lease

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
)

// DefaultLockPrefix starts the names of Locks' Leases.
const DefaultLockPrefix = "gitops-lock-"

// ErrNotHolder is wrapped by Release when someone else holds the lock.
var ErrNotHolder = errors.New("not the holder of the lock")

// maxKeyBytes bounds a lock's key, kept whole in an annotation.
const maxKeyBytes = 4096

// Locks are named locks, one coordination.k8s.io/v1 Lease each in
// Namespace: one per app being synced, say, or one per pull request
// holding an app until it merges or closes.
//
// A Lease's name is Prefix and a hash of the key, valid whatever the key
// holds; the key itself is kept in the KeyAnnotation annotation, and the
// LockLabel label marks the Leases as this package's.
//
// Expiry compares a Lease's renewTime, written by the holder's clock, with
// this process's clock: replicas' clocks must agree to well within the
// shortest TTL used.
type Locks struct {
	Client    kubernetes.Interface
	Namespace string
	// Prefix starts every Lease's name (default DefaultLockPrefix). Locks
	// with different prefixes in one namespace do not see each other's
	// Leases.
	Prefix string
}

// Lock is the state of one lock.
type Lock struct {
	Key    string
	Holder string
	// Acquired is when Holder took the lock; Renewed is when it last
	// acquired or renewed it.
	Acquired time.Time
	Renewed  time.Time
	// TTL is how long after Renewed the lock expires, in whole seconds; 0
	// means it is held until released.
	TTL time.Duration
}

// Expired reports whether the lock's TTL ran out before now, so that
// anyone may take it.
func (l Lock) Expired(now time.Time) bool {
	return l.TTL > 0 && l.Renewed.Add(l.TTL).Before(now)
}

// free reports whether nobody holds the lock at now.
func (l Lock) free(now time.Time) bool { return l.Holder == "" || l.Expired(now) }

// Name returns the name of the Lease that holds key's lock.
func (l *Locks) Name(key string) string { return l.prefix() + hashHex(key, 20) }

// Acquire takes the lock on key for holder, and reports whether holder
// holds it now. It takes the lock when nobody holds it, when its holder's
// TTL ran out, or when holder holds it already (then it renews it, with the
// new ttl). Otherwise it returns false and the lock of whoever holds it.
//
// ttl is rounded up to whole seconds; 0 means held until released. Of any
// number of processes calling Acquire for one key at once, at most one gets
// true.
func (l *Locks) Acquire(ctx context.Context, key, holder string, ttl time.Duration) (Lock, bool, error) {
	if err := l.check(key); err != nil {
		return Lock{}, false, err
	}
	if holder == "" {
		return Lock{}, false, fmt.Errorf("acquiring lock %q: no holder given: name who takes it", key)
	}
	if ttl < 0 {
		return Lock{}, false, fmt.Errorf("acquiring lock %q: negative ttl %v: use 0 to hold it until released", key, ttl)
	}
	leases := l.Client.CoordinationV1().Leases(l.Namespace)
	name := l.Name(key)
	for {
		if err := ctx.Err(); err != nil {
			return Lock{}, false, fmt.Errorf("acquiring lock %q (Lease %s/%s): %w", key, l.Namespace, name, err)
		}
		now := time.Now()
		current, err := leases.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			created, err := leases.Create(ctx, l.newLease(key, name, holder, ttl, now), metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				continue // someone created it first: decide on theirs
			}
			if err != nil {
				return Lock{}, false, fmt.Errorf("acquiring lock %q: creating Lease %s/%s: %w; check the bot may create Leases there", key, l.Namespace, name, err)
			}
			lock, err := l.lock(created)
			return lock, err == nil, err
		}
		if err != nil {
			return Lock{}, false, fmt.Errorf("acquiring lock %q: reading Lease %s/%s: %w; check the bot may read Leases there", key, l.Namespace, name, err)
		}
		lock, err := l.lock(current)
		if err != nil {
			return Lock{}, false, err
		}
		if lock.Key != key {
			return Lock{}, false, fmt.Errorf("acquiring lock %q: Lease %s/%s holds the lock on %q, whose name hashes the same; use another Prefix", key, l.Namespace, name, lock.Key)
		}
		if lock.Holder != holder && !lock.free(now) {
			return lock, false, nil
		}
		next := current.DeepCopy()
		spec := &next.Spec
		if lock.Holder != holder || spec.AcquireTime == nil {
			spec.AcquireTime = new(metav1.NewMicroTime(now))
			spec.LeaseTransitions = new(ptrValue(spec.LeaseTransitions) + 1)
		}
		spec.HolderIdentity = new(holder)
		spec.RenewTime = new(metav1.NewMicroTime(now))
		spec.LeaseDurationSeconds = ttlSeconds(ttl)
		// next carries the resourceVersion read: if anyone wrote since,
		// the API server refuses with a conflict and we decide again.
		updated, err := leases.Update(ctx, next, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return Lock{}, false, fmt.Errorf("acquiring lock %q: updating Lease %s/%s: %w; check the bot may update Leases there", key, l.Namespace, name, err)
		}
		lock, err = l.lock(updated)
		return lock, err == nil, err
	}
}

// Release gives up holder's lock on key by deleting its Lease. Releasing a
// lock nobody holds any more is not an error, so a repeated release (a
// duplicated webhook) is harmless; releasing a lock someone else holds is,
// and wraps ErrNotHolder.
func (l *Locks) Release(ctx context.Context, key, holder string) error {
	if err := l.check(key); err != nil {
		return err
	}
	leases := l.Client.CoordinationV1().Leases(l.Namespace)
	name := l.Name(key)
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("releasing lock %q (Lease %s/%s): %w", key, l.Namespace, name, err)
		}
		current, err := leases.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("releasing lock %q: reading Lease %s/%s: %w; check the bot may read Leases there", key, l.Namespace, name, err)
		}
		lock, err := l.lock(current)
		if err != nil {
			return err
		}
		switch {
		case lock.Key != key:
			return fmt.Errorf("releasing lock %q: Lease %s/%s holds the lock on %q, whose name hashes the same; use another Prefix", key, l.Namespace, name, lock.Key)
		case lock.Holder == "":
			return nil
		case lock.Holder != holder:
			return fmt.Errorf("releasing lock %q as %q: it is held by %q: %w; wait for %q to release it, or force-release it", key, holder, lock.Holder, ErrNotHolder, lock.Holder)
		}
		err = leases.Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{
			UID:             &current.UID,
			ResourceVersion: &current.ResourceVersion,
		}})
		switch {
		case apierrors.IsNotFound(err):
			return nil
		case apierrors.IsConflict(err):
			continue // renewed or taken over since we read it
		case err != nil:
			return fmt.Errorf("releasing lock %q: deleting Lease %s/%s: %w; check the bot may delete Leases there", key, l.Namespace, name, err)
		}
		return nil
	}
}

// ForceRelease removes the lock on key whoever holds it, as a maintainer's
// unlock does. Removing a lock nobody holds is not an error.
func (l *Locks) ForceRelease(ctx context.Context, key string) error {
	if err := l.check(key); err != nil {
		return err
	}
	name := l.Name(key)
	err := l.Client.CoordinationV1().Leases(l.Namespace).Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("force-releasing lock %q: deleting Lease %s/%s: %w; check the bot may delete Leases there", key, l.Namespace, name, err)
	}
	return nil
}

// Get returns the lock on key and whether it is held now. It returns false
// when there is no lock, and when its holder's TTL ran out; the Lock then
// still names the last holder.
func (l *Locks) Get(ctx context.Context, key string) (Lock, bool, error) {
	if err := l.check(key); err != nil {
		return Lock{}, false, err
	}
	name := l.Name(key)
	current, err := l.Client.CoordinationV1().Leases(l.Namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return Lock{}, false, nil
	}
	if err != nil {
		return Lock{}, false, fmt.Errorf("reading lock %q: reading Lease %s/%s: %w; check the bot may read Leases there", key, l.Namespace, name, err)
	}
	lock, err := l.lock(current)
	if err != nil {
		return Lock{}, false, err
	}
	if lock.Key != key {
		return Lock{}, false, fmt.Errorf("reading lock %q: Lease %s/%s holds the lock on %q, whose name hashes the same; use another Prefix", key, l.Namespace, name, lock.Key)
	}
	return lock, !lock.free(time.Now()), nil
}

// List returns every lock in Namespace under Prefix, expired ones too,
// sorted by key.
func (l *Locks) List(ctx context.Context) ([]Lock, error) {
	if err := checkTarget("locks", l.Client, l.Namespace); err != nil {
		return nil, err
	}
	list, err := l.Client.CoordinationV1().Leases(l.Namespace).List(ctx, metav1.ListOptions{LabelSelector: LockLabel + "=true"})
	if err != nil {
		return nil, fmt.Errorf("listing locks: listing Leases in %s: %w; check the bot may list Leases there", l.Namespace, err)
	}
	var locks []Lock
	for i := range list.Items {
		if !strings.HasPrefix(list.Items[i].Name, l.prefix()) {
			continue
		}
		lock, err := l.lock(&list.Items[i])
		if err != nil {
			return nil, err
		}
		locks = append(locks, lock)
	}
	slices.SortFunc(locks, func(a, b Lock) int { return strings.Compare(a.Key, b.Key) })
	return locks, nil
}

func (l *Locks) prefix() string {
	if l.Prefix == "" {
		return DefaultLockPrefix
	}
	return l.Prefix
}

// check refuses a misconfigured Locks or a key that cannot be stored.
func (l *Locks) check(key string) error {
	if err := checkTarget("locks", l.Client, l.Namespace); err != nil {
		return err
	}
	if errs := validation.IsDNS1123Subdomain(l.Name("")); len(errs) > 0 {
		return fmt.Errorf("locks: Prefix %q does not make valid Lease names: %s; use lowercase letters, digits and '-'", l.Prefix, strings.Join(errs, "; "))
	}
	switch {
	case key == "":
		return errors.New("locks: empty key: name what the lock is for")
	case !utf8.ValidString(key):
		return fmt.Errorf("locks: key %q is not valid UTF-8: the API server would not keep it as written", key)
	case len(key) > maxKeyBytes:
		return fmt.Errorf("locks: key %.40q… is %d bytes, more than %d: use a shorter key", key, len(key), maxKeyBytes)
	}
	return nil
}

func (l *Locks) newLease(key, name, holder string, ttl time.Duration, now time.Time) *coordinationv1.Lease {
	return &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Namespace:   l.Namespace,
			Labels:      map[string]string{LockLabel: "true"},
			Annotations: map[string]string{KeyAnnotation: key},
		},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity:       new(holder),
			LeaseDurationSeconds: ttlSeconds(ttl),
			AcquireTime:          new(metav1.NewMicroTime(now)),
			RenewTime:            new(metav1.NewMicroTime(now)),
			LeaseTransitions:     new(int32(0)),
		},
	}
}

// lock reads a Lock from one of the package's Leases.
func (l *Locks) lock(lease *coordinationv1.Lease) (Lock, error) {
	key, ok := lease.Annotations[KeyAnnotation]
	if !ok {
		return Lock{}, fmt.Errorf("lock Lease %s/%s has no %s annotation, so it is not a lock of this bot: delete it or use another Prefix", lease.Namespace, lease.Name, KeyAnnotation)
	}
	lock := Lock{Key: key}
	if s := lease.Spec; s.HolderIdentity != nil {
		lock.Holder = *s.HolderIdentity
	}
	if t := lease.Spec.AcquireTime; t != nil {
		lock.Acquired = t.Time
	}
	if t := lease.Spec.RenewTime; t != nil {
		lock.Renewed = t.Time
	} else {
		lock.Renewed = lock.Acquired
	}
	if d := lease.Spec.LeaseDurationSeconds; d != nil {
		lock.TTL = time.Duration(*d) * time.Second
	}
	return lock, nil
}

// ttlSeconds is ttl in whole seconds, rounded up, or nil for no expiry.
func ttlSeconds(ttl time.Duration) *int32 {
	if ttl <= 0 {
		return nil
	}
	s := (ttl + time.Second - 1) / time.Second
	return new(int32(min(s, 1<<31-1)))
}

func ptrValue[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
