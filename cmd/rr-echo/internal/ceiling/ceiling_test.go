package ceiling

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/brokertest"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/envconf"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/latency"
)

func testConfig(url string) Config {
	return Config{Broker: url, Requesters: 2, Outstanding: 4, Responders: 2, PayloadBytes: 16,
		Duration: 300 * time.Millisecond, Warmup: 100 * time.Millisecond}
}

// TestRun runs the ceiling measurement against real brokers: every request sent gets its
// response, and the measured round trips are the histogram's count.
func TestRun(t *testing.T) {
	brokers := map[string]func(t *testing.T) string{
		"embedded":  func(t *testing.T) string { return brokertest.Start(t).URL() },
		"mosquitto": func(t *testing.T) string { return brokertest.StartMosquitto(t, "").URL() },
	}
	for name, start := range brokers {
		t.Run(name, func(t *testing.T) {
			ignore := goleak.IgnoreCurrent()
			t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // after the broker's cleanup
			res, err := Run(context.Background(), testConfig(start(t)))
			if err != nil {
				t.Fatal(err)
			}
			if res.RoundTrips == 0 || res.ThroughputRPS <= 0 {
				t.Fatalf("no round trips measured: %+v", res)
			}
			if res.Lost != 0 || res.Sent != res.Received {
				t.Errorf("sent %d, received %d, lost %d: every request must be answered", res.Sent, res.Received, res.Lost)
			}
			if res.Sent < res.RoundTrips+8 { // the 2 × 4 initial requests, warmup, drain
				t.Errorf("sent %d < measured %d + 8 in flight", res.Sent, res.RoundTrips)
			}
			h, err := latency.Decode(res.Histograms.Latency)
			if err != nil {
				t.Fatal(err)
			}
			if uint64(h.TotalCount()) != res.RoundTrips || res.Latency.Count != int64(res.RoundTrips) {
				t.Errorf("histogram holds %d, summary %d, round trips %d", h.TotalCount(), res.Latency.Count, res.RoundTrips)
			}
		})
	}
}

func TestRunBrokerDown(t *testing.T) {
	cfg := testConfig("tcp://127.0.0.1:9") // discard port: nothing listens
	if _, err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "connect") {
		t.Fatalf("err %v, want a connect error", err)
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{name: "defaults", env: nil},
		{name: "every problem at once",
			env:  map[string]string{"ECHO_REQUESTERS": "0", "ECHO_OUTSTANDING": "70000", "ECHO_RESPONDERS": "0", "PAYLOAD_BYTES": "4", "QOS": "3", "DURATION": "0s", "BROKER": "http://x"},
			want: []string{"ECHO_REQUESTERS=0 must be 1..1000", "ECHO_OUTSTANDING=70000 must be 1..65535", "ECHO_RESPONDERS=0", "PAYLOAD_BYTES=4 must be 8..65536", "QOS=3", "DURATION=0s must be positive", `BROKER=http://x has scheme "http"`}},
		{name: "not a number", env: map[string]string{"ECHO_OUTSTANDING": "many"}, want: []string{`ECHO_OUTSTANDING="many" is not a valid integer`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var c Config
			err := envconf.Load(&c)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if c.Requesters != 8 || c.Outstanding != 64 || c.Responders != 4 || c.PayloadBytes != 16 || c.QoS != 0 {
					t.Errorf("defaults %+v, want 8 requesters × 64 outstanding, 4 responders, 16 bytes, QoS 0", c)
				}
				return
			}
			if !errors.Is(err, envconf.ErrInvalid) {
				t.Fatalf("err %v, want ErrInvalid", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not name %q:\n%v", w, err)
				}
			}
		})
	}
}
