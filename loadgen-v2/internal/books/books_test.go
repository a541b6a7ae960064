package books

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/wire"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/config"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/loadgentest"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/pending"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/report"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/schedule"
)

// newBooks returns the books of a run env configures (loadgentest.Defaults
// otherwise), over its schedule and a pending table.
func newBooks(t testing.TB, env map[string]string) (*Books, *config.Resolved) {
	t.Helper()
	res := loadgentest.Resolve(t, "tcp://127.0.0.1:1", env)
	sched, err := schedule.New(res.VirtualClients, res.Interval(), res.Connections, func(c int) int { return res.ConnOf(uint32(c)) }, 1)
	if err != nil {
		t.Fatal(err)
	}
	return New(res, sched, pending.New(res.VirtualClients, res.MaxInflight), loadgentest.QuietLog()), res
}

// response is the response of mode to request k intended at (ns), the
// envelope's claiming queueUS of queue wait.
func response(mode wire.Correlation, k wire.Key, at int64, queueUS uint32) mqttconn.Message {
	switch mode {
	case wire.Properties:
		return mqttconn.Message{CorrelationData: wire.AppendCorrelation(nil, k), Payload: []byte("ok")}
	case wire.JSON:
		return mqttconn.Message{Payload: append(wire.AppendID([]byte(`{"status":"ok","id":"`), k), `"}`...)}
	}
	return mqttconn.Message{Payload: wire.AppendResponse(nil, &wire.Response{RunID: k.RunID, ClientID: k.ClientID, Seq: k.Seq, Intended: at, QueueUS: queueUS, ProcessUS: 1})}
}

// TestClassification: each kind of response lands in its count, in every
// correlation mode, and the books balance. Time is the bubble's.
func TestClassification(t *testing.T) {
	for _, mode := range []struct {
		name string
		env  map[string]string
	}{
		{"envelope", nil},
		{"properties", map[string]string{"MQTT_VERSION": "5"}},
		{"json", map[string]string{"CORRELATE": "json:id", "REQUEST_TEMPLATE": `{"id":"{{id}}"}`}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			env := map[string]string{"VIRTUAL_CLIENTS": "100", "INTERVAL_MS": "1000", "REQUEST_TIMEOUT": "500ms", "CLIENT_ID_OFFSET": "1000"}
			for k, v := range mode.env {
				env[k] = v
			}
			b, res := newBooks(t, env)
			codec := res.Requester.Mode
			key := func(client, seq uint32) wire.Key {
				return wire.Key{RunID: res.RunID, ClientID: res.Offset + client, Seq: seq}
			}
			respond := func(client, seq uint32, queueUS uint32) {
				m := response(codec, key(client, seq), b.sched.TimeOf(client, seq), queueUS)
				b.OnResponse(int(client)%4, &m)
			}
			synctest.Test(t, func(t *testing.T) {
				respond(0, 0, 0) // before the start: unknown
				b.Start(time.Now())
				b.SetFired(uint64(b.n)) // every client's fire 0
				claim := func(client uint32) {
					if !b.table.Claim(client, 0) {
						t.Fatalf("claim of client %d", client)
					}
					b.Add(Measured, &Tally{Scheduled: 1, Sent: 1, First: 1})
				}
				for c := range uint32(6) {
					claim(c)
				}
				// Until 40 ms after the last of the six fires.
				var last int64
				for c := range uint32(6) {
					last = max(last, b.sched.TimeOf(c, 0))
				}
				until := func(at int64) { time.Sleep(time.Duration(at - b.Now())) }
				until(last + 40e6)
				respond(0, 0, 0)   // matched
				respond(0, 0, 0)   // duplicate
				respond(1, 0, 2e6) // implausible: 2 s of queue wait in a round trip under 1 s (envelope only)
				respond(2, 3, 0)   // implausible: the answer to fire 3, seconds before it is sent
				m := response(codec, wire.Key{RunID: res.RunID + 1, ClientID: res.Offset + 3}, b.sched.TimeOf(3, 0), 0)
				b.OnResponse(0, &m) // unknown, and other-run: another run of our instance id
				m = response(codec, key(b.n, 0), 0, 0)
				b.OnResponse(0, &m) // unknown: a client not ours
				m = mqttconn.Message{Payload: []byte("garbage")}
				b.OnResponse(0, &m) // malformed
				until(last + 600e6) // past every deadline (REQUEST_TIMEOUT 500 ms)
				respond(3, 0, 0)    // late and timed out: before the sweep
				b.Expire(4, 0)      // the sweep
				respond(4, 0, 0)    // late: after it
				// Client 5's request comes back unsent: send failed.
				req, err := res.Requester.NewEncoder().Encode("req/0", "resp/0", 0, key(5, 0), b.sched.TimeOf(5, 0), 0)
				if err != nil {
					t.Fatal(err)
				}
				b.AddRequestBytes(uint64(len(req.Payload)))
				b.OnUnsent(0, req)
				until(b.sched.TimeOf(2, 2) + 10e6)
				respond(2, 2, 0) // unknown: the scheduler (stalled) has not reached fire 2
			})
			f := b.Final()
			c := f.Measured
			want := report.Counts{Scheduled: 6, RequestsSent: 5, ResponsesMatched: 1, Timeouts: 2, StillPending: 2, SendFailed: 1,
				Late: 2, Duplicate: 1, Implausible: 2, Unknown: 4, UnknownOtherRun: 1, Malformed: 1}
			if codec != wire.Envelope {
				// No worker stamps: client 1's response is matched.
				want.ResponsesMatched, want.StillPending, want.Implausible = 2, 1, 1
			}
			if c != want || !c.Balanced() {
				t.Errorf("counts\n %+v\nwant\n %+v", c, want)
			}
			if f.ClientsFired != 6 || f.RequestBytes != 0 {
				t.Errorf("clients fired %d, request bytes %d; want 6 and 0 (the unsent request taken back)", f.ClientsFired, f.RequestBytes)
			}
			if n := b.Hist.Latency.Total().TotalCount(); n != int64(c.ResponsesMatched) {
				t.Errorf("%d latencies recorded for %d matched", n, c.ResponsesMatched)
			}
			if stamped := b.Hist.WorkerQueue.Total().TotalCount(); (codec == wire.Envelope) != (stamped == 1) {
				t.Errorf("%d worker stamps recorded in mode %v", stamped, codec)
			}
		})
	}
}

// TestPhases: the phase follows the marks and the clock; the warm-up is
// counted apart.
func TestPhases(t *testing.T) {
	b, _ := newBooks(t, map[string]string{"RAMP_UP": "1s", "WARMUP": "2s", "DURATION": "3s"})
	synctest.Test(t, func(t *testing.T) {
		if p := b.Phase(); p != PhaseConnecting {
			t.Errorf("before Start: %v", p)
		}
		b.Start(time.Now())
		for _, want := range []Phase{PhaseRampUp, PhaseWarmUp, PhaseSteady, PhaseDraining} {
			if p := b.Phase(); p != want {
				t.Errorf("at %v: %v, want %v", time.Duration(b.Now()), p, want)
			}
			time.Sleep(time.Second)
		}
		if b.PhaseOf(int64(2*time.Second)-1) != Warmup || b.PhaseOf(int64(2*time.Second)) != Measured {
			t.Error("PhaseOf does not split at WARMUP")
		}
		b.Finish()
		if s := b.Snapshot(); s.Phase != PhaseFinished || !s.Started || s.Elapsed != 4*time.Second {
			t.Errorf("snapshot %+v", s)
		}
	})
	b, _ = newBooks(t, nil)
	b.Start(time.Now())
	b.StopSending()
	if p := b.Phase(); p != PhaseDraining {
		t.Errorf("after StopSending: %v", p)
	}
}
