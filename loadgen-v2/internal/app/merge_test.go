package app

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/latency"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/config"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/report"
)

// writeReport writes the report of a 10 s run of instance name (1000
// virtual clients from first, 100 req/s, every request answered, epoch at
// start) with QOS qos into dir, as the loadgen's REPORT_FILE would, and
// returns its path.
func writeReport(t *testing.T, dir, name string, first uint64, start time.Time, qos int) string {
	t.Helper()
	cfg := config.Config{VirtualClients: 1000, Shards: 16, IntervalMS: 10000, MaxInflight: 1, QoS: qos, Duration: 10 * time.Second,
		MQTTVersion: "3.1.1", InstanceID: name, SLOSuccess: 0.99}
	cj, err := json.Marshal(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	lat := latency.New()
	for v := int64(1000); v < 2000; v++ {
		_ = lat.RecordValue(v)
	}
	r, err := report.Build(&report.Outcome{
		Instance: name, Protocol: "3.1.1", Correlation: "envelope",
		Measured:   report.Counts{Scheduled: 1000, RequestsSent: 1000, ResponsesMatched: 1000},
		Warmup:     report.Counts{Scheduled: 100, RequestsSent: 100, ResponsesMatched: 100},
		WarmupTime: time.Second, SendEnd: 11 * time.Second, TargetRPS: 100, VirtualClients: 1000, ClientsFired: 1000,
		Interval: 10 * time.Second, Config: cj, Hists: report.Hists{Latency: lat},
		Run: report.Run{Instance: name, RunID: name + "-run", FirstClient: first, Clients: 1000,
			Start: start, MeasuredStart: start.Add(time.Second), End: start.Add(11 * time.Second)},
	})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".json")
	if err := r.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestMergeCommand: `loadgen-v2 merge` through Merge: its exit statuses, what
// it prints, and the JSON it writes with -o (merged again, it merges).
func TestMergeCommand(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)
	a := writeReport(t, dir, "lg-0", 0, t0, 0)
	b := writeReport(t, dir, "lg-1", 1000, t0.Add(200*time.Millisecond), 0)
	c := writeReport(t, dir, "lg-2", 2000, t0.Add(400*time.Millisecond), 0)
	qos1 := writeReport(t, dir, "lg-3", 3000, t0, 1)
	broken := filepath.Join(dir, "broken.json")
	if err := os.WriteFile(broken, []byte(`{"instances":["x"],"mqtt_version":"3.1.1","correlate":"envelope","histograms":{"latency":"garbage"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	merged := filepath.Join(dir, "ab.json")
	// In order: later cases read the merged report the first one writes.
	tests := []struct {
		name   string
		args   []string
		env    map[string]string
		code   int
		stdout []string // substrings
		stderr []string
		wrote  string // a file the merge must have written
		absent string // a file it must not have written
	}{
		{name: "two instances, -o after the files", args: []string{a, b, "-o", merged}, code: 0, wrote: merged,
			stdout: []string{"(lg-0, lg-1)", "span                 10.2 s", "all instances measuring together: 9.8 s", "SLO  PASSED",
				"warmup (excluded)  scheduled 200"}},
		{name: "the merged report merged again", args: []string{"-o", filepath.Join(dir, "abc.json"), merged, c}, code: 0,
			wrote: filepath.Join(dir, "abc.json"), stdout: []string{"(lg-0, lg-1, lg-2)", "sent               3000"}},
		{name: "the same file twice", args: []string{"-o", filepath.Join(dir, "dup.json"), a, b, a}, code: 2, absent: filepath.Join(dir, "dup.json"),
			stderr: []string{"loadgen-v2 merge: merge refused", "report 1 (" + a + ") and report 3 (" + a + ")", "give each instance's report once"}},
		{name: "a merged report with one of its instances", args: []string{merged, b}, code: 2,
			stderr: []string{"the same run twice: report 1 (" + merged + ") and report 2 (" + b + ")"}},
		{name: "different QOS", args: []string{a, qos1}, code: 2, stderr: []string{"QOS: 0 in " + a + ", 1 in " + qos1}},
		{name: "SLO missed on the merged report", args: []string{a, b, "-o", filepath.Join(dir, "slo.json")}, env: map[string]string{"SLO_P99_MS": "1"},
			code: 3, wrote: filepath.Join(dir, "slo.json"), stdout: []string{"SLO FAILED", "SLO_P99_MS=1"}},
		{name: "a missing file", args: []string{a, filepath.Join(dir, "missing.json")}, code: 1, stderr: []string{"missing.json", "REPORT_FILE"}},
		{name: "a histogram that does not decode", args: []string{a, broken}, code: 1, stderr: []string{broken, "do not decode"}},
		{name: "no files", args: []string{"-o", "x.json"}, code: 2, stderr: []string{"give one or more JSON report files", "usage: loadgen-v2 merge"}},
		{name: "an unknown flag", args: []string{"-x", a}, code: 2, stderr: []string{"-x"}},
		{name: "an invalid SLO", args: []string{a}, env: map[string]string{"SLO_MATCH_RATE": "high"}, code: 2, stderr: []string{"SLO_MATCH_RATE"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var stdout, stderr bytes.Buffer
			if code := Merge(tc.args, &stdout, &stderr); code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, stdout.String(), stderr.String())
			}
			for _, s := range tc.stdout {
				if !strings.Contains(stdout.String(), s) {
					t.Errorf("stdout lacks %q:\n%s", s, stdout.String())
				}
			}
			for _, s := range tc.stderr {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr.String())
				}
			}
			if tc.code == 2 && stdout.Len() > 0 {
				t.Errorf("a refused merge printed a report:\n%s", stdout.String())
			}
			if tc.wrote != "" {
				r, err := report.Read(tc.wrote)
				if err != nil {
					t.Fatalf("the merged JSON: %v", err)
				}
				if len(r.Runs) != len(r.Instances) || r.SpanSeconds == 0 || r.Warmup == nil || r.Histograms.Latency == "" {
					t.Errorf("merged JSON lacks runs, span, warm-up or histograms: %+v", r)
				}
				if r.SLO.Passed != (tc.code == 0) {
					t.Errorf("merged JSON SLO %+v with exit %d", r.SLO, tc.code)
				}
			}
			if tc.absent != "" {
				if _, err := os.Stat(tc.absent); !os.IsNotExist(err) {
					t.Errorf("%s written by a refused merge (stat: %v)", tc.absent, err)
				}
			}
		})
	}
}
