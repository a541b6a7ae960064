// Package e2e runs the real binaries (worker-v2, loadgen-v2, rr-local,
// rr-echo) as processes against real brokers: the embedded one and a
// Mosquitto started by the test on a free port with its own configuration
// (both from internal/brokertest). Every wait is for an event (waitEvent,
// waitLoadgen, brokertest.WaitOK), bounded by brokertest.Patience.
package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/brokertest"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/syncbuf"
)

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rrbench-e2e-")
	if err != nil {
		panic(err)
	}
	for _, b := range []string{"loadgen-v2", "worker-v2", "cmd/rr-local", "cmd/rr-echo"} {
		out := filepath.Join(dir, filepath.Base(b))
		cmd := exec.Command("go", "build", "-race", "-o", out, "../"+b)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build", b, err)
			os.Exit(1)
		}
	}
	binDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running binary.
type proc struct {
	cmd    *exec.Cmd
	out    syncbuf.Buffer
	errOut syncbuf.Buffer
	done   chan struct{}
}

func start(t *testing.T, name string, env ...string) *proc {
	t.Helper()
	return startArgs(t, name, nil, env...)
}

// startArgs is start with command-line arguments (a subcommand).
func startArgs(t *testing.T, name string, args []string, env ...string) *proc {
	t.Helper()
	p := &proc{done: make(chan struct{})}
	p.cmd = exec.Command(filepath.Join(binDir, name), args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.errOut
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
		if t.Failed() { // what a flake needs to be understood
			t.Logf("%s %s: the end of its stderr:\n%s", name, strings.Join(args, " "), tail(p.errOut.String(), 4000))
		}
	})
	return p
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(t *testing.T, limit time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(limit):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		t.Fatalf("%s did not exit within %v\nstdout:\n%s\nstderr:\n%s", p.cmd.Path, limit, p.out.String(), p.errOut.String())
	}
	return p.cmd.ProcessState.ExitCode()
}

func (p *proc) stop(t *testing.T) int {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	return p.wait(t, 40*time.Second)
}

// alive reports whether the process still runs.
func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// waitEvent polls cond every 20 ms until it holds and returns how long that
// took. It fails the test after brokertest.Patience, or as soon as a watched
// process has exited (then the event can no longer happen; every process's
// stderr is logged when a test fails). state describes what was seen last,
// for the failure message.
func waitEvent(t *testing.T, what string, watch []*proc, cond func() (ok bool, state string)) time.Duration {
	t.Helper()
	return brokertest.Await(t, what, 20*time.Millisecond, func() (bool, string) {
		ok, state := cond()
		if ok {
			return true, state
		}
		for _, p := range watch {
			if !p.alive() {
				t.Fatalf("%s: not seen before %s exited (last: %s)\nstdout:\n%s", what, filepath.Base(p.cmd.Path), state, tail(p.out.String(), 3000))
			}
		}
		return false, state
	})
}

// lgVars is the "loadgen" object of loadgen-v2's /debug/vars: the part the
// tests read.
type lgVars struct {
	RunID              string  `json:"run_id"`
	Phase              string  `json:"phase"`
	ElapsedSeconds     float64 `json:"elapsed_s"`
	Connections        int     `json:"connections"`
	ConnectionsUp      int     `json:"connections_up"`
	ConnectionsSuspect int     `json:"connections_suspect"`
	Connects           uint64  `json:"connects"`
	Reconnects         uint64  `json:"reconnects"`
	Scheduled          uint64  `json:"scheduled"`
	RequestsSent       uint64  `json:"requests_sent"`
	ResponsesMatched   uint64  `json:"responses_matched"`
	Timeouts           uint64  `json:"timeouts"`
	Skipped            uint64  `json:"skipped"`
	SendFailed         uint64  `json:"send_failed"`
	Pending            int64   `json:"pending"`
	Unknown            uint64  `json:"unknown"`
	Malformed          uint64  `json:"malformed"`
}

func (v lgVars) String() string {
	return fmt.Sprintf("run %s phase %s, conns %d/%d suspect %d (connects %d, reconnects %d), scheduled %d sent %d matched %d timed_out %d skipped %d send_failed %d pending %d unknown %d malformed %d",
		v.RunID, v.Phase, v.ConnectionsUp, v.Connections, v.ConnectionsSuspect, v.Connects, v.Reconnects,
		v.Scheduled, v.RequestsSent, v.ResponsesMatched, v.Timeouts, v.Skipped, v.SendFailed, v.Pending, v.Unknown, v.Malformed)
}

// loadgenVars reads the loadgen's live counters at addr (METRICS_ADDR). It
// does not fail the test, so it can poll a process that may be exiting.
func loadgenVars(addr string) (lgVars, error) {
	var v struct {
		L lgVars `json:"loadgen"`
	}
	err := brokertest.FetchJSON("http://"+addr+"/debug/vars", &v)
	return v.L, err
}

// waitLoadgen polls the loadgen's /debug/vars at addr until ok holds and
// returns what it read then; it fails the test when lg exits first.
func waitLoadgen(t *testing.T, lg *proc, addr, what string, ok func(lgVars) bool) lgVars {
	t.Helper()
	var last lgVars
	waitEvent(t, what, []*proc{lg}, func() (bool, string) {
		v, err := loadgenVars(addr)
		if err != nil {
			return false, err.Error()
		}
		last = v
		return ok(v), v.String()
	})
	return last
}

// report is the part of the JSON report the tests read.
type report struct {
	Instances        []string `json:"instances"`
	Scheduled        uint64   `json:"scheduled"`
	RequestsSent     uint64   `json:"requests_sent"`
	ResponsesMatched uint64   `json:"responses_matched"`
	Timeouts         uint64   `json:"timeouts"`
	StillPending     uint64   `json:"still_pending"`
	Skipped          uint64   `json:"skipped"`
	SendFailed       uint64   `json:"send_failed"`
	Late             uint64   `json:"late"`
	Duplicate        uint64   `json:"duplicate"`
	Implausible      uint64   `json:"implausible"`
	Unknown          uint64   `json:"unknown"`
	Malformed        uint64   `json:"malformed"`
	MatchRate        float64  `json:"match_rate"`
	SuccessRate      float64  `json:"success_rate"`
	ThroughputRPS    float64  `json:"throughput_rps"`
	TargetRPS        float64  `json:"target_rps"`
	Balanced         bool     `json:"accounting_balanced"`
	Latency          struct {
		P50, P90, P99, P999, Max float64
	} `json:"latency_ms"`
	Config map[string]any `json:"config"`
	SLO    struct {
		Passed   bool     `json:"passed"`
		Failures []string `json:"failures"`
	} `json:"slo"`
}

func readReport(t *testing.T, path string) report {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// startWorker starts worker-v2 on brokerURL and waits until it is ready.
func startWorker(t *testing.T, brokerURL string, env ...string) (*proc, string) {
	t.Helper()
	addr := brokertest.FreeAddr(t)
	w := start(t, "worker-v2", append([]string{"MQTT_BROKER=" + brokerURL, "HTTP_ADDR=" + addr, "CONNECTIONS=4", "MIN_WORKERS=4"}, env...)...)
	brokertest.WaitOK(t, "http://"+addr+"/ready")
	return w, addr
}

// lossy turns the success-rate SLO off (its default is 0.99) for runs that
// lose requests by design (a fault injected): their tests check the books
// and the recovery; the verdict itself is checked by TestNetworkSLOGate.
const lossy = "SLO_SUCCESS_RATE=0"

func loadgenEnv(brokerURL, reportFile string, extra ...string) []string {
	return append([]string{
		// Open loop: up to 16 outstanding per client, so that a round trip
		// stretched by a busy machine never turns into a skipped send.
		"BROKER=" + brokerURL, "VIRTUAL_CLIENTS=2000", "INTERVAL_MS=500", "DURATION=3s", "MAX_INFLIGHT_PER_CLIENT=16",
		"CONNECTIONS=8", "SHARDS=64", "METRICS_ADDR=127.0.0.1:0", "PROGRESS_INTERVAL=1s",
		"REPORT_FILE=" + reportFile,
	}, extra...)
}

// checkAllAnswered asserts the light-load invariants: every request accounted
// for, all matched, the rate on target.
func checkAllAnswered(t *testing.T, r report, wantSent float64) {
	t.Helper()
	if !r.Balanced || r.RequestsSent != r.ResponsesMatched+r.Timeouts+r.StillPending {
		t.Errorf("accounting: %+v", r)
	}
	if r.MatchRate != 1 || r.Timeouts != 0 || r.SendFailed != 0 || r.Skipped != 0 {
		t.Errorf("want every request matched at light load: %+v", r)
	}
	if d := float64(r.RequestsSent)/wantSent - 1; d > 0.01 || d < -0.01 {
		t.Errorf("sent %d, want %.0f ±1%%", r.RequestsSent, wantSent)
	}
	if r.Latency.P50 <= 0 || r.Latency.P99 < r.Latency.P50 {
		t.Errorf("latency: %+v", r.Latency)
	}
	for _, k := range []string{"virtual_clients", "interval_ms", "broker"} {
		if _, ok := r.Config[k]; !ok {
			t.Errorf("config lacks %s", k)
		}
	}
}

func runPair(t *testing.T, brokerURL string, env ...string) {
	w, waddr := startWorker(t, brokerURL, env...)
	rf := filepath.Join(t.TempDir(), "report.json")
	lg := start(t, "loadgen-v2", loadgenEnv(brokerURL, rf, env...)...)
	if code := lg.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("loadgen exit %d\n%s\n%s", code, lg.out.String(), lg.errOut.String())
	}
	r := readReport(t, rf)
	clients := 2000.0
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "VIRTUAL_CLIENTS="); ok {
			clients, _ = strconv.ParseFloat(v, 64)
		}
	}
	checkAllAnswered(t, r, clients*3/0.5)
	if !strings.Contains(lg.out.String(), "match rate") || !strings.Contains(lg.errOut.String(), "req/s") {
		t.Errorf("report table or progress missing:\n%s\n%s", lg.out.String(), lg.errOut.String())
	}
	var st map[string]any
	brokertest.GetJSON(t, "http://"+waddr+"/stats", &st)
	if st["processed"].(float64) < float64(r.ResponsesMatched) {
		t.Errorf("worker processed %v < matched %d", st["processed"], r.ResponsesMatched)
	}
	if code := w.stop(t); code != 0 {
		t.Errorf("worker exit %d: %s", code, w.errOut.String())
	}
}

func TestEmbeddedBroker(t *testing.T) {
	runPair(t, brokertest.Start(t).URL())
}

func TestMosquitto(t *testing.T) {
	m := brokertest.StartMosquitto(t, "")
	runPair(t, m.URL())
}

// QoS 1 requests and responses (through paho's own publish path, a token
// and a goroutine hand-off per message: at a quarter of the other tests' rate,
// so that race-built binaries on a busy 2-core machine keep up).
func TestMosquittoQoS1(t *testing.T) {
	m := brokertest.StartMosquitto(t, "")
	runPair(t, m.URL(), "QOS=1", "VIRTUAL_CLIENTS=500")
}

// Two loadgen instances with disjoint client ranges share one worker pool;
// each sees only its own responses.
func TestTwoLoadgensNoCrossTalk(t *testing.T) {
	m := brokertest.StartMosquitto(t, "")
	w, _ := startWorker(t, m.URL())
	dir := t.TempDir()
	var lgs []*proc
	for i := range 2 {
		rf := filepath.Join(dir, fmt.Sprintf("r%d.json", i))
		lgs = append(lgs, start(t, "loadgen-v2", loadgenEnv(m.URL(), rf,
			fmt.Sprintf("INSTANCE_ID=lg-%d", i), "CLIENT_ID_OFFSET=auto", "VIRTUAL_CLIENTS=1000")...))
	}
	var files []string
	for i, lg := range lgs {
		if code := lg.wait(t, 60*time.Second); code != 0 {
			t.Fatalf("loadgen %d exit %d: %s", i, code, lg.errOut.String())
		}
		rf := filepath.Join(dir, fmt.Sprintf("r%d.json", i))
		files = append(files, rf)
		r := readReport(t, rf)
		checkAllAnswered(t, r, 1000*3/0.5)
		if r.Unknown != 0 {
			t.Errorf("instance %d received %d responses of the other instance", i, r.Unknown)
		}
		if r.Config["client_id_offset"] != "auto" {
			t.Errorf("config: %v", r.Config["client_id_offset"])
		}
	}
	w.stop(t)

	// merge: counts add, percentiles come from the merged histograms.
	cmd := exec.Command(filepath.Join(binDir, "loadgen-v2"), append([]string{"merge"}, files...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("merge: %v\n%s", err, out)
	}
	r0, r1 := readReport(t, files[0]), readReport(t, files[1])
	want := fmt.Sprintf("sent  %d", r0.RequestsSent+r1.RequestsSent)
	if !strings.Contains(strings.Join(strings.Fields(string(out)), "  "), strings.Join(strings.Fields(want), "  ")) || !strings.Contains(string(out), "lg-0, lg-1") {
		t.Errorf("merged report lacks %q:\n%s", want, out)
	}
}

func TestSLOExitStatus(t *testing.T) {
	b := brokertest.Start(t)
	w, _ := startWorker(t, b.URL())
	defer w.stop(t)
	rf := filepath.Join(t.TempDir(), "report.json")
	lg := start(t, "loadgen-v2", loadgenEnv(b.URL(), rf, "DURATION=1s", "SLO_P99_MS=0.001", "SLO_MATCH_RATE=0.999")...)
	if code := lg.wait(t, 60*time.Second); code != 3 {
		t.Fatalf("exit %d, want 3 (p99 SLO missed)\n%s", code, lg.out.String())
	}
	r := readReport(t, rf)
	if r.SLO.Passed || len(r.SLO.Failures) != 1 || !strings.Contains(r.SLO.Failures[0], "SLO_P99_MS") {
		t.Errorf("slo: %+v", r.SLO)
	}
	if !strings.Contains(lg.out.String(), "SLO FAILED") {
		t.Errorf("report does not name the failing figure:\n%s", lg.out.String())
	}
}

// TestLoadgenBadConfigExits2: the loadgen binary exits 2 naming the
// variable (worker-v2's cases are in worker-v2/main_test.go), and both -h
// list the variables.
func TestLoadgenBadConfigExits2(t *testing.T) {
	cases := []struct {
		bin, env, want string
	}{
		{"loadgen-v2", "VIRTUAL_CLIENTS=lots", "VIRTUAL_CLIENTS"},
		{"loadgen-v2", "INTERVAL_MS=0", "INTERVAL_MS"},
		{"loadgen-v2", "BROKER=http://x", "BROKER"},
	}
	for _, c := range cases {
		t.Run(c.bin+"/"+c.env, func(t *testing.T) {
			p := start(t, c.bin, c.env)
			if code := p.wait(t, 10*time.Second); code != 2 {
				t.Fatalf("exit %d, want 2", code)
			}
			if !strings.Contains(p.errOut.String(), c.want) {
				t.Errorf("message does not name %s: %s", c.want, p.errOut.String())
			}
		})
	}
	for _, bin := range []string{"loadgen-v2", "worker-v2"} {
		out, err := exec.Command(filepath.Join(binDir, bin), "-h").Output()
		if err != nil || !strings.Contains(string(out), "CONNECTIONS") {
			t.Errorf("%s -h: %v\n%s", bin, err, out)
		}
	}
}

// rr-local (make run) on a small load: the report is printed, and it stays
// reachable for the dashboards (the loadgen's /report, the worker's /stats)
// for the default METRICS_LINGER, which the loadgen announces; Ctrl-C ends
// the linger at once, the exit status is 0, and no child process is left
// behind.
func TestLocalRun(t *testing.T) {
	// Ports of its own: make run's fixed defaults may be taken by another
	// run on this machine.
	maddr, waddr := brokertest.FreeAddr(t), brokertest.FreeAddr(t)
	// Up to 16 outstanding per client: a round trip stretched past the
	// 500 ms interval by a busy machine is not a skipped send (the success
	// rate, and so the exit status, stays the run's, not the machine's).
	p := start(t, "rr-local", "VIRTUAL_CLIENTS=1000", "INTERVAL_MS=500", "DURATION=2s", "CONNECTIONS=10", "PROGRESS_INTERVAL=1s", "BIN_DIR="+binDir,
		"MAX_INFLIGHT_PER_CLIENT=16",
		"METRICS_ADDR="+maddr, "HTTP_ADDR="+waddr, "RR_LOCAL_STATE="+filepath.Join(t.TempDir(), "state.env"), "METRICS_LINGER=")
	// Wrapped at 100 columns: compared word for word.
	lingering := "loadgen-v2: the report stays at http://" + maddr + "/report (with /metrics, /stats) for 60 s (METRICS_LINGER); Ctrl-C (SIGINT, SIGTERM) ends it now"
	brokertest.Await(t, "the loadgen announcing its linger", 20*time.Millisecond, func() (bool, string) {
		return strings.Contains(strings.Join(strings.Fields(p.errOut.String()), " "), lingering), tail(p.errOut.String(), 500)
	})
	out := p.out.String()
	if !strings.Contains(out, "match rate") {
		t.Fatalf("no report:\n%s", out)
	}
	if regexp.MustCompile(`accounting balanced +NO`).MatchString(out) {
		t.Errorf("unbalanced:\n%s", out)
	}
	var r report
	brokertest.GetJSON(t, "http://"+maddr+"/report", &r)
	if r.RequestsSent == 0 || !strings.Contains(out, fmt.Sprintf("sent               %d", r.RequestsSent)) {
		t.Errorf("/report says %d sent; the printed report:\n%s", r.RequestsSent, out)
	}
	if code, _, err := brokertest.Get("http://" + waddr + "/stats"); err != nil || code != 200 {
		t.Errorf("the worker's /stats while the report lingers: %d %v", code, err)
	}
	_ = p.cmd.Process.Signal(syscall.SIGINT) // Ctrl-C: ends the linger
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("rr-local exit %d, want 0\n%s", code, tail(p.errOut.String(), 3000))
	}
	// No child left: no process runs a binary from binDir.
	time.Sleep(200 * time.Millisecond)
	procs, _ := filepath.Glob("/proc/[0-9]*/exe")
	for _, p := range procs {
		if exe, err := os.Readlink(p); err == nil && strings.HasPrefix(exe, binDir) && !strings.HasSuffix(exe, "rr-local") {
			t.Errorf("left behind: %s (%s)", exe, p)
		}
	}
}

// SIGINT stops sending, drains and prints the report (exit 0); a second
// signal during the drain exits at once with 130.
func TestLoadgenSignals(t *testing.T) {
	b := brokertest.Start(t)
	w, _ := startWorker(t, b.URL())
	defer w.stop(t)

	t.Run("first signal drains and reports", func(t *testing.T) {
		rf := filepath.Join(t.TempDir(), "r.json")
		maddr := brokertest.FreeAddr(t)
		lg := start(t, "loadgen-v2", loadgenEnv(b.URL(), rf, "DURATION=0", "METRICS_ADDR="+maddr)...)
		brokertest.WaitOK(t, "http://"+maddr+"/health")
		waitLoadgen(t, lg, maddr, "a second of responses", func(v lgVars) bool { return v.ResponsesMatched >= 2000/0.5 })
		_ = lg.cmd.Process.Signal(syscall.SIGINT)
		if code := lg.wait(t, 30*time.Second); code != 0 {
			t.Fatalf("exit %d after SIGINT\n%s", code, lg.errOut.String())
		}
		r := readReport(t, rf)
		if !r.Balanced || r.RequestsSent == 0 || r.MatchRate != 1 || r.StillPending != 0 {
			t.Errorf("report after SIGINT: %+v", r)
		}
	})
	t.Run("second signal exits at once", func(t *testing.T) {
		// A broker with no worker: nothing is answered, so the drain would
		// last REQUEST_TIMEOUT.
		b2 := brokertest.Start(t)
		rf := filepath.Join(t.TempDir(), "r.json")
		maddr := brokertest.FreeAddr(t)
		// The drain would last 300 s: an exit within the wait below can
		// only come from the second signal.
		lg := start(t, "loadgen-v2", loadgenEnv(b2.URL(), rf, "DURATION=0", "REQUEST_TIMEOUT=300s", "METRICS_ADDR="+maddr)...)
		brokertest.WaitOK(t, "http://"+maddr+"/health")
		waitLoadgen(t, lg, maddr, "requests sent", func(v lgVars) bool { return v.RequestsSent > 0 })
		_ = lg.cmd.Process.Signal(syscall.SIGINT)
		waitLoadgen(t, lg, maddr, "the drain (up to 300 s)", func(v lgVars) bool { return v.Phase == "draining" })
		_ = lg.cmd.Process.Signal(syscall.SIGINT)
		if code := lg.wait(t, 60*time.Second); code != 130 {
			t.Fatalf("exit %d after the second SIGINT, want 130", code)
		}
	})
}
