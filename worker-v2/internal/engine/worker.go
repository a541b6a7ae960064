package engine

import (
	"errors"
	"math/rand/v2"
	"time"
	"unsafe"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/wire"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/autoscale"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/process"
)

// scaleTo sets the number of workers to n: it spawns workers (first taking
// back stop tokens no worker has taken yet) or posts stop tokens, which idle
// workers take. A worker never drops an item it holds.
func (e *Engine) scaleTo(n int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.target != 0 && n != e.target {
		e.log.Info("scaling workers", "from", e.target, "to", n, "queue_depth", len(e.queue))
	}
	for e.target < n {
		select {
		case <-e.quit: // a worker about to stop stays instead
		default:
			e.spawn()
		}
		e.target++
	}
	for e.target > n {
		e.quit <- struct{}{} // capacity MaxWorkers ≥ pending tokens: never blocks
		e.target--
	}
}

// spawn starts one worker; e.mu is held.
func (e *Engine) spawn() {
	id := e.nextID
	e.nextID++
	pool := e.pool.Load()
	proc, _ := process.New(e.procOpts, rand.Uint64()) // mode checked in New
	w := &worker{
		e:    e,
		conn: pool.Conn(id % pool.Len()),
		pool: pool,
		home: id % pool.Len(),
		proc: proc,
		st:   &e.work[id%workStripes],
		buf:  make([]byte, 0, wire.ResponseSize),
	}
	e.live.Add(1)
	e.wg.Go(w.run)
}

// observe samples the pool for the autoscaler.
// The demand is computed over the interval since the previous sample:
// arrivals/s × mean processing time = received/dt × busyNs/handled.
func (e *Engine) observe() autoscale.Observation {
	e.mu.Lock()
	w := e.target
	e.mu.Unlock()
	o := autoscale.Observation{Workers: w, Busy: e.inFlight(), QueueLen: len(e.queue), QueueCap: cap(e.queue)}
	now := time.Now()
	rec, busy := e.received(), e.busyNanos()
	handled := e.processed() + e.replyFailed()
	d := &e.demand
	if !d.at.IsZero() {
		dt := now.Sub(d.at).Seconds()
		if n := handled - d.handled; n > 0 && dt > 0 {
			meanService := float64(busy-d.busy) / 1e9 / float64(n)
			o.Demand = float64(rec-d.received) / dt * meanService
		}
	}
	*d = demandSample{at: now, received: rec, handled: handled, busy: busy}
	return o
}

// demandSample is the state observe keeps between samples (the scaler's
// goroutine only).
type demandSample struct {
	at                      time.Time
	received, handled, busy uint64
}

func (e *Engine) busyNanos() uint64 {
	var n uint64
	for i := range e.work {
		n += e.work[i].busyNs.Load()
	}
	return n
}

// worker is one worker goroutine's state: everything it reuses per message.
type worker struct {
	e    *Engine
	conn mqttconn.Conn // the worker's own connection for replies
	pool *mqttconn.Pool
	home int // index of conn in pool
	proc process.Processor
	st   *workStats
	req  wire.Request
	resp wire.Response
	buf  []byte
}

func (w *worker) run() {
	e := w.e
	defer e.live.Add(-1)
	for {
		select {
		case it := <-e.queue:
			w.handle(it)
		case <-e.quit:
			return
		case <-e.drain:
			for {
				select {
				case <-e.hard:
					return
				default:
				}
				select {
				case it := <-e.queue:
					w.handle(it)
				default:
					return
				}
			}
		}
	}
}

// handle processes one item and publishes its reply. It allocates nothing at
// QoS 0.
func (w *worker) handle(it item) {
	if it.buf != nil {
		// Publish copies topic and payload before returning (mqttconn hands
		// paho copies at QoS > 0), so the request buffer can be reused once
		// handle returns.
		defer payloads.put(it.buf)
	}
	w.st.busy.Add(1)
	start := time.Now()
	wait := start.Sub(it.enqueued)
	if wire.DecodeRequest(it.payload, &w.req) != nil { // decoded once already: cannot fail
		w.st.malformed.Add(1)
		w.st.busy.Add(-1)
		return
	}
	if !w.proc.Process(it.payload, w.e.hard) {
		w.st.abandoned.Add(1)
		w.st.busy.Add(-1)
		return
	}
	took := time.Since(start)
	w.st.busyNs.Add(uint64(took))
	w.resp = wire.Response{
		RunID:     w.req.RunID,
		ClientID:  w.req.ClientID,
		Seq:       w.req.Seq,
		Intended:  w.req.Intended,
		QueueUS:   wire.Micros(wait),
		ProcessUS: wire.Micros(took),
	}
	w.buf = wire.AppendResponse(w.buf[:0], &w.resp)
	// The topic aliases the request payload, which is not reused before
	// handle returns.
	topic := unsafe.String(unsafe.SliceData(w.req.ReplyTopic), len(w.req.ReplyTopic))
	if err := w.publish(topic, w.buf); err != nil {
		w.st.replyFailed.Add(1)
		w.e.warnReplyFailed(err)
	} else {
		w.st.processed.Add(1)
	}
	w.e.met.queueWait.Observe(wait.Seconds())
	w.e.met.processing.Observe(took.Seconds())
	w.st.busy.Add(-1)
}

// warnReplyFailed logs a failed reply at most every 5 s.
func (e *Engine) warnReplyFailed(err error) {
	now := time.Now().UnixNano()
	last := e.lastReplyWarn.Load()
	if now-last < int64(5*time.Second) || !e.lastReplyWarn.CompareAndSwap(last, now) {
		return
	}
	e.log.Warn("reply not sent (logged at most every 5s; see reply_failed)", "err", err, "reply_failed", e.replyFailed())
}

// publish sends a reply on the worker's connection or, while that one is
// down (reconnecting), on the next connection that is up, so a dropped
// connection does not lose the replies of the workers assigned to it.
func (w *worker) publish(topic string, payload []byte) error {
	err := w.conn.Publish(topic, payload)
	if err == nil || w.pool == nil || !errors.Is(err, mqttconn.ErrNotConnected) {
		return err
	}
	n := w.pool.Len()
	for i := 1; i < n; i++ {
		if c := w.pool.Conn((w.home + i) % n); c.Connected() {
			if err = c.Publish(topic, payload); err == nil {
				return nil
			}
		}
	}
	return err
}
