package pending_test

import (
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/pending"
)

type op struct {
	kind   string // claim, match, release, expire, outstanding
	client uint32
	seq    uint32
	want   bool // claim, match, release
	wantN  int  // expire, outstanding
	ended  []uint32
}

func TestTable(t *testing.T) {
	tests := []struct {
		name     string
		clients  int
		inflight int
		ops      []op
	}{
		{name: "inflight 1: claim, skip when full, match", clients: 2, inflight: 1, ops: []op{
			{kind: "claim", client: 0, seq: 0, want: true},
			{kind: "claim", client: 0, seq: 1, want: false}, // full: skipped
			{kind: "claim", client: 1, seq: 0, want: true},  // other client unaffected
			{kind: "outstanding", wantN: 2},
			{kind: "match", client: 0, seq: 1, want: false}, // never claimed
			{kind: "match", client: 1, seq: 0, want: true},
			{kind: "match", client: 0, seq: 0, want: true},
			{kind: "match", client: 0, seq: 0, want: false}, // second match
			{kind: "outstanding", wantN: 0},
			{kind: "claim", client: 0, seq: 2, want: true}, // slot free again
		}},
		{name: "match needs the right client", clients: 3, inflight: 1, ops: []op{
			{kind: "claim", client: 1, seq: 7, want: true},
			{kind: "match", client: 0, seq: 7, want: false},
			{kind: "match", client: 2, seq: 7, want: false},
			{kind: "match", client: 1, seq: 7, want: true},
		}},
		{name: "inflight 3: fill, skip, match out of order", clients: 1, inflight: 3, ops: []op{
			{kind: "claim", seq: 10, want: true},
			{kind: "claim", seq: 11, want: true},
			{kind: "claim", seq: 12, want: true},
			{kind: "claim", seq: 13, want: false},
			{kind: "outstanding", wantN: 3},
			{kind: "match", seq: 11, want: true},
			{kind: "match", seq: 11, want: false},
			{kind: "claim", seq: 14, want: true}, // reuses the freed slot
			{kind: "match", seq: 10, want: true},
			{kind: "match", seq: 14, want: true},
			{kind: "match", seq: 12, want: true},
			{kind: "outstanding", wantN: 0},
		}},
		{name: "expire only seq ≤ given", clients: 2, inflight: 3, ops: []op{
			{kind: "claim", client: 0, seq: 5, want: true},
			{kind: "claim", client: 0, seq: 6, want: true},
			{kind: "claim", client: 0, seq: 8, want: true},
			{kind: "claim", client: 1, seq: 1, want: true},
			{kind: "expire", client: 0, seq: 4, wantN: 0},
			{kind: "expire", client: 0, seq: 6, wantN: 2, ended: []uint32{5, 6}},
			{kind: "expire", client: 0, seq: 6, wantN: 0}, // already ended
			{kind: "match", client: 0, seq: 5, want: false},
			{kind: "outstanding", wantN: 2},
			{kind: "match", client: 0, seq: 8, want: true},
			{kind: "expire", client: 1, seq: 100, wantN: 1, ended: []uint32{1}},
			{kind: "outstanding", wantN: 0},
		}},
		{name: "release frees the slot like match", clients: 1, inflight: 1, ops: []op{
			{kind: "claim", seq: 3, want: true},
			{kind: "release", seq: 3, want: true},
			{kind: "release", seq: 3, want: false},
			{kind: "match", seq: 3, want: false},
			{kind: "claim", seq: 4, want: true},
		}},
		{name: "seq 0 and large seq", clients: 1, inflight: 2, ops: []op{
			{kind: "claim", seq: 0, want: true},
			{kind: "claim", seq: 1<<32 - 2, want: true},
			{kind: "expire", seq: 0, wantN: 1, ended: []uint32{0}},
			{kind: "match", seq: 1<<32 - 2, want: true},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tb := pending.New(tc.clients, tc.inflight)
			if got := tb.BytesPerClient(); got != 4*tc.inflight {
				t.Errorf("BytesPerClient = %d, want %d", got, 4*tc.inflight)
			}
			for i, o := range tc.ops {
				switch o.kind {
				case "claim":
					if got := tb.Claim(o.client, o.seq); got != o.want {
						t.Fatalf("op %d: Claim(%d, %d) = %v, want %v", i, o.client, o.seq, got, o.want)
					}
				case "match":
					if got := tb.Match(o.client, o.seq); got != o.want {
						t.Fatalf("op %d: Match(%d, %d) = %v, want %v", i, o.client, o.seq, got, o.want)
					}
				case "release":
					if got := tb.Release(o.client, o.seq); got != o.want {
						t.Fatalf("op %d: Release(%d, %d) = %v, want %v", i, o.client, o.seq, got, o.want)
					}
				case "expire":
					var ended []uint32
					n := tb.Expire(o.client, o.seq, func(s uint32) { ended = append(ended, s) })
					slices.Sort(ended)
					if n != o.wantN || !slices.Equal(ended, o.ended) {
						t.Fatalf("op %d: Expire(%d, %d) = %d %v, want %d %v", i, o.client, o.seq, n, ended, o.wantN, o.ended)
					}
				case "outstanding":
					calls := 0
					n := tb.Outstanding(func(client, seq uint32) { calls++ })
					if n != o.wantN || calls != n {
						t.Fatalf("op %d: Outstanding = %d (%d calls), want %d", i, n, calls, o.wantN)
					}
					if m := tb.Outstanding(nil); m != n {
						t.Fatalf("op %d: Outstanding(nil) = %d, want %d", i, m, n)
					}
				}
			}
		})
	}
}

func TestOutstandingReportsClientAndSeq(t *testing.T) {
	tb := pending.New(5, 2)
	want := map[[2]uint32]bool{{0, 9}: true, {3, 1}: true, {3, 2}: true, {4, 0}: true}
	for k := range want {
		tb.Claim(k[0], k[1])
	}
	got := map[[2]uint32]bool{}
	tb.Outstanding(func(c, s uint32) { got[[2]uint32{c, s}] = true })
	if len(got) != len(want) {
		t.Fatalf("Outstanding reported %v, want %v", got, want)
	}
	for k := range want {
		if !got[k] {
			t.Errorf("Outstanding missed client %d seq %d", k[0], k[1])
		}
	}
	if n := tb.Expire(3, 1, nil); n != 1 {
		t.Errorf("Expire with nil fn ended %d, want 1", n)
	}
}

// TestEachRequestEndsOnce: one goroutine claims (the owner), several match
// and several expire concurrently. Every claimed request must end exactly
// once — claimed == matched + expired + still outstanding — and no request
// may be reported ended twice.
func TestEachRequestEndsOnce(t *testing.T) {
	const clients, inflight, rounds = 64, 3, 400
	tb := pending.New(clients, inflight)
	var claimed, skipped, matched, expired atomic.Int64
	ends := make([]atomic.Int32, clients*rounds) // per (client, seq)
	end := func(c, s uint32) {
		if ends[int(c)*rounds+int(s)].Add(1) != 1 {
			t.Errorf("client %d seq %d ended twice", c, s)
		}
	}
	var progress atomic.Int64 // highest seq claimed by the owner, per round
	progress.Store(-1)
	var attempts atomic.Int64 // Match and Expire calls, to pace the owner
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 { // matchers: respond to recent requests, with duplicates
		wg.Go(func() {
			i := uint32(w)
			for {
				select {
				case <-stop:
					return
				default:
				}
				hi := progress.Load()
				if hi < 0 {
					continue
				}
				i = i*1664525 + 1013904223
				c := i % clients
				s := uint32(hi) - min(uint32(hi), (i>>8)%5)
				attempts.Add(1)
				if tb.Match(c, s) {
					matched.Add(1)
					end(c, s)
				}
			}
		})
	}
	for range 2 { // sweepers: expire everything older than 3 rounds
		wg.Go(func() {
			c := uint32(0)
			for {
				select {
				case <-stop:
					return
				default:
				}
				hi := progress.Load()
				if hi < 3 {
					continue
				}
				c = (c + 1) % clients
				attempts.Add(1)
				n := tb.Expire(c, uint32(hi-3), func(s uint32) { end(c, s) })
				expired.Add(int64(n))
			}
		})
	}
	for s := range uint32(rounds) { // the owner
		for c := range uint32(clients) {
			if tb.Claim(c, s) {
				claimed.Add(1)
			} else {
				skipped.Add(1)
			}
		}
		progress.Store(int64(s))
		// Let the others work on this round before the next (no timers:
		// wait for a number of their calls).
		for want := int64(s+1) * 200; attempts.Load() < want; {
			runtime.Gosched()
		}
	}
	close(stop)
	wg.Wait()
	var left int64
	tb.Outstanding(func(c, s uint32) {
		left++
		end(c, s)
	})
	if got := matched.Load() + expired.Load() + left; got != claimed.Load() {
		t.Errorf("claimed %d != matched %d + expired %d + outstanding %d", claimed.Load(), matched.Load(), expired.Load(), left)
	}
	if claimed.Load()+skipped.Load() != clients*rounds {
		t.Errorf("claimed %d + skipped %d != %d attempts", claimed.Load(), skipped.Load(), clients*rounds)
	}
	// Which endings the goroutines reach depends on scheduling (a loaded
	// machine may starve the sweepers); the identity above is what must hold,
	// and at least the concurrent matchers must have ended some requests.
	if matched.Load()+expired.Load() == 0 {
		t.Errorf("no request was ended concurrently: matched %d, expired %d, outstanding %d", matched.Load(), expired.Load(), left)
	}
	t.Logf("claimed %d (skipped %d) = matched %d + expired %d + outstanding %d", claimed.Load(), skipped.Load(), matched.Load(), expired.Load(), left)
}

func TestZeroAllocs(t *testing.T) {
	tb := pending.New(1000, 2)
	s := uint32(0)
	if n := testing.AllocsPerRun(1000, func() {
		c := s % 1000
		tb.Claim(c, s)
		tb.Match(c, s)
		tb.Expire(c, s, nil)
		s++
	}); n != 0 {
		t.Errorf("%v allocs per claim+match+expire, want 0", n)
	}
}

func BenchmarkClaimMatch(b *testing.B) {
	const clients = 1 << 20
	tb := pending.New(clients, 1)
	b.ReportAllocs()
	i := uint32(0)
	for b.Loop() {
		c := (i * 2654435761) % clients // spread over the table, as responses are
		if !tb.Claim(c, i) || !tb.Match(c, i) {
			b.Fatal("claim/match failed")
		}
		i++
	}
}

func BenchmarkClaimMatchParallel(b *testing.B) {
	const clients = 1 << 20
	tb := pending.New(clients, 1)
	var next atomic.Uint32
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		// Each goroutine owns a disjoint set of clients, as a scheduler does.
		base := next.Add(1) - 1
		i := uint32(0)
		for pb.Next() {
			c := (base + 64*(i%(clients/64))) % clients
			if !tb.Claim(c, i) || !tb.Match(c, i) {
				b.Fatal("claim/match failed")
			}
			i++
		}
	})
}

func TestMaxSeqIsRefused(t *testing.T) {
	tb := pending.New(1, 1)
	if tb.Claim(0, math.MaxUint32) {
		t.Errorf("Claim of the unstorable sequence number succeeded")
	}
	if tb.Match(0, math.MaxUint32) {
		t.Errorf("Match on an empty table succeeded")
	}
	if !tb.Claim(0, 5) || tb.Claim(0, 6) {
		t.Errorf("inflight limit broken")
	}
}

// TestConcurrentClaimsNeverOverwrite: several publishers claim fires of the
// same clients at once (as after a stall, when fires f and f+N of one client
// are due together). A successful claim must stay outstanding until it is
// ended: every publisher ends each request it claimed, and that must succeed
// (with a Load-then-Store claim, a second claimer overwrites the slot and the
// first request vanishes from the books).
func TestConcurrentClaimsNeverOverwrite(t *testing.T) {
	for _, inflight := range []int{1, 2} {
		const clients, rounds, publishers = 4, 20000, 4
		tab := pending.New(clients, inflight)
		var claimed, lost atomic.Int64
		var wg sync.WaitGroup
		start := make(chan struct{})
		for w := range publishers {
			wg.Go(func() {
				<-start
				for r := range rounds {
					c := uint32(r % clients)
					seq := uint32(r*publishers + w) // distinct per (publisher, round)
					if !tab.Claim(c, seq) {
						continue
					}
					claimed.Add(1)
					if !tab.Match(c, seq) {
						lost.Add(1)
					}
				}
			})
		}
		close(start)
		wg.Wait()
		if lost.Load() != 0 {
			t.Errorf("inflight %d: %d of %d claimed requests were overwritten by another claim", inflight, lost.Load(), claimed.Load())
		}
		if claimed.Load() == 0 {
			t.Errorf("inflight %d: no claim succeeded", inflight)
		}
		if n := tab.Outstanding(nil); n != 0 {
			t.Errorf("inflight %d: %d still outstanding after every claim was ended", inflight, n)
		}
	}
}
