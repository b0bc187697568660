package lease

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// ImageSuspensionsName is the ConfigMap, in the bot's namespace, holding the
// image automation switch that `kubectl gitops images suspend|resume` writes
// and the bot reads before every scan.
const ImageSuspensionsName = "gitops-image-automation"

// suspendAll is the record that suspends every policy; a policy's own
// record is "policy/" and its name.
const (
	suspendAll    = "all"
	suspendPrefix = "policy/"
)

// Suspension is one switch that is off: every policy (All) or one.
type Suspension struct {
	All    bool
	Policy string
	// By says who suspended it and why, as given to Suspend.
	By string
}

// Suspensions is the image automation switch: which image policies are
// suspended, kept as records in the ConfigMap ImageSuspensionsName so that
// it survives restarts and every replica of the bot sees it.
type Suspensions struct {
	Client    kubernetes.Interface
	Namespace string
}

func (s *Suspensions) records() *Records {
	return &Records{Client: s.Client, Namespace: s.Namespace, Name: ImageSuspensionsName}
}

// key is the record of a policy, or of all when policy is empty.
func key(policy string) (string, error) {
	if policy == "" {
		return suspendAll, nil
	}
	if strings.ContainsAny(policy, "/\n") {
		return "", fmt.Errorf("%q is not an image policy name", policy)
	}
	return suspendPrefix + policy, nil
}

// Suspend turns off the image automation of policy, or of every policy
// when policy is empty; by says who and why.
func (s *Suspensions) Suspend(ctx context.Context, policy, by string) error {
	k, err := key(policy)
	if err != nil {
		return err
	}
	return s.records().Put(ctx, k, by)
}

// Resume turns policy's automation on again, or, with policy empty, every
// policy's: the switch for all and each policy's own.
func (s *Suspensions) Resume(ctx context.Context, policy string) error {
	if policy != "" {
		k, err := key(policy)
		if err != nil {
			return err
		}
		return s.records().Delete(ctx, k)
	}
	keys, err := s.records().Keys(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, k := range keys {
		if k == suspendAll || strings.HasPrefix(k, suspendPrefix) {
			errs = append(errs, s.records().Delete(ctx, k))
		}
	}
	return errors.Join(errs...)
}

// List returns what is suspended, from one read of the ConfigMap: the
// switch for all first, then each policy's, by name.
func (s *Suspensions) List(ctx context.Context) ([]Suspension, error) {
	r := s.records()
	if err := r.checkTarget(); err != nil {
		return nil, err
	}
	cm, err := r.Client.CoreV1().ConfigMaps(r.Namespace).Get(ctx, r.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the image automation switch %s/%s: %w", r.Namespace, r.Name, r.apiError("read", err))
	}
	var all, policies []Suspension
	for dk, raw := range cm.Data {
		rec, err := r.decode(dk, raw)
		if err != nil {
			return nil, err
		}
		switch {
		case rec.Key == suspendAll:
			all = append(all, Suspension{All: true, By: rec.Value})
		case strings.HasPrefix(rec.Key, suspendPrefix):
			policies = append(policies, Suspension{Policy: strings.TrimPrefix(rec.Key, suspendPrefix), By: rec.Value})
		}
	}
	slices.SortFunc(policies, func(a, b Suspension) int { return strings.Compare(a.Policy, b.Policy) })
	return append(all, policies...), nil
}

// Suspended reports whether policy's automation is off, by its own switch
// or the one for all.
func (s *Suspensions) Suspended(ctx context.Context, policy string) (bool, error) {
	list, err := s.List(ctx)
	if err != nil {
		return false, err
	}
	for _, sus := range list {
		if sus.All || sus.Policy == policy {
			return true, nil
		}
	}
	return false, nil
}
