//go:build !linux

package registrytest

import "syscall"

func procAttr() *syscall.SysProcAttr { return nil }
