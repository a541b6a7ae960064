package engine

import (
	"errors"
	"math/rand/v2"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/wire"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/autoscale"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/config"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/modes"
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
	proc, _ := modes.New(e.procOpts, rand.Uint64()) // mode checked in New
	w := &worker{
		e:    e,
		conn: pool.Conn(id % pool.Len()),
		pool: pool,
		home: id % pool.Len(),
		proc: proc,
		st:   &e.work[id%workStripes],
		buf:  make([]byte, 0, wire.ResponseSize),
		lazy: e.cfg.Mode == config.ModeHealth,
	}
	e.live.Add(1)
	e.wg.Go(w.run)
}

// observe samples the pool for the autoscaler (on the scaler's goroutine).
// Over the interval since the previous sample:
//
//	arrivals = Δreceived / Δt                      (per second)
//	service  = Δoccupancy / Δ(processed + reply_failed)  (the last known value when nothing finished)
func (e *Engine) observe() autoscale.Observation {
	e.mu.Lock()
	w := e.target
	e.mu.Unlock()
	o := autoscale.Observation{
		Workers:       w,
		Busy:          e.inFlight(),
		QueueLen:      len(e.queue),
		QueueCap:      cap(e.queue),
		QueueBytes:    e.queueBytes.Load(),
		QueueMaxBytes: e.cfg.QueueMaxBytes,
		Oldest:        e.oldestWait(),
	}
	now := time.Now()
	rec := e.received()
	// Finished messages before occupancy: a worker adds its occupancy before
	// counting the message, so every message counted here has its time in busy.
	handled := e.sumWork(func(w *workStats) uint64 { return w.processed.Load() + w.replyFailed.Load() })
	busy := e.busyNanos()
	d := &e.demand
	if !d.at.IsZero() {
		if dt := now.Sub(d.at).Seconds(); dt > 0 {
			o.Arrivals = float64(rec-d.received) / dt
		}
		if n := handled - d.handled; n > 0 {
			d.service = time.Duration((busy - d.busy) / n)
		}
	}
	o.Service = d.service
	d.at, d.received, d.handled, d.busy = now, rec, handled, busy
	need := o.Need(e.scaler.Policy())
	e.sampled.Store(&loadSample{arrivals: o.Arrivals, service: o.Service, demand: o.Demand(), need: need})
	return o
}

// demandSample is the state observe keeps between samples (the scaler's
// goroutine only).
type demandSample struct {
	at                      time.Time
	received, handled, busy uint64
	service                 time.Duration // the last known mean service time
}

// loadSample is what the last autoscaler sample measured, for /stats and
// /metrics.
type loadSample struct {
	arrivals float64       // requests received per second
	service  time.Duration // mean worker occupancy per message
	demand   float64       // arrivals × service: workers kept busy on average
	need     int           // what the autoscaler's rule asks for (autoscale.Observation.Need)
}

func (e *Engine) lastSample() loadSample {
	if s := e.sampled.Load(); s != nil {
		return *s
	}
	return loadSample{}
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
	proc modes.Processor
	st   *workStats
	msg  mqttconn.Message // the reply being sent
	buf  []byte           // its payload
	// lazy: replies are written when the queue is empty (MODE=health,
	// WRITE_LINGER=0), or every flushBatch replies while it is not;
	// unflushed: replies of this worker that may be waiting in its
	// connection's buffer.
	lazy      bool
	unflushed int
}

// flushBatch is how many replies a lazy worker leaves in its connection's
// buffer at most while the queue stays non-empty: a backlog's replies go out
// in writes of up to this many (about 3 KB of envelope replies), and a long
// backlog neither delays the first reply until it ends nor fills the
// buffer to ErrBackpressure (mqttconn's MaxPendingBytes, 1 MiB).
const flushBatch = 64

// flush writes what this worker's replies left in its connection's buffer.
func (w *worker) flush() {
	if w.unflushed > 0 {
		w.unflushed = 0
		w.conn.Flush()
	}
}

func (w *worker) run() {
	e := w.e
	defer e.live.Add(-1)
	defer w.flush()
	for {
		select {
		case it := <-e.queue:
			w.take(it)
			w.handle(it)
			continue
		default:
		}
		w.flush() // nothing queued: write before waiting
		select {
		case it := <-e.queue:
			w.take(it)
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
func (w *worker) take(it item) {
	w.e.release(it)
	w.st.lastTaken.Store(it.enqueued)
}

// handle processes one item and publishes its reply. It allocates nothing at
// QoS 0.
func (w *worker) handle(it item) {
	// Publish copies topic and payload before returning (mqttconn hands paho
	// copies at QoS > 0), so the request buffer can be reused once handle
	// returns.
	defer payloads.put(it.buf)
	w.st.busy.Add(1)
	// One clock reading ends the queue wait and starts the processing, so the
	// two stamps are disjoint and their sum never exceeds the round trip the
	// requester measures. (Two readings, one for each, counted the time
	// between them twice: a worker descheduled there under load claimed
	// hundreds of ms more than the whole round trip.)
	start := w.e.now()
	wait := time.Duration(start - it.enqueued)
	packed := *it.buf
	if !w.proc.Process(w.e.rules.Request(packed), w.e.hard) {
		w.st.abandoned.Add(1)
		w.st.busy.Add(-1)
		return
	}
	took := time.Duration(w.e.now() - start)
	// The reply aliases the queued copy, which is not reused before handle
	// returns.
	w.buf = w.e.rules.Answer(&w.msg, w.buf, packed, wait, took)
	err := w.publish(&w.msg)
	// Occupancy (the service time of the autoscaler's demand) is counted
	// before the outcome, so a sample never sees a message finished whose
	// time is missing.
	w.st.busyNs.Add(uint64(w.e.now() - start))
	if err != nil {
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
	e.replyWarn.Do(func() {
		e.log.Warn("reply not sent (logged at most every 5s; see reply_failed)", "err", err, "reply_failed", e.replyFailed())
	})
}

// publish sends a reply on the worker's connection or, while that one is
// down (reconnecting), on the next connection that is up, so a dropped
// connection does not lose the replies of the workers assigned to it.
//
// With WRITE_LINGER=0 (the default) the worker writes its replies itself
// (flush): in MODE=health when it finds the queue empty, so replies taken
// back to back from a backlog go out in few writes (of flushBatch at most);
// in the other modes after each reply, since the next request takes time to
// process. The connection's flusher goroutine is then not woken at all (one
// hand-off less per request: the write is one raw non-blocking system call,
// and only what the socket does not take is left to the flusher). With
// WRITE_LINGER > 0 the flusher writes, after waiting that long for more
// replies.
func (w *worker) publish(m *mqttconn.Message) error {
	var err error
	if w.e.cfg.WriteLinger == 0 {
		if err = w.conn.QueueMessage(m); err == nil {
			w.unflushed++
			if !w.lazy || w.unflushed >= flushBatch {
				w.flush()
			}
		}
	} else {
		err = w.conn.PublishMessage(m)
	}
	if err == nil || w.pool == nil || !errors.Is(err, mqttconn.ErrNotConnected) {
		return err
	}
	n := w.pool.Len()
	for i := 1; i < n; i++ {
		if c := w.pool.Conn((w.home + i) % n); c.Connected() {
			if err = c.PublishMessage(m); err == nil {
				return nil
			}
		}
	}
	return err
}
