package books

import (
	"fmt"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/wire"
)

// OnOversized counts an inbound message skipped for being larger than the
// connections' frame limit (mqttconn.Options.OnOversized).
func (b *Books) OnOversized(int, mqttconn.Oversized) { b.oversized.Add(1) }

// OnResponse classifies one response (mqttconn.Options.OnMessage). It runs
// on a connection's reading goroutine and never blocks. The response is
// decoded once (wire.Requester.Read), then it is:
//
//   - malformed: not a response of the correlation mode;
//   - unknown: another run's (also counted other-run: another loadgen with
//     our INSTANCE_ID), a client not ours, a sequence number the
//     schedule has not reached, an envelope whose intended time is not the
//     request's, or anything before sending started;
//   - implausible: the worker's stamps claim more than the round trip;
//   - matched: it ends an outstanding request within REQUEST_TIMEOUT (its
//     round trip, for the envelope the worker's stamps, and what is left
//     once its own schedule lag (Sends) and those stamps are taken out,
//     are recorded after WARMUP);
//   - late (and timed out): it ends an outstanding request after its
//     deadline, before the sweep did; late alone: the sweep had ended it;
//   - duplicate: its request was already matched.
func (b *Books) OnResponse(conn int, m *mqttconn.Message) {
	b.bytesIn[conn&7].n.Add(uint64(len(m.Payload)))
	var rc wire.Received
	if !b.requester.Read(m, &rc) {
		b.malformed.Add(1)
		return
	}
	k := rc.Key()
	client := k.ClientID - b.offset
	if k.RunID != b.runID {
		b.otherRun.Add(1)
		b.unknown.Add(1)
		b.warnOtherRun(k.RunID)
		return
	}
	if !b.started.Load() || client >= b.n {
		b.unknown.Add(1) // before the start: the epoch is not set yet
		return
	}
	now := b.Now()
	at := b.sched.TimeOf(client, k.Seq)
	if rc.Stamped && rc.Intended != at {
		b.unknown.Add(1)
		return
	}
	c := &b.counts[b.PhaseOf(at)]
	rtt := now - at
	// The worker's queue wait and processing happen inside the round trip: a
	// response claiming more was not made by a worker for this request
	// (forged, or a foreign responder on our response topics). worker-v2's
	// two stamps are disjoint readings of one clock, truncated to µs, so a
	// real response never claims more than the round trip; the slack only
	// keeps a responder that rounds its stamps up from being flagged.
	claimed := (int64(rc.QueueUS) + int64(rc.ProcessUS)) * int64(time.Microsecond)
	if claimed > rtt+int64(implausibleSlack) {
		c.implausible.Add(1)
		b.warnImplausible(client, k.Seq, rc.QueueUS, rc.ProcessUS, rtt)
		return
	}
	if b.table.Match(client, k.Seq) {
		if rtt > b.timeout {
			// Arrived after its deadline, before the sweep saw it: timed out.
			c.timedOut.Add(1)
			c.late.Add(1)
			return
		}
		c.matched.Add(1)
		if at >= b.warmup {
			b.Hist.Latency.Record(conn, time.Duration(rtt))
			rest := rtt
			if rc.Stamped {
				b.Hist.WorkerQueue.Record(conn, time.Duration(rc.QueueUS)*time.Microsecond)
				b.Hist.WorkerProcess.Record(conn, time.Duration(rc.ProcessUS)*time.Microsecond)
				rest -= claimed
			}
			if sent, ok := b.Sends.SentAt(b.sched.FireIndex(client, k.Seq)); ok {
				b.Hist.BrokerNetwork.Record(conn, time.Duration(max(rest-(sent-at), 0)))
			}
		}
		return
	}
	switch {
	case uint64(k.Seq)*uint64(b.n) >= b.fired.Load()+uint64(b.n):
		b.unknown.Add(1) // a sequence number the schedule has not reached
	case rtt > b.timeout:
		c.late.Add(1)
	default:
		c.duplicate.Add(1)
	}
}

// OnUnsent takes back a request whose frame the connection discarded
// unwritten (mqttconn.Options.OnUnsent: connection lost, or still buffered
// when the pool closed): it was counted sent when queued, and is send
// failed. A request that already ended (expired while its frame waited)
// keeps its outcome.
func (b *Books) OnUnsent(_ int, m *mqttconn.Message) {
	k, ok := b.requester.RequestKey(m)
	if !ok || k.RunID != b.runID {
		return
	}
	client := k.ClientID - b.offset
	if client >= b.n || !b.table.Release(client, k.Seq) {
		return
	}
	c := &b.counts[b.PhaseOf(b.sched.TimeOf(client, k.Seq))]
	c.sent.Add(^uint64(0)) // −1
	c.sendFailed.Add(1)
	b.bytesOut.Add(-uint64(len(m.Payload)))
}

// implausibleSlack is how much worker-stamped time may exceed the measured
// round trip before a response counts implausible. A forgery that replays
// or invents stamps claims far more; warnImplausible logs what was claimed.
// (Flags of real responses seen earlier, about one in 10^4..10^6 under
// load, were worker-v2 counting the time between two clock readings in both
// stamps; with one reading, 170,000 responses of a starved worker claimed
// nothing beyond their round trips even with no slack at all.)
const implausibleSlack = time.Millisecond

// warnImplausible logs an implausible response, at most once a second: what
// the responder claimed (queue wait and processing, µs) against the round
// trip measured here (ns).
func (b *Books) warnImplausible(client, seq, queueUS, processUS uint32, rtt int64) {
	b.implausibleLog.Do(func() {
		b.log.Warn("implausible response: the responder claims more time than the whole round trip (forged, or a foreign responder; logged at most every 1s, see implausible)",
			"client", client, "seq", seq, "queue_ms", float64(queueUS)/1e3, "process_ms", float64(processUS)/1e3, "round_trip_ms", float64(rtt)/1e6)
	})
}

// warnOtherRun logs a response of another run on our response topics: the
// first at once, then at most every 10 s.
func (b *Books) warnOtherRun(runID uint32) {
	b.otherRunLog.Do(func() {
		b.log.Warn("a response for this instance carried another run id: is another loadgen using the same INSTANCE_ID? Each then gets the other's responses (counted unknown); give every loadgen its own INSTANCE_ID",
			"instance_id", b.instanceID, "run_id", fmt.Sprintf("%08x", b.runID), "other_run_id", fmt.Sprintf("%08x", runID), "other_run_responses", b.otherRun.Load())
	})
}
