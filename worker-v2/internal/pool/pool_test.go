package pool

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/wire"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/intake"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/modes"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/workertest"
)

// rig is a pool fed by an intake, over an in-memory transport.
type rig struct {
	in *intake.Intake
	q  *intake.Queue
	p  *Pool
	t  *workertest.Transport
}

// newRig returns a pool in mode over conns in-memory connections; selfFlush
// is WRITE_LINGER=0. clock nil: a clock of real time.
func newRig(t testing.TB, mode modes.Options, selfFlush bool, conns int, clock func() int64) *rig {
	t.Helper()
	if clock == nil {
		epoch := time.Now()
		clock = func() int64 { return int64(time.Since(epoch)) }
	}
	q := intake.NewQueue(1000, 1<<20, conns)
	r := &rig{q: q, in: intake.New(q, conns, wire.Responder{Mode: wire.Envelope}, true, clock)}
	r.p = New(q, Options{Processing: mode, Rules: wire.Responder{Mode: wire.Envelope}, MaxWorkers: 8, Connections: conns,
		SelfFlush: selfFlush, Clock: clock, Log: slog.New(slog.DiscardHandler)})
	tr, err := new(workertest.Dialer).Dial(context.Background(), mqttconn.Options{Connections: conns, OnMessage: r.in.Handle, OnUnsent: r.p.Unsent})
	if err != nil {
		t.Fatal(err)
	}
	r.t = tr.(*workertest.Transport)
	return r
}

// queue delivers requests first..first+n-1 on connection 0.
func (r *rig) queue(t testing.TB, first, n int) {
	t.Helper()
	for i := first; i < first+n; i++ {
		r.in.Handle(0, workertest.Message(t, i))
	}
}

// settle lets the workers answer what is queued: in a synctest bubble, a
// second of virtual time passes (sleeps end) and every goroutine is idle.
func settle() {
	time.Sleep(time.Second)
	synctest.Wait()
}

// stop stops the pool and waits for its workers.
func (r *rig) stop() { <-r.p.Stop() }

var health = modes.Options{Mode: modes.Health}

// TestLazyFlushBatches: a MODE=health worker facing a backlog writes its
// replies every flushBatch while the queue stays non-empty and the rest once
// it is empty, so a long backlog never holds a reply back until it ends.
func TestLazyFlushBatches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, health, true, 1, nil)
		const n = 3*flushBatch + 8
		r.queue(t, 0, n)
		r.p.Start(r.t, 1)
		synctest.Wait() // the worker is idle: the backlog is answered
		want := []int{flushBatch, flushBatch, flushBatch, 8}
		if got := r.t.C(0).Batches(); len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] || got[3] != want[3] {
			t.Errorf("flushes wrote %v replies, want %v", got, want)
		}
		if got := r.p.Processed(); got != n {
			t.Errorf("processed %d, want %d", got, n)
		}
		r.stop()
	})
}

// TestWriteModes: how a worker's replies reach the connection's buffer and
// are written: in MODE=health with SelfFlush, once the queue is empty; in
// the other modes with SelfFlush, after each reply; without SelfFlush
// (WRITE_LINGER > 0), published for the connection's flusher, one write per
// reply here.
func TestWriteModes(t *testing.T) {
	for _, tc := range []struct {
		name      string
		mode      modes.Options
		selfFlush bool
		batches   []int
	}{
		{"health, written by the worker when the queue is empty", health, true, []int{5}},
		{"sleep, written by the worker after each reply", modes.Options{Mode: modes.Sleep, Sleep: time.Millisecond}, true, []int{1, 1, 1, 1, 1}},
		{"health, published for the flusher", health, false, []int{1, 1, 1, 1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newRig(t, tc.mode, tc.selfFlush, 1, nil)
				r.queue(t, 0, 5)
				r.p.Start(r.t, 1)
				settle()
				got := r.t.C(0).Batches()
				if len(got) != len(tc.batches) {
					t.Errorf("writes of %v replies, want %v", got, tc.batches)
				}
				for i, reply := range r.t.C(0).Written() {
					var resp wire.Response
					if err := wire.DecodeResponse(reply.Payload, &resp); err != nil || resp.Seq != uint32(i) || reply.Topic != "resp/t/"+string(rune('0'+i%4)) {
						t.Errorf("reply %d: %q %+v %v", i, reply.Topic, resp, err)
					}
				}
				r.stop()
			})
		})
	}
}

// capturingConn keeps the replies queued on it and, for each, the clock's
// last reading when it was queued.
type capturingConn struct {
	mqttconn.Conn
	clock   *steppingClock
	replies []wire.Response
	at      []int64
}

func (c *capturingConn) QueueMessage(m *mqttconn.Message) error {
	var r wire.Response
	if err := wire.DecodeResponse(m.Payload, &r); err != nil {
		return err
	}
	c.replies = append(c.replies, r)
	c.at = append(c.at, c.clock.last())
	return nil
}

func (c *capturingConn) Flush() {}

// oneConn is a transport whose connections are all c.
type oneConn struct {
	mqttconn.Transport
	c mqttconn.Conn
}

func (o oneConn) Conn(int) mqttconn.Conn { return o.c }

// steppingClock advances by step on every reading.
type steppingClock struct {
	step int64
	t    atomic.Int64
}

func (c *steppingClock) now() int64  { return c.t.Add(c.step) }
func (c *steppingClock) last() int64 { return c.t.Load() }

// TestStampsAreDisjoint: the queue wait and the processing time a reply
// carries are consecutive intervals of one clock — together exactly the time
// from the enqueue to the reply — so the requester never sees a worker claim
// more than the round trip. (They were read from two clocks, and the time
// between the readings counted in both: a worker descheduled there under load
// claimed hundreds of ms beyond the round trip, which the loadgen counts
// implausible.) The clock here steps 1 ms on every reading, so any reading
// between the two intervals would show.
func TestStampsAreDisjoint(t *testing.T) {
	for _, mode := range []modes.Options{health, {Mode: modes.Sleep, Sleep: 2 * time.Millisecond}} {
		t.Run(mode.Mode, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				clk := &steppingClock{step: int64(time.Millisecond)}
				r := newRig(t, mode, true, 1, clk.now)
				conn := &capturingConn{Conn: r.t.C(0), clock: clk}
				const n = 5
				var enqueued []int64
				for i := range n {
					r.queue(t, i, 1)
					enqueued = append(enqueued, clk.last())
				}
				r.p.Start(oneConn{r.t, conn}, 1)
				settle()
				if len(conn.replies) != n {
					t.Fatalf("%d replies, want %d", len(conn.replies), n)
				}
				for i, rp := range conn.replies {
					span := time.Duration(conn.at[i] - enqueued[i]).Microseconds()
					claimed := int64(rp.QueueUS) + int64(rp.ProcessUS)
					if claimed != span || rp.QueueUS == 0 || rp.ProcessUS == 0 {
						t.Errorf("reply %d: queue %d µs + processing %d µs = %d µs, want exactly the %d µs from enqueue to reply",
							i, rp.QueueUS, rp.ProcessUS, claimed, span)
					}
				}
				r.stop()
			})
		})
	}
}

// TestScaleTo: workers start and stop as asked; a stop token not taken yet
// is taken back by a later scale-up instead of starting a worker.
func TestScaleTo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, health, true, 2, nil)
		r.p.Start(r.t, 2)
		synctest.Wait()
		for _, n := range []int{5, 1, 3, 3, 8} {
			r.p.ScaleTo(n)
			synctest.Wait()
			if r.p.Live() != n || r.p.Target() != n {
				t.Errorf("ScaleTo(%d): %d live, target %d", n, r.p.Live(), r.p.Target())
			}
		}
		r.queue(t, 0, 100)
		synctest.Wait()
		if r.p.Processed() != 100 || len(r.t.C(0).Written())+len(r.t.C(1).Written()) != 100 {
			t.Errorf("processed %d, written %d + %d; want 100", r.p.Processed(), len(r.t.C(0).Written()), len(r.t.C(1).Written()))
		}
		r.stop()
		if r.p.Live() != 0 {
			t.Errorf("%d workers live after Stop", r.p.Live())
		}
	})
}

// TestStopDrainsAbortAbandons: Stop lets the workers empty the queue; Abort
// cuts the sleep under way short and every request taken after it is
// abandoned too (the shutdown clears what is left).
func TestStopDrainsAbortAbandons(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, modes.Options{Mode: modes.Sleep, Sleep: time.Second}, true, 1, nil)
		r.p.Start(r.t, 1)
		r.queue(t, 0, 3)
		done := r.p.Stop()
		time.Sleep(1500 * time.Millisecond) // one processed, the second being slept on
		synctest.Wait()
		if r.p.Processed() != 1 || r.p.InFlight() != 1 || r.q.Len() != 1 {
			t.Fatalf("processed %d, in flight %d, queued %d; want 1, 1, 1", r.p.Processed(), r.p.InFlight(), r.q.Len())
		}
		r.p.Abort()
		<-done
		if r.p.Processed() != 1 || r.p.Abandoned() != 2 || r.p.InFlight() != 0 || r.q.Len() != 0 || r.p.Live() != 0 {
			t.Errorf("processed %d, abandoned %d, in flight %d, queued %d, live %d; want 1, 2, 0, 0, 0",
				r.p.Processed(), r.p.Abandoned(), r.p.InFlight(), r.q.Len(), r.p.Live())
		}
	})
}

// TestRepliesAvoidADownConnection: while a worker's own connection is down,
// its replies go out on the next connection that is up.
func TestRepliesAvoidADownConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, health, true, 2, nil)
		r.t.C(0).SetDown(true)
		r.p.Start(r.t, 1) // worker 0 replies on connection 0
		r.queue(t, 0, 10)
		synctest.Wait()
		if r.p.Processed() != 10 || r.p.ReplyFailed() != 0 || len(r.t.C(1).Written()) != 10 {
			t.Errorf("processed %d, failed %d, written on connection 1: %d; want 10, 0, 10", r.p.Processed(), r.p.ReplyFailed(), len(r.t.C(1).Written()))
		}
		r.stop()
	})
}

// TestUnsent: a reply the connection discards unwritten moves from processed
// to reply_failed; one it refuses is reply_failed at once.
func TestUnsent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, health, true, 1, nil)
		r.t.C(0).Stall(4)
		r.p.Start(r.t, 1)
		r.queue(t, 0, 10)
		synctest.Wait()
		if r.p.Processed() != 4 || r.p.ReplyFailed() != 6 {
			t.Fatalf("stalled: processed %d, reply_failed %d; want 4, 6", r.p.Processed(), r.p.ReplyFailed())
		}
		r.t.C(0).Reset()
		if r.p.Processed() != 0 || r.p.ReplyFailed() != 10 {
			t.Errorf("after the reset: processed %d, reply_failed %d; want 0, 10", r.p.Processed(), r.p.ReplyFailed())
		}
		if finished, _ := r.p.Occupancy(); finished != 10 {
			t.Errorf("finished %d, want 10 (whatever became of the replies)", finished)
		}
		r.stop()
	})
}

// TestHistograms: every processed request is recorded once in each latency
// histogram.
func TestHistograms(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, modes.Options{Mode: modes.Sleep, Sleep: 3 * time.Millisecond}, true, 1, nil)
		r.queue(t, 0, 20)
		r.p.Start(r.t, 1)
		settle()
		wait, proc := r.p.QueueWait(), r.p.Processing()
		if wait.TotalCount() != 20 || proc.TotalCount() != 20 {
			t.Fatalf("recorded %d queue waits and %d processing times, want 20 each", wait.TotalCount(), proc.TotalCount())
		}
		if !proc.ValuesAreEquivalent(proc.Min(), 3000) || !proc.ValuesAreEquivalent(proc.Max(), 3000) || !wait.ValuesAreEquivalent(wait.Max(), 19*3000) {
			t.Errorf("processing %d..%d µs, queue wait up to %d µs; want 3000, 3000, %d", proc.Min(), proc.Max(), wait.Max(), 19*3000)
		}
		r.stop()
	})
}
