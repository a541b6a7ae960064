package engine

import (
	"context"
	"log/slog"
	"testing"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/wire"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/modes"
)

// BenchmarkHandle measures the connection side per message: decode, count,
// enqueue (and the worker's dequeue).
func BenchmarkHandle(b *testing.B) {
	e, err := New(testConfig("tcp://127.0.0.1:1883"), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	payload := request(b, 42)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		e.handle(0, &mqttconn.Message{Topic: "req/10", Payload: payload})
		it := <-e.queue
		e.release(it)
		payloads.put(it.buf)
	}
	if e.malformed() != 0 || e.droppedFull() != 0 {
		b.Fatal("payload counted as malformed or dropped")
	}
}

// BenchmarkProcessHealth measures the worker side per message in MODE=health:
// dequeue, decode, encode the response, publish it through a real pool
// connected to the embedded broker (nobody subscribes to the reply topic).
//
// allocs/op counts the whole process, so it includes the in-process broker
// (mochi allocates per inbound PUBLISH); BenchmarkProcessHealthNoNetwork
// shows the worker's own path. One goroutine publishes faster than mochi
// drains, so part of the replies fail fast with ErrBackpressure (failed/op).
func BenchmarkProcessHealth(b *testing.B) {
	br := startBroker(b)
	cfg := testConfig(br.URL())
	cfg.Connections = 1
	e, err := New(cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		b.Fatal(err)
	}
	pool, err := mqttconn.Dial(context.Background(), mqttconn.Options{
		Broker: br.URL(), ClientIDPrefix: cfg.ClientIDPrefix, Connections: 1, Linger: cfg.WriteLinger,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	proc, _ := modes.New(modes.Options{Mode: modes.Health}, 1)
	w := &worker{e: e, conn: pool.Conn(0), proc: proc, st: &e.work[0], buf: make([]byte, 0, wire.ResponseSize)}
	payload := request(b, 42)
	b.ReportAllocs()
	for b.Loop() {
		w.handle(queued(e, payload))
	}
	b.StopTimer()
	if failed := e.replyFailed(); failed > 0 {
		b.ReportMetric(float64(failed)/float64(e.replyFailed()+e.processed()), "failed/op")
	}
}

// queued passes payload through the queue as handle would (a pooled copy)
// and returns the item a worker takes.
func queued(e *Engine, payload []byte) item {
	bp := payloads.get()
	*bp = append((*bp)[:0], payload...)
	e.queue <- item{buf: bp, enqueued: e.now()}
	return <-e.queue
}

// discardConn is a Conn that accepts and forgets every reply: it isolates the
// worker's own cost (dequeue, decode, encode, topic conversion, counters,
// histograms) from the network and the broker. The embedded (nil) Conn
// satisfies the methods the worker does not call.
type discardConn struct {
	mqttconn.Conn
	n int
}

func (c *discardConn) Publish(topic string, payload []byte) error {
	c.n += len(topic) + len(payload)
	return nil
}
func (c *discardConn) Queue(topic string, payload []byte) error { return c.Publish(topic, payload) }
func (c *discardConn) QueueMessage(m *mqttconn.Message) error {
	return c.Publish(m.Topic, m.Payload)
}
func (c *discardConn) PublishMessage(m *mqttconn.Message) error {
	return c.Publish(m.Topic, m.Payload)
}
func (c *discardConn) Flush()          {}
func (c *discardConn) Connected() bool { return true }

// BenchmarkProcessHealthNoNetwork is BenchmarkProcessHealth without the pool:
// it must report 0 allocs/op.
func BenchmarkProcessHealthNoNetwork(b *testing.B) {
	e, err := New(testConfig("tcp://127.0.0.1:1883"), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	proc, _ := modes.New(modes.Options{Mode: modes.Health}, 1)
	w := &worker{e: e, conn: &discardConn{}, proc: proc, st: &e.work[0], buf: make([]byte, 0, wire.ResponseSize)}
	payload := request(b, 42)
	b.ReportAllocs()
	for b.Loop() {
		w.handle(queued(e, payload))
	}
	if e.processed() == 0 {
		b.Fatal("nothing processed")
	}
}
