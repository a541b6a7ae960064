package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/brokertest"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/latency"
)

// fleetReport is what the fleet tests read of a JSON report.
type fleetReport struct {
	Counts  map[string]any
	Warmup  map[string]uint64 `json:"warmup"`
	Latency struct {
		P50, P90, P99 float64
		Count         int64 `json:"count"`
	} `json:"latency_ms"`
	Hist struct {
		Latency string `json:"latency"`
	} `json:"histograms"`
	Fleet *struct {
		ID   string `json:"id"`
		Size int    `json:"size"`
	} `json:"fleet"`
	Runs []struct {
		Instance    string    `json:"instance"`
		FleetIndex  *int      `json:"fleet_index"`
		FirstClient uint64    `json:"first_client"`
		Clients     uint64    `json:"clients"`
		Start       time.Time `json:"start"`
		SkewMS      *float64  `json:"start_skew_ms"`
	} `json:"runs"`
	SLO struct {
		Passed   bool     `json:"passed"`
		Failures []string `json:"failures"`
	} `json:"slo"`
}

func readFleetReport(t *testing.T, path string) fleetReport {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r fleetReport
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &r.Counts); err != nil {
		t.Fatal(err)
	}
	return r
}

// fleetEnv is the environment of instance i of a fleet of size n.
func fleetEnv(brokerURL, id string, i, n int, extra ...string) []string {
	return append([]string{
		"BROKER=" + brokerURL, "FLEET_ID=" + id, fmt.Sprintf("FLEET_SIZE=%d", n), fmt.Sprintf("FLEET_INDEX=%d", i),
		fmt.Sprintf("INSTANCE_ID=%s-%d", id, i), "VIRTUAL_CLIENTS=1000", "INTERVAL_MS=500", "DURATION=3s", "WARMUP=1s",
		"MAX_INFLIGHT_PER_CLIENT=16", "CONNECTIONS=4", "SHARDS=16", "METRICS_ADDR=", "PROGRESS_INTERVAL=0",
		"FLEET_START_DELAY=500ms", "FLEET_TIMEOUT=60s",
	}, extra...)
}

// checkCleared asserts that the fleet's retained control messages are gone.
func checkCleared(t *testing.T, brokerURL, id string, n int) {
	t.Helper()
	base := "mqtt-rr-bench/fleet/" + id + "/"
	topics := []string{base + "start"}
	for i := range n {
		topics = append(topics, fmt.Sprintf("%sreport/%d", base, i), fmt.Sprintf("%sstatus/%d", base, i))
	}
	for _, tp := range topics {
		if held := brokertest.Retained(t, brokerURL, tp); held != nil {
			t.Errorf("retained message left on %s after the run: %.120s", tp, held)
		}
	}
}

// TestFleetOfThree: three loadgens with one FLEET_ID run as one fleet.
// Index 0 coordinates: every instance's schedule counts from the one start
// it announced, their client ranges are disjoint, the merged report's books
// are the sums of theirs (warm-up included), its percentiles are those of
// the merged histogram, the verdict is one exit status, and the control
// topics are cleared.
func TestFleetOfThree(t *testing.T) {
	b := brokertest.Start(t)
	startWorker(t, b.URL())
	dir := t.TempDir()
	var lgs []*proc
	for i := range 3 {
		lgs = append(lgs, start(t, "loadgen-v2", fleetEnv(b.URL(), "f3", i, 3,
			"REPORT_FILE="+filepath.Join(dir, fmt.Sprintf("own-%d.json", i)), "FLEET_RESULTS="+filepath.Join(dir, "fleet"))...))
	}
	for i, lg := range lgs {
		if code := lg.wait(t, 90*time.Second); code != 0 {
			t.Fatalf("loadgen %d exit %d\n%s\n%s", i, code, lg.out.String(), tail(lg.errOut.String(), 3000))
		}
	}
	out := lgs[0].out.String()
	for _, want := range []string{"=== Fleet f3: merged report of 3 instances ===", "Fleet f3: 3 of 3 instances reported", "Fleet verdict: PASSED"} {
		if !strings.Contains(out, want) {
			t.Errorf("index 0's output lacks %q:\n%s", want, out)
		}
	}
	merged := readFleetReport(t, filepath.Join(dir, "fleet", "merged.json"))
	sum := map[string]float64{}
	warm := map[string]uint64{}
	all := hdrhistogram.New(1, 60_000_000, 3)
	var starts []time.Time
	for i := range 3 {
		r := readFleetReport(t, filepath.Join(dir, "fleet", fmt.Sprintf("loadgen-%d.json", i)))
		own := readFleetReport(t, filepath.Join(dir, fmt.Sprintf("own-%d.json", i)))
		if r.Counts["requests_sent"] != own.Counts["requests_sent"] || r.Runs[0].Start != own.Runs[0].Start {
			t.Errorf("index %d: the report the coordinator collected differs from its REPORT_FILE", i)
		}
		if r.Fleet == nil || r.Fleet.ID != "f3" || r.Fleet.Size != 3 || len(r.Runs) != 1 || r.Runs[0].FleetIndex == nil || *r.Runs[0].FleetIndex != i {
			t.Fatalf("index %d: fleet identity %+v runs %+v", i, r.Fleet, r.Runs)
		}
		if run := r.Runs[0]; run.FirstClient != uint64(i)*1000 || run.Clients != 1000 {
			t.Errorf("index %d: clients %d..+%d, want %d..+1000", i, run.FirstClient, run.Clients, i*1000)
		}
		if r.Runs[0].SkewMS == nil || *r.Runs[0].SkewMS < 0 {
			t.Errorf("index %d: start skew %v, want a measured, non-negative one", i, r.Runs[0].SkewMS)
		}
		starts = append(starts, r.Runs[0].Start)
		for _, k := range []string{"scheduled", "requests_sent", "responses_matched", "timeouts", "still_pending", "skipped", "send_failed", "late", "duplicate", "unknown", "malformed"} {
			sum[k] += r.Counts[k].(float64)
		}
		for k, v := range r.Warmup {
			warm[k] += v
		}
		h, err := latency.Decode(r.Hist.Latency)
		if err != nil {
			t.Fatal(err)
		}
		all.Merge(h)
	}
	for i := 1; i < 3; i++ {
		if !starts[i].Equal(starts[0]) {
			t.Errorf("index %d started its schedule at %v, index 0 at %v: want the one announced start", i, starts[i], starts[0])
		}
	}
	for k, v := range sum {
		if got := merged.Counts[k].(float64); got != v {
			t.Errorf("merged %s = %v, the instances' sum is %v", k, got, v)
		}
	}
	if sum["requests_sent"] == 0 || sum["responses_matched"] != sum["requests_sent"] {
		t.Errorf("want every request answered at light load: %v", sum)
	}
	for k, v := range warm {
		if merged.Warmup[k] != v {
			t.Errorf("merged warm-up %s = %d, the instances' sum is %d", k, merged.Warmup[k], v)
		}
	}
	want := latency.Summarize(all)
	for _, x := range []struct {
		name      string
		got, want float64
	}{{"p50", merged.Latency.P50, want.P50}, {"p90", merged.Latency.P90, want.P90}, {"p99", merged.Latency.P99, want.P99}} {
		if math.Abs(x.got-x.want) > 1e-9 {
			t.Errorf("merged latency %s = %v, the merged histogram says %v", x.name, x.got, x.want)
		}
	}
	if merged.Fleet == nil || merged.Fleet.ID != "f3" || len(merged.Runs) != 3 {
		t.Errorf("merged report: fleet %+v, %d runs, want f3 and 3", merged.Fleet, len(merged.Runs))
	}
	if _, err := os.Stat(filepath.Join(dir, "fleet", "merged.txt")); err != nil {
		t.Error(err)
	}
	checkCleared(t, b.URL(), "f3", 3)
}

// TestFleetRefusesMismatchAndDuplicate: a fleet whose instances differ in a
// shared setting, or two of which take one index, does not start: every
// instance exits 2 and the message names the variable.
func TestFleetRefusesMismatchAndDuplicate(t *testing.T) {
	b := brokertest.Start(t)
	cases := []struct {
		name  string
		extra [][]string // per instance: extra variables
		index []int
		want  string
	}{
		{"mismatch", [][]string{{"QOS=0"}, {"QOS=1"}}, []int{0, 1}, "QOS=1 against QOS=0"},
		{"duplicate", [][]string{nil, nil, nil}, []int{0, 1, 1}, "FLEET_INDEX=1 is taken twice"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var lgs []*proc
			for k, i := range c.index {
				env := fleetEnv(b.URL(), "refuse-"+c.name, i, 3, c.extra[k]...)
				env = append(env, fmt.Sprintf("INSTANCE_ID=%s-%d-%d", c.name, i, k))
				lgs = append(lgs, start(t, "loadgen-v2", env...))
				// The coordinator must see index 0 before the duplicate (it
				// refuses on the second hello of an index).
				waitEvent(t, "instance "+fmt.Sprint(k)+" waits for the start", lgs, func() (bool, string) {
					return strings.Contains(lgs[k].errOut.String(), "fleet: waiting for the start"), ""
				})
			}
			for k, lg := range lgs {
				if code := lg.wait(t, 60*time.Second); code != 2 {
					t.Errorf("instance %d: exit %d, want 2\n%s", k, code, tail(lg.errOut.String(), 2000))
				}
				if !strings.Contains(lg.errOut.String(), c.want) {
					t.Errorf("instance %d: stderr lacks %q:\n%s", k, c.want, tail(lg.errOut.String(), 2000))
				}
			}
			checkCleared(t, b.URL(), "refuse-"+c.name, 3)
		})
	}
}

// TestFleetExternalCoordinatorNamesTheMissing: with `loadgen-v2 fleet` as
// the coordinator, an instance killed after the start fails the fleet by
// name (exit 3), and the others' merged report is still written.
func TestFleetExternalCoordinatorNamesTheMissing(t *testing.T) {
	b := brokertest.Start(t)
	startWorker(t, b.URL())
	dir := filepath.Join(t.TempDir(), "results")
	coord := startArgs(t, "loadgen-v2", []string{"fleet"}, "BROKER="+b.URL(), "FLEET_ID=fx", "FLEET_SIZE=3",
		"FLEET_START_DELAY=500ms", "FLEET_TIMEOUT=60s", "FLEET_RESULTS="+dir)
	var lgs []*proc
	for i := range 3 {
		lgs = append(lgs, start(t, "loadgen-v2", fleetEnv(b.URL(), "fx", i, 3, "FLEET_COORDINATOR=external", "DURATION=30s", "WARMUP=0s", "SLO_SUCCESS_RATE=0")...))
	}
	victim := lgs[2]
	waitEvent(t, "every instance sending", append(lgs, coord), func() (bool, string) {
		n := 0
		for _, lg := range lgs {
			if strings.Contains(lg.errOut.String(), "loadgen started") {
				n++
			}
		}
		return n == len(lgs), fmt.Sprintf("%d of %d sending", n, len(lgs))
	})
	_ = syscall.Kill(-victim.cmd.Process.Pid, syscall.SIGKILL)
	// The other two would send for 30 s: end them now (a signal ends
	// sending as DURATION would; their reports still go to the coordinator).
	for _, lg := range lgs[:2] {
		if code := lg.stop(t); code != 0 {
			t.Errorf("instance exit %d\n%s", code, tail(lg.errOut.String(), 2000))
		}
	}
	if code := coord.wait(t, 90*time.Second); code != 3 {
		t.Fatalf("coordinator exit %d, want 3\n%s\n%s", code, coord.out.String(), tail(coord.errOut.String(), 3000))
	}
	out := coord.out.String()
	for _, want := range []string{"2 of 3 reported; index 2 (fx-2 on host", "missing: its connection to the broker was lost", "Fleet verdict: FAILED"} {
		if !strings.Contains(out, want) {
			t.Errorf("coordinator's output lacks %q:\n%s", want, out)
		}
	}
	merged := readFleetReport(t, filepath.Join(dir, "merged.json"))
	if merged.SLO.Passed || len(merged.Runs) != 2 {
		t.Errorf("merged report: passed %v, %d runs; want failed, 2", merged.SLO.Passed, len(merged.Runs))
	}
	checkCleared(t, b.URL(), "fx", 3)
}
