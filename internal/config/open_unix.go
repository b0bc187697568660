//go:build unix

package config

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// OpenRegular opens path for reading only if it is a regular file. The open
// never blocks (a FIFO or a device named like a manifest would otherwise hang
// the reader until someone writes to it) and does not follow a symlink in
// the last element: callers resolve and confine links first, so a link
// swapped in afterwards is refused rather than followed. Anything but a
// regular file is refused with an error wrapping ErrNotRegular. render reads
// every file of a tree through it too.
func OpenRegular(path string) (*os.File, fs.FileInfo, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err == syscall.ELOOP {
		return nil, nil, fmt.Errorf("%s is a symlink: %w", path, ErrNotRegular)
	}
	if err != nil {
		return nil, nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return regularOnly(os.NewFile(uintptr(fd), path))
}
