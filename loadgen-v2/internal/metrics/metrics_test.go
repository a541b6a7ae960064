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
		Warmup:  report.Counts{Scheduled: 4, RequestsSent: 4, ResponsesMatched: 3, Timeouts: 1, Late: 1},
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
		{"mqttrr_loadgen_requests_scheduled_total", []string{"period", "measured"}, 6},
		{"mqttrr_loadgen_requests_scheduled_total", []string{"period", "warmup"}, 4},
		{"mqttrr_loadgen_requests_sent_total", []string{"period", "measured"}, 5},
		{"mqttrr_loadgen_requests_sent_total", []string{"period", "warmup"}, 4},
		{"mqttrr_loadgen_responses_matched_total", []string{"period", "measured"}, 4},
		{"mqttrr_loadgen_responses_matched_total", []string{"period", "warmup"}, 3},
		{"mqttrr_loadgen_requests_timed_out_total", []string{"period", "measured"}, 0},
		{"mqttrr_loadgen_requests_timed_out_total", []string{"period", "warmup"}, 1},
		{"mqttrr_loadgen_requests_skipped_total", []string{"period", "measured"}, 1},
		{"mqttrr_loadgen_requests_skipped_total", []string{"period", "warmup"}, 0},
		{"mqttrr_loadgen_requests_send_failed_total", []string{"period", "measured"}, 0},
		{"mqttrr_loadgen_responses_unmatched_total", []string{"reason", "late", "period", "measured"}, 1},
		{"mqttrr_loadgen_responses_unmatched_total", []string{"reason", "late", "period", "warmup"}, 1},
		{"mqttrr_loadgen_responses_unmatched_total", []string{"reason", "unknown", "period", "measured"}, 3},
		{"mqttrr_loadgen_responses_other_run_total", nil, 2},
		{"mqttrr_loadgen_report_warnings", []string{"kind", "no_response"}, 1},
		{"mqttrr_loadgen_report_warnings", []string{"kind", "duplicate"}, 2},
		{"mqttrr_loadgen_responses_unmatched_total", []string{"reason", "malformed", "period", "measured"}, 4},
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
	// Responses that match no request have no warm-up series.
	for _, reason := range []string{"unknown", "malformed", "oversized"} {
		for _, m := range mfs["mqttrr_loadgen_responses_unmatched_total"].GetMetric() {
			if label(m, "reason") == reason && label(m, "period") != "measured" {
				t.Errorf("responses_unmatched_total{reason=%q} has period %q", reason, label(m, "period"))
			}
		}
	}
}

// TestPeriodsAreTheReports: the counts by period, scraped from real books
// that counted fires in both phases, are the final books the report is made
// of: period="measured" its counts, period="warmup" its warmup counts.
func TestPeriodsAreTheReports(t *testing.T) {
	res := loadgentest.Resolve(t, "tcp://127.0.0.1:1", map[string]string{"WARMUP": "1s"})
	sched, err := schedule.New(res.VirtualClients, res.Interval(), res.Connections, func(c int) int { return res.ConnOf(uint32(c)) }, 1)
	if err != nil {
		t.Fatal(err)
	}
	b := books.New(res, sched, pending.New(res.VirtualClients, 1), loadgentest.QuietLog())
	b.Start(time.Now())
	b.Add(books.Warmup, &books.Tally{Scheduled: 100, Sent: 90, Skipped: 6, Failed: 4, First: 100})
	b.Add(books.Measured, &books.Tally{Scheduled: 300, Sent: 297, Skipped: 2, Failed: 1})
	b.Add(books.Warmup, &books.Tally{Scheduled: 7, Sent: 7})
	b.Finish()
	reg := prometheus.NewRegistry()
	if err := metrics.New(res, b.Snapshot, b, func() *report.Report { return nil }).Register(reg); err != nil {
		t.Fatal(err)
	}
	mfs := gather(t, reg)
	final := b.Final()
	for _, p := range []struct {
		period string
		want   report.Counts
	}{{"measured", final.Measured}, {"warmup", final.Warmup}} {
		for _, c := range []struct {
			name string
			want uint64
		}{
			{"mqttrr_loadgen_requests_scheduled_total", p.want.Scheduled},
			{"mqttrr_loadgen_requests_sent_total", p.want.RequestsSent},
			{"mqttrr_loadgen_requests_skipped_total", p.want.Skipped},
			{"mqttrr_loadgen_requests_send_failed_total", p.want.SendFailed},
			{"mqttrr_loadgen_responses_matched_total", p.want.ResponsesMatched},
			{"mqttrr_loadgen_requests_timed_out_total", p.want.Timeouts},
		} {
			if got := brokertest.Sample(t, mfs, c.name, "period", p.period); got != float64(c.want) {
				t.Errorf("%s{period=%q} = %v, the final books %d", c.name, p.period, got, c.want)
			}
		}
	}
	if final.Warmup.Scheduled != 107 || final.Measured.Scheduled != 300 {
		t.Fatalf("final books %+v: the test's tallies did not land", final)
	}
}

// TestFleetLabels: in a fleet run every series carries fleet_id and the info
// series the instance's fleet_index and the fleet_size; a single run has no
// fleet_id label at all (not an empty one).
func TestFleetLabels(t *testing.T) {
	for _, tc := range []struct {
		name  string
		env   map[string]string
		fleet string
	}{
		{"single run", nil, ""},
		{"fleet", map[string]string{"FLEET_ID": "f-3", "FLEET_SIZE": "3", "FLEET_INDEX": "2"}, "f-3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := loadgentest.Resolve(t, "tcp://127.0.0.1:1", tc.env)
			sched, err := schedule.New(res.VirtualClients, res.Interval(), res.Connections, func(c int) int { return res.ConnOf(uint32(c)) }, 1)
			if err != nil {
				t.Fatal(err)
			}
			b := books.New(res, sched, pending.New(res.VirtualClients, 1), loadgentest.QuietLog())
			reg := prometheus.NewRegistry()
			if err := metrics.New(res, b.Snapshot, b, func() *report.Report { return nil }).Register(reg); err != nil {
				t.Fatal(err)
			}
			mfs := gather(t, reg)
			for name, mf := range mfs {
				for _, m := range mf.GetMetric() {
					has := false
					for _, lp := range m.GetLabel() {
						has = has || lp.GetName() == "fleet_id"
					}
					if has != (tc.fleet != "") || label(m, "fleet_id") != tc.fleet || label(m, "run_id") != res.RunName() {
						t.Errorf("%s%v: want run_id %q and fleet_id %q", name, m.GetLabel(), res.RunName(), tc.fleet)
					}
				}
			}
			info := mfs["mqttrr_loadgen_info"].GetMetric()[0]
			if idx, size := label(info, "fleet_index"), label(info, "fleet_size"); tc.fleet != "" && (idx != "2" || size != "3") || tc.fleet == "" && (idx != "" || size != "") {
				t.Errorf("info %v: fleet_index %q fleet_size %q", info.GetLabel(), idx, size)
			}
		})
	}
}

func gather(t *testing.T, reg *prometheus.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	list, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	mfs := map[string]*dto.MetricFamily{}
	for _, mf := range list {
		mfs[mf.GetName()] = mf
	}
	return mfs
}

// label returns the value of m's label name ("" when it has none).
func label(m *dto.Metric, name string) string {
	for _, lp := range m.GetLabel() {
		if lp.GetName() == name {
			return lp.GetValue()
		}
	}
	return ""
}
