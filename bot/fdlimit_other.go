//go:build !unix

package bot

// openFileLimit is unknown here: the configured bound alone applies.
func openFileLimit() uint64 { return 0 }
