package gitrepo

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestGuardedTransportPushReport: the answer to a push, which go-git reads
// into memory, is cut off at reportLimit; the pack a fetch streams to disk
// is not.
func TestGuardedTransportPushReport(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := []byte(strings.Repeat("r", 1<<16))
		for range 2*reportLimit/len(chunk) + 1 {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	client := &http.Client{Transport: guardedTransport{base: baseHTTPTransport()}}
	for _, tc := range []struct {
		path    string
		wantN   int64
		wantErr error
	}{
		{path: "/org/app/git-receive-pack", wantN: reportLimit, wantErr: errReportTooLarge},
		{path: "/org/app/git-upload-pack", wantN: int64(2*reportLimit/(1<<16)+1) << 16},
	} {
		res, err := client.Post(srv.URL+tc.path, "application/x-git-request", strings.NewReader("0000"))
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if n != tc.wantN || !errors.Is(err, tc.wantErr) {
			t.Errorf("POST %s: read %d bytes, %v; want %d, %v", tc.path, n, err, tc.wantN, tc.wantErr)
		}
	}
}
