//go:build !unix

package config

import (
	"fmt"
	"io/fs"
	"os"
)

// OpenRegular opens path for reading only if it is a regular file; see the
// unix version. Here the file is checked before it is opened, so a FIFO is
// never opened, and symlinks in the last element are refused.
func OpenRegular(path string) (*os.File, fs.FileInfo, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("%s is a %s: %w", path, fileType(fi.Mode()), ErrNotRegular)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	return regularOnly(f)
}
