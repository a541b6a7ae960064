package engine

import "time"

// item is one queued request: 16 bytes a queue slot.
type item struct {
	buf      *[]byte // the payload copy (pooled), owned by the engine until replied, dropped or abandoned
	enqueued int64   // when it was received, nanoseconds since Engine.epoch
}

// size is what the item counts against QUEUE_MAX_BYTES: the capacity of its
// buffer, the memory it holds.
func (it item) size() int64 { return int64(cap(*it.buf)) }

// payloads recycles request copies: a handler copies the payload (valid only
// during its call) into a pooled buffer, the worker returns it after
// replying, the handler when it drops the message, whoever abandons it at
// shutdown. A bounded free list (not sync.Pool, which drops items at random
// under the race detector) keeps the steady state free of allocations.
type bufPool chan *[]byte

// maxPooled is the largest buffer capacity the free list keeps (bytes), so it
// holds at most cap(payloads) × maxPooled = 16 MiB.
const maxPooled = 4 << 10

func (p bufPool) get() *[]byte {
	select {
	case b := <-p:
		return b
	default:
		b := make([]byte, 0, 256)
		return &b
	}
}

func (p bufPool) put(b *[]byte) {
	if cap(*b) > maxPooled {
		return // left to the collector: do not keep buffers of large messages
	}
	select {
	case p <- b:
	default:
	}
}

var payloads = make(bufPool, 4096)

// markEmpty records that it is about to enter an empty queue: every message
// queued later is younger, which bounds the oldest queued age.
func (e *Engine) markEmpty(st *connStats, it item) {
	if len(e.queue) == 0 {
		st.emptyAt.Store(it.enqueued)
	}
}

// reserve counts n more queued bytes if they fit under QUEUE_MAX_BYTES, or if
// the queue holds none (a message larger than the bound still passes alone).
func (e *Engine) reserve(n int64) bool {
	total := e.queueBytes.Add(n)
	if total <= e.cfg.QueueMaxBytes || total == n {
		return true
	}
	e.queueBytes.Add(-n)
	return false
}

// waitRoom reserves n queued bytes, waiting for workers to take messages
// while they do not fit. It returns false when shutdown gave up (hard).
func (e *Engine) waitRoom(n int64) bool {
	for !e.reserve(n) {
		e.roomWait.Add(1)
		// Checked again after announcing the wait: a worker that freed room
		// meanwhile either lets this succeed or sees the waiter and signals.
		if e.reserve(n) {
			e.roomWait.Add(-1)
			return true
		}
		select {
		case <-e.room:
			e.roomWait.Add(-1)
		case <-e.hard:
			e.roomWait.Add(-1)
			return false
		}
	}
	return true
}

// release uncounts a message taken off the queue and wakes a connection
// waiting for room.
func (e *Engine) release(it item) {
	e.queueBytes.Add(-it.size())
	if e.roomWait.Load() > 0 {
		select {
		case e.room <- struct{}{}:
		default:
		}
	}
}

// oldestWait returns how long the oldest queued message has waited, as an
// upper bound (see the package doc), 0 when the queue is empty.
func (e *Engine) oldestWait() time.Duration {
	if len(e.queue) == 0 {
		return 0
	}
	now := e.now()
	var newest int64
	for i := range e.work {
		newest = max(newest, e.work[i].lastTaken.Load())
	}
	for i := range e.conns {
		newest = max(newest, e.conns[i].emptyAt.Load())
	}
	return time.Duration(max(now-newest, 0))
}
