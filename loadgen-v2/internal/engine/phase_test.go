package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/latency"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/books"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/dispatch"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/report"
)

// stateDial dials the fake transport and reports its connections up, as
// the real pool does through Options.OnState; flaps, when set, runs then
// with OnState (connections going down and up again).
func stateDial(ft *fakeTransport, flaps func(onState func(i int, up bool))) mqttconn.Dialer {
	return func(ctx context.Context, o mqttconn.Options) (mqttconn.Transport, error) {
		if _, err := ft.dial(ctx, o); err != nil {
			return nil, err
		}
		for i := range o.Connections {
			o.OnState(i, true)
		}
		if flaps != nil {
			flaps(o.OnState)
		}
		return &closingTransport{fakeTransport: ft, onState: o.OnState}, nil
	}
}

// closingTransport reports every connection down when closed, as the real
// pool does.
type closingTransport struct {
	*fakeTransport
	onState func(i int, up bool)
}

func (t *closingTransport) Close() {
	for i := range t.Len() {
		t.onState(i, false)
	}
	t.fakeTransport.Close()
}

// TestPhases: a run with RAMP_UP and WARMUP goes connecting → ramp-up →
// warm-up → steady → draining → finished, read from the clock (synctest),
// and the phase gauge and /debug/vars say the same.
func TestPhases(t *testing.T) {
	cfg := testConfig(t, "tcp://127.0.0.1:1", map[string]string{
		"VIRTUAL_CLIENTS": "100", "INTERVAL_MS": "1000", "CONNECTIONS": "4", "SHARDS": "16",
		"RAMP_UP": "2s", "WARMUP": "4s", "DURATION": "6s", "REQUEST_TIMEOUT": "1s",
	})
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		eng, err := New(cfg, quietLog(), reg, nil)
		if err != nil {
			t.Fatal(err)
		}
		// Answers take 300 ms: the drain after DURATION lasts that long.
		ft := &fakeTransport{delay: 300 * time.Millisecond}
		ft.eng = eng
		eng.dial, eng.claimer = stateDial(ft, nil), nil
		eng.wait = dispatch.TimerWait // the bubble's clock
		if p := eng.Snapshot().Phase; p != books.PhaseConnecting {
			t.Errorf("before Run: %v", p)
		}
		type sample struct {
			at    time.Duration
			want  books.Phase
			got   books.Phase
			gauge string
			stats string
		}
		samples := []sample{{at: time.Second, want: books.PhaseRampUp}, {at: 3 * time.Second, want: books.PhaseWarmUp},
			{at: 5 * time.Second, want: books.PhaseSteady}, {at: 6*time.Second + 100*time.Millisecond, want: books.PhaseDraining}}
		done := make(chan struct{})
		go func() {
			defer close(done)
			<-eng.Ready()
			start := time.Now()
			for i := range samples {
				time.Sleep(samples[i].at - time.Since(start))
				samples[i].got, samples[i].gauge, samples[i].stats = eng.Snapshot().Phase, gaugePhase(t, reg), eng.Stats().Phase
			}
		}()
		if _, err := eng.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		<-done
		for _, s := range samples {
			if s.got != s.want || s.gauge != s.want.String() || s.stats != s.want.String() {
				t.Errorf("at %v: phase %v, gauge %q, stats %q; want %v", s.at, s.got, s.gauge, s.stats, s.want)
			}
		}
		if p, g := eng.Snapshot().Phase, gaugePhase(t, reg); p != books.PhaseFinished || g != "finished" {
			t.Errorf("after Run: phase %v, gauge %q; want finished", p, g)
		}
		// Closing the connections at the end is not a loss.
		st := eng.Stats()
		if st.Connects != 4 || st.ConnectionLosses != 0 || st.Reconnects != 0 {
			t.Errorf("connects %d losses %d reconnects %d; want 4, 0, 0", st.Connects, st.ConnectionLosses, st.Reconnects)
		}
	})
}

// gaugePhase returns the phase whose mqttrr_loadgen_phase series is 1; it
// fails when not exactly one is.
func gaugePhase(t *testing.T, g prometheus.Gatherer) string {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var on []string
	for _, mf := range mfs {
		if mf.GetName() != "mqttrr_loadgen_phase" {
			continue
		}
		if len(mf.Metric) != len(books.Phases) {
			t.Errorf("%d phase series, want %d", len(mf.Metric), len(books.Phases))
		}
		for _, m := range mf.Metric {
			if m.GetGauge().GetValue() == 1 {
				on = append(on, label(m, "phase"))
			}
		}
	}
	if len(on) != 1 {
		t.Errorf("phases at 1: %v", on)
		return ""
	}
	return on[0]
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.Label {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// TestStopSendingDrains: StopSending (what a signal does) turns the phase
// to draining at once, before DURATION.
func TestStopSendingDrains(t *testing.T) {
	cfg := testConfig(t, "tcp://127.0.0.1:1", map[string]string{
		"VIRTUAL_CLIENTS": "100", "INTERVAL_MS": "1000", "CONNECTIONS": "4", "SHARDS": "16", "DURATION": "1h",
	})
	synctest.Test(t, func(t *testing.T) {
		eng, err := New(cfg, quietLog(), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		ft := &fakeTransport{delay: 10 * time.Millisecond}
		ft.eng = eng
		eng.dial, eng.claimer = ft.dial, nil
		eng.wait = dispatch.TimerWait // the bubble's clock
		phase := make(chan books.Phase, 1)
		go func() {
			<-eng.Ready()
			time.Sleep(2 * time.Second)
			eng.StopSending()
			phase <- eng.Snapshot().Phase
		}()
		if _, err := eng.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		if during, after := <-phase, eng.Snapshot().Phase; during != books.PhaseDraining || after != books.PhaseFinished {
			t.Errorf("after StopSending %v, after Run %v; want draining, finished", during, after)
		}
	})
}

// TestConnectionEvents: the transport's state changes (Options.OnState)
// reach the books: connects count every session, reconnects the sessions
// after the first of a connection, losses the drops before the end; the
// connections closed at the end are no loss, and then the run is finished.
func TestConnectionEvents(t *testing.T) {
	cfg := testConfig(t, "tcp://127.0.0.1:1", map[string]string{
		"VIRTUAL_CLIENTS": "100", "INTERVAL_MS": "1000", "CONNECTIONS": "3", "SHARDS": "3", "DURATION": "1s",
	})
	synctest.Test(t, func(t *testing.T) {
		eng, err := New(cfg, quietLog(), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		ft := &fakeTransport{delay: time.Millisecond}
		ft.eng = eng
		eng.claimer = nil
		eng.dial = stateDial(ft, func(onState func(int, bool)) {
			eng.wait = dispatch.TimerWait // the bubble's clock
			for _, s := range []struct {
				i  int
				up bool
			}{{1, false}, {1, true}, {1, false}, {1, true}, {2, false}, {2, true}} {
				onState(s.i, s.up)
			}
		})
		if _, err := eng.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		st := eng.Stats()
		if st.Connects != 6 || st.ConnectionLosses != 3 || st.Reconnects != 3 {
			t.Errorf("connects %d losses %d reconnects %d; want 6, 3, 3", st.Connects, st.ConnectionLosses, st.Reconnects)
		}
		if st.Phase != "finished" {
			t.Errorf("phase %s after Run, want finished", st.Phase)
		}
	})
}

// TestMetricsCarryRunID: every loadgen series carries run_id, the info
// series names the instance as instance_id (Prometheus owns "instance"),
// and the latency histogram is native and classic at once.
func TestMetricsCarryRunID(t *testing.T) {
	cfg := testConfig(t, "tcp://127.0.0.1:1", nil)
	reg := prometheus.NewRegistry()
	eng, err := New(cfg, quietLog(), reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	eng.books.Hist.Latency.Record(0, 3*time.Millisecond)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
		for _, m := range mf.Metric {
			if label(m, "run_id") != cfg.RunName() {
				t.Errorf("%s%v: run_id %q, want %q", mf.GetName(), m.Label, label(m, "run_id"), cfg.RunName())
			}
		}
		switch mf.GetName() {
		case "mqttrr_loadgen_info":
			m := mf.Metric[0]
			if label(m, "instance_id") != "test" || label(m, "instance") != "" || label(m, "connections") != "4" {
				t.Errorf("info labels %v", m.Label)
			}
		case "mqttrr_loadgen_latency_seconds":
			h := mf.Metric[0].GetHistogram()
			if h.GetSampleCount() != 1 || h.GetSchema() != 3 || len(h.PositiveDelta) != 1 || len(h.Bucket) != len(latency.DefaultBuckets) {
				t.Errorf("latency histogram: count %d schema %d native buckets %d classic %d", h.GetSampleCount(), h.GetSchema(), len(h.PositiveDelta), len(h.Bucket))
			}
		case "mqttrr_loadgen_connections":
			if v := mf.Metric[0].GetGauge().GetValue(); v != 4 {
				t.Errorf("connections %v, want 4", v)
			}
		}
	}
	for _, n := range []string{"mqttrr_loadgen_phase", "mqttrr_loadgen_connects_total", "mqttrr_loadgen_connection_losses_total",
		"mqttrr_loadgen_reconnects_total", "mqttrr_loadgen_start_time_seconds", "mqttrr_loadgen_info"} {
		if !names[n] {
			t.Errorf("%s not exported", n)
		}
	}
}

// TestStopWhileConnecting: a stop (the first SIGINT/SIGTERM cancels ctx)
// while the connections are still coming up ends in a report, not an error:
// every count zero, a "stopped before sending" warning, and the success-rate
// SLO failed (exit 3), since nothing it could hold to was measured.
func TestStopWhileConnecting(t *testing.T) {
	cfg := testConfig(t, "tcp://127.0.0.1:1", map[string]string{"SLO_SUCCESS_RATE": "0.99"})
	eng, err := New(cfg, quietLog(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	dialing := make(chan struct{})
	eng.claimer = nil
	eng.dial = func(ctx context.Context, _ mqttconn.Options) (mqttconn.Transport, error) {
		close(dialing)
		<-ctx.Done()
		return nil, fmt.Errorf("connect: %w", ctx.Err())
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-dialing; cancel() }()
	rep, err := eng.Run(ctx)
	if err != nil {
		t.Fatalf("Run: %v, want a report", err)
	}
	if rep.Counts != (report.Counts{}) || !rep.Balanced {
		t.Errorf("counts %+v, want all zero and balanced", rep.Counts)
	}
	if !slices.Contains(rep.WarningKinds, report.WarnKindStopped) {
		t.Errorf("warnings %q lack stopped before sending", rep.Warnings)
	}
	if rep.SLO.Passed || len(rep.SLO.Failures) != 1 || !strings.Contains(rep.SLO.Failures[0], "stopped before sending") {
		t.Errorf("slo %+v, want one failure: stopped before sending", rep.SLO)
	}
	if p := eng.Snapshot().Phase; p != books.PhaseFinished {
		t.Errorf("phase %v, want finished", p)
	}
}

// TestDialErrorIsAnError: a connection failure that no stop caused stays a
// runtime error (exit 1).
func TestDialErrorIsAnError(t *testing.T) {
	cfg := testConfig(t, "tcp://127.0.0.1:1", nil)
	eng, err := New(cfg, quietLog(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	eng.claimer = nil
	eng.dial = func(context.Context, mqttconn.Options) (mqttconn.Transport, error) {
		return nil, errors.New("connection refused")
	}
	if rep, err := eng.Run(context.Background()); err == nil {
		t.Errorf("Run: report %+v, want the dial error", rep)
	}
}
