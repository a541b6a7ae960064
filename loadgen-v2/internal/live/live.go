// Package live owns what a running loadgen shows: the live Stats document
// (served at /stats and /debug/vars), the percentile spectra
// (/debug/histogram) and the progress line printed every PROGRESS_INTERVAL.
// It reads the books' snapshots and histograms; it changes nothing of the
// run.
package live

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/latency"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/books"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/config"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/report"
)

// Stats is the live state of a run (served as JSON at /stats, and at
// /debug/vars under "loadgen"). Figures of the run so far and figures of the
// last window are told apart by their names: the window ones are RateRPS,
// IntervalMatchRate and LatencyMS (WindowSeconds long, ending
// WindowEndSeconds into the run); everything else is the run so far.
type Stats struct {
	InstanceID string `json:"instance_id"`
	RunID      string `json:"run_id"`
	// Phase: connecting, ramp-up, warm-up, steady, draining or finished.
	Phase          string  `json:"phase"`
	Running        bool    `json:"running"`
	ElapsedSeconds float64 `json:"elapsed_s"`
	// StartedAt is when sending started (RFC 3339; empty while connecting).
	StartedAt string `json:"started_at,omitempty"`
	// DurationSeconds is DURATION (0: until stopped), WarmupSeconds WARMUP.
	DurationSeconds    float64 `json:"duration_s"`
	WarmupSeconds      float64 `json:"warmup_s"`
	VirtualClients     int     `json:"virtual_clients"`
	Connections        int     `json:"connections"`
	ConnectionsUp      int     `json:"connections_up"`
	TargetRPS          float64 `json:"target_rps"`
	RateRPS            float64 `json:"rate_rps"`
	ConnectionsSuspect int     `json:"connections_suspect"`
	// Connection changes over the run: connections made (the first ones
	// included), lost while in use, and made again after a loss.
	Connects         uint64 `json:"connects"`
	ConnectionLosses uint64 `json:"connection_losses"`
	Reconnects       uint64 `json:"reconnects"`
	// Counts are both phases (warmup included); StillPending stays 0 live:
	// Pending is sent − matched − timed out.
	report.Counts
	Pending int64 `json:"pending"`
	// MatchRate is the settled ratio over the run so far, matched / (matched
	// + timed out): requests still in flight count neither way. Null until
	// a request has settled.
	MatchRate *float64 `json:"match_rate"`
	// SuccessRate is matched / (scheduled − pending) over the run so far:
	// what the schedule asked for and is decided (at most 1). Null until then.
	SuccessRate *float64 `json:"success_rate"`
	// WindowSeconds is the window of IntervalMatchRate, RateRPS and LatencyMS:
	// the last progress interval (PROGRESS_INTERVAL, or 5 s when progress
	// lines are off). WindowEndSeconds is when it ended, seconds into the
	// run (0 before the first window ended): a new value means a new window.
	WindowSeconds    float64 `json:"window_s"`
	WindowEndSeconds float64 `json:"window_end_s"`
	// IntervalMatchRate is the settled ratio of the requests that settled in
	// the window; null when none did.
	IntervalMatchRate *float64 `json:"interval_match_rate"`
	// LatencyMS is the round trip of the requests matched in the window
	// (its count is the window's, not the run's).
	LatencyMS latency.Summary `json:"latency_ms"`
	// LatencyTotalMS is the round trip over the run so far, after WARMUP:
	// once finished, the report's latency row.
	LatencyTotalMS latency.Summary `json:"latency_total_ms"`
	// Broker is what the broker announced when the connections connected:
	// the protocol it accepted and, on MQTT 5, the CONNACK's limits (the
	// report's broker). Absent while connecting.
	Broker *mqttconn.Capabilities `json:"broker,omitempty"`
}

// View is the live view of one run.
type View struct {
	res      *config.Resolved
	snapshot func() books.Snapshot
	hist     *books.Histograms
	out      io.Writer // progress lines; nil: none

	mu   sync.Mutex
	last window // the last progress window
}

// window is what the last progress interval saw.
type window struct {
	at            time.Time
	sent, matched uint64
	rateRPS       float64
	matchRate     *float64 // settled in the interval; nil when nothing settled
	lat           latency.Summary
}

// New returns the live view of the run res: snapshot reads the books (once
// per Stats), hist their histograms; progress lines go to out (nil: none).
func New(res *config.Resolved, snapshot func() books.Snapshot, hist *books.Histograms, out io.Writer) *View {
	return &View{res: res, snapshot: snapshot, hist: hist, out: out}
}

// Stats returns the live counters (both phases) and the figures of the last
// progress window.
func (v *View) Stats() Stats {
	snap := v.snapshot()
	s := Stats{
		InstanceID:         v.res.InstanceID,
		RunID:              v.res.RunName(),
		Phase:              snap.Phase.String(),
		Running:            snap.Started,
		DurationSeconds:    v.res.Duration.Seconds(),
		WarmupSeconds:      v.res.Warmup.Seconds(),
		VirtualClients:     v.res.VirtualClients,
		Connections:        v.res.Connections,
		ConnectionsUp:      snap.ConnectionsUp,
		ConnectionsSuspect: snap.ConnectionsSuspect,
		TargetRPS:          v.res.Rate(),
		Connects:           snap.Connects,
		ConnectionLosses:   snap.ConnectionLosses,
		Reconnects:         snap.Reconnects,
		Counts:             snap.Counts,
		Pending:            snap.Pending,
		WindowSeconds:      v.every().Seconds(),
		Broker:             snap.Broker,
	}
	if s.Running {
		s.ElapsedSeconds = snap.Elapsed.Seconds()
		s.StartedAt = snap.Epoch.UTC().Format(time.RFC3339Nano)
	}
	if r, ok := s.Settled(); ok {
		s.MatchRate = &r
	}
	if d := int64(s.Scheduled) - s.Pending; d > 0 {
		// One snapshot, but its counters were read one by one while
		// responses arrived (and a publishing pass adds its sends after its
		// requests left): a ratio is capped at 1, never "100.002%".
		r := min(float64(s.ResponsesMatched)/float64(d), 1)
		s.SuccessRate = &r
	}
	v.mu.Lock()
	w := v.last
	v.mu.Unlock()
	s.RateRPS = w.rateRPS
	s.IntervalMatchRate = w.matchRate
	s.LatencyMS = w.lat
	if s.Running && !w.at.IsZero() {
		s.WindowEndSeconds = w.at.Sub(snap.Epoch).Seconds()
	}
	s.LatencyTotalMS = latency.Summarize(v.hist.Latency.Total())
	return s
}

// Distributions is the /debug/histogram document: the percentile spectra of
// the run so far (after WARMUP), to plot latency by percentile.
type Distributions struct {
	RunID string `json:"run_id"`
	Phase string `json:"phase"`
	// Latency is the round trip; ScheduleLag how late requests left;
	// WorkerQueue and WorkerProcessing what worker-v2 stamped into its
	// responses (empty for other responders); BrokerNetwork what is left of
	// each round trip (report.Report.BrokerNetwork).
	Latency          Distribution `json:"latency"`
	ScheduleLag      Distribution `json:"schedule_lag"`
	WorkerQueue      Distribution `json:"worker_queue"`
	WorkerProcessing Distribution `json:"worker_processing"`
	BrokerNetwork    Distribution `json:"broker_network"`
}

// Distribution is one histogram: its summary, its percentile spectrum
// (latency.Spectrum, 5 points per halving of the distance to 100%) and the
// histogram itself (HdrHistogram V2, compressed, base64, values in µs).
type Distribution struct {
	Summary     latency.Summary `json:"summary_ms"`
	Percentiles []latency.Point `json:"percentiles"`
	HDR         string          `json:"hdr"`
}

// Distributions returns the percentile spectra of the run so far.
func (v *View) Distributions() Distributions {
	d := func(r *latency.Recorder) Distribution {
		h := r.Total()
		enc, _ := latency.Encode(h) // an HDR of our own range always encodes
		return Distribution{Summary: latency.Summarize(h), Percentiles: latency.Spectrum(h, 5), HDR: enc}
	}
	return Distributions{
		RunID: v.res.RunName(), Phase: v.snapshot().Phase.String(),
		Latency: d(v.hist.Latency), ScheduleLag: d(v.hist.ScheduleLag),
		WorkerQueue: d(v.hist.WorkerQueue), WorkerProcessing: d(v.hist.WorkerProcess),
		BrokerNetwork: d(v.hist.BrokerNetwork),
	}
}

// every is the live window: PROGRESS_INTERVAL, or 5 s when 0.
func (v *View) every() time.Duration {
	if v.res.ProgressEvery <= 0 {
		return 5 * time.Second
	}
	return v.res.ProgressEvery
}

// Run updates the window every PROGRESS_INTERVAL (5 s when 0) until ctx
// ends, from epoch (when sending started) on, and, unless progress lines are
// off, prints a line (progressLine): request rate, settled match rate of
// requests that ended in the interval ("–" when none did, e.g. during an
// outage), latency percentiles of the interval, then the run's counts.
func (v *View) Run(ctx context.Context, epoch time.Time) {
	t := time.NewTicker(v.every())
	defer t.Stop()
	prev := window{at: epoch}
	var prevTimeouts uint64
	lines := 0
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			st := v.Stats()
			h := latency.Summarize(v.hist.Latency.Interval())
			dt := now.Sub(prev.at).Seconds()
			cur := window{at: now, sent: st.RequestsSent, matched: st.ResponsesMatched,
				rateRPS: float64(st.RequestsSent-prev.sent) / dt, lat: h}
			dm, dto := st.ResponsesMatched-prev.matched, st.Timeouts-prevTimeouts
			if dm+dto > 0 {
				r := float64(dm) / float64(dm+dto)
				cur.matchRate = &r
			}
			v.mu.Lock()
			v.last = cur
			v.mu.Unlock()
			prev, prevTimeouts = cur, st.Timeouts
			if v.out == nil || v.res.ProgressEvery <= 0 {
				continue
			}
			if lines == 0 {
				fmt.Fprint(v.out, progressLegend(v.every(), st.TargetRPS))
			}
			if lines%progressHeaderEvery == 0 {
				fmt.Fprintln(v.out, progressHeader)
			}
			lines++
			fmt.Fprintln(v.out, progressLine(st, cur))
		}
	}
}
