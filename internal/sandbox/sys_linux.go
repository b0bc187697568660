package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// addressSpace is the child's mapped address space at start (VmSize): the
// program's text and data and the Go runtime's reservations, which the
// memory limit comes on top of.
func addressSpace() (int64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmSize:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse VmSize %q: %w", rest, err)
			}
			return kb << 10, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no VmSize in /proc/self/status")
}

// setLimits sets RLIMIT_AS to the start-up's address space plus the memory
// limit, RLIMIT_CPU, RLIMIT_FSIZE and RLIMIT_NOFILE. Soft and hard limits
// alike, so the render cannot raise them again; but for RLIMIT_CPU, whose
// soft limit (SIGXCPU) is the first app's CPU limit and whose hard limit
// (SIGKILL) covers every app of the request, a second each to spare.
func setLimits(lim childLimits, base int64) error {
	for _, l := range []struct {
		name     string
		resource int
		cur, max uint64
	}{
		{"RLIMIT_AS", syscall.RLIMIT_AS, uint64(base + lim.memory), uint64(base + lim.memory)},
		{"RLIMIT_CPU", syscall.RLIMIT_CPU, seconds(lim.cpu), cpuHardLimit(lim)},
		{"RLIMIT_FSIZE", syscall.RLIMIT_FSIZE, uint64(lim.maxFile), uint64(lim.maxFile)},
		{"RLIMIT_NOFILE", syscall.RLIMIT_NOFILE, lim.maxOpen, lim.maxOpen},
	} {
		if err := syscall.Setrlimit(l.resource, &syscall.Rlimit{Cur: l.cur, Max: l.max}); err != nil {
			return fmt.Errorf("%s: %w", l.name, err)
		}
	}
	return nil
}

// seconds is d in whole seconds, rounded up, as RLIMIT_CPU counts.
func seconds(d time.Duration) uint64 {
	return uint64((d + time.Second - 1) / time.Second)
}

// cpuHardLimit is the CPU time, in seconds, that every app of a request
// may use together.
func cpuHardLimit(lim childLimits) uint64 {
	return uint64(lim.apps) * (seconds(lim.cpu) + 1)
}

// raiseCPULimit moves the soft CPU limit to used plus one app's limit, below
// the hard limit: RLIMIT_CPU counts the whole process, so each app of a
// batch gets its own CPU limit on top of what the ones before it used.
func raiseCPULimit(lim childLimits, used time.Duration) error {
	hard := cpuHardLimit(lim)
	soft := min(seconds(used+lim.cpu), hard-1)
	if err := syscall.Setrlimit(syscall.RLIMIT_CPU, &syscall.Rlimit{Cur: soft, Max: hard}); err != nil {
		return fmt.Errorf("RLIMIT_CPU: %w", err)
	}
	return nil
}

// cpuUsed is the CPU time the process has used, user and system.
func cpuUsed() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// privateStdout moves stdout to a new descriptor for the response and points
// descriptor 1 at stderr.
func privateStdout() (*os.File, error) {
	fd, err := syscall.Dup(1)
	if err != nil {
		return nil, fmt.Errorf("dup stdout: %w", err)
	}
	syscall.CloseOnExec(fd)
	if err := syscall.Dup3(2, 1, 0); err != nil {
		return nil, fmt.Errorf("redirect stdout: %w", err)
	}
	out := os.NewFile(uintptr(fd), "response")
	os.Stdout = os.Stderr
	return out, nil
}

// onCPULimit calls f when the process gets SIGXCPU, which the Go runtime
// otherwise ignores.
func onCPULimit(f func()) {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGXCPU)
	go func() {
		<-c
		f()
	}()
}

// isolation is how a child is cut off from the network beyond the
// in-process refusal.
type isolation int

const (
	isolateNone isolation = iota
	isolateNet            // an empty network namespace (root)
	isolateUser           // a user namespace holding an empty network namespace
)

func (i isolation) String() string {
	switch i {
	case isolateNet:
		return "network"
	case isolateUser:
		return "user and network"
	}
	return ""
}

// firstIsolation is the strongest isolation to try on this platform.
func firstIsolation() isolation {
	if os.Geteuid() == 0 {
		return isolateNet
	}
	return isolateUser
}

// weaker is the isolation to fall back to when starting with i failed with
// err, and whether there is one.
func (i isolation) weaker(err error) (isolation, bool) {
	if i == isolateNone {
		return i, false
	}
	for _, errno := range []syscall.Errno{syscall.EPERM, syscall.EINVAL, syscall.ENOSPC, syscall.EUSERS, syscall.EACCES, syscall.ENOSYS} {
		if errors.Is(err, errno) {
			if i == isolateNet {
				return isolateUser, true
			}
			return isolateNone, true
		}
	}
	return i, false
}

// sysProcAttr starts the child in its own process group, killed if the
// parent dies, in the namespaces of i.
func sysProcAttr(i isolation) *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	switch i {
	case isolateNet:
		attr.Cloneflags = syscall.CLONE_NEWNET
	case isolateUser:
		// The child keeps its own user and group ids, mapped onto
		// themselves, so files read the same; it gains nothing outside.
		attr.Cloneflags = syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: os.Getuid(), HostID: os.Getuid(), Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: os.Getgid(), HostID: os.Getgid(), Size: 1}}
		attr.GidMappingsEnableSetgroups = false
	}
	return attr
}

// killGroup kills the process group pid leads.
func killGroup(pid int) error {
	err := syscall.Kill(-pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}

// killedBy reports whether the process died of SIGKILL or SIGXCPU, as at
// the hard CPU limit.
func killedBy(ps *os.ProcessState) bool {
	ws, ok := ps.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() {
		return false
	}
	return ws.Signal() == syscall.SIGKILL || ws.Signal() == syscall.SIGXCPU
}
