package dispatch

import (
	"context"
	"time"
)

// A Waiter sleeps the loop until its next wake, d from now, or until stop is
// closed or ctx ends, whichever comes first; it reports whether it returned
// for stop or ctx (then the loop stops sending). It may return a little
// after d, never before.
type Waiter func(ctx context.Context, stop <-chan struct{}, d time.Duration) (stopped bool)

// TimerWait waits on a Go timer. Exact under testing/synctest; on a real
// clock the runtime polls timers at millisecond resolution when the process
// is idle (on Linux epoll_wait takes a timeout in whole milliseconds), so a
// wait of less than a millisecond can last up to one.
func TimerWait(ctx context.Context, stop <-chan struct{}, d time.Duration) bool {
	if d <= 0 {
		return stopping(ctx, stop)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return false
	case <-stop:
		return true
	case <-ctx.Done():
		return true
	}
}

// stopping reports, without waiting, whether stop is closed or ctx ended.
func stopping(ctx context.Context, stop <-chan struct{}) bool {
	select {
	case <-stop:
		return true
	case <-ctx.Done():
		return true
	default:
		return false
	}
}
