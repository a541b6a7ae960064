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
// Resolution: the loop wakes at most once per Tick and sends every fire that
// fell due since its last wake (catch-up). A request is late by at most one
// Tick plus the wake-up delay, and that shows in the round-trip latency,
// which is measured from the exact intended time. The tick is a parameter
// (Params.Tick) so that a finer scheduler can choose its own.
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

// DefaultTick is the loop's resolution unless Params.Tick says otherwise.
const DefaultTick = time.Millisecond

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
	// Tick is the loop's resolution: it sleeps at least this long between
	// two wake-ups (DefaultTick when 0).
	Tick time.Duration
}

// Dispatcher sends one run's requests.
type Dispatcher struct {
	p                  Params
	tick, timeout, end int64 // ns; end: DURATION, or never
}

// New returns a dispatcher. The books must have been started (Start).
func New(p Params) *Dispatcher {
	if p.Tick <= 0 {
		p.Tick = DefaultTick
	}
	d := &Dispatcher{p: p, tick: int64(p.Tick), timeout: int64(p.Res.RequestTimeout), end: int64(p.Res.Duration)}
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
		timer        = time.NewTimer(time.Hour)
		pub          = newPublishers(d)
	)
	defer timer.Stop()
	defer pub.close()
	send := func(upTo, now int64) {
		if fEnd := sched.FiresUpTo(upTo); fEnd > fNext {
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
		// Sleep until the next fire or deadline, but at least one tick.
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
		wake = max(wake, now+d.tick)
		timer.Reset(time.Duration(wake - now))
		stopNow := false
		select {
		case <-timer.C:
		case <-stop:
			stop = nil // nil channel: never selected again
			stopNow = true
		case <-ctx.Done():
			ctx = context.Background()
			stopNow = true
		}
		if stopNow && sending {
			// An early stop: the fires due before it are still sent.
			sending, sendEnd = false, b.Now()
			send(sendEnd-1, sendEnd)
		}
	}
}
