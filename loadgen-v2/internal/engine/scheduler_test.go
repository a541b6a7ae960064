package engine

import (
	"context"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/wire"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/dispatch"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/live"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/report"
)

// fakeTransport is an in-memory Transport for the scheduler loop under
// testing/synctest: every request flushed is answered after delay (in the
// bubble's fake time), exactly once. It records what it received, so a test
// can check that no request was sent twice.
type fakeTransport struct {
	opts  mqttconn.Options
	delay time.Duration
	// queueUS is the worker queue wait the responses claim (µs).
	queueUS uint32
	// onFlush, when set, runs at the start of every Flush (on the publisher
	// goroutine) with the time since the engine's epoch: a test stalls the
	// schedule by sleeping in it.
	onFlush func(elapsed time.Duration)
	eng     *Engine

	mu     sync.Mutex
	conns  []*fakeConn
	seen   map[[2]uint32]int // (client, seq) -> times received
	closed bool
}

type fakeConn struct {
	t      *fakeTransport
	idx    int
	mu     sync.Mutex
	queued [][]byte
}

func (t *fakeTransport) dial(_ context.Context, o mqttconn.Options) (mqttconn.Transport, error) {
	t.opts = o
	t.seen = map[[2]uint32]int{}
	for i := range o.Connections {
		t.conns = append(t.conns, &fakeConn{t: t, idx: i})
	}
	return t, nil
}

func (t *fakeTransport) Len() int                              { return len(t.conns) }
func (t *fakeTransport) Conn(i int) mqttconn.Conn              { return t.conns[i] }
func (t *fakeTransport) Up() int                               { return len(t.conns) }
func (t *fakeTransport) Suspect() int                          { return 0 }
func (t *fakeTransport) Capabilities() mqttconn.Capabilities   { return mqttconn.Capabilities{} }
func (t *fakeTransport) Unsubscribe(ctx context.Context) error { return nil }

func (t *fakeTransport) Close() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
}

func (c *fakeConn) Connected() bool { return true }

func (c *fakeConn) Queue(_ string, payload []byte) error {
	c.mu.Lock()
	c.queued = append(c.queued, append([]byte(nil), payload...))
	c.mu.Unlock()
	return nil
}

func (c *fakeConn) QueueMessage(m *mqttconn.Message) error { return c.Queue(m.Topic, m.Payload) }

func (c *fakeConn) PublishMessage(m *mqttconn.Message) error { return c.Publish(m.Topic, m.Payload) }

func (c *fakeConn) Publish(topic string, payload []byte) error {
	if err := c.Queue(topic, payload); err != nil {
		return err
	}
	c.Flush()
	return nil
}

func (c *fakeConn) Flush() {
	t := c.t
	if t.onFlush != nil {
		t.onFlush(time.Duration(t.eng.books.Now()))
	}
	c.mu.Lock()
	q := c.queued
	c.queued = nil
	c.mu.Unlock()
	for _, p := range q {
		var r wire.Request
		if err := wire.DecodeRequest(p, &r); err != nil {
			panic(err)
		}
		t.mu.Lock()
		t.seen[[2]uint32{r.ClientID, r.Seq}]++
		t.mu.Unlock()
		resp := wire.AppendResponse(nil, &wire.Response{RunID: r.RunID, ClientID: r.ClientID, Seq: r.Seq, Intended: r.Intended, QueueUS: max(t.queueUS, 1), ProcessUS: 1})
		topic := string(r.ReplyTopic)
		time.AfterFunc(t.delay, func() {
			t.mu.Lock()
			defer t.mu.Unlock()
			if !t.closed {
				t.opts.OnMessage(c.idx, &mqttconn.Message{Topic: topic, Payload: resp})
			}
		})
	}
}

// runFake runs an engine on a fakeTransport inside a synctest bubble and
// returns its report and the transport.
func runFake(t *testing.T, env map[string]string, ft *fakeTransport, during func(e *Engine)) *report.Report {
	t.Helper()
	cfg := testConfig(t, "tcp://127.0.0.1:1", env)
	var rep *report.Report
	synctest.Test(t, func(t *testing.T) {
		eng, err := New(cfg, quietLog(), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		eng.dial, eng.claimer = ft.dial, nil
		eng.wait = dispatch.TimerWait // the bubble's clock
		ft.eng = eng
		if during != nil {
			go during(eng)
		}
		rep, err = eng.Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
	})
	return rep
}

// checkBooks asserts both identities of the books and that the transport
// received every request sent exactly once.
func checkBooks(t *testing.T, rep *report.Report, ft *fakeTransport) {
	t.Helper()
	all := rep.Counts
	if rep.Warmup != nil {
		all.Add(*rep.Warmup)
	}
	if !rep.Balanced || !all.Balanced() {
		t.Errorf("books do not balance: %+v", all)
	}
	if all.Duplicate != 0 || all.Unknown != 0 || all.Late != 0 {
		t.Errorf("duplicate %d, unknown %d, late %d; want none", all.Duplicate, all.Unknown, all.Late)
	}
	ft.mu.Lock()
	defer ft.mu.Unlock()
	for k, n := range ft.seen {
		if n != 1 {
			t.Errorf("request (client %d, seq %d) sent %d times", k[0], k[1], n)
		}
	}
	if uint64(len(ft.seen)) != all.RequestsSent {
		t.Errorf("the transport received %d requests, the report says %d sent", len(ft.seen), all.RequestsSent)
	}
}

// TestSchedulerCatchUpAfterStall: a 1 s stall of the publishing goroutine
// (as a SIGSTOP of the process) makes a whole interval's fires — and for each
// client fires f and f+N — due at once. The catch-up tick is cut over several
// owners (BATCH_SIZE 50); before ownership, chunks of one tick raced on the
// same clients' slots, overwrote outstanding requests and unbalanced the books.
func TestSchedulerCatchUpAfterStall(t *testing.T) {
	ft := &fakeTransport{delay: 5 * time.Millisecond}
	var once sync.Once
	ft.onFlush = func(elapsed time.Duration) {
		if elapsed >= time.Second {
			once.Do(func() { time.Sleep(time.Second) })
		}
	}
	rep := runFake(t, map[string]string{
		"VIRTUAL_CLIENTS": "2000", "INTERVAL_MS": "100", "CONNECTIONS": "4", "SHARDS": "16",
		"BATCH_SIZE": "50", "PUBLISH_WORKERS": "4", "DURATION": "3s", "REQUEST_TIMEOUT": "10s",
	}, ft, nil)
	checkBooks(t, rep, ft)
	// 2000 clients, 30 intervals: exactly 60000 fires are due before the end.
	if rep.Scheduled != 60000 || rep.ClientsFired != 2000 {
		t.Errorf("scheduled %d by %d clients, want 60000 by 2000", rep.Scheduled, rep.ClientsFired)
	}
	// In the catch-up tick each client had ten fires due: the first was sent,
	// the rest skipped (one request in flight per client).
	if rep.Skipped == 0 {
		t.Errorf("no fire skipped: the stall did not make several fires of a client due at once")
	}
	if rep.ResponsesMatched != rep.RequestsSent || rep.Timeouts != 0 {
		t.Errorf("every request sent is answered: %+v", rep.Counts)
	}
}

// TestSchedulerSendsFiresDueBeforeTheEnd: when the scheduler wakes after the
// end of DURATION (here a 5 ms stall just before it), the fires due between
// its last tick and the end are still sent — none is lost uncounted.
func TestSchedulerSendsFiresDueBeforeTheEnd(t *testing.T) {
	ft := &fakeTransport{delay: time.Millisecond}
	var once sync.Once
	ft.onFlush = func(elapsed time.Duration) {
		if elapsed >= 996*time.Millisecond {
			once.Do(func() { time.Sleep(5 * time.Millisecond) })
		}
	}
	rep := runFake(t, map[string]string{
		"VIRTUAL_CLIENTS": "10000", "INTERVAL_MS": "1000", "CONNECTIONS": "4", "SHARDS": "16",
		"DURATION": "1s", "REQUEST_TIMEOUT": "10s",
	}, ft, nil)
	checkBooks(t, rep, ft)
	if rep.Scheduled != 10000 || rep.RequestsSent != 10000 || rep.ClientsFired != 10000 {
		t.Errorf("scheduled %d, sent %d, clients fired %d; want 10000 each", rep.Scheduled, rep.RequestsSent, rep.ClientsFired)
	}
	if rep.DurationSeconds != 1 {
		t.Errorf("duration %v s, want 1", rep.DurationSeconds)
	}
}

// TestSchedulerEarlyStop: StopSending at 500.5 ms of a 1 s interval sends
// exactly the fires due before the stop, and the report covers 0.5005 s.
func TestSchedulerEarlyStop(t *testing.T) {
	ft := &fakeTransport{delay: time.Millisecond}
	rep := runFake(t, map[string]string{
		"VIRTUAL_CLIENTS": "1000", "INTERVAL_MS": "1000", "CONNECTIONS": "4", "SHARDS": "16",
		"DURATION": "10s", "REQUEST_TIMEOUT": "10s",
	}, ft, func(e *Engine) {
		<-e.Ready()
		time.Sleep(500*time.Millisecond + 500*time.Microsecond)
		e.StopSending()
	})
	checkBooks(t, rep, ft)
	// Position p fires at p ms: 501 fires at 0..500 ms are due before the stop.
	if rep.Scheduled != 501 || rep.RequestsSent != 501 {
		t.Errorf("scheduled %d sent %d, want 501 and 501", rep.Scheduled, rep.RequestsSent)
	}
	if rep.DurationSeconds != 0.5005 {
		t.Errorf("duration %v s, want 0.5005", rep.DurationSeconds)
	}
	// Half the clients fired: the report says so.
	if rep.ClientsFired != 501 || len(rep.Warnings) == 0 {
		t.Errorf("clients fired %d, warnings %q; want 501 and a warning", rep.ClientsFired, rep.Warnings)
	}
}

// TestSchedulerRampUpDoesNotOverflow: with a ramp of 10 minutes over 1M
// clients, RAMP_UP·p overflows 64 bits (6e11 ns × 1e6); the first second must
// bring exactly the clients with t·N ≥ RAMP·p online, i.e. very few.
func TestSchedulerRampUpDoesNotOverflow(t *testing.T) {
	ft := &fakeTransport{delay: time.Millisecond}
	rep := runFake(t, map[string]string{
		"VIRTUAL_CLIENTS": "1000000", "INTERVAL_MS": "1000", "CONNECTIONS": "4", "SHARDS": "16",
		"DURATION": "1s", "RAMP_UP": "10m", "REQUEST_TIMEOUT": "10s",
	}, ft, nil)
	checkBooks(t, rep, ft)
	// Position p (fire time p µs) is online iff p µs · 1e6 ≥ 600 s · p: only p = 0.
	if rep.Scheduled != 1 || rep.ClientsFired != 1 {
		t.Errorf("scheduled %d by %d clients, want 1 by 1 (ramp of 10 min, first second)", rep.Scheduled, rep.ClientsFired)
	}
}

// TestForgedResponsesAreImplausible: a responder that claims an hour of
// worker queue wait for a round trip of 5 ms did not do the work it claims
// (a forged echo, or a foreign responder on our response topics): its
// responses are counted implausible, never matched, and the report warns.
func TestForgedResponsesAreImplausible(t *testing.T) {
	ft := &fakeTransport{delay: 5 * time.Millisecond, queueUS: 3600e6}
	rep := runFake(t, map[string]string{
		"VIRTUAL_CLIENTS": "100", "INTERVAL_MS": "1000", "CONNECTIONS": "4", "SHARDS": "16",
		"DURATION": "2s", "REQUEST_TIMEOUT": "500ms",
	}, ft, nil)
	if rep.ResponsesMatched != 0 || rep.Implausible != 200 || rep.Timeouts != 200 || !rep.Balanced {
		t.Errorf("matched %d implausible %d timed out %d; want 0, 200, 200: %+v", rep.ResponsesMatched, rep.Implausible, rep.Timeouts, rep.Counts)
	}
	if rep.SuccessRate != 0 || !strings.Contains(strings.Join(rep.Warnings, "\n"), "200 implausible responses") {
		t.Errorf("success %v, warnings %q", rep.SuccessRate, rep.Warnings)
	}
}

// TestLiveRatiosAreSettled: while every request is still in flight the live
// match and success rates are unknown (null, printed "–"), not 0 and not 1;
// once requests settle they count matched over settled only.
func TestLiveRatiosAreSettled(t *testing.T) {
	ft := &fakeTransport{delay: 300 * time.Millisecond}
	var during, after live.Stats
	rep := runFake(t, map[string]string{
		"VIRTUAL_CLIENTS": "100", "INTERVAL_MS": "1000", "CONNECTIONS": "4", "SHARDS": "16",
		"DURATION": "3s", "REQUEST_TIMEOUT": "10s",
	}, ft, func(e *Engine) {
		<-e.Ready()
		// Requests sent, none answered yet. 205 ms is between two fires
		// (every 10 ms): the scheduler is idle when the stats are read, not
		// halfway through adding a tick's counts.
		time.Sleep(205 * time.Millisecond)
		during = e.Stats()
		time.Sleep(2 * time.Second)
		after = e.Stats()
	})
	if during.Pending == 0 || during.MatchRate != nil || during.SuccessRate != nil {
		t.Errorf("with %d in flight and none settled: match %v success %v, want null", during.Pending, during.MatchRate, during.SuccessRate)
	}
	if after.MatchRate == nil || *after.MatchRate != 1 || after.SuccessRate == nil || *after.SuccessRate != 1 {
		t.Errorf("after answers: match %v success %v, want 1 and 1 (in-flight requests count neither way)", after.MatchRate, after.SuccessRate)
	}
	checkBooks(t, rep, ft)
}

// TestRateRatioWhenStoppedDuringRampUp: a run that ends at any point of its
// ramp (DURATION, or StopSending as a signal does; with a warm-up inside the
// ramp too) reports the target rate the schedule offered over its measured
// part, so rate_ratio stays 1 within the schedule's own rounding. The bug:
// the ramp integral assumed the measured part ended after the ramp (a stop at
// half a 10 s ramp reported 0.75 of the full rate where the schedule offered
// 0.25).
//
// The rounding, per client: position p is online from RAMP_UP·p/N, and over
// [WARMUP, end) it fires a whole number of times, one every INTERVAL_MS, where
// its share of the linear ramp comes online between RAMP_UP·p/N and
// RAMP_UP·(p+1)/N: fewer than 1 + RAMP_UP/(N·INTERVAL_MS) fires apart, for
// each client online before the end.
func TestRateRatioWhenStoppedDuringRampUp(t *testing.T) {
	const (
		clients  = 200
		interval = 10 * time.Millisecond
		ramp     = 2 * time.Second
	)
	const off = 50 * time.Microsecond // between two fires (every 50 µs)
	for _, tc := range []struct {
		name         string
		warmup, stop time.Duration
		signal       bool // stopped by StopSending, else DURATION=stop
	}{
		{"signal at an eighth of the ramp", 0, ramp/8 + off, true},
		{"signal at a quarter of the ramp", 0, ramp/4 + off, true},
		{"signal at half the ramp", 0, ramp/2 + off, true},
		{"signal at three quarters of the ramp", 0, 3*ramp/4 + off, true},
		{"DURATION inside the ramp", 0, ramp / 3, false},
		{"DURATION at the end of the ramp", 0, ramp, false},
		{"signal after the ramp", 0, ramp + ramp/4 + off, true},
		{"warm-up and signal inside the ramp", ramp / 4, 3*ramp/4 + off, true},
		{"warm-up inside the ramp, DURATION after it", ramp / 2, ramp + ramp/2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ft := &fakeTransport{delay: time.Millisecond}
			env := map[string]string{
				"VIRTUAL_CLIENTS": strconv.Itoa(clients), "INTERVAL_MS": strconv.Itoa(int(interval / time.Millisecond)),
				"CONNECTIONS": "4", "SHARDS": "16", "RAMP_UP": ramp.String(), "WARMUP": tc.warmup.String(),
				"DURATION": tc.stop.String(), "REQUEST_TIMEOUT": "1s",
			}
			var during func(e *Engine)
			if tc.signal {
				env["DURATION"] = "1h"
				during = func(e *Engine) {
					<-e.Ready()
					time.Sleep(tc.stop)
					e.StopSending()
				}
			}
			rep := runFake(t, env, ft, during)
			checkBooks(t, rep, ft)
			measured := tc.stop - tc.warmup
			if rep.DurationSeconds != measured.Seconds() {
				t.Fatalf("duration %v s, want %v", rep.DurationSeconds, measured.Seconds())
			}
			online := min(clients, int((tc.stop*clients+ramp-1)/ramp))
			perClient := 1 + float64(ramp)/(clients*float64(interval))
			offered := rep.TargetRPS * rep.DurationSeconds
			if d := float64(rep.RequestsSent) - offered; math.Abs(d) >= float64(online)*perClient {
				t.Errorf("sent %d, target %.1f req/s over %v offers %.1f: %.1f apart, the rounding allows less than %.0f (%d clients online) (rate_ratio %.4f)",
					rep.RequestsSent, rep.TargetRPS, measured, offered, d, float64(online)*perClient, online, rep.RateRatio)
			}
		})
	}
}
