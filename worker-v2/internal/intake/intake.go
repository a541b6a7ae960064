// Package intake owns the request side of worker-v2: the handler every MQTT
// connection runs for each inbound message, and the bounded queue between
// the connections and the workers.
//
// Handle runs on the connection's single dispatch goroutine (mqttconn's
// OnMessage). It checks the request for the correlation mode and keeps what
// its reply needs (package reply: the envelope; or the MQTT 5 Response Topic
// and Correlation Data; or the JSON id and reply topic — a reply topic that
// is no publishable topic name, with a wildcard, NUL or bad UTF-8 that would
// make the broker close the connection, is malformed), copies it into a
// buffer of the queue's free list (the message is only valid during the
// handler) and puts {buffer, enqueue time} on the queue. It allocates nothing
// once the free list is warm.
//
// # Queue memory
//
// A slot is 16 bytes (a buffer pointer and the enqueue time in nanoseconds),
// allocated up front: 1.6 MB for the default QUEUE_CAP of 100,000. Each
// queued message also holds its payload copy; the queue is bounded in those
// bytes too, by QUEUE_MAX_BYTES (64 MiB by default, counted as the buffers'
// capacity): a message that would take the queue past it is treated like one
// beyond QUEUE_CAP (dropped, or waited for), except into an empty queue, so
// one message larger than the bound still passes. Expect the process to hold
// up to about twice QUEUE_MAX_BYTES for the queue under the default GOGC
// (garbage not yet collected; measured ~1.37 MB of RSS per queued 1 MiB
// request): set GOMEMLIMIT. Buffers come back to a free list of at most 4096
// buffers of at most 4 KiB (16 MiB) when a message is replied to, dropped or
// abandoned; larger ones are left to the collector.
//
// # Back-pressure
//
// It is the bounded queue, and what DROP_ON_FULL does when it is full. With
// true (the default) a full queue (in items or bytes) drops the request at
// once and counts it as dropped_full: the loss is visible and the connection
// keeps reading. With false the dispatch goroutine holds the message
// (counted blocked) until a worker takes an item and there is room. The
// connection then stops reading: its read buffer and then the socket's
// receive window fill, and the broker can no longer write to this
// connection. The broker then queues and, past its limits, drops — where the
// worker cannot count it:
//
//   - Mosquitto queues QoS 0 messages for a connected client up to
//     max_queued_messages (default 1000) and silently drops the rest
//     ($SYS/broker/messages/dropped); with $share it keeps picking the blocked
//     member round-robin, so a stalled worker instance still gets its share.
//   - EMQX queues per session up to mqtt.max_mqueue_len (default 1000) and
//     drops beyond it (the oldest first, by default);
//     force_shutdown may kill a connection whose process mailbox grows too
//     large. Its $share strategies (round_robin, random, ...) ignore backlog.
//   - mochi (the embedded broker) drops messages for a client whose outbound
//     queue (MaximumClientWritesPending; 8192 by default, 65536 in
//     internal/broker) is full, counting them in OnPublishDropped.
//
// A block also stops the connection from reading PINGRESP: if it lasts
// longer than the keepalive plus ping timeout, the connection is dropped and
// reconnected with a clean session, and the broker discards whatever it had
// queued. A held message is released (and counted abandoned) when the queue
// is closed at shutdown.
//
// On the reply side the bound is the connection's write buffer
// (mqttconn's MaxPendingBytes, 1 MiB): a reply that does not fit fails at
// once (reply_failed), it never waits.
package intake

import (
	"sync/atomic"

	"golang.org/x/sys/cpu"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/wire"
)

// connCounts are the counters of one connection, written only by its
// dispatch goroutine.
type connCounts struct {
	received, malformed, refused, dropped, abandoned atomic.Uint64
	blocked                                          atomic.Int64 // 1 while the dispatch goroutine holds a message waiting for room
	emptyAt                                          atomic.Int64 // last time it found the queue empty when enqueuing (the intake's clock)
	_                                                cpu.CacheLinePad
}

// Intake checks requests and queues them. Handle is its mqttconn
// MessageHandler.
type Intake struct {
	queue      *Queue
	rules      wire.Responder
	dropOnFull bool
	clock      func() int64
	conns      []connCounts
}

// New returns the intake of connections connections feeding q. rules say
// what a request must carry; dropOnFull is DROP_ON_FULL; clock returns the
// time in nanoseconds (monotonic) that items are stamped with.
func New(q *Queue, connections int, rules wire.Responder, dropOnFull bool, clock func() int64) *Intake {
	return &Intake{queue: q, rules: rules, dropOnFull: dropOnFull, clock: clock, conns: make([]connCounts, connections)}
}

// Handle is the mqttconn.MessageHandler of connection conn: it counts the
// message received, then queues what its reply needs, or counts it
// malformed, refused (its reply topic is not allowed: REPLY_TOPIC_ALLOW),
// dropped_full or (at shutdown) abandoned.
func (in *Intake) Handle(conn int, m *mqttconn.Message) {
	st := &in.conns[conn]
	st.received.Add(1)
	q := in.queue
	// The message is only valid during this call (mqttconn parses QoS 0
	// messages in place): the queue keeps a copy of what the reply needs.
	bp := q.get()
	var ok bool
	if *bp, ok = in.rules.Pack((*bp)[:0], m); !ok {
		q.discard(&st.malformed, bp)
		return
	}
	if !in.rules.ReplyAllowed(*bp) {
		q.discard(&st.refused, bp)
		return
	}
	it := Item{buf: bp, enqueued: in.clock()}
	if in.dropOnFull {
		if !q.reserve(it.size()) {
			q.discard(&st.dropped, bp)
			return
		}
		in.markEmpty(st, it)
		select {
		case q.items <- it:
		default:
			q.unreserve(it, &st.dropped)
		}
		return
	}
	// DROP_ON_FULL=false: hold the message (counted blocked) until there is
	// room in bytes, then in slots.
	st.blocked.Store(1)
	defer st.blocked.Store(0)
	if !q.waitRoom(it.size()) {
		q.discard(&st.abandoned, bp)
		return
	}
	in.markEmpty(st, it)
	select {
	case q.items <- it:
	case <-q.closed:
		q.unreserve(it, &st.abandoned)
	}
}

// markEmpty records that it is about to enter an empty queue: every message
// queued later is younger, which bounds the oldest queued age.
func (in *Intake) markEmpty(st *connCounts, it Item) {
	if len(in.queue.items) == 0 {
		st.emptyAt.Store(it.enqueued)
	}
}

func (in *Intake) sum(f func(*connCounts) uint64) uint64 {
	var n uint64
	for i := range in.conns {
		n += f(&in.conns[i])
	}
	return n
}

// Received returns the messages received on every connection.
func (in *Intake) Received() uint64 {
	return in.sum(func(c *connCounts) uint64 { return c.received.Load() })
}

// Malformed returns the messages that were no request in the correlation
// mode (wire.Responder.Pack refused them).
func (in *Intake) Malformed() uint64 {
	return in.sum(func(c *connCounts) uint64 { return c.malformed.Load() })
}

// Refused returns the requests whose reply topic matched no filter of
// REPLY_TOPIC_ALLOW: never answered (a worker is no reflector).
func (in *Intake) Refused() uint64 {
	return in.sum(func(c *connCounts) uint64 { return c.refused.Load() })
}

// DroppedFull returns the messages dropped on a full queue (DROP_ON_FULL=true).
func (in *Intake) DroppedFull() uint64 {
	return in.sum(func(c *connCounts) uint64 { return c.dropped.Load() })
}

// Abandoned returns the messages held for room when the queue was closed.
func (in *Intake) Abandoned() uint64 {
	return in.sum(func(c *connCounts) uint64 { return c.abandoned.Load() })
}

// Blocked returns the messages held by a connection waiting for room (at
// most one per connection).
func (in *Intake) Blocked() int {
	return int(in.sum(func(c *connCounts) uint64 { return uint64(c.blocked.Load()) }))
}

// LastEmpty returns the last time (the intake's clock) a connection found
// the queue empty when it queued a message: every item queued now arrived
// later.
func (in *Intake) LastEmpty() int64 {
	var t int64
	for i := range in.conns {
		t = max(t, in.conns[i].emptyAt.Load())
	}
	return t
}
