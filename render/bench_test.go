package render_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/kubectl-gitops/kubectl-gitops/internal/gentree"
	"github.com/kubectl-gitops/kubectl-gitops/render"
)

// The render benchmarks measure render.Path against its peer in the same
// run: krusty as `kubectl kustomize` runs it (on-disk filesystem, default
// options, output as YAML). Each iteration renders every overlay of the
// tree with both, alternating, so machine noise lands on both alike; the
// figures to read are the per-tree metrics and their ratio, not ns/op (which
// covers both). hack/bench-render.sh runs them with the process-level
// comparison and writes docs/benchmarks.md.
//
//	go test ./render -run '^$' -bench Render -benchtime 5x

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

	var oursTime, peerTime time.Duration
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		// Alternate which goes first, so neither always inherits the
		// other's garbage.
		first, second, t1, t2 := ours, peer, &oursTime, &peerTime
		if i%2 == 1 {
			first, second, t1, t2 = peer, ours, &peerTime, &oursTime
		}
		start := time.Now()
		for _, dir := range dirs {
			first(dir)
		}
		mid := time.Now()
		for _, dir := range dirs {
			second(dir)
		}
		*t1 += mid.Sub(start)
		*t2 += time.Since(mid)
	}
	trees := float64(b.N * len(dirs))
	b.ReportMetric(float64(oursTime.Nanoseconds())/trees, "ns/tree")
	b.ReportMetric(float64(peerTime.Nanoseconds())/trees, "kustomize-ns/tree")
	b.ReportMetric(float64(oursTime)/float64(peerTime), "ours/kustomize")
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
