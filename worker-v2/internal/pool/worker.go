package pool

import (
	"errors"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/intake"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/modes"
)

// flushBatch is how many replies a lazy worker leaves in its connection's
// buffer at most while the queue stays non-empty: a backlog's replies go out
// in writes of up to this many (about 3 KB of envelope replies), and a long
// backlog neither delays the first reply until it ends nor fills the
// buffer to ErrBackpressure (mqttconn's MaxPendingBytes, 1 MiB).
const flushBatch = 64

// worker is one worker goroutine's state: everything it reuses per message.
type worker struct {
	p       *Pool
	conn    mqttconn.Conn // the worker's own connection for replies
	home    int           // index of conn in the transport
	proc    modes.Processor
	st      *stripe
	latency int              // the worker's stripe of the latency recorders
	msg     mqttconn.Message // the reply being sent
	buf     []byte           // its payload
	// unflushed: replies of this worker that may be waiting in its
	// connection's buffer (SelfFlush).
	unflushed int
}

// flush writes what this worker's replies left in its connection's buffer.
func (w *worker) flush() {
	if w.unflushed > 0 {
		w.unflushed = 0
		w.conn.Flush()
	}
}

func (w *worker) run() {
	p := w.p
	items := p.queue.Items()
	defer p.live.Add(-1)
	defer w.flush()
	for {
		select {
		case it := <-items:
			w.take(it)
			w.handle(it)
			continue
		default:
		}
		w.flush() // nothing queued: write before waiting
		select {
		case it := <-items:
			w.take(it)
			w.handle(it)
		case <-p.quit:
			return
		case <-p.drain:
			for {
				select {
				case <-p.abort:
					return
				default:
				}
				select {
				case it := <-items:
					w.take(it)
					w.handle(it)
				default:
					return
				}
			}
		}
	}
}

// take accounts for an item just taken off the queue.
func (w *worker) take(it intake.Item) {
	w.p.queue.Taken(it)
	w.st.lastTaken.Store(it.Enqueued())
}

// handle processes one item and publishes its reply. It allocates nothing at
// QoS 0.
func (w *worker) handle(it intake.Item) {
	p := w.p
	// Publish copies topic and payload before returning (mqttconn hands paho
	// copies at QoS > 0), so the request buffer can be reused once handle
	// returns.
	defer p.queue.Done(it)
	w.st.busy.Add(1)
	// One clock reading ends the queue wait and starts the processing, so the
	// two stamps are disjoint and their sum never exceeds the round trip the
	// requester measures. (Two readings, one for each, counted the time
	// between them twice: a worker descheduled there under load claimed
	// hundreds of ms more than the whole round trip.)
	start := p.clock()
	wait := time.Duration(start - it.Enqueued())
	packed := it.Packed()
	if !w.proc.Process(p.rules.Request(packed), p.abort) {
		w.st.abandoned.Add(1)
		w.st.busy.Add(-1)
		return
	}
	took := time.Duration(p.clock() - start)
	// The reply aliases the queued copy, which is not reused before handle
	// returns.
	w.buf = p.rules.Answer(&w.msg, w.buf, packed, wait, took)
	err := w.publish(&w.msg)
	// Occupancy (the service time of the autoscaler's demand) is counted
	// before the outcome, so a sample never sees a message finished whose
	// time is missing.
	w.st.busyNs.Add(uint64(p.clock() - start))
	if err != nil {
		w.st.replyFailed.Add(1)
		p.warnReplyFailed(err)
	} else {
		w.st.processed.Add(1)
	}
	p.queueWait.Record(w.latency, wait)
	p.timing.Record(w.latency, took)
	w.st.busy.Add(-1)
}

// warnReplyFailed logs a failed reply at most every 5 s.
func (p *Pool) warnReplyFailed(err error) {
	p.replyWarn.Do(func() {
		p.log.Warn("reply not sent (logged at most every 5s; see reply_failed)", "err", err, "reply_failed", p.ReplyFailed())
	})
}

// publish sends a reply on the worker's connection or, while that one is
// down (reconnecting), on the next connection that is up, so a dropped
// connection does not lose the replies of the workers assigned to it.
//
// With SelfFlush (WRITE_LINGER=0, the default) the worker writes its replies
// itself (flush): in MODE=health when it finds the queue empty, so replies
// taken back to back from a backlog go out in few writes (of flushBatch at
// most); in the other modes after each reply, since the next request takes
// time to process. The connection's flusher goroutine is then not woken at
// all (one hand-off less per request: the write is one raw non-blocking
// system call, and only what the socket does not take is left to the
// flusher). With WRITE_LINGER > 0 the flusher writes, after waiting that
// long for more replies.
func (w *worker) publish(m *mqttconn.Message) error {
	var err error
	if w.p.selfFlush {
		if err = w.conn.QueueMessage(m); err == nil {
			w.unflushed++
			if !w.p.lazy || w.unflushed >= flushBatch {
				w.flush()
			}
		}
	} else {
		err = w.conn.PublishMessage(m)
	}
	if err == nil || !errors.Is(err, mqttconn.ErrNotConnected) {
		return err
	}
	t := w.p.transport
	n := t.Len()
	for i := 1; i < n; i++ {
		if c := t.Conn((w.home + i) % n); c.Connected() {
			if err = c.PublishMessage(m); err == nil {
				return nil
			}
		}
	}
	return err
}
