package sandbox

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// refuseSockets installs a seccomp filter on every thread of the process
// that makes socket(2) fail with EACCES for every family but AF_UNIX, and
// io_uring_setup(2) (which can open sockets too) with ENOSYS. It holds
// where no network namespace could be made (a container without user
// namespaces) and against a dialer built by hand, which the in-process
// refusal cannot reach. It needs no privilege: no_new_privs is set first.
func refuseSockets() error {
	var arch uint32
	switch runtime.GOARCH {
	case "amd64":
		arch = unix.AUDIT_ARCH_X86_64
	case "arm64":
		arch = unix.AUDIT_ARCH_AARCH64
	default:
		return errors.ErrUnsupported
	}
	const (
		offNr   = 0  // seccomp_data.nr
		offArch = 4  // seccomp_data.arch
		offArg0 = 16 // seccomp_data.args[0], low half on little-endian
		ld      = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeq     = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		ret     = unix.BPF_RET | unix.BPF_K
	)
	filter := []unix.SockFilter{
		{Code: ld, K: offArch},
		{Code: jeq, Jt: 0, Jf: 6, K: arch}, // another ABI: allow
		{Code: ld, K: offNr},
		{Code: jeq, Jt: 5, Jf: 0, K: unix.SYS_IO_URING_SETUP},
		{Code: jeq, Jt: 0, Jf: 3, K: unix.SYS_SOCKET},
		{Code: ld, K: offArg0},
		{Code: jeq, Jt: 1, Jf: 0, K: unix.AF_UNIX},
		{Code: ret, K: unix.SECCOMP_RET_ERRNO | uint32(unix.EACCES)},
		{Code: ret, K: unix.SECCOMP_RET_ALLOW},
		{Code: ret, K: unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)},
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}

	// no_new_privs is per thread; the filter's TSYNC flag carries it and
	// the filter to every other thread of the process.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set no_new_privs: %w", err)
	}
	if _, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&prog))); errno != 0 {
		return fmt.Errorf("install the seccomp filter: %w", errno)
	}
	runtime.KeepAlive(filter)
	return nil
}
