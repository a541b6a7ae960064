package dispatch

import (
	"context"
	"testing"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/books"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/loadgentest"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/pending"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/schedule"
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

func (t sinkTransport) Len() int                            { return t.n }
func (t sinkTransport) Conn(int) mqttconn.Conn              { return sinkConn{} }
func (t sinkTransport) Up() int                             { return t.n }
func (t sinkTransport) Suspect() int                        { return 0 }
func (t sinkTransport) Capabilities() mqttconn.Capabilities { return mqttconn.Capabilities{} }
func (t sinkTransport) Unsubscribe(context.Context) error   { return nil }
func (t sinkTransport) Close()                              {}

func (sinkConn) Connected() bool                        { return true }
func (sinkConn) Queue(string, []byte) error             { return nil }
func (sinkConn) QueueMessage(*mqttconn.Message) error   { return nil }
func (sinkConn) Publish(string, []byte) error           { return nil }
func (sinkConn) PublishMessage(*mqttconn.Message) error { return nil }
func (sinkConn) Flush()                                 {}

// BenchmarkPublish: one fire through the publisher (schedule lookup, slot
// claim, encode, queue, lag record) of a run of 10,000 clients started a
// second ago, its slot released again.
func BenchmarkPublish(b *testing.B) {
	for _, m := range benchModes {
		b.Run(m.name, func(b *testing.B) {
			env := map[string]string{"VIRTUAL_CLIENTS": "10000", "INTERVAL_MS": "1000", "REQUEST_TIMEOUT": "10s", "INSTANCE_ID": "bench"}
			for k, v := range m.env {
				env[k] = v
			}
			res := loadgentest.Resolve(b, "tcp://127.0.0.1:1", env)
			n := res.VirtualClients
			sched, err := schedule.New(n, res.Interval(), res.Connections, func(c int) int { return res.ConnOf(uint32(c)) },
				min(schedule.PerTick(n, res.Interval(), DefaultGrid), res.BatchSize))
			if err != nil {
				b.Fatal(err)
			}
			table := pending.New(n, res.MaxInflight)
			bk := books.New(res, sched, table, loadgentest.QuietLog())
			bk.Start(time.Now().Add(-time.Second))
			d := New(Params{Res: res, Schedule: sched, Table: table, Books: bk, Transport: sinkTransport{res.Connections}})
			w := newPublisher(d, 0)
			now := bk.Now()
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				f := uint64(i % n)
				w.publish(f, now)
				client, seq, _ := sched.Fire(f)
				table.Release(client, seq)
			}
		})
	}
}
