package engine

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/broker"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/wire"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/config"
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

func testConfig(t *testing.T, brokerURL string, env map[string]string) *config.Config {
	t.Helper()
	base := map[string]string{
		"BROKER": brokerURL, "VIRTUAL_CLIENTS": "2000", "CONNECTIONS": "4", "SHARDS": "16",
		"INTERVAL_MS": "500", "DURATION": "2s", "REQUEST_TIMEOUT": "1s", "METRICS_ADDR": "",
		"PROGRESS_INTERVAL": "0s", "INSTANCE_ID": "test",
	}
	for k, v := range env {
		base[k] = v
	}
	for k, v := range base {
		t.Setenv(k, v)
	}
	cfg, err := config.Load()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func startBroker(t *testing.T) *broker.Broker {
	t.Helper()
	b, err := broker.Start(broker.Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestRunAllMatchedAtLightLoad(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // runs after the broker and echo cleanups
	b := startBroker(t)
	startEcho(t, b.URL(), nil)
	cfg := testConfig(t, b.URL(), nil)
	eng, err := New(cfg, quietLog(), prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := eng.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// 2000 clients every 500 ms for 2 s: 8000 requests.
	if rep.RequestsSent < 7900 || rep.RequestsSent > 8000 {
		t.Errorf("sent %d, want ~8000", rep.RequestsSent)
	}
	if !rep.Balanced || rep.ResponsesMatched != rep.RequestsSent || rep.MatchRate != 1 {
		t.Errorf("want all matched: %+v", rep.Counts)
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
	b := startBroker(t)
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
	// Odd clients never get answers: with MAX_INFLIGHT 1 and a timeout shorter
	// than the interval, half the requests time out.
	ratio := float64(c.ResponsesMatched) / float64(c.RequestsSent)
	if ratio < 0.45 || ratio > 0.55 {
		t.Errorf("match rate %.3f, want ~0.5", ratio)
	}
	if rep.SLO.Passed || len(rep.SLO.Failures) != 1 || !strings.Contains(rep.SLO.Failures[0], "SLO_MATCH_RATE") {
		t.Errorf("SLO should fail naming the match rate: %+v", rep.SLO)
	}
}

func TestSkippedWhenInflightLimitReached(t *testing.T) {
	b := startBroker(t)
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
	total := c.RequestsSent + c.Skipped
	if total < 3100 || total > 3200 || c.Skipped < c.RequestsSent {
		t.Errorf("sent %d skipped %d, want 3200 fires, mostly skipped", c.RequestsSent, c.Skipped)
	}
}

func TestStrayResponsesAreCounted(t *testing.T) {
	b := startBroker(t)
	startEcho(t, b.URL(), nil)
	cfg := testConfig(t, b.URL(), map[string]string{"DURATION": "1s"})
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
		topic := wire.ResponseTopic("test", 3)
		pub.Publish(topic, 0, false, []byte("garbage")).Wait()
		pub.Publish(topic, 0, false, []byte{}).Wait()
		other := wire.AppendResponse(nil, &wire.Response{RunID: eng.runID + 1, ClientID: 3})
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
	b := startBroker(t)
	startEcho(t, b.URL(), nil)
	cfg := testConfig(t, b.URL(), map[string]string{"TRANSPORT": "paho", "DURATION": "1s"})
	eng, err := New(cfg, quietLog(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := eng.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Balanced || rep.MatchRate != 1 || rep.Duplicate != 0 || rep.RequestsSent < 3900 {
		t.Errorf("plain paho transport: %+v", rep.Counts)
	}
}

// WARMUP: requests intended during the warmup are counted apart and kept out
// of the latency histogram; RAMP_UP: clients come online linearly, so about
// half the sends of a full-rate run happen during the ramp.
func TestWarmupAndRampUp(t *testing.T) {
	b := startBroker(t)
	startEcho(t, b.URL(), nil)
	cfg := testConfig(t, b.URL(), map[string]string{"DURATION": "2s", "WARMUP": "1s", "RAMP_UP": "1s"})
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
	// rate, half of them with clients online; the measured second holds 4000.
	if w := rep.Warmup.RequestsSent; w < 1800 || w > 2200 {
		t.Errorf("warmup sent %d, want ~2000 (half of 4000 during a linear ramp)", w)
	}
	if m := rep.RequestsSent; m < 3950 || m > 4000 {
		t.Errorf("measured sent %d, want ~4000", m)
	}
	if rep.Latency.Count != int64(rep.ResponsesMatched) {
		t.Errorf("latency histogram holds %d values, want only the %d measured ones", rep.Latency.Count, rep.ResponsesMatched)
	}
	if rep.DurationSeconds < 0.99 || rep.DurationSeconds > 1.01 {
		t.Errorf("measured duration %.3f s, want 1 s (DURATION - WARMUP)", rep.DurationSeconds)
	}
}
