package report

import (
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Thresholds of the latency warnings (warnLatency).
const (
	// WarnLagShare: the loadgen's own schedule lag at p50 above this share
	// of the round trip's p50 means the tool, not the system, is much of
	// the figure.
	WarnLagShare = 0.25
	// The delayed-ACK signature: at least WarnNagleShare of the broker +
	// network rests fall in [WarnNagleLow, WarnNagleHigh] (Linux delays an
	// ACK up to 40 ms; Nagle holds a small segment until it comes), while
	// the loadgen's lag and the worker's queue wait and processing stay
	// under WarnNagleOthers at p99, and the rest's p50 is under
	// WarnNagleLow: a bimodal rest, fast or ~40 ms, with nothing else slow.
	WarnNagleShare  = 0.02
	WarnNagleLow    = 30 * time.Millisecond
	WarnNagleHigh   = 50 * time.Millisecond
	WarnNagleOthers = 5 * time.Millisecond
)

// warnLatency adds the warnings that say the tool or the setup, not the
// system under test, is what the latency figures show. Histograms hold µs.
func (r *Report) warnLatency(h Hists) {
	if r.Latency.Count > 0 && r.ScheduleLag.Count > 0 && r.ScheduleLag.P50 > WarnLagShare*r.Latency.P50 {
		r.Warn(WarnKindToolLag, "the loadgen's own schedule lag (p50 %.3f ms) is %.0f%% of the round trip's p50 (%.3f ms): this tool is much of the figure. "+
			"It is short of CPU: give it its own cores (fewer processes beside it, BENCH_NICE in the scripts), or split VIRTUAL_CLIENTS over more loadgen instances",
			r.ScheduleLag.P50, 100*r.ScheduleLag.P50/r.Latency.P50, r.Latency.P50)
	}
	if share, ok := nagleShare(h); ok {
		r.Warn(WarnKindNagle, "%.1f%% of round trips spent 30-50 ms in the broker and network while the loadgen, the queue and processing were fast: "+
			"the signature of Nagle's algorithm with delayed ACKs on the broker's sockets. Set TCP_NODELAY on the broker "+
			"(Mosquitto: set_tcp_nodelay true; Node.js brokers: socket.setNoDelay(true)); it affects QoS 0 as well as 1",
			100*share)
	}
}

// nagleShare returns the share of broker + network rests within
// [WarnNagleLow, WarnNagleHigh] when the run shows the delayed-ACK
// signature (WarnNagleShare).
func nagleShare(h Hists) (float64, bool) {
	rest := h.BrokerNetwork
	if rest == nil || rest.TotalCount() == 0 {
		return 0, false
	}
	us := func(d time.Duration) int64 { return d.Microseconds() }
	for _, o := range []*hdrhistogram.Histogram{h.ScheduleLag, h.WorkerQueue, h.WorkerProcess} {
		if o != nil && o.TotalCount() > 0 && o.ValueAtQuantile(99) >= us(WarnNagleOthers) {
			return 0, false
		}
	}
	if rest.ValueAtQuantile(50) >= us(WarnNagleLow) {
		return 0, false
	}
	var in int64
	for _, b := range rest.Distribution() {
		if b.From >= us(WarnNagleLow) && b.To <= us(WarnNagleHigh) {
			in += b.Count
		}
	}
	share := float64(in) / float64(rest.TotalCount())
	return share, share >= WarnNagleShare
}
