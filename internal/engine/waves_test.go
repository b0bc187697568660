package engine

import (
	"slices"
	"sync"
	"testing"

	"github.com/kubectl-gitops/kubectl-gitops/internal/config"
)

// TestEachWave: a wave's apps run before the next wave starts, after sees
// each wave in order, and after returning false stops the waves after.
func TestEachWave(t *testing.T) {
	apps := []*config.App{{Name: "infra"}, {Name: "db"}, {Name: "config", DependsOn: []string{"infra"}}, nil, {Name: "web", DependsOn: []string{"config"}}}
	var mu sync.Mutex
	var ran []int
	var waves [][]int
	EachWave(apps, func(i int) {
		mu.Lock()
		ran = append(ran, i)
		mu.Unlock()
	}, func(wave []int) bool {
		waves = append(waves, wave)
		if got := slices.Sorted(slices.Values(ran)); !slices.Equal(got, slices.Sorted(slices.Values(slices.Concat(waves...)))) {
			t.Errorf("after wave %v, ran %v", wave, ran)
		}
		return len(waves) < 2
	})
	if want := [][]int{{0, 1, 3}, {2}}; !slices.EqualFunc(waves, want, slices.Equal) {
		t.Errorf("waves %v, want %v (web's wave not run after a stop)", waves, want)
	}
	if slices.Contains(ran, 4) {
		t.Error("web ran after the stop")
	}
}
