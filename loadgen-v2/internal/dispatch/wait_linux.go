//go:build linux

package dispatch

import (
	"context"
	"errors"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// preciseTail is the part of a wait PreciseWaiter times with a timerfd: Go
// timers may fire up to about a millisecond late (TimerWait), so the last
// two milliseconds before a wake are timed by the kernel.
const preciseTail = 2 * time.Millisecond

// PreciseWaiter returns the loop's Waiter on Linux and the function that
// releases it: a Go timer (which stop and ctx interrupt) for all but the
// last preciseTail of a wait, then a read of a timerfd of its own armed for
// the rest. A timerfd is an hrtimer without slack, and its read parks the
// goroutine in the runtime's network poller like a socket's, so the loop
// wakes within the kernel's wake-up latency (tens of µs on a busy machine)
// of its next grid time instead of up to 1 ms after, at the cost of two or
// three system calls per wake and no thread of its own. stop and ctx are
// checked after the tail: it lasts at most preciseTail. Where the kernel
// refuses a timerfd it is TimerWait.
//
// (A nanosleep on a thread locked to the loop, with its timer slack at
// 1 ns, kept the same time but cost the loadgen a third more CPU per
// request at 20k req/s: every goroutine the locked loop woke had to run on
// another thread, and TRANSPORT=paho's per-publish hand-off paid that on
// every request.)
func PreciseWaiter() (Waiter, func()) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return TimerWait, func() {}
	}
	t := &timerFD{fd: fd, file: os.NewFile(uintptr(fd), "dispatch-timerfd")}
	wait := func(ctx context.Context, stop <-chan struct{}, d time.Duration) bool {
		if long := d - preciseTail; long > 0 {
			if TimerWait(ctx, stop, long) {
				return true
			}
			d = preciseTail // at most: the timer may have fired late
		}
		if d > 0 {
			t.sleep(d)
		}
		return stopping(ctx, stop)
	}
	return wait, func() { _ = t.file.Close() }
}

// timerFD is a non-blocking timerfd read through the runtime's poller, by
// one goroutine at a time (its loop).
type timerFD struct {
	fd   int
	file *os.File
	buf  [8]byte
}

// sleep arms the timer for d and reads its expiry count.
func (t *timerFD) sleep(d time.Duration) {
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(d))}
	if err := unix.TimerfdSettime(t.fd, 0, &spec, nil); err != nil {
		time.Sleep(d)
		return
	}
	for {
		_, err := t.file.Read(t.buf[:])
		if err == nil || !errors.Is(err, unix.EINTR) {
			return
		}
	}
}
