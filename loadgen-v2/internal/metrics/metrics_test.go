package metrics_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/brokertest"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/books"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/loadgentest"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/metrics"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/pending"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/report"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/schedule"
)

// TestScrapeReadsOneSnapshot: a scrape takes one snapshot and every counter
// and gauge is read from it; one phase series is 1.
func TestScrapeReadsOneSnapshot(t *testing.T) {
	res := loadgentest.Resolve(t, "tcp://127.0.0.1:1", nil)
	sched, err := schedule.New(res.VirtualClients, res.Interval(), res.Connections, func(c int) int { return res.ConnOf(uint32(c)) }, 1)
	if err != nil {
		t.Fatal(err)
	}
	b := books.New(res, sched, pending.New(res.VirtualClients, 1), loadgentest.QuietLog())
	snaps := 0
	snap := books.Snapshot{
		Phase: books.PhaseSteady, Started: true, Epoch: time.Unix(1700000000, 0),
		Counts:  report.Counts{Scheduled: 10, RequestsSent: 9, ResponsesMatched: 7, Timeouts: 1, Skipped: 1, Late: 2, Unknown: 3, UnknownOtherRun: 2, Malformed: 4},
		Pending: 1, RequestBytes: 900, ResponseBytes: 700, ConnectionsUp: 3, ConnectionsSuspect: 1,
	}
	reg := prometheus.NewRegistry()
	final := &report.Report{}
	final.Warn(report.WarnKindNoResponse, "no response at all")
	final.Warn(report.WarnKindDuplicate, "duplicates")
	final.Warn(report.WarnKindDuplicate, "duplicates again")
	if err := metrics.New(res, func() books.Snapshot { snaps++; return snap }, b, func() *report.Report { return final }).Register(reg); err != nil {
		t.Fatal(err)
	}
	list, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if snaps != 1 {
		t.Errorf("%d snapshots for one scrape, want 1", snaps)
	}
	mfs := map[string]*dto.MetricFamily{}
	for _, mf := range list {
		mfs[mf.GetName()] = mf
	}
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"mqttrr_loadgen_requests_scheduled_total", nil, 10},
		{"mqttrr_loadgen_requests_sent_total", nil, 9},
		{"mqttrr_loadgen_responses_matched_total", nil, 7},
		{"mqttrr_loadgen_requests_timed_out_total", nil, 1},
		{"mqttrr_loadgen_requests_skipped_total", nil, 1},
		{"mqttrr_loadgen_responses_unmatched_total", []string{"reason", "late"}, 2},
		{"mqttrr_loadgen_responses_unmatched_total", []string{"reason", "unknown"}, 3},
		{"mqttrr_loadgen_responses_other_run_total", nil, 2},
		{"mqttrr_loadgen_report_warnings", []string{"kind", "no_response"}, 1},
		{"mqttrr_loadgen_report_warnings", []string{"kind", "duplicate"}, 2},
		{"mqttrr_loadgen_responses_unmatched_total", []string{"reason", "malformed"}, 4},
		{"mqttrr_loadgen_pending_requests", nil, 1},
		{"mqttrr_loadgen_request_bytes_total", nil, 900},
		{"mqttrr_loadgen_response_bytes_total", nil, 700},
		{"mqttrr_loadgen_connections_up", nil, 3},
		{"mqttrr_loadgen_connections_suspect", nil, 1},
		{"mqttrr_loadgen_start_time_seconds", nil, 1700000000},
		{"mqttrr_loadgen_virtual_clients", nil, 2000},
		{"mqttrr_loadgen_target_rate_rps", nil, 4000},
		{"mqttrr_loadgen_phase", []string{"phase", "steady"}, 1},
		{"mqttrr_loadgen_phase", []string{"phase", "draining"}, 0},
		{"mqttrr_loadgen_info", []string{"correlate", "envelope", "run_id", res.RunName()}, 1},
	} {
		if got := brokertest.Sample(t, mfs, tc.name, tc.labels...); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
}
