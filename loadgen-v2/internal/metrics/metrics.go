// Package metrics owns the loadgen's Prometheus metrics, all in this file:
// namespace mqttrr, subsystem loadgen, every series labelled with the run's
// run_id and, in a fleet run, the fleet's fleet_id. The counters and gauges
// come from one books.Snapshot taken per scrape (so they agree with each
// other), the latency histograms from the books' HDR recorders
// (latency.Collector), the connection counters from the books' connection
// events. Nothing here is on the hot path, and nothing here steers the run:
// metrics only read.
//
// The request counts carry the period of their requests' intended send
// time, period="warmup" (before WARMUP) or period="measured": the measured
// ones are the report's counts, the warm-up ones its "warmup" counts, so
// Prometheus reads the report exactly, instance by instance and summed over
// a fleet. Responses that match no request at all (unknown, malformed,
// oversized) have no intended time; like the report, they count as measured.
//
// A dashboard selects one run with {run_id="…"}, a fleet with
// {fleet_id="…"} (a single run has no fleet_id, which Prometheus reads as
// fleet_id=""), and reads whole-run figures with
// last_over_time(…{period="measured"}[$__range]), like k6's testid.
package metrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/latency"
	shared "github.com/mqtt-rr-bench/mqtt-rr-bench/internal/metrics"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/books"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/config"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/report"
)

// Namespace is the metric namespace of both binaries; Subsystem the
// loadgen's.
const (
	Namespace = shared.Namespace
	Subsystem = "loadgen"
)

// Metrics are the loadgen's metrics.
type Metrics struct {
	runID, fleetID string
	collectors     []prometheus.Collector
}

// New returns the metrics of the run res: snapshot is called once per scrape;
// final returns the report once the run has finished (nil before).
func New(res *config.Resolved, snapshot func() books.Snapshot, b *books.Books, final func() *report.Report) *Metrics {
	hist := func(name, help string, rec *latency.Recorder) prometheus.Collector {
		return latency.NewCollector(prometheus.NewDesc(prometheus.BuildFQName(Namespace, Subsystem, name), help, nil, nil), rec.Total, nil)
	}
	m := &Metrics{runID: res.RunName()}
	if res.Fleet != nil {
		m.fleetID = res.Fleet.ID
	}
	m.collectors = append([]prometheus.Collector{
		newSnapshotCollector(res, snapshot),
		hist("latency_seconds", "Round-trip latency of matched requests after the warmup, from the intended send time (free of coordinated omission).", b.Hist.Latency),
		hist("schedule_lag_seconds", "How late requests intended after the warmup left against their intended send time.", b.Hist.ScheduleLag),
		hist("broker_network_seconds", "What is left of each matched round trip after the warmup once its own schedule lag and the worker's queue wait and processing are taken out: the broker and the network both ways.", b.Hist.BrokerNetwork),
		info(res),
		&warningsCollector{final: final, desc: prometheus.NewDesc(prometheus.BuildFQName(Namespace, Subsystem, "report_warnings"),
			"WARNING lines of the final report, by kind (report.WarnKind*; warning_kinds in the JSON report); exported once the run has finished.", []string{"kind"}, nil)},
	}, b.Conns.Collectors(Subsystem, true)...)
	return m
}

// Register registers the metrics with r, each with the label run_id and, in
// a fleet run, fleet_id. A single run has no fleet_id label rather than an
// empty one (Prometheus would drop an empty label on ingestion anyway):
// {fleet_id=""} selects the single runs, {fleet_id!=""} the fleets.
func (m *Metrics) Register(r prometheus.Registerer) error {
	labels := prometheus.Labels{"run_id": m.runID}
	if m.fleetID != "" {
		labels["fleet_id"] = m.fleetID
	}
	r = prometheus.WrapRegistererWith(labels, r)
	for _, c := range m.collectors {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// series is one series read from a snapshot.
type series struct {
	desc   *prometheus.Desc
	kind   prometheus.ValueType
	value  func(s *snapshot) float64
	labels []string // the values of the desc's variable labels
}

// snapshot is one books.Snapshot with its counts split by period.
type snapshot struct {
	books.Snapshot
	period [2]report.Counts // warmup, measured
}

// Periods of the request counts (the label period): the warm-up (requests
// intended before WARMUP, the report's "warmup" counts) and the measured
// rest (the report's counts).
const (
	PeriodWarmup   = "warmup"
	PeriodMeasured = "measured"
)

// snapshotCollector exports the figures of one snapshot per scrape.
type snapshotCollector struct {
	snapshot func() books.Snapshot
	series   []series
}

func newSnapshotCollector(res *config.Resolved, snap func() books.Snapshot) *snapshotCollector {
	c := &snapshotCollector{snapshot: snap}
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(Namespace, Subsystem, name), help, labels, nil)
	}
	periods := []string{PeriodWarmup, PeriodMeasured}
	// counts exports a count of each period, from report.Counts field f.
	counts := func(name, help string, f func(c *report.Counts) uint64) {
		d := desc(name, help+" By the period of the requests' intended send time: warmup (before WARMUP; the report's warmup counts) or measured (the report's counts).", "period")
		for i, p := range periods {
			c.series = append(c.series, series{d, prometheus.CounterValue, func(s *snapshot) float64 { return float64(f(&s.period[i])) }, []string{p}})
		}
	}
	counter := func(name, help string, f func(s *books.Snapshot) uint64) {
		c.series = append(c.series, series{desc(name, help), prometheus.CounterValue, func(s *snapshot) float64 { return float64(f(&s.Snapshot)) }, nil})
	}
	gauge := func(name, help string, f func(s *books.Snapshot) float64) {
		c.series = append(c.series, series{desc(name, help), prometheus.GaugeValue, func(s *snapshot) float64 { return f(&s.Snapshot) }, nil})
	}
	unmatched := desc("responses_unmatched_total", "Responses that matched no outstanding request, by reason (oversized: above the 2 MiB frame limit, skipped unread) and period: late, duplicate and implausible by their request's intended send time (warmup or measured); unknown, malformed and oversized match no request and, as in the report, count as measured.", "reason", "period")
	for _, u := range []struct {
		reason string
		f      func(c *report.Counts) uint64
		warmup bool // counted by period; else measured only
	}{
		{"late", func(c *report.Counts) uint64 { return c.Late }, true},
		{"duplicate", func(c *report.Counts) uint64 { return c.Duplicate }, true},
		{"implausible", func(c *report.Counts) uint64 { return c.Implausible }, true},
		{"unknown", func(c *report.Counts) uint64 { return c.Unknown }, false},
		{"malformed", func(c *report.Counts) uint64 { return c.Malformed }, false},
		{"oversized", func(c *report.Counts) uint64 { return c.Oversized }, false},
	} {
		for i, p := range periods {
			if i == books.Warmup && !u.warmup {
				continue
			}
			c.series = append(c.series, series{unmatched, prometheus.CounterValue, func(s *snapshot) float64 { return float64(u.f(&s.period[i])) }, []string{u.reason, p}})
		}
	}
	phase := desc("phase", "The run's phase: 1 for the current one (connecting, ramp-up, warm-up, steady, draining, finished), 0 for the others.", "phase")
	for _, p := range books.Phases {
		c.series = append(c.series, series{phase, prometheus.GaugeValue, func(s *snapshot) float64 {
			if s.Phase == p {
				return 1
			}
			return 0
		}, []string{p.String()}})
	}
	counts("requests_scheduled_total", "Fires the open-loop schedule made due: each is sent, skipped or send_failed.", func(c *report.Counts) uint64 { return c.Scheduled })
	counts("requests_sent_total", "Requests sent: their bytes reached the socket (a request discarded unwritten moves to send_failed).", func(c *report.Counts) uint64 { return c.RequestsSent })
	counts("responses_matched_total", "Requests answered within REQUEST_TIMEOUT.", func(c *report.Counts) uint64 { return c.ResponsesMatched })
	counts("requests_timed_out_total", "Requests without response within REQUEST_TIMEOUT.", func(c *report.Counts) uint64 { return c.Timeouts })
	counts("requests_skipped_total", "Scheduled sends skipped because the client had MAX_INFLIGHT_PER_CLIENT outstanding.", func(c *report.Counts) uint64 { return c.Skipped })
	counts("requests_send_failed_total", "Scheduled sends that failed (connection down or write buffer full).", func(c *report.Counts) uint64 { return c.SendFailed })
	counter("responses_other_run_total", "Responses on this instance's response topics with another run id (also counted unknown): another loadgen using the same INSTANCE_ID.", func(s *books.Snapshot) uint64 { return s.UnknownOtherRun })
	counter("request_bytes_total", "Payload bytes of the requests sent (warm-up included, as in the report).", func(s *books.Snapshot) uint64 { return s.RequestBytes })
	counter("response_bytes_total", "Payload bytes of the responses received, matched or not (warm-up included, as in the report).", func(s *books.Snapshot) uint64 { return s.ResponseBytes })
	gauge("pending_requests", "Requests sent and not yet matched or timed out (both periods).", func(s *books.Snapshot) float64 { return float64(s.Pending) })
	gauge("connections_up", "MQTT connections connected and subscribed.", func(s *books.Snapshot) float64 { return float64(s.ConnectionsUp) })
	gauge("connections_suspect", "Connections up that wrote requests and received nothing for REQUEST_TIMEOUT (a half-open link or a silent broker).", func(s *books.Snapshot) float64 { return float64(s.ConnectionsSuspect) })
	gauge("start_time_seconds", "When sending started, Unix time in seconds (0 while connecting).", func(s *books.Snapshot) float64 {
		if !s.Started {
			return 0
		}
		return float64(s.Epoch.UnixNano()) / 1e9
	})
	clients, rate := float64(res.VirtualClients), res.Rate()
	gauge("virtual_clients", "Virtual clients simulated by this instance.", func(*books.Snapshot) float64 { return clients })
	gauge("target_rate_rps", "Target request rate, VIRTUAL_CLIENTS / INTERVAL_MS, requests per second.", func(*books.Snapshot) float64 { return rate })
	return c
}

// Describe implements prometheus.Collector.
func (c *snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	seen := map[*prometheus.Desc]bool{}
	for _, s := range c.series {
		if !seen[s.desc] {
			seen[s.desc] = true
			ch <- s.desc
		}
	}
}

// Collect implements prometheus.Collector: every series from one snapshot.
func (c *snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	snap := snapshot{Snapshot: c.snapshot()}
	snap.period[books.Warmup], snap.period[books.Measured] = snap.Warmup, snap.Measured()
	for _, s := range c.series {
		ch <- prometheus.MustNewConstMetric(s.desc, s.kind, s.value(&snap), s.labels...)
	}
}

// info is the run's identity: a gauge of 1 whose labels say which run this
// is (run_id and, in a fleet, fleet_id, added by Register; instance_id,
// INSTANCE_ID; in a fleet, fleet_index and fleet_size) and how it talks to
// the service (one series per run, never per client). The label is not
// "instance", which Prometheus sets to the scrape target.
func info(res *config.Resolved) prometheus.Collector {
	labels := prometheus.Labels{
		"instance_id": res.InstanceID, "mqtt_version": mqttconn.VersionName(res.Protocol.Version), "correlate": res.Protocol.Label,
		"qos": strconv.Itoa(res.QoS), "virtual_clients": strconv.Itoa(res.VirtualClients), "interval_ms": strconv.Itoa(res.IntervalMS),
		"connections": strconv.Itoa(res.Connections),
	}
	if f := res.Fleet; f != nil {
		labels["fleet_index"], labels["fleet_size"] = strconv.Itoa(f.Index), strconv.Itoa(f.Size)
	}
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: Namespace, Subsystem: Subsystem, Name: "info",
		Help:        "The run: its instance id, fleet index and size (fleet runs), MQTT version, correlation mode, QoS and main settings (value 1; run_id and fleet_id as on every series).",
		ConstLabels: labels,
	}, func() float64 { return 1 })
}

// warningsCollector exports the final report's warnings, one series per
// kind present (nothing before the run has finished).
type warningsCollector struct {
	final func() *report.Report
	desc  *prometheus.Desc
}

// Describe implements prometheus.Collector.
func (c *warningsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *warningsCollector) Collect(ch chan<- prometheus.Metric) {
	r := c.final()
	if r == nil {
		return
	}
	for kind, n := range r.WarningCounts() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), kind)
	}
}
