package e2e

// Fault injection against a real Mosquitto: the broker crashes and comes
// back, a worker is SIGKILLed, the only worker stalls, the broker drops on a
// full session queue, and garbage arrives on the request and response topics.
// Each test asserts that every request is still accounted for
// (sent == matched + timed out + still pending) and that the losses show up
// where they belong.

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/brokertest"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/wire"
)

// workerStats reads worker-v2's /stats as numbers.
type workerStats map[string]any

func readWorkerStats(t *testing.T, addr string) workerStats {
	t.Helper()
	var st workerStats
	brokertest.GetJSON(t, "http://"+addr+"/stats", &st)
	return st
}

// n returns the numeric field k, failing the test when it is absent.
func (s workerStats) n(t *testing.T, k string) float64 {
	t.Helper()
	v, ok := s[k].(float64)
	if !ok {
		t.Errorf("worker /stats lacks numeric %q: %v", k, s)
	}
	return v
}

func (s workerStats) String() string {
	var b strings.Builder
	for _, k := range []string{"workers", "queue_depth", "queue_cap", "in_flight", "received", "processed", "dropped_full", "malformed", "reply_failed", "abandoned", "connections_up"} {
		fmt.Fprintf(&b, "%s=%v ", k, s[k])
	}
	return strings.TrimSpace(b.String())
}

// rssMB returns the resident set size of pid in MiB (VmRSS), or -1.
func rssMB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return -1
			}
			return kb / 1024
		}
	}
	return -1
}

// checkBalanced asserts both accounting identities and a full drain.
func checkBalanced(t *testing.T, r report) {
	t.Helper()
	if r.Scheduled != r.RequestsSent+r.Skipped+r.SendFailed {
		t.Errorf("scheduled identity does not hold: scheduled %d, sent %d, skipped %d, send_failed %d",
			r.Scheduled, r.RequestsSent, r.Skipped, r.SendFailed)
	}
	if want := float64(r.ResponsesMatched) / float64(max(r.Scheduled, 1)); r.Scheduled > 0 && (r.SuccessRate-want > 1e-9 || want-r.SuccessRate > 1e-9) {
		t.Errorf("success_rate %v, want matched/scheduled = %v", r.SuccessRate, want)
	}
	if !r.Balanced || r.RequestsSent != r.ResponsesMatched+r.Timeouts+r.StillPending {
		t.Errorf("accounting does not balance: sent %d, matched %d, timed out %d, pending %d (balanced=%v)",
			r.RequestsSent, r.ResponsesMatched, r.Timeouts, r.StillPending, r.Balanced)
	}
	if r.StillPending != 0 {
		t.Errorf("still_pending %d after the drain, want 0", r.StillPending)
	}
	if want := float64(r.ResponsesMatched) / float64(max(r.RequestsSent, 1)); r.RequestsSent > 0 && (r.MatchRate-want > 1e-9 || want-r.MatchRate > 1e-9) {
		t.Errorf("match_rate %v, want matched/sent = %v", r.MatchRate, want)
	}
}

func logReport(t *testing.T, name string, r report) {
	t.Helper()
	t.Logf("%s: sent %d matched %d timed_out %d still_pending %d skipped %d send_failed %d unknown %d malformed %d match_rate %.6f p50 %.2f ms p99 %.2f ms max %.2f ms",
		name, r.RequestsSent, r.ResponsesMatched, r.Timeouts, r.StillPending, r.Skipped, r.SendFailed, r.Unknown, r.Malformed,
		r.MatchRate, r.Latency.P50, r.Latency.P99, r.Latency.Max)
}

func sleepUntil(at time.Time) { time.Sleep(time.Until(at)) }

// TestFaultBrokerRestart crashes Mosquitto (SIGKILL) once responses flow and
// restarts it on the same port once the loadgen has seen every connection
// down and sends failing. Requests sent while the broker is down are
// send_failed, those lost with it time out; both sides reconnect and
// resubscribe by themselves, the loadgen exits 0 with a balanced report, and a
// second run afterwards is answered in full. Every step waits for an event
// (a count in /debug/vars), never for a time.
func TestFaultBrokerRestart(t *testing.T) {
	m := brokertest.StartMosquitto(t, "")
	w, waddr := startWorker(t, m.URL())
	rf := filepath.Join(t.TempDir(), "report.json")
	maddr := brokertest.FreeAddr(t)
	const rate = 2000 / 0.5 // req/s
	// DURATION=0: the run lasts until SIGINT, sent once recovery has been
	// seen, so no assertion depends on how long anything took.
	lg := start(t, "loadgen-v2", loadgenEnv(m.URL(), rf, "DURATION=0", "REQUEST_TIMEOUT=1s", "METRICS_ADDR="+maddr, lossy)...)
	brokertest.WaitOK(t, "http://"+maddr+"/health")

	pre := waitLoadgen(t, lg, maddr, "responses before the crash", func(v lgVars) bool { return v.ResponsesMatched >= 2*rate })
	m.Kill()
	killedAt := time.Now()
	down := waitLoadgen(t, lg, maddr, "all loadgen connections down", func(v lgVars) bool { return v.ConnectionsUp == 0 })
	t.Logf("all loadgen connections down %v after the kill (matched %d before it)", time.Since(killedAt).Round(time.Millisecond), pre.ResponsesMatched)
	// The schedule keeps time while the broker is away: fires fail to send.
	waitLoadgen(t, lg, maddr, "sends failing while the broker is down", func(v lgVars) bool { return v.SendFailed > down.SendFailed+rate/2 })
	frozen, err := loadgenVars(maddr)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Restart(); err != nil {
		t.Fatalf("restart: %v", err)
	}
	restartAt := time.Now()
	waitLoadgen(t, lg, maddr, "loadgen connections up again", func(v lgVars) bool { return v.ConnectionsUp == v.Connections })
	upAfter := time.Since(restartAt)
	first := waitLoadgen(t, lg, maddr, "a response matched after the restart", func(v lgVars) bool { return v.ResponsesMatched > frozen.ResponsesMatched })
	t.Logf("after the restart: loadgen connections up after %v, RECOVERY (first matched response) after %v",
		upAfter.Round(time.Millisecond), time.Since(restartAt).Round(time.Millisecond))
	// Recovered means answered at the full rate again: two seconds' worth of
	// requests matched after the first one, with failures no longer growing.
	rec := waitLoadgen(t, lg, maddr, "two seconds of traffic matched after recovery", func(v lgVars) bool {
		return v.ResponsesMatched >= first.ResponsesMatched+2*rate
	})
	if rec.SendFailed > first.SendFailed+rate/10 {
		t.Errorf("send_failed still growing after recovery: %d at the first match, %d two seconds of traffic later", first.SendFailed, rec.SendFailed)
	}
	_ = lg.cmd.Process.Signal(syscall.SIGINT)
	if code := lg.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("loadgen exit %d, want 0 (no SLO set)\n%s\n%s", code, lg.out.String(), lg.errOut.String())
	}
	r := readReport(t, rf)
	logReport(t, "across the crash", r)
	checkBalanced(t, r)
	if r.SendFailed == 0 {
		t.Errorf("a broker outage left no send_failed: %+v", r)
	}
	lost := r.SendFailed + r.Timeouts + r.Skipped
	t.Logf("lost to the outage: %d send_failed + %d timed out + %d skipped = %d ≈ %.2f s of traffic at %.0f req/s",
		r.SendFailed, r.Timeouts, r.Skipped, lost, float64(lost)/rate, rate)

	// A fresh run after the recovery is answered in full.
	brokertest.WaitOK(t, "http://"+waddr+"/health")
	rf2 := filepath.Join(t.TempDir(), "report2.json")
	lg2 := start(t, "loadgen-v2", loadgenEnv(m.URL(), rf2, "DURATION=2s", "REQUEST_TIMEOUT=5s")...)
	if code := lg2.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("second loadgen exit %d\n%s\n%s", code, lg2.out.String(), lg2.errOut.String())
	}
	r2 := readReport(t, rf2)
	logReport(t, "after recovery", r2)
	checkBalanced(t, r2)
	if r2.MatchRate < 0.999 {
		t.Errorf("after recovery match_rate %.6f, want ≥ 0.999", r2.MatchRate)
	} else if r2.MatchRate < 1 {
		t.Logf("note: after recovery match_rate %.6f < 1", r2.MatchRate)
	}
	if code := w.stop(t); code != 0 {
		t.Errorf("worker exit %d after SIGTERM: %s", code, w.errOut.String())
	}
}

func TestFaultWorkerKilled(t *testing.T) {
	m := brokertest.StartMosquitto(t, "")
	w1, w1addr := startWorker(t, m.URL())
	w2, w2addr := startWorker(t, m.URL())
	rf := filepath.Join(t.TempDir(), "report.json")
	maddr := brokertest.FreeAddr(t)
	const rate = 2000 / 0.5
	// REQUEST_TIMEOUT well above any round trip of a busy machine: what times
	// out is what the dead worker took with it.
	lg := start(t, "loadgen-v2", loadgenEnv(m.URL(), rf, "DURATION=6s", "REQUEST_TIMEOUT=5s", "METRICS_ADDR="+maddr, lossy)...)
	brokertest.WaitOK(t, "http://"+maddr+"/health")
	began := time.Now()

	sleepUntil(began.Add(2 * time.Second))
	s1 := readWorkerStats(t, w1addr)
	s2 := readWorkerStats(t, w2addr)
	if s1.n(t, "processed") == 0 || s2.n(t, "processed") == 0 {
		t.Errorf("both workers should share the load before the kill: w1 %v; w2 %v", s1, s2)
	}
	if err := syscall.Kill(w1.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-w1.done
	t.Logf("killed worker 1 at %.2f s, having processed %v", time.Since(began).Seconds(), s1["processed"])
	atKill, _ := loadgenVars(maddr)

	if code := lg.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("loadgen exit %d\n%s\n%s", code, lg.out.String(), lg.errOut.String())
	}
	r := readReport(t, rf)
	logReport(t, "one worker killed", r)
	checkBalanced(t, r)
	// What the dead worker can have held: the requests in flight to it when it
	// died (in its queue, in its sockets, in Mosquitto's queue for its
	// sessions) plus those Mosquitto routed to its sessions before it noticed
	// the sockets closed (the kernel closes them at exit, so on loopback that
	// is well under a millisecond). By Little's law that is its half of the
	// rate times the time a request spends in flight: bounded by the run's
	// own p99 round trip (a busy machine stretches both alike), plus 100 ms
	// for the scheduling hiccups of race-instrumented binaries on 2 cores.
	bound := rate / 2 * (r.Latency.P99/1000 + 0.1)
	if r.Timeouts > uint64(bound) {
		t.Errorf("%d timeouts, want ≤ %.0f (the dead worker's half of %v req/s over p99 %.1f ms + 100 ms)", r.Timeouts, bound, rate, r.Latency.P99)
	}
	if r.ResponsesMatched+uint64(bound) < r.RequestsSent {
		t.Errorf("matched %d of %d sent: the survivor must serve the rest", r.ResponsesMatched, r.RequestsSent)
	}
	s2 = readWorkerStats(t, w2addr)
	t.Logf("timeouts at the kill: %d (sent %d); at the end %d; survivor: %v", atKill.Timeouts, atKill.RequestsSent, r.Timeouts, s2)
	if s2.n(t, "processed")+s1.n(t, "processed") < float64(r.ResponsesMatched)-bound {
		t.Errorf("survivor processed %v + dead %v, but %d matched", s2["processed"], s1["processed"], r.ResponsesMatched)
	}
	if code, _, _ := brokertest.Get("http://" + w2addr + "/health"); code != 200 || !w2.alive() {
		t.Errorf("survivor unhealthy or dead")
	}
	if code := w2.stop(t); code != 0 {
		t.Errorf("survivor exit %d: %s", code, w2.errOut.String())
	}
}

// TestFaultSlowWorker stalls the only worker (one goroutine, 300 ms per
// request, a queue of 50) under 400 req/s. With DROP_ON_FULL=true the worker
// drops and counts; with false it stops reading and Mosquitto holds the
// backlog. Either way the loadgen times out exactly what was not answered,
// the worker's counters add up, memory stays bounded, and SIGTERM still stops
// the stalled worker within SHUTDOWN_TIMEOUT.
func TestFaultSlowWorker(t *testing.T) {
	for _, drop := range []bool{true, false} {
		t.Run(fmt.Sprintf("DROP_ON_FULL=%v", drop), func(t *testing.T) {
			m := brokertest.StartMosquitto(t, "")
			const workers, conns = 1, 2
			w, waddr := startWorker(t, m.URL(), "MODE=sleep", "SLEEP_MS=300", "MIN_WORKERS=1", "MAX_WORKERS=1",
				"QUEUE_CAP=50", fmt.Sprintf("DROP_ON_FULL=%v", drop), fmt.Sprintf("CONNECTIONS=%d", conns), "SHUTDOWN_TIMEOUT=2s")
			wRSS0 := rssMB(w.cmd.Process.Pid)
			rf := filepath.Join(t.TempDir(), "report.json")
			maddr := brokertest.FreeAddr(t)
			lg := start(t, "loadgen-v2", loadgenEnv(m.URL(), rf, "VIRTUAL_CLIENTS=200", "DURATION=4s", "REQUEST_TIMEOUT=1s", "METRICS_ADDR="+maddr, lossy)...)
			brokertest.WaitOK(t, "http://"+maddr+"/health")
			lgRSS0, lgRSSMax := rssMB(lg.cmd.Process.Pid), 0.0
			wRSSMax := wRSS0
			for lg.alive() {
				lgRSSMax = max(lgRSSMax, rssMB(lg.cmd.Process.Pid))
				wRSSMax = max(wRSSMax, rssMB(w.cmd.Process.Pid))
				time.Sleep(100 * time.Millisecond)
			}
			if code := lg.wait(t, 30*time.Second); code != 0 {
				t.Fatalf("loadgen exit %d\n%s\n%s", code, lg.out.String(), lg.errOut.String())
			}
			r := readReport(t, rf)
			logReport(t, "stalled worker", r)
			checkBalanced(t, r)
			if r.Timeouts == 0 || r.Timeouts != r.RequestsSent-r.ResponsesMatched {
				t.Errorf("timeouts %d, want exactly sent−matched = %d > 0", r.Timeouts, r.RequestsSent-r.ResponsesMatched)
			}

			st := readWorkerStats(t, waddr)
			wRSS1 := rssMB(w.cmd.Process.Pid)
			t.Logf("worker: %v", st)
			recv, proc, dropped := st.n(t, "received"), st.n(t, "processed"), st.n(t, "dropped_full")
			accounted := proc + dropped + st.n(t, "malformed") + st.n(t, "reply_failed") + st.n(t, "abandoned") + st.n(t, "queue_depth")
			// The rest is in flight: being processed (≤ workers), or with
			// DROP_ON_FULL=false also held by a connection waiting for room
			// in the queue (≤ connections).
			inflight := float64(workers)
			if !drop {
				inflight += conns
			}
			if d := recv - accounted; d < 0 || d > inflight {
				t.Errorf("received %v − (processed+dropped_full+malformed+reply_failed+abandoned+queue_depth = %v) = %v, want 0..%v", recv, accounted, d, inflight)
			}
			if f := st.n(t, "in_flight"); f > workers {
				t.Errorf("in_flight %v > workers %d", f, workers)
			}
			if q := st.n(t, "queue_depth"); q > st.n(t, "queue_cap") || st.n(t, "queue_cap") != 50 {
				t.Errorf("queue_depth %v, queue_cap %v (want cap 50)", q, st["queue_cap"])
			}
			if w := st.n(t, "workers"); w != workers {
				t.Errorf("workers %v, want %d (MIN=MAX=1)", w, workers)
			}
			if proc < float64(r.ResponsesMatched) {
				t.Errorf("worker processed %v < matched %d", proc, r.ResponsesMatched)
			}
			if drop {
				if dropped == 0 {
					t.Errorf("DROP_ON_FULL=true under 100× overload dropped nothing: %v", st)
				}
				// Nothing waits in the broker: everything sent reached the worker.
				if recv < float64(r.RequestsSent)*0.99 {
					t.Errorf("worker received %v of %d sent", recv, r.RequestsSent)
				}
			} else {
				if dropped != 0 {
					t.Errorf("DROP_ON_FULL=false dropped %v", dropped)
				}
				if recv >= float64(r.RequestsSent) {
					t.Errorf("DROP_ON_FULL=false: worker received %v of %d sent; the backlog should wait in the broker", recv, r.RequestsSent)
				}
			}

			const boundMB = 300
			t.Logf("RSS MiB: worker %.1f before, %.1f peak, %.1f after; loadgen %.1f at start, %.1f peak", wRSS0, wRSSMax, wRSS1, lgRSS0, lgRSSMax)
			if wRSSMax > boundMB || lgRSSMax > boundMB {
				t.Errorf("RSS above %d MiB: worker peak %.1f, loadgen peak %.1f", boundMB, wRSSMax, lgRSSMax)
			}

			// SIGTERM stops the stalled worker within SHUTDOWN_TIMEOUT (2 s) plus slack.
			stopAt := time.Now()
			_ = w.cmd.Process.Signal(syscall.SIGTERM)
			code := w.wait(t, 10*time.Second)
			t.Logf("worker stopped %v after SIGTERM with %v requests queued, exit %d", time.Since(stopAt).Round(time.Millisecond), st["queue_depth"], code)
			if code != 0 && code != 1 {
				t.Errorf("worker exit %d after SIGTERM: %s", code, w.errOut.String())
			}
		})
	}
}

// sysDropped reads Mosquitto's $SYS/broker/publish/messages/dropped (needs
// sys_interval in the broker configuration).
func sysDropped(t *testing.T, brokerURL string) int64 {
	t.Helper()
	got := make(chan string, 1)
	c := testClient(t, brokerURL, "e2e-sys")
	tok := c.Subscribe("$SYS/broker/publish/messages/dropped", 0, func(_ mqtt.Client, m mqtt.Message) {
		select {
		case got <- string(m.Payload()):
		default:
		}
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe $SYS: %v", tok.Error())
	}
	select {
	case s := <-got:
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			t.Fatalf("$SYS dropped %q: %v", s, err)
		}
		return n
	case <-time.After(5 * time.Second):
		t.Fatal("no $SYS/broker/publish/messages/dropped within 5 s")
	}
	return 0
}

// testClient connects a plain paho client for the test itself.
func testClient(t *testing.T, brokerURL, id string) mqtt.Client {
	t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(brokerURL).SetClientID(id).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("test client connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// TestFaultBrokerDrops: Mosquitto keeps at most 10 messages queued per
// session; a worker that stops reading (DROP_ON_FULL=false, one slow
// goroutine) makes the broker drop requests silently. The loadgen cannot see
// the drops, only their effect: they must show up as timeouts in a balanced
// report.
func TestFaultBrokerDrops(t *testing.T) {
	// A later line overrides BenchConfig's max_queued_messages 1000000 (checked:
	// with both lines in that order Mosquitto 2.0.11 drops past 10).
	m := brokertest.StartMosquitto(t, "max_queued_messages 10\nsys_interval 1\n")
	w, waddr := startWorker(t, m.URL(), "MODE=sleep", "SLEEP_MS=100", "MIN_WORKERS=1", "MAX_WORKERS=1",
		"QUEUE_CAP=10", "DROP_ON_FULL=false", "CONNECTIONS=1")
	rf := filepath.Join(t.TempDir(), "report.json")
	// 400 clients, each sending about once a second (one outstanding request,
	// 1 s timeout) 16 KiB requests: ~6.5 MB/s, which fills the worker's socket
	// buffers within a second or two, after which Mosquitto queues and drops.
	lg := start(t, "loadgen-v2", loadgenEnv(m.URL(), rf, "VIRTUAL_CLIENTS=400", "INTERVAL_MS=250",
		"PAYLOAD_BYTES=16384", "DURATION=5s", "REQUEST_TIMEOUT=1s", lossy)...)
	if code := lg.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("loadgen exit %d\n%s\n%s", code, lg.out.String(), lg.errOut.String())
	}
	r := readReport(t, rf)
	logReport(t, "broker dropping", r)
	checkBalanced(t, r)
	time.Sleep(1200 * time.Millisecond) // one more $SYS period
	dropped := sysDropped(t, m.URL())
	st := readWorkerStats(t, waddr)
	t.Logf("Mosquitto dropped %d messages; worker: %v", dropped, st)
	if dropped == 0 {
		t.Fatalf("Mosquitto dropped nothing; the test did not create the fault (report %+v)", r)
	}
	// Every dropped request is a sent request that can never be answered:
	// it is among the timeouts.
	if r.Timeouts < uint64(dropped) {
		t.Errorf("timeouts %d < %d requests dropped by the broker", r.Timeouts, dropped)
	}
	// Requests reach the worker at most once: received + dropped ≤ sent.
	if recv := st.n(t, "received"); recv+float64(dropped) > float64(r.RequestsSent) {
		t.Errorf("worker received %v + broker dropped %d > sent %d", recv, dropped, r.RequestsSent)
	}
	if !w.alive() {
		t.Errorf("worker died: %s", w.errOut.String())
	}
}

// garbage returns n random bytes whose first byte is no envelope version.
func garbage(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	if n > 0 {
		b[0] = 0xff
	}
	return b
}

// TestFaultWireGarbage publishes garbage, truncated, wrong-kind and 1 MB
// payloads on the request and response topics during a normal run. Both sides
// count them (worker: malformed; loadgen: malformed or unknown), keep running,
// and every real request is still answered.
func TestFaultWireGarbage(t *testing.T) {
	m := brokertest.StartMosquitto(t, "")
	w, waddr := startWorker(t, m.URL())
	const inst = "garb-1"
	rf := filepath.Join(t.TempDir(), "report.json")
	maddr := brokertest.FreeAddr(t)
	lg := start(t, "loadgen-v2", loadgenEnv(m.URL(), rf, "DURATION=4s", "REQUEST_TIMEOUT=20s", "INSTANCE_ID="+inst, "METRICS_ADDR="+maddr)...)
	brokertest.WaitOK(t, "http://"+maddr+"/health")

	req, err := wire.AppendRequest(nil, &wire.Request{RunID: 1, ClientID: 7, Seq: 3, Intended: 42, Instance: []byte("evil"), ReplyTopic: []byte("resp/evil/1")}, 0)
	if err != nil {
		t.Fatal(err)
	}
	resp := wire.AppendResponse(nil, &wire.Response{RunID: 12345, ClientID: 7, Seq: 3, Intended: 42})
	wrongVersion := append([]byte{9}, req[1:]...)
	badReqs := map[string][]byte{
		"empty":                {},
		"text":                 []byte("hello, worker"),
		"random 100 B":         garbage(100),
		"header only":          req[:20],
		"cut in reply topic":   req[:len(req)-3],
		"wrong version":        wrongVersion,
		"response on req":      resp,
		"1 MB garbage":         garbage(1 << 20),
		"reply topic too long": append(append([]byte{}, req[:len(req)-len("resp/evil/1")-2]...), 0xff, 0xff, 'x'),
	}
	badResps := map[string][]byte{
		"empty":         {},
		"random 30 B":   garbage(30),
		"29 bytes":      resp[:29],
		"31 bytes":      append(append([]byte{}, resp...), 0),
		"wrong version": append([]byte{9}, resp[1:]...),
		"request kind":  req,
		"1 MB garbage":  garbage(1 << 20),
	}
	const unknownResps = 2 // well-formed responses of another run
	c := testClient(t, m.URL(), "e2e-garbage")
	pub := func(topic string, p []byte) {
		if tok := c.Publish(topic, 0, false, p); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Errorf("publish %s: %v", topic, tok.Error())
		}
	}
	waitLoadgen(t, lg, maddr, "real traffic answered", func(v lgVars) bool { return v.ResponsesMatched > 0 })
	for _, p := range badReqs {
		pub("req/1", p)
		pub("req/x/y", p) // matches no subscription: nobody may see it
	}
	for _, p := range badResps {
		pub("resp/"+inst+"/1", p)
	}
	for range unknownResps {
		pub("resp/"+inst+"/1", resp)
	}

	if code := lg.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("loadgen exit %d\n%s\n%s", code, lg.out.String(), lg.errOut.String())
	}
	r := readReport(t, rf)
	logReport(t, "with garbage", r)
	checkBalanced(t, r)
	if r.MatchRate != 1 {
		t.Errorf("match_rate %.6f, want 1: garbage must not disturb real traffic", r.MatchRate)
	}
	if r.Malformed != uint64(len(badResps)) || r.Unknown != unknownResps {
		t.Errorf("loadgen malformed %d, unknown %d; want %d and %d", r.Malformed, r.Unknown, len(badResps), unknownResps)
	}
	st := readWorkerStats(t, waddr)
	t.Logf("worker: %v", st)
	if got := st.n(t, "malformed"); got != float64(len(badReqs)) {
		t.Errorf("worker malformed %v, want %d (one per bad request published on req/1)", got, len(badReqs))
	}
	if st.n(t, "processed") < float64(r.ResponsesMatched) {
		t.Errorf("worker processed %v < matched %d", st["processed"], r.ResponsesMatched)
	}
	if code, _, _ := brokertest.Get("http://" + waddr + "/health"); !w.alive() || code != 200 {
		t.Errorf("worker not alive and healthy after the garbage")
	}
	if code := w.stop(t); code != 0 {
		t.Errorf("worker exit %d", code)
	}
	for _, s := range []string{"panic", "DATA RACE"} {
		if strings.Contains(w.errOut.String(), s) || strings.Contains(lg.errOut.String(), s) {
			t.Errorf("%q in the output", s)
		}
	}
}

// TestFaultHostileReplyTopic sends well-formed requests whose reply topic is
// not a valid topic name ('+', '#', NUL, invalid UTF-8). Replying there would
// be a protocol violation for which Mosquitto closes the worker's connection,
// losing every reply buffered with it; the worker must refuse such a request
// (count it, not reply) and keep serving real traffic at full match rate.
func TestFaultHostileReplyTopic(t *testing.T) {
	m := brokertest.StartMosquitto(t, "")
	w, waddr := startWorker(t, m.URL())
	rf := filepath.Join(t.TempDir(), "report.json")
	maddr := brokertest.FreeAddr(t)
	lg := start(t, "loadgen-v2", loadgenEnv(m.URL(), rf, "DURATION=4s", "REQUEST_TIMEOUT=1s", "METRICS_ADDR="+maddr)...)
	brokertest.WaitOK(t, "http://"+maddr+"/health")

	c := testClient(t, m.URL(), "e2e-hostile")
	waitLoadgen(t, lg, maddr, "real traffic answered", func(v lgVars) bool { return v.ResponsesMatched > 0 })
	topics := []string{"resp/+/1", "resp/#", "resp/a\x00b", "resp/\xff\xfe", "+"}
	for i, topic := range topics {
		req, err := wire.AppendRequest(nil, &wire.Request{RunID: 1, ClientID: uint32(i), Seq: 1, Intended: 1, Instance: []byte("evil"), ReplyTopic: []byte(topic)}, 0)
		if err != nil {
			t.Fatal(err)
		}
		for range 4 { // reach several of the worker's connections (round robin)
			if tok := c.Publish("req/1", 0, false, req); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
				t.Fatalf("publish: %v", tok.Error())
			}
		}
	}
	if code := lg.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("loadgen exit %d\n%s\n%s", code, lg.out.String(), lg.errOut.String())
	}
	r := readReport(t, rf)
	logReport(t, "hostile reply topics", r)
	checkBalanced(t, r)
	st := readWorkerStats(t, waddr)
	t.Logf("worker: %v", st)
	bad := st.n(t, "malformed") + st.n(t, "reply_failed")
	alive := w.alive()
	w.stop(t) // its output can be read once it has exited
	if !alive {
		t.Error("worker died")
	}
	var bug []string
	if bad != float64(4*len(topics)) {
		bug = append(bug, fmt.Sprintf("worker malformed+reply_failed %v, want %d (every hostile request refused and counted)", bad, 4*len(topics)))
	}
	if r.MatchRate != 1 {
		lost := strings.Count(w.errOut.String(), "connection lost")
		m.Stop() // its log can be read once it has exited
		var why []string
		for _, l := range strings.Split(m.Log(), "\n") {
			if strings.Contains(l, "wk-") && !strings.Contains(l, "New client") {
				why = append(why, l)
			}
		}
		bug = append(bug, fmt.Sprintf("match_rate %.6f (%d timed out), want 1: worker logged %d lost connections\n%s\nMosquitto on the worker's connections:\n%s",
			r.MatchRate, r.Timeouts, lost, tail(w.errOut.String(), 2000), tail(strings.Join(why, "\n"), 2000)))
	}
	// Regression guard: this was a bug (the worker replied on any reply
	// topic; Mosquitto closed its connection for a protocol error), fixed by
	// wire.Responder.Pack (a reply topic that is no valid topic name).
	for _, b := range bug {
		t.Error(b)
	}
}

// TestFaultDrainEndsWhenAnswered: after DURATION the loadgen drains "up to
// REQUEST_TIMEOUT" — it must stop as soon as nothing is pending, not sleep
// out the timeout. A worker taking 200 ms per request keeps ~20 requests
// outstanding when sending stops; they are answered 200 ms later, so a 1 s
// run with REQUEST_TIMEOUT=10s must end within a couple of seconds.
func TestFaultDrainEndsWhenAnswered(t *testing.T) {
	m := brokertest.StartMosquitto(t, "")
	startWorker(t, m.URL(), "MODE=sleep", "SLEEP_MS=200", "MIN_WORKERS=100", "MAX_WORKERS=100")
	rf := filepath.Join(t.TempDir(), "report.json")
	maddr := brokertest.FreeAddr(t)
	// Every request is answered ~0.2 s after it is sent; a drain that waited
	// for REQUEST_TIMEOUT would last 300 s.
	lg := start(t, "loadgen-v2", loadgenEnv(m.URL(), rf, "VIRTUAL_CLIENTS=50", "DURATION=1s", "REQUEST_TIMEOUT=300s", "METRICS_ADDR="+maddr)...)
	brokertest.WaitOK(t, "http://"+maddr+"/health")
	began := time.Now()
	code := lg.wait(t, 120*time.Second)
	took := time.Since(began)
	if code != 0 {
		t.Fatalf("loadgen exit %d after %v (a drain that waits for REQUEST_TIMEOUT=300s instead of ending when nothing is pending?)\n%s\n%s",
			code, took, lg.out.String(), lg.errOut.String())
	}
	r := readReport(t, rf)
	logReport(t, "drain", r)
	checkBalanced(t, r)
	t.Logf("sending 1 s, all answered ~0.2 s later; the loadgen exited %v after it was ready", took.Round(time.Millisecond))
	if r.MatchRate != 1 {
		t.Errorf("match_rate %.6f, want 1", r.MatchRate)
	}
}

// TestFaultLoadgenStopped freezes the loadgen (SIGSTOP) for 1 s, longer
// than INTERVAL_MS, in mid-run. On SIGCONT the scheduler catches up: fires f
// and f+N of the same client fall due in one tick, cut into segments that
// several publish workers (PUBLISH_WORKERS=4, BATCH_SIZE=50) publish. Each
// client's claims stay with one owner, so no slot is claimed twice: the books
// balance, nothing is counted duplicate, and the run exits 0 (the success
// rate SLO is off: the stall itself skips fires). Under the old
// design (any publish worker claiming any chunk) this ended "accounting
// balanced NO" with duplicates.
func TestFaultLoadgenStopped(t *testing.T) {
	for _, inflight := range []string{"1", "4"} {
		t.Run("MAX_INFLIGHT_PER_CLIENT="+inflight, func(t *testing.T) {
			b := brokertest.Start(t)
			w, _ := startWorker(t, b.URL())
			defer w.stop(t)
			rf := filepath.Join(t.TempDir(), "report.json")
			maddr := brokertest.FreeAddr(t)
			const rate = 300 / 0.1 // req/s
			lg := start(t, "loadgen-v2", loadgenEnv(b.URL(), rf, "VIRTUAL_CLIENTS=300", "INTERVAL_MS=100", "DURATION=0",
				"REQUEST_TIMEOUT=5s", "PUBLISH_WORKERS=4", "BATCH_SIZE=50", "MAX_INFLIGHT_PER_CLIENT="+inflight, "METRICS_ADDR="+maddr,
				lossy)...) // the stall skips fires: the books, not the success rate, are checked
			brokertest.WaitOK(t, "http://"+maddr+"/health")
			waitLoadgen(t, lg, maddr, "responses flowing", func(v lgVars) bool { return v.ResponsesMatched >= rate })
			if err := lg.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Second) // the stall; nothing is asserted about its length
			if err := lg.cmd.Process.Signal(syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
			after := waitLoadgen(t, lg, maddr, "the catch-up sent", func(v lgVars) bool { return v.RequestsSent > 0 })
			waitLoadgen(t, lg, maddr, "a second of traffic after the stall", func(v lgVars) bool { return v.ResponsesMatched >= after.ResponsesMatched+rate })
			_ = lg.cmd.Process.Signal(syscall.SIGINT)
			if code := lg.wait(t, 60*time.Second); code != 0 {
				t.Fatalf("loadgen exit %d\n%s\n%s", code, lg.out.String(), tail(lg.errOut.String(), 4000))
			}
			r := readReport(t, rf)
			logReport(t, "SIGSTOP 1 s", r)
			t.Logf("scheduled %d = sent %d + skipped %d + send_failed %d; late %d duplicate %d implausible %d",
				r.Scheduled, r.RequestsSent, r.Skipped, r.SendFailed, r.Late, r.Duplicate, r.Implausible)
			checkBalanced(t, r)
			if r.Duplicate != 0 || r.Unknown != 0 || r.Malformed != 0 || r.Implausible != 0 {
				t.Errorf("responses that match nothing: duplicate %d unknown %d malformed %d implausible %d, want 0",
					r.Duplicate, r.Unknown, r.Malformed, r.Implausible)
			}
			if r.SendFailed != 0 {
				t.Errorf("send_failed %d with the broker up the whole time", r.SendFailed)
			}
		})
	}
}

// TestFaultPolledWhileConnecting starts both binaries while the broker is
// down and polls every HTTP endpoint until the broker comes back and they
// connect. The endpoints must answer (503 until connected) and reading the
// connection state while it is being set up must not race (the race-built
// binaries exit 66 on a data race). This reproduces deterministically a race
// once found in loadgen-v2 (engine.Run wrote e.pool while /health read it).
func TestFaultPolledWhileConnecting(t *testing.T) {
	m := brokertest.StartMosquitto(t, "")
	m.Kill()
	maddr, waddr := brokertest.FreeAddr(t), brokertest.FreeAddr(t)
	w := start(t, "worker-v2", "MQTT_BROKER="+m.URL(), "HTTP_ADDR="+waddr, "CONNECTIONS=2", "MIN_WORKERS=2")
	rf := filepath.Join(t.TempDir(), "report.json")
	lg := start(t, "loadgen-v2", loadgenEnv(m.URL(), rf, "VIRTUAL_CLIENTS=100", "DURATION=1s", "REQUEST_TIMEOUT=1s", "METRICS_ADDR="+maddr, lossy)...)
	urls := []string{"http://" + maddr + "/health", "http://" + maddr + "/debug/vars", "http://" + maddr + "/metrics",
		"http://" + waddr + "/health", "http://" + waddr + "/ready", "http://" + waddr + "/stats", "http://" + waddr + "/metrics"}
	poll := func() (codes []int) {
		for _, u := range urls {
			code, _, _ := brokertest.Get(u)
			codes = append(codes, code)
		}
		return codes
	}
	began := time.Now()
	var down []int
	for time.Since(began) < 1500*time.Millisecond {
		down = poll()
	}
	t.Logf("broker down: %v → %v", urls, down)
	if down[0] != 503 || down[3] != 503 || down[4] != 503 {
		t.Errorf("while the broker is down: loadgen /health %d, worker /health %d, /ready %d; want 503", down[0], down[3], down[4])
	}
	if err := m.Restart(); err != nil {
		t.Fatal(err)
	}
	for lg.alive() && time.Since(began) < 10*time.Second {
		poll()
	}
	code := lg.wait(t, 30*time.Second)
	if code != 0 || strings.Contains(lg.errOut.String(), "DATA RACE") {
		t.Errorf("loadgen exit %d (66 = data race)\n%s", code, tail(lg.errOut.String(), 4000))
	}
	r := readReport(t, rf)
	logReport(t, "connected late", r)
	checkBalanced(t, r)
	// Both retry the connection every 500 ms: the loadgen may start sending
	// before the worker has subscribed, so only ask that answers flowed.
	if r.ResponsesMatched == 0 {
		t.Errorf("nothing matched once connected")
	}
	brokertest.WaitOK(t, "http://"+waddr+"/health")
	if code := w.stop(t); code != 0 || strings.Contains(w.errOut.String(), "DATA RACE") {
		t.Errorf("worker exit %d (66 = data race)\n%s", code, tail(w.errOut.String(), 4000))
	}
}
