package bot

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-gitops/kubectl-gitops/internal/lease"
)

// TestDeliveriesSurviveARestart: a delivery handled before a restart, and
// redelivered after it (to this replica or another), is a duplicate; the
// record lives in a ConfigMap of the real API server.
func TestDeliveriesSurviveARestart(t *testing.T) {
	store := &lease.Records{Client: env.Clientset, Namespace: env.Namespace(t), Name: DeliveriesRecord}
	body := prPayload("acme/app", 7, "sha1")

	first := newHarness(t)
	first.deliveries = store
	first.start()
	if rec := first.deliver(body, "d-1"); rec.Code != http.StatusAccepted {
		t.Fatalf("first delivery: %d, want 202", rec.Code)
	}
	waitFor(t, "job", func() bool { return len(first.callsSnapshot()) == 1 })
	first.quiesce() // stopping writes what is not written yet

	for _, replica := range []string{"", "replica-b"} {
		next := newHarness(t)
		next.deliveries = store
		next.build().deps.Identity = replica
		next.start()
		rec := next.deliver(body, "d-1")
		if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != "duplicate" {
			t.Errorf("redelivery after a restart (identity %q): %d %q, want 200 duplicate", replica, rec.Code, rec.Body.String())
		}
		// Under a new id the body is still known (its hash was kept).
		if rec := next.deliver(body, "d-2"); rec.Code != http.StatusOK {
			t.Errorf("replay under a new id after a restart: %d, want 200 duplicate", rec.Code)
		}
		next.quiesce()
		if n := len(next.callsSnapshot()); n != 0 {
			t.Errorf("a job ran %d times after the restart, want 0", n)
		}
	}
}

// TestSeenSetSnapshotLoad: what a snapshot holds loads back, keys past the
// TTL are left out, and loaded keys are evicted before newer ones.
func TestSeenSetSnapshotLoad(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	clock := func() time.Time { return now }
	a := newSeenSet(4, time.Hour, clock)
	a.claim("old")
	now = now.Add(30 * time.Minute)
	a.claim("new", "new-body")
	snap, gen := a.snapshot(10)
	if len(snap) != 3 || snap[0].K != "old" || gen != 2 {
		t.Fatalf("snapshot = %+v (gen %d), want old, new, new-body (gen 2)", snap, gen)
	}
	if got, _ := a.snapshot(1); len(got) != 1 || got[0].K != "new-body" {
		t.Errorf("snapshot(1) = %+v, want the newest", got)
	}

	now = now.Add(45 * time.Minute) // "old" is past the hour
	b := newSeenSet(4, time.Hour, clock)
	b.claim("fresh")
	b.load(snap)
	if b.claim("new") || !b.claim("old") {
		t.Error("after load: new must be known, old (past the TTL) not")
	}
	// Full (new, new-body, fresh, old): the oldest loaded key goes first.
	b.claim("x")
	_, newKept := b.items["new"]
	_, bodyKept := b.items["new-body"]
	_, freshKept := b.items["fresh"]
	if newKept || !bodyKept || !freshKept {
		t.Errorf("after an eviction: new kept %v, new-body %v, fresh %v; want only new evicted", newKept, bodyKept, freshKept)
	}
}
