package report_test

import (
	"testing"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/report"
)

// TestBuild: a finished run's report measures [WARMUP, end), divides the
// bytes by the whole sending time, and keeps the warm-up counts only with a
// warm-up.
func TestBuild(t *testing.T) {
	o := report.Outcome{
		Instance: "lg-1", Protocol: "3.1.1", Correlation: "envelope",
		Measured:   report.Counts{Scheduled: 800, RequestsSent: 800, ResponsesMatched: 800, Unknown: 2},
		Warmup:     report.Counts{Scheduled: 200, RequestsSent: 200, ResponsesMatched: 199, StillPending: 1},
		WarmupTime: 2 * time.Second, SendEnd: 10 * time.Second, TargetRPS: 100,
		VirtualClients: 100, ClientsFired: 100, Interval: time.Second,
		RequestBytes: 5000, ResponseBytes: 3000,
		Usage:      &report.ProcessUsage{CPUUserSeconds: 1},
		Config:     []byte(`{"broker":"tcp://b:1883"}`),
		Hists:      hists(hist(1000, 1999)),
		Objectives: report.Objectives{MatchRate: 0.5},
	}
	r, err := report.Build(&o)
	if err != nil {
		t.Fatal(err)
	}
	if r.DurationSeconds != 8 || r.ThroughputRPS != 100 || r.RateRatio != 1 || r.RequestBytesPerSec != 500 || r.ResponseBytesPerSec != 300 {
		t.Errorf("duration %v s, throughput %v, ratio %v, bytes/s %v and %v; want 8, 100, 1, 500, 300",
			r.DurationSeconds, r.ThroughputRPS, r.RateRatio, r.RequestBytesPerSec, r.ResponseBytesPerSec)
	}
	if r.Warmup == nil || *r.Warmup != o.Warmup || r.Unknown != 2 || r.Usage != o.Usage || string(r.Config) != string(o.Config) {
		t.Errorf("warmup %+v, unknown %d, usage %v, config %s", r.Warmup, r.Unknown, r.Usage, r.Config)
	}
	if !r.SLO.Passed || r.Latency.Count != 1000 || r.Histograms.Latency == "" {
		t.Errorf("not finished: slo %+v, latency %+v", r.SLO, r.Latency)
	}
	o.WarmupTime, o.SendEnd = 0, 0
	if r, _ := report.Build(&o); r.Warmup != nil || r.DurationSeconds != 0 || r.RequestBytesPerSec != 0 {
		t.Errorf("without warm-up and sending time: warmup %+v, duration %v, bytes/s %v", r.Warmup, r.DurationSeconds, r.RequestBytesPerSec)
	}
}
