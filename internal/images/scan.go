package images

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/kubectl-gitops/kubectl-gitops/internal/clock"
	"github.com/kubectl-gitops/kubectl-gitops/internal/config"
	"github.com/kubectl-gitops/kubectl-gitops/internal/limit"
)

// DefaultInterval is how long a scan of a repository serves a policy that
// sets no interval.
const DefaultInterval = 5 * time.Minute

const (
	// defaultConcurrency bounds the repositories scanned at once on one
	// registry host.
	defaultConcurrency = 4
	// retries bounds the retries of one request answered 429.
	retries = 3
	// maxWait is the longest Retry-After the scanner waits out within a
	// scan; a registry asking for longer fails the scan at once, and gets
	// no request until the time it asked for.
	maxWait = time.Minute
	// ageLookups bounds the tags whose created time one policy reads in a
	// scan, for registries whose images carry no created time (ko,
	// Bazel): without it minimumAge would read every tag, every scan.
	ageLookups = 10
	// forgetAfter drops the cache of a repository no scan asked for that
	// long, as when its policy left gitops.yaml.
	forgetAfter = 24 * time.Hour
	// A registry's answers are bounded, so a broken or hostile one cannot
	// make a scan read or hold without end: maxResponseBytes per response
	// (a tag list page, a manifest, an image config), maxTagPages pages
	// and maxTags tags per repository.
	maxResponseBytes = 16 << 20
	maxTagPages      = 2000
	maxTags          = 100_000
)

// errResponseTooLarge is the read error of a registry response longer
// than maxResponseBytes.
var errResponseTooLarge = fmt.Errorf("the registry's response is over %d MiB, more than any tag list page, manifest or image config needs", maxResponseBytes>>20)

// Errors a Result's Err wraps, besides ErrNoTag (and ErrTooYoung) when the
// scan worked but no tag qualifies, and the context's error when it ended.
var (
	// ErrNotFound: the registry has no such repository, or hides it from
	// these credentials.
	ErrNotFound = errors.New("repository not found")
	// ErrDenied: the registry refused the credentials (HTTP 401 or 403),
	// or wants some and has none.
	ErrDenied = errors.New("registry denied access")
	// ErrRateLimited: the registry answered 429 until the scanner gave up,
	// or asked it to wait longer than a scan waits.
	ErrRateLimited = errors.New("registry rate limit")
)

// Scanner lists the tags of image repositories and chooses one per policy.
// The zero value is ready; set the fields before the first scan and leave
// them. It is safe for concurrent use: the bot scans on an interval while
// a receiver's hint rescans one repository.
//
// Each scan of a repository lists its tags (following the registry's
// pages) and keeps them: a repository scanned less than its policy's
// interval ago is served from that cache unless the request forces a
// rescan. Created times (for minimumAge) and digests (for digest: pin) are
// read only for the few tags that could be chosen.
//
// A registry host that answers 429 gets no request from any scan until
// its Retry-After has passed; a request is retried at most three times,
// and a host that still answers 429, or asks for more than a minute, fails
// the scans at once (with no request) until the time it asked for.
type Scanner struct {
	// Concurrency bounds the repositories scanned at once on one registry
	// host, across every scan of the Scanner; 0 means 4.
	Concurrency int
	// Keychain finds credentials for a repository (Credentials.Keychain
	// builds one); nil reads every registry anonymously.
	Keychain authn.Keychain
	// Transport sends the requests; nil is remote.DefaultTransport.
	Transport http.RoundTripper
	// Now is the clock of the cache and of minimumAge; nil is time.Now.
	Now func() time.Time
	// Interval is how long a scan serves a policy that sets no interval;
	// 0 means DefaultInterval.
	Interval time.Duration
	// PageSize is the number of tags asked for per page of the tag list;
	// 0 leaves go-containerregistry's 1000. A registry may send fewer per
	// page; every page is read.
	PageSize int

	once  sync.Once
	gate  *gate
	mu    sync.Mutex
	hosts map[string]chan struct{} // a slot per repository being scanned
	repos map[string]*repoState
	// epoch orders calls and listings: a forced request is served by a
	// listing that started after the call did.
	epoch atomic.Int64
}

// Request asks for the choice of one image policy.
type Request struct {
	Policy config.ImagePolicy
	// Force rescans the policy's repository even when the cache is fresh,
	// as on a receiver's hint that the repository has a new tag: a scan
	// that started after the request serves it.
	Force bool
}

// Result is a policy's scan.
type Result struct {
	// Policy is the policy's name; Compiled is it compiled, nil when it
	// does not compile (then Err says why).
	Policy   string
	Compiled *Policy
	// Repository is the image's repository as go-containerregistry names
	// it: ghcr.io/acme/app, index.docker.io/library/nginx for nginx.
	Repository string
	// Tags are the repository's tags as the registry listed them, with the
	// created times and digests the scan read (zero for the others). Read
	// them only: results share them with each other and with the cache.
	Tags []Tag
	// Invalid counts the listed tags whose names are not tags (the OCI
	// grammar [A-Za-z0-9_][A-Za-z0-9._-]{0,127}); they are left out of
	// Tags, so no hostile name reaches a file or a branch.
	Invalid int
	// Choice is the policy's choice, with the digest when it pins one.
	Choice Choice
	// FromCache says the tags came from an earlier listing.
	FromCache bool
	// Requests counts the HTTP requests sent for this result, retries
	// included. When several policies share a repository the listing
	// counts for the first of them.
	Requests int
	// Err is why there is no choice: the scan's error, or Latest's
	// (wrapping ErrNoTag) when the scan worked; then Tags are set.
	Err error
}

// Repository returns the name of an image's repository as Result reads
// it, so that a receiver's hint ("library/nginx", "docker.io/nginx") finds
// the policies of its repository.
func Repository(image string) (string, error) {
	r, err := name.NewRepository(image)
	if err != nil {
		return "", fmt.Errorf("%q is not an image repository: %v; write it as host/path such as ghcr.io/acme/app", image, err)
	}
	return r.Name(), nil
}

// Scan scans one policy.
func (s *Scanner) Scan(ctx context.Context, r Request) Result {
	return s.ScanAll(ctx, []Request{r})[0]
}

// ScanAll scans the policies, each repository once, as many repositories
// at once per registry host as Concurrency allows, and returns a Result
// per request in their order. A failure of one repository fails only its
// policies.
func (s *Scanner) ScanAll(ctx context.Context, reqs []Request) []Result {
	s.init()
	now, epoch := s.now(), s.epoch.Add(1)
	results := make([]Result, len(reqs))
	var groups []*group
	byRepo := map[string]*group{}
	for i, r := range reqs {
		results[i].Policy = r.Policy.Name
		repo, err := name.NewRepository(r.Policy.Image)
		if err != nil {
			results[i].Err = fmt.Errorf("image policy %s: image %q is not a repository: %v; write it as host/path such as ghcr.io/acme/app, with no tag",
				r.Policy.Name, r.Policy.Image, err)
			continue
		}
		results[i].Repository = repo.Name()
		g := byRepo[repo.Name()]
		if g == nil {
			g = &group{repo: repo}
			byRepo[repo.Name()] = g
			groups = append(groups, g)
		}
		interval := cmpDuration(r.Policy.Interval.Duration, s.Interval, DefaultInterval)
		g.members = append(g.members, member{index: i, config: r.Policy, pin: r.Policy.Digest == config.DigestPin, force: r.Force, interval: interval})
	}
	s.forget(now)
	var wg sync.WaitGroup
	for _, g := range groups {
		wg.Go(func() { s.scanRepository(ctx, g, now, epoch, results) })
	}
	wg.Wait()
	return results
}

// group is the requests of one repository.
type group struct {
	repo    name.Repository
	members []member
}

type member struct {
	index    int
	config   config.ImagePolicy
	policy   *Policy // compiled by the group's goroutine
	pin      bool
	force    bool
	interval time.Duration
}

// repoState is the cache of one repository; lock serializes its scans, so
// a request that waited for another scan finds its listing.
type repoState struct {
	lock  chan struct{}
	entry *entry
	used  time.Time
}

// entry is one listing of a repository. tags never change once listed
// (results share them); what later lookups learn goes to info.
type entry struct {
	at      time.Time // when the listing started
	epoch   int64     // and in the order of calls (Scanner.epoch)
	tags    []Tag
	invalid int
	info    map[string]info
	// puller made the listing; lookups while the entry serves reuse it
	// (and its ping and token). A new listing makes a new one, which
	// reads the keychain again.
	puller *remote.Puller
}

// info is what the scanner read of one tag.
type info struct {
	digest  string
	created time.Time
	aged    bool // created was read
}

func (s *Scanner) init() {
	s.once.Do(func() {
		next := s.Transport
		if next == nil {
			next = remote.DefaultTransport
		}
		s.gate = &gate{next: next, now: s.now, hosts: map[string]*hold{}}
		s.hosts = map[string]chan struct{}{}
		s.repos = map[string]*repoState{}
	})
}

func (s *Scanner) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// forget drops the cache of repositories no scan asked for in a day.
func (s *Scanner) forget(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for key, st := range s.repos {
		if now.Sub(st.used) > forgetAfter && len(st.lock) == 0 {
			delete(s.repos, key)
		}
	}
}

func (s *Scanner) repoState(key string, now time.Time) *repoState {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.repos[key]
	if st == nil {
		st = &repoState{lock: make(chan struct{}, 1)}
		s.repos[key] = st
	}
	st.used = now
	return st
}

func (s *Scanner) hostSlots(host string) chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	slots := s.hosts[host]
	if slots == nil {
		n := s.Concurrency
		if n <= 0 {
			n = defaultConcurrency
		}
		slots = make(chan struct{}, n)
		s.hosts[host] = slots
	}
	return slots
}

// scanRepository lists the group's repository unless the cache serves
// every member, then chooses a tag per member.
func (s *Scanner) scanRepository(ctx context.Context, g *group, now time.Time, epoch int64, results []Result) {
	// Compiling here, not in ScanAll, overlaps it with the other
	// repositories' requests.
	members := g.members[:0]
	for _, m := range g.members {
		p, err := Compile(m.config)
		if err != nil {
			results[m.index].Err = err
			continue
		}
		m.policy = p
		results[m.index].Compiled = p
		members = append(members, m)
	}
	if len(members) == 0 {
		return
	}
	g.members = members
	red := &redactor{}
	sess := &session{s: s, repo: g.repo}
	defer sess.release()
	fail := func(err error) {
		err = s.explain(ctx, g.repo, err, red)
		for _, m := range g.members {
			results[m.index].Err = err
		}
	}
	st := s.repoState(g.repo.Name(), now)
	select {
	case st.lock <- struct{}{}:
	case <-ctx.Done():
		fail(ctx.Err())
		return
	}
	defer func() { <-st.lock }()

	e := st.entry
	fresh := e != nil && e.puller != nil
	for _, m := range g.members {
		if e != nil && (m.force && e.epoch < epoch || now.Sub(e.at) >= m.interval) {
			fresh = false
		}
	}
	first := &results[g.members[0].index]
	if !fresh {
		tr := &trace{red: red}
		at, listing := s.now(), s.epoch.Add(1)
		names, err := sess.list(tr.with(ctx))
		first.Requests += tr.count()
		if err != nil {
			fail(err)
			return
		}
		e = &entry{at: at, epoch: listing, info: map[string]info{}}
		e.tags = make([]Tag, 0, len(names))
		for _, n := range names {
			if validTag.MatchString(n) {
				e.tags = append(e.tags, Tag{Name: n})
			} else {
				e.invalid++
			}
		}
		e.puller = sess.puller
		st.entry = e
		// The choice is work for the CPU, not the registry: another
		// repository's requests take the slot meanwhile. A lookup takes
		// one again.
		sess.release()
	} else {
		sess.puller = e.puller
	}
	for _, m := range g.members {
		r := &results[m.index]
		r.FromCache = fresh
		r.Invalid = e.invalid
		tr := &trace{red: red}
		choice, err := s.choose(tr.with(ctx), sess, e, m, now)
		r.Requests += tr.count()
		r.Tags = e.view()
		if err != nil {
			if !errors.Is(err, ErrNoTag) {
				err = s.explain(ctx, g.repo, err, red)
			}
			r.Err = err
			continue
		}
		r.Choice = choice
	}
}

// validTag is the OCI distribution grammar of a tag.
var validTag = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)

// view is the entry's tags with what lookups learnt.
func (e *entry) view() []Tag {
	if len(e.info) == 0 {
		return e.tags
	}
	tags := slices.Clone(e.tags)
	for i := range tags {
		if in, ok := e.info[tags[i].Name]; ok {
			tags[i].Digest, tags[i].Created = in.digest, in.created
		}
	}
	return tags
}

// choose applies a member's policy to the entry, reading created times
// and the digest as the policy needs them.
func (s *Scanner) choose(ctx context.Context, sess *session, e *entry, m member, now time.Time) (Choice, error) {
	tags := e.view()
	var (
		choice Choice
		err    error
	)
	if m.policy.minimumAge > 0 {
		choice, err = s.oldEnough(ctx, sess, e, tags, m.policy, now)
	} else {
		choice, err = m.policy.Latest(tags, now)
	}
	if err != nil || !m.pin || choice.Tag.Digest != "" {
		return choice, err
	}
	in := e.info[choice.Tag.Name]
	if in.digest == "" {
		d, err := sess.head(ctx, choice.Tag.Name)
		if err != nil {
			return Choice{}, err
		}
		in.digest = d
		e.info[choice.Tag.Name] = in
	}
	choice.Tag.Digest = in.digest
	return choice, nil
}

// oldEnough chooses under minimumAge reading created times from the best
// qualifying tag down, only until one is old enough: the tags above it are
// too young, and the tags below it cannot win. Latest then judges with
// those times (the tags not read pass as old, since none can outrank the
// choice), so its Why and Held count what the scan saw.
func (s *Scanner) oldEnough(ctx context.Context, sess *session, e *entry, tags []Tag, p *Policy, now time.Time) (Choice, error) {
	ageless := *p
	ageless.minimumAge = 0
	cutoff := now.Add(-p.minimumAge)
	remaining := slices.Clone(tags)
	found, capped, looked := false, false, 0
	for round := 0; ; round++ {
		c, err := ageless.Latest(remaining, now)
		if err != nil {
			if round == 0 {
				return Choice{}, err // nothing qualifies, whatever its age
			}
			break
		}
		in, ok := e.info[c.Tag.Name]
		if !ok || !in.aged {
			if looked == ageLookups {
				capped = true
				break
			}
			looked++
			read, err := sess.describe(ctx, c.Tag.Name)
			if err != nil {
				return Choice{}, err
			}
			in = read
			e.info[c.Tag.Name] = in
		}
		if !in.created.IsZero() && !in.created.After(cutoff) {
			found = true
			break
		}
		i := slices.IndexFunc(remaining, func(t Tag) bool { return t.Name == c.Tag.Name })
		remaining[i] = remaining[len(remaining)-1]
		remaining = remaining[:len(remaining)-1]
	}
	judged := slices.Clone(tags)
	for i := range judged {
		if in, ok := e.info[judged[i].Name]; ok && in.aged {
			judged[i].Created, judged[i].Digest = in.created, in.digest
		} else if found {
			judged[i].Created = time.Unix(0, 0)
		}
	}
	choice, err := p.Latest(judged, now)
	if err != nil && capped {
		err = fmt.Errorf("%w (the scan read the created times of the %d highest tags only)", err, ageLookups)
	}
	return choice, err
}

// session is the requests of one repository's scan: a host slot, taken at
// the first request, and a puller, made then unless the cache has one.
type session struct {
	s      *Scanner
	repo   name.Repository
	puller *remote.Puller
	slots  chan struct{} // the host's slots, while the session holds one
}

func (c *session) open(ctx context.Context) (*remote.Puller, error) {
	if c.slots == nil {
		slots := c.s.hostSlots(c.repo.RegistryStr())
		select {
		case slots <- struct{}{}:
			c.slots = slots
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if c.puller != nil {
		return c.puller, nil
	}
	opts := []remote.Option{
		remote.WithTransport(c.s.gate),
		// The gate retries 429 honouring Retry-After; go-containerregistry
		// keeps retrying network errors and 5xx.
		remote.WithRetryStatusCodes(http.StatusRequestTimeout, http.StatusInternalServerError, http.StatusBadGateway,
			http.StatusServiceUnavailable, http.StatusGatewayTimeout),
	}
	if c.s.Keychain != nil {
		opts = append(opts, remote.WithAuthFromKeychain(c.s.Keychain))
	}
	if c.s.PageSize > 0 {
		opts = append(opts, remote.WithPageSize(c.s.PageSize))
	}
	p, err := remote.NewPuller(opts...)
	if err != nil {
		return nil, err
	}
	c.puller = p
	return p, nil
}

// release gives the host slot back, if the session holds it.
func (c *session) release() {
	if c.slots != nil {
		<-c.slots
		c.slots = nil
	}
}

func (c *session) list(ctx context.Context) ([]string, error) {
	p, err := c.open(ctx)
	if err != nil {
		return nil, err
	}
	l, err := p.Lister(ctx, c.repo)
	if err != nil {
		return nil, err
	}
	var tags []string
	for pages := 0; l.HasNext(); pages++ {
		if pages == maxTagPages {
			return nil, fmt.Errorf("the tag list of %s goes on past %d pages (%d tags so far); the registry's pagination is broken, or the repository holds far more tags than a policy can judge", c.repo, maxTagPages, len(tags))
		}
		page, err := l.Next(ctx)
		if err != nil {
			return nil, err
		}
		tags = append(tags, page.Tags...)
		if len(tags) > maxTags {
			return nil, fmt.Errorf("the tag list of %s holds more than %d tags; prune old tags in the registry", c.repo, maxTags)
		}
	}
	return tags, nil
}

// describe reads a tag's digest and created time: its manifest, then its
// config (of the linux/amd64 image of an index).
func (c *session) describe(ctx context.Context, tag string) (info, error) {
	p, err := c.open(ctx)
	if err != nil {
		return info{}, err
	}
	d, err := p.Get(ctx, c.repo.Tag(tag))
	if err != nil {
		return info{}, err
	}
	img, err := d.Image()
	if err != nil {
		return info{}, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return info{}, err
	}
	return info{digest: d.Digest.String(), created: cf.Created.Time, aged: true}, nil
}

// head reads a tag's digest with a HEAD of its manifest.
func (c *session) head(ctx context.Context, tag string) (string, error) {
	p, err := c.open(ctx)
	if err != nil {
		return "", err
	}
	d, err := p.Head(ctx, c.repo.Tag(tag))
	if err != nil {
		return "", err
	}
	return d.Digest.String(), nil
}

// trace counts the requests of one result and collects, for redaction,
// the credentials they carry. It travels in the request's context.
type trace struct {
	n   atomic.Int64
	red *redactor
}

type traceKey struct{}

func (t *trace) with(ctx context.Context) context.Context {
	return context.WithValue(ctx, traceKey{}, t)
}

func (t *trace) count() int { return int(t.n.Load()) }

// gate is the transport under go-containerregistry's: it counts each
// request for its trace, notes the credentials it carries, and holds the
// requests to a registry host that answered 429.
type gate struct {
	next http.RoundTripper
	now  func() time.Time

	mu    sync.Mutex
	hosts map[string]*hold
}

// hold is what a host's 429 answers asked for.
type hold struct {
	mu sync.Mutex
	// until: no request to the host before then.
	until time.Time
	// exhausted: a request gave up on 429 (its retries spent, or a wait
	// longer than maxWait asked); new requests fail at once until until.
	exhausted bool
}

// rateLimitedError is the error of a request the gate did not send.
type rateLimitedError struct {
	host  string
	until time.Time
}

func (e *rateLimitedError) Error() string {
	return fmt.Sprintf("%s is rate-limiting: no request before %s", e.host, e.until.UTC().Format(time.RFC3339))
}

func (g *gate) hold(host string) *hold {
	g.mu.Lock()
	defer g.mu.Unlock()
	h := g.hosts[host]
	if h == nil {
		h = &hold{}
		g.hosts[host] = h
	}
	return h
}

// until returns when the host takes requests again, if it is rate-limiting.
func (g *gate) until(host string) (time.Time, bool) {
	h := g.hold(host)
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.until, h.until.After(g.now())
}

func (g *gate) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	tr, _ := ctx.Value(traceKey{}).(*trace)
	if tr != nil {
		tr.red.header(req.Header.Get("Authorization"))
	}
	h := g.hold(req.URL.Host)
	for attempt := 0; ; attempt++ {
		if err := h.wait(ctx, g.now, req.URL.Host, attempt == 0); err != nil {
			return nil, err
		}
		send := req
		if attempt > 0 && req.Body != nil && req.Body != http.NoBody {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			send = req.Clone(ctx)
			send.Body = body
		}
		if tr != nil {
			tr.n.Add(1)
		}
		resp, err := g.next.RoundTrip(send)
		if err != nil || resp.StatusCode != http.StatusTooManyRequests {
			if err == nil {
				h.clear()
				resp.Body = limit.Body(resp.Body, maxResponseBytes, errResponseTooLarge)
			}
			return resp, err
		}
		now := g.now()
		wait := retryAfter(resp.Header.Get("Retry-After"), now, attempt)
		rewindable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
		giveUp := attempt == retries || wait > maxWait || !rewindable
		h.strike(now.Add(wait), giveUp)
		if giveUp {
			return resp, nil
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
	}
}

// wait waits until the host takes requests. A request not sent yet fails
// instead when the host exhausted another's retries, while the hold runs
// or if it waited through it: after a storm only a request that comes
// later tries the host again.
func (h *hold) wait(ctx context.Context, now func() time.Time, host string, first bool) error {
	for slept := false; ; slept = true {
		h.mu.Lock()
		until, exhausted := h.until, h.exhausted
		h.mu.Unlock()
		d := until.Sub(now())
		if first && exhausted && (d > 0 || slept) {
			return &rateLimitedError{host: host, until: until}
		}
		if d <= 0 {
			return nil
		}
		if err := clock.Sleep(ctx, d); err != nil {
			return err
		}
	}
}

func (h *hold) strike(until time.Time, giveUp bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if until.After(h.until) {
		h.until = until
	}
	h.exhausted = h.exhausted || giveUp
}

func (h *hold) clear() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.exhausted = false
}

// retryAfter reads a Retry-After header, seconds or an HTTP date; without
// one the wait doubles from a second with each attempt.
func retryAfter(v string, now time.Time, attempt int) time.Duration {
	v = strings.TrimSpace(v)
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil && secs >= 0 {
		if secs > int64(24*time.Hour/time.Second) {
			return 24 * time.Hour
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return time.Second << min(attempt, 5)
}

// redactor collects the credentials a scan sent, or could have, and cuts
// them out of its errors: a registry may echo a request in its answer.
type redactor struct {
	mu      sync.Mutex
	secrets []string
}

func (r *redactor) add(secret string) {
	if len(secret) < 4 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range []string{secret, url.QueryEscape(secret)} {
		if !slices.Contains(r.secrets, s) {
			r.secrets = append(r.secrets, s)
		}
	}
}

// header notes an Authorization header: the whole, the credential, and
// for basic auth the decoded user:password and password.
func (r *redactor) header(v string) {
	if v == "" {
		return
	}
	r.add(v)
	scheme, cred, ok := strings.Cut(v, " ")
	if !ok {
		return
	}
	r.add(cred)
	if strings.EqualFold(scheme, "basic") {
		if b, err := base64.StdEncoding.DecodeString(cred); err == nil {
			r.add(string(b))
			if _, pass, ok := strings.Cut(string(b), ":"); ok {
				r.add(pass)
			}
		}
	}
}

func (r *redactor) config(a *authn.AuthConfig) {
	for _, s := range []string{a.Password, a.Auth, a.IdentityToken, a.RegistryToken} {
		r.add(s)
	}
	if a.Username != "" && a.Password != "" {
		r.add(a.Username + ":" + a.Password)
		r.add(base64.StdEncoding.EncodeToString([]byte(a.Username + ":" + a.Password)))
	}
}

func (r *redactor) clean(s string) string {
	r.mu.Lock()
	secrets := slices.Clone(r.secrets)
	r.mu.Unlock()
	slices.SortFunc(secrets, func(a, b string) int { return len(b) - len(a) })
	for _, secret := range secrets {
		s = strings.ReplaceAll(s, secret, "[redacted]")
	}
	return s
}

// scanError is an error of a scan: its message, said for people with no
// credential in it, and the sentinels (and context error) it wraps. It
// wraps no error of go-containerregistry, whose text may echo a request.
type scanError struct {
	msg  string
	kind []error
}

func (e *scanError) Error() string   { return e.msg }
func (e *scanError) Unwrap() []error { return e.kind }

// explain turns an error of go-containerregistry into one that names the
// repository and says what to do.
func (s *Scanner) explain(ctx context.Context, repo name.Repository, err error, red *redactor) error {
	host := repo.RegistryStr()
	fail := func(kind error, format string, args ...any) error {
		if s.Keychain != nil {
			if auth, err := authn.Resolve(ctx, s.Keychain, repo); err == nil && auth != authn.Anonymous {
				if a, err := authn.Authorization(ctx, auth); err == nil {
					red.config(a)
				}
			}
		}
		e := &scanError{msg: red.clean("scan " + repo.Name() + ": " + fmt.Sprintf(format, args...))}
		if kind != nil {
			e.kind = []error{kind}
		}
		return e
	}
	var (
		limited *rateLimitedError
		terr    *transport.Error
		uerr    *url.Error
		nerr    net.Error
	)
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		cause := context.Cause(ctx)
		if cause == nil {
			cause = context.Canceled
			if errors.Is(err, context.DeadlineExceeded) {
				cause = context.DeadlineExceeded
			}
		}
		return fail(cause, "%v", cause)
	case errors.As(err, &limited):
		return fail(ErrRateLimited, "%s is rate-limiting (HTTP 429): it gets no request until %s, as its Retry-After asked; the next scan after that retries%s",
			host, limited.until.UTC().Format(time.RFC3339), advice)
	case errors.As(err, &terr):
		code := diagnostic(terr)
		switch terr.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			if !s.hasCredentials(ctx, repo) {
				return fail(ErrDenied, "%s wants credentials (HTTP %d%s) and the scanner has none for it; add them for %s: to the docker config's auths (docker login %s), to the Secret's .dockerconfigjson (kubectl create secret docker-registry), or as %s and %s with %s=%s",
					host, terr.StatusCode, code, host, host, EnvRegistryUsername, EnvRegistryPassword, EnvRegistryHost, host)
			}
			return fail(ErrDenied, "%s refused the credentials (HTTP %d%s); check the credentials for %s: the docker config's auths, the Secret's .dockerconfigjson, or %s and %s (with %s=%s), and that they may pull %s",
				host, terr.StatusCode, code, host, EnvRegistryUsername, EnvRegistryPassword, EnvRegistryHost, host, repo.Name())
		case http.StatusNotFound:
			return fail(ErrNotFound, "repository not found (HTTP 404%s); check the image of the policy, and the credentials: some registries answer 404 for a private repository", code)
		case http.StatusTooManyRequests:
			wait := ""
			if until, ok := s.gate.until(host); ok {
				wait = ": it gets no request until " + until.UTC().Format(time.RFC3339) + ", as its Retry-After asked"
			}
			return fail(ErrRateLimited, "%s is rate-limiting (HTTP 429) and still was after %d retries%s; the next scan retries%s",
				host, retries, wait, advice)
		}
		what := ""
		if terr.Request != nil {
			what = " to " + terr.Request.Method + " " + terr.Request.URL.Path
		}
		return fail(nil, "%s answered HTTP %d %s%s%s; the next scan retries", host, terr.StatusCode, http.StatusText(terr.StatusCode), code, what)
	case errors.As(err, &uerr) || errors.As(err, &nerr):
		return fail(nil, "cannot reach %s: %v; check the image's registry host and the network (HTTPS_PROXY, NO_PROXY)", host, err)
	}
	return fail(nil, "%v", err)
}

// advice is what to change when a registry rate-limits the scans.
const advice = "; if it keeps doing so, lengthen the policies' interval or lower the scanner's concurrency"

// diagnostic is the registry's error code, when it is one.
func diagnostic(e *transport.Error) string {
	if len(e.Errors) == 0 {
		return ""
	}
	code := string(e.Errors[0].Code)
	if code == "" || len(code) > 32 || strings.Trim(code, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_") != "" {
		return ""
	}
	return " " + code
}

func (s *Scanner) hasCredentials(ctx context.Context, repo name.Repository) bool {
	if s.Keychain == nil {
		return false
	}
	auth, err := authn.Resolve(ctx, s.Keychain, repo)
	return err == nil && auth != authn.Anonymous
}

// cmpDuration is the first of ds that is positive.
func cmpDuration(ds ...time.Duration) time.Duration {
	for _, d := range ds {
		if d > 0 {
			return d
		}
	}
	return 0
}
