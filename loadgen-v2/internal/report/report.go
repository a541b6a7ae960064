// Package report owns loadgen-v2's final report: the counts of every request
// state, the match rate, rates and latency percentiles, printed as a table
// and written as JSON with the raw histograms, so that the reports of several
// loadgen instances can be merged exactly (Merge) — percentiles of the merged
// histograms, never averages of percentiles.
package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/latency"
)

// Counts are the request and response counts of one phase of a run.
//
// Every request sent ends in exactly one of matched, timed_out or (at report
// time) still_pending: RequestsSent == Matched + TimedOut + StillPending.
// Skipped and SendFailed requests were never sent. Late, Duplicate, Unknown
// and Malformed count responses that matched no outstanding request.
type Counts struct {
	RequestsSent     uint64 `json:"requests_sent"`
	ResponsesMatched uint64 `json:"responses_matched"`
	Timeouts         uint64 `json:"timeouts"`
	StillPending     uint64 `json:"still_pending"`
	Skipped          uint64 `json:"skipped"`
	SendFailed       uint64 `json:"send_failed"`
	Late             uint64 `json:"late"`
	Duplicate        uint64 `json:"duplicate"`
	Unknown          uint64 `json:"unknown"`
	Malformed        uint64 `json:"malformed"`
}

// Add adds o to c.
func (c *Counts) Add(o Counts) {
	c.RequestsSent += o.RequestsSent
	c.ResponsesMatched += o.ResponsesMatched
	c.Timeouts += o.Timeouts
	c.StillPending += o.StillPending
	c.Skipped += o.Skipped
	c.SendFailed += o.SendFailed
	c.Late += o.Late
	c.Duplicate += o.Duplicate
	c.Unknown += o.Unknown
	c.Malformed += o.Malformed
}

// Balanced reports whether sent == matched + timed out + still pending.
func (c Counts) Balanced() bool {
	return c.RequestsSent == c.ResponsesMatched+c.Timeouts+c.StillPending
}

// Histograms are the raw histograms of a report, HdrHistogram V2 compressed
// and base64 encoded (values in microseconds).
type Histograms struct {
	Latency          string `json:"latency"`
	ScheduleLag      string `json:"schedule_lag"`
	WorkerQueue      string `json:"worker_queue"`
	WorkerProcessing string `json:"worker_processing"`
}

// Report is the final report of one loadgen run (or of several, merged).
type Report struct {
	Instances []string `json:"instances"`
	Counts
	MatchRate       float64         `json:"match_rate"`
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
	Warmup          *Counts         `json:"warmup,omitempty"`
	SLO             SLO             `json:"slo"`
	Histograms      Histograms      `json:"histograms"`
	Process         *Process        `json:"process,omitempty"`
	Config          json.RawMessage `json:"config,omitempty"`
	BrokerDropped   *int64          `json:"broker_dropped,omitempty"`
}

// Process is the resource use of the loadgen process over the whole run
// (start-up and drain included), from getrusage.
type Process struct {
	CPUUserSeconds   float64 `json:"cpu_user_s"`
	CPUSystemSeconds float64 `json:"cpu_system_s"`
	MaxRSSMB         float64 `json:"max_rss_mb"`
	// CPUMicrosPerRequest is (user + system) CPU per request sent, µs: the
	// loadgen's own cost of a round trip (publish, response, accounting).
	CPUMicrosPerRequest float64 `json:"cpu_us_per_request"`
	// SendingCPUMicrosPerRequest is the same over the sending phase only
	// (connecting, start-up and the final drain excluded): the steady-state
	// cost of a round trip.
	SendingCPUMicrosPerRequest float64 `json:"sending_cpu_us_per_request"`
}

// SLO is the outcome of the service-level objectives of a run.
type SLO struct {
	P99MS     float64  `json:"p99_ms,omitempty"`
	MatchRate float64  `json:"match_rate,omitempty"`
	Passed    bool     `json:"passed"`
	Failures  []string `json:"failures,omitempty"`
}

// Hists are the live histograms a report is computed from.
type Hists struct {
	Latency, ScheduleLag, WorkerQueue, WorkerProcess *hdrhistogram.Histogram
}

// Finish computes the derived fields of r (match rate, rates, percentiles,
// SLO) from its counts, its duration and h, and encodes h into r.
func (r *Report) Finish(h Hists, sloP99, sloMatch float64) error {
	r.MatchRate = 0
	if r.RequestsSent > 0 {
		r.MatchRate = float64(r.ResponsesMatched) / float64(r.RequestsSent)
	}
	if r.DurationSeconds > 0 {
		r.ThroughputRPS = float64(r.RequestsSent) / r.DurationSeconds
		r.ResponsesRPS = float64(r.ResponsesMatched) / r.DurationSeconds
	}
	if r.TargetRPS > 0 {
		r.RateRatio = r.ThroughputRPS / r.TargetRPS
	}
	r.Balanced = r.Counts.Balanced()
	r.Latency = latency.Summarize(h.Latency)
	r.ScheduleLag = latency.Summarize(h.ScheduleLag)
	r.WorkerQueue = latency.Summarize(h.WorkerQueue)
	r.WorkerProcess = latency.Summarize(h.WorkerProcess)
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
	r.evaluateSLO(sloP99, sloMatch)
	return err
}

func (r *Report) evaluateSLO(p99, match float64) {
	r.SLO = SLO{P99MS: p99, MatchRate: match, Passed: true}
	if p99 > 0 && (r.Latency.Count == 0 || r.Latency.P99 > p99) {
		r.SLO.Failures = append(r.SLO.Failures, fmt.Sprintf("p99 latency %.3f ms exceeds SLO_P99_MS=%g", r.Latency.P99, p99))
	}
	if match > 0 && r.MatchRate < match {
		r.SLO.Failures = append(r.SLO.Failures, fmt.Sprintf("match rate %.6f is below SLO_MATCH_RATE=%g", r.MatchRate, match))
	}
	if !r.Balanced {
		r.SLO.Failures = append(r.SLO.Failures, fmt.Sprintf("accounting does not balance: sent %d != matched %d + timed out %d + pending %d",
			r.RequestsSent, r.ResponsesMatched, r.Timeouts, r.StillPending))
	}
	r.SLO.Passed = len(r.SLO.Failures) == 0
}

// WriteJSON writes r as indented JSON to path.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// Read reads a JSON report.
func Read(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

// Merge combines the reports of loadgen instances that ran side by side:
// counts add up, rates add up, the duration is the longest, and percentiles
// are read from the merged histograms.
func Merge(rs []*Report, sloP99, sloMatch float64) (*Report, error) {
	if len(rs) == 0 {
		return nil, errors.New("merge: no reports")
	}
	out := &Report{Config: rs[0].Config}
	hs := Hists{latency.New(), latency.New(), latency.New(), latency.New()}
	for i, r := range rs {
		out.Instances = append(out.Instances, r.Instances...)
		out.Counts.Add(r.Counts)
		out.TargetRPS += r.TargetRPS
		out.DurationSeconds = max(out.DurationSeconds, r.DurationSeconds)
		for _, x := range []struct {
			dst *hdrhistogram.Histogram
			src string
		}{{hs.Latency, r.Histograms.Latency}, {hs.ScheduleLag, r.Histograms.ScheduleLag}, {hs.WorkerQueue, r.Histograms.WorkerQueue}, {hs.WorkerProcess, r.Histograms.WorkerProcessing}} {
			if x.src == "" {
				continue
			}
			h, err := latency.Decode(x.src)
			if err != nil {
				return nil, fmt.Errorf("report %d: %w", i, err)
			}
			x.dst.Merge(h)
		}
	}
	if err := out.Finish(hs, sloP99, sloMatch); err != nil {
		return nil, err
	}
	// Rates of concurrent instances add up; Finish divided by the longest duration.
	out.ThroughputRPS, out.ResponsesRPS = 0, 0
	for _, r := range rs {
		out.ThroughputRPS += r.ThroughputRPS
		out.ResponsesRPS += r.ResponsesRPS
	}
	if out.TargetRPS > 0 {
		out.RateRatio = out.ThroughputRPS / out.TargetRPS
	}
	return out, nil
}

// WriteText prints r as a readable table.
func (r *Report) WriteText(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	p := func(format string, a ...any) { fmt.Fprintf(tw, format+"\n", a...) }
	p("=== mqtt-rr-bench loadgen report (%s) ===", strings.Join(r.Instances, ", "))
	p("duration\t%.1f s", r.DurationSeconds)
	p("target rate\t%.0f req/s", r.TargetRPS)
	p("achieved rate\t%.0f req/s\t(ratio %.4f)", r.ThroughputRPS, r.RateRatio)
	p("requests sent\t%d", r.RequestsSent)
	p("  matched\t%d", r.ResponsesMatched)
	p("  timed out\t%d", r.Timeouts)
	p("  still pending\t%d", r.StillPending)
	p("not sent: skipped (inflight limit)\t%d", r.Skipped)
	p("not sent: send failed\t%d", r.SendFailed)
	p("responses late / duplicate / unknown / malformed\t%d / %d / %d / %d", r.Late, r.Duplicate, r.Unknown, r.Malformed)
	p("match rate\t%.6f", r.MatchRate)
	bal := "yes"
	if !r.Balanced {
		bal = "NO"
	}
	p("accounting balanced\t%s\t(sent = matched + timed out + pending)", bal)
	if r.Process != nil {
		p("loadgen process\tCPU %.2f s user + %.2f s sys = %.1f µs per request (%.1f µs while sending), max RSS %.1f MB",
			r.Process.CPUUserSeconds, r.Process.CPUSystemSeconds, r.Process.CPUMicrosPerRequest, r.Process.SendingCPUMicrosPerRequest, r.Process.MaxRSSMB)
	}
	if r.BrokerDropped != nil {
		p("broker dropped\t%d", *r.BrokerDropped)
	}
	p("")
	p("latency (ms)\tp50\tp90\tp99\tp99.9\tp99.99\tmax\tcount")
	row := func(name string, s latency.Summary) {
		p("%s\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t%d", name, s.P50, s.P90, s.P99, s.P999, s.P9999, s.Max, s.Count)
	}
	row("round trip (from intended send)", r.Latency)
	row("  schedule lag (send - intended)", r.ScheduleLag)
	row("  worker queue wait", r.WorkerQueue)
	row("  worker processing", r.WorkerProcess)
	if r.Warmup != nil {
		p("")
		p("warmup (excluded)\tsent %d, matched %d, timed out %d, pending %d", r.Warmup.RequestsSent, r.Warmup.ResponsesMatched, r.Warmup.Timeouts, r.Warmup.StillPending)
	}
	if r.SLO.P99MS > 0 || r.SLO.MatchRate > 0 || len(r.SLO.Failures) > 0 {
		p("")
		if r.SLO.Passed {
			p("SLO\tPASSED")
		} else {
			for _, f := range r.SLO.Failures {
				p("SLO FAILED\t%s", f)
			}
		}
	}
	_ = tw.Flush()
}
