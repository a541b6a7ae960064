package dispatch

import (
	"context"
	"testing"
	"time"
)

// TestPreciseWaiterNeverEarly: the real clock's waiter never returns before
// the time asked for (short waits on the timerfd, longer ones on a Go timer
// first), and a stop ends a long wait and says so. Only lower bounds and
// events are asserted: how late it wakes is measured by scripts, not here.
func TestPreciseWaiterNeverEarly(t *testing.T) {
	wait, release := PreciseWaiter()
	defer release()
	for _, d := range []time.Duration{0, 50 * time.Microsecond, 700 * time.Microsecond, 3 * time.Millisecond} {
		for range 20 {
			start := time.Now()
			if wait(context.Background(), nil, d) {
				t.Fatalf("wait(%v) reported a stop", d)
			}
			if got := time.Since(start); got < d {
				t.Fatalf("wait(%v) returned after %v", d, got)
			}
		}
	}
	stop := make(chan struct{})
	close(stop)
	if !wait(context.Background(), stop, time.Hour) {
		t.Error("a closed stop did not end an hour's wait")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if !wait(ctx, nil, 100*time.Microsecond) {
		t.Error("a cancelled ctx is not reported after a short wait")
	}
}
