package lease

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
)

// held describes a Lease already there when a test starts, as a lock's
// holder left it: valid by default (held by "other" since an hour ago, no
// TTL), each test changes what it is about.
type held struct {
	holder  string
	ttl     int32 // seconds; 0 for none
	renewed time.Duration
}

func defaultHeld() held { return held{holder: "other", renewed: -time.Hour} }

// put creates the Lease of key's lock as Acquire would have written it at
// h.renewed from now.
func (h held) put(t *testing.T, locks *Locks, key string) {
	t.Helper()
	at := metav1.NewMicroTime(time.Now().Add(h.renewed))
	lease := locks.newLease(key, locks.Name(key), h.holder, 0, at.Time)
	if h.ttl > 0 {
		lease.Spec.LeaseDurationSeconds = new(h.ttl)
	}
	if _, err := locks.Client.CoordinationV1().Leases(locks.Namespace).Create(t.Context(), lease, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating the lock's Lease: %v", err)
	}
}

// lease reads key's Lease as the API server holds it.
func lease(t *testing.T, locks *Locks, key string) *coordinationv1.Lease {
	t.Helper()
	l, err := locks.Client.CoordinationV1().Leases(locks.Namespace).Get(t.Context(), locks.Name(key), metav1.GetOptions{})
	if err != nil {
		t.Fatalf("reading the lock's Lease: %v", err)
	}
	return l
}

// ignoreTimes compares Locks without their times, which tests check apart.
var ignoreTimes = cmpopts.IgnoreFields(Lock{}, "Acquired", "Renewed")

func TestAcquire(t *testing.T) {
	const key = "app:github:acme/shop/web"
	tests := []struct {
		name     string
		before   *held // nil: no Lease
		holder   string
		ttl      time.Duration
		want     Lock
		taken    bool
		acquired bool // Acquired is now (a new term), not the old holder's
		turns    int32
	}{
		{
			name: "nobody holds it - taken", holder: "me", ttl: time.Minute,
			want: Lock{Key: key, Holder: "me", TTL: time.Minute}, taken: true, acquired: true,
		},
		{
			name: "no ttl - held until released", holder: "me",
			want: Lock{Key: key, Holder: "me"}, taken: true, acquired: true,
		},
		{
			name: "ttl rounds up to whole seconds", holder: "me", ttl: 1500 * time.Millisecond,
			want: Lock{Key: key, Holder: "me", TTL: 2 * time.Second}, taken: true, acquired: true,
		},
		{
			name:   "held by the holder - renewed with the new ttl",
			before: &held{holder: "me", ttl: 30, renewed: -10 * time.Second}, holder: "me", ttl: time.Minute,
			want: Lock{Key: key, Holder: "me", TTL: time.Minute}, taken: true,
		},
		{
			name:   "held by the holder past its ttl - renewed same term",
			before: &held{holder: "me", ttl: 30, renewed: -time.Hour}, holder: "me", ttl: time.Minute,
			want: Lock{Key: key, Holder: "me", TTL: time.Minute}, taken: true,
		},
		{
			name:   "held by another without ttl - refused",
			before: new(defaultHeld()), holder: "me", ttl: time.Minute,
			want: Lock{Key: key, Holder: "other"},
		},
		{
			name:   "held by another within its ttl - refused",
			before: &held{holder: "other", ttl: 3600, renewed: -time.Minute}, holder: "me",
			want: Lock{Key: key, Holder: "other", TTL: time.Hour},
		},
		{
			name:   "held by another past its ttl - taken over",
			before: &held{holder: "other", ttl: 30, renewed: -time.Minute}, holder: "me",
			want: Lock{Key: key, Holder: "me"}, taken: true, acquired: true, turns: 1,
		},
		{
			name:   "a Lease without holder - taken",
			before: &held{renewed: -time.Minute}, holder: "me", ttl: time.Minute,
			want: Lock{Key: key, Holder: "me", TTL: time.Minute}, taken: true, acquired: true, turns: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			locks := &Locks{Client: env.Clientset, Namespace: env.Namespace(t)}
			if tt.before != nil {
				tt.before.put(t, locks, key)
			}
			start := time.Now().Truncate(time.Microsecond)
			got, taken, err := locks.Acquire(t.Context(), key, tt.holder, tt.ttl)
			end := time.Now()
			if err != nil {
				t.Fatalf("Acquire: %v", err)
			}
			if taken != tt.taken {
				t.Errorf("Acquire taken = %v, want %v", taken, tt.taken)
			}
			if diff := cmp.Diff(tt.want, got, ignoreTimes); diff != "" {
				t.Errorf("Acquire lock (-want +got):\n%s", diff)
			}
			stored, ok, err := locks.Get(t.Context(), key)
			if err != nil || !ok {
				t.Fatalf("Get after Acquire: %v, %v", ok, err)
			}
			if diff := cmp.Diff(got, stored); diff != "" {
				t.Errorf("Get after Acquire differs from what Acquire returned (-acquire +get):\n%s", diff)
			}
			if !tt.taken {
				return
			}
			if got.Renewed.Before(start) || got.Renewed.After(end) {
				t.Errorf("Renewed = %v, want the time of Acquire (%v … %v)", got.Renewed, start, end)
			}
			if now := !got.Acquired.Before(start); now != tt.acquired {
				t.Errorf("Acquired = %v (Acquire started %v): a new term %v, want %v", got.Acquired, start, now, tt.acquired)
			}
			if turns := ptrValue(lease(t, locks, key).Spec.LeaseTransitions); turns != tt.turns {
				t.Errorf("leaseTransitions = %d, want %d", turns, tt.turns)
			}
		})
	}
}

func TestAcquireRaceHasOneWinner(t *testing.T) {
	// 20 contenders, half through each of two clients (two replicas), go
	// for one key at once: exactly one may get it.
	const key = "github:acme/shop#12"
	tests := []struct {
		name   string
		before *held
	}{
		{name: "nobody holds it all create"},
		{name: "its holders ttl ran out all update", before: &held{holder: "crashed", ttl: 1, renewed: -time.Hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := env.Namespace(t)
			clients := []kubernetes.Interface{env.Clientset, newClient(t)}
			if tt.before != nil {
				tt.before.put(t, &Locks{Client: env.Clientset, Namespace: ns}, key)
			}
			type result struct {
				holder string
				lock   Lock
				taken  bool
				err    error
			}
			results := make([]result, 20)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range results {
				wg.Go(func() {
					locks := &Locks{Client: clients[i%2], Namespace: ns}
					holder := fmt.Sprintf("replica-%d", i)
					<-start
					lock, taken, err := locks.Acquire(t.Context(), key, holder, time.Minute)
					results[i] = result{holder, lock, taken, err}
				})
			}
			close(start)
			wg.Wait()
			var winners []string
			for _, r := range results {
				if r.err != nil {
					t.Errorf("%s: Acquire: %v", r.holder, r.err)
				}
				if r.taken {
					winners = append(winners, r.holder)
				}
			}
			if len(winners) != 1 {
				t.Fatalf("winners = %q, want exactly one", winners)
			}
			for _, r := range results {
				if r.lock.Holder != winners[0] {
					t.Errorf("%s was told the holder is %q, want the winner %q", r.holder, r.lock.Holder, winners[0])
				}
			}
			if got := ptrValue(lease(t, &Locks{Client: env.Clientset, Namespace: ns}, key).Spec.HolderIdentity); got != winners[0] {
				t.Errorf("the Lease's holder is %q, want the winner %q", got, winners[0])
			}
		})
	}
}

func TestRelease(t *testing.T) {
	const key = "github:acme/shop#12"
	tests := []struct {
		name    string
		before  *held
		holder  string
		wantErr string // "" for none; else it wraps ErrNotHolder and says this
		stays   bool   // the Lease is still there afterwards
	}{
		{name: "by its holder - gone", before: &held{holder: "me", renewed: -time.Minute}, holder: "me"},
		{name: "by its holder past its ttl - gone", before: &held{holder: "me", ttl: 1, renewed: -time.Hour}, holder: "me"},
		{name: "nobody holds it - nothing to do", holder: "me"},
		{
			name: "by another - refused naming the holder", before: new(defaultHeld()), holder: "me",
			wantErr: `releasing lock "github:acme/shop#12" as "me": it is held by "other"`, stays: true,
		},
		{
			name: "by another past the holders ttl - refused too", before: &held{holder: "other", ttl: 1, renewed: -time.Hour}, holder: "me",
			wantErr: `it is held by "other"`, stays: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			locks := &Locks{Client: env.Clientset, Namespace: env.Namespace(t)}
			if tt.before != nil {
				tt.before.put(t, locks, key)
			}
			err := locks.Release(t.Context(), key, tt.holder)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Release: %v", err)
			case tt.wantErr != "" && (!errors.Is(err, ErrNotHolder) || !strings.Contains(fmt.Sprint(err), tt.wantErr)):
				t.Errorf("Release: %v, want an ErrNotHolder saying %q", err, tt.wantErr)
			}
			_, err = locks.Client.CoordinationV1().Leases(locks.Namespace).Get(t.Context(), locks.Name(key), metav1.GetOptions{})
			if stays := !apierrors.IsNotFound(err); stays != tt.stays {
				t.Errorf("after Release the Lease is there: %v (%v), want %v", stays, err, tt.stays)
			}
		})
	}
}

func TestForceReleaseLetsAnotherTakeIt(t *testing.T) {
	const key = "app:github:acme/shop/web"
	locks := &Locks{Client: env.Clientset, Namespace: env.Namespace(t)}
	defaultHeld().put(t, locks, key)
	if err := locks.ForceRelease(t.Context(), key); err != nil {
		t.Fatalf("ForceRelease: %v", err)
	}
	if lock, ok, err := locks.Get(t.Context(), key); err != nil || ok {
		t.Errorf("Get after ForceRelease = %+v, %v, %v; want not held", lock, ok, err)
	}
	if _, taken, err := locks.Acquire(t.Context(), key, "me", 0); err != nil || !taken {
		t.Errorf("Acquire after ForceRelease = %v, %v; want taken", taken, err)
	}
	if err := locks.ForceRelease(t.Context(), "nobody holds this"); err != nil {
		t.Errorf("ForceRelease of a lock nobody holds: %v", err)
	}
}

func TestGetSaysWhetherHeld(t *testing.T) {
	tests := []struct {
		name   string
		before *held
		want   Lock
		ok     bool
	}{
		{name: "no lock"},
		{name: "held", before: new(defaultHeld()), want: Lock{Key: "k", Holder: "other"}, ok: true},
		{name: "past its ttl - the last holder not held", before: &held{holder: "other", ttl: 1, renewed: -time.Hour}, want: Lock{Key: "k", Holder: "other", TTL: time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			locks := &Locks{Client: env.Clientset, Namespace: env.Namespace(t)}
			if tt.before != nil {
				tt.before.put(t, locks, "k")
			}
			got, ok, err := locks.Get(t.Context(), "k")
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if ok != tt.ok {
				t.Errorf("Get held = %v, want %v", ok, tt.ok)
			}
			if diff := cmp.Diff(tt.want, got, ignoreTimes); diff != "" {
				t.Errorf("Get (-want +got):\n%s", diff)
			}
		})
	}
}

func TestListShowsOnlyItsLocks(t *testing.T) {
	ns := env.Namespace(t)
	locks := &Locks{Client: env.Clientset, Namespace: ns}
	others := &Locks{Client: env.Clientset, Namespace: ns, Prefix: "other-lock-"}
	for _, key := range []string{"github:acme/shop#2", "app:github:acme/shop/web", "github:acme/shop#10"} {
		if _, _, err := locks.Acquire(t.Context(), key, "bot", time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	(&held{holder: "crashed", ttl: 1, renewed: -time.Hour}).put(t, locks, "expired")
	if _, _, err := others.Acquire(t.Context(), "github:acme/shop#2", "bot", 0); err != nil {
		t.Fatal(err)
	}
	// A Lease of someone else's in the namespace, like the leader election's.
	foreign := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "gitops-bot", Namespace: ns}}
	if _, err := env.Clientset.CoordinationV1().Leases(ns).Create(t.Context(), foreign, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	got, err := locks.List(t.Context())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	want := []Lock{
		{Key: "app:github:acme/shop/web", Holder: "bot", TTL: time.Minute},
		{Key: "expired", Holder: "crashed", TTL: time.Second},
		{Key: "github:acme/shop#10", Holder: "bot", TTL: time.Minute},
		{Key: "github:acme/shop#2", Holder: "bot", TTL: time.Minute},
	}
	if diff := cmp.Diff(want, got, ignoreTimes); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
	for _, l := range got {
		if l.Expired(time.Now()) != (l.Key == "expired") {
			t.Errorf("%q: Expired = %v", l.Key, l.Expired(time.Now()))
		}
	}
}

func TestLockNamesAreValidForAnyKey(t *testing.T) {
	keys := []string{
		"github:acme/shop#12",
		"app:github:acme/shop/web",
		"gitlab:Group/Sub Group/Project!7",
		"UPPER/Case/..",
		"..",
		"-leading-dash",
		"äöü/日本語/🚀",
		"line\nbreak\ttab \"quoted\" \\ back",
		"a",
		strings.Repeat("x/", 150),
		strings.Repeat("ü", 300),
	}
	locks := &Locks{Client: env.Clientset, Namespace: env.Namespace(t)}
	names := map[string]string{}
	for _, key := range keys {
		name := locks.Name(key)
		if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
			t.Errorf("Name(%.40q) = %q: %s", key, name, strings.Join(errs, "; "))
		}
		if prev, ok := names[name]; ok {
			t.Errorf("keys %.40q and %.40q share the name %q", prev, key, name)
		}
		names[name] = key
		// The API server is the judge: the Lease must be accepted, and
		// give the key back exactly.
		if _, taken, err := locks.Acquire(t.Context(), key, "bot", 0); err != nil || !taken {
			t.Errorf("Acquire(%.40q) = %v, %v", key, taken, err)
			continue
		}
		if got, ok, err := locks.Get(t.Context(), key); err != nil || !ok || got.Key != key {
			t.Errorf("Get(%.40q) = %.40q, %v, %v", key, got.Key, ok, err)
		}
	}
	listed, err := locks.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != len(keys) {
		t.Errorf("List has %d locks, want %d", len(listed), len(keys))
	}
}

func TestLocksRefuse(t *testing.T) {
	ns := "any"
	tests := []struct {
		name    string
		locks   Locks
		key     string
		holder  string
		ttl     time.Duration
		wantErr string
	}{
		{name: "no client", locks: Locks{Namespace: ns}, key: "k", holder: "me", wantErr: "no Client"},
		{name: "no namespace", locks: Locks{Client: env.Clientset}, key: "k", holder: "me", wantErr: "no Namespace"},
		{name: "a prefix that makes bad names", locks: Locks{Client: env.Clientset, Namespace: ns, Prefix: "Gitops_"}, key: "k", holder: "me", wantErr: `Prefix "Gitops_"`},
		{name: "empty key", locks: Locks{Client: env.Clientset, Namespace: ns}, holder: "me", wantErr: "empty key"},
		{name: "key not UTF-8", locks: Locks{Client: env.Clientset, Namespace: ns}, key: "a\xffb", holder: "me", wantErr: "not valid UTF-8"},
		{name: "key too long", locks: Locks{Client: env.Clientset, Namespace: ns}, key: strings.Repeat("k", maxKeyBytes+1), holder: "me", wantErr: "use a shorter key"},
		{name: "no holder", locks: Locks{Client: env.Clientset, Namespace: ns}, key: "k", wantErr: "no holder"},
		{name: "negative ttl", locks: Locks{Client: env.Clientset, Namespace: ns}, key: "k", holder: "me", ttl: -time.Second, wantErr: "negative ttl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env.Require(t)
			_, _, err := tt.locks.Acquire(t.Context(), tt.key, tt.holder, tt.ttl)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Acquire: %v, want an error saying %q", err, tt.wantErr)
			}
		})
	}
}
