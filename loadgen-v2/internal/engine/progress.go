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
	matchRate     float64
	lat           latency.Summary
}

// Stats is the live state served as JSON on /debug/vars (key "loadgen").
type Stats struct {
	InstanceID     string  `json:"instance_id"`
	Running        bool    `json:"running"`
	ElapsedSeconds float64 `json:"elapsed_s"`
	VirtualClients int     `json:"virtual_clients"`
	Connections    int     `json:"connections"`
	ConnectionsUp  int     `json:"connections_up"`
	TargetRPS      float64 `json:"target_rps"`
	RateRPS        float64 `json:"rate_rps"`
	// Counts are both phases (warmup included); StillPending stays 0 live:
	// Pending is sent − matched − timed out.
	report.Counts
	Pending   int64   `json:"pending"`
	MatchRate float64 `json:"match_rate"`
	// IntervalMatchRate, RateRPS and LatencyMS cover the last progress
	// interval (PROGRESS_INTERVAL, or 5 s when progress lines are off).
	IntervalMatchRate float64         `json:"interval_match_rate"`
	LatencyMS         latency.Summary `json:"latency_ms"`
}

// Stats returns the live counters (both phases) and the latency of the last
// progress interval.
func (e *Engine) Stats() Stats {
	s := Stats{
		InstanceID:     e.cfg.InstanceID,
		Running:        e.started.Load(),
		VirtualClients: e.cfg.VirtualClients,
		Connections:    e.cfg.Connections,
		ConnectionsUp:  e.connsUp(),
		TargetRPS:      e.cfg.Rate(),
		Pending:        e.pendingNow(),
	}
	s.Unknown, s.Malformed = e.unknown.Load(), e.malformed.Load()
	if s.Running {
		s.ElapsedSeconds = time.Since(e.epoch).Seconds()
	}
	for i := range e.counts {
		s.Counts.Add(e.snapshot(i))
	}
	if s.RequestsSent > 0 {
		s.MatchRate = float64(s.ResponsesMatched) / float64(s.RequestsSent)
	}
	e.mu.Lock()
	p := e.lastProg
	e.mu.Unlock()
	s.RateRPS = p.rateRPS
	s.IntervalMatchRate = p.matchRate
	s.LatencyMS = p.lat
	return s
}

// progress updates the live stats every PROGRESS_INTERVAL (5 s when 0) and,
// unless progress lines are off, prints a line: request rate, match rate of
// requests that ended in the interval, latency percentiles of the interval.
func (e *Engine) progress(ctx context.Context) {
	every := e.cfg.ProgressEvery
	if every <= 0 {
		every = 5 * time.Second
	}
	t := time.NewTicker(every)
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
			cur.matchRate = 1
			if dm+dto > 0 {
				cur.matchRate = float64(dm) / float64(dm+dto)
			}
			e.mu.Lock()
			e.lastProg = cur
			e.mu.Unlock()
			prev, prevTimeouts = cur, st.Timeouts
			if e.out == nil || e.cfg.ProgressEvery <= 0 {
				continue
			}
			fmt.Fprintf(e.out, "[%6.1fs] rate %8.0f req/s (target %.0f)  match %.4f  p50 %7.2f ms  p99 %7.2f ms  max %7.2f ms  pending %d  timeouts %d  skipped %d  send_failed %d  conns %d/%d\n",
				st.ElapsedSeconds, cur.rateRPS, st.TargetRPS, cur.matchRate, h.P50, h.P99, h.Max,
				st.Pending, st.Timeouts, st.Skipped, st.SendFailed, st.ConnectionsUp, st.Connections)
		}
	}
}
