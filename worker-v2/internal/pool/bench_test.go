package pool

import (
	"context"
	"testing"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/brokertest"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/workertest"
)

// benchHandle measures the worker side per message: take it off the queue,
// process it in MODE=health, encode the reply and publish it on the worker's
// connection, over t. The queue is filled by the intake, 500 at a time, with
// the timer stopped.
func benchHandle(b *testing.B, t mqttconn.Transport) *Pool {
	r := newRig(b, health, true, 1, nil)
	r.p.Start(t, 0)
	w := r.p.newWorker(0)
	m := workertest.Message(b, 42)
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		b.StopTimer()
		n := min(b.N-done, 500)
		for range n {
			r.in.Handle(0, m)
		}
		b.StartTimer()
		for range n {
			it := <-r.q.Items()
			w.take(it)
			w.handle(it)
		}
		done += n
	}
	b.StopTimer()
	w.flush()
	return r.p
}

// BenchmarkProcessHealth publishes through a real pool connected to the
// embedded broker (nobody subscribes to the reply topic).
//
// allocs/op counts the whole process, so it includes the in-process broker
// (mochi allocates per inbound PUBLISH); BenchmarkProcessHealthNoNetwork
// shows the worker's own path. One goroutine publishes faster than mochi
// drains, so part of the replies fail fast with ErrBackpressure (failed/op).
func BenchmarkProcessHealth(b *testing.B) {
	br := brokertest.Start(b)
	conns, err := mqttconn.Dial(context.Background(), mqttconn.Options{
		Broker: br.URL(), ClientIDPrefix: workertest.ClientID("bench"), Connections: 1,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer conns.Close()
	p := benchHandle(b, conns)
	if failed := p.ReplyFailed(); failed > 0 {
		b.ReportMetric(float64(failed)/float64(failed+p.Processed()), "failed/op")
	}
}

// BenchmarkProcessHealthNoNetwork is BenchmarkProcessHealth over an in-memory
// connection that forgets what it writes: the worker's own cost (dequeue,
// decode, encode, topic conversion, counters, histograms). It must report 0
// allocs/op.
func BenchmarkProcessHealthNoNetwork(b *testing.B) {
	p := benchHandle(b, discardTransport{})
	if p.Processed() == 0 {
		b.Fatal("nothing processed")
	}
}

// discardTransport is one connection that accepts and forgets every reply.
type discardTransport struct{ mqttconn.Transport }

func (discardTransport) Len() int                            { return 1 }
func (discardTransport) Conn(int) mqttconn.Conn              { return discardConn{} }
func (discardTransport) Close()                              {}
func (discardTransport) Up() int                             { return 1 }
func (discardTransport) Suspect() int                        { return 0 }
func (discardTransport) Capabilities() mqttconn.Capabilities { return mqttconn.Capabilities{} }
func (discardTransport) Unsubscribe(context.Context) error   { return nil }

type discardConn struct{ mqttconn.Conn }

func (discardConn) QueueMessage(*mqttconn.Message) error   { return nil }
func (discardConn) PublishMessage(*mqttconn.Message) error { return nil }
func (discardConn) Flush()                                 {}
func (discardConn) Connected() bool                        { return true }
