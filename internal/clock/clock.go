// Package clock owns waiting: a sleep that ends early when its context does,
// shared by the cluster client's polls and the forge clients' rate-limit
// waits.
package clock

import (
	"context"
	"time"
)

// Sleep waits for d, or returns ctx.Err() as soon as ctx ends.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
