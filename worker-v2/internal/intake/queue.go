package intake

import (
	"sync"
	"sync/atomic"
)

// Item is one queued request: 16 bytes a queue slot.
type Item struct {
	buf      *[]byte // what the reply needs (wire.Responder.Pack), in a buffer of the queue's free list
	enqueued int64   // when it was received: nanoseconds on the intake's clock
}

// Packed returns what wire.Responder.Pack kept of the request. It is valid
// until the item is handed back with Queue.Done.
func (it Item) Packed() []byte { return *it.buf }

// Enqueued returns when the request was received, in nanoseconds on the
// clock the Intake was given.
func (it Item) Enqueued() int64 { return it.enqueued }

// size is what the item counts against the byte bound: the capacity of its
// buffer, the memory it holds.
func (it Item) size() int64 { return int64(cap(*it.buf)) }

// Free list of request buffers: at most freeBuffers buffers of at most
// maxPooled bytes (16 MiB).
const (
	freeBuffers = 4096
	maxPooled   = 4 << 10
)

// Queue is the bounded queue between the connections and the workers: at
// most Cap items, and at most MaxBytes bytes of payload copies (except one
// item into an empty queue, so a message larger than the bound still
// passes). It recycles the payload buffers: a bounded free list (not
// sync.Pool, which drops items at random under the race detector) keeps the
// steady state free of allocations.
type Queue struct {
	items    chan Item
	bytes    atomic.Int64 // sum of Item.size over the queued items
	maxBytes int64
	room     chan struct{} // a worker took an item: blocked connections retry
	roomWait atomic.Int32  // connections waiting on room
	closed   chan struct{} // Close: blocked connections give up
	once     sync.Once
	free     chan *[]byte
}

// NewQueue returns a queue of capacity items and maxBytes bytes, fed by at
// most connections connections. Its slots (16 bytes each) are allocated now.
func NewQueue(capacity int, maxBytes int64, connections int) *Queue {
	return &Queue{
		items:    make(chan Item, capacity),
		maxBytes: maxBytes,
		room:     make(chan struct{}, max(connections, 1)),
		closed:   make(chan struct{}),
		free:     make(chan *[]byte, freeBuffers),
	}
}

// Items is where the workers take items from. A worker that takes one calls
// Taken at once, and Done when it no longer needs Item.Packed.
func (q *Queue) Items() <-chan Item { return q.items }

// Len returns the number of queued items.
func (q *Queue) Len() int { return len(q.items) }

// Cap returns the capacity in items.
func (q *Queue) Cap() int { return cap(q.items) }

// Bytes returns what the queued items hold (their buffers' capacity).
func (q *Queue) Bytes() int64 { return q.bytes.Load() }

// MaxBytes returns the capacity in bytes.
func (q *Queue) MaxBytes() int64 { return q.maxBytes }

// Taken uncounts an item just taken off the queue and wakes a connection
// waiting for room.
func (q *Queue) Taken(it Item) {
	q.bytes.Add(-it.size())
	if q.roomWait.Load() > 0 {
		select {
		case q.room <- struct{}{}:
		default:
		}
	}
}

// Done hands the item's buffer back to the free list.
func (q *Queue) Done(it Item) { q.put(it.buf) }

// Close makes connections blocked for room (Intake with dropOnFull false)
// give up: they count their message abandoned. Idempotent.
func (q *Queue) Close() { q.once.Do(func() { close(q.closed) }) }

// Clear takes every item left in the queue, hands its buffer back and
// returns how many there were.
func (q *Queue) Clear() uint64 {
	var n uint64
	for {
		select {
		case it := <-q.items:
			q.Taken(it)
			q.Done(it)
			n++
		default:
			return n
		}
	}
}

func (q *Queue) get() *[]byte {
	select {
	case b := <-q.free:
		return b
	default:
		b := make([]byte, 0, 256)
		return &b
	}
}

func (q *Queue) put(b *[]byte) {
	if cap(*b) > maxPooled {
		return // left to the collector: do not keep buffers of large messages
	}
	select {
	case q.free <- b:
	default:
	}
}

// reserve counts n more queued bytes if they fit under the byte bound, or if
// the queue holds none.
func (q *Queue) reserve(n int64) bool {
	total := q.bytes.Add(n)
	if total <= q.maxBytes || total == n {
		return true
	}
	q.bytes.Add(-n)
	return false
}

// waitRoom reserves n queued bytes, waiting for workers to take items while
// they do not fit. It returns false once the queue is closed.
func (q *Queue) waitRoom(n int64) bool {
	for !q.reserve(n) {
		q.roomWait.Add(1)
		// Checked again after announcing the wait: a worker that freed room
		// meanwhile either lets this succeed or sees the waiter and signals.
		if q.reserve(n) {
			q.roomWait.Add(-1)
			return true
		}
		select {
		case <-q.room:
			q.roomWait.Add(-1)
		case <-q.closed:
			q.roomWait.Add(-1)
			return false
		}
	}
	return true
}

// discard ends a message that does not enter the queue: it is counted in c
// and its buffer goes back to the free list.
func (q *Queue) discard(c *atomic.Uint64, bp *[]byte) {
	c.Add(1)
	q.put(bp)
}

// unreserve is discard for an item whose bytes reserve had counted.
func (q *Queue) unreserve(it Item, c *atomic.Uint64) {
	q.bytes.Add(-it.size())
	q.discard(c, it.buf)
}
