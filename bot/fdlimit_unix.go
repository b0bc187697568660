//go:build unix

package bot

import (
	"math"
	"syscall"
)

// openFileLimit is the process's soft RLIMIT_NOFILE (Go raises it to the
// hard limit at start), 0 when unknown or unlimited.
func openFileLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	cur := uint64(rl.Cur)
	if cur == 0 || cur >= math.MaxInt32 { // RLIM_INFINITY, or as good as
		return 0
	}
	return cur
}
