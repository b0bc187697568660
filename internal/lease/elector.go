package lease

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// Defaults for Elector, those of Kubernetes' own controllers.
const (
	DefaultLeaseDuration = 15 * time.Second
	DefaultRenewDeadline = 10 * time.Second
	DefaultRetryPeriod   = 2 * time.Second
)

// Elector elects one leader among the replicas that share Namespace and
// Name, with client-go's leader election on a coordination.k8s.io Lease.
//
// client-go's elector logs through klog; it takes its logger from the
// context given to Run (klog.NewContext), so the command decides where the
// lines go.
//
// An Elector must not be copied after first use, and Run must not be called
// again while it runs.
type Elector struct {
	Client kubernetes.Interface
	// Namespace and Name locate the Lease the replicas compete for.
	Namespace, Name string
	// Identity names this replica in the Lease (the pod name, say); it must
	// differ between replicas.
	Identity string
	// LeaseDuration is how long the others wait, from the last renewal they
	// saw, before taking over (default 15s). RenewDeadline is how long the
	// leader keeps trying to renew before it gives up leading (default 10s);
	// it must be shorter than LeaseDuration. RetryPeriod is the wait
	// between tries (default 2s).
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration

	// leading is the context of the current term while lead runs.
	leading atomic.Pointer[context.Context]
}

// Run campaigns for leadership until ctx ends. Each time this replica
// becomes leader it calls lead with a context that ends when leadership
// does: when the Lease could not be renewed within RenewDeadline, or when
// ctx ends. A lost Lease is not the end: Run waits for lead to return and
// campaigns again. When lead returns while still leading, Run steps down,
// waits RetryPeriod and campaigns again.
//
// The Lease is released (so another replica takes over at once) only after
// lead has returned, so two leaders never act at the same time on this
// replica's account.
//
// Run returns nil when ctx ends, and an error only when the Elector is
// misconfigured.
func (e *Elector) Run(ctx context.Context, lead func(ctx context.Context)) error {
	if lead == nil {
		return errors.New("leader election: no lead function given")
	}
	cfg, err := e.config()
	if err != nil {
		return err
	}
	// Validate once up front, so a bad configuration is an error, not a
	// campaign that never starts.
	if _, err := leaderelection.NewLeaderElector(cfg); err != nil {
		return fmt.Errorf("leader election on Lease %s/%s: %w; fix the Elector's durations", e.Namespace, e.Name, err)
	}
	for ctx.Err() == nil {
		if stepped := e.campaign(ctx, cfg, lead); stepped {
			pause(ctx, cfg.RetryPeriod)
		}
	}
	return nil
}

// IsLeader reports whether this replica leads now: lead is running and its
// context has not ended.
func (e *Elector) IsLeader() bool {
	p := e.leading.Load()
	return p != nil && (*p).Err() == nil
}

// config checks the Elector and builds client-go's configuration (without
// callbacks, which each campaign sets).
func (e *Elector) config() (leaderelection.LeaderElectionConfig, error) {
	if err := checkTarget("leader election", e.Client, e.Namespace); err != nil {
		return leaderelection.LeaderElectionConfig{}, err
	}
	if e.Name == "" {
		return leaderelection.LeaderElectionConfig{}, errors.New("leader election has no Name: name the Lease the replicas compete for")
	}
	if e.Identity == "" {
		return leaderelection.LeaderElectionConfig{}, fmt.Errorf("leader election on Lease %s/%s has no Identity: set one that differs between replicas, such as the pod name", e.Namespace, e.Name)
	}
	cfg := leaderelection.LeaderElectionConfig{
		Lock: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: e.Namespace, Name: e.Name},
			Client:     e.Client.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: e.Identity},
		},
		LeaseDuration:   orDefault(e.LeaseDuration, DefaultLeaseDuration),
		RenewDeadline:   orDefault(e.RenewDeadline, DefaultRenewDeadline),
		RetryPeriod:     orDefault(e.RetryPeriod, DefaultRetryPeriod),
		ReleaseOnCancel: true,
		Name:            e.Namespace + "/" + e.Name,
	}
	if cfg.LeaseDuration < time.Second {
		// The Lease keeps whole seconds: anything shorter would be 0.
		return cfg, fmt.Errorf("leader election on Lease %s/%s: LeaseDuration %v is shorter than the Lease's 1s resolution; use at least 1s", e.Namespace, e.Name, cfg.LeaseDuration)
	}
	cfg.Callbacks = leaderelection.LeaderCallbacks{
		OnStartedLeading: func(context.Context) {},
		OnStoppedLeading: func() {},
	}
	return cfg, nil
}

// campaign runs one round: it waits to become leader, runs lead for the
// term, and returns once client-go's elector has stopped (the Lease
// released, or lost). It reports whether lead returned on its own while
// leading.
func (e *Elector) campaign(ctx context.Context, cfg leaderelection.LeaderElectionConfig, lead func(ctx context.Context)) (stepped bool) {
	// The elector's context ends when this round decides, not when ctx
	// does: on ctx's end lead must return before the Lease is released.
	electCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	started := make(chan context.Context, 1) // buffered: client-go's goroutine never blocks
	cfg.Callbacks.OnStartedLeading = func(term context.Context) { started <- term }
	le, err := leaderelection.NewLeaderElector(cfg)
	if err != nil {
		// Run checked the same configuration.
		panic(fmt.Sprintf("leader election: configuration accepted once, refused now: %v", err))
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		le.Run(electCtx)
	}()
	select {
	case <-ctx.Done():
		stop()
		<-stopped
		return false
	case <-stopped:
		// Led for no time at all (the first renewal already failed).
		return false
	case term := <-started:
		leadCtx, cancel := context.WithCancel(term)
		unhook := context.AfterFunc(ctx, cancel)
		e.leading.Store(&leadCtx)
		lead(leadCtx)
		stepped = leadCtx.Err() == nil
		cancel()
		unhook()
		e.leading.Store(nil)
		// Release the Lease if this replica still holds it.
		stop()
		<-stopped
		return stepped
	}
}

// pause waits for d or until ctx ends.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}
