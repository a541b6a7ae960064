package report_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/latency"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/report"
)

// hist records the values lo..hi µs, step 1.
func hist(lo, hi int64) *hdrhistogram.Histogram {
	h := latency.New()
	for v := lo; v <= hi; v++ {
		_ = h.RecordValue(v)
	}
	return h
}

func hists(lat *hdrhistogram.Histogram) report.Hists {
	return report.Hists{Latency: lat, ScheduleLag: hist(1, 10), WorkerQueue: hist(5, 50), WorkerProcess: hist(100, 200)}
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func TestFinish(t *testing.T) {
	tests := []struct {
		name         string
		r            report.Report
		lat          *hdrhistogram.Histogram // µs
		sloP99       float64
		sloMatch     float64
		matchRate    float64
		throughput   float64
		responses    float64
		ratio        float64
		balanced     bool
		failures     []string // substrings, one per expected failure, in order
		latencyCount int64
	}{
		{
			name: "healthy run, no SLO",
			r: report.Report{Counts: report.Counts{Scheduled: 1000, RequestsSent: 1000, ResponsesMatched: 990, Timeouts: 6, StillPending: 4},
				DurationSeconds: 10, TargetRPS: 110},
			lat: hist(1000, 1989), matchRate: 0.99, throughput: 100, responses: 99, ratio: 100.0 / 110, balanced: true,
			latencyCount: 990,
		},
		{
			name: "SLOs met",
			r: report.Report{Counts: report.Counts{Scheduled: 100, RequestsSent: 100, ResponsesMatched: 100},
				DurationSeconds: 4, TargetRPS: 25},
			lat: hist(1, 100), sloP99: 1, sloMatch: 0.999,
			matchRate: 1, throughput: 25, responses: 25, ratio: 1, balanced: true, latencyCount: 100,
		},
		{
			name: "p99 over",
			r: report.Report{Counts: report.Counts{Scheduled: 10000, RequestsSent: 10000, ResponsesMatched: 10000},
				DurationSeconds: 1},
			lat: hist(1, 10000), sloP99: 5,
			matchRate: 1, throughput: 10000, responses: 10000, balanced: true,
			failures: []string{"p99 latency 9.9", "SLO_P99_MS=5"}, latencyCount: 10000,
		},
		{
			name: "p99 SLO with no latency at all fails",
			r:    report.Report{Counts: report.Counts{Scheduled: 10, RequestsSent: 10, Timeouts: 10}, DurationSeconds: 1},
			lat:  latency.New(), sloP99: 5,
			matchRate: 0, throughput: 10, balanced: true,
			failures: []string{"p99 latency 0.000 ms exceeds SLO_P99_MS=5"},
		},
		{
			name: "match rate under",
			r: report.Report{Counts: report.Counts{Scheduled: 1000, RequestsSent: 1000, ResponsesMatched: 900, Timeouts: 100},
				DurationSeconds: 2, TargetRPS: 500},
			lat: hist(1, 900), sloMatch: 0.99,
			matchRate: 0.9, throughput: 500, responses: 450, ratio: 1, balanced: true,
			failures: []string{"match rate 0.900000 is below SLO_MATCH_RATE=0.99"}, latencyCount: 900,
		},
		{
			name: "unbalanced",
			r: report.Report{Counts: report.Counts{Scheduled: 100, RequestsSent: 100, ResponsesMatched: 90, Timeouts: 5, StillPending: 1},
				DurationSeconds: 1},
			lat:       hist(1, 90),
			matchRate: 0.9, throughput: 100, responses: 90,
			failures: []string{"sent 100 != matched 90 + timed out 5 + pending 1"}, latencyCount: 90,
		},
		{
			name: "every failure at once",
			r:    report.Report{Counts: report.Counts{Scheduled: 10, RequestsSent: 10, ResponsesMatched: 1}, DurationSeconds: 1},
			lat:  hist(20000, 20000), sloP99: 1, sloMatch: 0.5,
			matchRate: 0.1, throughput: 10, responses: 1,
			failures: []string{"p99 latency 20.0", "match rate 0.100000", "accounting does not balance"}, latencyCount: 1,
		},
		{
			name: "nothing sent, zero duration",
			r:    report.Report{},
			lat:  latency.New(), matchRate: 0, balanced: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.r
			if err := r.Finish(hists(tc.lat), report.Objectives{P99MS: tc.sloP99, MatchRate: tc.sloMatch}); err != nil {
				t.Fatalf("Finish: %v", err)
			}
			if !near(r.MatchRate, tc.matchRate) || !near(r.ThroughputRPS, tc.throughput) || !near(r.ResponsesRPS, tc.responses) || !near(r.RateRatio, tc.ratio) {
				t.Errorf("match %v throughput %v responses %v ratio %v; want %v %v %v %v",
					r.MatchRate, r.ThroughputRPS, r.ResponsesRPS, r.RateRatio, tc.matchRate, tc.throughput, tc.responses, tc.ratio)
			}
			if r.Balanced != tc.balanced {
				t.Errorf("Balanced = %v, want %v", r.Balanced, tc.balanced)
			}
			if r.Latency.Count != tc.latencyCount {
				t.Errorf("latency count %d, want %d", r.Latency.Count, tc.latencyCount)
			}
			if r.Latency != latency.Summarize(tc.lat) {
				t.Errorf("latency summary not from the histogram")
			}
			if r.SLO.Passed != (len(tc.failures) == 0) {
				t.Errorf("SLO.Passed = %v with failures %q", r.SLO.Passed, r.SLO.Failures)
			}
			joined := strings.Join(r.SLO.Failures, "\n")
			for _, f := range tc.failures {
				if !strings.Contains(joined, f) {
					t.Errorf("SLO failures %q do not mention %q", r.SLO.Failures, f)
				}
			}
			if len(tc.failures) == 0 && len(r.SLO.Failures) > 0 {
				t.Errorf("unexpected SLO failures %q", r.SLO.Failures)
			}
			if r.SLO.P99MS != tc.sloP99 || r.SLO.MatchRate != tc.sloMatch {
				t.Errorf("SLO thresholds not recorded: %+v", r.SLO)
			}
			for name, enc := range map[string]string{"latency": r.Histograms.Latency, "schedule_lag": r.Histograms.ScheduleLag, "worker_queue": r.Histograms.WorkerQueue, "worker_processing": r.Histograms.WorkerProcessing} {
				if _, err := latency.Decode(enc); err != nil {
					t.Errorf("histogram %s not decodable: %v", name, err)
				}
			}
		})
	}
}

func finished(t *testing.T, instance string, c report.Counts, dur, target float64, lat *hdrhistogram.Histogram) *report.Report {
	t.Helper()
	r := &report.Report{Instances: []string{instance}, Counts: c, DurationSeconds: dur, TargetRPS: target,
		Config: json.RawMessage(`{"virtual_clients":1000,"broker":"tcp://localhost:1883"}`)}
	if err := r.Finish(hists(lat), report.Objectives{P99MS: 0, MatchRate: 0}); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestWriteJSONRead(t *testing.T) {
	r := finished(t, "lg-0", report.Counts{Scheduled: 104, RequestsSent: 100, ResponsesMatched: 97, Timeouts: 2, StillPending: 1, Skipped: 4, Late: 1}, 10, 10, hist(500, 596))
	dropped := int64(3)
	r.BrokerDropped = &dropped
	path := filepath.Join(t.TempDir(), "report.json")
	if err := r.WriteJSON(path); err != nil {
		t.Fatalf("WriteJSON: %v", err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("report is not JSON: %v", err)
	}
	tests := []struct {
		key  string
		want any // nil: only present
	}{
		{"requests_sent", 100.0},
		{"responses_matched", 97.0},
		{"timeouts", 2.0},
		{"skipped", 4.0},
		{"match_rate", 0.97},
		{"throughput_rps", 10.0},
		{"accounting_balanced", true},
		{"config", nil},
		{"histograms", nil},
		{"slo", nil},
		{"broker_dropped", 3.0},
	}
	for _, tc := range tests {
		v, ok := m[tc.key]
		if !ok {
			t.Errorf("JSON lacks %q", tc.key)
			continue
		}
		if tc.want != nil && v != tc.want {
			t.Errorf("%s = %v, want %v", tc.key, v, tc.want)
		}
	}
	lat, ok := m["latency_ms"].(map[string]any)
	if !ok {
		t.Fatalf("latency_ms missing or not an object: %v", m["latency_ms"])
	}
	for _, k := range []string{"p50", "p90", "p99", "p999", "max"} {
		if _, ok := lat[k].(float64); !ok {
			t.Errorf("latency_ms.%s missing", k)
		}
	}
	if cfg, ok := m["config"].(map[string]any); !ok || cfg["virtual_clients"] != 1000.0 {
		t.Errorf("config = %v, want the run's configuration object", m["config"])
	}

	back, err := report.Read(path)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if back.Counts != r.Counts || back.Latency != r.Latency || back.Histograms != r.Histograms || back.MatchRate != r.MatchRate ||
		back.BrokerDropped == nil || *back.BrokerDropped != 3 || !bytes.Equal(compact(t, back.Config), compact(t, r.Config)) {
		t.Errorf("Read gave a different report:\n got %+v\nwant %+v", back, r)
	}

	// Read errors.
	if _, err := report.Read(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Errorf("Read of a missing file succeeded")
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	_ = os.WriteFile(bad, []byte("{not json"), 0o644)
	if _, err := report.Read(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("Read of bad JSON = %v, want an error naming the file", err)
	}
}

func compact(t *testing.T, b []byte) []byte {
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestMerge: two instances with disjoint latency values merge into exactly the
// report of one histogram holding all values.
func TestMerge(t *testing.T) {
	a := finished(t, "lg-0", report.Counts{Scheduled: 1000, RequestsSent: 1000, ResponsesMatched: 990, Timeouts: 10, Late: 2}, 10, 100, hist(1, 990))
	b := finished(t, "lg-1", report.Counts{Scheduled: 3000, RequestsSent: 3000, ResponsesMatched: 2000, Timeouts: 900, StillPending: 100, Unknown: 5}, 20, 200, hist(5000, 6999))
	all := hist(1, 990)
	all.Merge(hist(5000, 6999))

	m, err := report.Merge([]*report.Report{a, b}, report.Objectives{P99MS: 5, MatchRate: 0.9, SuccessRate: 0.9})
	if err != nil {
		t.Fatalf("Merge: %v", err)
	}
	if want := latency.Summarize(all); m.Latency != want {
		t.Errorf("merged latency\n got %+v\nwant %+v", m.Latency, want)
	}
	if m.Latency.Count != 2990 {
		t.Errorf("merged latency count %d, want 2990", m.Latency.Count)
	}
	wantCounts := report.Counts{Scheduled: 4000, RequestsSent: 4000, ResponsesMatched: 2990, Timeouts: 910, StillPending: 100, Late: 2, Unknown: 5}
	if m.Counts != wantCounts {
		t.Errorf("merged counts %+v, want %+v", m.Counts, wantCounts)
	}
	checks := []struct {
		name      string
		got, want float64
	}{
		{"throughput adds", m.ThroughputRPS, 100 + 150},
		{"responses rate adds", m.ResponsesRPS, 99 + 100},
		{"target adds", m.TargetRPS, 300},
		{"ratio", m.RateRatio, 250.0 / 300},
		{"duration is the longest", m.DurationSeconds, 20},
		{"match rate from counts", m.MatchRate, 2990.0 / 4000},
		{"worker queue count", float64(m.WorkerQueue.Count), 2 * 46},
	}
	for _, c := range checks {
		if !near(c.got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, c.got, c.want)
		}
	}
	if strings.Join(m.Instances, ",") != "lg-0,lg-1" {
		t.Errorf("instances %v", m.Instances)
	}
	if !m.Balanced {
		t.Errorf("merged report not balanced")
	}
	// SLOs are evaluated on the merged figures: p99 ≈ 6.98 ms > 5.
	if m.SLO.Passed || len(m.SLO.Failures) != 3 {
		t.Errorf("SLO %+v, want p99, match rate and success rate failures", m.SLO)
	}
	// The merged report's own histogram decodes to the merged one.
	h, err := latency.Decode(m.Histograms.Latency)
	if err != nil || !h.Equals(all) {
		t.Errorf("merged latency histogram differs from the union (err %v)", err)
	}

	// Merging a merge with a third report equals merging all three.
	c := finished(t, "lg-2", report.Counts{Scheduled: 10, RequestsSent: 10, ResponsesMatched: 10}, 5, 2, hist(100, 109))
	abc, err := report.Merge([]*report.Report{a, b, c}, report.Objectives{P99MS: 0, MatchRate: 0})
	if err != nil {
		t.Fatal(err)
	}
	ab, _ := report.Merge([]*report.Report{a, b}, report.Objectives{P99MS: 0, MatchRate: 0})
	abThenC, err := report.Merge([]*report.Report{ab, c}, report.Objectives{P99MS: 0, MatchRate: 0})
	if err != nil {
		t.Fatal(err)
	}
	if abc.Latency != abThenC.Latency || abc.Counts != abThenC.Counts || !near(abc.ThroughputRPS, abThenC.ThroughputRPS) {
		t.Errorf("merge is not associative:\n%+v\n%+v", abc.Latency, abThenC.Latency)
	}
}

func TestMergeErrors(t *testing.T) {
	if _, err := report.Merge(nil, report.Objectives{P99MS: 0, MatchRate: 0}); err == nil {
		t.Errorf("Merge of nothing succeeded")
	}
	r := finished(t, "lg-0", report.Counts{Scheduled: 1, RequestsSent: 1, ResponsesMatched: 1}, 1, 1, hist(1, 1))
	r.Histograms.Latency = "garbage"
	if _, err := report.Merge([]*report.Report{r}, report.Objectives{}); err == nil || !strings.Contains(err.Error(), "report 1") {
		t.Errorf("Merge with a broken histogram = %v, want an error naming the report", err)
	}
}

func TestWriteText(t *testing.T) {
	r := finished(t, "lg-7", report.Counts{Scheduled: 1000, RequestsSent: 1000, ResponsesMatched: 998, Timeouts: 2}, 10, 100, hist(1000, 1997))
	if err := r.Finish(hists(hist(1000, 1997)), report.Objectives{P99MS: 1, MatchRate: 0.999}); err != nil {
		t.Fatal(err)
	}
	r.Warmup = &report.Counts{Scheduled: 50, RequestsSent: 50, ResponsesMatched: 50}
	var buf bytes.Buffer
	r.WriteText(&buf)
	out := buf.String()
	for _, want := range []string{
		"lg-7",
		"match rate",
		"0.998000",
		"p99",
		fmt.Sprintf("%.3f", r.Latency.P99),
		"accounting balanced",
		"warmup (excluded)",
		"SLO FAILED",
		"SLO_P99_MS=1",
		"SLO_MATCH_RATE=0.999",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text report lacks %q:\n%s", want, out)
		}
	}
	var passed bytes.Buffer
	ok := finished(t, "lg-8", report.Counts{Scheduled: 10, RequestsSent: 10, ResponsesMatched: 10}, 1, 10, hist(10, 19))
	if err := ok.Finish(hists(hist(10, 19)), report.Objectives{P99MS: 1, MatchRate: 0.5}); err != nil {
		t.Fatal(err)
	}
	ok.WriteText(&passed)
	if !strings.Contains(passed.String(), "SLO") || !strings.Contains(passed.String(), "PASSED") || strings.Contains(passed.String(), "FAILED") {
		t.Errorf("passing SLO not shown as PASSED:\n%s", passed.String())
	}
}

// TestSuccessRateWarningsAndGate: the headline success rate, the scheduled
// identity, the warnings and the success gate, each on the run that would
// mislead without it.
func TestSuccessRateWarningsAndGate(t *testing.T) {
	tests := []struct {
		name        string
		r           report.Report
		slo         report.Objectives
		success     float64
		warnings    []string // substrings, one warning each, in order
		failures    []string // substrings of SLO failures
		unbalanced  bool
		passed      bool
		textContain []string
	}{
		{
			name: "clean run",
			r: report.Report{Counts: report.Counts{Scheduled: 1000, RequestsSent: 1000, ResponsesMatched: 1000},
				VirtualClients: 100, ClientsFired: 100, DurationSeconds: 10, TargetRPS: 100},
			slo: report.Objectives{MatchRate: 0.999}, success: 1, passed: true,
			textContain: []string{"SUCCESS RATE", "1.000000", "scheduled = sent + skipped + send failed: yes"},
		},
		{
			name: "link down 85% of the run: match 0.9988, success gate fails",
			r: report.Report{Counts: report.Counts{Scheduled: 100000, RequestsSent: 15000, ResponsesMatched: 14982, Timeouts: 18, SendFailed: 85000},
				VirtualClients: 1000, ClientsFired: 1000, DurationSeconds: 20, TargetRPS: 5000},
			slo: report.Objectives{MatchRate: 0.99, SuccessRate: 0.99}, success: 0.14982,
			warnings: []string{"achieved rate 750 req/s is 15.0% of the target", "85.00% of scheduled requests were not sent: 0 skipped (client had MAX_INFLIGHT_PER_CLIENT outstanding), 85000 send failed"},
			failures: []string{"success rate 0.149820 (matched / scheduled) is below SLO_SUCCESS_RATE=0.99"},
		},
		{
			name: "saturated service: 79% skipped, match 1.0",
			r: report.Report{Counts: report.Counts{Scheduled: 300000, RequestsSent: 63000, ResponsesMatched: 63000, Skipped: 237000},
				VirtualClients: 10000, ClientsFired: 10000, DurationSeconds: 30, TargetRPS: 10000},
			slo: report.Objectives{SuccessRate: 0.999}, success: 0.21,
			warnings: []string{"achieved rate 2100 req/s is 21.0% of the target", "79.00% of scheduled requests were not sent: 237000 skipped"},
			failures: []string{"success rate 0.210000"},
		},
		{
			name: "few clients fired: duration shorter than the interval",
			r: report.Report{Counts: report.Counts{Scheduled: 200000, RequestsSent: 200000, ResponsesMatched: 200000},
				VirtualClients: 1000000, ClientsFired: 200000, DurationSeconds: 20, IntervalSeconds: 100, TargetRPS: 10000},
			success: 1, passed: true,
			warnings: []string{"only 200000 of 1000000 virtual clients fired: the measured duration 20.0 s is shorter than INTERVAL_MS (100.0 s)"},
		},
		{
			name: "duplicates and implausible responses warn",
			r: report.Report{Counts: report.Counts{Scheduled: 10, RequestsSent: 10, ResponsesMatched: 10, Duplicate: 3, Implausible: 2},
				VirtualClients: 10, ClientsFired: 10, DurationSeconds: 1, TargetRPS: 10},
			success: 1, passed: true,
			warnings: []string{"3 duplicate responses", "2 implausible responses"},
		},
		{
			name: "scheduled identity broken: sent counted for an overwritten slot",
			r: report.Report{Counts: report.Counts{Scheduled: 100, RequestsSent: 103, ResponsesMatched: 100, Duplicate: 3, Timeouts: 3},
				VirtualClients: 10, ClientsFired: 10, DurationSeconds: 1, TargetRPS: 103},
			success: 1, unbalanced: true,
			warnings: []string{"3 duplicate responses"},
			failures: []string{"scheduled 100 != sent 103 + skipped 0 + send failed 0"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.r
			if err := r.Finish(hists(hist(1000, 2000)), tc.slo); err != nil {
				t.Fatal(err)
			}
			if !near(r.SuccessRate, tc.success) {
				t.Errorf("success rate %v, want %v", r.SuccessRate, tc.success)
			}
			if r.Balanced == tc.unbalanced {
				t.Errorf("Balanced = %v, want %v", r.Balanced, !tc.unbalanced)
			}
			if len(r.Warnings) != len(tc.warnings) {
				t.Errorf("warnings %q, want %d like %q", r.Warnings, len(tc.warnings), tc.warnings)
			}
			all := strings.Join(r.Warnings, "\n")
			for _, w := range tc.warnings {
				if !strings.Contains(all, w) {
					t.Errorf("warnings %q lack %q", r.Warnings, w)
				}
			}
			fails := strings.Join(r.SLO.Failures, "\n")
			for _, f := range tc.failures {
				if !strings.Contains(fails, f) {
					t.Errorf("SLO failures %q lack %q", r.SLO.Failures, f)
				}
			}
			if r.SLO.Passed != tc.passed {
				t.Errorf("SLO passed = %v, want %v (%q)", r.SLO.Passed, tc.passed, r.SLO.Failures)
			}
			var buf bytes.Buffer
			r.WriteText(&buf)
			for _, w := range r.Warnings { // wrapped at report.TextWidth: compare words
				if !strings.Contains(words(buf.String()), words("WARNING "+w)) {
					t.Errorf("text report lacks the warning line %q:\n%s", w, buf.String())
				}
			}
			for _, s := range tc.textContain {
				if !strings.Contains(buf.String(), s) {
					t.Errorf("text report lacks %q:\n%s", s, buf.String())
				}
			}
			// JSON carries the new fields.
			b, _ := json.Marshal(&r)
			for _, k := range []string{`"scheduled":`, `"success_rate":`, `"clients_fired":`} {
				if !bytes.Contains(b, []byte(k)) {
					t.Errorf("JSON lacks %s", k)
				}
			}
		})
	}
}
