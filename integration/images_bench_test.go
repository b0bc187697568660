package integration

// BenchmarkImageScan measures registry scanning (issue 11), run by
// hack/bench-images.sh: a real registry process (Debian's docker-registry,
// internal/testing/registrytest) on 127.0.0.1, filled with
// BENCH_IMAGES_REPOS repositories (default 500) of BENCH_IMAGES_TAGS tags
// each (default 200): one small image per repository, tagged with a PUT of
// its manifest per tag, 16 PUTs at a time. The fill is not timed.
//
// Then, in the same run, alternating which goes first, BENCH_IMAGES_ROUNDS
// rounds (default 3) of each side over every repository, at the same
// concurrency (BENCH_IMAGES_CONCURRENCY, default 8) on the one host:
//
//   - ours: images.Scanner.ScanAll with a semver policy per repository (no
//     minimumAge, no digest pin), a new Scanner per round (a cold cache, as
//     at the bot's start);
//   - the limit: a bare loop of remote.List over the same repositories, as
//     many at once.
//
// Each side reports its wall time, the requests it sent and the 429s it got
// (a counting transport under both), and its peak memory: the peak of live
// heap objects (sampled every millisecond) and of the process's resident set
// (VmHWM, reset before each run), less what was there before. Nothing
// asserts on time; the figures are written to BENCH_BOT_OUT for the script.

import (
	"fmt"
	"net/http"
	"os"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kubectl-gitops/kubectl-gitops/internal/config"
	"github.com/kubectl-gitops/kubectl-gitops/internal/images"
	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/registrytest"
)

// countingTransport counts the requests it sends, and the 429s among their
// answers.
type countingTransport struct {
	next      http.RoundTripper
	requests  atomic.Int64
	throttled atomic.Int64
}

func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c.requests.Add(1)
	resp, err := c.next.RoundTrip(req)
	if err == nil && resp.StatusCode == http.StatusTooManyRequests {
		c.throttled.Add(1)
	}
	return resp, err
}

// scanRun is one side's round.
type scanRun struct {
	wall      time.Duration
	requests  int64
	throttled int64
	heap      uint64 // peak live heap objects less the baseline, bytes
	rss       uint64 // peak resident set less the baseline, bytes
}

// imageTags is the fill's tag names: n-1 versions and latest.
func imageTags(n int) []string {
	tags := make([]string, 0, n)
	for i := range n - 1 {
		tags = append(tags, fmt.Sprintf("%d.%d.%d", 1+i/100, i/10%10, i%10))
	}
	return append(tags, "latest")
}

func BenchmarkImageScan(b *testing.B) {
	if os.Getenv("BENCH_IMAGES") == "" {
		b.Skip("BENCH_IMAGES is not set: run hack/bench-images.sh")
	}
	if b.N > 1 {
		b.Skip("runs once")
	}
	nRepos := envInt("BENCH_IMAGES_REPOS", 500)
	nTags := envInt("BENCH_IMAGES_TAGS", 200)
	rounds := envInt("BENCH_IMAGES_ROUNDS", 3)
	conc := envInt("BENCH_IMAGES_CONCURRENCY", 8)
	ctx := b.Context()

	reg := registrytest.Start(b)
	tags := imageTags(nTags)
	semver, err := images.Compile(config.ImagePolicy{Name: "x", Image: "x", Policy: config.TagPolicy{Semver: &config.SemverPolicy{Range: ">=1.0.0"}}})
	if err != nil {
		b.Fatal(err)
	}
	want := slices.MaxFunc(tags, semver.Compare)
	fillStart := time.Now()
	var (
		paths []string
		repos []name.Repository
		reqs  []images.Request
	)
	for i := range nRepos {
		path := fmt.Sprintf("team-%02d/app-%03d", i%20, i)
		paths = append(paths, path)
		repos = append(repos, reg.Repo(b, path))
		reqs = append(reqs, images.Request{Policy: config.ImagePolicy{
			Name: path, Image: reg.Host + "/" + path,
			Policy: config.TagPolicy{Semver: &config.SemverPolicy{Range: ">=1.0.0"}},
		}})
	}
	reg.PushAll(b, paths, tags...)
	fill := time.Since(fillStart)
	b.Logf("filled %d repositories × %d tags in %v", nRepos, nTags, fill.Round(time.Second))

	counter := &countingTransport{next: remote.DefaultTransport}
	// accounted is the requests the last run of ours counted in its
	// Results, to check against the transport's count.
	var accounted int64
	ours := func() (any, error) {
		s := &images.Scanner{Concurrency: conc, Transport: counter}
		results := s.ScanAll(ctx, reqs)
		var sum int64
		for _, r := range results {
			if r.Err != nil {
				return nil, r.Err
			}
			if r.Choice.Tag.Name != want || len(r.Tags) != nTags {
				return nil, fmt.Errorf("%s: chose %s of %d tags, want %s of %d", r.Repository, r.Choice.Tag.Name, len(r.Tags), want, nTags)
			}
			sum += int64(r.Requests)
		}
		accounted = sum
		return results, nil
	}
	limit := func() (any, error) {
		lists := make([][]string, len(repos))
		errs := make([]error, len(repos))
		slots := make(chan struct{}, conc)
		var wg sync.WaitGroup
		for i, repo := range repos {
			slots <- struct{}{}
			wg.Go(func() {
				defer func() { <-slots }()
				lists[i], errs[i] = remote.List(repo, remote.WithContext(ctx), remote.WithTransport(counter))
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				return nil, err
			}
			if len(lists[i]) != nTags {
				return nil, fmt.Errorf("%s: %d tags, want %d", repos[i], len(lists[i]), nTags)
			}
		}
		return lists, nil
	}
	measure := func(side string, run func() (any, error)) scanRun {
		runtime.GC()
		heap0 := heapObjects()
		rss0, resetOK := resetPeakRSS()
		req0, thr0 := counter.requests.Load(), counter.throttled.Load()
		var peak atomic.Uint64
		stop := make(chan struct{})
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			for {
				if h := heapObjects(); h > peak.Load() {
					peak.Store(h)
				}
				select {
				case <-stop:
					return
				case <-tick.C:
				}
			}
		}()
		start := time.Now()
		kept, err := run()
		wall := time.Since(start)
		if h := heapObjects(); h > peak.Load() {
			peak.Store(h)
		}
		close(stop)
		<-sampled
		r := scanRun{
			wall:      wall,
			requests:  counter.requests.Load() - req0,
			throttled: counter.throttled.Load() - thr0,
			heap:      peak.Load() - min(heap0, peak.Load()),
		}
		if hwm := vmStatus("VmHWM"); resetOK && hwm > rss0 {
			r.rss = hwm - rss0
		}
		runtime.KeepAlive(kept)
		if err != nil {
			b.Fatalf("%s: %v", side, err)
		}
		return r
	}

	// A warm-up of each (connections, the registry's file cache), then
	// the rounds, which side first alternating.
	if r := measure("ours", ours); r.requests != accounted {
		b.Errorf("the Results count %d requests, the transport sent %d", accounted, r.requests)
	}
	measure("limit", limit)
	b.ResetTimer()
	var oursRuns, limitRuns []scanRun
	for k := range rounds {
		for j := range 2 {
			if (j+k)%2 == 0 {
				oursRuns = append(oursRuns, measure("ours", ours))
			} else {
				limitRuns = append(limitRuns, measure("limit", limit))
			}
		}
	}
	b.StopTimer()

	figures := map[string]float64{
		"images_repos":       float64(nRepos),
		"images_tags":        float64(nTags),
		"images_rounds":      float64(rounds),
		"images_concurrency": float64(conc),
		"images_fill_s":      fill.Seconds(),
	}
	for side, runs := range map[string][]scanRun{"ours": oursRuns, "limit": limitRuns} {
		walls := make([]time.Duration, len(runs))
		var reqs, thr int64
		heaps, rsses := make([]float64, len(runs)), make([]float64, len(runs))
		for i, r := range runs {
			walls[i] = r.wall
			reqs = max(reqs, r.requests)
			thr += r.throttled
			heaps[i], rsses[i] = float64(r.heap)/(1<<20), float64(r.rss)/(1<<20)
		}
		slices.Sort(walls)
		slices.Sort(heaps)
		slices.Sort(rsses)
		figures[side+"_p50_ms"] = ms(walls, 50)
		figures[side+"_min_ms"] = float64(walls[0]) / float64(time.Millisecond)
		figures[side+"_max_ms"] = float64(walls[len(walls)-1]) / float64(time.Millisecond)
		figures[side+"_requests"] = float64(reqs)
		figures[side+"_429"] = float64(thr)
		figures[side+"_heap_mib"] = heaps[(len(heaps)-1)/2]
		figures[side+"_rss_mib"] = rsses[(len(rsses)-1)/2]
		b.Logf("%s: wall %v; %d requests, %d 429s; peak heap +%.1f MiB, peak RSS +%.1f MiB (medians)",
			side, walls, reqs, thr, figures[side+"_heap_mib"], figures[side+"_rss_mib"])
	}
	writeFigures(b, figures)
	b.ReportMetric(figures["ours_p50_ms"], "ours-p50-ms")
	b.ReportMetric(figures["limit_p50_ms"], "limit-p50-ms")
	b.ReportMetric(figures["ours_p50_ms"]/figures["limit_p50_ms"], "ours/limit")
	b.ReportMetric(figures["ours_requests"], "ours-requests")
	b.ReportMetric(figures["limit_requests"], "limit-requests")
}

// heapObjects is the bytes of heap objects, live or not yet swept.
func heapObjects() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// resetPeakRSS resets the process's VmHWM to its resident set and returns
// that, and whether the reset worked (Linux: clear_refs 5).
func resetPeakRSS() (uint64, bool) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		return 0, false
	}
	return vmStatus("VmRSS"), true
}

// vmStatus reads a field of /proc/self/status, in bytes.
func vmStatus(field string) uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
