package engine

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Namespace is the metric namespace of both binaries.
const Namespace = "mqttrr"

const subsystem = "loadgen"

// Metrics are the loadgen's Prometheus metrics. Counters are read from the
// engine's own atomic counters at scrape time (CounterFunc), so the hot path
// never touches Prometheus; only the two histograms are observed per event.
type Metrics struct {
	Latency     prometheus.Histogram
	ScheduleLag prometheus.Histogram
	collectors  []prometheus.Collector
}

// latencyBuckets, seconds: 100 µs .. 30 s.
var latencyBuckets = []float64{
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
}

func newMetrics(e *Engine) *Metrics {
	m := &Metrics{
		Latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: subsystem, Name: "latency_seconds",
			Help:                        "Round-trip latency of matched requests, from the intended send time (free of coordinated omission).",
			Buckets:                     latencyBuckets,
			NativeHistogramBucketFactor: 1.1,
		}),
		ScheduleLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: subsystem, Name: "schedule_lag_seconds",
			Help:                        "How late requests left against their intended send time.",
			Buckets:                     latencyBuckets,
			NativeHistogramBucketFactor: 1.1,
		}),
	}
	counter := func(name, help string, f func() uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: Namespace, Subsystem: subsystem, Name: name, Help: help},
			func() float64 { return float64(f()) })
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: Namespace, Subsystem: subsystem, Name: name, Help: help}, f)
	}
	sum := func(f func(c *counters) uint64) func() uint64 {
		return func() uint64 { return f(&e.counts[0]) + f(&e.counts[1]) }
	}
	unmatched := func(reason string, f func() uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: subsystem, Name: "responses_unmatched_total",
			Help:        "Responses that matched no outstanding request, by reason.",
			ConstLabels: prometheus.Labels{"reason": reason},
		}, func() float64 { return float64(f()) })
	}
	m.collectors = []prometheus.Collector{
		m.Latency, m.ScheduleLag,
		counter("requests_sent_total", "Requests published.", sum(func(c *counters) uint64 { return c.sent.Load() })),
		counter("responses_matched_total", "Requests answered within REQUEST_TIMEOUT.", sum(func(c *counters) uint64 { return c.matched.Load() })),
		counter("requests_timed_out_total", "Requests without response within REQUEST_TIMEOUT.", sum(func(c *counters) uint64 { return c.timedOut.Load() })),
		counter("requests_skipped_total", "Scheduled sends skipped because the client had MAX_INFLIGHT_PER_CLIENT outstanding.", sum(func(c *counters) uint64 { return c.skipped.Load() })),
		counter("requests_send_failed_total", "Scheduled sends that failed (connection down or write buffer full).", sum(func(c *counters) uint64 { return c.sendFailed.Load() })),
		unmatched("late", sum(func(c *counters) uint64 { return c.late.Load() })),
		unmatched("duplicate", sum(func(c *counters) uint64 { return c.duplicate.Load() })),
		unmatched("unknown", e.unknown.Load),
		unmatched("malformed", e.malformed.Load),
		gauge("pending_requests", "Requests sent and not yet matched or timed out.", func() float64 { return float64(e.pendingNow()) }),
		gauge("virtual_clients", "Virtual clients simulated by this instance.", func() float64 { return float64(e.cfg.VirtualClients) }),
		gauge("connections_up", "MQTT connections connected and subscribed.", func() float64 { return float64(e.connsUp()) }),
		gauge("target_rate_rps", "Target request rate, VIRTUAL_CLIENTS / INTERVAL_MS, requests per second.", func() float64 { return e.cfg.Rate() }),
	}
	return m
}

// Register registers the metrics with r.
func (m *Metrics) Register(r prometheus.Registerer) error {
	for _, c := range m.collectors {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}
