// Package books owns the accounts of one loadgen run: for each phase (warm-up
// and measured, by intended send time) how many fires the schedule made due
// and what became of each (sent, skipped, send failed), how every request
// sent ended (matched, timed out, or still pending), the responses that
// matched nothing (late, duplicate, implausible, unknown, malformed) and the
// inbound messages too large to read (oversized), the
// payload bytes, the latency histograms, the connection events, and the
// run's phase. Responses are classified here (OnResponse, decoded once).
//
// Two identities hold exactly, per phase (report.Counts):
//
//	scheduled == sent + skipped + send failed
//	sent      == matched + timed out + still pending
//
// Everything is atomic counters written by the run's goroutines (the
// publishers, the connections' reading goroutines, the timeout sweep); a
// Snapshot is what observers read, never the counters themselves.
package books

import (
	"log/slog"
	"sync/atomic"
	"time"

	"golang.org/x/sys/cpu"
	"golang.org/x/time/rate"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/latency"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/metrics"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/wire"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/config"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/pending"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/report"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/schedule"
)

// Phases of the counts: a request belongs to the warm-up when its intended
// send time is before WARMUP.
const (
	Warmup   = 0
	Measured = 1
)

// counters are the counts of one phase. Every scheduled fire is exactly one
// of sent, skipped and sendFailed; every request sent ends in exactly one of
// matched and timedOut, or is still pending. firstFires counts the clients'
// first scheduled fires (clients that fired).
type counters struct {
	scheduled, sent, matched, timedOut, skipped, sendFailed atomic.Uint64
	late, duplicate, implausible, firstFires                atomic.Uint64
	_                                                       cpu.CacheLinePad // no false sharing between phases
}

// stripe is a counter on its own cache line.
type stripe struct {
	n atomic.Uint64
	_ cpu.CacheLinePad
}

// Histograms are the run's latency histograms (HDR, striped by goroutine).
type Histograms struct {
	// Latency is the round trip of matched requests after WARMUP, from the
	// intended send time (with an interval histogram for progress lines).
	Latency *latency.Recorder
	// ScheduleLag is how late requests left against their intended time.
	ScheduleLag *latency.Recorder
	// WorkerQueue and WorkerProcess are what worker-v2 stamped into its
	// envelope responses: queue wait and processing time.
	WorkerQueue, WorkerProcess *latency.Recorder
	// BrokerNetwork is what is left of each matched round trip (after
	// WARMUP) once the request's own schedule lag and, when the responder
	// stamped them, its queue wait and processing are taken out: the
	// broker and the network both ways (and, unstamped, the service).
	BrokerNetwork *latency.Recorder
}

// Books are the accounts of one run.
type Books struct {
	sched     *schedule.Schedule
	table     *pending.Table
	requester *wire.Requester
	log       *slog.Logger
	runID     uint32
	offset, n uint32
	// warmup, ramp, end (DURATION, or never) and timeout, ns.
	warmup, ramp, end, timeout int64

	epoch             time.Time // set before started
	started, stopping atomic.Bool
	finished          atomic.Bool
	fired             atomic.Uint64 // fires the scheduler has processed

	counts                        [2]counters
	unknown, malformed, oversized atomic.Uint64
	otherRun                      atomic.Uint64 // unknown ones with another run id (report.Counts.UnknownOtherRun)
	bytesOut                      atomic.Uint64 // request payload bytes sent (queued)
	bytesIn                       [8]stripe     // response payload bytes, striped by connection

	// Hist are the run's histograms.
	Hist Histograms
	// Sends remembers when the loop took each run of fires (dispatch
	// records, OnResponse reads): a response's own schedule lag.
	Sends *Sends
	// Conns counts the connections' state changes: its State is the pool's
	// Options.OnState.
	Conns *metrics.ConnEvents

	implausibleLog rate.Sometimes // the implausible-response log, at most every 1 s
	otherRunLog    rate.Sometimes // the another-run log: the first, then at most every 10 s
	instanceID     string
}

// New returns the empty books of a run of res over sched, with the pending
// table of its outstanding requests.
func New(res *config.Resolved, sched *schedule.Schedule, table *pending.Table, log *slog.Logger) *Books {
	stripes := min(res.Connections, 8)
	b := &Books{
		sched: sched, table: table, requester: res.Requester, log: log,
		runID: res.RunID, offset: res.Offset, instanceID: res.InstanceID, n: uint32(res.VirtualClients),
		warmup: int64(res.Warmup), ramp: int64(res.RampUp), end: int64(res.Duration), timeout: int64(res.RequestTimeout),
		Hist: Histograms{
			Latency: latency.NewIntervalRecorder(stripes), ScheduleLag: latency.NewRecorder(min(res.PublishWorkers, 8)),
			WorkerQueue: latency.NewRecorder(stripes), WorkerProcess: latency.NewRecorder(stripes),
			BrokerNetwork: latency.NewRecorder(stripes),
		},
		Sends: newSends(res.RequestTimeout, sched.Grid()),
		Conns: metrics.NewConnEvents(res.Connections),
	}
	if b.end == 0 {
		b.end = 1<<63 - 1
	}
	b.implausibleLog.Interval = time.Second
	b.otherRunLog.Interval = 10 * time.Second
	return b
}

// Start marks the start of sending: times are counted from epoch on.
func (b *Books) Start(epoch time.Time) {
	b.epoch = epoch
	b.started.Store(true)
}

// Epoch returns when sending started (zero before Start).
func (b *Books) Epoch() time.Time {
	if !b.started.Load() {
		return time.Time{}
	}
	return b.epoch
}

// Now returns nanoseconds since the epoch (monotonic); valid after Start.
func (b *Books) Now() int64 { return int64(time.Since(b.epoch)) }

// StopSending marks sending as ended before DURATION (the phase is
// draining).
func (b *Books) StopSending() { b.stopping.Store(true) }

// Finish marks the run as finished: the transport is closed and no handler
// runs any more, so the counts are final.
func (b *Books) Finish() { b.finished.Store(true) }

// PhaseOf returns the phase of the counts of a request intended at (ns after
// the epoch): Warmup or Measured.
func (b *Books) PhaseOf(at int64) int {
	if at < b.warmup {
		return Warmup
	}
	return Measured
}

// Tally is what one publishing pass did in one phase, added to the books
// at once (Add).
type Tally struct{ Scheduled, Sent, Skipped, Failed, First uint64 }

// Add adds t to the counts of phase.
func (b *Books) Add(phase int, t *Tally) {
	c := &b.counts[phase]
	add := func(dst *atomic.Uint64, v uint64) {
		if v > 0 {
			dst.Add(v)
		}
	}
	add(&c.scheduled, t.Scheduled)
	add(&c.sent, t.Sent)
	add(&c.skipped, t.Skipped)
	add(&c.sendFailed, t.Failed)
	add(&c.firstFires, t.First)
}

// AddRequestBytes counts n payload bytes of requests sent.
func (b *Books) AddRequestBytes(n uint64) { b.bytesOut.Add(n) }

// SetFired records that the scheduler has processed every fire before f.
func (b *Books) SetFired(f uint64) { b.fired.Store(f) }

// Expire ends every outstanding request of client with a sequence number up
// to seq (their deadlines have passed): each is timed out.
func (b *Books) Expire(client, seq uint32) {
	b.table.Expire(client, seq, func(s uint32) {
		b.counts[b.PhaseOf(b.sched.TimeOf(client, s))].timedOut.Add(1)
	})
}

// Pending returns sent − matched − timed out over both phases.
func (b *Books) Pending() int64 {
	var p int64
	for i := range b.counts {
		c := &b.counts[i]
		p += int64(c.sent.Load()) - int64(c.matched.Load()) - int64(c.timedOut.Load())
	}
	return max(p, 0)
}

// phaseCounts returns the counts of phase (StillPending, Unknown, Malformed and
// Oversized left 0). The counters are read effects first, causes last — how requests
// ended, then how fires went (sent, skipped, failed), then the fires made due
// — so that, although they are read one by one while the run goes on, no
// count read is ahead of the count it comes from: scheduled ≥ sent + skipped
// + send failed always holds in a snapshot (Add adds scheduled first), and
// matched + timed out ≤ sent except for the requests of a publishing pass
// whose sends are not added yet (ratios are clamped to 1 by their readers).
func (b *Books) phaseCounts(phase int) report.Counts {
	c := &b.counts[phase]
	var r report.Counts
	r.ResponsesMatched, r.Timeouts = c.matched.Load(), c.timedOut.Load()
	r.Late, r.Duplicate, r.Implausible = c.late.Load(), c.duplicate.Load(), c.implausible.Load()
	r.SendFailed, r.Skipped, r.RequestsSent = c.sendFailed.Load(), c.skipped.Load(), c.sent.Load()
	r.Scheduled = c.scheduled.Load()
	return r
}

func (b *Books) responseBytes() uint64 {
	var n uint64
	for i := range b.bytesIn {
		n += b.bytesIn[i].n.Load()
	}
	return n
}

// Snapshot is the state of a run at one moment: what every observer (the
// metrics, the live stats, /health, the progress line) reads.
type Snapshot struct {
	Phase Phase
	// Started: sending has started, at Epoch, Elapsed ago.
	Started bool
	Epoch   time.Time
	Elapsed time.Duration
	// Counts are both phases added, with the responses that matched nothing
	// (StillPending stays 0: Pending is sent − matched − timed out).
	report.Counts
	// Warmup is the warm-up phase's part of Counts: the requests intended
	// before WARMUP (Measured returns the rest).
	Warmup report.Counts

	Pending                     int64
	RequestBytes, ResponseBytes uint64
	// Connection changes over the run: connections made (the first ones
	// included), lost while in use, and made again after a loss.
	Connects, ConnectionLosses, Reconnects uint64
	// ConnectionsUp and ConnectionsSuspect are the transport's (filled by
	// the run loop, which holds it).
	ConnectionsUp, ConnectionsSuspect int
	// Broker is what the broker announced when the connections connected
	// (the transport's, filled by the run loop; nil while connecting).
	Broker *mqttconn.Capabilities
}

// Snapshot returns the books now.
func (b *Books) Snapshot() Snapshot {
	s := Snapshot{
		Phase: b.Phase(), Started: b.started.Load(),
		RequestBytes: b.bytesOut.Load(), ResponseBytes: b.responseBytes(),
		Connects: b.Conns.Connects(), ConnectionLosses: b.Conns.Losses(), Reconnects: b.Conns.Reconnects(),
	}
	if s.Started {
		s.Epoch, s.Elapsed = b.epoch, time.Since(b.epoch)
	}
	s.Warmup = b.phaseCounts(Warmup)
	s.Counts = s.Warmup
	s.Counts.Add(b.phaseCounts(Measured))
	s.Unknown, s.Malformed, s.UnknownOtherRun = b.unknown.Load(), b.malformed.Load(), b.otherRun.Load()
	// Pending from the same counts (not read again), so the snapshot agrees
	// with itself.
	s.Pending = max(int64(s.RequestsSent)-int64(s.ResponsesMatched)-int64(s.Timeouts), 0)
	s.Oversized = b.oversized.Load()
	return s
}

// Measured returns the measured phase's part of the snapshot's counts, as
// the report counts it: Counts less Warmup, with every response that matched
// no request at all (unknown, malformed, oversized: they have no intended
// send time).
func (s *Snapshot) Measured() report.Counts {
	m := s.Counts
	w := &s.Warmup
	m.Scheduled -= w.Scheduled
	m.RequestsSent -= w.RequestsSent
	m.ResponsesMatched -= w.ResponsesMatched
	m.Timeouts -= w.Timeouts
	m.StillPending -= w.StillPending
	m.Skipped -= w.Skipped
	m.SendFailed -= w.SendFailed
	m.Late -= w.Late
	m.Duplicate -= w.Duplicate
	m.Implausible -= w.Implausible
	return m
}

// Final are the books of a finished run, for its report.
type Final struct {
	// Measured and Warmup are the counts of each phase, with the requests
	// still pending; Measured also holds the responses that matched nothing.
	Measured, Warmup report.Counts
	// ClientsFired is how many clients had a scheduled fire (both phases).
	ClientsFired                uint64
	RequestBytes, ResponseBytes uint64
}

// Final returns the final books. Call it once the transport is closed (no
// handler runs): the requests still outstanding are counted by a full scan of
// the pending table, so sent == matched + timed out + still pending holds
// exactly.
func (b *Books) Final() Final {
	f := Final{Measured: b.phaseCounts(Measured), Warmup: b.phaseCounts(Warmup)}
	var still [2]uint64
	b.table.Outstanding(func(client, seq uint32) {
		still[b.PhaseOf(b.sched.TimeOf(client, seq))]++
	})
	f.Measured.StillPending, f.Warmup.StillPending = still[Measured], still[Warmup]
	f.Measured.Unknown, f.Measured.Malformed, f.Measured.UnknownOtherRun = b.unknown.Load(), b.malformed.Load(), b.otherRun.Load()
	f.Measured.Oversized = b.oversized.Load()
	f.ClientsFired = b.counts[Warmup].firstFires.Load() + b.counts[Measured].firstFires.Load()
	f.RequestBytes, f.ResponseBytes = b.bytesOut.Load(), b.responseBytes()
	return f
}
