//go:build !linux

package sandbox

import (
	"errors"
	"os"
	"syscall"
	"time"
)

// Elsewhere than Linux the child is a process of its own with the
// in-process network refusal, the wall-time and output limits and the Go
// memory limit, but without rlimits, namespaces or a socket filter.

func addressSpace() (int64, error) { return 0, nil }

func setLimits(childLimits, int64) error { return nil }

func raiseCPULimit(childLimits, time.Duration) error { return nil }

func cpuUsed() (time.Duration, error) { return 0, nil }

func privateStdout() (*os.File, error) { return os.Stdout, nil }

func onCPULimit(func()) {}

func refuseSockets() error { return errors.ErrUnsupported }

type isolation int

const isolateNone isolation = 0

func (isolation) String() string { return "" }

func firstIsolation() isolation { return isolateNone }

func (i isolation) weaker(error) (isolation, bool) { return i, false }

func sysProcAttr(isolation) *syscall.SysProcAttr { return nil }

func killGroup(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Kill()
}

func killedBy(*os.ProcessState) bool { return false }
