// Package cluster is the only package that talks to a kube-apiserver: it
// dry-runs and applies rendered objects with server-side apply, keeps the
// inventory of what an app applied, prunes, waits for health and manages Helm
// releases.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// FieldManager is the server-side apply field manager of kubectl-gitops.
const FieldManager = "kubectl-gitops"

// HelmFieldManager is the field manager Helm releases apply with. Helm's
// SDK takes it from a package variable (kube.ManagedFieldsManager) that
// programs set at start; it must differ from FieldManager.
const HelmFieldManager = "kubectl-gitops-helm"

// Defaults for Options.
const (
	DefaultConcurrency = 16
)

// Options configure a Client. The zero value is valid.
type Options struct {
	// FieldManager defaults to FieldManager.
	FieldManager string
	// Concurrency bounds the requests in flight (default 16).
	Concurrency int
}

// Client talks to one cluster.
type Client struct {
	dynamic      dynamic.Interface
	discovery    discovery.CachedDiscoveryInterface
	mapper       meta.ResettableRESTMapper
	config       *rest.Config
	getter       genericclioptions.RESTClientGetter
	fieldManager string
	concurrency  int

	resetOnce sync.Mutex
}

// New makes a Client from kubectl's flags (or any RESTClientGetter), with
// kubectl's disk-cached discovery and no client-side rate limit.
func New(getter genericclioptions.RESTClientGetter, opts Options) (*Client, error) {
	cfg, err := getter.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("no cluster to talk to: %w; set --kubeconfig or --context", err)
	}
	// No client-side token bucket: forEach bounds the requests in flight to
	// Options.Concurrency and the API server's priority and fairness guards
	// the server; a token bucket on top only adds waiting (600 objects at
	// 200 QPS after a burst of 400 wait a whole second).
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst, cfg.RateLimiter = -1, 0, nil
	redactingWarnings(cfg)
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating a client for %s: %w", cfg.Host, err)
	}
	disc, err := getter.ToDiscoveryClient()
	if err != nil {
		return nil, fmt.Errorf("creating a discovery client for %s: %w", cfg.Host, err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(disc)
	c := &Client{
		dynamic:      dyn,
		discovery:    disc,
		mapper:       mapper,
		config:       cfg,
		getter:       getter,
		fieldManager: opts.FieldManager,
		concurrency:  opts.Concurrency,
	}
	if c.fieldManager == "" {
		c.fieldManager = FieldManager
	}
	if c.concurrency <= 0 {
		c.concurrency = DefaultConcurrency
	}
	return c, nil
}

// Host is the API server's address, for messages.
func (c *Client) Host() string { return c.config.Host }

// FieldManager is the field manager the client applies with.
func (c *Client) FieldManager() string { return c.fieldManager }

// mapping finds the REST mapping of a kind. A kind the cached discovery does
// not know (a CRD created a moment ago) resets the cache once and retries.
func (c *Client) mapping(gvk schema.GroupVersionKind) (*meta.RESTMapping, error) {
	m, err := c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err == nil {
		return m, nil
	}
	if !meta.IsNoMatchError(err) {
		return nil, err
	}
	c.resetOnce.Lock()
	c.mapper.Reset()
	c.resetOnce.Unlock()
	m, err = c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil, &NoKindError{GVK: gvk, Err: err}
	}
	return m, nil
}

// NoKindError says the cluster does not serve a kind (yet).
type NoKindError struct {
	GVK schema.GroupVersionKind
	Err error
}

func (e *NoKindError) Error() string {
	return fmt.Sprintf("the cluster does not serve %s (is its CustomResourceDefinition installed?)", e.GVK)
}

func (e *NoKindError) Unwrap() error { return e.Err }

// IsNoKind reports whether err says the cluster does not serve a kind.
func IsNoKind(err error) bool {
	var nk *NoKindError
	return errors.As(err, &nk)
}

// resourceFor is the dynamic client of a mapping in a namespace (ignored
// for cluster-scoped kinds): the one way dry-run, apply, prune, wait and the
// live reads reach objects.
func (c *Client) resourceFor(m *meta.RESTMapping, namespace string) dynamic.ResourceInterface {
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return c.dynamic.Resource(m.Resource).Namespace(namespace)
	}
	return c.dynamic.Resource(m.Resource)
}

// forEach runs fn for each index in [0, n) with at most c.concurrency calls
// in flight, and stops starting new ones when ctx ends.
func (c *Client) forEach(ctx context.Context, n int, fn func(ctx context.Context, i int)) {
	sem := make(chan struct{}, c.concurrency)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case sem <- struct{}{}:
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			fn(ctx, i)
		}(i)
	}
	wg.Wait()
}
