package app

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/brokertest"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/config"
)

// resolve loads and resolves the configuration env gives, as main does.
func resolve(t *testing.T, env map[string]string) *config.Resolved {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	cfg, err := config.Load()
	if err != nil {
		t.Fatal(err)
	}
	res, err := cfg.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestLingerServesTheFinalState: with METRICS_LINGER the endpoints stay up
// after the report, in phase finished, with the final counts: /report is the
// report (404 before), /metrics says finished, /health is 200 though the
// connections are closed; a signal (ctx) ends the linger. Nobody answers
// here, so every request times out: the books still balance.
func TestLingerServesTheFinalState(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		http.DefaultClient.CloseIdleConnections()
		goleak.VerifyNone(t, ignore)
	})
	b := brokertest.Start(t)
	addr := brokertest.FreeAddr(t)
	res := resolve(t, map[string]string{
		"BROKER": b.URL(), "VIRTUAL_CLIENTS": "50", "INTERVAL_MS": "100", "CONNECTIONS": "2", "SHARDS": "4",
		"DURATION": "500ms", "REQUEST_TIMEOUT": "200ms", "METRICS_ADDR": addr, "METRICS_LINGER": "1h",
		"PROGRESS_INTERVAL": "0", "INSTANCE_ID": "linger-test",
		"SLO_SUCCESS_RATE": "0", // no worker answers: this test is about the linger, not the verdict
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr bytes.Buffer
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		code, err := Run(ctx, res, slog.New(slog.NewTextHandler(io.Discard, nil)), &stdout, &stderr)
		done <- result{code, err}
	}()
	base := "http://" + addr
	brokertest.WaitFor(t, "the endpoints", func() bool { _, _, err := brokertest.Get(base + "/health"); return err == nil })
	if code, body, _ := brokertest.Get(base + "/report"); code != 404 || !strings.Contains(body, "no report yet") {
		t.Errorf("/report before the end: %d %s", code, body)
	}
	var vars struct {
		Loadgen struct {
			Phase    string `json:"phase"`
			Sent     uint64 `json:"requests_sent"`
			Timeouts uint64 `json:"timeouts"`
		} `json:"loadgen"`
	}
	brokertest.WaitFor(t, "phase finished", func() bool {
		return brokertest.FetchJSON(base+"/debug/vars", &vars) == nil && vars.Loadgen.Phase == "finished"
	})
	// /stats is the same snapshot, without the expvar wrapping.
	var stats struct {
		Phase string `json:"phase"`
		Sent  uint64 `json:"requests_sent"`
	}
	brokertest.GetJSON(t, base+"/stats", &stats)
	if stats.Phase != "finished" || stats.Sent != vars.Loadgen.Sent {
		t.Errorf("/stats %+v, /debug/vars %+v: the final state differs", stats, vars.Loadgen)
	}
	// The report follows the phase within moments (it is built from the
	// final counts once the connections are closed).
	var rep struct {
		Sent     uint64 `json:"requests_sent"`
		Timeouts uint64 `json:"timeouts"`
		Balanced bool   `json:"accounting_balanced"`
	}
	brokertest.WaitFor(t, "/report", func() bool { return brokertest.FetchJSON(base+"/report", &rep) == nil })
	if rep.Sent == 0 || !rep.Balanced || rep.Sent != vars.Loadgen.Sent || rep.Timeouts != vars.Loadgen.Timeouts {
		t.Errorf("report %+v, /debug/vars %+v: the final state differs from the report", rep, vars.Loadgen)
	}
	if code, _, _ := brokertest.Get(base + "/health"); code != 200 {
		t.Errorf("/health when finished: %d, want 200", code)
	}
	mfs := brokertest.Scrape(t, base+"/metrics")
	if v := brokertest.Sample(t, mfs, "mqttrr_loadgen_phase", "phase", "finished", "run_id", res.RunName()); v != 1 {
		t.Errorf("finished phase %v, want 1", v)
	}
	if _, ok := mfs["mqttrr_loadgen_build_info"]; !ok {
		t.Error("/metrics lacks mqttrr_loadgen_build_info")
	}
	if v := brokertest.Sample(t, mfs, "mqttrr_loadgen_requests_sent_total", "period", "measured"); v != float64(rep.Sent) {
		t.Errorf("requests_sent_total %v, the report says %d", v, rep.Sent)
	}
	select {
	case r := <-done:
		t.Fatalf("Run returned during the linger: %d %v", r.code, r.err)
	default:
	}
	cancel() // the signal
	select {
	case r := <-done:
		if r.err != nil || r.code != 0 {
			t.Errorf("Run: %d %v", r.code, r.err)
		}
		if !strings.Contains(stdout.String(), "match rate") {
			t.Errorf("no report printed:\n%s", stdout.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the linger did not end on the signal")
	}
	if _, _, err := brokertest.Get(base + "/health"); err == nil {
		t.Error("endpoints still served after Run returned")
	}
}

// TestNoLingerByDefault: without METRICS_LINGER, Run returns right after
// the report.
func TestNoLingerByDefault(t *testing.T) {
	b := brokertest.Start(t)
	res := resolve(t, map[string]string{
		"BROKER": b.URL(), "VIRTUAL_CLIENTS": "10", "INTERVAL_MS": "100", "CONNECTIONS": "1", "SHARDS": "1",
		"DURATION": "200ms", "REQUEST_TIMEOUT": "100ms", "METRICS_ADDR": "127.0.0.1:0", "PROGRESS_INTERVAL": "0",
		"SLO_SUCCESS_RATE": "0", // no worker answers: this test is about the linger, not the verdict
	})
	var stdout bytes.Buffer
	code, err := Run(context.Background(), res, slog.New(slog.NewTextHandler(io.Discard, nil)), &stdout, io.Discard)
	if err != nil || code != 0 || !strings.Contains(stdout.String(), "match rate") {
		t.Errorf("Run: %d %v\n%s", code, err, stdout.String())
	}
}

// TestNoAnswersFailsByDefault: with no worker, every request times out; with
// no SLO configured the run still fails (SLO_SUCCESS_RATE defaults to 0.99):
// exit 3, the report naming the figure. SLO_SUCCESS_RATE=0 turns it off.
func TestNoAnswersFailsByDefault(t *testing.T) {
	for _, tc := range []struct {
		name, slo string
		want      int
	}{{"default", "", 3}, {"off", "0", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			b := brokertest.Start(t)
			env := map[string]string{
				"BROKER": b.URL(), "VIRTUAL_CLIENTS": "10", "INTERVAL_MS": "100", "CONNECTIONS": "1", "SHARDS": "1",
				"DURATION": "200ms", "REQUEST_TIMEOUT": "100ms", "METRICS_ADDR": "", "PROGRESS_INTERVAL": "0",
			}
			if tc.slo != "" {
				env["SLO_SUCCESS_RATE"] = tc.slo
			}
			res := resolve(t, env)
			var stdout bytes.Buffer
			code, err := Run(context.Background(), res, slog.New(slog.NewTextHandler(io.Discard, nil)), &stdout, io.Discard)
			if err != nil || code != tc.want {
				t.Fatalf("Run: %d %v, want %d\n%s", code, err, tc.want, stdout.String())
			}
			failed := strings.Contains(stdout.String(), "SLO FAILED  success rate 0.000000 (matched / scheduled) is below SLO_SUCCESS_RATE=0.99")
			if failed != (tc.want == 3) {
				t.Errorf("SLO line present %v, want %v:\n%s", failed, tc.want == 3, stdout.String())
			}
		})
	}
}
