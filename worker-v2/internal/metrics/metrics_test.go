package metrics

import (
	"context"
	"flag"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/brokertest"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/latency"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/config"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/engine"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/workertest"
)

var update = flag.Bool("update", false, "rewrite testdata/exported-metrics.txt")

// run is an engine over an in-memory transport, its metrics registered on
// reg.
type run struct {
	*engine.Engine
	mem    *workertest.Transport
	reg    *prometheus.Registry
	cancel context.CancelFunc
	errc   chan error
}

func startRun(t *testing.T, c *config.Config) *run {
	t.Helper()
	d := new(workertest.Dialer)
	e := engine.New(workertest.Resolve(t, c), d.Dial, workertest.Logger(t))
	r := &run{Engine: e, reg: prometheus.NewRegistry(), errc: make(chan error, 1)}
	if err := New(e).Register(r.reg); err != nil {
		t.Fatal(err)
	}
	var ctx context.Context
	ctx, r.cancel = context.WithCancel(context.Background())
	go func() { r.errc <- e.Run(ctx) }()
	<-e.Ready()
	r.mem = d.Transport()
	return r
}

func (r *run) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	if err := <-r.errc; err != nil {
		t.Errorf("Run = %v", err)
	}
}

// gather collects g by family name.
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

// histogram returns the one series of histogram family name.
func histogram(t *testing.T, mfs map[string]*dto.MetricFamily, name string) *dto.Histogram {
	t.Helper()
	ms := mfs[name].GetMetric()
	if len(ms) != 1 || ms[0].GetHistogram() == nil {
		t.Fatalf("%s: %v, want one histogram", name, ms)
	}
	return ms[0].GetHistogram()
}

func testConfig() *config.Config { return workertest.Config("tcp://in-memory:1883") }

// TestMetricsReadTheEngine: after requests and garbage, every metric says
// what the engine's snapshot says; the histograms count every processed
// request and carry classic and native buckets.
func TestMetricsReadTheEngine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := testConfig()
		r := startRun(t, c)
		const n, garbage = 300, 4
		for i := range n {
			r.mem.Deliver(i%2, workertest.Message(t, i))
		}
		for range garbage {
			r.mem.Deliver(1, &mqttconn.Message{Topic: "req/3", Payload: []byte("hello, worker")})
		}
		time.Sleep(time.Second)
		synctest.Wait()
		mfs := gather(t, r.reg)
		for _, s := range []struct {
			name   string
			labels []string
			want   float64
		}{
			{"mqttrr_worker_messages_received_total", nil, n + garbage},
			{"mqttrr_worker_messages_total", []string{"outcome", "processed"}, n},
			{"mqttrr_worker_messages_total", []string{"outcome", "malformed"}, garbage},
			{"mqttrr_worker_messages_total", []string{"outcome", "dropped_full"}, 0},
			{"mqttrr_worker_messages_total", []string{"outcome", "reply_failed"}, 0},
			{"mqttrr_worker_messages_total", []string{"outcome", "abandoned"}, 0},
			{"mqttrr_worker_queue_depth", nil, 0},
			{"mqttrr_worker_queue_capacity", nil, float64(c.QueueCap)},
			{"mqttrr_worker_queue_bytes", nil, 0},
			{"mqttrr_worker_queue_capacity_bytes", nil, float64(c.QueueMaxBytes)},
			{"mqttrr_worker_queue_oldest_seconds", nil, 0},
			{"mqttrr_worker_blocked", nil, 0},
			{"mqttrr_worker_in_flight", nil, 0},
			{"mqttrr_worker_max_workers", nil, float64(c.MaxWorkers)},
			{"mqttrr_worker_min_workers", nil, float64(c.MinWorkers)},
			{"mqttrr_worker_workers", nil, float64(c.MinWorkers)},
			{"mqttrr_worker_connections", nil, 2},
			{"mqttrr_worker_connections_up", nil, 2},
			{"mqttrr_worker_connections_suspect", nil, 0},
			{"mqttrr_worker_connects_total", nil, 2},
			{"mqttrr_worker_connection_losses_total", nil, 0},
			{"mqttrr_worker_scaling_events_total", []string{"direction", "up"}, 0},
			{"mqttrr_worker_scaling_events_total", []string{"direction", "down"}, 0},
			{"mqttrr_worker_phase", []string{"phase", "steady"}, 1},
			{"mqttrr_worker_phase", []string{"phase", "connecting"}, 0},
		} {
			if got := brokertest.Sample(t, mfs, s.name, s.labels...); got != s.want {
				t.Errorf("%s%v = %v, want %v", s.name, s.labels, got, s.want)
			}
		}
		for _, name := range []string{"mqttrr_worker_demand_workers", "mqttrr_worker_utilization_ratio"} {
			if got := brokertest.Sample(t, mfs, name); got < 0 || got > 1 {
				t.Errorf("%s = %v at light load, want 0..1", name, got)
			}
		}
		for _, name := range []string{"mqttrr_worker_queue_wait_seconds", "mqttrr_worker_processing_seconds"} {
			h := histogram(t, mfs, name)
			if h.GetSampleCount() != n {
				t.Errorf("%s counts %d, want %d", name, h.GetSampleCount(), n)
			}
			if len(h.GetBucket()) != len(DurationBuckets) || h.GetBucket()[len(DurationBuckets)-1].GetCumulativeCount() != n {
				t.Errorf("%s: %d classic buckets (want %d), the last counting %d", name, len(h.GetBucket()), len(DurationBuckets), h.GetBucket()[len(h.GetBucket())-1].GetCumulativeCount())
			}
			if h.GetSchema() != latency.NativeSchema || len(h.GetPositiveSpan()) == 0 {
				t.Errorf("%s: native schema %d with %d spans, want %d and some", name, h.GetSchema(), len(h.GetPositiveSpan()), latency.NativeSchema)
			}
		}
		r.stop(t)
		mfs = gather(t, r.reg)
		if brokertest.Sample(t, mfs, "mqttrr_worker_phase", "phase", "finished") != 1 || brokertest.Sample(t, mfs, "mqttrr_worker_connection_losses_total") != 0 {
			t.Error("after Run: want phase finished, and closing is no connection loss")
		}
	})
}

// TestUnsentRepliesAreReplyFailed: replies that entered the connection's
// write buffer but were discarded unwritten when the connection failed
// (mqttconn's OnUnsent) count as reply_failed, not processed. The connection
// stalls until its write buffer refuses replies, then is reset: whatever was
// buffered is reported unsent. Every request ends processed or reply_failed,
// exactly; the Prometheus counter of processed never goes down.
func TestUnsentRepliesAreReplyFailed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := testConfig()
		c.Connections = 1
		c.MinWorkers, c.MaxWorkers = 1, 1
		r := startRun(t, c)
		conn := r.mem.C(0)
		r.mem.Deliver(0, workertest.Message(t, 0))
		synctest.Wait()
		conn.Stall(100)
		const sent = 1000
		for i := 1; i < sent; i++ {
			r.mem.Deliver(0, workertest.Message(t, i))
		}
		synctest.Wait()
		before := r.Stats()
		if before.ReplyFailed == 0 || before.Processed+before.ReplyFailed != sent {
			t.Fatalf("stalled: processed %d, reply_failed %d; want some failed, %d in all", before.Processed, before.ReplyFailed, sent)
		}
		high := brokertest.Sample(t, gather(t, r.reg), "mqttrr_worker_messages_total", "outcome", "processed")
		conn.Reset()
		s := r.Stats()
		const moved = 100
		t.Logf("sent %d; before the reset: processed %d, reply_failed %d; after: processed %d, reply_failed %d",
			sent, before.Processed, before.ReplyFailed, s.Processed, s.ReplyFailed)
		if s.Processed+s.ReplyFailed != sent || s.Received != sent {
			t.Errorf("received %d, processed %d + reply_failed %d, want %d each request once", s.Received, s.Processed, s.ReplyFailed, sent)
		}
		if s.Processed != before.Processed-moved || s.ReplyFailed != before.ReplyFailed+moved {
			t.Errorf("the %d unsent replies did not move from processed to reply_failed", moved)
		}
		if got := len(conn.Written()); uint64(got) != s.Processed {
			t.Errorf("%d replies written, %d processed", got, s.Processed)
		}
		if s.Received != s.Accounted() {
			t.Errorf("received %d, accounted %d", s.Received, s.Accounted())
		}
		// The counter holds the highest value it exported (before the reset)
		// until processed passes it again.
		mfs := gather(t, r.reg)
		if got := brokertest.Sample(t, mfs, "mqttrr_worker_messages_total", "outcome", "processed"); high != float64(before.Processed) || got != high {
			t.Errorf("processed_total %v, want its high-water mark %v = %d (stats now %d)", got, high, before.Processed, s.Processed)
		}
		if got := brokertest.Sample(t, mfs, "mqttrr_worker_messages_total", "outcome", "reply_failed"); got != float64(s.ReplyFailed) {
			t.Errorf("reply_failed_total %v, stats %d", got, s.ReplyFailed)
		}
		r.stop(t)
	})
}

func TestHighest(t *testing.T) {
	var m Metrics
	for _, c := range []struct{ set, want uint64 }{{5, 5}, {3, 5}, {7, 7}, {6, 7}, {9, 9}} {
		if got := m.highest(c.set); got != c.want {
			t.Errorf("value %d: got %d, want %d", c.set, got, c.want)
		}
	}
}

// TestRegister: one engine's metrics register once on a registry; any
// Registerer will do: a wrapped one labels every series.
func TestRegister(t *testing.T) {
	e := engine.New(workertest.Resolve(t, testConfig()), nil, nil)
	reg := prometheus.NewRegistry()
	if err := New(e).Register(reg); err != nil {
		t.Fatal(err)
	}
	if err := New(e).Register(reg); err == nil {
		t.Error("registered twice on one registry: want a duplicate registration error")
	}
	inner := prometheus.NewRegistry()
	if err := New(e).Register(prometheus.WrapRegistererWith(prometheus.Labels{"pod": "a"}, inner)); err != nil {
		t.Fatal(err)
	}
	mf := gather(t, inner)["mqttrr_worker_workers"]
	if mf == nil || len(mf.GetMetric()) != 1 || len(mf.GetMetric()[0].GetLabel()) != 1 || mf.GetMetric()[0].GetLabel()[0].GetValue() != "a" {
		t.Errorf("wrapped registerer: mqttrr_worker_workers = %v", mf)
	}
	if got := brokertest.Sample(t, gather(t, reg), "mqttrr_worker_phase", "phase", "connecting"); got != 1 {
		t.Errorf("phase connecting = %v before Run, want 1", got)
	}
}

// TestExportedNames: the metric families the worker exports are those
// listed in testdata/exported-metrics.txt, which k8s/kubecheck's tests check
// the prometheus-adapter rules of the queue-aware HPA against (so renaming a
// metric here cannot silently starve the HPA). Run with -update to rewrite
// the list after a deliberate change.
func TestExportedNames(t *testing.T) {
	const file = "testdata/exported-metrics.txt"
	reg := prometheus.NewRegistry()
	if err := New(engine.New(workertest.Resolve(t, testConfig()), nil, nil)).Register(reg); err != nil {
		t.Fatal(err)
	}
	var names []string
	for name := range gather(t, reg) {
		names = append(names, name)
	}
	slices.Sort(names)
	got := strings.Join(names, "\n") + "\n"
	if *update {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("exported metric families:\n%s\n%s lists:\n%s\n(go test -run TestExportedNames -update rewrites it; then run k8s/kubecheck's tests)", got, file, want)
	}
}
