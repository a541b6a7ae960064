package engine

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/brokertest"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/books"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/claim"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/config"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/report"
)

// TestTwoLoadgensOneInstanceID: two loadgens started with the same
// INSTANCE_ID share the response topics, so each receives the other's
// responses. Both runs are fully matched, yet each report names the clash
// (a WARNING of kind instance_id_in_use), counting the other's responses.
func TestTwoLoadgensOneInstanceID(t *testing.T) {
	b := brokertest.Start(t)
	startEcho(t, b.URL(), nil)
	env := map[string]string{"INSTANCE_ID": "twin", "DURATION": "0", "REQUEST_TIMEOUT": "20s", "VIRTUAL_CLIENTS": "200"}
	first, second := testConfig(t, b.URL(), env), testConfig(t, b.URL(), env)
	if second.RunID == first.RunID {
		second.RunID ^= 1 // two runs, two run ids (drawn at random)
	}
	var engs [2]*Engine
	for i, res := range []*config.Resolved{first, second} {
		e, err := New(res, quietLog(), prometheus.NewRegistry(), nil)
		if err != nil {
			t.Fatal(err)
		}
		engs[i] = e
	}
	reps := make(chan *report.Report, 2)
	for _, e := range engs {
		go func() {
			r, err := e.Run(context.Background())
			if err != nil {
				t.Error(err)
			}
			reps <- r
		}()
	}
	brokertest.WaitFor(t, "each loadgen receives the other's responses", func() bool {
		return engs[0].Snapshot().UnknownOtherRun > 0 && engs[1].Snapshot().UnknownOtherRun > 0
	})
	for _, e := range engs {
		e.StopSending()
	}
	for range engs {
		r := <-reps
		if r == nil {
			t.Fatal("no report")
		}
		if r.ResponsesMatched != r.RequestsSent || r.RequestsSent == 0 {
			t.Errorf("want every request matched: %+v", r.Counts)
		}
		if r.UnknownOtherRun == 0 || !slices.Contains(r.WarningKinds, report.WarnKindInstanceUsed) {
			t.Errorf("other-run %d, warnings %q: want the INSTANCE_ID clash named", r.UnknownOtherRun, r.Warnings)
		}
	}
}

// TestInstanceClaimWarnsBeforeAnyResponse: a loadgen started with the
// INSTANCE_ID of a running one warns at once: its WARNING is logged while it
// has received no response at all (neither its own nor the other's), before
// it sends. The running one learns of it too (the second's claim reaches
// it). Both reports name the clash (instance_id_in_use, with the other's run
// id), and nothing is left on the claim topic at the end.
func TestInstanceClaimWarnsBeforeAnyResponse(t *testing.T) {
	b := brokertest.Start(t)
	startEcho(t, b.URL(), nil)
	env := map[string]string{"INSTANCE_ID": "twin", "DURATION": "0", "REQUEST_TIMEOUT": "20s", "VIRTUAL_CLIENTS": "200"}
	firstRes, secondRes := testConfig(t, b.URL(), env), testConfig(t, b.URL(), env)
	if secondRes.RunID == firstRes.RunID {
		secondRes.RunID ^= 1
	}
	first, err := New(firstRes, quietLog(), prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	reps := make(chan *report.Report, 2)
	run := func(e *Engine) {
		r, err := e.Run(context.Background())
		if err != nil {
			t.Error(err)
		}
		reps <- r
	}
	go run(first)
	<-first.Ready()

	var second *Engine
	var warned atomic.Pointer[books.Snapshot] // the second's books when it warned
	log := slog.New(hook(func(r slog.Record) {
		if r.Level == slog.LevelWarn && strings.Contains(r.Message, "another loadgen claimed INSTANCE_ID=twin") {
			s := second.Snapshot()
			warned.CompareAndSwap(nil, &s)
		}
	}))
	second, err = New(secondRes, log, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	go run(second)
	<-second.Ready()
	s := warned.Load()
	if s == nil {
		t.Fatal("the second loadgen started sending without a WARNING about the first one's claim")
	}
	if got := s.ResponsesMatched + s.Unknown + s.Late + s.Duplicate + s.Malformed + s.RequestsSent; got != 0 {
		t.Errorf("at the WARNING the second loadgen had sent or received %d messages, want none: %+v", got, s.Counts)
	}
	first.StopSending()
	second.StopSending()
	for range 2 {
		r := <-reps
		if r == nil {
			t.Fatal("no report")
		}
		if !slices.Contains(r.WarningKinds, report.WarnKindInstanceUsed) || len(r.InstanceClaims) != 1 {
			t.Errorf("warnings %q, claims %q: want the clash named", r.Warnings, r.InstanceClaims)
		}
		if c := strings.Join(r.InstanceClaims, ""); !strings.Contains(c, firstRes.RunName()) && !strings.Contains(c, secondRes.RunName()) {
			t.Errorf("claims %q name neither run", r.InstanceClaims)
		}
	}
	if p := brokertest.Retained(t, b.URL(), claim.Topic("twin")); p != nil {
		t.Errorf("the claim topic holds %q after both runs", p)
	}
}

// TestInstanceClaimAlone: a loadgen alone warns of no clash and clears its
// claim at the end; INSTANCE_CLAIM=false makes none.
func TestInstanceClaimAlone(t *testing.T) {
	b := brokertest.Start(t)
	startEcho(t, b.URL(), nil)
	for _, on := range []string{"true", "false"} {
		res := testConfig(t, b.URL(), map[string]string{"INSTANCE_ID": "solo", "DURATION": "500ms", "REQUEST_TIMEOUT": "20s",
			"VIRTUAL_CLIENTS": "100", "INSTANCE_CLAIM": on})
		e, err := New(res, quietLog(), prometheus.NewRegistry(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if (e.claimer != nil) != (on == "true") {
			t.Errorf("INSTANCE_CLAIM=%s: claimer set %v", on, e.claimer != nil)
		}
		r, err := e.Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(r.WarningKinds, report.WarnKindInstanceUsed) || len(r.InstanceClaims) != 0 {
			t.Errorf("INSTANCE_CLAIM=%s: warnings %q, claims %q: a loadgen alone has no clash", on, r.Warnings, r.InstanceClaims)
		}
		if p := brokertest.Retained(t, b.URL(), claim.Topic("solo")); p != nil {
			t.Errorf("INSTANCE_CLAIM=%s: the claim topic holds %q after the run", on, p)
		}
	}
}

// hook is a slog.Handler that calls its function with every record.
type hook func(slog.Record)

func (h hook) Enabled(context.Context, slog.Level) bool      { return true }
func (h hook) Handle(_ context.Context, r slog.Record) error { h(r); return nil }
func (h hook) WithAttrs([]slog.Attr) slog.Handler            { return h }
func (h hook) WithGroup(string) slog.Handler                 { return h }
