package engine

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/brokertest"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/wire"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/config"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/loadgentest"
)

// echo is a minimal real MQTT responder: it answers requests on
// $share/echo/req/+ except those for which drop returns true.
type echo struct {
	client   mqtt.Client
	received atomic.Int64
	answered atomic.Int64
}

func startEcho(t *testing.T, url string, drop func(r *wire.Request) bool) *echo {
	t.Helper()
	e := &echo{}
	opts := mqtt.NewClientOptions().AddBroker(url).SetClientID("echo-" + t.Name()).SetOrderMatters(true)
	e.client = mqtt.NewClient(opts)
	if tok := e.client.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("echo connect: %v", tok.Error())
	}
	out := make(chan []any, 100000)
	go func() {
		for m := range out {
			e.client.Publish(m[0].(string), 0, false, m[1].([]byte))
		}
	}()
	tok := e.client.Subscribe("$share/echo/req/+", 0, func(_ mqtt.Client, m mqtt.Message) {
		var r wire.Request
		if err := wire.DecodeRequest(m.Payload(), &r); err != nil {
			return
		}
		e.received.Add(1)
		if drop != nil && drop(&r) {
			return
		}
		e.answered.Add(1)
		resp := wire.AppendResponse(nil, &wire.Response{RunID: r.RunID, ClientID: r.ClientID, Seq: r.Seq, Intended: r.Intended, QueueUS: 5, ProcessUS: 7})
		out <- []any{string(r.ReplyTopic), resp}
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("echo subscribe: %v", tok.Error())
	}
	t.Cleanup(func() { e.client.Disconnect(100); close(out) })
	return e
}

// testConfig resolves the configuration of a small run against brokerURL,
// env overriding loadgentest.Defaults.
func testConfig(t *testing.T, brokerURL string, env map[string]string) *config.Resolved {
	t.Helper()
	return loadgentest.Resolve(t, brokerURL, env)
}

var quietLog = loadgentest.QuietLog

func TestRunAllMatchedAtLightLoad(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // runs after the broker and echo cleanups
	b := brokertest.Start(t)
	startEcho(t, b.URL(), nil)
	// A long timeout: on a loaded machine a late answer is still an answer
	// (the drain ends as soon as nothing is pending). On such a machine a
	// slow answer also makes the client's next fire skipped (one in flight):
	// the success-rate SLO (default 0.99) is off, the books are what is
	// checked (the SLO still fails on unbalanced books).
	cfg := testConfig(t, b.URL(), map[string]string{"REQUEST_TIMEOUT": "20s", "SLO_SUCCESS_RATE": "0"})
	eng, err := New(cfg, quietLog(), prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := eng.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// 2000 clients every 500 ms for 2 s: exactly 8000 fires are due before
	// the end, however late the scheduler ran; each is sent or skipped.
	if rep.Scheduled != 8000 || rep.ClientsFired != 2000 || rep.VirtualClients != 2000 {
		t.Errorf("scheduled %d by %d of %d clients, want 8000 by 2000 of 2000", rep.Scheduled, rep.ClientsFired, rep.VirtualClients)
	}
	if !rep.Balanced || rep.ResponsesMatched != rep.RequestsSent || rep.MatchRate != 1 || rep.SendFailed != 0 {
		t.Errorf("want every request sent matched: %+v", rep.Counts)
	}
	if rep.Latency.Count != int64(rep.ResponsesMatched) || rep.Latency.P50 <= 0 {
		t.Errorf("latency histogram: %+v", rep.Latency)
	}
	if rep.WorkerProcess.Count == 0 || rep.WorkerProcess.P50 < 0.006 || rep.WorkerProcess.P50 > 0.008 {
		t.Errorf("worker processing split not carried: %+v", rep.WorkerProcess)
	}
	if !rep.SLO.Passed {
		t.Errorf("slo: %+v", rep.SLO)
	}
}

func TestAccountingWhenHalfTheRequestsAreDropped(t *testing.T) {
	b := brokertest.Start(t)
	startEcho(t, b.URL(), func(r *wire.Request) bool { return r.ClientID%2 == 1 })
	cfg := testConfig(t, b.URL(), map[string]string{"DURATION": "1500ms", "REQUEST_TIMEOUT": "500ms", "SLO_MATCH_RATE": "0.999"})
	eng, err := New(cfg, quietLog(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := eng.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c := rep.Counts
	if !c.Balanced() || c.StillPending != 0 {
		t.Fatalf("identity broken or pending left after drain: %+v", c)
	}
	if c.Timeouts == 0 || c.ResponsesMatched == 0 {
		t.Fatalf("want both matched and timed out: %+v", c)
	}
	// Odd clients never get answers: with MAX_INFLIGHT 1 and a timeout equal
	// to the interval, every fire is sent (the sweep frees the slot first) and
	// at most half the requests are matched.
	if c.Scheduled != 6000 || c.RequestsSent+c.Skipped != 6000 {
		t.Errorf("scheduled %d, sent %d + skipped %d, want 6000 fires", c.Scheduled, c.RequestsSent, c.Skipped)
	}
	if ratio := float64(c.ResponsesMatched) / float64(c.RequestsSent); ratio > 0.5 {
		t.Errorf("match rate %.3f, want ≤ 0.5 (odd clients are never answered)", ratio)
	}
	fails := strings.Join(rep.SLO.Failures, "\n")
	if rep.SLO.Passed || len(rep.SLO.Failures) != 2 || !strings.Contains(fails, "SLO_MATCH_RATE") || !strings.Contains(fails, "SLO_SUCCESS_RATE") {
		t.Errorf("SLO should fail naming the match and success rates: %+v", rep.SLO)
	}
}

func TestSkippedWhenInflightLimitReached(t *testing.T) {
	b := brokertest.Start(t)
	// Nobody answers: every client keeps its one slot until the timeout (1 s),
	// so with a 250 ms interval 3 of every 4 fires are skipped.
	cfg := testConfig(t, b.URL(), map[string]string{"INTERVAL_MS": "250", "DURATION": "2s", "VIRTUAL_CLIENTS": "400"})
	eng, err := New(cfg, quietLog(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := eng.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c := rep.Counts
	if c.ResponsesMatched != 0 || !c.Balanced() {
		t.Fatalf("%+v", c)
	}
	// Fires k = 0..7 of each client are due; the slot of fire k expires
	// exactly when fire k+4 is due, and deadlines are swept before sends, so
	// fires 0 and 4 are sent and the six others skipped, however late the
	// scheduler runs.
	if c.Scheduled != 3200 || c.RequestsSent != 800 || c.Skipped != 2400 || c.Timeouts != 800 {
		t.Errorf("scheduled %d sent %d skipped %d timed out %d, want 3200, 800, 2400, 800", c.Scheduled, c.RequestsSent, c.Skipped, c.Timeouts)
	}
}

func TestStrayResponsesAreCounted(t *testing.T) {
	b := brokertest.Start(t)
	startEcho(t, b.URL(), nil)
	cfg := testConfig(t, b.URL(), map[string]string{"DURATION": "1s", "REQUEST_TIMEOUT": "20s"})
	eng, err := New(cfg, quietLog(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A foreign publisher sends garbage and a response of another run.
	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID("stray"))
	if tok := pub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer pub.Disconnect(10)
	go func() {
		<-eng.Ready()
		topic := "resp/test/3"
		pub.Publish(topic, 0, false, []byte("garbage")).Wait()
		pub.Publish(topic, 0, false, []byte{}).Wait()
		other := wire.AppendResponse(nil, &wire.Response{RunID: eng.res.RunID + 1, ClientID: 3})
		pub.Publish(topic, 0, false, other).Wait()
	}()
	rep, err := eng.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Malformed != 2 || rep.Unknown != 1 {
		t.Errorf("malformed %d unknown %d, want 2 and 1", rep.Malformed, rep.Unknown)
	}
	if rep.MatchRate != 1 || !rep.Balanced {
		t.Errorf("stray messages changed the results: %+v", rep.Counts)
	}
}

// The plain paho transport (TRANSPORT=paho, kept to measure what the fast
// paths save) must be just as exact: paho sends asynchronously, so the pool
// must hand it copies of the reused encode buffer.
func TestRunPlainPahoTransport(t *testing.T) {
	b := brokertest.Start(t)
	startEcho(t, b.URL(), nil)
	cfg := testConfig(t, b.URL(), map[string]string{"TRANSPORT": "paho", "DURATION": "1s", "REQUEST_TIMEOUT": "20s"})
	eng, err := New(cfg, quietLog(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := eng.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Balanced || rep.MatchRate != 1 || rep.Duplicate != 0 || rep.Scheduled != 4000 || rep.RequestsSent == 0 {
		t.Errorf("plain paho transport: %+v", rep.Counts)
	}
}

// WARMUP: requests intended during the warmup are counted apart and kept out
// of every histogram; RAMP_UP: clients come online linearly, so about
// half the sends of a full-rate run happen during the ramp.
func TestWarmupAndRampUp(t *testing.T) {
	b := brokertest.Start(t)
	startEcho(t, b.URL(), nil)
	cfg := testConfig(t, b.URL(), map[string]string{"DURATION": "2s", "WARMUP": "1s", "RAMP_UP": "1s", "REQUEST_TIMEOUT": "20s"})
	eng, err := New(cfg, quietLog(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := eng.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Warmup == nil || !rep.Warmup.Balanced() || !rep.Balanced {
		t.Fatalf("warmup counts: %+v measured: %+v", rep.Warmup, rep.Counts)
	}
	// 2000 clients every 500 ms: the ramp second would hold 4000 fires at full
	// rate, about half of them with clients online (exactly: those with
	// t·N ≥ RAMP_UP·p); the measured second holds 4000.
	var online uint64
	for f := range eng.sched.FiresUpTo(int64(time.Second) - 1) {
		if eng.sched.Online(f, int64(time.Second)) {
			online++
		}
	}
	if w := rep.Warmup.Scheduled; w != online || w < 1800 || w > 2200 {
		t.Errorf("warmup scheduled %d, want %d (about half of 4000 during a linear ramp)", w, online)
	}
	if m := rep.Scheduled; m != 4000 {
		t.Errorf("measured scheduled %d, want 4000", m)
	}
	if rep.ClientsFired != 2000 {
		t.Errorf("%d clients fired, want 2000", rep.ClientsFired)
	}
	if rep.Latency.Count != int64(rep.ResponsesMatched) {
		t.Errorf("latency histogram holds %d values, want only the %d measured ones", rep.Latency.Count, rep.ResponsesMatched)
	}
	// Every histogram leaves the warm-up out, as the counts do: the schedule
	// lag of each measured request sent, the worker's stamps and the rest
	// of each measured response.
	if rep.ScheduleLag.Count != int64(rep.RequestsSent) {
		t.Errorf("schedule-lag histogram holds %d values, want only the %d measured requests sent", rep.ScheduleLag.Count, rep.RequestsSent)
	}
	for name, n := range map[string]int64{"worker queue": rep.WorkerQueue.Count, "worker processing": rep.WorkerProcess.Count, "broker + network": rep.BrokerNetwork.Count} {
		if n != int64(rep.ResponsesMatched) {
			t.Errorf("%s histogram holds %d values, want the %d measured responses", name, n, rep.ResponsesMatched)
		}
	}
	if rep.DurationSeconds != 1 {
		t.Errorf("measured duration %.3f s, want 1 s (DURATION - WARMUP)", rep.DurationSeconds)
	}
}
