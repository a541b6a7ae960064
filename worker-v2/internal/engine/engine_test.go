package engine

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/broker"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/envconf"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/wire"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/config"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/process"
)

// --- fixtures -------------------------------------------------------------

var clientSeq atomic.Int64

func startBroker(t testing.TB) *broker.Broker {
	t.Helper()
	b, err := broker.Start(broker.Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatalf("start broker: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// testLogger logs to t until the test ends; a line logged later (a paho
// goroutine reporting a lost connection after the pool closed) is dropped
// instead of panicking the test binary.
func testLogger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(string(p[:len(p)-1]))
	}
	return len(p), nil
}

// testConfig returns a small, fast configuration against brokerURL.
func testConfig(brokerURL string) *config.Config {
	c := config.Defaults()
	c.Broker = brokerURL
	c.Connections = 2
	c.MinWorkers = 2
	c.MaxWorkers = 4
	c.QueueCap = 1000
	c.ScaleInterval = 100 * time.Millisecond
	c.ShutdownTimeout = 5 * time.Second
	c.ClientIDPrefix = "wk-test-" + strconv.FormatInt(clientSeq.Add(1), 10)
	return c
}

type running struct {
	*Engine
	reg    *prometheus.Registry
	cancel context.CancelFunc
	errc   chan error
}

// start runs an engine for cfg and waits until it is ready.
func start(t *testing.T, cfg *config.Config) *running {
	t.Helper()
	reg := prometheus.NewRegistry()
	e, err := New(cfg, testLogger(t), reg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Engine: e, reg: reg, cancel: cancel, errc: make(chan error, 1)}
	go func() { r.errc <- e.Run(ctx) }()
	select {
	case <-e.Ready():
	case err := <-r.errc:
		t.Fatalf("Run returned before ready: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("engine not ready after 10s")
	}
	return r
}

// stop cancels the engine and waits for Run to return nil.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.errc:
		if err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return 15s after cancel")
	}
}

// requester is the test's side of the benchmark: a paho client that
// publishes requests and collects responses.
type requester struct {
	c     mqtt.Client
	mu    sync.Mutex
	resps map[uint32][]wire.Response // by Seq
	n     int
	bad   int
}

func newRequester(t testing.TB, brokerURL, filter string) *requester {
	t.Helper()
	r := &requester{resps: map[uint32][]wire.Response{}}
	o := mqtt.NewClientOptions().AddBroker(brokerURL).
		SetClientID("requester-" + strconv.FormatInt(clientSeq.Add(1), 10)).
		SetAutoReconnect(false)
	r.c = mqtt.NewClient(o)
	if tok := r.c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("requester connect: %v", tok.Error())
	}
	t.Cleanup(func() { r.c.Disconnect(100) })
	tok := r.c.Subscribe(filter, 0, func(_ mqtt.Client, m mqtt.Message) {
		var resp wire.Response
		r.mu.Lock()
		defer r.mu.Unlock()
		if wire.DecodeResponse(m.Payload(), &resp) != nil {
			r.bad++
			return
		}
		r.resps[resp.Seq] = append(r.resps[resp.Seq], resp)
		r.n++
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("requester subscribe: %v", tok.Error())
	}
	return r
}

func (r *requester) publish(t testing.TB, topic string, payload []byte) {
	t.Helper()
	if tok := r.c.Publish(topic, 0, false, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
}

// request builds request i: run 7, client i, seq i, reply on resp/t/{i%4}.
func request(t testing.TB, i int) []byte {
	t.Helper()
	b, err := wire.AppendRequest(nil, &wire.Request{
		RunID: 7, ClientID: uint32(i), Seq: uint32(i), Intended: int64(i) * 1_000_003,
		Instance: []byte("t"), ReplyTopic: []byte("resp/t/" + strconv.Itoa(i%4)),
	}, i%3)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (r *requester) sendRequests(t testing.TB, n int) {
	t.Helper()
	for i := range n {
		r.publish(t, "req/"+strconv.Itoa(i%16), request(t, i))
	}
}

func (r *requester) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// gather collects g by family name (package app serves the engine's
// registry on /metrics; its test reads it over HTTP).
func gather(t *testing.T, g prometheus.Gatherer) map[string]*dto.MetricFamily {
	t.Helper()
	list, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	mfs := make(map[string]*dto.MetricFamily, len(list))
	for _, mf := range list {
		mfs[mf.GetName()] = mf
	}
	return mfs
}

// scrape collects the engine's registry.
func (r *running) scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	return gather(t, r.reg)
}

// value returns the sample of family name whose labels include the given
// name/value pairs: a counter or gauge value, or a histogram's count.
func value(t *testing.T, mfs map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	mf, ok := mfs[name]
	if !ok {
		t.Fatalf("metric %s missing", name)
	}
next:
	for _, m := range mf.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	t.Fatalf("metric %s%v missing", name, labels)
	return 0
}

func checkIdentity(t *testing.T, s Stats) {
	t.Helper()
	if s.Received != s.Accounted() {
		t.Errorf("received %d != processed %d + dropped_full %d + malformed %d + reply_failed %d + abandoned %d + queued %d + in flight %d + blocked %d",
			s.Received, s.Processed, s.DroppedFull, s.Malformed, s.ReplyFailed, s.Abandoned, s.QueueDepth, s.InFlight, s.Blocked)
	}
}

// --- tests ------------------------------------------------------------------

// TestRoundTrip is the test as requester: every valid request gets exactly
// one response echoing its fields, garbage (including well-formed requests
// whose reply topic is not publishable) is counted as malformed, and Stats
// (as JSON, the /stats document), the metrics, Health and Readiness agree.
func TestRoundTrip(t *testing.T) {
	b := startBroker(t)
	req := newRequester(t, b.URL(), "resp/t/+")
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	cfg := testConfig(b.URL())
	e := start(t, cfg)

	const n = 300
	req.sendRequests(t, n)
	garbage := [][]byte{
		{},
		[]byte("hello, worker"),
		wire.AppendResponse(nil, &wire.Response{RunID: 1}),
		request(t, 1)[:24],
		append([]byte{2}, request(t, 2)[1:]...), // unknown version
	}
	for _, topic := range []string{"resp/+/1", "resp/#", "resp/a\x00b", "resp/\xff"} { // hostile reply topics
		g, err := wire.AppendRequest(nil, &wire.Request{RunID: 7, ClientID: 9999, Seq: 9999, ReplyTopic: []byte(topic)}, 0)
		if err != nil {
			t.Fatal(err)
		}
		garbage = append(garbage, g)
	}
	for _, g := range garbage {
		req.publish(t, "req/3", g)
	}
	waitFor(t, 10*time.Second, "all responses and malformed counts", func() bool {
		s := e.Stats()
		return req.count() >= n && s.Malformed == uint64(len(garbage)) && s.InFlight == 0
	})

	req.mu.Lock()
	for i := range n {
		rs := req.resps[uint32(i)]
		if len(rs) != 1 {
			t.Errorf("request %d: %d responses, want 1", i, len(rs))
			continue
		}
		r := rs[0]
		if r.RunID != 7 || r.ClientID != uint32(i) || r.Intended != int64(i)*1_000_003 {
			t.Errorf("request %d: response %+v does not echo run 7, client %d, intended %d", i, r, i, int64(i)*1_000_003)
		}
	}
	if req.bad != 0 {
		t.Errorf("%d undecodable responses", req.bad)
	}
	req.mu.Unlock()

	s := e.Stats()
	if s.Received != n+uint64(len(garbage)) || s.Processed != n || s.DroppedFull != 0 || s.ReplyFailed != 0 {
		t.Errorf("stats %+v", s)
	}
	checkIdentity(t, s)

	// The /stats document.
	body, err := json.Marshal(e.Stats())
	if err != nil {
		t.Fatal(err)
	}
	var hs Stats
	if err := json.Unmarshal(body, &hs); err != nil {
		t.Fatalf("stats JSON: %v %s", err, body)
	}
	if hs.Processed != n || hs.Malformed != uint64(len(garbage)) || hs.Received != s.Received ||
		hs.ConnectionsUp != 2 || hs.Connections != 2 || hs.Workers != cfg.MinWorkers || hs.QueueCap != cfg.QueueCap ||
		hs.Mode != "health" || hs.Draining || hs.MinWorkers != 2 || hs.MaxWorkers != 4 || hs.ScalingEvents == nil {
		t.Errorf("stats JSON = %s", body)
	}
	var raw map[string]any
	_ = json.Unmarshal(body, &raw)
	for _, k := range []string{"workers", "min_workers", "max_workers", "queue_depth", "queue_cap", "received", "processed",
		"dropped_full", "malformed", "reply_failed", "rate_rps", "connections_up", "connections", "mode", "draining", "scaling_events",
		"queue_bytes", "queue_max_bytes", "queue_oldest_seconds", "blocked", "arrival_rps", "service_seconds", "demand_workers",
		"need_workers", "utilization"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("stats JSON lacks %q", k)
		}
	}
	if hs.RateRPS <= 0 {
		t.Errorf("rate_rps = %v after %d processed", hs.RateRPS, n)
	}

	// The metrics.
	mfs := e.scrape(t)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"mqttrr_worker_messages_received_total", nil, float64(n + len(garbage))},
		{"mqttrr_worker_messages_total", []string{"outcome", "processed"}, n},
		{"mqttrr_worker_messages_total", []string{"outcome", "malformed"}, float64(len(garbage))},
		{"mqttrr_worker_messages_total", []string{"outcome", "dropped_full"}, 0},
		{"mqttrr_worker_messages_total", []string{"outcome", "reply_failed"}, 0},
		{"mqttrr_worker_queue_depth", nil, 0},
		{"mqttrr_worker_queue_capacity", nil, float64(cfg.QueueCap)},
		{"mqttrr_worker_queue_bytes", nil, 0},
		{"mqttrr_worker_queue_capacity_bytes", nil, float64(cfg.QueueMaxBytes)},
		{"mqttrr_worker_queue_oldest_seconds", nil, 0},
		{"mqttrr_worker_blocked", nil, 0},
		{"mqttrr_worker_max_workers", nil, float64(cfg.MaxWorkers)},
		{"mqttrr_worker_workers", nil, float64(cfg.MinWorkers)},
		{"mqttrr_worker_connections_up", nil, 2},
		{"mqttrr_worker_scaling_events_total", []string{"direction", "up"}, 0},
		{"mqttrr_worker_queue_wait_seconds", nil, n},
		{"mqttrr_worker_processing_seconds", nil, n},
	} {
		if got := value(t, mfs, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}

	for _, name := range []string{"mqttrr_worker_demand_workers", "mqttrr_worker_utilization_ratio"} {
		if got := value(t, mfs, name); got < 0 || got > 1 {
			t.Errorf("%s = %v at light load, want 0..1", name, got)
		}
	}

	for name, f := range map[string]func() (bool, string){"Health": e.Health, "Readiness": e.Readiness} {
		if ok, why := f(); !ok {
			t.Errorf("%s = false %q, want true", name, why)
		}
	}

	e.stop(t)
	time.Sleep(50 * time.Millisecond) // late duplicates would show now
	if got := req.count(); got != n {
		t.Errorf("%d responses in total, want %d", got, n)
	}
}

// TestDropOnFull: one slow worker and a queue of 2 drop most of a burst, and
// every message is still accounted for.
// TestReplyWriteModes answers a backlog with each way replies are written:
// by the worker once the queue is empty (MODE=health, WRITE_LINGER=0), by the
// worker after each reply (MODE=sleep), by the flusher after WRITE_LINGER.
// One worker, so the backlog is answered back to back: a reply left in the
// buffer when the queue ran empty would never arrive.
func TestReplyWriteModes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mode   string
		linger time.Duration
	}{
		{"health, written by the worker when the queue is empty", config.ModeHealth, 0},
		{"sleep, written by the worker after each reply", config.ModeSleep, 0},
		{"health, written by the flusher after WRITE_LINGER", config.ModeHealth, 2 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startBroker(t)
			req := newRequester(t, b.URL(), "resp/t/+")
			cfg := testConfig(b.URL())
			cfg.Mode, cfg.SleepMS, cfg.WriteLinger = tc.mode, 1, tc.linger
			cfg.MinWorkers, cfg.MaxWorkers, cfg.Connections = 1, 1, 1
			e := start(t, cfg)
			const n = 200
			req.sendRequests(t, n)
			waitFor(t, 20*time.Second, "every request answered", func() bool {
				return req.count() >= n && e.Stats().Processed == n
			})
			req.mu.Lock()
			for i := range n {
				if len(req.resps[uint32(i)]) != 1 {
					t.Errorf("request %d: %d responses, want 1", i, len(req.resps[uint32(i)]))
				}
			}
			req.mu.Unlock()
			e.stop(t)
		})
	}
}

// batchConn records how many replies each Flush writes.
type batchConn struct {
	discardConn
	queued  int
	batches []int
}

func (c *batchConn) QueueMessage(*mqttconn.Message) error { c.queued++; return nil }
func (c *batchConn) Flush() {
	c.batches = append(c.batches, c.queued)
	c.queued = 0
}

// TestLazyFlushBatches: a MODE=health worker facing a backlog writes its
// replies every flushBatch while the queue stays non-empty and the rest once
// it is empty, so a long backlog never holds a reply back until it ends.
func TestLazyFlushBatches(t *testing.T) {
	e, err := New(testConfig("tcp://127.0.0.1:1883"), testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	proc, _ := process.New(process.Options{Mode: process.Health}, 1)
	c := &batchConn{}
	w := &worker{e: e, conn: c, proc: proc, st: &e.work[0], buf: make([]byte, 0, wire.ResponseSize), lazy: true}
	const n = 3*flushBatch + 8
	for i := range n {
		bp := payloads.get()
		*bp = append((*bp)[:0], request(t, i)...)
		e.queue <- item{buf: bp, enqueued: e.now()}
	}
	e.live.Add(1) // run's deferred count
	done := make(chan struct{})
	go func() { w.run(); close(done) }()
	e.quit <- struct{}{} // taken once the backlog is done: run then returns
	<-done
	want := []int{flushBatch, flushBatch, flushBatch, 8}
	if len(c.batches) != len(want) {
		t.Fatalf("flushes wrote %v replies, want %v", c.batches, want)
	}
	for i := range want {
		if c.batches[i] != want[i] {
			t.Fatalf("flushes wrote %v replies, want %v", c.batches, want)
		}
	}
	if got := e.processed(); got != n {
		t.Errorf("processed %d, want %d", got, n)
	}
}

func TestDropOnFull(t *testing.T) {
	b := startBroker(t)
	req := newRequester(t, b.URL(), "resp/t/+")
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	cfg := testConfig(b.URL())
	cfg.Connections = 1
	cfg.Mode = config.ModeSleep
	cfg.SleepMS = 20
	cfg.QueueCap = 2
	cfg.MinWorkers, cfg.MaxWorkers = 1, 1
	cfg.DropOnFull = true
	e := start(t, cfg)

	const n = 40
	req.sendRequests(t, n)
	waitFor(t, 10*time.Second, "the burst to be received and settled", func() bool {
		s := e.Stats()
		return s.Received == n && s.QueueDepth == 0 && s.InFlight == 0
	})
	s := e.Stats()
	if s.DroppedFull == 0 || s.Processed == 0 {
		t.Errorf("dropped_full %d, processed %d: want both > 0", s.DroppedFull, s.Processed)
	}
	checkIdentity(t, s)
	waitFor(t, 5*time.Second, "responses to the processed requests", func() bool { return req.count() >= int(s.Processed) })
	mfs := e.scrape(t)
	if got := value(t, mfs, "mqttrr_worker_messages_total", "outcome", "dropped_full"); got != float64(s.DroppedFull) {
		t.Errorf("dropped_full metric %v, stats %d", got, s.DroppedFull)
	}
	e.stop(t)
	if got := req.count(); got != int(s.Processed) {
		t.Errorf("%d responses, want %d (processed)", got, s.Processed)
	}
}

// TestGracefulDrain: with a queue full of slow work, cancelling the context
// turns Readiness and Health false ("draining"), and every queued request is
// processed and replied to before Run returns.
func TestGracefulDrain(t *testing.T) {
	b := startBroker(t)
	req := newRequester(t, b.URL(), "resp/t/+")
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	cfg := testConfig(b.URL())
	cfg.Connections = 1
	cfg.Mode = config.ModeSleep
	cfg.SleepMS = 30
	cfg.MinWorkers, cfg.MaxWorkers = 1, 1
	cfg.DropOnFull = false
	e := start(t, cfg)

	const n = 30
	req.sendRequests(t, n)
	waitFor(t, 5*time.Second, "all requests received", func() bool { return e.Stats().Received == n })
	if s := e.Stats(); s.QueueDepth < n/2 {
		t.Fatalf("queue holds %d, want most of %d (the test needs a backlog)", s.QueueDepth, n)
	}

	e.cancel()
	waitFor(t, 5*time.Second, "the drain to start", func() bool { return e.Stats().Draining })
	for name, f := range map[string]func() (bool, string){"Health": e.Health, "Readiness": e.Readiness} {
		if ok, why := f(); ok || why != "draining" {
			t.Errorf("%s = %v %q while draining, want false \"draining\"", name, ok, why)
		}
	}
	if s := e.Stats(); !s.Draining {
		t.Error("stats: draining = false after cancel")
	}
	if err := <-e.errc; err != nil {
		t.Fatalf("Run = %v", err)
	}
	s := e.Stats()
	if s.Processed != n || s.Abandoned != 0 || s.QueueDepth != 0 || s.InFlight != 0 || s.Workers != 0 {
		t.Errorf("after drain: %+v", s)
	}
	checkIdentity(t, s)
	waitFor(t, 5*time.Second, "replies of the drained requests", func() bool { return req.count() == n })
}

// TestShutdownTimeoutAbandons: what SHUTDOWN_TIMEOUT cannot drain is counted
// as abandoned, and Run still returns promptly.
func TestShutdownTimeoutAbandons(t *testing.T) {
	b := startBroker(t)
	req := newRequester(t, b.URL(), "resp/t/+")
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	cfg := testConfig(b.URL())
	cfg.Connections = 1
	cfg.Mode = config.ModeSleep
	cfg.SleepMS = 200
	cfg.MinWorkers, cfg.MaxWorkers = 1, 1
	cfg.ShutdownTimeout = 300 * time.Millisecond
	e := start(t, cfg)

	const n = 10
	req.sendRequests(t, n)
	waitFor(t, 5*time.Second, "all requests received", func() bool { return e.Stats().Received == n })
	e.stop(t) // returns: the drain gave up (a drain that waited for the sleeps would not abandon any)
	s := e.Stats()
	if s.Abandoned == 0 || s.Processed+s.Abandoned != n || s.QueueDepth != 0 || s.InFlight != 0 {
		t.Errorf("after a timed-out drain: %+v", s)
	}
	checkIdentity(t, s)
}

// TestAutoscaleUnderLoad: with the default queue (QUEUE_CAP 100,000, fill
// thresholds 0.7/0.2) a burst of slow requests fills 0.4% of it, so the fill
// trigger never fires; the pool still scales up on demand (or queue wait) at
// once, every request is answered, and after the stabilisation window the
// pool returns to MIN_WORKERS. The events and counts show in /stats and
// /metrics. DROP_ON_FULL=false: nothing is lost.
func TestAutoscaleUnderLoad(t *testing.T) {
	b := startBroker(t)
	req := newRequester(t, b.URL(), "resp/t/+")
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	cfg := testConfig(b.URL())
	cfg.Mode = config.ModeSleep
	cfg.SleepMS = 20
	cfg.QueueCap = config.Defaults().QueueCap
	cfg.MinWorkers, cfg.MaxWorkers = 1, 64
	cfg.ScaleInterval = 50 * time.Millisecond
	cfg.ScaleMaxWait = 200 * time.Millisecond
	cfg.ScaleDownWindow = 200 * time.Millisecond
	cfg.DropOnFull = false
	e := start(t, cfg)

	const n = 400 // 8 s of work for one worker, 0.4% of the queue
	req.sendRequests(t, n)
	waitFor(t, 10*time.Second, "a scale-up", func() bool { return e.Stats().Workers > 1 })
	waitFor(t, 30*time.Second, "all replies and a scale back to MIN_WORKERS", func() bool {
		return req.count() == n && e.Stats().Workers == 1
	})
	s := e.Stats()
	if s.Processed != n || s.DroppedFull != 0 || s.QueueDepth != 0 || s.QueueBytes != 0 || s.Blocked != 0 {
		t.Errorf("stats %+v", s)
	}
	checkIdentity(t, s)
	var up, down bool
	for _, ev := range s.ScalingEvents {
		t.Logf("event %v → %v %s: %s", ev.From, ev.To, ev.Trigger, ev.Reason)
		if ev.To > ev.From {
			up = true
			if ev.Trigger != "demand" && ev.Trigger != "queue_wait" {
				t.Errorf("scale-up on %q, want demand or queue_wait (the queue never filled): %+v", ev.Trigger, ev)
			}
		}
		down = down || ev.To < ev.From && ev.Trigger == "down"
		if ev.Reason == "" || ev.Time.IsZero() {
			t.Errorf("event without reason or time: %+v", ev)
		}
	}
	if !up || !down {
		t.Errorf("scaling events %+v: want at least one up and one down", s.ScalingEvents)
	}
	if s.ServiceSeconds < 0.02 || s.ArrivalRPS != 0 {
		t.Errorf("last sample: service %v s (≥ SLEEP_MS 20 ms), arrivals %v/s (0 once idle)", s.ServiceSeconds, s.ArrivalRPS)
	}
	mfs := e.scrape(t)
	if value(t, mfs, "mqttrr_worker_scaling_events_total", "direction", "up") < 1 ||
		value(t, mfs, "mqttrr_worker_scaling_events_total", "direction", "down") < 1 {
		t.Error("scaling_events_total does not count both directions")
	}
	e.stop(t)
}

// bigRequest is request i padded to about size bytes.
func bigRequest(t testing.TB, i, size int) []byte {
	t.Helper()
	b, err := wire.AppendRequest(nil, &wire.Request{
		RunID: 7, ClientID: uint32(i), Seq: uint32(i), Intended: int64(i),
		Instance: []byte("t"), ReplyTopic: []byte("resp/t/" + strconv.Itoa(i%4)),
	}, size)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestQueueMaxBytes: 16 KiB requests against QUEUE_MAX_BYTES = 64 KiB and a
// slow worker. DROP_ON_FULL=true drops what does not fit in bytes although
// the queue has slots to spare; DROP_ON_FULL=false waits for room and loses
// nothing. The queued bytes never pass the bound, return to 0, and every
// message is accounted for.
func TestQueueMaxBytes(t *testing.T) {
	for _, drop := range []bool{true, false} {
		t.Run("DROP_ON_FULL="+strconv.FormatBool(drop), func(t *testing.T) {
			b := startBroker(t)
			req := newRequester(t, b.URL(), "resp/t/+")
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

			cfg := testConfig(b.URL())
			cfg.Connections = 1
			cfg.Mode = config.ModeSleep
			cfg.SleepMS = 10
			cfg.MinWorkers, cfg.MaxWorkers = 1, 1
			cfg.QueueMaxBytes = config.MinQueueBytes
			cfg.DropOnFull = drop
			e := start(t, cfg)

			const n = 40
			var peak atomic.Int64
			stop := make(chan struct{})
			var sampler sync.WaitGroup
			sampler.Go(func() {
				for {
					peak.Store(max(peak.Load(), e.queueBytes.Load()))
					select {
					case <-stop:
						return
					case <-time.After(time.Millisecond):
					}
				}
			})
			for i := range n {
				req.publish(t, "req/"+strconv.Itoa(i%16), bigRequest(t, i, 16<<10))
			}
			waitFor(t, 20*time.Second, "the burst to be received and settled", func() bool {
				s := e.Stats()
				return s.Received == n && s.QueueDepth == 0 && s.InFlight == 0 && s.Blocked == 0
			})
			close(stop)
			sampler.Wait()
			s := e.Stats()
			t.Logf("processed %d, dropped_full %d, peak queue bytes %d of %d", s.Processed, s.DroppedFull, peak.Load(), cfg.QueueMaxBytes)
			checkIdentity(t, s)
			if p := peak.Load(); p > cfg.QueueMaxBytes || p == 0 {
				t.Errorf("queued bytes peaked at %d, want 0 < peak ≤ QUEUE_MAX_BYTES %d", p, cfg.QueueMaxBytes)
			}
			if s.QueueBytes != 0 || s.QueueMaxBytes != cfg.QueueMaxBytes {
				t.Errorf("queue_bytes %d (want 0 when empty), queue_max_bytes %d", s.QueueBytes, s.QueueMaxBytes)
			}
			if drop && (s.DroppedFull == 0 || s.Processed == 0) {
				t.Errorf("DROP_ON_FULL=true: dropped_full %d, processed %d, want both > 0 (bytes bound, 3 of %d slots)", s.DroppedFull, s.Processed, cfg.QueueCap)
			}
			if !drop && (s.DroppedFull != 0 || s.Processed != n) {
				t.Errorf("DROP_ON_FULL=false: dropped_full %d, processed %d, want 0 and %d", s.DroppedFull, s.Processed, n)
			}
			waitFor(t, 5*time.Second, "responses to the processed requests", func() bool { return req.count() >= int(s.Processed) })
			e.stop(t)
		})
	}
}

// TestBlockedAccounting: DROP_ON_FULL=false under lasting back-pressure (one
// worker stuck on a long request, a queue of 2, both connections holding a
// message they cannot queue): the identity holds exactly, the held messages
// counted as blocked; at shutdown they are abandoned, still exactly.
func TestBlockedAccounting(t *testing.T) {
	b := startBroker(t)
	req := newRequester(t, b.URL(), "resp/t/+")
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	cfg := testConfig(b.URL())
	cfg.Connections = 2
	cfg.Mode = config.ModeSleep
	cfg.SleepMS = 60_000
	cfg.MinWorkers, cfg.MaxWorkers = 1, 1
	cfg.QueueCap = 2
	cfg.DropOnFull = false
	cfg.ShutdownTimeout = 200 * time.Millisecond
	e := start(t, cfg)

	// Requests go out until both connections hold one: 1 in flight, 2
	// queued, 1 blocked each; the rest waits in the broker.
	for i := 0; e.Stats().Blocked < 2; i++ {
		if i == 2000 {
			t.Fatalf("no back-pressure on both connections after %d requests: %+v", i, e.Stats())
		}
		req.publish(t, "req/"+strconv.Itoa(i%16), request(t, i))
		time.Sleep(time.Millisecond)
	}
	waitFor(t, 10*time.Second, "the back-pressure to settle", func() bool {
		s := e.Stats()
		return s.InFlight == 1 && s.QueueDepth == 2 && s.Blocked == 2
	})
	s := e.Stats()
	if s.InFlight != 1 || s.QueueDepth != 2 || s.Blocked != 2 || s.Received != 5 {
		t.Errorf("under back-pressure: in flight %d, queued %d, blocked %d, received %d; want 1, 2, 2, 5", s.InFlight, s.QueueDepth, s.Blocked, s.Received)
	}
	checkIdentity(t, s)
	mfs := e.scrape(t)
	if got := value(t, mfs, "mqttrr_worker_blocked", nil...); got != 2 {
		t.Errorf("mqttrr_worker_blocked = %v, want 2", got)
	}

	e.stop(t)
	// Everything received was abandoned: the 5 above, and whatever the
	// released connections read before the pool closed.
	s = e.Stats()
	if s.Abandoned < 5 || s.Abandoned != s.Received || s.Processed != 0 || s.Blocked != 0 || s.QueueBytes != 0 {
		t.Errorf("after shutdown: abandoned %d of %d received (want all, ≥ 5), processed %d, blocked %d, queue bytes %d",
			s.Abandoned, s.Received, s.Processed, s.Blocked, s.QueueBytes)
	}
	checkIdentity(t, s)
}

// stallProxy forwards TCP between the engine and the broker and can stop
// forwarding the engine's writes (the broker "stops reading"), then reset
// the connections.
type stallProxy struct {
	l      net.Listener
	target string
	stall  atomic.Bool
	mu     sync.Mutex
	conns  []*net.TCPConn
	wg     sync.WaitGroup
}

func newStallProxy(t *testing.T, target string) *stallProxy {
	t.Helper()
	// A small receive buffer on the engine's side (set on the listener, so
	// the accepted sockets start with it): a stall fills the window soon.
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return errors.Join(err, serr)
	}}
	l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{l: l, target: target}
	p.wg.Go(p.accept)
	return p
}

// close stops the proxy and waits for its goroutines.
func (p *stallProxy) close() {
	_ = p.l.Close()
	p.reset()
	p.wg.Wait()
}

func (p *stallProxy) url() string { return "tcp://" + p.l.Addr().String() }

func (p *stallProxy) accept() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		in, out := c.(*net.TCPConn), up.(*net.TCPConn)
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		both := func() { _ = in.Close(); _ = out.Close() }
		p.wg.Go(func() {
			defer both()
			_, _ = io.Copy(in, out)
		})
		p.wg.Go(func() {
			defer both()
			buf := make([]byte, 4096)
			for {
				for p.stall.Load() {
					time.Sleep(time.Millisecond)
				}
				n, err := in.Read(buf)
				if n > 0 {
					if _, werr := out.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		})
	}
}

// reset ends the stall and closes every connection with a TCP reset.
func (p *stallProxy) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stall.Store(false)
	for _, c := range p.conns {
		_ = c.SetLinger(0)
		_ = c.Close()
	}
	p.conns = nil
}

// TestUnsentRepliesAreReplyFailed: replies that entered the connection's
// write buffer but were discarded unwritten when the connection failed
// (mqttconn's OnUnsent) count as reply_failed, not processed. The broker
// stops reading the worker's connection until its write buffer refuses
// replies, then the connection is reset: whatever was buffered is reported
// unsent. Every request ends processed or reply_failed, exactly.
func TestUnsentRepliesAreReplyFailed(t *testing.T) {
	b := startBroker(t)
	req := newRequester(t, b.URL(), "resp/t/+")
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	proxy := newStallProxy(t, b.Addr())
	defer proxy.close()

	cfg := testConfig(proxy.url())
	cfg.Connections = 1
	cfg.MinWorkers, cfg.MaxWorkers = 1, 1
	e := start(t, cfg)

	proxy.stall.Store(true)
	sent := 0
	for e.Stats().ReplyFailed == 0 { // until the write buffer (1 MiB) is full
		if sent == 200_000 {
			t.Fatalf("no back-pressure after %d requests: %+v", sent, e.Stats())
		}
		for range 1000 {
			req.publish(t, "req/"+strconv.Itoa(sent%16), request(t, sent))
			sent++
		}
		waitFor(t, 20*time.Second, "the batch handled", func() bool {
			s := e.Stats()
			return s.Processed+s.ReplyFailed == uint64(sent)
		})
	}
	before, unsent0 := e.Stats(), e.unsent()
	high := value(t, e.scrape(t), "mqttrr_worker_messages_total", "outcome", "processed")
	proxy.reset()
	waitFor(t, 20*time.Second, "buffered replies reported unsent", func() bool { return e.unsent() > unsent0 })
	// The connection reports its discarded frames one by one: wait until the
	// count has stopped moving, then take a snapshot no report interleaved.
	var s Stats
	quiet, last := 0, e.unsent()
	waitFor(t, 20*time.Second, "the unsent reports to end", func() bool {
		time.Sleep(20 * time.Millisecond)
		u := e.unsent()
		if u != last {
			quiet, last = 0, u
			return false
		}
		s = e.Stats()
		if e.unsent() != u {
			return false
		}
		quiet++
		return quiet >= 10
	})
	moved := last - unsent0
	t.Logf("sent %d; before the reset: processed %d, reply_failed %d; after: processed %d, reply_failed %d (%d unsent, %d of them at the reset)",
		sent, before.Processed, before.ReplyFailed, s.Processed, s.ReplyFailed, e.unsent(), moved)
	if s.Processed+s.ReplyFailed != uint64(sent) || s.Received != uint64(sent) {
		t.Errorf("received %d, processed %d + reply_failed %d, want %d each request once", s.Received, s.Processed, s.ReplyFailed, sent)
	}
	if s.Processed != before.Processed-moved || s.ReplyFailed != before.ReplyFailed+moved {
		t.Errorf("the unsent replies did not move from processed to reply_failed")
	}
	if got := req.count(); uint64(got) > s.Processed {
		t.Errorf("the requester got %d replies, more than the %d processed", got, s.Processed)
	}
	checkIdentity(t, s)
	// The Prometheus counter never goes down: it holds the highest value it
	// exported (before the reset) until processed passes it again.
	mfs := e.scrape(t)
	if got := value(t, mfs, "mqttrr_worker_messages_total", "outcome", "processed"); high != float64(before.Processed) || got != high {
		t.Errorf("processed_total %v, want its high-water mark %v = %d (stats now %d)", got, high, before.Processed, s.Processed)
	}
	if got := value(t, mfs, "mqttrr_worker_messages_total", "outcome", "reply_failed"); got != float64(s.ReplyFailed) {
		t.Errorf("reply_failed_total %v, stats %d", got, s.ReplyFailed)
	}
	e.stop(t)
}

func TestMonotonic(t *testing.T) {
	v := uint64(5)
	f := monotonic(func() uint64 { return v })
	for _, c := range []struct{ set, want uint64 }{{5, 5}, {3, 5}, {7, 7}, {6, 7}, {9, 9}} {
		v = c.set
		if got := f(); got != c.want {
			t.Errorf("value %d: got %d, want %d", c.set, got, c.want)
		}
	}
}

// TestCPUModeCap: in MODE=cpu the pool's bound is max(MIN_WORKERS,
// GOMAXPROCS), at most MAX_WORKERS; other modes keep MAX_WORKERS.
func TestCPUModeCap(t *testing.T) {
	procs := runtime.GOMAXPROCS(0)
	for _, c := range []struct {
		mode     string
		min, max int
		want     int
	}{
		{config.ModeSleep, 10, 1000, 1000},
		{config.ModeHealth, 1, 50, 50},
		{config.ModeCPU, 1, 1000, procs},
		{config.ModeCPU, procs + 3, 1000, procs + 3},
		{config.ModeCPU, 1, 1, 1},
	} {
		cfg := testConfig("tcp://127.0.0.1:1883")
		cfg.Mode, cfg.MinWorkers, cfg.MaxWorkers = c.mode, c.min, c.max
		e, err := New(cfg, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if e.maxWorkers != c.want || e.scaler.Policy().Max != c.want || e.Stats().MaxWorkers != c.want {
			t.Errorf("%s MIN %d MAX %d: bound %d (policy %d), want %d", c.mode, c.min, c.max, e.maxWorkers, e.scaler.Policy().Max, c.want)
		}
	}
}

// TestOldestWait: the oldest queued age is 0 on an empty queue, at least the
// age of the head, and fresh when a message entered an empty queue even if
// the last message taken is old.
func TestOldestWait(t *testing.T) {
	e, err := New(testConfig("tcp://127.0.0.1:1883"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := e.oldestWait(); d != 0 {
		t.Errorf("empty queue: oldest %v", d)
	}
	payload := request(t, 1)
	w := &worker{e: e, st: &e.work[0]}
	take := func() {
		it := <-e.queue
		w.take(it)
		payloads.put(it.buf)
	}
	e.handle(0, &mqttconn.Message{Topic: "req/1", Payload: payload}) // A, into an empty queue
	time.Sleep(20 * time.Millisecond)
	e.handle(0, &mqttconn.Message{Topic: "req/1", Payload: payload}) // B
	if d := e.oldestWait(); d < 20*time.Millisecond {
		t.Errorf("A queued 20 ms ago: oldest %v", d)
	}
	take() // A
	take() // B
	if d := e.oldestWait(); d != 0 {
		t.Errorf("queue emptied: oldest %v", d)
	}
	const idle = 200 * time.Millisecond
	time.Sleep(idle)
	e.handle(0, &mqttconn.Message{Topic: "req/1", Payload: payload}) // C, into an empty queue: B (taken) is 200 ms old
	if d := e.oldestWait(); d >= idle {
		t.Errorf("C just queued: oldest %v, want below the %v since B", d, idle)
	}
}

// TestSharedGroup: two engines in one share group answer every request
// exactly once between them.
func TestSharedGroup(t *testing.T) {
	b := startBroker(t)
	req := newRequester(t, b.URL(), "resp/t/+")
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	e1 := start(t, testConfig(b.URL()))
	e2 := start(t, testConfig(b.URL()))
	const n = 200
	req.sendRequests(t, n)
	waitFor(t, 10*time.Second, "all responses", func() bool { return req.count() >= n })
	e1.stop(t)
	e2.stop(t)
	s1, s2 := e1.Stats(), e2.Stats()
	if s1.Processed+s2.Processed != n || req.count() != n {
		t.Errorf("processed %d + %d, responses %d; want %d each request once", s1.Processed, s2.Processed, req.count(), n)
	}
}

// TestPlainSubscription: SHARED_SUBSCRIPTION=false subscribes to MQTT_SUB
// itself.
func TestPlainSubscription(t *testing.T) {
	b := startBroker(t)
	req := newRequester(t, b.URL(), "resp/t/+")
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	cfg := testConfig(b.URL())
	cfg.Connections = 1
	cfg.Shared = false
	cfg.ShareGroup = ""
	e := start(t, cfg)
	req.sendRequests(t, 20)
	waitFor(t, 5*time.Second, "responses", func() bool { return req.count() == 20 })
	e.stop(t)
}

// TestQoS1: with QOS=1 the subscription and the replies go through paho's
// acknowledged path (replies are copied, since paho keeps the slice until
// the PUBACK).
func TestQoS1(t *testing.T) {
	b := startBroker(t)
	req := newRequester(t, b.URL(), "resp/t/+")
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	cfg := testConfig(b.URL())
	cfg.QoS = 1
	e := start(t, cfg)
	const n = 100
	req.sendRequests(t, n)
	waitFor(t, 10*time.Second, "responses", func() bool { return req.count() == n })
	e.stop(t)
	req.mu.Lock()
	defer req.mu.Unlock()
	for i := range n {
		if rs := req.resps[uint32(i)]; len(rs) != 1 || rs[0].ClientID != uint32(i) {
			t.Errorf("request %d: responses %+v", i, rs)
		}
	}
}

func TestRunErrors(t *testing.T) {
	defer goleak.VerifyNone(t)
	t.Run("cancelled while connecting, then run again", func(t *testing.T) {
		// A port nobody listens on: paho retries every 500 ms until cancelled.
		// (A listener that never answers CONNECT would keep paho's connect
		// goroutine alive for its 10 s connect timeout after Run returned.)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		refused := l.Addr().String()
		l.Close()
		cfg := testConfig("tcp://" + refused)
		e, err := New(cfg, testLogger(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		if err := e.Run(ctx); err != nil {
			t.Errorf("Run cancelled while connecting = %v, want nil", err)
		}
		select {
		case <-e.Ready():
			t.Error("Ready closed without a connection")
		default:
		}
		if err := e.Run(context.Background()); !errors.Is(err, ErrRunTwice) {
			t.Errorf("second Run = %v, want ErrRunTwice", err)
		}
	})
}

func TestNewErrors(t *testing.T) {
	cfg := testConfig("tcp://127.0.0.1:1883")
	cfg.MinWorkers, cfg.MaxWorkers = 50, 10
	if _, err := New(cfg, nil, nil); !errors.Is(err, envconf.ErrInvalid) {
		t.Errorf("New(MIN>MAX) = %v, want ErrInvalid", err)
	}
	reg := prometheus.NewRegistry()
	if _, err := New(testConfig("tcp://127.0.0.1:1883"), nil, reg); err != nil {
		t.Fatal(err)
	}
	if _, err := New(testConfig("tcp://127.0.0.1:1883"), nil, reg); err == nil {
		t.Error("two engines on one registry: want a duplicate registration error")
	}
	// Any Registerer will do: a wrapped one labels every series.
	inner := prometheus.NewRegistry()
	if _, err := New(testConfig("tcp://127.0.0.1:1883"), nil, prometheus.WrapRegistererWith(prometheus.Labels{"pod": "a"}, inner)); err != nil {
		t.Fatal(err)
	}
	mf := gather(t, inner)["mqttrr_worker_workers"]
	if mf == nil || len(mf.GetMetric()) != 1 || len(mf.GetMetric()[0].GetLabel()) != 1 || mf.GetMetric()[0].GetLabel()[0].GetValue() != "a" {
		t.Errorf("wrapped registerer: mqttrr_worker_workers = %v", mf)
	}
}

func TestHandleDoesNotAllocate(t *testing.T) {
	e, err := New(testConfig("tcp://127.0.0.1:1883"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	payload := request(t, 5)
	if n := testing.AllocsPerRun(1000, func() {
		e.handle(0, &mqttconn.Message{Topic: "req/5", Payload: payload})
		it := <-e.queue
		e.release(it)
		payloads.put(it.buf)
	}); n != 0 {
		t.Errorf("handle allocates %v times per message", n)
	}
}

// TestDropReturnsBuffer: a message dropped on a full queue gives its buffer
// back to the free list, so dropping allocates nothing either.
func TestDropReturnsBuffer(t *testing.T) {
	cfg := testConfig("tcp://127.0.0.1:1883")
	cfg.QueueCap = 1
	e, err := New(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	payload := request(t, 5)
	e.handle(0, &mqttconn.Message{Topic: "req/5", Payload: payload}) // fills the queue
	bytes := e.queueBytes.Load()
	if n := testing.AllocsPerRun(1000, func() { e.handle(0, &mqttconn.Message{Topic: "req/5", Payload: payload}) }); n != 0 {
		t.Errorf("a drop allocates %v times", n)
	}
	if s := e.Stats(); s.DroppedFull == 0 || s.QueueDepth != 1 || s.QueueBytes != bytes {
		t.Errorf("after the drops: %+v (queue bytes want %d)", s, bytes)
	}
	checkIdentity(t, e.Stats())
}

// TestK8sAdapterRulesUseExportedMetrics: the prometheus-adapter rules behind
// the queue-aware HPA (k8s/overlays/queue-autoscaling) select series this
// engine exports, so renaming a metric here cannot silently starve the HPA.
func TestK8sAdapterRulesUseExportedMetrics(t *testing.T) {
	const rules = "../../../k8s/overlays/queue-autoscaling/prometheus-adapter-rules.yaml"
	b, err := os.ReadFile(rules)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if _, err := New(testConfig("tcp://127.0.0.1:1883"), nil, reg); err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for name := range gather(t, reg) {
		exported[name] = true
	}
	found := regexp.MustCompile(`seriesQuery: '([a-zA-Z_:][a-zA-Z0-9_:]*)\{`).FindAllSubmatch(b, -1)
	if len(found) == 0 {
		t.Fatalf("no seriesQuery in %s", rules)
	}
	for _, m := range found {
		if name := string(m[1]); !exported[name] {
			t.Errorf("%s selects %s, which the worker does not export", rules, name)
		}
	}
}

// TestObserve: the autoscaler's samples. The first one (Run sets its
// baseline) already sees the arrivals of its interval; the service time is
// the mean occupancy of the messages finished since the last sample, kept
// while none finish; the need follows Little's law.
func TestObserve(t *testing.T) {
	cfg := testConfig("tcp://127.0.0.1:1883")
	cfg.QueueCap = 1000
	e, err := New(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.demand.at = time.Now().Add(-time.Second) // as Run does, a second ago
	payload := request(t, 1)
	for range 100 {
		e.handle(0, &mqttconn.Message{Topic: "req/1", Payload: payload})
	}
	o := e.observe()
	if o.Arrivals < 50 || o.Arrivals > 100 || o.QueueLen != 100 || o.QueueBytes <= 0 || o.Oldest <= 0 || o.Service != 0 {
		t.Fatalf("first sample: %+v; want ~100 arrivals/s over its second, 100 queued, service unknown", o)
	}
	// Ten messages finished with 20 ms of occupancy each.
	for range 10 {
		it := <-e.queue
		e.release(it)
		payloads.put(it.buf)
		e.work[0].busyNs.Add(uint64(20 * time.Millisecond))
		e.work[0].processed.Add(1)
	}
	o = e.observe()
	if o.Service != 20*time.Millisecond || o.QueueLen != 90 {
		t.Errorf("second sample: service %v, queue %d; want 20ms, 90", o.Service, o.QueueLen)
	}
	o = e.observe() // nothing finished: the last known service time
	if o.Service != 20*time.Millisecond || o.Arrivals != 0 {
		t.Errorf("third sample: service %v, arrivals %v; want 20ms kept, 0", o.Service, o.Arrivals)
	}
	// 90 queued / SCALE_MAX_WAIT 1s × 20 ms / 0.8 = 2.25 → 3.
	if s := e.Stats(); s.NeedWorkers != 3 || s.ServiceSeconds != 0.02 || s.DemandWorkers != 0 {
		t.Errorf("stats of the last sample: need %d, service %v s, demand %v; want 3, 0.02, 0", s.NeedWorkers, s.ServiceSeconds, s.DemandWorkers)
	}
}

// capturingConn is an mqttconn.Conn that keeps the replies queued on it and,
// for each, the engine clock's last reading when it was queued.
type capturingConn struct {
	discardConn
	clock   *steppingClock
	replies []wire.Response
	at      []int64
}

func (c *capturingConn) QueueMessage(m *mqttconn.Message) error {
	var r wire.Response
	if err := wire.DecodeResponse(m.Payload, &r); err != nil {
		return err
	}
	c.replies = append(c.replies, r)
	c.at = append(c.at, c.clock.last())
	return nil
}

// steppingClock advances by step on every reading.
type steppingClock struct {
	step int64
	t    atomic.Int64
}

func (c *steppingClock) now() int64  { return c.t.Add(c.step) }
func (c *steppingClock) last() int64 { return c.t.Load() }

// TestStampsAreDisjoint: the queue wait and the processing time a reply
// carries are consecutive intervals of one clock — together exactly the time
// from the enqueue to the reply — so the requester never sees a worker claim
// more than the round trip. (They were read from two clocks, and the time
// between the readings counted in both: a worker descheduled there under load
// claimed hundreds of ms beyond the round trip, which the loadgen counts
// implausible.) The engine clock here steps 1 ms on every reading, so any
// reading between the two intervals would show.
func TestStampsAreDisjoint(t *testing.T) {
	for _, mode := range []string{config.ModeHealth, config.ModeSleep} {
		t.Run(mode, func(t *testing.T) {
			cfg := testConfig("tcp://127.0.0.1:1883")
			cfg.Mode, cfg.SleepMS = mode, 2
			e, err := New(cfg, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			clk := &steppingClock{step: int64(time.Millisecond)}
			e.clock = clk.now
			conn := &capturingConn{clock: clk}
			proc, err := process.New(e.procOpts, 1)
			if err != nil {
				t.Fatal(err)
			}
			w := &worker{e: e, conn: conn, proc: proc, st: &e.work[0], buf: make([]byte, 0, wire.ResponseSize)}
			const n = 5
			var enqueued []int64
			for i := range n {
				e.handle(0, &mqttconn.Message{Topic: "req/1", Payload: request(t, i)})
				enqueued = append(enqueued, clk.last())
			}
			for range n {
				it := <-e.queue
				w.take(it)
				w.handle(it)
			}
			if len(conn.replies) != n {
				t.Fatalf("%d replies, want %d", len(conn.replies), n)
			}
			for i, r := range conn.replies {
				span := time.Duration(conn.at[i] - enqueued[i]).Microseconds()
				claimed := int64(r.QueueUS) + int64(r.ProcessUS)
				if claimed != span || r.QueueUS == 0 || r.ProcessUS == 0 {
					t.Errorf("reply %d: queue %d µs + processing %d µs = %d µs, want exactly the %d µs from enqueue to reply",
						i, r.QueueUS, r.ProcessUS, claimed, span)
				}
			}
		})
	}
}
