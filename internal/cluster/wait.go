package cluster

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	"github.com/kubectl-gitops/kubectl-gitops/internal/clock"
	"github.com/kubectl-gitops/kubectl-gitops/internal/diff"
)

// Defaults of WaitOptions.
const (
	DefaultWaitTimeout  = 5 * time.Minute
	defaultWaitInterval = 2 * time.Second
	// waitListThreshold is how many pending objects of one kind in one
	// namespace are polled with one list instead of a get each.
	waitListThreshold = 4
)

// WaitOptions configure Wait.
type WaitOptions struct {
	// Timeout bounds the wait (default 5m).
	Timeout time.Duration
	// Interval between polls (default 2s).
	Interval time.Duration
	// Progress is told when an object becomes Current or Failed.
	Progress func(ObjectStatus)
}

// ObjectStatus is an object's health as kstatus computes it.
type ObjectStatus struct {
	Ref     diff.Ref
	Status  status.Status
	Message string
}

func (s ObjectStatus) String() string {
	msg := s.Ref.KubectlName() + namespaceSuffix(s.Ref) + ": " + string(s.Status)
	if s.Message != "" {
		msg += ": " + s.Message
	}
	return msg
}

// WaitError lists the objects that did not become Current: still in
// progress at the timeout, or failed.
type WaitError struct {
	Timeout time.Duration
	// TimedOut is false when the wait ended early because objects failed.
	TimedOut bool
	Pending  []ObjectStatus
}

func (e *WaitError) Error() string {
	var b strings.Builder
	if e.TimedOut {
		fmt.Fprintf(&b, "timed out after %s waiting for %d objects to become Current:", e.Timeout, len(e.Pending))
	} else {
		fmt.Fprintf(&b, "%d objects failed:", len(e.Pending))
	}
	for _, p := range e.Pending {
		b.WriteString("\n  " + p.String())
	}
	if e.TimedOut {
		b.WriteString("\ncheck them with kubectl describe, or wait longer with --timeout")
	}
	return b.String()
}

// Wait polls objs until kstatus computes every one Current, one fails, or
// the timeout passes; objects read from the API server (with their status)
// are judged before the first poll. It returns the last status of each.
func (c *Client) Wait(ctx context.Context, objs []*unstructured.Unstructured, opts WaitOptions) ([]ObjectStatus, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultWaitTimeout
	}
	if opts.Interval <= 0 {
		opts.Interval = defaultWaitInterval
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()

	last := make(map[string]ObjectStatus, len(objs))
	pending := map[string]*unstructured.Unstructured{}
	var failed []ObjectStatus
	judge := func(key string, obj *unstructured.Unstructured) {
		st := compute(obj)
		last[key] = st
		switch st.Status {
		case status.CurrentStatus:
			delete(pending, key)
			if opts.Progress != nil {
				opts.Progress(st)
			}
		case status.FailedStatus:
			delete(pending, key)
			failed = append(failed, st)
			if opts.Progress != nil {
				opts.Progress(st)
			}
		}
	}
	for _, o := range objs {
		key := diff.RefOf(o).Key()
		pending[key] = o
		judge(key, o)
	}
	for len(pending) > 0 && len(failed) == 0 {
		if err := clock.Sleep(ctx, opts.Interval); err != nil {
			break
		}
		polled, err := c.poll(ctx, pending)
		if err != nil && ctx.Err() == nil {
			return statuses(last), err
		}
		for key, obj := range polled {
			if obj == nil {
				ref := diff.RefOf(pending[key])
				last[key] = ObjectStatus{Ref: ref, Status: status.NotFoundStatus, Message: "not found"}
				continue
			}
			judge(key, obj)
		}
	}
	if len(pending) == 0 && len(failed) == 0 {
		return statuses(last), nil
	}
	werr := &WaitError{Timeout: opts.Timeout, TimedOut: len(failed) == 0}
	werr.Pending = append(werr.Pending, failed...)
	for key := range pending {
		werr.Pending = append(werr.Pending, last[key])
	}
	sort.Slice(werr.Pending, func(i, j int) bool { return werr.Pending[i].Ref.Key() < werr.Pending[j].Ref.Key() })
	if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return statuses(last), ctx.Err()
	}
	return statuses(last), werr
}

// compute is kstatus's verdict on obj.
func compute(obj *unstructured.Unstructured) ObjectStatus {
	ref := diff.RefOf(obj)
	res, err := status.Compute(obj)
	if err != nil {
		return ObjectStatus{Ref: ref, Status: status.UnknownStatus, Message: diff.RedactSecretText(obj, err.Error())}
	}
	return ObjectStatus{Ref: ref, Status: res.Status, Message: diff.RedactSecretText(obj, res.Message)}
}

// poll reads the pending objects: a list per kind and namespace where many
// are pending, else a get each. Objects not found map to nil.
func (c *Client) poll(ctx context.Context, pending map[string]*unstructured.Unstructured) (map[string]*unstructured.Unstructured, error) {
	type group struct {
		mapping   *meta.RESTMapping
		namespace string
		keys      []string
	}
	groups := map[string]*group{}
	for key, obj := range pending {
		m, err := c.mapping(obj.GroupVersionKind())
		if err != nil {
			return nil, err
		}
		gk := m.Resource.String() + "/" + obj.GetNamespace()
		if groups[gk] == nil {
			groups[gk] = &group{mapping: m, namespace: obj.GetNamespace()}
		}
		groups[gk].keys = append(groups[gk].keys, key)
	}
	var reqs []func(ctx context.Context) error
	var mu sync.Mutex
	out := make(map[string]*unstructured.Unstructured, len(pending))
	for _, g := range groups {
		ri := c.resourceFor(g.mapping, g.namespace)
		if len(g.keys) >= waitListThreshold {
			reqs = append(reqs, func(ctx context.Context) error {
				list, err := ri.List(ctx, metav1.ListOptions{})
				if err != nil {
					return err
				}
				byKey := make(map[string]*unstructured.Unstructured, len(list.Items))
				for i := range list.Items {
					byKey[diff.RefOf(&list.Items[i]).Key()] = &list.Items[i]
				}
				mu.Lock()
				defer mu.Unlock()
				for _, key := range g.keys {
					out[key] = byKey[key]
				}
				return nil
			})
			continue
		}
		for _, key := range g.keys {
			name := pending[key].GetName()
			reqs = append(reqs, func(ctx context.Context) error {
				obj, err := ri.Get(ctx, name, metav1.GetOptions{})
				if apierrors.IsNotFound(err) {
					obj, err = nil, nil
				}
				if err != nil {
					return err
				}
				mu.Lock()
				defer mu.Unlock()
				out[key] = obj
				return nil
			})
		}
	}
	errs := make([]error, len(reqs))
	c.forEach(ctx, len(reqs), func(ctx context.Context, i int) { errs[i] = reqs[i](ctx) })
	for _, err := range errs {
		if err != nil && !isTransient(err) {
			return out, fmt.Errorf("reading objects to wait for: %w", err)
		}
	}
	return out, nil
}

func statuses(m map[string]ObjectStatus) []ObjectStatus {
	out := make([]ObjectStatus, 0, len(m))
	for _, s := range m {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Ref.Key() < out[j].Ref.Key() })
	return out
}
