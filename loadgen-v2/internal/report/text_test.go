package report_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

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
	qos, keepAlive, shared, retain, granted := byte(1), uint16(20), false, true, byte(1)
	broker := *minimal
	broker.Protocol, broker.Correlation = "5", "properties"
	broker.Broker = &mqttconn.Capabilities{Protocol: "5", MaximumQoS: &qos, MaximumPacketSize: 2048, SharedSubscriptionAvailable: &shared,
		RetainAvailable: &retain, ReceiveMaximum: 20, TopicAliasMaximum: 10, ServerKeepAliveSeconds: &keepAlive, AssignedClientID: "auto-1", GrantedQoS: &granted}
	// A fleet of two merged: the span, the common window, the runs.
	start := time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)
	skew, zero, one := 1.25, 0, 1
	merged := *minimal
	merged.Instances = []string{"lg-0", "lg-1"}
	merged.Fleet = &report.Fleet{ID: "f1", Size: 2}
	merged.Runs = []report.Run{
		{Instance: "lg-0", RunID: "lg-0-a1", Host: "h0", PID: 10, FleetIndex: &zero, FirstClient: 0, Clients: 5,
			Start: start, MeasuredStart: start.Add(time.Second), End: start.Add(11 * time.Second), StartSkewMS: &skew, ConfigDigest: "0123456789ab"},
		{Instance: "lg-1", RunID: "lg-1-b2", Host: "h1", PID: 11, FleetIndex: &one, FirstClient: 5, Clients: 5,
			Start: start.Add(2 * time.Second), MeasuredStart: start.Add(3 * time.Second), End: start.Add(12 * time.Second), StartSkewMS: &skew, ConfigDigest: "0123456789ab"},
	}
	merged.DurationSeconds, merged.SpanSeconds, merged.CommonSeconds = 11, 11, 8
	merged.Warnings = []string{"the instances started measuring 2.0 s apart (lg-0 first, lg-1 last at +2.0 s)"}
	merged.WarningKinds = []string{report.WarnKindStartSkew}
	return map[string]*report.Report{"full": full, "minimal": minimal, "slo-passed": &passed, "broker": &broker, "merged": &merged}
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

// words is s with every run of white space made one space: text compared
// across the report's line wrapping.
func words(s string) string { return strings.Join(strings.Fields(s), " ") }

// TestTextWithin100Columns: no line of the text report is wider than
// report.TextWidth (100 runes): the golden reports, and reports carrying
// every warning, long SLO failures and many merged instances, whose free
// text is wrapped without losing a word.
func TestTextWithin100Columns(t *testing.T) {
	reports := goldenReports()
	all := &report.Report{
		Instances: []string{"lg-0"}, Correlation: "json:request_identifier", Protocol: "5",
		Counts: report.Counts{Scheduled: 36_000_000, RequestsSent: 30_000_000, ResponsesMatched: 29_000_000,
			Timeouts: 900_000, StillPending: 100_000, Skipped: 5_000_000, SendFailed: 1_000_000, Duplicate: 12_345,
			Implausible: 678, Unknown: 1_234_567, UnknownOtherRun: 1_000_000, Malformed: 98_765},
		RequestBytes: 3_000_000_000, ResponseBytes: 2_900_000_000, RequestBytesPerSec: 1e8, ResponseBytesPerSec: 9.6e7,
		VirtualClients: 1_000_000, ClientsFired: 600_000, IntervalSeconds: 100, DurationSeconds: 60, TargetRPS: 600_000,
		Usage: &report.ProcessUsage{CPUUserSeconds: 1234.5, CPUSystemSeconds: 678.9, MaxRSSMB: 12345.6, CPUMicrosPerRequest: 1234.5, SendingCPUMicrosPerRequest: 1000.5},
	}
	if err := all.Finish(report.Hists{}, report.Objectives{P99MS: 50, MatchRate: 0.999, SuccessRate: 0.99}); err != nil {
		t.Fatal(err)
	}
	all.Warmup = &report.Counts{Scheduled: 1_000_000, RequestsSent: 1_000_000, ResponsesMatched: 999_000, Timeouts: 600, StillPending: 400, Skipped: 12_345, SendFailed: 6_789}
	reports["every warning"] = all
	none := &report.Report{Instances: []string{"loadgen-6f7c9d8b5-abcde", "loadgen-6f7c9d8b5-fghij", "loadgen-6f7c9d8b5-klmno", "loadgen-6f7c9d8b5-pqrst"},
		VirtualClients: 10, IntervalSeconds: 1}
	if err := none.Finish(report.Hists{}, report.Objectives{SuccessRate: 0.99}); err != nil {
		t.Fatal(err)
	}
	reports["stopped before sending, merged"] = none
	if len(all.Warnings) < 5 || len(none.Warnings) == 0 {
		t.Fatalf("the wide reports lack their warnings: %q, %q", all.Warnings, none.Warnings)
	}
	for name, r := range reports {
		var text bytes.Buffer
		r.WriteText(&text)
		checkWidth(t, name, text.String())
		for _, w := range append(append([]string{}, r.Warnings...), r.SLO.Failures...) {
			if !strings.Contains(words(text.String()), words(w)) {
				t.Errorf("%s: the text report lost words of %q:\n%s", name, w, text.String())
			}
		}
		for _, inst := range r.Instances {
			if !strings.Contains(text.String(), inst) {
				t.Errorf("%s: instance %s not named:\n%s", name, inst, text.String())
			}
		}
	}
	goldens, err := filepath.Glob(filepath.Join("testdata", "*.golden"))
	if err != nil || len(goldens) == 0 {
		t.Fatal("no golden reports", err)
	}
	for _, path := range goldens {
		if strings.HasSuffix(path, ".json.golden") {
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		checkWidth(t, path, string(b))
	}
}

func checkWidth(t *testing.T, name, text string) {
	t.Helper()
	for i, line := range strings.Split(text, "\n") {
		if n := utf8.RuneCountInString(line); n > report.TextWidth {
			t.Errorf("%s line %d is %d columns wide (max %d):\n%s", name, i+1, n, report.TextWidth, line)
		}
	}
}
