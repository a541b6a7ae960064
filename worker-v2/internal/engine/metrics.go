package engine

import (
	"fmt"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	mx "github.com/mqtt-rr-bench/mqtt-rr-bench/internal/metrics"
)

// Metric namespace and subsystem: every metric is mqttrr_worker_*.
const (
	namespace = mx.Namespace
	subsystem = "worker"
)

// phases of the worker, in order (mqttrr_worker_phase).
var phases = []string{"connecting", "steady", "draining", "finished"}

// phase returns the worker's current phase.
func (e *Engine) phase() string {
	switch {
	case e.finished.Load():
		return "finished"
	case e.draining.Load():
		return "draining"
	case e.pool.Load() != nil:
		return "steady"
	}
	return "connecting"
}

// durationBuckets are the classic histogram buckets, seconds: 1 µs × 2.5^k
// up to ~36 s, so health-mode processing (about a microsecond) is resolved.
// Native-histogram buckets (factor 1.1) are exposed alongside.
var durationBuckets = prometheus.ExponentialBuckets(1e-6, 2.5, 20)

// metrics are the engine's Prometheus metrics. Counters and gauges read the
// engine's own striped counters when scraped (CounterFunc/GaugeFunc), so the
// hot path touches Prometheus only for the two histograms.
type metrics struct {
	queueWait  prometheus.Histogram
	processing prometheus.Histogram
	all        []prometheus.Collector
}

func newMetrics(e *Engine) *metrics {
	hist := func(name, help string) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Subsystem: subsystem, Name: name, Help: help,
			Buckets:                        durationBuckets,
			NativeHistogramBucketFactor:    1.1,
			NativeHistogramMaxBucketNumber: 160,
		})
	}
	m := &metrics{
		queueWait:  hist("queue_wait_seconds", "Time a request waited in the queue before a worker took it."),
		processing: hist("processing_seconds", "Time a worker spent processing a request (MODE), excluding encoding and publishing the reply."),
	}
	m.all = append(m.all, m.queueWait, m.processing)
	counter := func(name, help string, labels prometheus.Labels, f func() uint64) {
		m.all = append(m.all, mx.Counter(subsystem, name, help, labels, f))
	}
	gauge := func(name, help string, f func() float64) {
		m.all = append(m.all, mx.Gauge(subsystem, name, help, nil, f))
	}

	counter("messages_received_total", "Messages received on the request subscription.", nil, e.received)
	const outcomeHelp = "Received messages by final outcome: processed (replied), dropped_full (queue full), " +
		"malformed (not a request), reply_failed (reply not sent), abandoned (left at shutdown)."
	for _, o := range []struct {
		name string
		f    func() uint64
	}{
		// processed drops by one when a connection discards a reply it had
		// buffered (it moves to reply_failed); a counter must not go down,
		// so the exported value holds its highest until processed passes it.
		{"processed", monotonic(e.processed)},
		{"dropped_full", e.droppedFull},
		{"malformed", e.malformed},
		{"reply_failed", e.replyFailed},
		{"abandoned", e.abandoned},
	} {
		counter("messages_total", outcomeHelp, prometheus.Labels{"outcome": o.name}, o.f)
	}
	counter("scaling_events_total", "Autoscaler changes of the worker count, by direction.", prometheus.Labels{"direction": "up"}, e.scaler.Ups)
	counter("scaling_events_total", "Autoscaler changes of the worker count, by direction.", prometheus.Labels{"direction": "down"}, e.scaler.Downs)
	gauge("queue_depth", "Messages waiting in the queue.", func() float64 { return float64(len(e.queue)) })
	gauge("queue_capacity", "Capacity of the queue (QUEUE_CAP), messages.", func() float64 { return float64(cap(e.queue)) })
	gauge("queue_bytes", "Bytes the waiting messages hold (their payload copies).", func() float64 { return float64(e.queueBytes.Load()) })
	gauge("queue_capacity_bytes", "Capacity of the queue in bytes (QUEUE_MAX_BYTES).", func() float64 { return float64(e.cfg.QueueMaxBytes) })
	gauge("queue_oldest_seconds", "How long the oldest waiting message has waited (0 when the queue is empty); above SCALE_MAX_WAIT the pool scales up.",
		func() float64 { return e.oldestWait().Seconds() })
	gauge("blocked", "Messages held by a connection waiting for room in the queue (DROP_ON_FULL=false).", func() float64 { return float64(e.blocked()) })
	gauge("in_flight", "Messages being processed by a worker.", func() float64 { return float64(e.inFlight()) })
	gauge("workers", "Live worker goroutines.", func() float64 { return float64(e.live.Load()) })
	gauge("max_workers", "Upper bound of the pool: MAX_WORKERS, in MODE=cpu at most max(MIN_WORKERS, GOMAXPROCS).", func() float64 { return float64(e.maxWorkers) })
	gauge("demand_workers", "Workers the offered load keeps busy on average over the last SCALE_INTERVAL: arrival rate × mean service time (Little's law).",
		func() float64 { return e.lastSample().demand })
	gauge("utilization_ratio", "demand_workers / max_workers: the share of this instance's pool the offered load needs; above 1 it cannot keep up alone. The Pods metric of the queue-aware HPA.",
		e.utilization)
	gauge("min_workers", "Lower bound of the pool (MIN_WORKERS).", func() float64 { return float64(e.cfg.MinWorkers) })
	m.all = append(m.all, e.connEvents.Collectors(subsystem, true)...)
	for _, p := range phases {
		m.all = append(m.all, mx.Gauge(subsystem, "phase",
			"The worker's phase: 1 for the current one (connecting, steady, draining, finished), 0 for the others.",
			prometheus.Labels{"phase": p}, func() float64 {
				if e.phase() == p {
					return 1
				}
				return 0
			}))
	}
	gauge("connections_up", "MQTT connections connected and subscribed.", func() float64 {
		if p := e.pool.Load(); p != nil {
			return float64(p.Up())
		}
		return 0
	})
	gauge("connections_suspect", "Connections up that wrote and heard nothing back for KEEPALIVE (a half-open link).", func() float64 {
		if p := e.pool.Load(); p != nil {
			return float64(p.Suspect())
		}
		return 0
	})
	return m
}

// monotonic returns f clamped to the highest value it has returned.
func monotonic(f func() uint64) func() uint64 {
	var high atomic.Uint64
	return func() uint64 {
		v := f()
		for {
			h := high.Load()
			if v <= h {
				return h
			}
			if high.CompareAndSwap(h, v) {
				return v
			}
		}
	}
}

// Register registers every metric on reg.
func (m *metrics) Register(reg prometheus.Registerer) error {
	for _, c := range m.all {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register worker metrics: %w", err)
		}
	}
	return nil
}
