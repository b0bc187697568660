//go:build unix

package render_test

import (
	"context"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/kubectl-gitops/kubectl-gitops/internal/testing/gentree"
	"github.com/kubectl-gitops/kubectl-gitops/render"
)

// The render benchmarks measure render.Path against its peer in the same
// run: krusty as `kubectl kustomize` runs it (on-disk filesystem, default
// options, output as YAML). Each iteration renders every overlay of the tree
// with both, alternating which goes first, so machine noise lands on both
// alike. Read the per-tree metrics and their ratios, not ns/op (which covers
// both): wall time, and the process's CPU time (garbage collection
// included), which other load on a shared machine disturbs far less. The
// file is unix-only for getrusage. hack/bench-render.sh runs them next to
// the process-level comparison and writes docs/benchmarks.md.
//
//	go test ./render -run '^$' -bench Render -benchtime 2x

// BenchmarkRenderTree renders 200 small apps (20 objects each), one by one.
func BenchmarkRenderTree(b *testing.B) {
	root := b.TempDir()
	overlays, err := gentree.Tree(root, 200, 20)
	if err != nil {
		b.Fatal(err)
	}
	benchmarkOverlays(b, root, overlays)
}

// BenchmarkRenderRealWorld renders a platform-sized overlay set: a shared
// base of 60 objects, three components and six overlays.
func BenchmarkRenderRealWorld(b *testing.B) {
	root := b.TempDir()
	overlays, err := gentree.RealWorld(root)
	if err != nil {
		b.Fatal(err)
	}
	benchmarkOverlays(b, root, overlays)
}

func benchmarkOverlays(b *testing.B, root string, overlays []string) {
	ctx := context.Background()
	dirs := make([]string, len(overlays))
	for i, o := range overlays {
		dirs[i] = filepath.Join(root, o)
	}
	ours := func(dir string) int {
		res, err := render.Path(ctx, dir, render.Options{Root: root})
		if err != nil {
			b.Fatal(err)
		}
		return len(res.Objects)
	}
	peer := func(dir string) int {
		return kustomize(b, dir)
	}
	// Both must render the same trees, or the ratio means nothing.
	for _, dir := range dirs {
		if o, p := ours(dir), peer(dir); o != p {
			b.Fatalf("%s: render.Path gave %d objects, krusty %d", dir, o, p)
		}
	}

	var oursWall, peerWall, oursCPU, peerCPU time.Duration
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		first, second := ours, peer
		w1, w2, c1, c2 := &oursWall, &peerWall, &oursCPU, &peerCPU
		if i%2 == 1 {
			first, second = peer, ours
			w1, w2, c1, c2 = &peerWall, &oursWall, &peerCPU, &oursCPU
		}
		// Each half starts on a clean heap, so neither pays for
		// collecting the other's garbage.
		runtime.GC()
		start, startCPU := time.Now(), cpuTime(b)
		for _, dir := range dirs {
			first(dir)
		}
		firstWall, firstCPU := time.Since(start), cpuTime(b)-startCPU
		runtime.GC()
		mid, midCPU := time.Now(), cpuTime(b)
		for _, dir := range dirs {
			second(dir)
		}
		*w2 += time.Since(mid)
		*c2 += cpuTime(b) - midCPU
		*w1 += firstWall
		*c1 += firstCPU
	}
	trees := float64(b.N * len(dirs))
	perTree := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / trees }
	b.ReportMetric(perTree(oursWall), "ns/tree")
	b.ReportMetric(perTree(peerWall), "kustomize-ns/tree")
	b.ReportMetric(float64(oursWall)/float64(peerWall), "ours/kustomize")
	b.ReportMetric(perTree(oursCPU), "cpu-ns/tree")
	b.ReportMetric(perTree(peerCPU), "kustomize-cpu-ns/tree")
	b.ReportMetric(float64(oursCPU)/float64(peerCPU), "cpu-ours/kustomize")
}

// cpuTime is the CPU time, user and system, the process has used so far.
func cpuTime(b *testing.B) time.Duration {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		b.Fatal(err)
	}
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}

// kustomize builds dir as `kubectl kustomize dir` does and returns the
// number of objects.
func kustomize(b *testing.B, dir string) int {
	opts := krusty.MakeDefaultOptions()
	opts.Reorder = krusty.ReorderOptionUnspecified
	m, err := krusty.MakeKustomizer(opts).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := m.AsYaml(); err != nil {
		b.Fatal(err)
	}
	return m.Size()
}
