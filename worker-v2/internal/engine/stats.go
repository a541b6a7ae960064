package engine

import (
	"runtime"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/autoscale"
)

// Stats is a snapshot of the engine: the /stats document (and /debug/vars's
// "worker").
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
	// Malformed: requests that could not be decoded in the correlation
	// mode (CORRELATE): no envelope, no Response Topic, no id member, or a
	// reply topic that is no valid topic name.
	Malformed uint64 `json:"malformed"`
	// Refused: requests whose reply topic matched no filter of
	// REPLY_TOPIC_ALLOW: never answered.
	Refused uint64 `json:"refused"`
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

	// Broker is what the broker announced when the connections connected:
	// the protocol it accepted and, on MQTT 5, the CONNACK's limits
	// (mqttconn.Capabilities). Absent until the worker has connected.
	Broker *mqttconn.Capabilities `json:"broker,omitempty"`
	// InboundOversized: inbound messages above the connections' frame limit
	// (mqttconn.DefaultMaxInboundFrame, 2 MiB), skipped unread with the
	// connection kept. They never reached the queue: not in Received.
	InboundOversized uint64 `json:"inbound_oversized"`
}

// Accounted returns the sum that equals Received when every message is
// accounted for: the final outcomes plus what is queued, in flight or held by
// a blocked connection.
func (s Stats) Accounted() uint64 {
	return s.Processed + s.DroppedFull + s.Malformed + s.Refused + s.ReplyFailed + s.Abandoned +
		uint64(s.QueueDepth) + uint64(s.InFlight) + uint64(s.Blocked)
}

// Stats returns a snapshot. Outcomes are read before Received, so under load
// Accounted may lag Received by the messages that moved meanwhile.
func (e *Engine) Stats() Stats {
	s := Stats{
		Processed:   e.pool.Processed(),
		DroppedFull: e.intake.DroppedFull(),
		Malformed:   e.intake.Malformed(),
		Refused:     e.intake.Refused(),
		ReplyFailed: e.pool.ReplyFailed(),
		Abandoned:   e.intake.Abandoned() + e.pool.Abandoned() + e.leftover.Load(),
		InFlight:    e.pool.InFlight(),
		QueueDepth:  e.queue.Len(),
		Blocked:     e.intake.Blocked(),
	}
	s.Received = e.intake.Received()
	s.Workers = e.pool.Live()
	s.MinWorkers, s.MaxWorkers = e.cfg.MinWorkers, e.cfg.WorkerCap
	s.GOMAXPROCS = runtime.GOMAXPROCS(0)
	s.QueueCap = e.queue.Cap()
	s.QueueBytes, s.QueueMaxBytes = e.queue.Bytes(), e.queue.MaxBytes()
	s.QueueOldestSeconds = e.oldestWait().Seconds()
	ls := e.lastSample()
	s.ArrivalRPS, s.ServiceSeconds, s.DemandWorkers, s.NeedWorkers = ls.arrivals, ls.service.Seconds(), ls.demand, ls.need
	s.Utilization = ls.demand / float64(e.cfg.WorkerCap)
	s.RateRPS = e.rate.perSecond(time.Now(), e.pool.Processed())
	s.Connections = e.cfg.Connections
	_, s.ConnectionsUp, s.ConnectionsSuspect = e.Connections()
	if t := e.transport.Load(); t != nil {
		c := (*t).Capabilities()
		s.Broker = &c
	}
	s.InboundOversized = e.oversized.Load()
	s.Mode = e.cfg.Mode
	s.Draining = e.draining.Load()
	s.ScalingEvents = e.scaler.Events()
	return s
}
