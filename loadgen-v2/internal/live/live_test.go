package live_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"
	"unicode/utf8"

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

// TestProgressWithin100Columns: every line the progress printer writes —
// the legend, the column header and the lines themselves — is at most
// live.ProgressWidth (100) columns wide, with figures as wide as a long,
// large, troubled run gives (a day in, a million req/s, seven-digit counts,
// latencies of seconds, 1000 connections with suspects), and the columns
// line up under the header. Virtual time: the ticks are synctest's.
func TestProgressWithin100Columns(t *testing.T) {
	res := loadgentest.Resolve(t, "tcp://127.0.0.1:1", map[string]string{"PROGRESS_INTERVAL": "1s",
		"VIRTUAL_CLIENTS": "2000000", "INTERVAL_MS": "2000", "CONNECTIONS": "1000", "SHARDS": "1000"})
	synctest.Test(t, func(t *testing.T) {
		hist := &books.Histograms{Latency: latency.NewIntervalRecorder(1), ScheduleLag: latency.NewRecorder(1),
			WorkerQueue: latency.NewRecorder(1), WorkerProcess: latency.NewRecorder(1), BrokerNetwork: latency.NewRecorder(1)}
		epoch := time.Now().Add(-86399 * time.Second)
		var ticks uint64
		snapshot := func() books.Snapshot {
			ticks++
			sent := 9_000_000 * ticks
			return books.Snapshot{Phase: books.PhaseDraining, Started: true, Epoch: epoch, Elapsed: time.Since(epoch),
				Counts: report.Counts{Scheduled: sent + 2_000_000, RequestsSent: sent, ResponsesMatched: sent - 1_500_000,
					Timeouts: 1_234_567 + 1000*ticks, Skipped: 1_000_000, SendFailed: 1_000_000},
				Pending: 9_999_999, ConnectionsUp: 1000, ConnectionsSuspect: 99}
		}
		hist.Latency.Record(0, 99*time.Second)
		var out bytes.Buffer
		ctx, cancel := context.WithCancel(t.Context())
		v := live.New(res, snapshot, hist, &out)
		done := make(chan struct{})
		go func() { v.Run(ctx, epoch); close(done) }()
		time.Sleep(25*time.Second + time.Millisecond) // 25 progress lines: the header twice
		cancel()
		<-done

		lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		var header string
		progress := 0
		for _, l := range lines {
			if n := utf8.RuneCountInString(l); n > live.ProgressWidth {
				t.Errorf("%d columns (max %d): %q", n, live.ProgressWidth, l)
			}
			if strings.Contains(l, " phase ") {
				header = l
			}
			if strings.Contains(l, "draining") {
				progress++
				// Columns line up: the header's last column starts where the
				// connections start.
				if i, j := strings.Index(header, "conns"), strings.Index(l, "1000/1000"); i != j {
					t.Errorf("conns at column %d, header at %d:\n%s\n%s", j, i, header, l)
				}
			}
		}
		if progress != 25 || strings.Count(out.String(), " phase ") != 2 || !strings.Contains(out.String(), "target 1000000 req/s") {
			t.Errorf("%d progress lines, %d headers, want 25 and 2 and the legend with the target:\n%s",
				progress, strings.Count(out.String(), " phase "), out.String())
		}
		for _, want := range []string{"86400.0s draining", "1000/1000 s99", "99999", " 9999999 "} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("progress lacks %q:\n%s", want, out.String())
			}
		}
		t.Logf("\n%s", strings.Join(lines[:6], "\n"))
	})
}
