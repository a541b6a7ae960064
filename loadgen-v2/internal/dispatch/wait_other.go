//go:build !linux

package dispatch

import (
	"context"
	"time"
)

// PreciseWait is TimerWait where nanosleep and per-thread timer slack are
// not available.
func PreciseWait(ctx context.Context, stop <-chan struct{}, d time.Duration) bool {
	return TimerWait(ctx, stop, d)
}

// Prepare does nothing here.
func Prepare() (release func()) { return func() {} }
