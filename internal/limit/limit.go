// Package limit bounds what is read from a peer (a Git server, a
// registry), so that a broken or hostile one cannot make a reader read or
// hold without end.
package limit

import "io"

// Body returns rc failing with err once the peer sends more than n bytes;
// a body of exactly n bytes reads whole.
func Body(rc io.ReadCloser, n int64, err error) io.ReadCloser {
	return &body{ReadCloser: rc, left: n, err: err}
}

type body struct {
	io.ReadCloser
	left int64
	err  error
}

func (b *body) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// One byte more tells a body of exactly the bound from a longer one.
		var one [1]byte
		if n, _ := b.ReadCloser.Read(one[:]); n > 0 {
			return 0, b.err
		}
		return b.ReadCloser.Read(p)
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}
