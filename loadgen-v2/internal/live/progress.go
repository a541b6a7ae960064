package live

import (
	"fmt"
	"strings"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/report"
)

// ProgressWidth is the widest progress line, in columns (runes), for
// figures up to a day of run time, 9,999,999 req/s, seven-digit counts,
// 99,999 ms and 1000 connections with up to 99 suspect.
const ProgressWidth = 100

// progressHeaderEvery: the column header is printed again after this many
// progress lines, so a screenful of them always has one.
const progressHeaderEvery = 20

// progressFormat lays out the progress columns; progressHeader names them.
const progressFormat = "%7.1fs %-8s %7.0f %6s %6s %6s %6s %7d %7d %7d %7d  %s"

var progressHeader = fmt.Sprintf("%8s %-8s %7s %6s %6s %6s %6s %7s %7s %7s %7s  %s",
	"time", "phase", "req/s", "match", "p50", "p99", "max", "pending", "timeout", "skipped", "failed", "conns")

// progressLegend says, once at the start, what the columns are.
func progressLegend(every time.Duration, target float64) string {
	text := fmt.Sprintf("progress every %s; target %.0f req/s. Of the last %s: req/s, match (settled: "+
		"matched / (matched + timed out), – when none settled), latency p50/p99/max in ms. Of the run so far: "+
		"pending, timeout (timed out), skipped, failed (send failed), conns (up/configured; sN: N suspect, "+
		"wrote and heard nothing for REQUEST_TIMEOUT)", every, target, every)
	return strings.Join(report.Wrap("", strings.Fields(text), ProgressWidth), "\n") + "\n"
}

// progressLine is one progress line: elapsed time and phase, the window's
// rate, settled match rate ("–" when nothing settled) and latency, the run's
// pending, timed out, skipped and send-failed counts, connections up of
// configured and the suspect ones.
func progressLine(st Stats, w window) string {
	match := "–"
	if w.matchRate != nil {
		match = fmt.Sprintf("%.4f", *w.matchRate)
	}
	conns := fmt.Sprintf("%d/%d", st.ConnectionsUp, st.Connections)
	if st.ConnectionsSuspect > 0 {
		conns += fmt.Sprintf(" s%d", st.ConnectionsSuspect)
	}
	return fmt.Sprintf(progressFormat, st.ElapsedSeconds, st.Phase, w.rateRPS, match, ms(w.lat.P50), ms(w.lat.P99), ms(w.lat.Max),
		st.Pending, st.Timeouts, st.Skipped, st.SendFailed, conns)
}

// ms formats milliseconds in at most five columns below 100 s, with three
// or four significant digits (µs below 10 ms).
func ms(v float64) string {
	switch {
	case v < 10:
		return fmt.Sprintf("%.3f", v)
	case v < 100:
		return fmt.Sprintf("%.2f", v)
	case v < 1000:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}
