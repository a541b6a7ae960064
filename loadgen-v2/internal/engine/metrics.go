package engine

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/latency"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/metrics"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
)

// Namespace is the metric namespace of both binaries.
const Namespace = metrics.Namespace

const subsystem = "loadgen"

// Metrics are the loadgen's Prometheus metrics. Everything is read from the
// engine's own state at scrape time: counters from its atomic counters
// (CounterFunc), histograms from its HDR recorders (hdrCollector), so the hot
// path never touches Prometheus.
//
// Every series carries the label run_id (Register adds it): a run's series
// are its own, so a dashboard selects one run with {run_id="…"} and reads
// its whole-run figures with last_over_time(…[$__range]), like k6's testid.
type Metrics struct {
	runID      string
	conns      *connWatch
	collectors []prometheus.Collector
}

// newMetrics builds the metrics of e. It also puts a connWatch between e and
// its Dialer, which counts connection state changes and tells Phase when the
// run has finished.
func newMetrics(e *Engine) *Metrics {
	m := &Metrics{runID: e.RunID(), conns: newConnWatch(e.cfg.Connections)}
	e.dial = m.conns.dialer(e.dial)
	hist := func(name, help string, rec *latency.Recorder) prometheus.Collector {
		return latency.NewCollector(prometheus.NewDesc(prometheus.BuildFQName(Namespace, subsystem, name), help, nil, nil), rec.Total, nil)
	}
	counter := func(name, help string, f func() uint64) prometheus.Collector {
		return metrics.Counter(subsystem, name, help, nil, f)
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return metrics.Gauge(subsystem, name, help, nil, f)
	}
	sum := func(f func(c *counters) uint64) func() uint64 {
		return func() uint64 { return f(&e.counts[0]) + f(&e.counts[1]) }
	}
	unmatched := func(reason string, f func() uint64) prometheus.Collector {
		return metrics.Counter(subsystem, "responses_unmatched_total", "Responses that matched no outstanding request, by reason.",
			prometheus.Labels{"reason": reason}, f)
	}
	m.collectors = []prometheus.Collector{
		hist("latency_seconds", "Round-trip latency of matched requests after the warmup, from the intended send time (free of coordinated omission).", e.lat),
		hist("schedule_lag_seconds", "How late requests left against their intended send time.", e.lag),
		counter("requests_sent_total", "Requests sent: their bytes reached the socket (a request discarded unwritten moves to send_failed).", sum(func(c *counters) uint64 { return c.sent.Load() })),
		counter("responses_matched_total", "Requests answered within REQUEST_TIMEOUT.", sum(func(c *counters) uint64 { return c.matched.Load() })),
		counter("requests_timed_out_total", "Requests without response within REQUEST_TIMEOUT.", sum(func(c *counters) uint64 { return c.timedOut.Load() })),
		counter("requests_skipped_total", "Scheduled sends skipped because the client had MAX_INFLIGHT_PER_CLIENT outstanding.", sum(func(c *counters) uint64 { return c.skipped.Load() })),
		counter("requests_send_failed_total", "Scheduled sends that failed (connection down or write buffer full).", sum(func(c *counters) uint64 { return c.sendFailed.Load() })),
		unmatched("late", sum(func(c *counters) uint64 { return c.late.Load() })),
		unmatched("duplicate", sum(func(c *counters) uint64 { return c.duplicate.Load() })),
		unmatched("implausible", sum(func(c *counters) uint64 { return c.implausible.Load() })),
		unmatched("unknown", e.unknown.Load),
		unmatched("malformed", e.malformed.Load),
		gauge("pending_requests", "Requests sent and not yet matched or timed out.", func() float64 { return float64(e.pendingNow()) }),
		gauge("virtual_clients", "Virtual clients simulated by this instance.", func() float64 { return float64(e.cfg.VirtualClients) }),
		gauge("connections_up", "MQTT connections connected and subscribed.", func() float64 { return float64(e.connsUp()) }),
		gauge("connections_suspect", "Connections up that wrote requests and received nothing for REQUEST_TIMEOUT (a half-open link or a silent broker).", func() float64 { return float64(e.connsSuspect()) }),
		counter("requests_scheduled_total", "Fires the open-loop schedule made due: each is sent, skipped or send_failed.", sum(func(c *counters) uint64 { return c.scheduled.Load() })),
		gauge("target_rate_rps", "Target request rate, VIRTUAL_CLIENTS / INTERVAL_MS, requests per second.", func() float64 { return e.cfg.Rate() }),
		counter("request_bytes_total", "Payload bytes of the requests sent.", e.bytesOut.Load),
		counter("response_bytes_total", "Payload bytes of the responses received (matched or not).", e.responseBytes),
		gauge("start_time_seconds", "When sending started, Unix time in seconds (0 while connecting).", func() float64 {
			if !e.started.Load() {
				return 0
			}
			return float64(e.epoch.UnixNano()) / 1e9
		}),
		info(e),
	}
	m.collectors = append(m.collectors, m.conns.events.Collectors(subsystem, true)...)
	for _, p := range Phases {
		m.collectors = append(m.collectors, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: Namespace, Subsystem: subsystem, Name: "phase",
			Help:        "The run's phase: 1 for the current one (connecting, ramp-up, warm-up, steady, draining, finished), 0 for the others.",
			ConstLabels: prometheus.Labels{"phase": p.String()},
		}, func() float64 {
			if e.Phase() == p {
				return 1
			}
			return 0
		}))
	}
	return m
}

// info is the run's identity: a gauge of 1 whose labels say which run this
// is (run_id, added by Register; instance_id, INSTANCE_ID) and how it talks
// to the service (one series per run, never per client). The label is not
// "instance", which Prometheus sets to the scrape target.
func info(e *Engine) prometheus.Collector {
	version := mqttconn.VersionName(e.proto.Version)
	corr := e.proto.Correlation.String()
	if e.proto.JSONField != "" {
		corr += ":" + e.proto.JSONField
	}
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: Namespace, Subsystem: subsystem, Name: "info",
		Help: "The run: its instance id, MQTT version, correlation mode, QoS and main settings (value 1; run_id as on every series).",
		ConstLabels: prometheus.Labels{
			"instance_id": e.cfg.InstanceID, "mqtt_version": version, "correlate": corr,
			"qos": strconv.Itoa(e.cfg.QoS), "virtual_clients": strconv.Itoa(e.cfg.VirtualClients), "interval_ms": strconv.Itoa(e.cfg.IntervalMS),
			"connections": strconv.Itoa(e.cfg.Connections),
		},
	}, func() float64 { return 1 })
}

// Register registers the metrics with r, each with the label run_id.
func (m *Metrics) Register(r prometheus.Registerer) error {
	r = prometheus.WrapRegistererWith(prometheus.Labels{"run_id": m.runID}, r)
	for _, c := range m.collectors {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}
