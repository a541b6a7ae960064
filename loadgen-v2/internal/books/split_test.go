package books

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/wire"
)

// TestRoundTripSplit: a matched response's round trip (from its intended
// time) is recorded whole, and what is left once its own schedule lag (from
// Sends) and, for the envelope, the worker's stamps are taken out is the
// broker + network rest; a response whose send is unknown adds no rest.
func TestRoundTripSplit(t *testing.T) {
	for _, mode := range []struct {
		name     string
		env      map[string]string
		stamped  bool
		wantRest time.Duration
	}{
		// Round trip 5 ms: lag 1.2 ms, queue 0.3 ms, processing 1 µs.
		{"envelope", nil, true, 5*time.Millisecond - 1200*time.Microsecond - 300*time.Microsecond - time.Microsecond},
		{"properties (unstamped: the service is in the rest)", map[string]string{"MQTT_VERSION": "5"}, false, 5*time.Millisecond - 1200*time.Microsecond},
	} {
		t.Run(mode.name, func(t *testing.T) {
			env := map[string]string{"VIRTUAL_CLIENTS": "10", "INTERVAL_MS": "1000", "REQUEST_TIMEOUT": "1s"}
			for k, v := range mode.env {
				env[k] = v
			}
			b, res := newBooks(t, env)
			synctest.Test(t, func(t *testing.T) {
				b.Start(time.Now())
				// Fires 0..4 (clients at 0, 100, ... 400 ms) taken 1.2 ms
				// late; fires 5..9 never taken.
				for f := range uint64(5) {
					at := b.sched.FireTime(f)
					time.Sleep(time.Duration(at) + 1200*time.Microsecond - time.Duration(b.Now()))
					b.Sends.Record(f+1, b.Now())
					client, seq, _ := b.sched.Fire(f)
					if !b.table.Claim(client, seq) {
						t.Fatal("claim")
					}
				}
				answer := func(f uint64) {
					client, seq, at := b.sched.Fire(f)
					time.Sleep(time.Duration(at) + 5*time.Millisecond - time.Duration(b.Now()))
					m := response(res.Requester.Mode, wire.Key{RunID: res.RunID, ClientID: res.Offset + client, Seq: seq}, at, 300)
					b.OnResponse(0, &m)
				}
				answer(4)
				client, seq, _ := b.sched.Fire(9) // claimed, but Sends never saw it
				b.table.Claim(client, seq)
				time.Sleep(time.Duration(b.sched.FireTime(9)) - time.Duration(b.Now()))
				answer(9)
				rt, rest := b.Hist.Latency.Total(), b.Hist.BrokerNetwork.Total()
				// HDR: equal to 3 significant digits.
				if rt.TotalCount() != 2 || !rt.ValuesAreEquivalent(rt.Min(), 5000) || !rt.ValuesAreEquivalent(rt.Max(), 5000) {
					t.Errorf("round trips: %d in [%d, %d] µs, want 2 of 5000", rt.TotalCount(), rt.Min(), rt.Max())
				}
				if want := mode.wantRest.Microseconds(); rest.TotalCount() != 1 || !rest.ValuesAreEquivalent(rest.Min(), want) {
					t.Errorf("rest: %d samples, min %d µs, want 1 of %d µs", rest.TotalCount(), rest.Min(), want)
				}
				if q := b.Hist.WorkerQueue.Total().TotalCount(); (q == 2) != mode.stamped {
					t.Errorf("worker queue samples %d, stamped %v", q, mode.stamped)
				}
			})
		})
	}
}

// TestSendsRing: SentAt finds the run of a fire, forgets what the ring no
// longer holds, and knows nothing of fires not taken.
func TestSendsRing(t *testing.T) {
	s := newSends(0, 0) // the smallest ring: 1,024 entries
	if len(s.ring) != 1024 {
		t.Fatalf("ring of %d", len(s.ring))
	}
	if _, ok := s.SentAt(0); ok {
		t.Error("an empty log knows fire 0")
	}
	// Entry i covers fires [10i, 10i+10), taken at 1000·i ns.
	for i := range uint64(3000) {
		s.Record(10*i+10, int64(1000*i))
	}
	for _, tc := range []struct {
		f      uint64
		at     int64
		wantOK bool
	}{
		{29999, 2999000, true},
		{29990, 2999000, true},
		{29989, 2998000, true},
		{10 * (3000 - 1022), 1000 * (3000 - 1022), true}, // the oldest entry known whole
		{10 * (3000 - 1023), 0, false},                   // its start is in the entry written next
		{10*(3000-1024) + 9, 0, false},
		{0, 0, false},
		{30000, 0, false}, // not taken yet
	} {
		at, ok := s.SentAt(tc.f)
		if ok != tc.wantOK || (ok && at != tc.at) {
			t.Errorf("SentAt(%d) = %d, %v; want %d, %v", tc.f, at, ok, tc.at, tc.wantOK)
		}
	}
	if got := len(newSends(5*time.Second, time.Millisecond).ring); got != 16384 {
		t.Errorf("ring for 5 s at a 1 ms grid: %d entries, want 16384", got)
	}
}
