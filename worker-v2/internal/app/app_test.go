package app

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/goleak"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/broker"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/cliutil"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/envconf"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/syncbuf"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/wire"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/config"
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

// load sets the environment and loads the configuration as main does.
func load(t *testing.T, env map[string]string) *config.Config {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	cfg, err := config.Load()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// refusedBroker returns a broker URL nobody listens on.
func refusedBroker(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "tcp://" + addr
}

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
func start(t *testing.T, cfg *config.Config) *running {
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
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("not listening after 30s")
	}
	t.Cleanup(cancel)
	return r
}

// wait returns what Run returned.
func (r *running) wait(t *testing.T) result {
	t.Helper()
	select {
	case res := <-r.done:
		return res
	case <-time.After(60 * time.Second):
		t.Fatal("Run did not return 60s after the cancel")
	}
	return result{}
}

var httpClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func get(url string) (int, string, error) {
	resp, err := httpClient.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// mustGet is get that fails the test on a transport error.
func mustGet(t *testing.T, url string) (int, string) {
	t.Helper()
	code, body, err := get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return code, body
}

// waitFor polls until cond holds; the deadline only bounds a broken run.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stats is the part of /stats the tests read.
type stats struct {
	Received      uint64 `json:"received"`
	Processed     uint64 `json:"processed"`
	Abandoned     uint64 `json:"abandoned"`
	ConnectionsUp int    `json:"connections_up"`
	Connections   int    `json:"connections"`
	Workers       int    `json:"workers"`
	Mode          string `json:"mode"`
	Draining      bool   `json:"draining"`
}

func getStats(t *testing.T, base string) stats {
	t.Helper()
	code, body := mustGet(t, base+"/stats")
	var s stats
	if err := json.Unmarshal([]byte(body), &s); code != http.StatusOK || err != nil {
		t.Fatalf("/stats: %d %v %s", code, err, body)
	}
	return s
}

// scrape reads /metrics and parses the text exposition.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := mustGet(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return mfs
}

// sample returns the value of the one series of family name whose labels
// include the name/value pairs given (a counter or a gauge).
func sample(t *testing.T, mfs map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	var found []*dto.Metric
next:
	for _, m := range mfs[name].GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			ok := false
			for _, lp := range m.GetLabel() {
				ok = ok || lp.GetName() == labels[i] && lp.GetValue() == labels[i+1]
			}
			if !ok {
				continue next
			}
		}
		found = append(found, m)
	}
	if len(found) != 1 {
		t.Fatalf("%s%v: %d series, want 1", name, labels, len(found))
	}
	if c := found[0].GetCounter(); c != nil {
		return c.GetValue()
	}
	return found[0].GetGauge().GetValue()
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

// publish sends n requests through a fresh client.
func publish(t *testing.T, brokerURL string, first, n int) {
	t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(brokerURL).
		SetClientID("app-test-requester-" + strconv.Itoa(first)).SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("requester connect: %v", tok.Error())
	}
	defer c.Disconnect(100)
	for i := first; i < first+n; i++ {
		req, err := wire.AppendRequest(nil, &wire.Request{RunID: 7, ClientID: uint32(i), Seq: uint32(i),
			Instance: []byte("t"), ReplyTopic: []byte("resp/t/0")}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if tok := c.Publish("req/"+strconv.Itoa(i%16), 0, false, req); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
}

// checkLeaks fails the test when goroutines it started outlive it. The
// deadline is generous: paho ends a client that never connected in the
// background, up to its retry interval after Disconnect returned.
func checkLeaks(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		deadline := time.Now().Add(30 * time.Second)
		for goleak.Find(ignore) != nil && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if err := goleak.Find(ignore); err != nil {
			t.Error(err)
		}
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
		if code, body := mustGet(t, r.base+c.path); code != http.StatusServiceUnavailable || strings.TrimSpace(body) != c.body {
			t.Errorf("%s while connecting: %d %q, want 503 %q", c.path, code, body, c.body)
		}
	}
	if s := getStats(t, r.base); s.ConnectionsUp != 0 || s.Connections != 1 || s.Draining {
		t.Errorf("/stats while connecting: %+v", s)
	}
	mfs := scrape(t, r.base)
	checkBuildInfo(t, mfs)
	if got := sample(t, mfs, "mqttrr_worker_phase", "phase", "connecting"); got != 1 {
		t.Errorf("phase connecting = %v, want 1", got)
	}
	r.cancel()
	if res := r.wait(t); res.code != cliutil.ExitOK || res.err != nil {
		t.Errorf("Run cancelled while connecting: %d %v, want 0 nil", res.code, res.err)
	}
	if _, _, err := get(r.base + "/health"); err == nil {
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
	b, err := broker.Start(broker.Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// One worker at 50 ms a request and no drops: a backlog of 60 keeps the
	// drain busy for about 3 s, long enough to watch it over HTTP.
	cfg := load(t, map[string]string{
		"MQTT_BROKER": b.URL(), "HTTP_ADDR": "127.0.0.1:0", "CONNECTIONS": "2",
		"MIN_WORKERS": "1", "MAX_WORKERS": "1", "MODE": "sleep", "SLEEP_MS": "50", "DROP_ON_FULL": "false",
		"SHUTDOWN_TIMEOUT": "60s", "CLIENT_ID_PREFIX": "app-test",
	})
	r := start(t, cfg)
	waitFor(t, "/ready 200", func() bool { code, _, err := get(r.base + "/ready"); return err == nil && code == http.StatusOK })
	if code, body := mustGet(t, r.base+"/health"); code != http.StatusOK || strings.TrimSpace(body) != "ok" {
		t.Errorf("/health when ready: %d %q", code, body)
	}
	if s := getStats(t, r.base); s.ConnectionsUp != 2 || s.Connections != 2 || s.Workers != 1 || s.Mode != "sleep" || s.Draining {
		t.Errorf("/stats when ready: %+v", s)
	}

	const first = 10
	publish(t, b.URL(), 0, first)
	waitFor(t, "the first requests processed", func() bool { return getStats(t, r.base).Processed == first })
	mfs := scrape(t, r.base)
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
		if got := sample(t, mfs, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}

	const backlog = 60
	publish(t, b.URL(), first, backlog)
	waitFor(t, "the backlog received", func() bool { return getStats(t, r.base).Received == first+backlog })
	r.cancel()
	waitFor(t, "/ready 503 draining", func() bool {
		select {
		case res := <-r.done:
			t.Fatalf("Run returned (%d %v) before /ready was seen draining", res.code, res.err)
		default:
		}
		code, body, err := get(r.base + "/ready")
		return err == nil && code == http.StatusServiceUnavailable && strings.TrimSpace(body) == "draining"
	})
	if code, body := mustGet(t, r.base+"/health"); code != http.StatusServiceUnavailable || strings.TrimSpace(body) != "draining" {
		t.Errorf("/health while draining: %d %q, want 503 \"draining\"", code, body)
	}
	if s := getStats(t, r.base); !s.Draining {
		t.Errorf("/stats while draining: %+v", s)
	}
	if got := sample(t, scrape(t, r.base), "mqttrr_worker_phase", "phase", "draining"); got != 1 {
		t.Errorf("phase draining = %v, want 1", got)
	}
	// The drain processes the backlog; the endpoints report it as it goes.
	waitFor(t, "/stats to count the drained backlog", func() bool {
		code, body, err := get(r.base + "/stats")
		if err != nil || code != http.StatusOK {
			return true // the drain ended and Run stopped serving
		}
		var s stats
		return json.Unmarshal([]byte(body), &s) == nil && s.Processed == first+backlog
	})
	if res := r.wait(t); res.code != cliutil.ExitOK || res.err != nil {
		t.Errorf("Run after the drain: %d %v, want 0 nil", res.code, res.err)
	}
	if _, _, err := get(r.base + "/health"); err == nil {
		t.Error("endpoints still served after Run returned")
	}
}

// TestInvalidConfigExits2: a configuration the engine refuses exits 2 with
// the problem named, before anything listens or connects.
func TestInvalidConfigExits2(t *testing.T) {
	cases := []struct {
		name   string
		modify func(*config.Config)
		want   []string
	}{
		{"min above max", func(c *config.Config) { c.MinWorkers, c.MaxWorkers = 50, 10 }, []string{"MIN_WORKERS=50", "MAX_WORKERS=10"}},
		{"unknown mode", func(c *config.Config) { c.Mode = "turbo" }, []string{"MODE=turbo"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			cfg := config.Defaults()
			cfg.Broker = "tcp://127.0.0.1:1"
			cfg.HTTPAddr = "127.0.0.1:0"
			tc.modify(cfg)
			listened := false
			code, err := Run(context.Background(), cfg, testLogger(t), io.Discard, io.Discard, Listening(func(string) { listened = true }))
			if code != cliutil.ExitConfig || !errors.Is(err, envconf.ErrInvalid) {
				t.Fatalf("Run: %d %v, want %d and an error wrapping envconf.ErrInvalid", code, err, cliutil.ExitConfig)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
			if listened {
				t.Error("listened with an invalid configuration")
			}
		})
	}
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

// TestAdaptProcs: GOMAXPROCS follows the load unless the operator fixed it
// or the workers are CPU-bound.
func TestAdaptProcs(t *testing.T) {
	cfg := config.Defaults()
	t.Setenv("GOMAXPROCS", "2") // restored after the test
	if adaptProcs(cfg) {
		t.Error("GOMAXPROCS set: must stay fixed")
	}
	if err := os.Unsetenv("GOMAXPROCS"); err != nil {
		t.Fatal(err)
	}
	if got, want := adaptProcs(cfg), runtime.GOMAXPROCS(0) > 1; got != want {
		t.Errorf("MODE=health, GOMAXPROCS unset, %d processors: adapt %v, want %v", runtime.GOMAXPROCS(0), got, want)
	}
	cfg.Mode = config.ModeCPU
	if adaptProcs(cfg) {
		t.Error("MODE=cpu: CPU-bound workers need every core, must stay fixed")
	}
}
