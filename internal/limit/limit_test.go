package limit_test

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/kubectl-gitops/kubectl-gitops/internal/limit"
)

func TestBody(t *testing.T) {
	tooLarge := errors.New("too large")
	for _, tc := range []struct {
		name    string
		body    string
		n       int64
		wantErr bool
	}{
		{"shorter", "abc", 5, false},
		{"exactly the bound", "abcde", 5, false},
		{"one byte more", "abcdef", 5, true},
		{"much more", strings.Repeat("x", 1<<20), 1 << 10, true},
		{"empty", "", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := limit.Body(io.NopCloser(strings.NewReader(tc.body)), tc.n, tooLarge)
			got, err := io.ReadAll(b)
			switch {
			case tc.wantErr && !errors.Is(err, tooLarge):
				t.Errorf("err = %v, want %v", err, tooLarge)
			case !tc.wantErr && (err != nil || string(got) != tc.body):
				t.Errorf("read %d bytes, %v; want the whole body", len(got), err)
			case tc.wantErr && int64(len(got)) > tc.n:
				t.Errorf("read %d bytes past the bound %d", len(got), tc.n)
			}
		})
	}
}
