package report

import (
	"strings"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/latency"
)

// hist returns a histogram (µs) holding n values of each duration given
// as pairs: d1, n1, d2, n2, ...
func hist(pairs ...any) *hdrhistogram.Histogram {
	h := latency.New()
	for i := 0; i+1 < len(pairs); i += 2 {
		_ = h.RecordValues(pairs[i].(time.Duration).Microseconds(), int64(pairs[i+1].(int)))
	}
	return h
}

// TestLatencyWarnings: the tool's own lag above a quarter of the round
// trip's p50 is named with what helps; the delayed-ACK signature (a share of
// rests near 40 ms while lag, queue and processing are fast) names Nagle
// and the broker setting; neither fires on healthy or plainly slow runs.
func TestLatencyWarnings(t *testing.T) {
	ms := time.Millisecond
	us := time.Microsecond
	for _, tc := range []struct {
		name string
		h    Hists
		want []string // substrings, one warning each; nil: none
	}{
		{"healthy", Hists{Latency: hist(200*us, 1000), ScheduleLag: hist(20*us, 1000), BrokerNetwork: hist(170*us, 1000)}, nil},
		{"lag a quarter of the round trip", Hists{Latency: hist(400*us, 1000), ScheduleLag: hist(110*us, 1000), BrokerNetwork: hist(280*us, 1000)},
			[]string{"schedule lag (p50 0.110 ms) is 28% of the round trip's p50 (0.400 ms)"}},
		{"delayed ACK", Hists{Latency: hist(1400*us, 880, 44*ms, 120), ScheduleLag: hist(30*us, 1000), WorkerQueue: hist(2*us, 1000),
			WorkerProcess: hist(1*us, 1000), BrokerNetwork: hist(1300*us, 880, 43*ms, 120)},
			[]string{"12.0% of round trips spent 30-50 ms", "set_tcp_nodelay true"}},
		{"near 40 ms but the worker is slow: no Nagle", Hists{Latency: hist(1400*us, 880, 44*ms, 120), ScheduleLag: hist(30*us, 1000),
			WorkerQueue: hist(2*us, 800, 20*ms, 200), BrokerNetwork: hist(1300*us, 880, 43*ms, 120)}, nil},
		{"everything slow: no Nagle", Hists{Latency: hist(40*ms, 1000), ScheduleLag: hist(30*us, 1000), BrokerNetwork: hist(40*ms, 1000)}, nil},
		{"a few near 40 ms: no Nagle", Hists{Latency: hist(1*ms, 995, 40*ms, 5), ScheduleLag: hist(30*us, 1000), BrokerNetwork: hist(900*us, 995, 40*ms, 5)}, nil},
		{"nothing measured", Hists{}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &Report{}
			h := tc.h
			for _, x := range []**hdrhistogram.Histogram{&h.Latency, &h.ScheduleLag, &h.WorkerQueue, &h.WorkerProcess, &h.BrokerNetwork} {
				if *x == nil {
					*x = latency.New()
				}
			}
			r.Latency, r.ScheduleLag = latency.Summarize(h.Latency), latency.Summarize(h.ScheduleLag)
			r.warnLatency(h)
			if len(r.Warnings) != min(len(tc.want), 1) {
				t.Fatalf("warnings %q, want %q", r.Warnings, tc.want)
			}
			for _, w := range tc.want {
				if len(r.Warnings) == 0 || !strings.Contains(r.Warnings[0], w) {
					t.Errorf("warnings %q lack %q", r.Warnings, w)
				}
			}
		})
	}
}
