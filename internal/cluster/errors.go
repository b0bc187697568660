package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	utilnet "k8s.io/apimachinery/pkg/util/net"
)

// UnreachableError says the API server could not be reached at all; no
// object was compared.
type UnreachableError struct {
	Host string
	Err  error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach the cluster at %s: %v; check --kubeconfig and --context and that the API server is up (render works offline)", e.Host, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

func isConflict(err error) bool {
	var ce *ConflictError
	return errors.As(err, &ce)
}

// isUnreachable reports whether err is a transport failure (connection
// refused or reset, a broken stream, a dial or TLS error) rather than an
// answer of the API server; an ended context is not one. Shared by dry-run
// and apply.
func isUnreachable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		return false
	}
	var ue *url.Error
	var ne net.Error
	return errors.As(err, &ue) || errors.As(err, &ne) || utilnet.IsConnectionRefused(err) ||
		utilnet.IsConnectionReset(err) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}

// isTransient reports errors worth polling through.
func isTransient(err error) bool {
	return isUnreachable(err) || apierrors.IsTooManyRequests(err) || apierrors.IsServerTimeout(err) ||
		apierrors.IsTimeout(err) || apierrors.IsServiceUnavailable(err)
}
