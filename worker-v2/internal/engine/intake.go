package engine

import (
	"sync/atomic"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
)

// handle is the mqttconn.MessageHandler: it runs on connection conn's
// dispatch goroutine. It checks the request for the correlation mode
// (reply.Rules.Pack: the envelope and its reply topic, or the Response Topic,
// or the JSON id and reply topic) and hands a copy of what the reply needs to
// the queue; it allocates nothing once the free list is warm.
func (e *Engine) handle(conn int, m *mqttconn.Message) {
	st := &e.conns[conn]
	st.received.Add(1)
	// The message is only valid during this call (mqttconn parses QoS 0
	// messages in place): the queue keeps a copy of what the reply needs.
	bp := payloads.get()
	var ok bool
	if *bp, ok = e.rules.Pack((*bp)[:0], m); !ok {
		discard(&st.malformed, bp)
		return
	}
	it := item{buf: bp, enqueued: e.now()}
	if e.cfg.DropOnFull {
		if !e.reserve(it.size()) {
			discard(&st.dropped, bp)
			return
		}
		e.markEmpty(st, it)
		select {
		case e.queue <- it:
		default:
			e.unreserve(it, &st.dropped)
		}
		return
	}
	// DROP_ON_FULL=false: hold the message (counted blocked) until there is
	// room in bytes, then in slots.
	st.blocked.Store(1)
	defer st.blocked.Store(0)
	if !e.waitRoom(it.size()) {
		discard(&st.abandoned, bp)
		return
	}
	e.markEmpty(st, it)
	select {
	case e.queue <- it:
	case <-e.hard:
		e.unreserve(it, &st.abandoned)
	}
}

// discard ends a message that does not enter the queue: it is counted in c
// and its buffer goes back to the free list.
func discard(c *atomic.Uint64, bp *[]byte) {
	c.Add(1)
	payloads.put(bp)
}

// unreserve is discard for a message whose bytes reserve had counted.
func (e *Engine) unreserve(it item, c *atomic.Uint64) {
	e.queueBytes.Add(-it.size())
	discard(c, it.buf)
}

// now returns nanoseconds since the engine's epoch (monotonic).
func (e *Engine) now() int64 { return e.clock() }

// onUnsent is mqttconn's OnUnsent: a reply that was counted processed when
// it entered the write buffer was discarded unwritten. It runs on the
// connection's writer; the worker only publishes replies.
func (e *Engine) onUnsent(conn int, _ *mqttconn.Message) { e.conns[conn].unsent.Add(1) }
