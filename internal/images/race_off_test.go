//go:build !race

package images_test

// raceEnabled: the race detector allocates on its own, so allocation
// counts are measured only without it.
const raceEnabled = false
