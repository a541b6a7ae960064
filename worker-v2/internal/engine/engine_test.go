package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/wire"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/config"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/engine"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/modes"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/workertest"
)

// Tests over the in-memory transport (package workertest): the request
// path, its books and its lifecycle, where a broker is not what is tested.
// Timing runs under testing/synctest.

func memConfig() *config.Config { return workertest.Config("tcp://in-memory:1883") }

// TestAnswersAndStats: requests delivered on both connections are answered
// once each, garbage is malformed, and Stats (the /stats document) says so.
func TestAnswersAndStats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := memConfig()
		e := startMem(t, c)
		if e.Phase() != engine.Steady {
			t.Errorf("phase %q when ready, want steady", e.Phase())
		}
		const n = 300
		for i := range n {
			e.deliver(t, i%2, i, 1)
		}
		for _, g := range [][]byte{{}, []byte("hello, worker"), wire.AppendResponse(nil, &wire.Response{RunID: 1})} {
			e.mem.Deliver(1, &mqttconn.Message{Topic: "req/3", Payload: g})
		}
		time.Sleep(2 * time.Second) // two rate samples
		synctest.Wait()
		answered := map[uint32]int{}
		for i := range 2 {
			for _, r := range e.mem.C(i).Written() {
				var resp wire.Response
				if err := wire.DecodeResponse(r.Payload, &resp); err != nil || resp.RunID != 7 || resp.Intended != int64(resp.Seq)*1_000_003 {
					t.Errorf("reply %q %+v %v", r.Topic, resp, err)
				}
				answered[resp.Seq]++
			}
		}
		for i := range n {
			if answered[uint32(i)] != 1 {
				t.Errorf("request %d answered %d times", i, answered[uint32(i)])
			}
		}
		s := e.Stats()
		if s.Received != n+3 || s.Processed != n || s.Malformed != 3 || s.DroppedFull != 0 || s.ReplyFailed != 0 {
			t.Errorf("stats %+v", s)
		}
		checkIdentity(t, s)
		if s.ConnectionsUp != 2 || s.Connections != 2 || s.Workers != c.MinWorkers || s.QueueCap != c.QueueCap ||
			s.Mode != "health" || s.Draining || s.MinWorkers != 2 || s.MaxWorkers != 4 || s.ScalingEvents == nil || s.RateRPS <= 0 {
			t.Errorf("stats %+v", s)
		}
		if s.DemandWorkers < 0 || s.DemandWorkers > 1 || s.Utilization < 0 || s.Utilization > 1 {
			t.Errorf("demand %v, utilization %v at light load, want 0..1", s.DemandWorkers, s.Utilization)
		}
		body, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var raw map[string]any
		_ = json.Unmarshal(body, &raw)
		for _, k := range []string{"workers", "min_workers", "max_workers", "gomaxprocs", "queue_depth", "queue_cap", "received", "processed",
			"dropped_full", "malformed", "refused", "reply_failed", "abandoned", "rate_rps", "connections_up", "connections_suspect", "connections",
			"mode", "draining", "scaling_events", "queue_bytes", "queue_max_bytes", "queue_oldest_seconds", "in_flight", "blocked",
			"arrival_rps", "service_seconds", "demand_workers", "need_workers", "utilization", "broker", "inbound_oversized"} {
			if _, ok := raw[k]; !ok {
				t.Errorf("stats JSON lacks %q", k)
			}
		}
		if len(raw) != 32 {
			t.Errorf("stats JSON has %d fields, want 32: %s", len(raw), body)
		}
		if b, _ := raw["broker"].(map[string]any); b["protocol"] != "3.1.1" {
			t.Errorf("stats broker %v, want the transport's record (protocol 3.1.1)", raw["broker"])
		}
		e.stop(t)
		if e.Phase() != engine.Finished {
			t.Errorf("phase %q after Run, want finished", e.Phase())
		}
		if s := e.Stats(); s.Received != n+3 || s.Processed != n || e.written() != n {
			t.Errorf("after Run: received %d, processed %d, %d replies written; want %d, %d, %d", s.Received, s.Processed, e.written(), n+3, n, n)
		}
	})
}

// TestDropOnFull: one slow worker and a queue of 2 drop most of a burst, and
// every message is still accounted for.
func TestDropOnFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := memConfig()
		c.Connections = 1
		c.Mode, c.SleepMS = modes.Sleep, 20
		c.QueueCap = 2
		c.MinWorkers, c.MaxWorkers = 1, 1
		c.DropOnFull = true
		e := startMem(t, c)
		const n = 40
		e.deliver(t, 0, 0, 1)
		synctest.Wait() // the worker sleeps on the first
		e.deliver(t, 0, 1, n-1)
		time.Sleep(time.Second)
		synctest.Wait()
		s := e.Stats()
		if s.Received != n || s.Processed != 3 || s.DroppedFull != n-3 || s.QueueDepth != 0 || s.InFlight != 0 {
			t.Errorf("received %d, processed %d, dropped_full %d, queued %d, in flight %d; want %d, 3, %d, 0, 0",
				s.Received, s.Processed, s.DroppedFull, s.QueueDepth, s.InFlight, n, n-3)
		}
		checkIdentity(t, s)
		e.stop(t)
		if got := e.written(); got != int(s.Processed) {
			t.Errorf("%d replies, want %d (processed)", got, s.Processed)
		}
	})
}

// TestGracefulDrain: with a queue full of slow work, cancelling the context
// turns the phase to draining, and every queued request is processed and
// replied to before Run returns.
func TestGracefulDrain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := memConfig()
		c.Connections = 1
		c.Mode, c.SleepMS = modes.Sleep, 30
		c.MinWorkers, c.MaxWorkers = 1, 1
		c.DropOnFull = false
		e := startMem(t, c)
		const n = 30
		e.deliver(t, 0, 0, n)
		synctest.Wait()
		if s := e.Stats(); s.QueueDepth != n-1 {
			t.Fatalf("queue holds %d, want %d (the test needs a backlog)", s.QueueDepth, n-1)
		}
		e.cancel()
		time.Sleep(10 * time.Millisecond) // into the drain, far from its end
		synctest.Wait()
		if p := e.Phase(); p != engine.Draining || !e.Stats().Draining {
			t.Errorf("phase %q, stats draining %v after the cancel; want draining", p, e.Stats().Draining)
		}
		if err := <-e.errc; err != nil {
			t.Fatalf("Run = %v", err)
		}
		s := e.Stats()
		if s.Processed != n || s.Abandoned != 0 || s.QueueDepth != 0 || s.InFlight != 0 || s.Workers != 0 {
			t.Errorf("after drain: %+v", s)
		}
		checkIdentity(t, s)
		if e.written() != n {
			t.Errorf("%d replies written, want %d", e.written(), n)
		}
	})
}

// TestShutdownTimeoutAbandons: what SHUTDOWN_TIMEOUT cannot drain is counted
// as abandoned, and Run returns when it expires.
func TestShutdownTimeoutAbandons(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := memConfig()
		c.Connections = 1
		c.Mode, c.SleepMS = modes.Sleep, 200
		c.MinWorkers, c.MaxWorkers = 1, 1
		c.ShutdownTimeout = 300 * time.Millisecond
		e := startMem(t, c)
		const n = 10
		e.deliver(t, 0, 0, n)
		start := time.Now()
		e.stop(t)
		if d := time.Since(start); d > c.ShutdownTimeout+time.Second { // + the settle after unsubscribing
			t.Errorf("Run returned %v after the cancel, SHUTDOWN_TIMEOUT is %v", d, c.ShutdownTimeout)
		}
		s := e.Stats()
		if s.Abandoned == 0 || s.Processed+s.Abandoned != n || s.QueueDepth != 0 || s.InFlight != 0 {
			t.Errorf("after a timed-out drain: %+v", s)
		}
		checkIdentity(t, s)
	})
}

// TestAutoscaleUnderLoad: with the default queue (QUEUE_CAP 100,000, fill
// thresholds 0.7/0.2) a burst of slow requests fills 0.4% of it, so the fill
// trigger never fires; the pool still scales up on demand (or queue wait) at
// once, every request is answered, and after the stabilisation window the
// pool returns to MIN_WORKERS. The events and counts show in Stats and
// ScalingCounts. DROP_ON_FULL=false: nothing is lost.
func TestAutoscaleUnderLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := memConfig()
		c.Mode, c.SleepMS = modes.Sleep, 20
		c.QueueCap = config.Defaults().QueueCap
		c.MinWorkers, c.MaxWorkers = 1, 64
		c.ScaleInterval = 50 * time.Millisecond
		c.ScaleMaxWait = 200 * time.Millisecond
		c.ScaleDownWindow = 200 * time.Millisecond
		c.DropOnFull = false
		e := startMem(t, c)
		const n = 400 // 8 s of work for one worker, 0.4% of the queue
		e.deliver(t, 0, 0, n)
		up := false
		for start := time.Now(); !up || e.written() != n || e.Stats().Workers != 1; {
			if time.Since(start) > time.Minute {
				t.Fatalf("after a minute: scaled up %v, %d replies, %d workers; want true, %d, 1", up, e.written(), e.Stats().Workers, n)
			}
			time.Sleep(10 * time.Millisecond)
			up = up || e.Stats().Workers > 1
		}
		s := e.Stats()
		if s.Processed != n || s.DroppedFull != 0 || s.QueueDepth != 0 || s.QueueBytes != 0 || s.Blocked != 0 {
			t.Errorf("stats %+v", s)
		}
		checkIdentity(t, s)
		var ups, downs bool
		for _, ev := range s.ScalingEvents {
			t.Logf("event %v → %v %s: %s", ev.From, ev.To, ev.Trigger, ev.Reason)
			if ev.To > ev.From {
				ups = true
				if ev.Trigger != "demand" && ev.Trigger != "queue_wait" {
					t.Errorf("scale-up on %q, want demand or queue_wait (the queue never filled): %+v", ev.Trigger, ev)
				}
			}
			downs = downs || ev.To < ev.From && ev.Trigger == "down"
			if ev.Reason == "" || ev.Time.IsZero() {
				t.Errorf("event without reason or time: %+v", ev)
			}
		}
		if !ups || !downs {
			t.Errorf("scaling events %+v: want at least one up and one down", s.ScalingEvents)
		}
		if nu, nd := e.ScalingCounts(); nu < 1 || nd < 1 {
			t.Errorf("scaling counts up %d, down %d: want both ≥ 1", nu, nd)
		}
		// Every request occupies its worker exactly SLEEP_MS of virtual time.
		// A sample may split one request (a worker adds its occupancy before
		// counting it finished), which moves the mean of an interval of tens
		// of requests by a few percent.
		if s.ServiceSeconds < 0.019 || s.ServiceSeconds > 0.021 || s.ArrivalRPS != 0 {
			t.Errorf("last sample: service %v s (SLEEP_MS 20 ms, within 5%%), arrivals %v/s (0 once idle)", s.ServiceSeconds, s.ArrivalRPS)
		}
		e.stop(t)
	})
}

// TestQueueMaxBytes: 16 KiB requests against QUEUE_MAX_BYTES = 64 KiB and a
// slow worker. DROP_ON_FULL=true drops what does not fit in bytes although
// the queue has slots to spare; DROP_ON_FULL=false waits for room and loses
// nothing. The queued bytes never pass the bound, return to 0, and every
// message is accounted for.
func TestQueueMaxBytes(t *testing.T) {
	for _, drop := range []bool{true, false} {
		name := "DROP_ON_FULL=false"
		if drop {
			name = "DROP_ON_FULL=true"
		}
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := memConfig()
				c.Connections = 1
				c.Mode, c.SleepMS = modes.Sleep, 10
				c.MinWorkers, c.MaxWorkers = 1, 1
				c.QueueMaxBytes = config.MinQueueBytes
				c.DropOnFull = drop
				e := startMem(t, c)
				const n = 40
				var burst []*mqttconn.Message
				for i := range n {
					burst = append(burst, &mqttconn.Message{Topic: workertest.RequestTopic(i), Payload: workertest.Request(t, i, 16<<10)})
				}
				go func() {
					for _, m := range burst {
						e.mem.Deliver(0, m)
					}
				}()
				var peak int64
				start := time.Now()
				for s := e.Stats(); s.Received != n || s.QueueDepth != 0 || s.InFlight != 0 || s.Blocked != 0; s = e.Stats() {
					if time.Since(start) > time.Minute {
						t.Fatalf("the burst not settled after a minute: %+v", s)
					}
					peak = max(peak, s.QueueBytes)
					time.Sleep(time.Millisecond)
				}
				s := e.Stats()
				t.Logf("processed %d, dropped_full %d, peak queue bytes %d of %d", s.Processed, s.DroppedFull, peak, c.QueueMaxBytes)
				checkIdentity(t, s)
				if peak > c.QueueMaxBytes || peak == 0 {
					t.Errorf("queued bytes peaked at %d, want 0 < peak ≤ QUEUE_MAX_BYTES %d", peak, c.QueueMaxBytes)
				}
				if s.QueueBytes != 0 || s.QueueMaxBytes != c.QueueMaxBytes {
					t.Errorf("queue_bytes %d (want 0 when empty), queue_max_bytes %d", s.QueueBytes, s.QueueMaxBytes)
				}
				if drop && (s.DroppedFull == 0 || s.Processed == 0) {
					t.Errorf("DROP_ON_FULL=true: dropped_full %d, processed %d, want both > 0 (bytes bound, 3 of %d slots)", s.DroppedFull, s.Processed, c.QueueCap)
				}
				if !drop && (s.DroppedFull != 0 || s.Processed != n) {
					t.Errorf("DROP_ON_FULL=false: dropped_full %d, processed %d, want 0 and %d", s.DroppedFull, s.Processed, n)
				}
				e.stop(t)
				if e.written() != int(s.Processed) {
					t.Errorf("%d replies, want %d (processed)", e.written(), s.Processed)
				}
			})
		})
	}
}

// TestBlockedAccounting: DROP_ON_FULL=false under lasting back-pressure (one
// worker stuck on a long request, a queue of 2, both connections holding a
// message they cannot queue): the identity holds exactly, the held messages
// counted as blocked; at shutdown they are abandoned, still exactly.
func TestBlockedAccounting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := memConfig()
		c.Connections = 2
		c.Mode, c.SleepMS = modes.Sleep, 60_000
		c.MinWorkers, c.MaxWorkers = 1, 1
		c.QueueCap = 2
		c.DropOnFull = false
		c.ShutdownTimeout = 200 * time.Millisecond
		e := startMem(t, c)
		// 1 in flight, 2 queued, then one held on each connection.
		e.deliver(t, 0, 0, 1)
		synctest.Wait() // the worker sleeps on it
		e.deliver(t, 0, 1, 2)
		delivered := make(chan bool, 2)
		for conn := range 2 {
			go func() { delivered <- e.mem.Deliver(conn, workertest.Message(t, 3+conn)) }()
		}
		synctest.Wait()
		s := e.Stats()
		if s.InFlight != 1 || s.QueueDepth != 2 || s.Blocked != 2 || s.Received != 5 {
			t.Errorf("under back-pressure: in flight %d, queued %d, blocked %d, received %d; want 1, 2, 2, 5", s.InFlight, s.QueueDepth, s.Blocked, s.Received)
		}
		checkIdentity(t, s)

		e.stop(t)
		for range 2 {
			<-delivered // the held messages were released
		}
		s = e.Stats()
		if s.Abandoned != 5 || s.Received != 5 || s.Processed != 0 || s.Blocked != 0 || s.QueueBytes != 0 {
			t.Errorf("after shutdown: abandoned %d of %d received (want all 5), processed %d, blocked %d, queue bytes %d",
				s.Abandoned, s.Received, s.Processed, s.Blocked, s.QueueBytes)
		}
		checkIdentity(t, s)
	})
}

// TestOldestWait: the oldest queued age is 0 on an empty queue, at least the
// age of the head, and fresh when a message entered an empty queue even if
// the last message taken is old.
func TestOldestWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := memConfig()
		c.Connections = 1
		c.Mode, c.SleepMS = modes.Sleep, 1000
		c.MinWorkers, c.MaxWorkers = 1, 1
		e := startMem(t, c)
		oldest := func() time.Duration { return time.Duration(e.Stats().QueueOldestSeconds * float64(time.Second)) }
		e.deliver(t, 0, 0, 1) // W: the worker sleeps on it until t+1s
		synctest.Wait()
		if d := oldest(); d != 0 {
			t.Errorf("empty queue: oldest %v", d)
		}
		e.deliver(t, 0, 1, 1) // A, into an empty queue
		time.Sleep(20 * time.Millisecond)
		e.deliver(t, 0, 2, 1) // B
		if d := oldest(); d < 20*time.Millisecond {
			t.Errorf("A queued 20 ms ago: oldest %v", d)
		}
		time.Sleep(2 * time.Second) // W done, A done, B taken (at t+2s) and slept on
		synctest.Wait()
		if d := oldest(); d != 0 {
			t.Errorf("queue emptied: oldest %v", d)
		}
		const idle = 200 * time.Millisecond
		time.Sleep(idle)
		e.deliver(t, 0, 3, 1) // C, into an empty queue: B (the last taken) arrived over 2 s ago
		if d := oldest(); d >= idle {
			t.Errorf("C just queued: oldest %v, want below the %v since B was taken", d, idle)
		}
		e.stop(t)
	})
}

func TestRunErrors(t *testing.T) {
	t.Run("cancelled while connecting, then run again", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			e := engine.New(workertest.Resolve(t, memConfig()), workertest.Unreachable, workertest.Logger(t))
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			if err := e.Run(ctx); err != nil {
				t.Errorf("Run cancelled while connecting = %v, want nil", err)
			}
			select {
			case <-e.Ready():
				t.Error("Ready closed without a connection")
			default:
			}
			if e.Phase() != engine.Connecting {
				t.Errorf("phase %q, want connecting", e.Phase())
			}
			if err := e.Run(context.Background()); !errors.Is(err, engine.ErrRunTwice) {
				t.Errorf("second Run = %v, want ErrRunTwice", err)
			}
		})
	})
	t.Run("connect error", func(t *testing.T) {
		refused := errors.New("connection refused")
		dial := func(context.Context, mqttconn.Options) (mqttconn.Transport, error) { return nil, refused }
		e := engine.New(workertest.Resolve(t, memConfig()), dial, workertest.Logger(t))
		if err := e.Run(context.Background()); !errors.Is(err, refused) {
			t.Errorf("Run = %v, want the dial error", err)
		}
	})
}

// TestWorkerCap: the pool's bound is the resolved WorkerCap (MAX_WORKERS,
// capped in MODE=cpu; see config.Resolve), in Stats too.
func TestWorkerCap(t *testing.T) {
	c := memConfig()
	c.Mode, c.MinWorkers, c.MaxWorkers = modes.CPU, 1, 100_000
	r := workertest.Resolve(t, c)
	if s := engine.New(r, nil, nil).Stats(); s.MaxWorkers != r.WorkerCap || s.MaxWorkers >= c.MaxWorkers {
		t.Errorf("max workers %d, want the cap %d (MAX_WORKERS %d)", s.MaxWorkers, r.WorkerCap, c.MaxWorkers)
	}
}

// TestConnections: Connections follows the transport: before Run nothing, then
// what is up and suspect.
func TestConnections(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := startMem(t, memConfig())
		if n, up, suspect := e.Connections(); n != 2 || up != 2 || suspect != 0 {
			t.Errorf("connections %d, up %d, suspect %d; want 2, 2, 0", n, up, suspect)
		}
		e.mem.C(1).SetDown(true)
		e.mem.C(0).SetSuspect(true)
		if n, up, suspect := e.Connections(); n != 2 || up != 1 || suspect != 1 {
			t.Errorf("connections %d, up %d, suspect %d; want 2, 1, 1", n, up, suspect)
		}
		if ev := e.ConnEvents(); ev.Connects() != 2 || ev.Losses() != 1 {
			t.Errorf("connects %d, losses %d; want 2, 1", ev.Connects(), ev.Losses())
		}
		e.stop(t)
		if ev := e.ConnEvents(); ev.Losses() != 1 {
			t.Errorf("losses %d after Run, want 1 (closing is no loss)", ev.Losses())
		}
	})
}

// TestFirstSample: the autoscaler's first sample measures from the moment
// Run connected, so it sees the arrivals of its first interval; nothing has
// finished, so the service time is unknown (0) and the rule asks for nothing.
func TestFirstSample(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := memConfig()
		c.Connections = 1
		c.Mode, c.SleepMS = modes.Sleep, 1700
		c.MinWorkers, c.MaxWorkers = 1, 4
		c.ScaleInterval = time.Second
		e := startMem(t, c)
		e.deliver(t, 0, 0, 10)
		time.Sleep(1500 * time.Millisecond)
		s := e.Stats()
		if s.ArrivalRPS != 10 || s.ServiceSeconds != 0 || s.NeedWorkers != 0 || s.DemandWorkers != 0 {
			t.Errorf("first sample: arrivals %v/s, service %v s, need %d, demand %v; want 10, 0, 0, 0", s.ArrivalRPS, s.ServiceSeconds, s.NeedWorkers, s.DemandWorkers)
		}
		e.stop(t)
	})
}
