package report_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/latency"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/report"
)

var update = flag.Bool("update", false, "rewrite the golden files of the text report")

// goldenReports are fixed reports, every figure set by hand (no Finish), so
// the golden files pin the text report's lines: what scripts and readers
// parse.
func goldenReports() map[string]*report.Report {
	dropped := int64(17)
	sum := func(base float64, count int64) latency.Summary {
		return latency.Summary{P50: base, P90: 2 * base, P99: 3 * base, P999: 4 * base, P9999: 5 * base, Max: 6 * base, Count: count}
	}
	full := &report.Report{
		Instances: []string{"lg-0", "lg-1"}, Protocol: "5", Correlation: "json:id",
		Counts: report.Counts{
			Scheduled: 120000, RequestsSent: 119000, ResponsesMatched: 118000, Timeouts: 700, StillPending: 300,
			Skipped: 600, SendFailed: 400, Late: 5, Duplicate: 3, Implausible: 2, Unknown: 11, Malformed: 7, Oversized: 1,
		},
		RequestBytes: 11900000, ResponseBytes: 5900000, RequestBytesPerSec: 396666.7, ResponseBytesPerSec: 196666.7,
		SuccessRate: 0.983333, MatchRate: 0.991597, VirtualClients: 20000, ClientsFired: 19990, IntervalSeconds: 5,
		Warnings:        []string{"achieved rate 3967 req/s is 99.2% of the target 4000 req/s", "3 duplicate responses (a request answered more than once)"},
		DurationSeconds: 30, TargetRPS: 4000, ThroughputRPS: 3966.7, ResponsesRPS: 3933.3, RateRatio: 0.991667, Balanced: true,
		Latency: sum(1.25, 118000), ScheduleLag: sum(0.5, 119000), WorkerQueue: sum(0.01, 118000), WorkerProcess: sum(0.002, 118000),
		Warmup:        &report.Counts{Scheduled: 4000, RequestsSent: 3990, ResponsesMatched: 3980, Timeouts: 6, StillPending: 4, Skipped: 7, SendFailed: 3},
		SLO:           report.SLO{P99MS: 2, MatchRate: 0.999, Failures: []string{"p99 latency 3.750 ms exceeds SLO_P99_MS=2", "match rate 0.991597 is below SLO_MATCH_RATE=0.999"}},
		Usage:         &report.ProcessUsage{CPUUserSeconds: 12.5, CPUSystemSeconds: 7.25, MaxRSSMB: 85.4, CPUMicrosPerRequest: 166, SendingCPUMicrosPerRequest: 150.5},
		BrokerDropped: &dropped,
	}
	minimal := &report.Report{
		Instances: []string{"lg"}, Counts: report.Counts{Scheduled: 10, RequestsSent: 10, ResponsesMatched: 10},
		SuccessRate: 1, MatchRate: 1, VirtualClients: 10, ClientsFired: 10, IntervalSeconds: 1,
		DurationSeconds: 1, TargetRPS: 10, ThroughputRPS: 10, ResponsesRPS: 10, RateRatio: 1, Balanced: true,
		Latency: sum(0.1, 10), SLO: report.SLO{Passed: true},
	}
	passed := *minimal
	passed.SLO = report.SLO{P99MS: 1, Passed: true}
	qos, keepAlive, shared, retain := byte(1), uint16(20), false, true
	broker := *minimal
	broker.Protocol, broker.Correlation = "5", "properties"
	broker.Broker = &mqttconn.Capabilities{Protocol: "5", MaximumQoS: &qos, MaximumPacketSize: 2048, SharedSubscriptionAvailable: &shared,
		RetainAvailable: &retain, ReceiveMaximum: 20, TopicAliasMaximum: 10, ServerKeepAliveSeconds: &keepAlive, AssignedClientID: "auto-1"}
	return map[string]*report.Report{"full": full, "minimal": minimal, "slo-passed": &passed, "broker": &broker}
}

// TestWriteTextGolden: the text report, line for line, and the JSON report,
// field for field: the contract scripts, merge and charts read (go test
// -update rewrites testdata/*.golden after a deliberate change).
func TestWriteTextGolden(t *testing.T) {
	for name, r := range goldenReports() {
		t.Run(name, func(t *testing.T) {
			var text bytes.Buffer
			r.WriteText(&text)
			golden(t, filepath.Join("testdata", name+".golden"), text.Bytes())
			path := filepath.Join(t.TempDir(), "r.json")
			if err := r.WriteJSON(path); err != nil {
				t.Fatal(err)
			}
			js, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join("testdata", name+".json.golden"), js)
		})
	}
}

// golden compares got with the file at path (rewriting it under -update).
func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("differs from %s (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}
