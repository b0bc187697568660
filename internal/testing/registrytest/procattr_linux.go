package registrytest

import "syscall"

// procAttr kills the registry when the test binary dies without its
// cleanups (a panic, a timeout), so no registry outlives its test.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
