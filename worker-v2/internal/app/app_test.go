package app

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/brokertest"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/cliutil"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/syncbuf"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/config"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/engine"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/workertest"
)

// testLogger logs into a buffer that is printed when the test fails.
func testLogger(t *testing.T) *slog.Logger {
	var buf syncbuf.Buffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("worker log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// load sets the environment and loads, validates and resolves the
// configuration as main does.
func load(t *testing.T, env map[string]string) *config.Resolved {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	c, err := config.Load()
	if err != nil {
		t.Fatal(err)
	}
	return workertest.Resolve(t, c)
}

// refusedBroker returns a broker URL nobody listens on.
func refusedBroker(t *testing.T) string { return "tcp://" + brokertest.FreeAddr(t) }

type result struct {
	code int
	err  error
}

// running is an app.Run in a goroutine with the base URL of its endpoints.
type running struct {
	base   string
	cancel context.CancelFunc
	done   chan result
}

// start runs Run for cfg and returns once it listens.
func start(t *testing.T, cfg *config.Resolved) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan result, 1)}
	addr := make(chan string, 1)
	go func() {
		code, err := Run(ctx, cfg, testLogger(t), io.Discard, io.Discard, Listening(func(a string) { addr <- a }))
		r.done <- result{code, err}
	}()
	select {
	case a := <-addr:
		r.base = "http://" + a
	case res := <-r.done:
		t.Fatalf("Run returned before listening: %d %v", res.code, res.err)
	}
	t.Cleanup(cancel)
	return r
}

// mustGet fetches url, failing the test on a transport error.
func mustGet(t *testing.T, url string) (int, string) {
	t.Helper()
	code, body, err := brokertest.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return code, strings.TrimSpace(body)
}

// stats reads /stats and checks that /debug/vars serves the same document
// under "worker".
func stats(t *testing.T, base string) engine.Stats {
	t.Helper()
	var s engine.Stats
	brokertest.GetJSON(t, base+"/stats", &s)
	var vars struct {
		Worker *engine.Stats `json:"worker"`
	}
	brokertest.GetJSON(t, base+"/debug/vars", &vars)
	if vars.Worker == nil || vars.Worker.Mode != s.Mode || vars.Worker.Connections != s.Connections {
		t.Errorf("/debug/vars %+v does not hold the /stats document under \"worker\"", vars.Worker)
	}
	return s
}

// checkBuildInfo: mqttrr_worker_build_info is exported once, value 1, with
// its labels; the Go and process collectors are registered.
func checkBuildInfo(t *testing.T, mfs map[string]*dto.MetricFamily) {
	t.Helper()
	bi := mfs["mqttrr_worker_build_info"]
	if bi == nil || len(bi.GetMetric()) != 1 || bi.GetMetric()[0].GetGauge().GetValue() != 1 {
		t.Fatalf("mqttrr_worker_build_info: %v, want one series of value 1", bi)
	}
	labels := map[string]bool{}
	for _, lp := range bi.GetMetric()[0].GetLabel() {
		labels[lp.GetName()] = lp.GetValue() != ""
	}
	if !labels["version"] || !labels["revision"] || !labels["go_version"] {
		t.Errorf("build info labels %v", bi.GetMetric()[0].GetLabel())
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if mfs[name] == nil {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

// checkLeaks fails the test when goroutines it started outlive it. It waits
// for them to end: paho ends a client that never connected in the
// background, up to its retry interval after Disconnect returned.
func checkLeaks(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	var leak error
	t.Cleanup(func() {
		if leak != nil {
			t.Log(leak)
		}
	})
	t.Cleanup(func() {
		brokertest.WaitFor(t, "the test's goroutines to end", func() bool {
			leak = goleak.Find(ignore)
			return leak == nil
		})
	})
}

// TestEndpointsWhileConnecting: the endpoints are up before the engine has
// connected: /ready 503 "starting", /health 503 "connecting", phase
// connecting and build info on /metrics. A cancel while connecting is a
// clean shutdown (exit 0), after which nothing is served.
func TestEndpointsWhileConnecting(t *testing.T) {
	checkLeaks(t)
	cfg := load(t, map[string]string{"MQTT_BROKER": refusedBroker(t), "HTTP_ADDR": "127.0.0.1:0", "CONNECTIONS": "1"})
	r := start(t, cfg)
	for _, c := range []struct{ path, body string }{{"/ready", "starting"}, {"/health", "connecting"}} {
		if code, body := mustGet(t, r.base+c.path); code != http.StatusServiceUnavailable || body != c.body {
			t.Errorf("%s while connecting: %d %q, want 503 %q", c.path, code, body, c.body)
		}
	}
	if s := stats(t, r.base); s.ConnectionsUp != 0 || s.Connections != 1 || s.Draining {
		t.Errorf("/stats while connecting: %+v", s)
	}
	mfs := brokertest.Scrape(t, r.base+"/metrics")
	checkBuildInfo(t, mfs)
	if got := brokertest.Sample(t, mfs, "mqttrr_worker_phase", "phase", "connecting"); got != 1 {
		t.Errorf("phase connecting = %v, want 1", got)
	}
	r.cancel()
	if res := <-r.done; res.code != cliutil.ExitOK || res.err != nil {
		t.Errorf("Run cancelled while connecting: %d %v, want 0 nil", res.code, res.err)
	}
	if _, _, err := brokertest.Get(r.base + "/health"); err == nil {
		t.Error("endpoints still served after Run returned")
	}
}

// TestEndpointsRunAndDrain runs the worker against the embedded broker:
// /ready and /health turn 200, /stats and /metrics count the processed
// requests; after the cancel the endpoints stay up through the drain,
// answering 503 "draining", until every queued request is processed; then
// Run returns 0 and nothing is served.
func TestEndpointsRunAndDrain(t *testing.T) {
	checkLeaks(t)
	b := brokertest.Start(t)
	// One worker at 50 ms a request and no drops: a backlog of 60 keeps the
	// drain busy for about 3 s, long enough to watch it over HTTP.
	cfg := load(t, map[string]string{
		"MQTT_BROKER": b.URL(), "HTTP_ADDR": "127.0.0.1:0", "CONNECTIONS": "2",
		"MIN_WORKERS": "1", "MAX_WORKERS": "1", "MODE": "sleep", "SLEEP_MS": "50", "DROP_ON_FULL": "false",
		"SHUTDOWN_TIMEOUT": "60s", "CLIENT_ID_PREFIX": workertest.ClientID("app-test"),
	})
	r := start(t, cfg)
	brokertest.WaitFor(t, "/ready 200", func() bool {
		code, _, err := brokertest.Get(r.base + "/ready")
		return err == nil && code == http.StatusOK
	})
	if code, body := mustGet(t, r.base+"/health"); code != http.StatusOK || body != "ok" {
		t.Errorf("/health when ready: %d %q", code, body)
	}
	if s := stats(t, r.base); s.ConnectionsUp != 2 || s.Connections != 2 || s.Workers != 1 || s.Mode != "sleep" || s.Draining {
		t.Errorf("/stats when ready: %+v", s)
	}

	req := workertest.NewRequester(t, b.URL())
	const first = 10
	req.SendRequests(t, 0, first)
	brokertest.WaitFor(t, "the first requests processed", func() bool { return stats(t, r.base).Processed == first })
	mfs := brokertest.Scrape(t, r.base+"/metrics")
	checkBuildInfo(t, mfs)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"mqttrr_worker_messages_received_total", nil, first},
		{"mqttrr_worker_messages_total", []string{"outcome", "processed"}, first},
		{"mqttrr_worker_messages_total", []string{"outcome", "dropped_full"}, 0},
		{"mqttrr_worker_workers", nil, 1},
		{"mqttrr_worker_connections_up", nil, 2},
		{"mqttrr_worker_phase", []string{"phase", "steady"}, 1},
	} {
		if got := brokertest.Sample(t, mfs, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}

	const backlog = 60
	req.SendRequests(t, first, backlog)
	brokertest.WaitFor(t, "the backlog received", func() bool { return stats(t, r.base).Received == first+backlog })
	r.cancel()
	brokertest.WaitFor(t, "/ready 503 draining", func() bool {
		select {
		case res := <-r.done:
			t.Fatalf("Run returned (%d %v) before /ready was seen draining", res.code, res.err)
		default:
		}
		code, body, err := brokertest.Get(r.base + "/ready")
		return err == nil && code == http.StatusServiceUnavailable && strings.TrimSpace(body) == "draining"
	})
	if code, body := mustGet(t, r.base+"/health"); code != http.StatusServiceUnavailable || body != "draining" {
		t.Errorf("/health while draining: %d %q, want 503 \"draining\"", code, body)
	}
	if s := stats(t, r.base); !s.Draining {
		t.Errorf("/stats while draining: %+v", s)
	}
	if got := brokertest.Sample(t, brokertest.Scrape(t, r.base+"/metrics"), "mqttrr_worker_phase", "phase", "draining"); got != 1 {
		t.Errorf("phase draining = %v, want 1", got)
	}
	// The drain processes the backlog; the endpoints report it as it goes.
	brokertest.WaitFor(t, "/stats to count the drained backlog", func() bool {
		var s engine.Stats
		if err := brokertest.FetchJSON(r.base+"/stats", &s); err != nil {
			return true // the drain ended and Run stopped serving
		}
		return s.Processed == first+backlog
	})
	if res := <-r.done; res.code != cliutil.ExitOK || res.err != nil {
		t.Errorf("Run after the drain: %d %v, want 0 nil", res.code, res.err)
	}
	if _, _, err := brokertest.Get(r.base + "/health"); err == nil {
		t.Error("endpoints still served after Run returned")
	}
	brokertest.WaitFor(t, "every reply", func() bool { return req.Count() == first+backlog })
	req.CheckAnswered(t, first+backlog)
}

// TestRoundTrip is the test as requester through the whole binary: every
// valid request gets exactly one response echoing its fields, garbage
// (including well-formed requests whose reply topic is not publishable) is
// counted as malformed, and /stats, /metrics, /health and /ready agree.
func TestRoundTrip(t *testing.T) {
	checkLeaks(t)
	b := brokertest.Start(t)
	req := workertest.NewRequester(t, b.URL())
	c := workertest.Config(b.URL())
	c.HTTPAddr = "127.0.0.1:0"
	cfg := workertest.Resolve(t, c)
	r := start(t, cfg)
	brokertest.WaitFor(t, "/ready 200", func() bool {
		code, _, err := brokertest.Get(r.base + "/ready")
		return err == nil && code == http.StatusOK
	})

	const n = 300
	req.SendRequests(t, 0, n)
	request1 := workertest.Request(t, 1, 0)
	garbage := workertest.Garbage(t, request1)
	for _, g := range garbage {
		req.Publish(t, "req/3", g)
	}
	brokertest.WaitFor(t, "all responses and malformed counts", func() bool {
		s := stats(t, r.base)
		return req.Count() >= n && s.Malformed == uint64(len(garbage)) && s.InFlight == 0
	})

	s := stats(t, r.base)
	if s.Received != n+uint64(len(garbage)) || s.Processed != n || s.DroppedFull != 0 || s.ReplyFailed != 0 || s.Received != s.Accounted() {
		t.Errorf("stats %+v", s)
	}
	if s.ConnectionsUp != 2 || s.Connections != 2 || s.Workers != c.MinWorkers || s.QueueCap != c.QueueCap ||
		s.Mode != "health" || s.Draining || s.MinWorkers != 2 || s.MaxWorkers != 4 || s.ScalingEvents == nil {
		t.Errorf("stats %+v", s)
	}
	var raw map[string]any
	brokertest.GetJSON(t, r.base+"/stats", &raw)
	for _, k := range []string{"workers", "min_workers", "max_workers", "queue_depth", "queue_cap", "received", "processed",
		"dropped_full", "malformed", "reply_failed", "rate_rps", "connections_up", "connections", "mode", "draining", "scaling_events",
		"queue_bytes", "queue_max_bytes", "queue_oldest_seconds", "blocked", "arrival_rps", "service_seconds", "demand_workers",
		"need_workers", "utilization"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("stats JSON lacks %q", k)
		}
	}
	// rate_rps counts from one-second samples: wait for the first one.
	brokertest.WaitFor(t, "rate_rps above 0", func() bool { return stats(t, r.base).RateRPS > 0 })

	mfs := brokertest.Scrape(t, r.base+"/metrics")
	for _, m := range []struct {
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
		{"mqttrr_worker_queue_capacity", nil, float64(c.QueueCap)},
		{"mqttrr_worker_queue_bytes", nil, 0},
		{"mqttrr_worker_queue_capacity_bytes", nil, float64(c.QueueMaxBytes)},
		{"mqttrr_worker_queue_oldest_seconds", nil, 0},
		{"mqttrr_worker_blocked", nil, 0},
		{"mqttrr_worker_max_workers", nil, float64(c.MaxWorkers)},
		{"mqttrr_worker_workers", nil, float64(c.MinWorkers)},
		{"mqttrr_worker_connections_up", nil, 2},
		{"mqttrr_worker_scaling_events_total", []string{"direction", "up"}, 0},
	} {
		if got := brokertest.Sample(t, mfs, m.name, m.labels...); got != m.want {
			t.Errorf("%s%v = %v, want %v", m.name, m.labels, got, m.want)
		}
	}
	for _, name := range []string{"mqttrr_worker_queue_wait_seconds", "mqttrr_worker_processing_seconds"} {
		if ms := mfs[name].GetMetric(); len(ms) != 1 || ms[0].GetHistogram().GetSampleCount() != n {
			t.Errorf("%s: %v, want one histogram counting %d", name, ms, n)
		}
	}
	for _, name := range []string{"mqttrr_worker_demand_workers", "mqttrr_worker_utilization_ratio"} {
		if got := brokertest.Sample(t, mfs, name); got < 0 || got > 1 {
			t.Errorf("%s = %v at light load, want 0..1", name, got)
		}
	}
	for _, path := range []string{"/health", "/ready"} {
		if code, body := mustGet(t, r.base+path); code != http.StatusOK || body != "ok" {
			t.Errorf("%s = %d %q, want 200 ok", path, code, body)
		}
	}

	r.cancel()
	if res := <-r.done; res.code != cliutil.ExitOK || res.err != nil {
		t.Fatalf("Run: %d %v", res.code, res.err)
	}
	// Run has returned: the worker has written every reply it will; a late
	// duplicate would be in by the barrier.
	req.Barrier(t)
	if got := req.Count(); got != n {
		t.Errorf("%d responses in total, want %d", got, n)
	}
	req.CheckAnswered(t, n)
}

// TestListenErrorExits1: an HTTP_ADDR that is taken is a runtime error
// naming the address.
func TestListenErrorExits1(t *testing.T) {
	checkLeaks(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg := load(t, map[string]string{"MQTT_BROKER": refusedBroker(t), "HTTP_ADDR": l.Addr().String()})
	code, err := Run(context.Background(), cfg, testLogger(t), io.Discard, io.Discard)
	if code != cliutil.ExitError || err == nil || !strings.Contains(err.Error(), l.Addr().String()) {
		t.Errorf("Run with a taken HTTP_ADDR: %d %v, want %d and an error naming the address", code, err, cliutil.ExitError)
	}
}

// TestHealthAndReadiness: what /health and /ready answer through an
// engine's life, over an in-memory transport.
func TestHealthAndReadiness(t *testing.T) {
	c := workertest.Config("tcp://in-memory:1883")
	c.KeepAlive = 30 * time.Second
	cfg := workertest.Resolve(t, c)
	d := new(workertest.Dialer)
	eng := engine.New(cfg, d.Dial, testLogger(t))
	h, ready := health(eng, cfg.KeepAlive), readiness(eng)
	check := func(when string, f func() (bool, string), ok bool, why string) {
		t.Helper()
		if gotOK, gotWhy := f(); gotOK != ok || gotWhy != why {
			t.Errorf("%s: %v %q, want %v %q", when, gotOK, gotWhy, ok, why)
		}
	}
	check("health before Run", h, false, "connecting")
	check("readiness before Run", ready, false, "starting")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	<-eng.Ready()
	check("health when ready", h, true, "")
	check("readiness when ready", ready, true, "")
	mem := d.Transport()
	mem.C(1).SetDown(true)
	check("health with a connection down", h, false, "1 of 2 connections up")
	mem.C(1).SetDown(false)
	mem.C(0).SetSuspect(true)
	check("health with a suspect connection", h, false, "1 of 2 connections suspect: wrote and heard nothing back for KEEPALIVE=30s")
	check("readiness with a suspect connection", ready, true, "")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	check("health after Run", h, false, "draining")
	check("readiness after Run", ready, false, "draining")
}
