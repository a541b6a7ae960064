package brokertest

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// TestStartAcceptsAClient: the broker Start returns takes an MQTT connection
// at its address.
func TestStartAcceptsAClient(t *testing.T) {
	b := Start(t)
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID("brokertest"))
	tok := c.Connect()
	tok.Wait()
	if err := tok.Error(); err != nil {
		t.Fatalf("connect to %s: %v", b.URL(), err)
	}
	c.Disconnect(0)
}

// TestFreeAddrIsBindableAndDistinct: consecutive addresses differ and each
// can be bound.
func TestFreeAddrIsBindableAndDistinct(t *testing.T) {
	seen := map[string]bool{}
	for range 5 {
		a := FreeAddr(t)
		if seen[a] {
			t.Fatalf("%s handed out twice", a)
		}
		seen[a] = true
		l, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatalf("bind %s: %v", a, err)
		}
		_ = l.Close()
	}
}

// TestScrapeAndSample: Sample picks the one series by its labels and reads
// counters and gauges; JSON endpoints decode.
func TestScrapeAndSample(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stats" {
			_, _ = w.Write([]byte(`{"processed": 7}`))
			return
		}
		_, _ = w.Write([]byte("# TYPE x_total counter\nx_total{a=\"1\"} 3\nx_total{a=\"2\"} 4\n# TYPE g gauge\ng 2.5\n"))
	}))
	defer srv.Close()
	mfs := Scrape(t, srv.URL+"/metrics")
	if v := Sample(t, mfs, "x_total", "a", "2"); v != 4 {
		t.Errorf("x_total{a=2} = %v, want 4", v)
	}
	if v := Sample(t, mfs, "g"); v != 2.5 {
		t.Errorf("g = %v, want 2.5", v)
	}
	var s struct{ Processed int }
	GetJSON(t, srv.URL+"/stats", &s)
	if s.Processed != 7 {
		t.Errorf("processed %d, want 7", s.Processed)
	}
	n := 0
	WaitFor(t, "three polls", func() bool { n++; return n == 3 })
	WaitOK(t, srv.URL+"/stats")
}

// TestAwaitReturnsWhenTheConditionHolds: Await polls until cond holds and
// says how long that took; WaitOK waits for a 200 after other answers.
func TestAwaitReturnsWhenTheConditionHolds(t *testing.T) {
	n := 0
	took := Await(t, "the fourth poll", time.Millisecond, func() (bool, string) { n++; return n == 4, "poll " + strconv.Itoa(n) })
	if n != 4 || took < 3*time.Millisecond {
		t.Errorf("Await returned after %d polls and %v, want 4 polls, three 1 ms pauses", n, took)
	}
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			http.Error(w, "starting", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	WaitOK(t, srv.URL+"/ready")
	if calls.Load() != 3 {
		t.Errorf("WaitOK returned after %d requests, want 3 (two 503s, then 200)", calls.Load())
	}
}

// TestStartMosquitto: the Mosquitto StartMosquitto returns takes an MQTT
// connection (the test skips where Mosquitto is not installed).
func TestStartMosquitto(t *testing.T) {
	m := StartMosquitto(t, "")
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(m.URL()).SetClientID("brokertest-mosquitto"))
	tok := c.Connect()
	tok.Wait()
	if err := tok.Error(); err != nil {
		t.Fatalf("connect to %s: %v", m.URL(), err)
	}
	c.Disconnect(0)
}
