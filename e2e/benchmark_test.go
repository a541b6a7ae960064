package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/brokertest"
)

// quickLoadgen stands in for bin/loadgen-v2 in TestBenchmarkQuick: it
// writes a report shaped as the loadgen's for the run it was given (nothing
// is measured) and logs its settings in $OUT/fake-runs.txt.
const quickLoadgen = `#!/usr/bin/env bash
[ "${1:-}" = -h ] && exit 0
name=$(basename "$REPORT_FILE" .json)
echo "$name VIRTUAL_CLIENTS=$VIRTUAL_CLIENTS INTERVAL_MS=$INTERVAL_MS DURATION=$DURATION WARMUP=$WARMUP" >>"$OUT/fake-runs.txt"
rate=$((VIRTUAL_CLIENTS * 1000 / INTERVAL_MS))
cat >"$REPORT_FILE" <<JSON
{"virtual_clients": $VIRTUAL_CLIENTS, "interval_s": 1, "target_rps": $rate, "throughput_rps": $rate, "duration_s": 8,
 "rate_ratio": 1, "success_rate": 1, "match_rate": 1, "config": {"broker": "$BROKER", "warmup": 2000000000},
 "latency_ms": {"count": 100, "p50": 1.5, "p90": 2.25, "p99": 3.5, "p999": 9.2, "max": 27.7},
 "process": {"sending_cpu_us_per_request": 10.5, "max_rss_mb": 40},
 "slo": {"success_rate": 0.99, "passed": true}}
JSON
echo "fake report of $name"
`

// TestBenchmarkQuick runs `scripts/benchmark.sh quick` as users do, against
// a broker URL with a stand-in loadgen (nothing is started or measured) and
// the real rr-chart: it says what it measures before it starts (rate,
// duration, warm-up, brokers), runs exactly that, records the settings it
// used and the results in manifest.json, and the chart's title names broker,
// rate and duration.
func TestBenchmarkQuick(t *testing.T) {
	for _, tool := range []string{"bash", "jq", "awk", "curl", "python3"} {
		brokertest.NeedTool(t, tool, "scripts/benchmark.sh needs it; .ci/run installs it")
	}
	bin := t.TempDir()
	for name, text := range map[string]string{"loadgen-v2": quickLoadgen, "worker-v2": "#!/bin/sh\nexit 0\n",
		"rr-local": "#!/bin/sh\nexit 0\n", "rr-echo": "#!/bin/sh\nexit 0\n"} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(text), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("go", "build", "-o", filepath.Join(bin, "rr-chart"), "../cmd/rr-chart").CombinedOutput(); err != nil {
		t.Fatalf("build rr-chart: %v\n%s", err, out)
	}
	out := filepath.Join(t.TempDir(), "quick")
	cmd := exec.Command("bash", "../scripts/benchmark.sh", "quick")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "BIN=" + bin, "OUT=" + out,
		"BROKER_KIND=tcp://127.0.0.1:1", "QUIET_WAIT=0"}
	console, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("benchmark.sh quick: %v\n%s", err, console)
	}
	says := "quick: 10,000 req/s (10,000 virtual clients every 1000 ms) for 10 s per broker, the first 2 s a warm-up left out of the report (8 s measured); brokers: tcp://127.0.0.1:1"
	if !strings.HasPrefix(string(console), says+"\n") {
		t.Errorf("the suite does not start by saying what it measures (%q):\n%s", says, console)
	}
	runs, err := os.ReadFile(filepath.Join(out, "fake-runs.txt"))
	if err != nil || strings.TrimSpace(string(runs)) != "quick-url VIRTUAL_CLIENTS=10000 INTERVAL_MS=1000 DURATION=10s WARMUP=2s" {
		t.Errorf("runs %q, %v: want the one run it said", runs, err)
	}
	var manifest struct {
		Settings map[string]any            `json:"settings"`
		Results  map[string]map[string]any `json:"results"`
	}
	b, err := os.ReadFile(filepath.Join(out, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &manifest); err != nil {
		t.Fatal(err)
	}
	if s := manifest.Settings; s["interval_ms"] != 1000.0 || s["rate_rps"] != 10000.0 || s["duration_s"] != 10.0 || s["warmup"] != "2s" || s["measured_s"] != 8.0 {
		t.Errorf("manifest settings %v: want what the run used (10k req/s, interval 1000 ms, 10 s, 2 s warm-up)", s)
	}
	if r := manifest.Results["quick_url"]; r["p50_ms"] != 1.5 || r["p99_ms"] != 3.5 || r["rate_rps"] != 10000.0 || r["measured_s"] != 8.0 {
		t.Errorf("manifest results %v: want the run's p50, p99 and rate", manifest.Results)
	}
	svg, err := os.ReadFile(filepath.Join(out, "spectrum.svg"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "broker tcp://127.0.0.1:1 · 10k req/s · 8 s measured after a 2 s warm-up"; !strings.Contains(string(svg), want) {
		t.Errorf("spectrum.svg's title lacks %q:\n%.500s", want, svg)
	}
}
