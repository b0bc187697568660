package bot

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kubectl-gitops/kubectl-gitops/internal/diff"
)

// liveWeb is the Deployment as the cluster has it; each pull request's
// render changes one or two fields of it (through its own files: a patch,
// a shared base, a values file all render to the same object).
func liveWeb() *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1",
		"kind":       "Deployment",
		"metadata":   map[string]any{"name": "web", "namespace": "shop"},
		"spec": map[string]any{
			"replicas": int64(1),
			"template": map[string]any{"spec": map[string]any{
				"containers": []any{map[string]any{"name": "web", "image": "nginx:1.27"}},
			}},
		},
	}}
}

func settingsConfigMap(value string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1",
		"kind":       "ConfigMap",
		"metadata":   map[string]any{"name": "settings", "namespace": "shop"},
		"data":       map[string]any{"mode": value},
	}}
}

func withReplicas(n int64) func(*unstructured.Unstructured) {
	return func(u *unstructured.Unstructured) { u.Object["spec"].(map[string]any)["replicas"] = n }
}

func withImage(image string) func(*unstructured.Unstructured) {
	return func(u *unstructured.Unstructured) {
		c, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
		c[0].(map[string]any)["image"] = image
		_ = unstructured.SetNestedSlice(u.Object, c, "spec", "template", "spec", "containers")
	}
}

// webChanges is the ChangeSet of an app whose render changes the live
// Deployment by edits.
func webChanges(t *testing.T, edits ...func(*unstructured.Unstructured)) *diff.ChangeSet {
	t.Helper()
	after := liveWeb()
	for _, e := range edits {
		e(after)
	}
	return diffObjects(t, []*unstructured.Unstructured{liveWeb()}, []*unstructured.Unstructured{after})
}

func diffObjects(t *testing.T, before, after []*unstructured.Unstructured) *diff.ChangeSet {
	t.Helper()
	cs, err := diff.Objects(before, after, diff.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

const overlapRepo = "github:shop/deploy"

func TestOverlapsSameField(t *testing.T) {
	o := newOverlaps()
	o.record(overlapRepo, 11, map[string]*diff.ChangeSet{"web": webChanges(t, withReplicas(3))})
	changed := o.record(overlapRepo, 12, map[string]*diff.ChangeSet{"web": webChanges(t, withReplicas(5), withImage("nginx:1.28"))})
	// #11's comment, posted first, does not know of #12 yet.
	if diff := cmp.Diff([]int{11}, changed); diff != "" {
		t.Errorf("record #12: changed (-want +got):\n%s", diff)
	}
	// A pull request changing another field overlaps with neither.
	o.record(overlapRepo, 13, map[string]*diff.ChangeSet{
		"web": diffObjects(t, []*unstructured.Unstructured{liveWeb(), settingsConfigMap("a")}, []*unstructured.Unstructured{liveWeb(), settingsConfigMap("b")}),
	})

	want := map[int]map[string][]Overlap{
		11: {"web": {{PR: 12, Object: "apps/Deployment/shop/web", Fields: []string{"spec.replicas"}}}},
		12: {"web": {{PR: 11, Object: "apps/Deployment/shop/web", Fields: []string{"spec.replicas"}}}},
		13: {},
	}
	for pr, w := range want {
		if diff := cmp.Diff(w, o.others(overlapRepo, pr)); diff != "" {
			t.Errorf("others of #%d (-want +got):\n%s", pr, diff)
		}
	}
	if got := o.others("github:shop/other", 11); len(got) != 0 {
		t.Errorf("another repository's #11 overlaps: %v", got)
	}
	if got := o.others(overlapRepo, 99); got != nil {
		t.Errorf("an unrecorded pull request overlaps: %v", got)
	}
}

func TestOverlapsDifferentFields(t *testing.T) {
	o := newOverlaps()
	o.record(overlapRepo, 1, map[string]*diff.ChangeSet{"web": webChanges(t, withReplicas(3))})
	if changed := o.record(overlapRepo, 2, map[string]*diff.ChangeSet{"web": webChanges(t, withImage("nginx:1.28"))}); changed != nil {
		t.Errorf("record #2: changed %v, want none", changed)
	}
	for _, pr := range []int{1, 2} {
		if got := o.others(overlapRepo, pr); len(got) != 0 {
			t.Errorf("#%d overlaps: %v", pr, got)
		}
	}
}

// TestOverlapsDifferentApps checks that the same object rendered by two
// apps (for two clusters, say) is two objects.
func TestOverlapsDifferentApps(t *testing.T) {
	o := newOverlaps()
	o.record(overlapRepo, 1, map[string]*diff.ChangeSet{"web-prod": webChanges(t, withReplicas(3))})
	o.record(overlapRepo, 2, map[string]*diff.ChangeSet{"web-staging": webChanges(t, withReplicas(5)), "broken": nil})
	if got := o.others(overlapRepo, 1); len(got) != 0 {
		t.Errorf("#1 overlaps: %v", got)
	}
}

func TestOverlapsWholeObject(t *testing.T) {
	o := newOverlaps()
	o.record(overlapRepo, 1, map[string]*diff.ChangeSet{"web": webChanges(t, withReplicas(3), withImage("nginx:1.28"))})
	o.record(overlapRepo, 2, map[string]*diff.ChangeSet{"web": diffObjects(t, []*unstructured.Unstructured{liveWeb()}, nil)})
	o.record(overlapRepo, 3, map[string]*diff.ChangeSet{"web": webChanges(t, func(u *unstructured.Unstructured) {
		// A container without a name: the list is matched by position,
		// and changes whole as its length changes. It contains #1's
		// image field.
		_ = unstructured.SetNestedSlice(u.Object, []any{
			map[string]any{"name": "web", "image": "nginx:1.27"},
			map[string]any{"image": "envoy"},
		}, "spec", "template", "spec", "containers")
	})})
	want := map[int]map[string][]Overlap{
		1: {"web": {
			// #2 deletes the object: no fields.
			{PR: 2, Object: "apps/Deployment/shop/web"},
			{PR: 3, Object: "apps/Deployment/shop/web", Fields: []string{"spec.template.spec.containers"}},
		}},
		2: {"web": {
			{PR: 1, Object: "apps/Deployment/shop/web", Fields: []string{"spec.replicas", "spec.template.spec.containers[name=web].image"}},
			{PR: 3, Object: "apps/Deployment/shop/web", Fields: []string{"spec.template.spec.containers"}},
		}},
		3: {"web": {
			{PR: 1, Object: "apps/Deployment/shop/web", Fields: []string{"spec.template.spec.containers[name=web].image"}},
			{PR: 2, Object: "apps/Deployment/shop/web"},
		}},
	}
	for pr, w := range want {
		if diff := cmp.Diff(w, o.others(overlapRepo, pr)); diff != "" {
			t.Errorf("others of #%d (-want +got):\n%s", pr, diff)
		}
	}
}

func TestOverlappingPaths(t *testing.T) {
	tests := []struct {
		mine, theirs, want []string
	}{
		{[]string{"spec.replicas"}, []string{"spec.replicas", "spec.paused"}, []string{"spec.replicas"}},
		// A field inside one of mine, and one containing one of mine.
		{[]string{"spec.template"}, []string{"spec.template.spec.containers[name=web].image"}, []string{"spec.template.spec.containers[name=web].image"}},
		{[]string{"spec.a[name=x].b"}, []string{"spec.a"}, []string{"spec.a"}},
		{[]string{"spec.a[name=x].b"}, []string{"spec.a[name=y].b", "spec.ab", "spec.a[name=x].bc"}, nil},
		// A dot inside brackets does not separate fields.
		{[]string{"metadata.labels[app.kubernetes.io/name]"}, []string{"metadata.labels[app"}, nil},
		{[]string{"metadata.labels[a\\].b]"}, []string{"metadata.labels[a\\]"}, nil},
		{[]string{wholeObject}, []string{"spec.replicas"}, []string{"spec.replicas"}},
		{[]string{"spec.replicas"}, []string{wholeObject}, []string{wholeObject}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, overlapping(tt.mine, tt.theirs)); diff != "" {
			t.Errorf("overlapping(%q, %q) (-want +got):\n%s", tt.mine, tt.theirs, diff)
		}
	}
}

func TestOverlapsForget(t *testing.T) {
	o := newOverlaps()
	for pr, n := range map[int]int64{1: 2, 2: 3, 3: 4} {
		o.record(overlapRepo, pr, map[string]*diff.ChangeSet{"web": webChanges(t, withReplicas(n))})
	}
	o.record(overlapRepo, 4, map[string]*diff.ChangeSet{"web": webChanges(t, withImage("nginx:1.28"))})
	o.record("github:shop/other", 1, map[string]*diff.ChangeSet{"web": webChanges(t, withReplicas(9))})

	if diff := cmp.Diff([]int{2, 3}, o.forget(overlapRepo, 1)); diff != "" {
		t.Errorf("forget #1: affected (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int{2}, overlapPRs(o.others(overlapRepo, 3))); diff != "" {
		t.Errorf("#3 overlaps with (-want +got):\n%s", diff)
	}
	if got := o.forget(overlapRepo, 1); got != nil {
		t.Errorf("forget #1 again: affected %v", got)
	}

	// The reconcile lists #3 and #4 open: #2 closed meanwhile.
	if diff := cmp.Diff([]int{3}, o.keepOnly(overlapRepo, []int{3, 4, 5})); diff != "" {
		t.Errorf("keepOnly: affected (-want +got):\n%s", diff)
	}
	if got := o.others(overlapRepo, 3); len(got) != 0 {
		t.Errorf("#3 still overlaps: %v", got)
	}
	if got := o.others(overlapRepo, 2); got != nil {
		t.Errorf("#2 is still recorded: %v", got)
	}
	o.keepOnly(overlapRepo, nil)
	if _, ok := o.repos[overlapRepo]; ok {
		t.Error("the repository is still held with no pull request")
	}
	if o.others("github:shop/other", 1) == nil {
		t.Error("another repository's pull request was forgotten")
	}
	if o.total != 1 {
		t.Errorf("total fields %d, want 1", o.total)
	}
}

// overlapPRs lists the pull requests of overlaps, in order.
func overlapPRs(byApp map[string][]Overlap) []int {
	var out []int
	for _, ovs := range byApp {
		for _, ov := range ovs {
			out = append(out, ov.PR)
		}
	}
	return out
}

func TestOverlapsRecordReplaces(t *testing.T) {
	o := newOverlaps()
	o.record(overlapRepo, 1, map[string]*diff.ChangeSet{"web": webChanges(t, withReplicas(3))})
	o.record(overlapRepo, 2, map[string]*diff.ChangeSet{"web": webChanges(t, withReplicas(4))})
	// #2's new head no longer changes replicas: #1's comment should drop
	// its warning.
	if diff := cmp.Diff([]int{1}, o.record(overlapRepo, 2, map[string]*diff.ChangeSet{"web": webChanges(t, withImage("x"))})); diff != "" {
		t.Errorf("record: changed (-want +got):\n%s", diff)
	}
	if got := o.others(overlapRepo, 1); len(got) != 0 {
		t.Errorf("#1 overlaps: %v", got)
	}
	// The same record again changes nobody's overlaps.
	if got := o.record(overlapRepo, 2, map[string]*diff.ChangeSet{"web": webChanges(t, withImage("x"))}); got != nil {
		t.Errorf("record again: changed %v", got)
	}
	if o.total != 2 {
		t.Errorf("total fields %d, want 2", o.total)
	}
}

// manyKeys is an app whose ConfigMap changes n keys.
func manyKeys(t *testing.T, n int) map[string]*diff.ChangeSet {
	before, after := settingsConfigMap("a"), settingsConfigMap("a")
	for i := range n {
		after.Object["data"].(map[string]any)[fmt.Sprintf("k%03d", i)] = "v"
	}
	return map[string]*diff.ChangeSet{"web": diffObjects(t, []*unstructured.Unstructured{before}, []*unstructured.Unstructured{after})}
}

func TestOverlapsFieldCap(t *testing.T) {
	o := newOverlaps()
	o.maxFields = 3
	o.record(overlapRepo, 1, manyKeys(t, 5))
	o.record(overlapRepo, 2, manyKeys(t, 5))
	want := map[string][]Overlap{"web": {{PR: 2, Object: "ConfigMap/shop/settings", Fields: []string{"data.k000", "data.k001", "data.k002"}}}}
	if diff := cmp.Diff(want, o.others(overlapRepo, 1)); diff != "" {
		t.Errorf("others (-want +got):\n%s", diff)
	}
	if o.total != 6 {
		t.Errorf("total fields %d, want 6", o.total)
	}

	// A path too long to keep is kept as its longest ancestor that fits.
	long := "data." + strings.Repeat("x", maxFieldPath)
	if diff := cmp.Diff([]string{"data", "spec.a"}, shortenPaths([]string{long, "spec.a"})); diff != "" {
		t.Errorf("shortenPaths (-want +got):\n%s", diff)
	}
}

func TestOverlapsPRCap(t *testing.T) {
	o := newOverlaps()
	o.maxPRs = 2
	rec := func(pr int) {
		o.record(overlapRepo, pr, map[string]*diff.ChangeSet{"web": webChanges(t, withReplicas(int64(10+pr)))})
	}
	rec(1)
	rec(2)
	rec(1) // recorded again: #2 is now the least recent
	rec(3)
	if diff := cmp.Diff([]int{1}, overlapPRs(o.others(overlapRepo, 3))); diff != "" {
		t.Errorf("#3 overlaps with (-want +got):\n%s", diff)
	}
	if o.others(overlapRepo, 2) != nil {
		t.Error("#2 is still recorded")
	}
}

func TestOverlapsTotalCap(t *testing.T) {
	o := newOverlaps()
	o.maxTotal = 2
	o.record("github:a/one", 1, map[string]*diff.ChangeSet{"web": webChanges(t, withReplicas(2))})
	o.record("github:a/two", 1, map[string]*diff.ChangeSet{"web": webChanges(t, withReplicas(2))})
	o.record("github:a/two", 2, map[string]*diff.ChangeSet{"web": webChanges(t, withReplicas(3))})
	if _, ok := o.repos["github:a/one"]; ok {
		t.Error("the least recently recorded repository is still held")
	}
	if diff := cmp.Diff([]int{1}, overlapPRs(o.others("github:a/two", 2))); diff != "" {
		t.Errorf("#2 overlaps with (-want +got):\n%s", diff)
	}
	if o.total != 2 {
		t.Errorf("total fields %d, want 2", o.total)
	}
}

// TestOverlapsConcurrent exercises the lock; run with -race.
func TestOverlapsConcurrent(t *testing.T) {
	o := newOverlaps()
	cs := map[string]*diff.ChangeSet{"web": webChanges(t, withReplicas(3))}
	var wg sync.WaitGroup
	for pr := range 8 {
		wg.Go(func() {
			for range 20 {
				o.record(overlapRepo, pr, cs)
				o.others(overlapRepo, pr)
				o.keepOnly(overlapRepo, []int{0, 1, 2, 3, 4, 5, 6, 7})
			}
			o.forget(overlapRepo, pr)
		})
	}
	wg.Wait()
	if len(o.repos) != 0 || o.total != 0 {
		t.Errorf("%d repositories and %d fields left", len(o.repos), o.total)
	}
}
