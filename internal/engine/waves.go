package engine

import (
	"sync"

	"github.com/kubectl-gitops/kubectl-gitops/internal/config"
)

// AppConcurrency bounds the apps of a wave applied at once (each applies
// its objects with its cluster client's own concurrency).
const AppConcurrency = 4

// EachWave runs the apps (in config.Order's order; nil for a set that is
// no app) wave by wave (config.Waves): run(i) for every app of a wave at
// once, at most AppConcurrency, then, once they all returned, after(wave)
// in the apps' order. A wave starts only when the one before is done, so
// run sees what after recorded of the waves before; after returning false
// stops before the next wave.
func EachWave(apps []*config.App, run func(i int), after func(wave []int) bool) {
	slots := make(chan struct{}, AppConcurrency)
	for _, wave := range config.Waves(apps) {
		var wg sync.WaitGroup
		for _, i := range wave {
			wg.Go(func() {
				slots <- struct{}{}
				defer func() { <-slots }()
				run(i)
			})
		}
		wg.Wait()
		if !after(wave) {
			return
		}
	}
}
