// Package report owns loadgen-v2's final report: the counts of every request
// state, the match rate, rates and latency percentiles, the process's
// resource use, assembled from a finished run (Build), printed as a table
// (WriteText) and written as JSON with the raw histograms (WriteJSON), so
// that the reports of several loadgen instances can be merged exactly
// (Merge) — percentiles of the merged histograms, never averages of
// percentiles. The JSON fields and the text lines are a contract read by
// scripts, charts and tests (testdata/*.golden pins them).
package report

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/latency"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
)

// Counts are the request and response counts of one phase of a run.
//
// Two identities hold exactly (the books):
//
//	Scheduled    == RequestsSent + Skipped + SendFailed
//	RequestsSent == ResponsesMatched + Timeouts + StillPending
//
// Every fire the open-loop schedule made due (for a client already online in
// the ramp-up) is scheduled; it is sent (its bytes reached the socket),
// skipped (the client had MAX_INFLIGHT_PER_CLIENT outstanding) or failed
// (connection down, write buffer full, or still unwritten at the end). Every
// request sent ends matched, timed out or (at report time) still pending.
// Late, Duplicate, Implausible, Unknown and Malformed count responses that
// matched no outstanding request; Oversized inbound messages too large to
// read.
type Counts struct {
	Scheduled        uint64 `json:"scheduled"`
	RequestsSent     uint64 `json:"requests_sent"`
	ResponsesMatched uint64 `json:"responses_matched"`
	Timeouts         uint64 `json:"timeouts"`
	StillPending     uint64 `json:"still_pending"`
	Skipped          uint64 `json:"skipped"`
	SendFailed       uint64 `json:"send_failed"`
	Late             uint64 `json:"late"`
	Duplicate        uint64 `json:"duplicate"`
	Implausible      uint64 `json:"implausible"`
	Unknown          uint64 `json:"unknown"`
	// UnknownOtherRun are the unknown responses that carried our instance's
	// response topic and another run id: another loadgen using our
	// INSTANCE_ID (or a previous run's answers).
	UnknownOtherRun uint64 `json:"unknown_other_run"`
	Malformed       uint64 `json:"malformed"`
	// Oversized are inbound messages above the connections' frame limit
	// (mqttconn.DefaultMaxInboundFrame, 2 MiB): skipped unread, the
	// connection kept.
	Oversized uint64 `json:"oversized"`
}

// Add adds o to c.
func (c *Counts) Add(o Counts) {
	c.Scheduled += o.Scheduled
	c.RequestsSent += o.RequestsSent
	c.ResponsesMatched += o.ResponsesMatched
	c.Timeouts += o.Timeouts
	c.StillPending += o.StillPending
	c.Skipped += o.Skipped
	c.SendFailed += o.SendFailed
	c.Late += o.Late
	c.Duplicate += o.Duplicate
	c.Implausible += o.Implausible
	c.Unknown += o.Unknown
	c.UnknownOtherRun += o.UnknownOtherRun
	c.Malformed += o.Malformed
	c.Oversized += o.Oversized
}

// Balanced reports whether both identities of the books hold.
func (c Counts) Balanced() bool { return c.SentBalanced() && c.ScheduledBalanced() }

// SentBalanced reports whether sent == matched + timed out + still pending.
func (c Counts) SentBalanced() bool {
	return c.RequestsSent == c.ResponsesMatched+c.Timeouts+c.StillPending
}

// ScheduledBalanced reports whether scheduled == sent + skipped + send failed.
func (c Counts) ScheduledBalanced() bool {
	return c.Scheduled == c.RequestsSent+c.Skipped+c.SendFailed
}

// Settled returns the settled match ratio, matched / (matched + timed out):
// requests still in flight count neither way. ok is false when nothing has
// settled yet (print "–", not 1).
func (c Counts) Settled() (ratio float64, ok bool) {
	if d := c.ResponsesMatched + c.Timeouts; d > 0 {
		return float64(c.ResponsesMatched) / float64(d), true
	}
	return 0, false
}

// Histograms are the raw histograms of a report, HdrHistogram V2 compressed
// and base64 encoded (values in microseconds).
type Histograms struct {
	Latency          string `json:"latency"`
	ScheduleLag      string `json:"schedule_lag"`
	WorkerQueue      string `json:"worker_queue"`
	WorkerProcessing string `json:"worker_processing"`
	BrokerNetwork    string `json:"broker_network,omitempty"`
}

// Report is the final report of one loadgen run (or of several, merged).
type Report struct {
	Instances []string `json:"instances"`
	// Protocol is the MQTT version ("3.1.1" or "5"); Correlation how
	// responses were matched (envelope, properties or json:FIELD).
	Protocol    string `json:"mqtt_version,omitempty"`
	Correlation string `json:"correlate,omitempty"`
	Counts
	// RequestBytes and ResponseBytes are the payload bytes of the requests
	// sent and of the responses received over the whole run (warmup and
	// drain included); the rates divide them by the sending time.
	RequestBytes        uint64  `json:"request_bytes"`
	ResponseBytes       uint64  `json:"response_bytes"`
	RequestBytesPerSec  float64 `json:"request_bytes_per_s"`
	ResponseBytesPerSec float64 `json:"response_bytes_per_s"`
	// SuccessRate is the headline: matched / scheduled, the share of the
	// requests the schedule asked for that got their answer in time.
	SuccessRate float64 `json:"success_rate"`
	// MatchRate is matched / sent: the service's answer rate for what left.
	MatchRate float64 `json:"match_rate"`
	// VirtualClients is the number configured; ClientsFired how many of them
	// had at least one scheduled fire in the run (warmup included).
	VirtualClients  uint64  `json:"virtual_clients"`
	ClientsFired    uint64  `json:"clients_fired"`
	IntervalSeconds float64 `json:"interval_s"`
	// Warnings are what a reader must not miss (Warn), WarningKinds their
	// kinds (WarnKind*), in the same order.
	Warnings        []string        `json:"warnings,omitempty"`
	WarningKinds    []string        `json:"warning_kinds,omitempty"`
	DurationSeconds float64         `json:"duration_s"`
	TargetRPS       float64         `json:"target_rps"`
	ThroughputRPS   float64         `json:"throughput_rps"`
	ResponsesRPS    float64         `json:"responses_rps"`
	RateRatio       float64         `json:"rate_ratio"`
	Balanced        bool            `json:"accounting_balanced"`
	Latency         latency.Summary `json:"latency_ms"`
	ScheduleLag     latency.Summary `json:"schedule_lag_ms"`
	WorkerQueue     latency.Summary `json:"worker_queue_ms"`
	WorkerProcess   latency.Summary `json:"worker_processing_ms"`
	// BrokerNetwork is each matched round trip less its own schedule lag
	// and the worker's stamps: the broker and the network both ways (with
	// a responder that does not stamp, the service's time too).
	BrokerNetwork latency.Summary `json:"broker_network_ms"`
	Warmup        *Counts         `json:"warmup,omitempty"`
	SLO           SLO             `json:"slo"`
	Histograms    Histograms      `json:"histograms"`
	Usage         *ProcessUsage   `json:"process,omitempty"`
	Config        json.RawMessage `json:"config,omitempty"`
	// Broker is what the broker announced when the connections connected:
	// the protocol it accepted and, on MQTT 5, the CONNACK's limits.
	Broker        *mqttconn.Capabilities `json:"broker,omitempty"`
	BrokerDropped *int64                 `json:"broker_dropped,omitempty"`

	// Fleet is the fleet the run belonged to (FLEET_ID, FLEET_SIZE); nil for
	// a single run.
	Fleet *Fleet `json:"fleet,omitempty"`
	// Runs identify the run of each instance in the report (one, or one per
	// merged report): its run id, client range, times and settings digest.
	// Merge checks them.
	Runs []Run `json:"runs,omitempty"`
	// SpanSeconds (merged reports whose runs carry their times) is the true
	// span of the measured windows, first measured start to last end,
	// seconds; DurationSeconds equals it and the rates are over it.
	// CommonSeconds is the window in which every instance was measuring,
	// last measured start to first end (0: the windows do not all overlap).
	SpanSeconds   float64 `json:"span_s,omitempty"`
	CommonSeconds float64 `json:"common_window_s,omitempty"`

	// InstanceClaims are the claims of other runs on this instance id seen
	// while the run lasted (package claim): another loadgen with our
	// INSTANCE_ID, each described by its run id, host, pid and times.
	InstanceClaims []string `json:"instance_claims,omitempty"`

	// Source names where the report came from, for Merge's messages: the
	// file Read read it from, or what the caller sets (an instance's name).
	// Not in the JSON.
	Source string `json:"-"`
}

// Fleet is the fleet of a fleet run.
type Fleet struct {
	ID   string `json:"id"`
	Size int    `json:"size"`
}

// Run identifies one instance's run: who, which virtual clients, when, with
// which settings.
type Run struct {
	Instance string `json:"instance"`
	RunID    string `json:"run_id"`
	Host     string `json:"host,omitempty"`
	PID      int    `json:"pid,omitempty"`
	// FleetIndex is the instance's FLEET_INDEX (fleet runs only).
	FleetIndex *int `json:"fleet_index,omitempty"`
	// FirstClient is the id of the first virtual client, Clients how many.
	FirstClient uint64 `json:"first_client"`
	Clients     uint64 `json:"clients"`
	// Start is the run's epoch (intended time 0: its schedule, ramp-up and
	// warm-up count from it); MeasuredStart is Start + WARMUP; End is when
	// sending ended. Wall clock, UTC.
	Start         time.Time `json:"start"`
	MeasuredStart time.Time `json:"measured_start"`
	End           time.Time `json:"end"`
	// StartSkewMS (fleet runs) is how far the instance actually started
	// from the start the coordinator announced, milliseconds (positive:
	// late).
	StartSkewMS *float64 `json:"start_skew_ms,omitempty"`
	// ConfigDigest is the hash of the settings a fleet's instances must
	// share (config.FleetSettings).
	ConfigDigest string `json:"config_digest,omitempty"`
}

// SLO is the outcome of the service-level objectives of a run.
type SLO struct {
	P99MS       float64  `json:"p99_ms,omitempty"`
	MatchRate   float64  `json:"match_rate,omitempty"`
	SuccessRate float64  `json:"success_rate,omitempty"`
	Passed      bool     `json:"passed"`
	Failures    []string `json:"failures,omitempty"`
}

// Hists are the live histograms a report is computed from.
type Hists struct {
	Latency, ScheduleLag, WorkerQueue, WorkerProcess, BrokerNetwork *hdrhistogram.Histogram
}

// Objectives are the service-level objectives a report is checked against;
// zero means none (SLO_SUCCESS_RATE defaults to 0.99 in the configuration, so
// a run that mostly failed fails unless the user turns it off).
type Objectives struct {
	P99MS, MatchRate, SuccessRate float64
}

// Finish computes the derived fields of r (rates, percentiles, warnings,
// SLO) from its counts, its duration and h, and encodes h into r.
func (r *Report) Finish(h Hists, slo Objectives) error { return r.finish(h, slo, nil) }

// finish is Finish; rates, when set, overrides the rates computed from the
// counts before the ratio, warnings and SLO are derived from them.
func (r *Report) finish(h Hists, slo Objectives, rates func()) error {
	for _, x := range []**hdrhistogram.Histogram{&h.Latency, &h.ScheduleLag, &h.WorkerQueue, &h.WorkerProcess, &h.BrokerNetwork} {
		if *x == nil {
			*x = latency.New() // not measured: empty
		}
	}
	r.MatchRate, r.SuccessRate = 0, 0
	if r.RequestsSent > 0 {
		r.MatchRate = float64(r.ResponsesMatched) / float64(r.RequestsSent)
	}
	if r.Scheduled > 0 {
		r.SuccessRate = float64(r.ResponsesMatched) / float64(r.Scheduled)
	}
	if r.DurationSeconds > 0 {
		r.ThroughputRPS = float64(r.RequestsSent) / r.DurationSeconds
		r.ResponsesRPS = float64(r.ResponsesMatched) / r.DurationSeconds
	}
	if rates != nil {
		rates()
	}
	if r.TargetRPS > 0 {
		r.RateRatio = r.ThroughputRPS / r.TargetRPS
	}
	r.Balanced = r.Counts.Balanced()
	r.Latency = latency.Summarize(h.Latency)
	r.ScheduleLag = latency.Summarize(h.ScheduleLag)
	r.WorkerQueue = latency.Summarize(h.WorkerQueue)
	r.WorkerProcess = latency.Summarize(h.WorkerProcess)
	r.BrokerNetwork = latency.Summarize(h.BrokerNetwork)
	var err error
	enc := func(dst *string, x *hdrhistogram.Histogram) {
		if err == nil {
			*dst, err = latency.Encode(x)
		}
	}
	enc(&r.Histograms.Latency, h.Latency)
	enc(&r.Histograms.ScheduleLag, h.ScheduleLag)
	enc(&r.Histograms.WorkerQueue, h.WorkerQueue)
	enc(&r.Histograms.WorkerProcessing, h.WorkerProcess)
	enc(&r.Histograms.BrokerNetwork, h.BrokerNetwork)
	r.warn()
	r.warnLatency(h)
	r.evaluateSLO(slo)
	return err
}

func (r *Report) evaluateSLO(o Objectives) {
	r.SLO = SLO{P99MS: o.P99MS, MatchRate: o.MatchRate, SuccessRate: o.SuccessRate, Passed: true}
	if o.P99MS > 0 && (r.Latency.Count == 0 || r.Latency.P99 > o.P99MS) {
		r.SLO.Failures = append(r.SLO.Failures, fmt.Sprintf("p99 latency %.3f ms exceeds SLO_P99_MS=%g", r.Latency.P99, o.P99MS))
	}
	if o.MatchRate > 0 && r.MatchRate < o.MatchRate {
		r.SLO.Failures = append(r.SLO.Failures, fmt.Sprintf("match rate %.6f is below SLO_MATCH_RATE=%g", r.MatchRate, o.MatchRate))
	}
	if o.SuccessRate > 0 && r.Scheduled == 0 {
		r.SLO.Failures = append(r.SLO.Failures, fmt.Sprintf("nothing was scheduled (stopped before sending): no success rate to hold to SLO_SUCCESS_RATE=%g", o.SuccessRate))
	} else if o.SuccessRate > 0 && r.SuccessRate < o.SuccessRate {
		r.SLO.Failures = append(r.SLO.Failures, fmt.Sprintf("success rate %.6f (matched / scheduled) is below SLO_SUCCESS_RATE=%g", r.SuccessRate, o.SuccessRate))
	}
	if !r.SentBalanced() {
		r.SLO.Failures = append(r.SLO.Failures, fmt.Sprintf("accounting does not balance: sent %d != matched %d + timed out %d + pending %d", r.RequestsSent, r.ResponsesMatched, r.Timeouts, r.StillPending))
	}
	if !r.ScheduledBalanced() {
		r.SLO.Failures = append(r.SLO.Failures, fmt.Sprintf("accounting does not balance: scheduled %d != sent %d + skipped %d + send failed %d", r.Scheduled, r.RequestsSent, r.Skipped, r.SendFailed))
	}
	r.SLO.Passed = len(r.SLO.Failures) == 0
}
