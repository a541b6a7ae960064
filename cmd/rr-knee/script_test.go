package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestMain lets scripts/benchmark.sh run this test binary as bin/rr-knee.
func TestMain(m *testing.M) {
	if os.Getenv("RR_KNEE_TEST_AS_COMMAND") == "1" {
		os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// fakeLoadgen stands in for bin/loadgen-v2: a run at up to FAKE_CAPACITY
// req/s (VIRTUAL_CLIENTS at INTERVAL_MS=1000) passes, unless its name is in
// FAKE_MISS; it writes a report shaped as the loadgen's and logs its name in
// $OUT/fake-runs.txt.
const fakeLoadgen = `#!/usr/bin/env bash
[ "${1:-}" = -h ] && exit 0
name=$(basename "$REPORT_FILE" .json)
echo "$name" >>"$OUT/fake-runs.txt"
passed=false failures='["p99 latency 66.000 ms exceeds SLO_P99_MS=50"]'
if [ "$VIRTUAL_CLIENTS" -le "$FAKE_CAPACITY" ] && [[ " $FAKE_MISS " != *" $name "* ]]; then passed=true failures='[]'; fi
cat >"$REPORT_FILE" <<JSON
{"virtual_clients": $VIRTUAL_CLIENTS, "interval_s": 1, "target_rps": $VIRTUAL_CLIENTS, "throughput_rps": $VIRTUAL_CLIENTS,
 "rate_ratio": 1, "success_rate": 1, "match_rate": 1,
 "latency_ms": {"count": 100, "p50": 1.5, "p90": 2.25, "p99": 3.5, "p999": 9.2, "max": 27.7},
 "process": {"sending_cpu_us_per_request": 10.5, "max_rss_mb": 40},
 "slo": {"p99_ms": 50, "match_rate": 0.999, "success_rate": 0.999, "passed": $passed, "failures": $failures}}
JSON
echo "fake report of $name"
`

// TestBenchmarkScriptKnee runs `scripts/benchmark.sh knee` as users do, with
// a fake loadgen against a broker URL (nothing is started, nothing is
// measured) and this binary as rr-knee: the script runs what rr-knee asks
// for, keeps the results folder as it always has, and reuses the reports of
// an earlier run in the same folder.
func TestBenchmarkScriptKnee(t *testing.T) {
	if testing.Short() {
		t.Skip("runs scripts/benchmark.sh")
	}
	for _, tool := range []string{"bash", "jq", "awk", "curl", "python3", "git"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	for name, text := range map[string]string{
		"loadgen-v2": fakeLoadgen, "worker-v2": "#!/bin/sh\nexit 0\n", "rr-local": "#!/bin/sh\nexit 0\n",
		"rr-echo": "#!/bin/sh\nexit 0\n", "rr-chart": "#!/bin/sh\nexit 0\n",
	} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(text), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(self, filepath.Join(bin, "rr-knee")); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "knee")
	script := func(vars ...string) (int, string, string) {
		t.Helper()
		cmd := exec.Command("bash", "../../scripts/benchmark.sh", "knee")
		cmd.Env = append([]string{
			"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "RR_KNEE_TEST_AS_COMMAND=1",
			"GORACE=atexit_sleep_ms=0", // a -race binary otherwise waits a second when it exits
			"BIN=" + bin, "OUT=" + out, "BROKER_KIND=tcp://127.0.0.1:1", "SECS=1", "INTERVAL_MS=1000",
			"QUIET_WAIT=0", "KNEE_HALF=0", "CEILING=0", "KNEE_MAX_STEAL=1",
			"FAKE_CAPACITY=37000", "FAKE_MISS=knee-36300",
		}, vars...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		if err != nil {
			ee, ok := err.(*exec.ExitError)
			if !ok {
				t.Fatal(err)
			}
			code = ee.ExitCode()
		}
		return code, stdout.String(), stderr.String()
	}

	// (the script's output, stderr included, is on its stdout and in console.txt)
	code, stdout, _ := script("KNEE_START=50")
	if code != 2 || !strings.HasPrefix(stdout, "KNEE_START=50: want a rate of at least 100 req/s\n\n") {
		t.Fatalf("KNEE_START=50: exit %d, output:\n%s", code, stdout)
	}
	if err := os.RemoveAll(out); err != nil {
		t.Fatal(err)
	}

	// KNEE_MAX_STEAL=1: every miss is clean whatever this machine's steal.
	// 36300 misses once (FAKE_MISS) and passes on its second try.
	want := strings.Fields("knee-5000 knee-10000 knee-20000 knee-40000 knee-40000-try2 knee-30000 knee-35000 knee-37500 knee-37500-try2 knee-36300 knee-36300-try2")
	code, stdout, stderr := script()
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "KNEE: 36300 req/s (p99 ≤ 50 ms, match ≥ 0.999); 37500 req/s missed\n") {
		t.Errorf("no KNEE line:\n%s", stdout)
	}
	if runs := lines(t, filepath.Join(out, "fake-runs.txt")); !slices.Equal(runs, want) {
		t.Errorf("runs\n got %q\nwant %q", runs, want)
	}
	summary := lines(t, filepath.Join(out, "summary.csv"))
	if len(summary) != len(want)+1 || !strings.HasPrefix(summary[0], "step,broker,kind,") || !strings.HasPrefix(summary[len(want)], `"knee-36300-try2","url","loadgen",36300,`) {
		t.Errorf("summary.csv:\n%s", strings.Join(summary, "\n"))
	}
	for _, name := range want {
		if _, err := os.Stat(filepath.Join(out, name+".json")); err != nil {
			t.Error(err)
		}
	}
	var manifest struct {
		Results struct {
			Knee map[string]any `json:"knee"`
		} `json:"results"`
	}
	b, err := os.ReadFile(filepath.Join(out, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &manifest); err != nil {
		t.Fatal(err)
	}
	if k := manifest.Results.Knee; k["knee_rps"] != 36300.0 || k["lowest_failing_rps"] != 37500.0 || k["precision"] != 0.05 {
		t.Errorf("manifest.json results.knee = %v", k)
	}
	st, err := loadState(statePath(out))
	if err != nil || len(st.Runs) != len(want) {
		t.Errorf("state: %+v, %v", st, err)
	}

	// The same folder again: every report is there, nothing runs.
	code, stdout, stderr = script()
	if code != 0 || !strings.Contains(stdout, "KNEE: 36300 req/s") {
		t.Fatalf("again: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if runs := lines(t, filepath.Join(out, "fake-runs.txt")); len(runs) != len(want) {
		t.Errorf("again: the loadgen ran %q", runs[len(want):])
	}
}

func lines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}
