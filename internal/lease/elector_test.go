package lease

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// Short terms, so that a takeover takes seconds; the renew deadline still
// leaves a slow test machine a second and a half per renewal.
const (
	testLeaseDuration = 2 * time.Second
	testRenewDeadline = 1500 * time.Millisecond
	testRetryPeriod   = 250 * time.Millisecond
)

// within bounds every wait on leader election in these tests; it is a
// deadline for a signal, never a sleep.
const within = 20 * time.Second

func newElector(client kubernetes.Interface, ns, identity string) *Elector {
	return &Elector{
		Client: client, Namespace: ns, Name: "gitops-bot", Identity: identity,
		LeaseDuration: testLeaseDuration, RenewDeadline: testRenewDeadline, RetryPeriod: testRetryPeriod,
	}
}

// term is one call of lead: who leads, and the context it got.
type term struct {
	identity string
	ctx      context.Context
}

// leadUntilDone reports each term on terms and leads until its context
// ends.
func leadUntilDone(identity string, terms chan<- term) func(ctx context.Context) {
	return func(ctx context.Context) {
		terms <- term{identity, ctx}
		<-ctx.Done()
	}
}

func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(within):
		t.Fatalf("no %s within %v", what, within)
		panic("unreachable")
	}
}

// holder reads who the election Lease names as leader.
func holder(t *testing.T, e *Elector) string {
	t.Helper()
	l, err := e.Client.CoordinationV1().Leases(e.Namespace).Get(t.Context(), e.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("reading the election Lease: %v", err)
	}
	return ptrValue(l.Spec.HolderIdentity)
}

func TestElectorOneLeadsThenTheOtherTakesOver(t *testing.T) {
	ns := env.Namespace(t)
	electors := map[string]*Elector{
		"a": newElector(env.Clientset, ns, "a"),
		"b": newElector(newClient(t), ns, "b"),
	}
	terms := make(chan term, 4)
	cancels := map[string]context.CancelFunc{}
	returned := map[string]chan error{}
	for id, e := range electors {
		ctx, cancel := context.WithCancel(t.Context())
		cancels[id], returned[id] = cancel, make(chan error, 1)
		go func() { returned[id] <- e.Run(ctx, leadUntilDone(id, terms)) }()
	}
	t.Cleanup(func() {
		for id, cancel := range cancels {
			cancel()
			<-returned[id]
		}
	})

	first := receive(t, terms, "leader")
	other := "b"
	if first.identity == "b" {
		other = "a"
	}
	if !electors[first.identity].IsLeader() || electors[other].IsLeader() {
		t.Errorf("IsLeader: %s %v, %s %v; want only %s", first.identity, electors[first.identity].IsLeader(), other, electors[other].IsLeader(), first.identity)
	}
	if got := holder(t, electors[first.identity]); got != first.identity {
		t.Errorf("the Lease names %q, want the leader %q", got, first.identity)
	}
	select {
	case second := <-terms:
		t.Fatalf("%s leads while %s does", second.identity, first.identity)
	default:
	}

	// The leader shuts down: its term ends, Run returns, and it hands the
	// Lease over at once instead of letting it run out.
	cancels[first.identity]()
	<-first.ctx.Done()
	if err := receive(t, returned[first.identity], "return from the stopped leader's Run"); err != nil {
		t.Errorf("Run of the stopped leader: %v", err)
	}
	returned[first.identity] <- nil // for the cleanup
	if electors[first.identity].IsLeader() {
		t.Errorf("%s still says it leads after its Run returned", first.identity)
	}
	second := receive(t, terms, "new leader")
	if second.identity != other {
		t.Fatalf("%s leads again, want %s", second.identity, other)
	}
	if !electors[other].IsLeader() {
		t.Errorf("%s leads but IsLeader says no", other)
	}
}

func TestElectorCampaignsAgainAfterLosingTheLease(t *testing.T) {
	ns := env.Namespace(t)
	e := newElector(env.Clientset, ns, "bot-0")
	terms := make(chan term, 4)
	ctx, cancel := context.WithCancel(t.Context())
	returned := make(chan error, 1)
	go func() { returned <- e.Run(ctx, leadUntilDone("bot-0", terms)) }()
	defer func() { cancel(); <-returned }()

	first := receive(t, terms, "first term")
	// Someone else takes the Lease (another replica that thought it
	// expired, say): the term must end, and Run campaign again.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		l, err := env.Clientset.CoordinationV1().Leases(ns).Get(t.Context(), e.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		l.Spec.HolderIdentity = new("intruder")
		l.Spec.LeaseDurationSeconds = new(int32(testLeaseDuration / time.Second))
		l.Spec.RenewTime = new(metav1.NowMicro())
		_, err = env.Clientset.CoordinationV1().Leases(ns).Update(t.Context(), l, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("taking the Lease: %v", err)
	}
	select {
	case <-first.ctx.Done():
	case <-time.After(within):
		t.Fatalf("the term did not end within %v of losing the Lease", within)
	}
	// The intruder does not renew: its Lease runs out and bot-0 leads again.
	second := receive(t, terms, "second term")
	if second.ctx.Err() != nil || !e.IsLeader() {
		t.Errorf("second term: context %v, IsLeader %v; want a live term", second.ctx.Err(), e.IsLeader())
	}
	if got := holder(t, e); got != "bot-0" {
		t.Errorf("the Lease names %q, want bot-0", got)
	}
}

func TestElectorStepsDownWhenLeadReturns(t *testing.T) {
	ns := env.Namespace(t)
	e := newElector(env.Clientset, ns, "bot-0")
	terms := make(chan term, 4)
	calls := 0
	lead := func(ctx context.Context) {
		calls++
		terms <- term{"bot-0", ctx}
		if calls == 1 {
			return // gives up at once
		}
		<-ctx.Done()
	}
	ctx, cancel := context.WithCancel(t.Context())
	returned := make(chan error, 1)
	go func() { returned <- e.Run(ctx, lead) }()
	defer func() { cancel(); <-returned }()

	first := receive(t, terms, "first term")
	second := receive(t, terms, "second term")
	if first.ctx.Err() == nil {
		t.Errorf("the first term's context is live after lead returned")
	}
	if second.ctx.Err() != nil {
		t.Errorf("the second term's context ended: %v", second.ctx.Err())
	}
}

func TestElectorRefuses(t *testing.T) {
	env.Require(t)
	lead := func(context.Context) { t.Error("lead called") }
	valid := func() *Elector { return newElector(env.Clientset, "default", "bot-0") }
	tests := []struct {
		name    string
		change  func(*Elector)
		lead    func(context.Context)
		wantErr string
	}{
		{name: "no identity", change: func(e *Elector) { e.Identity = "" }, lead: lead, wantErr: "no Identity"},
		{name: "no client", change: func(e *Elector) { e.Client = nil }, lead: lead, wantErr: "no Client"},
		{name: "no namespace", change: func(e *Elector) { e.Namespace = "" }, lead: lead, wantErr: "no Namespace"},
		{name: "no name", change: func(e *Elector) { e.Name = "" }, lead: lead, wantErr: "no Name"},
		{name: "no lead", change: func(*Elector) {}, wantErr: "no lead function"},
		{name: "renew deadline past the lease", change: func(e *Elector) { e.RenewDeadline = 3 * time.Second }, lead: lead, wantErr: "leaseDuration must be greater than renewDeadline"},
		{name: "lease under a second", change: func(e *Elector) {
			e.LeaseDuration, e.RenewDeadline, e.RetryPeriod = 900*time.Millisecond, 500*time.Millisecond, 100*time.Millisecond
		}, lead: lead, wantErr: "use at least 1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := valid()
			tt.change(e)
			err := e.Run(t.Context(), tt.lead)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Run: %v, want an error saying %q", err, tt.wantErr)
			}
		})
	}
}
