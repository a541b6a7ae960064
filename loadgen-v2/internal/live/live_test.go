package live_test

import (
	"testing"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/latency"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/books"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/live"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/loadgentest"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/report"
)

// TestRatiosNeverAboveOne: the live ratios come from one snapshot and are at
// most 1, even when the snapshot's matched count ran ahead of its sent count
// (responses that arrived before their publishing pass added its sends: sent
// 185,477 and matched 185,480 printed "success rate 100.002%").
func TestRatiosNeverAboveOne(t *testing.T) {
	res := loadgentest.Resolve(t, "tcp://127.0.0.1:1", nil)
	hist := &books.Histograms{Latency: latency.NewIntervalRecorder(1), ScheduleLag: latency.NewRecorder(1),
		WorkerQueue: latency.NewRecorder(1), WorkerProcess: latency.NewRecorder(1)}
	for _, c := range []report.Counts{
		{Scheduled: 185477, RequestsSent: 185477, ResponsesMatched: 185480},
		{Scheduled: 185477, RequestsSent: 185470, ResponsesMatched: 185480, Timeouts: 3},
		{Scheduled: 10, RequestsSent: 10, ResponsesMatched: 5, Timeouts: 5},
	} {
		snap := books.Snapshot{Phase: books.PhaseSteady, Started: true, Epoch: time.Now(), Counts: c,
			Pending: max(int64(c.RequestsSent)-int64(c.ResponsesMatched)-int64(c.Timeouts), 0)}
		s := live.New(res, func() books.Snapshot { return snap }, hist, nil).Stats()
		if s.SuccessRate == nil || *s.SuccessRate > 1 || s.MatchRate == nil || *s.MatchRate > 1 {
			t.Errorf("%+v: success %v match %v, want both set and at most 1", c, deref(s.SuccessRate), deref(s.MatchRate))
		}
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}
