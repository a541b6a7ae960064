package intake_test

import (
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/wire"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/intake"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/workertest"
)

// envelope is the default correlation mode's rules.
var envelope = wire.Responder{Mode: wire.Envelope}

// counter is a clock that ticks once a reading.
type counter struct{ t atomic.Int64 }

func (c *counter) now() int64 { return c.t.Add(1) }

// newIntake returns an intake of one connection on a queue of capacity items
// and maxBytes bytes.
func newIntake(capacity int, maxBytes int64, dropOnFull bool) (*intake.Intake, *intake.Queue) {
	q := intake.NewQueue(capacity, maxBytes, 1)
	return intake.New(q, 1, envelope, dropOnFull, new(counter).now), q
}

// take takes one item as a worker does and hands it back.
func take(q *intake.Queue) intake.Item {
	it := <-q.Items()
	q.Taken(it)
	q.Done(it)
	return it
}

// TestHandleQueuesWhatTheReplyNeeds: a request is queued with its enqueue
// time; garbage — including well-formed requests whose reply topic is not
// publishable — is counted malformed and never queued.
func TestHandleQueuesWhatTheReplyNeeds(t *testing.T) {
	in, q := newIntake(10, 1<<20, true)
	req := workertest.Request(t, 1, 0)
	in.Handle(0, &mqttconn.Message{Topic: "req/1", Payload: req})
	if q.Len() != 1 || q.Bytes() <= 0 {
		t.Fatalf("queue %d items, %d bytes after one request", q.Len(), q.Bytes())
	}
	it := <-q.Items()
	if string(it.Packed()) != string(req) || it.Enqueued() != 1 {
		t.Errorf("queued %q at %d, want the request at 1", it.Packed(), it.Enqueued())
	}
	q.Taken(it)
	if q.Bytes() != 0 {
		t.Errorf("queue bytes %d after the take", q.Bytes())
	}
	q.Done(it)

	garbage := workertest.Garbage(t, req)
	for _, g := range garbage {
		in.Handle(0, &mqttconn.Message{Topic: "req/3", Payload: g})
	}
	if in.Malformed() != uint64(len(garbage)) || in.Received() != uint64(len(garbage))+1 || q.Len() != 0 {
		t.Errorf("malformed %d, received %d, queued %d; want %d, %d, 0", in.Malformed(), in.Received(), q.Len(), len(garbage), len(garbage)+1)
	}
}

func TestHandleDoesNotAllocate(t *testing.T) {
	in, q := newIntake(10, 1<<20, true)
	m := &mqttconn.Message{Topic: "req/5", Payload: workertest.Request(t, 5, 0)}
	if n := testing.AllocsPerRun(1000, func() {
		in.Handle(0, m)
		take(q)
	}); n != 0 {
		t.Errorf("Handle allocates %v times per message", n)
	}
}

// TestDropReturnsBuffer: a message dropped on a full queue gives its buffer
// back to the free list, so dropping allocates nothing either; every message
// is queued or dropped.
func TestDropReturnsBuffer(t *testing.T) {
	in, q := newIntake(1, 1<<20, true)
	m := &mqttconn.Message{Topic: "req/5", Payload: workertest.Request(t, 5, 0)}
	in.Handle(0, m) // fills the queue
	bytes := q.Bytes()
	if n := testing.AllocsPerRun(1000, func() { in.Handle(0, m) }); n != 0 {
		t.Errorf("a drop allocates %v times", n)
	}
	if in.DroppedFull() == 0 || q.Len() != 1 || q.Bytes() != bytes {
		t.Errorf("after the drops: dropped %d, queued %d, %d bytes (want %d)", in.DroppedFull(), q.Len(), q.Bytes(), bytes)
	}
	if in.Received() != in.DroppedFull()+uint64(q.Len()) {
		t.Errorf("received %d != dropped %d + queued %d", in.Received(), in.DroppedFull(), q.Len())
	}
}

// TestByteBound: 16 KiB requests against a 64 KiB queue of 100 slots. With
// dropOnFull what does not fit in bytes is dropped although slots are free;
// a message into an empty queue passes whatever its size. Without it the
// connection waits for a take, and gives up (abandoned) when the queue
// closes.
func TestByteBound(t *testing.T) {
	const bound = 64 << 10
	big := &mqttconn.Message{Topic: "req/1", Payload: workertest.Request(t, 1, 16<<10)}
	t.Run("drop", func(t *testing.T) {
		in, q := newIntake(100, bound, true)
		for range 10 {
			in.Handle(0, big)
			if q.Bytes() > bound {
				t.Fatalf("queued bytes %d above the bound %d", q.Bytes(), bound)
			}
		}
		if in.DroppedFull() == 0 || q.Len() == 0 || q.Len()+int(in.DroppedFull()) != 10 {
			t.Errorf("queued %d, dropped %d of 10", q.Len(), in.DroppedFull())
		}
		for q.Len() > 0 {
			take(q)
		}
		if q.Bytes() != 0 {
			t.Errorf("empty queue holds %d bytes", q.Bytes())
		}
		huge := &mqttconn.Message{Topic: "req/1", Payload: workertest.Request(t, 1, 2*bound)}
		in.Handle(0, huge)
		if q.Len() != 1 {
			t.Errorf("a message larger than the bound was not queued into the empty queue")
		}
	})
	t.Run("wait", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			in, q := newIntake(100, bound, false)
			for range 3 {
				in.Handle(0, big)
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				in.Handle(0, big) // does not fit: waits
				in.Handle(0, big) // waits until the queue closes
			}()
			synctest.Wait()
			if in.Blocked() != 1 || q.Len() != 3 {
				t.Fatalf("blocked %d, queued %d; want 1, 3", in.Blocked(), q.Len())
			}
			take(q) // room for the first
			synctest.Wait()
			if in.Blocked() != 1 || q.Len() != 3 || q.Bytes() > bound {
				t.Fatalf("after a take: blocked %d, queued %d, %d bytes; want 1, 3, at most %d", in.Blocked(), q.Len(), q.Bytes(), bound)
			}
			q.Close()
			<-done
			if in.Blocked() != 0 || in.Abandoned() != 1 || in.Received() != 5 {
				t.Errorf("after Close: blocked %d, abandoned %d, received %d; want 0, 1, 5", in.Blocked(), in.Abandoned(), in.Received())
			}
			if n := q.Clear(); n != 3 || q.Bytes() != 0 || q.Len() != 0 {
				t.Errorf("Clear = %d, then %d bytes, %d items; want 3, 0, 0", n, q.Bytes(), q.Len())
			}
		})
	})
}

// TestSlotBoundWaits: without dropOnFull a full queue (in slots) holds the
// message until a take, or abandons it when the queue closes.
func TestSlotBoundWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		in, q := newIntake(2, 1<<20, false)
		m := workertest.Message(t, 1)
		in.Handle(0, m)
		in.Handle(0, m)
		done := make(chan struct{})
		go func() {
			defer close(done)
			in.Handle(0, m)
			in.Handle(0, m)
		}()
		synctest.Wait()
		if in.Blocked() != 1 {
			t.Fatalf("blocked %d, want 1", in.Blocked())
		}
		take(q)
		synctest.Wait()
		if in.Blocked() != 1 || q.Len() != 2 {
			t.Fatalf("after a take: blocked %d, queued %d; want 1, 2", in.Blocked(), q.Len())
		}
		q.Close()
		<-done
		if in.Abandoned() != 1 || in.Blocked() != 0 {
			t.Errorf("abandoned %d, blocked %d; want 1, 0", in.Abandoned(), in.Blocked())
		}
	})
}

// TestLastEmpty: a message entering an empty queue marks the time; one
// entering a non-empty queue does not.
func TestLastEmpty(t *testing.T) {
	in, q := newIntake(10, 1<<20, true)
	m := workertest.Message(t, 1)
	in.Handle(0, m) // stamped 1, into an empty queue
	in.Handle(0, m) // stamped 2
	if in.LastEmpty() != 1 {
		t.Errorf("LastEmpty %d, want 1", in.LastEmpty())
	}
	take(q)
	take(q)
	in.Handle(0, m) // stamped 3, into an empty queue
	if in.LastEmpty() != 3 {
		t.Errorf("LastEmpty %d, want 3", in.LastEmpty())
	}
}

// BenchmarkHandle measures the connection side per message: decode, count,
// enqueue (and the worker's dequeue).
func BenchmarkHandle(b *testing.B) {
	in, q := newIntake(1000, 1<<20, true)
	payload := workertest.Request(b, 42, 0)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		in.Handle(0, &mqttconn.Message{Topic: "req/10", Payload: payload})
		take(q)
	}
	if in.Malformed() != 0 || in.DroppedFull() != 0 {
		b.Fatal("payload counted as malformed or dropped")
	}
}
