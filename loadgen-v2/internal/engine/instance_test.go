package engine

import (
	"context"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/brokertest"
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
