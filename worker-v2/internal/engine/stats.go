package engine

import (
	"context"
	"runtime"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/autoscale"
)

// Stats is the /stats document: a snapshot of the engine.
type Stats struct {
	Workers    int `json:"workers"` // live worker goroutines
	MinWorkers int `json:"min_workers"`
	MaxWorkers int `json:"max_workers"` // MAX_WORKERS; in MODE=cpu at most max(MIN_WORKERS, GOMAXPROCS)
	// GOMAXPROCS is the Go runtime's current P count (it follows the load
	// unless the GOMAXPROCS variable is set or MODE=cpu: package gomaxprocs).
	GOMAXPROCS int `json:"gomaxprocs"`
	QueueDepth int `json:"queue_depth"` // messages waiting
	QueueCap   int `json:"queue_cap"`
	// QueueBytes is what the waiting messages hold (their buffers' capacity);
	// QueueMaxBytes is QUEUE_MAX_BYTES.
	QueueBytes    int64 `json:"queue_bytes"`
	QueueMaxBytes int64 `json:"queue_max_bytes"`
	// QueueOldestSeconds is how long the oldest waiting message has waited
	// (an upper bound, exact to within one gap between arrivals).
	QueueOldestSeconds float64 `json:"queue_oldest_seconds"`
	InFlight           int     `json:"in_flight"` // messages a worker is processing
	// Blocked: messages held by a connection waiting for room in the queue
	// (DROP_ON_FULL=false; at most one per connection).
	Blocked     int    `json:"blocked"`
	Received    uint64 `json:"received"`
	Processed   uint64 `json:"processed"`    // replied (the reply entered the connection's write buffer and was not discarded)
	DroppedFull uint64 `json:"dropped_full"` // queue full, in items or bytes (DROP_ON_FULL=true)
	Malformed   uint64 `json:"malformed"`    // not a request envelope
	// ReplyFailed: processed, but the reply could not be queued, or the
	// connection discarded it unwritten.
	ReplyFailed uint64  `json:"reply_failed"`
	Abandoned   uint64  `json:"abandoned"` // left over at shutdown
	RateRPS     float64 `json:"rate_rps"`  // processed per second over the last ~5 s
	// What the autoscaler's last sample measured: requests received per
	// second, mean worker occupancy per message, their product (workers kept
	// busy on average, Little's law), the workers its rule asks for, and the
	// demand over MaxWorkers (above 1: this instance cannot keep up alone).
	ArrivalRPS     float64 `json:"arrival_rps"`
	ServiceSeconds float64 `json:"service_seconds"`
	DemandWorkers  float64 `json:"demand_workers"`
	NeedWorkers    int     `json:"need_workers"`
	Utilization    float64 `json:"utilization"`
	ConnectionsUp  int     `json:"connections_up"`
	// ConnectionsSuspect: up, but wrote and heard nothing back for KEEPALIVE.
	ConnectionsSuspect int               `json:"connections_suspect"`
	Connections        int               `json:"connections"`
	Mode               string            `json:"mode"`
	Draining           bool              `json:"draining"`
	ScalingEvents      []autoscale.Event `json:"scaling_events"` // last 50, oldest first
}

// Accounted returns the sum that equals Received when every message is
// accounted for: the final outcomes plus what is queued, in flight or held by
// a blocked connection.
func (s Stats) Accounted() uint64 {
	return s.Processed + s.DroppedFull + s.Malformed + s.ReplyFailed + s.Abandoned +
		uint64(s.QueueDepth) + uint64(s.InFlight) + uint64(s.Blocked)
}

// Stats returns a snapshot. Outcomes are read before Received, so under load
// Accounted may lag Received by the messages that moved meanwhile.
func (e *Engine) Stats() Stats {
	s := Stats{
		Processed:   e.processed(),
		DroppedFull: e.droppedFull(),
		Malformed:   e.malformed(),
		ReplyFailed: e.replyFailed(),
		Abandoned:   e.abandoned(),
		InFlight:    e.inFlight(),
		QueueDepth:  len(e.queue),
		Blocked:     e.blocked(),
	}
	s.Received = e.received()
	s.Workers = int(e.live.Load())
	s.MinWorkers, s.MaxWorkers = e.cfg.MinWorkers, e.maxWorkers
	s.GOMAXPROCS = runtime.GOMAXPROCS(0)
	s.QueueCap = cap(e.queue)
	s.QueueBytes, s.QueueMaxBytes = e.queueBytes.Load(), e.cfg.QueueMaxBytes
	s.QueueOldestSeconds = e.oldestWait().Seconds()
	ls := e.lastSample()
	s.ArrivalRPS, s.ServiceSeconds, s.DemandWorkers, s.NeedWorkers = ls.arrivals, ls.service.Seconds(), ls.demand, ls.need
	s.Utilization = e.utilization()
	s.RateRPS = e.rate()
	s.Connections = e.cfg.Connections
	if p := e.pool.Load(); p != nil {
		s.ConnectionsUp = p.Up()
		s.ConnectionsSuspect = p.Suspect()
	}
	s.Mode = e.cfg.Mode
	s.Draining = e.draining.Load()
	s.ScalingEvents = e.scaler.Events()
	return s
}

func (e *Engine) sumConns(f func(*connStats) uint64) uint64 {
	var n uint64
	for i := range e.conns {
		n += f(&e.conns[i])
	}
	return n
}

func (e *Engine) sumWork(f func(*workStats) uint64) uint64 {
	var n uint64
	for i := range e.work {
		n += f(&e.work[i])
	}
	return n
}

func (e *Engine) received() uint64 {
	return e.sumConns(func(c *connStats) uint64 { return c.received.Load() })
}

func (e *Engine) droppedFull() uint64 {
	return e.sumConns(func(c *connStats) uint64 { return c.dropped.Load() })
}

func (e *Engine) malformed() uint64 {
	return e.sumConns(func(c *connStats) uint64 { return c.malformed.Load() }) +
		e.sumWork(func(w *workStats) uint64 { return w.malformed.Load() })
}

// processed counts the replies that entered a write buffer minus those a
// connection then discarded unwritten (they are reply_failed).
func (e *Engine) processed() uint64 {
	p, u := e.sumWork(func(w *workStats) uint64 { return w.processed.Load() }), e.unsent()
	if u > p { // a discard counted before its reply (transient)
		return 0
	}
	return p - u
}

func (e *Engine) replyFailed() uint64 {
	return e.sumWork(func(w *workStats) uint64 { return w.replyFailed.Load() }) + e.unsent()
}

func (e *Engine) unsent() uint64 {
	return e.sumConns(func(c *connStats) uint64 { return c.unsent.Load() })
}

func (e *Engine) blocked() int {
	var n int64
	for i := range e.conns {
		n += e.conns[i].blocked.Load()
	}
	return int(n)
}

// utilization returns the last sampled demand over the pool's upper bound.
func (e *Engine) utilization() float64 {
	return e.lastSample().demand / float64(e.maxWorkers)
}

func (e *Engine) abandoned() uint64 {
	return e.sumConns(func(c *connStats) uint64 { return c.abandoned.Load() }) +
		e.sumWork(func(w *workStats) uint64 { return w.abandoned.Load() }) +
		e.leftover.Load()
}

func (e *Engine) inFlight() int {
	var n int64
	for i := range e.work {
		n += e.work[i].busy.Load()
	}
	return int(max(n, 0))
}

func (e *Engine) sampleRate(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			e.recordRate(now)
		}
	}
}

func (e *Engine) recordRate(now time.Time) {
	e.rateMu.Lock()
	defer e.rateMu.Unlock()
	if len(e.rateSamples) > rateWindow {
		copy(e.rateSamples, e.rateSamples[1:])
		e.rateSamples = e.rateSamples[:rateWindow]
	}
	e.rateSamples = append(e.rateSamples, rateSample{now, e.processed()})
}

// rate returns processed messages per second since the oldest sample (up to
// rateWindow seconds ago).
func (e *Engine) rate() float64 {
	e.rateMu.Lock()
	defer e.rateMu.Unlock()
	if len(e.rateSamples) == 0 {
		return 0
	}
	old := e.rateSamples[0]
	dt := time.Since(old.t).Seconds()
	if dt <= 0 {
		return 0
	}
	return float64(e.processed()-old.n) / dt
}
