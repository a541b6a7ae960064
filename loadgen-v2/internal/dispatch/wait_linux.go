//go:build linux

package dispatch

import (
	"context"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// preciseTail is the part of a wait PreciseWait sleeps with nanosleep: Go
// timers may fire up to about a millisecond late (TimerWait), so the last
// two milliseconds before a wake are slept on the thread itself.
const preciseTail = 2 * time.Millisecond

// PreciseWait is the loop's Waiter on Linux: a Go timer (which can be
// interrupted by stop and ctx) for all but the last preciseTail of d, then
// nanosleep(2) on the loop's own OS thread, whose timer slack Prepare has set
// to 1 ns, so the loop wakes within the kernel's wake-up latency (tens of
// µs on a busy machine) of its next grid time instead of up to 1 ms after.
// stop and ctx are checked after the nanosleep: it lasts at most
// preciseTail. Cost: one nanosleep per wake, as many wakes as before (at
// most one per grid cell that holds a fire).
func PreciseWait(ctx context.Context, stop <-chan struct{}, d time.Duration) bool {
	if long := d - preciseTail; long > 0 {
		if TimerWait(ctx, stop, long) {
			return true
		}
		d = preciseTail // at most: the timer may have fired late
	}
	if d > 0 {
		ts := unix.NsecToTimespec(int64(d))
		for unix.Nanosleep(&ts, &ts) == unix.EINTR {
		}
	}
	return stopping(ctx, stop)
}

// Prepare locks the calling goroutine (the loop) to its OS thread and sets
// the thread's timer slack to 1 ns (the default, 50 µs, would be added to
// every nanosleep); the returned function undoes the lock. Threads are not
// shared with other goroutines while locked, so the slack stays the loop's.
func Prepare() (release func()) {
	runtime.LockOSThread()
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
	return runtime.UnlockOSThread
}
