// Package dispatch owns sending: the run loop that wakes when fires of the
// schedule fall due, hands them to the publishers (which claim a pending
// slot, encode the request and queue it on its client's connection), and
// sweeps the deadlines of requests sent, until sending ends and the drain is
// over. Counts go to the books.
//
// Goroutines: the loop (which publishes a small tick itself) plus
// PUBLISH_WORKERS − 1 owners of connections, used only when a tick holds
// more than BATCH_SIZE fires (see publishers). Nothing scales with the
// number of virtual clients.
//
// Resolution: the schedule's intended times lie on a grid (schedule.OnGrid,
// DefaultGrid), and the loop sleeps until exactly the next time it must act
// (the next fire's cell, the next deadline, the end), with a Waiter that
// keeps that time: PreciseWaiter's on Linux times the last 2 ms with a timerfd
// read through the runtime's poller. It then sends every fire
// that fell due (catch-up after a stall: late fires are measured from their
// intended time like any other, so coordinated omission cannot hide a
// stall). Each fire's lateness (its schedule lag, now − intended) is
// recorded, and the books keep when each run of fires left (books.Sends) so
// a response's own lag can be taken out of its round trip.
//
// The arithmetic of the choice, at rate R and grid G: wakes per second ≤
// min(R, 1/G) (1,000 at G = 1 ms, as many as the 1 ms tick this replaces);
// lag = the kernel's wake-up latency plus the time to queue the cell's R·G
// fires (about 1 µs each), instead of up to G + 0.1 ms; the timerfd adds two
// or three system calls per wake (a few µs: well under 0.1 µs per request
// at 20k req/s). Waking per fire
// (G → 0) would cost one wake per request (20,000/s at 20k req/s, several µs
// of CPU each) for no gain the report could show; spinning before each wake
// would cost a core.
package dispatch

import (
	"context"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/books"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/config"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/pending"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/schedule"
)

// DefaultGrid is the grid the engine lays the schedule on (schedule.OnGrid):
// the loop wakes at most once per grid cell.
const DefaultGrid = time.Millisecond

// drainPoll is how often the loop looks whether anything is still pending
// once sending has ended, so the run ends as soon as nothing is.
const drainPoll = 10 * time.Millisecond

// Params is what a Dispatcher sends with.
type Params struct {
	Res       *config.Resolved
	Schedule  *schedule.Schedule
	Table     *pending.Table
	Books     *books.Books
	Transport mqttconn.Transport
	// Wait sleeps the loop until its next wake (PreciseWaiter's when nil;
	// TimerWait under testing/synctest, whose clock the kernel's timers do
	// not see).
	Wait Waiter
}

// Dispatcher sends one run's requests.
type Dispatcher struct {
	p            Params
	timeout, end int64 // ns; end: DURATION, or never
}

// New returns a dispatcher. The books must have been started (Start).
func New(p Params) *Dispatcher {
	d := &Dispatcher{p: p, timeout: int64(p.Res.RequestTimeout), end: int64(p.Res.Duration)}
	if d.end == 0 {
		d.end = 1<<63 - 1
	}
	return d
}

// Run sends the scheduled requests and sweeps timeouts until the sending
// phase ends (DURATION, stop closed, or ctx cancelled: a graceful stop), then
// keeps sweeping until nothing is pending or REQUEST_TIMEOUT has passed. It
// returns when sending ended, ns after the epoch.
func (d *Dispatcher) Run(ctx context.Context, stop <-chan struct{}) int64 {
	var (
		sched, b     = d.p.Schedule, d.p.Books
		fNext, gNext uint64 // next fire to send; next fire whose deadline to check
		sending      = true
		sendEnd      int64
		pub          = newPublishers(d)
	)
	defer pub.close()
	wait := d.p.Wait
	if wait == nil {
		w, release := PreciseWaiter()
		defer release()
		wait = w
	}
	send := func(upTo, now int64) {
		if fEnd := sched.FiresUpTo(upTo); fEnd > fNext {
			b.Sends.Record(fEnd, now) // before a response can arrive
			pub.send(fNext, fEnd, now)
			fNext = fEnd
			b.SetFired(fNext)
		}
	}
	for {
		now := b.Now()
		// Deadline checks first (fire g's request expires at time(g) + timeout),
		// so a slot whose request expires now is free for the client's next fire.
		gEnd := min(sched.FiresUpTo(now-d.timeout), fNext)
		for ; gNext < gEnd; gNext++ {
			client, seq, _ := sched.Fire(gNext)
			b.Expire(client, seq)
		}
		if sending {
			// Every fire due before the end is sent (late fires are
			// measured from their intended time like any other).
			upTo := now
			if now >= d.end {
				sending, sendEnd, upTo = false, d.end, d.end-1
			}
			send(upTo, now)
		}
		if !sending && (b.Pending() == 0 || gNext >= fNext || now > sendEnd+d.timeout+int64(time.Second)) {
			return sendEnd
		}
		// Sleep until the next fire's cell, deadline or end: exactly then.
		wake := int64(1<<63 - 1)
		if sending {
			wake = min(sched.FireTime(fNext), d.end)
		}
		if gNext < fNext {
			wake = min(wake, sched.FireTime(gNext)+d.timeout)
		}
		if !sending {
			wake = min(wake, now+int64(drainPoll))
		}
		stopNow := wait(ctx, stop, time.Duration(wake-b.Now()))
		if stopNow {
			// Seen once: stop and ctx are not waited on again.
			stop, ctx = nil, context.Background()
		}
		if stopNow && sending {
			// An early stop: the fires due before it are still sent.
			sending, sendEnd = false, b.Now()
			send(sendEnd-1, sendEnd)
		}
	}
}
