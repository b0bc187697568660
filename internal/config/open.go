package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// ErrNotRegular is returned (wrapped) by OpenRegular for anything that is
// not a regular file: a folder, a FIFO, a device, a socket or a symlink.
var ErrNotRegular = errors.New("not a regular file")

// regularOnly checks that the opened f is a regular file, and closes it if
// not.
func regularOnly(f *os.File) (*os.File, fs.FileInfo, error) {
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%s is a %s: %w", f.Name(), fileType(fi.Mode()), ErrNotRegular)
	}
	return f, fi, nil
}

// fileType names what a file that is not regular is, for messages.
func fileType(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "folder"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	default:
		return "special file"
	}
}
