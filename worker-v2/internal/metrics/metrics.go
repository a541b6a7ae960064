// Package metrics owns worker-v2's Prometheus metrics, mqttrr_worker_*. They
// read the engine when scraped and never steer it: the counters and gauges
// come from one engine.Stats snapshot per scrape (plus its phase and its
// autoscaler's counts), the connection counters from engine.ConnEvents, and
// the two latency histograms from the workers' HDR recorders, converted at
// scrape into classic and native buckets (latency.Collector). Nothing on the
// request path touches Prometheus.
package metrics

import (
	"fmt"
	"sync/atomic"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/latency"
	shared "github.com/mqtt-rr-bench/mqtt-rr-bench/internal/metrics"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/engine"
)

// Subsystem of every metric: mqttrr_worker_*.
const subsystem = "worker"

// DurationBuckets are the classic buckets of the latency histograms, seconds:
// 1 µs × 2.5^k up to ~36 s, so health-mode processing (about a microsecond)
// is resolved. Native buckets (latency.NativeSchema) come with them.
var DurationBuckets = prometheus.ExponentialBuckets(1e-6, 2.5, 20)

const outcomeHelp = "Received messages by final outcome: processed (replied), dropped_full (queue full), " +
	"malformed (not a request), refused (reply topic not in REPLY_TOPIC_ALLOW), reply_failed (reply not sent), abandoned (left at shutdown)."

// view is what one scrape reads.
type view struct {
	engine.Stats
	phase     engine.Phase
	up, down  uint64 // scaling events
	processed uint64 // Stats.Processed, never going down
}

// series is one counter or gauge and how it reads the view.
type series struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(*view) float64
}

// Metrics are the engine's metrics. Register them once.
type Metrics struct {
	eng    *engine.Engine
	series []series
	high   atomic.Uint64 // the highest processed count exported
	others []prometheus.Collector
}

// New returns the metrics of eng.
func New(eng *engine.Engine) *Metrics {
	m := &Metrics{eng: eng}
	add := func(kind prometheus.ValueType, name, help string, labels prometheus.Labels, value func(*view) float64) {
		fq := prometheus.BuildFQName(shared.Namespace, subsystem, name)
		m.series = append(m.series, series{prometheus.NewDesc(fq, help, nil, labels), kind, value})
	}
	counter := func(name, help string, labels prometheus.Labels, value func(*view) uint64) {
		add(prometheus.CounterValue, name, help, labels, func(v *view) float64 { return float64(value(v)) })
	}
	gauge := func(name, help string, value func(*view) float64) {
		add(prometheus.GaugeValue, name, help, nil, value)
	}
	outcome := func(o string) prometheus.Labels { return prometheus.Labels{"outcome": o} }

	counter("messages_received_total", "Messages received on the request subscription.", nil, func(v *view) uint64 { return v.Received })
	// processed drops by one when a connection discards a reply it had
	// buffered (it moves to reply_failed); a counter must not go down, so the
	// exported value holds its highest until processed passes it.
	counter("messages_total", outcomeHelp, outcome("processed"), func(v *view) uint64 { return v.processed })
	counter("messages_total", outcomeHelp, outcome("dropped_full"), func(v *view) uint64 { return v.DroppedFull })
	counter("messages_total", outcomeHelp, outcome("malformed"), func(v *view) uint64 { return v.Malformed })
	counter("messages_total", outcomeHelp, outcome("refused"), func(v *view) uint64 { return v.Refused })
	counter("messages_total", outcomeHelp, outcome("reply_failed"), func(v *view) uint64 { return v.ReplyFailed })
	counter("messages_total", outcomeHelp, outcome("abandoned"), func(v *view) uint64 { return v.Abandoned })
	counter("inbound_oversized_total", "Inbound messages above the 2 MiB frame limit, skipped unread (the connection stays up; not in messages_received_total).",
		nil, func(v *view) uint64 { return v.InboundOversized })
	const scalingHelp = "Autoscaler changes of the worker count, by direction."
	counter("scaling_events_total", scalingHelp, prometheus.Labels{"direction": "up"}, func(v *view) uint64 { return v.up })
	counter("scaling_events_total", scalingHelp, prometheus.Labels{"direction": "down"}, func(v *view) uint64 { return v.down })
	gauge("queue_depth", "Messages waiting in the queue.", func(v *view) float64 { return float64(v.QueueDepth) })
	gauge("queue_capacity", "Capacity of the queue (QUEUE_CAP), messages.", func(v *view) float64 { return float64(v.QueueCap) })
	gauge("queue_bytes", "Bytes the waiting messages hold (their payload copies).", func(v *view) float64 { return float64(v.QueueBytes) })
	gauge("queue_capacity_bytes", "Capacity of the queue in bytes (QUEUE_MAX_BYTES).", func(v *view) float64 { return float64(v.QueueMaxBytes) })
	gauge("queue_oldest_seconds", "How long the oldest waiting message has waited (0 when the queue is empty); above SCALE_MAX_WAIT the pool scales up.",
		func(v *view) float64 { return v.QueueOldestSeconds })
	gauge("blocked", "Messages held by a connection waiting for room in the queue (DROP_ON_FULL=false).", func(v *view) float64 { return float64(v.Blocked) })
	gauge("in_flight", "Messages being processed by a worker.", func(v *view) float64 { return float64(v.InFlight) })
	gauge("workers", "Live worker goroutines.", func(v *view) float64 { return float64(v.Workers) })
	gauge("max_workers", "Upper bound of the pool: MAX_WORKERS, in MODE=cpu at most max(MIN_WORKERS, GOMAXPROCS).", func(v *view) float64 { return float64(v.MaxWorkers) })
	gauge("demand_workers", "Workers the offered load keeps busy on average over the last SCALE_INTERVAL: arrival rate × mean service time (Little's law).",
		func(v *view) float64 { return v.DemandWorkers })
	gauge("utilization_ratio", "demand_workers / max_workers: the share of this instance's pool the offered load needs; above 1 it cannot keep up alone. The Pods metric of the queue-aware HPA.",
		func(v *view) float64 { return v.Utilization })
	gauge("min_workers", "Lower bound of the pool (MIN_WORKERS).", func(v *view) float64 { return float64(v.MinWorkers) })
	for _, p := range engine.Phases {
		add(prometheus.GaugeValue, "phase", "The worker's phase: 1 for the current one (connecting, steady, draining, finished), 0 for the others.",
			prometheus.Labels{"phase": string(p)}, func(v *view) float64 {
				if v.phase == p {
					return 1
				}
				return 0
			})
	}
	gauge("connections_up", "MQTT connections connected and subscribed.", func(v *view) float64 { return float64(v.ConnectionsUp) })
	gauge("connections_suspect", "Connections up that wrote and heard nothing back for KEEPALIVE (a half-open link).",
		func(v *view) float64 { return float64(v.ConnectionsSuspect) })

	histogram := func(name, help string, hist func() *hdrhistogram.Histogram) prometheus.Collector {
		desc := prometheus.NewDesc(prometheus.BuildFQName(shared.Namespace, subsystem, name), help, nil, nil)
		return latency.NewCollector(desc, hist, DurationBuckets)
	}
	m.others = append(m.others,
		histogram("queue_wait_seconds", "Time a request waited in the queue before a worker took it.", eng.QueueWait),
		histogram("processing_seconds", "Time a worker spent processing a request (MODE), excluding encoding and publishing the reply.", eng.Processing))
	m.others = append(m.others, eng.ConnEvents().Collectors(subsystem, true)...)
	return m
}

// Register registers every metric on reg.
func (m *Metrics) Register(reg prometheus.Registerer) error {
	for _, c := range append([]prometheus.Collector{m}, m.others...) {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register worker metrics: %w", err)
		}
	}
	return nil
}

// Describe implements prometheus.Collector for the counters and gauges.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, s := range m.series {
		ch <- s.desc
	}
}

// Collect implements prometheus.Collector: one snapshot for every counter
// and gauge.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	v := view{Stats: m.eng.Stats(), phase: m.eng.Phase()}
	v.up, v.down = m.eng.ScalingCounts()
	v.processed = m.highest(v.Processed)
	for _, s := range m.series {
		ch <- prometheus.MustNewConstMetric(s.desc, s.kind, s.value(&v))
	}
}

// highest returns n, or the highest value it was given before if that is
// higher.
func (m *Metrics) highest(n uint64) uint64 {
	for {
		h := m.high.Load()
		if n <= h {
			return h
		}
		if m.high.CompareAndSwap(h, n) {
			return n
		}
	}
}
