package e2e

// Network faults between the binaries and the broker, injected by a Toxiproxy
// proxy run in the test process on 127.0.0.1:0: a partition (every connection
// reset until healed), a blackhole (connections stay open, data vanishes), a
// 50 ms latency, and bandwidth starvation across a reconnect (a SUBACK later
// than the subscribe timeout), a stalled write, and an SLO gate. Each case is
// a real run of the real binaries against a real broker; every wait is for an
// event (a count in /debug/vars or /stats, a /health answer, a log line) with
// a generous deadline, never for a time, and every run is bounded by DURATION.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/toxics"
	"github.com/rs/zerolog"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/brokertest"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mosquitto"
)

// The load of every case: 500 virtual clients every 500 ms = 1000 req/s,
// light enough for race-built binaries and an in-process proxy on 2 cores.
const (
	netClients    = 500
	netIntervalMS = 500
	netRate       = netClients * 1000 / netIntervalMS // req/s
)

// netSlowReconnect is the fallback that bounds every recovery while the
// stalled-write bug stands (see TestNetworkStalledWriteReconnects): a
// connection whose write fails before its read sees the reset is reconnected
// only when a keepalive ping times out, KEEPALIVE + up to 5 s + 10 s later.
// The cases that reset links set KEEPALIVE so that this stays well inside
// brokertest.Patience, and say so when a recovery took that path.
func netSlowReconnect(t *testing.T, what string, took time.Duration) {
	t.Helper()
	if took > 8*time.Second {
		t.Logf("NOTE: %s took %v: a connection was only reconnected by keepalive (the stalled-write bug, TestNetworkStalledWriteReconnects)", what, took.Round(time.Millisecond))
	}
}

// netBroker starts the broker of a case: Mosquitto when installed (CI installs
// it), else the embedded broker, so that no case is ever skipped.
func netBroker(t *testing.T) string {
	t.Helper()
	if _, err := mosquitto.Binary(); err == nil {
		return brokertest.StartMosquitto(t, "").URL()
	}
	t.Log("mosquitto not installed: using the embedded broker")
	return brokertest.Start(t).URL()
}

// cutToxic closes its end of the link at once and then discards whatever
// still arrives until the link's input closes: with one in each direction,
// every connection through the proxy, existing or new, is closed as soon as
// it is seen (a partition with resets), until the toxics are removed.
//
// Unlike reset_peer it keeps reading after the close, so toxiproxy's reading
// goroutines never block on a toxic that has gone, and end when the sockets
// close. It never takes an interrupt once closed, so removing it from a link
// that is closing is a no-op (an interrupted closed stub would be rewired onto
// its closed output channel).
type cutToxic struct{}

func (*cutToxic) Pipe(stub *toxics.ToxicStub) {
	stub.Close()
	for range stub.Input {
	}
}

var netInit sync.Once

// netProxy is a Toxiproxy proxy in the test process between a binary and the
// broker.
type netProxy struct {
	t *testing.T
	p *toxiproxy.Proxy
}

// startNetProxy starts a proxy on a free loopback port forwarding to the
// broker at brokerURL; it is stopped (every connection closed) at cleanup.
func startNetProxy(t *testing.T, name, brokerURL string) *netProxy {
	t.Helper()
	netInit.Do(func() {
		toxics.Register("cut", new(cutToxic))
		// The toxics log through zerolog's global logger: keep warnings only.
		zerolog.SetGlobalLevel(zerolog.WarnLevel)
	})
	u, err := url.Parse(brokerURL)
	if err != nil {
		t.Fatal(err)
	}
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	p := toxiproxy.NewProxy(srv, name, "127.0.0.1:0", u.Host)
	if err := p.Start(); err != nil {
		t.Fatalf("toxiproxy %s: %v", name, err)
	}
	t.Cleanup(p.Stop)
	return &netProxy{t: t, p: p}
}

// URL is the broker URL to give a binary: the proxy's listener.
func (n *netProxy) URL() string { return "tcp://" + n.p.Listen }

// add adds a toxic to every link through the proxy, existing and new.
// stream is "upstream" (client → broker) or "downstream" (broker → client).
func (n *netProxy) add(name, typ, stream string, attrs map[string]any) {
	n.t.Helper()
	b, err := json.Marshal(map[string]any{"name": name, "type": typ, "stream": stream, "attributes": attrs})
	if err != nil {
		n.t.Fatal(err)
	}
	if _, err := n.p.Toxics.AddToxicJson(bytes.NewReader(b)); err != nil {
		n.t.Fatalf("add toxic %s: %v", name, err)
	}
}

// remove removes toxics by name.
func (n *netProxy) remove(names ...string) {
	n.t.Helper()
	for _, name := range names {
		if err := n.p.Toxics.RemoveToxic(context.Background(), name); err != nil {
			n.t.Fatalf("remove toxic %s: %v", name, err)
		}
	}
}

// cut closes every connection through the proxy and every new one, until heal.
func (n *netProxy) cut() {
	n.t.Helper()
	n.add("cut_up", "cut", "upstream", nil)
	n.add("cut_down", "cut", "downstream", nil)
}

// heal ends a cut: new connections pass again.
func (n *netProxy) heal() {
	n.t.Helper()
	n.remove("cut_up", "cut_down")
}

// blackhole makes the links of the given streams swallow every byte while
// staying open (timeout toxic with timeout 0), until unblackhole.
func (n *netProxy) blackhole(streams ...string) {
	n.t.Helper()
	for _, s := range streams {
		n.add("blackhole_"+s, "timeout", s, map[string]any{"timeout": 0})
	}
}

// unblackhole ends a blackhole the way a real one ends for TCP: the
// connections that lost bytes are closed (their MQTT streams are torn mid
// packet and cannot go on) and the clients reconnect. down reports when the
// client has seen its connections closed, so the toxics are removed from
// links that are gone.
func (n *netProxy) unblackhole(down func() bool, streams ...string) {
	n.t.Helper()
	n.cut()
	waitEvent(n.t, "connections closed by the cut that ends the blackhole", nil, func() (bool, string) {
		return down(), ""
	})
	for _, s := range streams {
		n.remove("blackhole_" + s)
	}
	n.heal()
}

// netWorkerVars is the part of the worker's /stats the network cases read.
type netWorkerVars struct {
	Connections        int    `json:"connections"`
	ConnectionsUp      int    `json:"connections_up"`
	ConnectionsSuspect int    `json:"connections_suspect"`
	Received           uint64 `json:"received"`
	Processed          uint64 `json:"processed"`
}

func netWorkerStats(addr string) (netWorkerVars, error) {
	var v netWorkerVars
	err := brokertest.FetchJSON("http://"+addr+"/stats", &v)
	return v, err
}

// netLoadgen starts loadgen-v2 on brokerURL with the cases' load and returns
// it with its METRICS_ADDR and report file, once its /health has answered 200
// (every connection up and subscribed).
func netLoadgen(t *testing.T, brokerURL string, env ...string) (lg *proc, maddr, rf string) {
	t.Helper()
	rf = filepath.Join(t.TempDir(), "report.json")
	maddr = brokertest.FreeAddr(t)
	base := []string{fmt.Sprintf("VIRTUAL_CLIENTS=%d", netClients), fmt.Sprintf("INTERVAL_MS=%d", netIntervalMS),
		"CONNECTIONS=4", "METRICS_ADDR=" + maddr, lossy}
	lg = start(t, "loadgen-v2", loadgenEnv(brokerURL, rf, append(base, env...)...)...)
	brokertest.WaitOK(t, "http://"+maddr+"/health")
	return lg, maddr, rf
}

// netFinish waits for the loadgen to exit with want and returns its report.
func netFinish(t *testing.T, lg *proc, rf string, want int) report {
	t.Helper()
	if code := lg.wait(t, 60*time.Second); code != want {
		t.Fatalf("loadgen exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, want, lg.out.String(), tail(lg.errOut.String(), 4000))
	}
	for _, s := range []string{"DATA RACE", "panic"} {
		if strings.Contains(lg.errOut.String(), s) {
			t.Errorf("%q in the loadgen's output:\n%s", s, tail(lg.errOut.String(), 4000))
		}
	}
	return readReport(t, rf)
}

// sigint stops the loadgen's sending phase; it drains and reports.
func sigint(t *testing.T, p *proc) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
}

// netFires is the number of fires of n clients every interval (ns) with a
// time before end (ns), from the schedule's formula
// (loadgen-v2/internal/schedule): position p fires at k·I + ⌊p·I/n⌋, so the
// fires with a time ≤ t number F(t) = k·n + min(n, ⌈(r+1)·n/I⌉), with
// k = ⌊t/I⌋ and r = t − k·I. (All products fit in int64 for the cases' sizes.)
func netFires(n, interval, end int64) int64 {
	t := end - 1
	if t < 0 {
		return 0
	}
	k := t / interval
	r := t - k*interval
	return k*n + min(n, ((r+1)*n+interval-1)/interval)
}

// netCheckScheduled asserts that scheduled is exactly the fires due before the
// end of the sending phase — DURATION, or the moment SIGINT stopped it — which
// the report gives as duration_s (there is no WARMUP).
func netCheckScheduled(t *testing.T, rf string, r report) {
	t.Helper()
	b, err := os.ReadFile(rf)
	if err != nil {
		t.Fatal(err)
	}
	var x struct {
		DurationSeconds float64 `json:"duration_s"`
	}
	if err := json.Unmarshal(b, &x); err != nil {
		t.Fatal(err)
	}
	end := int64(math.Round(x.DurationSeconds * 1e9))
	if want := netFires(netClients, netIntervalMS*int64(time.Millisecond), end); r.Scheduled != uint64(want) {
		t.Errorf("scheduled %d, want exactly the %d fires of %d clients every %d ms due in the %.9f s of sending", r.Scheduled, want, netClients, netIntervalMS, x.DurationSeconds)
	}
}

// netCheckFullRun is netCheckScheduled for a run that sent for its whole
// DURATION of secs seconds: every client fired secs × 1000 / INTERVAL_MS
// times.
func netCheckFullRun(t *testing.T, rf string, r report, secs int) {
	t.Helper()
	netCheckScheduled(t, rf, r)
	if want := uint64(netClients * secs * 1000 / netIntervalMS); r.Scheduled != want {
		t.Errorf("scheduled %d, want exactly the %d fires of %d clients in %d s every %d ms", r.Scheduled, want, netClients, secs, netIntervalMS)
	}
}

// TestNetworkPartition cuts the loadgen↔broker link (every connection reset,
// new ones too) once responses flow, holds the cut until two seconds' worth
// of fires have failed to send, and heals it. The loadgen reconnects and
// resubscribes by itself: every connection comes back up and matched grows
// again (events, waited for); the run is then stopped (SIGINT: drain and
// report) and exits 0, the books balance with scheduled exactly the fires of
// the run, and the losses are counted as send_failed and timeouts.
func TestNetworkPartition(t *testing.T) {
	brokerURL := netBroker(t)
	startWorker(t, brokerURL)
	px := startNetProxy(t, "partition", brokerURL)
	// KEEPALIVE=10s bounds the stalled-write fallback (netSlowReconnect).
	lg, maddr, rf := netLoadgen(t, px.URL(), "DURATION=60s", "REQUEST_TIMEOUT=1s", "KEEPALIVE=10s")

	waitLoadgen(t, lg, maddr, "responses before the partition", func(v lgVars) bool { return v.ResponsesMatched >= netRate/2 })
	px.cut()
	cutAt := time.Now()
	down := waitLoadgen(t, lg, maddr, "all loadgen connections down", func(v lgVars) bool { return v.ConnectionsUp == 0 })
	downAfter := time.Since(cutAt)
	frozen := waitLoadgen(t, lg, maddr, "two seconds of fires failing to send", func(v lgVars) bool {
		return v.SendFailed >= down.SendFailed+2*netRate
	})
	px.heal()
	healAt := time.Now()
	t.Logf("cut: all connections down after %v; healed after %v (%s)", downAfter.Round(time.Millisecond), healAt.Sub(cutAt).Round(time.Millisecond), frozen)

	waitLoadgen(t, lg, maddr, "all loadgen connections up after the heal", func(v lgVars) bool { return v.ConnectionsUp == v.Connections })
	upAfter := time.Since(healAt)
	netSlowReconnect(t, "reconnecting after the heal", upAfter)
	waitLoadgen(t, lg, maddr, "a response matched after the heal", func(v lgVars) bool { return v.ResponsesMatched > frozen.ResponsesMatched })
	t.Logf("after the heal: connections up after %v, RECOVERY (first matched response) after %v",
		upAfter.Round(time.Millisecond), time.Since(healAt).Round(time.Millisecond))

	sigint(t, lg)
	r := netFinish(t, lg, rf, 0)
	logReport(t, "across the partition", r)
	checkBalanced(t, r)
	netCheckScheduled(t, rf, r)
	if r.SendFailed+r.Timeouts == 0 {
		t.Errorf("a partition left no send_failed and no timeouts: %+v", r)
	}
	t.Logf("lost to the partition: %d send_failed + %d timed out + %d skipped", r.SendFailed, r.Timeouts, r.Skipped)
}

// TestNetworkBlackhole makes a link swallow every byte while it stays open (a
// half-open link: no FIN, no RST). The side that writes and hears nothing must
// mark its connections suspect — /health answers 503 naming them and the JSON
// endpoint counts connections_suspect — well before keepalive would notice;
// both are waited for as events. The blackhole then ends (the torn
// connections are closed, as TCP would after it), the side reconnects, and
// the loadgen's books balance.
func TestNetworkBlackhole(t *testing.T) {
	// The loadgen's link is blackholed both ways. Its suspect bound is
	// REQUEST_TIMEOUT (1 s); with KEEPALIVE=10s keepalive cannot end the
	// connection before 10 s (a ping unanswered for paho's 10 s ping
	// timeout; the broker waits 1.5 × 10 s), and it bounds the stalled-write
	// fallback after the blackhole (netSlowReconnect).
	t.Run("loadgen", func(t *testing.T) {
		brokerURL := netBroker(t)
		startWorker(t, brokerURL)
		px := startNetProxy(t, "blackhole-loadgen", brokerURL)
		lg, maddr, rf := netLoadgen(t, px.URL(), "DURATION=60s", "REQUEST_TIMEOUT=1s", "KEEPALIVE=10s")
		waitLoadgen(t, lg, maddr, "responses before the blackhole", func(v lgVars) bool { return v.ResponsesMatched >= netRate/2 })

		px.blackhole("upstream", "downstream")
		var health string
		var vars lgVars
		took := waitEvent(t, "loadgen /health 503 naming suspect connections, and connections_suspect > 0", []*proc{lg}, func() (bool, string) {
			if code, body, _ := brokertest.Get("http://" + maddr + "/health"); code == http.StatusServiceUnavailable && strings.Contains(body, "suspect") {
				health = strings.TrimSpace(body)
			}
			if v, err := loadgenVars(maddr); err == nil && v.ConnectionsSuspect > 0 {
				vars = v
			}
			return health != "" && vars.ConnectionsSuspect > 0, fmt.Sprintf("health %q, vars %s", health, vars)
		})
		t.Logf("blackholed: SUSPECT after %v (REQUEST_TIMEOUT=1s): /health 503 %q; %s", took.Round(time.Millisecond), health, vars)
		if vars.ConnectionsUp != vars.Connections {
			t.Logf("note: %d of %d connections up while suspect", vars.ConnectionsUp, vars.Connections)
		}

		px.unblackhole(func() bool { v, err := loadgenVars(maddr); return err == nil && v.ConnectionsUp == 0 }, "upstream", "downstream")
		netAfterBlackhole(t, lg, maddr, rf, "loadgen", maddr, []*proc{lg})
	})

	// The worker's link drops what the broker sends (broker → worker): the
	// worker keeps writing (replies, pings) and hears nothing. Its suspect
	// bound is KEEPALIVE (1 s); paho gives up on the ping 10 s after sending
	// it, so the connection stays up and suspect for about 9 s. The broker
	// still hears the worker's pings, so it does not drop the session.
	t.Run("worker", func(t *testing.T) {
		brokerURL := netBroker(t)
		px := startNetProxy(t, "blackhole-worker", brokerURL)
		w, waddr := startWorker(t, px.URL(), "KEEPALIVE=1s")
		lg, maddr, rf := netLoadgen(t, brokerURL, "DURATION=60s", "REQUEST_TIMEOUT=1s")
		waitLoadgen(t, lg, maddr, "responses before the blackhole", func(v lgVars) bool { return v.ResponsesMatched >= netRate/2 })

		px.blackhole("downstream")
		var health string
		var st netWorkerVars
		took := waitEvent(t, "worker /health 503 naming suspect connections, and /stats connections_suspect > 0", []*proc{w, lg}, func() (bool, string) {
			code, body, _ := brokertest.Get("http://" + waddr + "/health")
			if code == http.StatusServiceUnavailable && strings.Contains(body, "suspect") {
				health = strings.TrimSpace(body)
			}
			if s, err := netWorkerStats(waddr); err == nil && s.ConnectionsSuspect > 0 {
				st = s
			}
			return health != "" && st.ConnectionsSuspect > 0, fmt.Sprintf("health now %d %q, suspect seen %q, stats %+v", code, body, health, st)
		})
		t.Logf("worker half-open: SUSPECT after %v (KEEPALIVE=1s): /health 503 %q; stats %+v", took.Round(time.Millisecond), health, st)

		px.unblackhole(func() bool { s, err := netWorkerStats(waddr); return err == nil && s.ConnectionsUp == 0 }, "downstream")
		netAfterBlackhole(t, lg, maddr, rf, "worker", waddr, []*proc{w, lg})
		if code := w.stop(t); code != 0 {
			t.Errorf("worker exit %d: %s", code, tail(w.errOut.String(), 4000))
		}
	})
}

// netAfterBlackhole follows a lifted blackhole on who's link (its /health
// at addr): it waits for /health 200 and for a response matched again, then
// ends the loadgen and checks its books, in which the requests the blackhole
// swallowed must have timed out.
func netAfterBlackhole(t *testing.T, lg *proc, maddr, rf, who, addr string, watch []*proc) {
	t.Helper()
	healAt := time.Now()
	frozen, _ := loadgenVars(maddr)
	healthyAfter := waitEvent(t, who+" /health 200 after the blackhole", watch, func() (bool, string) {
		code, body, _ := brokertest.Get("http://" + addr + "/health")
		return code == http.StatusOK, fmt.Sprintf("%d %q", code, body)
	})
	netSlowReconnect(t, who+" reconnecting after the blackhole", healthyAfter)
	waitLoadgen(t, lg, maddr, "a response matched after "+who+"'s blackhole", func(v lgVars) bool { return v.ResponsesMatched > frozen.ResponsesMatched })
	t.Logf("after the blackhole: %s healthy and matching again after %v", who, time.Since(healAt).Round(time.Millisecond))

	sigint(t, lg)
	r := netFinish(t, lg, rf, 0)
	logReport(t, who+" blackholed", r)
	checkBalanced(t, r)
	netCheckScheduled(t, rf, r)
	if r.Timeouts == 0 {
		t.Errorf("requests swallowed by the blackhole on %s's link must time out: %+v", who, r)
	}
}

// TestNetworkLatency adds 50 ms to everything the broker sends the loadgen
// (responses included). With a generous REQUEST_TIMEOUT and room for several
// outstanding requests per client, every request is answered: matched ==
// sent == scheduled, and the median round trip is at least the 50 ms injected
// (a lower bound: latency can only add to what is measured).
func TestNetworkLatency(t *testing.T) {
	brokerURL := netBroker(t)
	startWorker(t, brokerURL)
	px := startNetProxy(t, "latency", brokerURL)
	px.add("latency_down", "latency", "downstream", map[string]any{"latency": 50})
	const duration = 2 // s
	lg, _, rf := netLoadgen(t, px.URL(), fmt.Sprintf("DURATION=%ds", duration), "REQUEST_TIMEOUT=5s", "MAX_INFLIGHT_PER_CLIENT=16")
	r := netFinish(t, lg, rf, 0)
	logReport(t, "50 ms downstream latency", r)
	checkBalanced(t, r)
	netCheckFullRun(t, rf, r, duration)
	if r.ResponsesMatched != r.RequestsSent || r.RequestsSent != r.Scheduled || r.MatchRate != 1 || r.SuccessRate != 1 {
		t.Errorf("want every request answered under 50 ms of latency: scheduled %d sent %d matched %d, match %.6f success %.6f",
			r.Scheduled, r.RequestsSent, r.ResponsesMatched, r.MatchRate, r.SuccessRate)
	}
	if r.Latency.P50 < 50 {
		t.Errorf("p50 %.3f ms under a 50 ms latency toxic: the round trip cannot be shorter than the latency injected", r.Latency.P50)
	}
}

// TestNetworkBandwidthReconnect starves the loadgen→broker direction (1 KB/s)
// across a reconnect: the connections are cut, and the new sessions get their
// CONNACK at once but their SUBSCRIBE (2048 response filters per connection,
// about 36 KB, i.e. ~36 s at 1 KB/s) cannot reach the broker within the
// subscribe timeout (10 s, the default ConnectTimeout). mqttconn must retry the
// subscription on the same session rather than leave the connection open and
// down; once the link is restored, the first and the retried SUBSCRIBE go
// through, every connection is up and subscribed again (waited for), matched
// grows, no session was lost in between, and the books balance.
func TestNetworkBandwidthReconnect(t *testing.T) {
	brokerURL := netBroker(t)
	startWorker(t, brokerURL)
	px := startNetProxy(t, "bandwidth", brokerURL)
	const conns = 2
	// KEEPALIVE=20s: no ping (which would queue behind the starved SUBSCRIBE
	// and time out) before the restore, and a bound on the stalled-write
	// fallback after the cut (netSlowReconnect).
	lg, maddr, rf := netLoadgen(t, px.URL(), "DURATION=60s", "REQUEST_TIMEOUT=1s", "KEEPALIVE=20s",
		fmt.Sprintf("CONNECTIONS=%d", conns), "SHARDS=4096", "INSTANCE_ID=netbw")
	waitLoadgen(t, lg, maddr, "responses before the starvation", func(v lgVars) bool { return v.ResponsesMatched >= netRate/2 })

	// Every session ends (and is being re-made) before the starvation begins.
	px.cut()
	cutAt := time.Now()
	waitLoadgen(t, lg, maddr, "all loadgen connections down", func(v lgVars) bool { return v.ConnectionsUp == 0 })
	waitEvent(t, "every connection's loss noticed by paho", []*proc{lg}, func() (bool, string) {
		lost := netConnsLogged(lg.errOut.String(), "mqtt connection lost", conns)
		return len(lost) == conns, fmt.Sprintf("lost logged for connections %v", lost)
	})
	netSlowReconnect(t, "noticing the cut", time.Since(cutAt))
	px.add("starve_up", "bandwidth", "upstream", map[string]any{"rate": 1}) // KB/s
	px.heal()
	starveAt := time.Now()

	// The subscribe timeout fires on every connection, and the subscription
	// is retried on the same session (mqttconn: onConnect).
	var lost int
	retryAfter := waitEvent(t, "a SUBACK timeout and retry logged for every connection", []*proc{lg}, func() (bool, string) {
		log := lg.errOut.String()
		retried := netConnsLogged(log, "no SUBACK within", conns)
		lost = strings.Count(log, "mqtt connection lost")
		return len(retried) == conns, fmt.Sprintf("retried on connections %v", retried)
	})
	frozen, err := loadgenVars(maddr)
	if err != nil {
		t.Fatal(err)
	}
	if frozen.ConnectionsUp != 0 {
		t.Errorf("%d connections up while their subscriptions were starved (want 0: not subscribed, so not up)", frozen.ConnectionsUp)
	}
	px.remove("starve_up")
	restoreAt := time.Now()
	t.Logf("starved: SUBACK timeout and retry on every connection after %v; restored (%s)", retryAfter.Round(time.Millisecond), frozen)

	waitLoadgen(t, lg, maddr, "every connection up and subscribed after the restore", func(v lgVars) bool { return v.ConnectionsUp == v.Connections })
	upAfter := time.Since(restoreAt)
	waitLoadgen(t, lg, maddr, "a response matched after the restore", func(v lgVars) bool { return v.ResponsesMatched > frozen.ResponsesMatched })
	t.Logf("after the restore: all %d connections up after %v, first matched response after %v (starved %v in all)",
		conns, upAfter.Round(time.Millisecond), time.Since(restoreAt).Round(time.Millisecond), restoreAt.Sub(starveAt).Round(time.Millisecond))
	if n := strings.Count(lg.errOut.String(), "mqtt connection lost"); n != lost {
		t.Errorf("%d connections lost after the subscription retry began (want 0: the retry happens on the same session)\n%s", n-lost, tail(lg.errOut.String(), 4000))
	}

	sigint(t, lg)
	r := netFinish(t, lg, rf, 0)
	logReport(t, "across the starved reconnect", r)
	checkBalanced(t, r)
	netCheckScheduled(t, rf, r)
	if r.SendFailed == 0 {
		t.Errorf("fires while no connection was subscribed must be send_failed: %+v", r)
	}
}

// netConnsLogged returns the connections (0..conns-1) of the log lines that
// contain substr (slog text: "... conn=3 ...").
func netConnsLogged(log, substr string, conns int) []int {
	var out []int
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, substr) {
			continue
		}
		for i := range conns {
			if strings.Contains(line, fmt.Sprintf(" conn=%d ", i)) && !slices.Contains(out, i) {
				out = append(out, i)
			}
		}
	}
	slices.Sort(out)
	return out
}

// TestNetworkStalledWriteReconnects stalls the loadgen→broker direction
// under load (1 KB/s against 8 KB requests at 1000 req/s): the socket buffers
// fill, a write of the connection's flusher blocks past WriteTimeout (5 s),
// and the connection fails (sockio's Conn.fail closes the socket "so
// paho's reader fails and the client reconnects"). Once the link is restored
// every connection must be up again (waited for, 30 s) — with KEEPALIVE=60s,
// so a keepalive ping timing out cannot be what brings it back. Matched then
// grows, and the books balance. The same failure, a write that fails before
// the read sees the reset, is what occasionally delays the recovery after a
// cut in the other cases (netSlowReconnect).
func TestNetworkStalledWriteReconnects(t *testing.T) {
	brokerURL := netBroker(t)
	startWorker(t, brokerURL)
	px := startNetProxy(t, "stalled-write", brokerURL)
	lg, maddr, rf := netLoadgen(t, px.URL(), "DURATION=60s", "REQUEST_TIMEOUT=1s", "KEEPALIVE=60s", "CONNECTIONS=2", "PAYLOAD_BYTES=8192")
	waitLoadgen(t, lg, maddr, "responses before the stall", func(v lgVars) bool { return v.ResponsesMatched >= netRate/2 })

	px.add("stall_up", "bandwidth", "upstream", map[string]any{"rate": 1}) // KB/s
	stallAt := time.Now()
	failed := waitLoadgen(t, lg, maddr, "a connection failed by the write timeout", func(v lgVars) bool { return v.ConnectionsUp < v.Connections })
	failedAfter := time.Since(stallAt)
	lostAtFail := strings.Count(lg.errOut.String(), "mqtt connection lost")
	px.remove("stall_up")
	restoreAt := time.Now()
	t.Logf("stalled: a connection failed %v into the stall (%s); restored", failedAfter.Round(time.Millisecond), failed)

	const promptly = 30 * time.Second // a reconnect takes ~1 s; keepalive would take 70
	var last lgVars
	ok := false
	for time.Since(restoreAt) < promptly && lg.alive() {
		if v, err := loadgenVars(maddr); err == nil {
			last = v
			if v.ConnectionsUp == v.Connections {
				ok = true
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !ok {
		t.Fatalf("%d of %d connections still down %v after the link was restored (%s); \"mqtt connection lost\" logged %d times when the write failed, %d times now.\n"+
			"Cause found when this test was written (no connection lost logged): the flusher's write timed out, sockio's Conn.fail closed the socket, "+
			"and paho's reader, blocked in mqttconn's session.Read, got \"use of closed network connection\", which paho's startIncoming (net.go) drops "+
			"silently as a deliberate Disconnect: paho never reports the loss, the session stays dead until a keepalive ping times out "+
			"(KEEPALIVE + up to 5 s + 10 s).\nstderr:\n%s",
			last.Connections-last.ConnectionsUp, last.Connections, promptly, last, lostAtFail, strings.Count(lg.errOut.String(), "mqtt connection lost"), tail(lg.errOut.String(), 3000))
	}
	t.Logf("after the restore: every connection up again after %v", time.Since(restoreAt).Round(time.Millisecond))
	waitLoadgen(t, lg, maddr, "a response matched after the restore", func(v lgVars) bool { return v.ResponsesMatched > last.ResponsesMatched })

	sigint(t, lg)
	r := netFinish(t, lg, rf, 0)
	logReport(t, "across the stalled write", r)
	checkBalanced(t, r)
	netCheckScheduled(t, rf, r)
}

// TestNetworkSLOGate cuts the loadgen's link right after it is up, for the
// rest of a short run, with SLO_SUCCESS_RATE=0.99: the loadgen exits 3 and its
// report names the success rate as the failing figure; the books still
// balance, with scheduled exactly the fires of the run.
func TestNetworkSLOGate(t *testing.T) {
	brokerURL := netBroker(t)
	startWorker(t, brokerURL)
	px := startNetProxy(t, "slo", brokerURL)
	const duration = 3 // s
	lg, _, rf := netLoadgen(t, px.URL(), fmt.Sprintf("DURATION=%ds", duration), "REQUEST_TIMEOUT=1s", "SLO_SUCCESS_RATE=0.99")
	px.cut()
	r := netFinish(t, lg, rf, 3)
	logReport(t, "link down for the run", r)
	checkBalanced(t, r)
	netCheckFullRun(t, rf, r, duration)
	if r.SuccessRate >= 0.99 {
		t.Errorf("success rate %.6f with the link down for the run", r.SuccessRate)
	}
	if r.SLO.Passed || len(r.SLO.Failures) != 1 || !strings.Contains(r.SLO.Failures[0], "success rate") || !strings.Contains(r.SLO.Failures[0], "SLO_SUCCESS_RATE") {
		t.Errorf("slo: %+v, want one failure naming the success rate and SLO_SUCCESS_RATE", r.SLO)
	}
	out := lg.out.String()
	if !strings.Contains(out, "SLO FAILED") || !strings.Contains(out, "success rate") || !strings.Contains(out, "SLO_SUCCESS_RATE=0.99") {
		t.Errorf("the report does not name the failing success rate:\n%s", out)
	}
}
