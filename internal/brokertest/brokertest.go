// Package brokertest holds the helpers every test of this module needs once:
// the embedded broker on a free loopback port (Start), a real Mosquitto
// (StartMosquitto, skipping when it is not installed), waiting for an event
// (WaitFor, Await, WaitOK), loopback addresses for binaries to bind
// (FreeAddr), the tools a test needs (NeedTool, Unavailable, WithoutPart:
// skipped where missing, failed in CI), reading an HTTP endpoint, a JSON document or a Prometheus
// scrape (Get, GetJSON, FetchJSON, Scrape, Sample), and the retained message
// a broker holds on a topic (Retained). It is imported by tests only.
package brokertest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/broker"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/freeport"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mosquitto"
)

// Patience bounds every wait of WaitFor, Await and WaitOK. It only ends a
// broken test: a
// passing test waits for an event and never for this long (the machine may
// be shared and slow, so it is generous).
const Patience = 60 * time.Second

// Start starts the embedded broker on 127.0.0.1:0 and closes it when the test
// ends. Read its address back with Addr or URL.
func Start(t testing.TB, o ...broker.Options) *broker.Broker {
	t.Helper()
	opts := broker.Options{}
	if len(o) > 0 {
		opts = o[0]
	}
	opts.Addr = "127.0.0.1:0"
	b, err := broker.Start(opts)
	if err != nil {
		t.Fatalf("start embedded broker: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// StartMosquitto starts a real Mosquitto for the test (internal/mosquitto:
// BenchConfig plus the extra configuration lines, on a free loopback port)
// and stops it when the test ends. It skips the test when Mosquitto is not
// installed, and fails it in CI (Unavailable: CI installs it).
func StartMosquitto(t testing.TB, extra string) *mosquitto.Broker {
	t.Helper()
	m, err := mosquitto.Start(t.TempDir(), extra)
	if errors.Is(err, mosquitto.ErrNotInstalled) {
		Unavailable(t, "mosquitto not installed (apt-get install -y mosquitto; .ci/run installs it)")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	return m
}

// WaitFor polls cond every 5 ms until it holds. It fails the test after
// Patience, naming what it waited for: the bound ends a broken run, it is not
// an assertion on timing.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	Await(t, what, 5*time.Millisecond, func() (bool, string) { return cond(), "" })
}

// Await polls cond every `every` until it holds and returns how long that
// took. It fails the test after Patience, naming what it waited for and the
// state cond reported last ("" says nothing). Poll a process over HTTP
// every 20 ms or more: polling must not load what it watches.
func Await(t testing.TB, what string, every time.Duration, cond func() (ok bool, state string)) time.Duration {
	t.Helper()
	began := time.Now()
	for {
		ok, state := cond()
		if ok {
			return time.Since(began)
		}
		if time.Since(began) > Patience {
			if state != "" {
				state = " (last: " + state + ")"
			}
			t.Fatalf("timed out after %v waiting for %s%s", Patience, what, state)
		}
		time.Sleep(every)
	}
}

// WaitOK waits until GET url answers 200 (a server's /health or /ready),
// polling every 50 ms.
func WaitOK(t testing.TB, url string) {
	t.Helper()
	Await(t, url+" answering 200", 50*time.Millisecond, func() (bool, string) {
		code, body, err := Get(url)
		if err != nil {
			return false, err.Error()
		}
		return code == http.StatusOK, fmt.Sprintf("%d %s", code, strings.TrimSpace(body))
	})
}

// FreeAddr returns a loopback address ("127.0.0.1:port") for a server that a
// test starts later (a binary's METRICS_ADDR, a broker's listener): a port
// of this process's own block below the ephemeral range (freeport.Loopback).
func FreeAddr(t testing.TB) string {
	t.Helper()
	addr, err := freeport.Loopback()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// Get fetches url and returns the status and body; an error only when no
// answer came.
func Get(url string) (int, string, error) {
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// GetJSON fetches url, which must answer 200, and decodes its JSON body into v.
func GetJSON(t testing.TB, url string, v any) {
	t.Helper()
	if err := FetchJSON(url, v); err != nil {
		t.Fatal(err)
	}
}

// FetchJSON is GetJSON returning the error, for polling loops.
func FetchJSON(url string, v any) error {
	code, body, err := Get(url)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("%s: status %d: %s", url, code, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		return fmt.Errorf("%s: %w: %s", url, err, body)
	}
	return nil
}

// Scrape reads a Prometheus text exposition from url (…/metrics) and
// returns it by family name.
func Scrape(t testing.TB, url string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body, err := Get(url)
	if err != nil || code != http.StatusOK {
		t.Fatalf("scrape %s: status %d, %v", url, code, err)
	}
	mfs, err := ParseMetrics(body)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	return mfs
}

// ParseMetrics parses a Prometheus text exposition.
func ParseMetrics(text string) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(strings.NewReader(text))
}

// Sample returns the value of the one series of family name whose labels
// include the name/value pairs given (a counter, a gauge or an untyped
// sample). It fails the test unless exactly one series matches.
func Sample(t testing.TB, mfs map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	var found []*dto.Metric
next:
	for _, m := range mfs[name].GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			ok := false
			for _, lp := range m.GetLabel() {
				ok = ok || lp.GetName() == labels[i] && lp.GetValue() == labels[i+1]
			}
			if !ok {
				continue next
			}
		}
		found = append(found, m)
	}
	if len(found) != 1 {
		t.Fatalf("%s%v: %d series, want 1", name, labels, len(found))
	}
	switch m := found[0]; {
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	default:
		return m.GetUntyped().GetValue()
	}
}
