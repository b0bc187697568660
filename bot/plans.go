package bot

import (
	"sync"

	"github.com/kubectl-gitops/kubectl-gitops/internal/engine"
)

// planKey names the plan of one app at one commit of one repository.
type planKey struct {
	repo, sha, app string
}

// planCache remembers the plan hash (engine.PlanHash) of apps at commits:
// a render is a function of the commit alone, so a hash once computed
// never changes, and an approval given on an older commit is checked
// against the plan it saw without rendering that commit again. It keeps
// the newest max entries.
type planCache struct {
	mu    sync.Mutex
	max   int
	hash  map[planKey]string
	order []planKey // oldest first
	// touched are the apps a pull request's head touches and the files it
	// changes, by repository and head (app is empty in the key).
	touched map[planKey]touchedSet
	// status is the last gitops/sync status reported per repository@sha.
	status map[string]string
}

type touchedSet struct {
	apps, files []string
}

// defaultPlanCacheEntries bounds the cache: a hash and its key are about
// 200 bytes, so the default holds 10,000 app-commits in about 2 MB.
const defaultPlanCacheEntries = 10_000

func newPlanCache(max int) *planCache {
	if max <= 0 {
		max = defaultPlanCacheEntries
	}
	return &planCache{max: max, hash: map[planKey]string{}, touched: map[planKey]touchedSet{}, status: map[string]string{}}
}

// put records the plan hash of app at sha.
func (c *planCache) put(repo, sha, app, hash string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := planKey{repo, sha, app}
	if _, ok := c.hash[k]; ok {
		return
	}
	c.hash[k] = hash
	c.remember(k)
}

// remember keeps k among the newest max keys, forgetting the oldest.
func (c *planCache) remember(k planKey) {
	c.order = append(c.order, k)
	for len(c.order) > c.max {
		delete(c.hash, c.order[0])
		delete(c.touched, c.order[0])
		c.order = c.order[1:]
	}
}

// putTouched records the apps the head sha of a pull request touches and
// the files it changes.
func (c *planCache) putTouched(repo, sha string, set touchedSet) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := planKey{repo: repo, sha: sha}
	if _, ok := c.touched[k]; ok {
		return
	}
	c.touched[k] = set
	c.remember(k)
}

// getTouched returns what putTouched recorded.
func (c *planCache) getTouched(repo, sha string) (apps, files []string, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.touched[planKey{repo: repo, sha: sha}]
	return t.apps, t.files, ok
}

// get returns the plan hash of app at sha, if known.
func (c *planCache) get(repo, sha, app string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.hash[planKey{repo, sha, app}]
	return h, ok
}

// record puts the plan hash of every rendered app at sha; apps whose
// render failed have no plan.
func (c *planCache) record(repo, sha string, rendered []engine.Rendered) {
	for i := range rendered {
		r := &rendered[i]
		if r.App == nil || r.Err != nil {
			continue
		}
		if h, err := engine.PlanHash(r); err == nil {
			c.put(repo, sha, r.App.Name, h)
		}
	}
}

// reported reports whether the gitops/sync status of key was last set to
// desc.
func (c *planCache) reported(key, desc string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status[key] == desc
}

// setReported records the gitops/sync status of key, keeping the newest
// max.
func (c *planCache) setReported(key, desc string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.status) >= c.max {
		clear(c.status)
	}
	c.status[key] = desc
}
