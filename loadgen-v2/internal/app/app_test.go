package app

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/broker"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/config"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func get(url string) (int, string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
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
	b, err := broker.Start(broker.Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	addr := freeAddr(t)
	for k, v := range map[string]string{
		"BROKER": b.URL(), "VIRTUAL_CLIENTS": "50", "INTERVAL_MS": "100", "CONNECTIONS": "2", "SHARDS": "4",
		"DURATION": "500ms", "REQUEST_TIMEOUT": "200ms", "METRICS_ADDR": addr, "METRICS_LINGER": "1h",
		"PROGRESS_INTERVAL": "0", "INSTANCE_ID": "linger-test",
	} {
		t.Setenv(k, v)
	}
	cfg, err := config.Load()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr bytes.Buffer
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		code, err := Run(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), &stdout, &stderr)
		done <- result{code, err}
	}()
	base := "http://" + addr
	waitFor(t, "the endpoints", func() bool { _, _, err := get(base + "/health"); return err == nil })
	if code, body, _ := get(base + "/report"); code != 404 || !strings.Contains(body, "no report yet") {
		t.Errorf("/report before the end: %d %s", code, body)
	}
	var vars struct {
		Loadgen struct {
			Phase    string `json:"phase"`
			Sent     uint64 `json:"requests_sent"`
			Timeouts uint64 `json:"timeouts"`
		} `json:"loadgen"`
	}
	waitFor(t, "phase finished", func() bool {
		_, body, err := get(base + "/debug/vars")
		return err == nil && json.Unmarshal([]byte(body), &vars) == nil && vars.Loadgen.Phase == "finished"
	})
	// The report follows the phase within moments (it is built from the
	// final counts once the connections are closed).
	var rep struct {
		Sent     uint64 `json:"requests_sent"`
		Timeouts uint64 `json:"timeouts"`
		Balanced bool   `json:"accounting_balanced"`
	}
	waitFor(t, "/report", func() bool {
		code, body, err := get(base + "/report")
		return err == nil && code == 200 && json.Unmarshal([]byte(body), &rep) == nil
	})
	if rep.Sent == 0 || !rep.Balanced || rep.Sent != vars.Loadgen.Sent || rep.Timeouts != vars.Loadgen.Timeouts {
		t.Errorf("report %+v, /debug/vars %+v: the final state differs from the report", rep, vars.Loadgen)
	}
	if code, _, _ := get(base + "/health"); code != 200 {
		t.Errorf("/health when finished: %d, want 200", code)
	}
	_, metrics, _ := get(base + "/metrics")
	if !strings.Contains(metrics, `mqttrr_loadgen_phase{phase="finished",run_id="`) ||
		!strings.Contains(metrics, "mqttrr_loadgen_build_info{") {
		t.Errorf("/metrics lacks the finished phase or build info:\n%s", metrics)
	}
	for _, line := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(line, `mqttrr_loadgen_phase{phase="finished"`) && !strings.HasSuffix(line, " 1") {
			t.Errorf("finished phase not 1: %s", line)
		}
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
	if _, _, err := get(base + "/health"); err == nil {
		t.Error("endpoints still served after Run returned")
	}
}

// TestNoLingerByDefault: without METRICS_LINGER, Run returns right after
// the report.
func TestNoLingerByDefault(t *testing.T) {
	b, err := broker.Start(broker.Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for k, v := range map[string]string{
		"BROKER": b.URL(), "VIRTUAL_CLIENTS": "10", "INTERVAL_MS": "100", "CONNECTIONS": "1", "SHARDS": "1",
		"DURATION": "200ms", "REQUEST_TIMEOUT": "100ms", "METRICS_ADDR": "127.0.0.1:0", "PROGRESS_INTERVAL": "0",
	} {
		t.Setenv(k, v)
	}
	cfg, err := config.Load()
	if err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	code, err := Run(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), &stdout, io.Discard)
	if err != nil || code != 0 || !strings.Contains(stdout.String(), "match rate") {
		t.Errorf("Run: %d %v\n%s", code, err, stdout.String())
	}
}
