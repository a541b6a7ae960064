package echo

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/goleak"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/broker"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/envconf"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/latency"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mosquitto"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/wire"
)

func testConfig(url string) Config {
	return Config{Broker: url, Requesters: 2, Outstanding: 4, Responders: 2, PayloadBytes: 16,
		Duration: 300 * time.Millisecond, Warmup: 100 * time.Millisecond}
}

// TestRun runs the echo against real brokers: every request sent gets its
// response, and the measured round trips are the histogram's count.
func TestRun(t *testing.T) {
	brokers := map[string]func(t *testing.T) string{
		"embedded": func(t *testing.T) string {
			b, err := broker.Start(broker.Options{Addr: "127.0.0.1:0"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = b.Close() })
			return b.URL()
		},
		"mosquitto": func(t *testing.T) string {
			b, err := mosquitto.Start(t.TempDir(), "")
			if errors.Is(err, mosquitto.ErrNotInstalled) {
				t.Skip(err)
			}
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(b.Stop)
			return b.URL()
		},
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

// TestRespond answers loadgen-v2 requests with the plain paho responder
// through the embedded broker: every request gets one response echoing its
// keys, and a payload that is no request is counted malformed.
func TestRespond(t *testing.T) {
	b, err := broker.Start(broker.Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan struct{})
	type outcome struct {
		a   *Answered
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		a, err := Respond(ctx, RespondConfig{Broker: b.URL(), Connections: 2, Sub: "req/+", ShareGroup: "workers"}, func() { close(ready) })
		done <- outcome{a, err}
	}()
	select {
	case <-ready:
	case o := <-done:
		t.Fatalf("Respond returned before ready: %v", o.err)
	}

	const n = 50
	got := make(chan wire.Response, n)
	c := paho.NewClient(paho.NewClientOptions().AddBroker(b.URL()).SetClientID("echo-test-requester"))
	if err := wait(c.Connect()); err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(100)
	if err := wait(c.Subscribe("resp/t/+", 0, func(_ paho.Client, m paho.Message) {
		var r wire.Response
		if wire.DecodeResponse(m.Payload(), &r) == nil {
			got <- r
		}
	})); err != nil {
		t.Fatal(err)
	}
	if err := wait(c.Publish("req/1", 0, false, []byte("no request"))); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		p, err := wire.AppendRequest(nil, &wire.Request{RunID: 3, ClientID: uint32(i), Seq: 7, Intended: int64(i), ReplyTopic: []byte("resp/t/1")}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := wait(c.Publish("req/"+strconv.Itoa(i%4), 0, false, p)); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[uint32]bool{}
	for range n {
		r := <-got
		if r.RunID != 3 || r.Seq != 7 || r.Intended != int64(r.ClientID) || seen[r.ClientID] {
			t.Fatalf("response %+v: not the echo of one request", r)
		}
		seen[r.ClientID] = true
	}
	cancel()
	o := <-done
	if o.err != nil {
		t.Fatal(o.err)
	}
	if o.a.Answered != n || o.a.Malformed != 1 || o.a.Received != n+1 {
		t.Errorf("answered %+v, want %d answered, 1 malformed, %d received", o.a, n, n+1)
	}
}

func TestRespondValidate(t *testing.T) {
	for k, v := range map[string]string{"CONNECTIONS": "0", "SHARE_GROUP": "a/b", "QOS": "5", "DURATION": "-1s"} {
		t.Setenv(k, v)
	}
	var c RespondConfig
	err := envconf.Load(&c)
	if !errors.Is(err, envconf.ErrInvalid) {
		t.Fatalf("err %v, want ErrInvalid", err)
	}
	for _, w := range []string{"CONNECTIONS=0", "SHARE_GROUP=a/b", "QOS=5", "DURATION=-1s"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not name %q:\n%v", w, err)
		}
	}
}
