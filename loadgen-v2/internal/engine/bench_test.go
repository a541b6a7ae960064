package engine

import (
	"testing"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/wire"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/config"
)

// benchModes are the correlation modes the hot-path benchmarks run in.
var benchModes = []struct {
	name string
	env  map[string]string
}{
	{"envelope", nil},
	{"properties", map[string]string{"MQTT_VERSION": "5", "PAYLOAD_BYTES": "64"}},
	{"json", map[string]string{"CORRELATE": "json:id", "REQUEST_TEMPLATE": `{"id":"{{id}}","reply_to":"{{reply}}","ts":{{ts}}}`}},
}

// sinkTransport accepts every message and drops it.
type sinkTransport struct{ n int }

type sinkConn struct{}

func (t sinkTransport) Conn(int) mqttconn.Conn { return sinkConn{} }
func (t sinkTransport) Up() int                { return t.n }
func (t sinkTransport) Suspect() int           { return 0 }
func (t sinkTransport) Close()                 {}

func (sinkConn) Connected() bool                        { return true }
func (sinkConn) Queue(string, []byte) error             { return nil }
func (sinkConn) QueueMessage(*mqttconn.Message) error   { return nil }
func (sinkConn) Publish(string, []byte) error           { return nil }
func (sinkConn) PublishMessage(*mqttconn.Message) error { return nil }
func (sinkConn) Flush()                                 {}

// benchEngine is an engine of 10,000 clients on a sinkTransport, started one
// second ago (so every fire of the first interval is due).
func benchEngine(b *testing.B, env map[string]string) *Engine {
	b.Helper()
	base := map[string]string{
		"BROKER": "tcp://127.0.0.1:1", "VIRTUAL_CLIENTS": "10000", "CONNECTIONS": "4", "SHARDS": "16",
		"INTERVAL_MS": "1000", "REQUEST_TIMEOUT": "10s", "METRICS_ADDR": "", "INSTANCE_ID": "bench",
	}
	for k, v := range env {
		base[k] = v
	}
	for k, v := range base {
		b.Setenv(k, v)
	}
	cfg, err := config.Load()
	if err != nil {
		b.Fatal(err)
	}
	e, err := New(cfg, quietLog(), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	e.pool = sinkTransport{cfg.Connections}
	e.epoch = time.Now().Add(-time.Second)
	e.epochMS = e.epoch.UnixMilli()
	e.started.Store(true)
	return e
}

// BenchmarkPublish: one fire through the publisher (schedule lookup, slot
// claim, encode, queue, lag record), its slot released again.
func BenchmarkPublish(b *testing.B) {
	for _, m := range benchModes {
		b.Run(m.name, func(b *testing.B) {
			e := benchEngine(b, m.env)
			w := newPublisher(e, 0)
			now := e.now()
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				f := uint64(i % int(e.n))
				w.publish(f, now)
				client, seq, _ := e.sched.Fire(f)
				e.table.Release(client, seq)
			}
		})
	}
}

// BenchmarkResponse: one response through classification and matching
// (decode, key, books, latency record), its request claimed again first.
func BenchmarkResponse(b *testing.B) {
	for _, m := range benchModes {
		b.Run(m.name, func(b *testing.B) {
			e := benchEngine(b, m.env)
			msgs := make([]mqttconn.Message, e.n)
			for c := range e.n {
				k := wire.Key{RunID: e.runID, ClientID: e.offset + c, Seq: 0}
				switch e.proto.Correlation {
				case wire.Envelope:
					msgs[c].Payload = wire.AppendResponse(nil, &wire.Response{RunID: k.RunID, ClientID: k.ClientID, Intended: e.sched.TimeOf(c, 0), QueueUS: 1, ProcessUS: 1})
				case wire.Properties:
					msgs[c].CorrelationData = wire.AppendCorrelation(nil, k)
					msgs[c].Payload = []byte("ok")
				case wire.JSON:
					msgs[c].Payload = append(wire.AppendID([]byte(`{"status":"ok","id":"`), k), `"}`...)
				}
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				c := uint32(i) % e.n
				e.table.Claim(c, 0)
				e.onResponse(int(c&3), &msgs[c])
			}
			b.StopTimer()
			if got := e.counts[0].matched.Load() + e.counts[1].matched.Load(); got == 0 {
				b.Fatal("no response matched")
			}
		})
	}
}
