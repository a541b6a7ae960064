package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/latency"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/report"
)

type progressSnap struct {
	at            time.Time
	sent, matched uint64
	rateRPS       float64
	matchRate     *float64 // settled in the interval; nil when nothing settled
	lat           latency.Summary
}

// Stats is the live state served as JSON on /debug/vars (key "loadgen").
// Figures of the run so far and figures of the last window are told apart by
// their names: the window ones are RateRPS, IntervalMatchRate and LatencyMS
// (WindowSeconds long, ending WindowEndSeconds into the run); everything else
// is the run so far.
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
	// what the schedule asked for and is decided. Null until then.
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
}

// Stats returns the live counters (both phases) and the latency of the last
// progress interval.
func (e *Engine) Stats() Stats {
	s := Stats{
		InstanceID:         e.cfg.InstanceID,
		RunID:              e.RunID(),
		Phase:              e.Phase().String(),
		Running:            e.started.Load(),
		DurationSeconds:    e.cfg.Duration.Seconds(),
		WarmupSeconds:      e.cfg.Warmup.Seconds(),
		VirtualClients:     e.cfg.VirtualClients,
		Connections:        e.cfg.Connections,
		ConnectionsUp:      e.connsUp(),
		ConnectionsSuspect: e.connsSuspect(),
		TargetRPS:          e.cfg.Rate(),
		Pending:            e.pendingNow(),
		WindowSeconds:      e.progressEvery().Seconds(),
	}
	s.Unknown, s.Malformed = e.unknown.Load(), e.malformed.Load()
	if s.Running {
		s.ElapsedSeconds = time.Since(e.epoch).Seconds()
		s.StartedAt = e.epoch.UTC().Format(time.RFC3339Nano)
	}
	if w := e.metrics.conns; w != nil {
		s.Connects, s.ConnectionLosses, s.Reconnects = w.events.Connects(), w.events.Losses(), w.events.Reconnects()
	}
	for i := range e.counts {
		s.Counts.Add(e.snapshot(i))
	}
	if r, ok := s.Settled(); ok {
		s.MatchRate = &r
	}
	if d := int64(s.Scheduled) - s.Pending; d > 0 {
		r := float64(s.ResponsesMatched) / float64(d)
		s.SuccessRate = &r
	}
	e.mu.Lock()
	p := e.lastProg
	e.mu.Unlock()
	s.RateRPS = p.rateRPS
	s.IntervalMatchRate = p.matchRate
	s.LatencyMS = p.lat
	if s.Running && !p.at.IsZero() {
		s.WindowEndSeconds = p.at.Sub(e.epoch).Seconds()
	}
	s.LatencyTotalMS = latency.Summarize(e.lat.Total())
	return s
}

// Distributions is the /debug/histogram document: the percentile spectra of
// the run so far (after WARMUP), to plot latency by percentile.
type Distributions struct {
	RunID string `json:"run_id"`
	Phase string `json:"phase"`
	// Latency is the round trip; ScheduleLag how late requests left;
	// WorkerQueue and WorkerProcessing what worker-v2 stamped into its
	// responses (empty for other responders).
	Latency          Distribution `json:"latency"`
	ScheduleLag      Distribution `json:"schedule_lag"`
	WorkerQueue      Distribution `json:"worker_queue"`
	WorkerProcessing Distribution `json:"worker_processing"`
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
func (e *Engine) Distributions() Distributions {
	d := func(r *latency.Recorder) Distribution {
		h := r.Total()
		enc, _ := latency.Encode(h) // an HDR of our own range always encodes
		return Distribution{Summary: latency.Summarize(h), Percentiles: latency.Spectrum(h, 5), HDR: enc}
	}
	return Distributions{
		RunID: e.RunID(), Phase: e.Phase().String(),
		Latency: d(e.lat), ScheduleLag: d(e.lag), WorkerQueue: d(e.wq), WorkerProcessing: d(e.wp),
	}
}

// progressEvery is the live window: PROGRESS_INTERVAL, or 5 s when 0.
func (e *Engine) progressEvery() time.Duration {
	if e.cfg.ProgressEvery <= 0 {
		return 5 * time.Second
	}
	return e.cfg.ProgressEvery
}

// progress updates the live stats every PROGRESS_INTERVAL (5 s when 0) and,
// unless progress lines are off, prints a line: request rate, settled match
// rate of requests that ended in the interval ("–" when none did, e.g.
// during an outage), latency percentiles of the interval.
func (e *Engine) progress(ctx context.Context) {
	t := time.NewTicker(e.progressEvery())
	defer t.Stop()
	prev := progressSnap{at: e.epoch}
	var prevTimeouts uint64
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			st := e.Stats()
			h := latency.Summarize(e.lat.Interval())
			dt := now.Sub(prev.at).Seconds()
			cur := progressSnap{at: now, sent: st.RequestsSent, matched: st.ResponsesMatched,
				rateRPS: float64(st.RequestsSent-prev.sent) / dt, lat: h}
			dm, dto := st.ResponsesMatched-prev.matched, st.Timeouts-prevTimeouts
			match := "     –"
			if dm+dto > 0 {
				r := float64(dm) / float64(dm+dto)
				cur.matchRate = &r
				match = fmt.Sprintf("%.4f", r)
			}
			e.mu.Lock()
			e.lastProg = cur
			e.mu.Unlock()
			prev, prevTimeouts = cur, st.Timeouts
			if e.out == nil || e.cfg.ProgressEvery <= 0 {
				continue
			}
			suspect := ""
			if st.ConnectionsSuspect > 0 {
				suspect = fmt.Sprintf(" (%d suspect)", st.ConnectionsSuspect)
			}
			fmt.Fprintf(e.out, "[%6.1fs] %-9s last %s: rate %8.0f req/s (target %.0f)  settled match %s  p50 %7.2f ms  p99 %7.2f ms  max %7.2f ms | run: pending %d  timeouts %d  skipped %d  send_failed %d  conns %d/%d%s\n",
				st.ElapsedSeconds, st.Phase, e.progressEvery(), cur.rateRPS, st.TargetRPS, match, h.P50, h.P99, h.Max,
				st.Pending, st.Timeouts, st.Skipped, st.SendFailed, st.ConnectionsUp, st.Connections, suspect)
		}
	}
}
