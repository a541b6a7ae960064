package schedule_test

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/schedule"
)

type shape struct {
	name     string
	n        int
	interval time.Duration
	conns    int
	connOf   func(c int) int
	run      int
	grid     time.Duration // 0: exact
}

func modConns(conns int) func(int) int { return func(c int) int { return c % conns } }

// shapes covers N < I, N ≈ I, N > I (several clients per nanosecond), uneven
// connections, and run lengths that do not divide the per-connection counts.
func shapes() []shape {
	return []shape{
		{name: "one client", n: 1, interval: time.Second, conns: 1, connOf: modConns(1), run: 1},
		{name: "1000 clients over 2s", n: 1000, interval: 2 * time.Second, conns: 7, connOf: modConns(7), run: 5},
		{name: "N = I", n: 997, interval: 997, conns: 3, connOf: modConns(3), run: 4},
		{name: "N > I", n: 1000, interval: 37, conns: 10, connOf: modConns(10), run: 3},
		{name: "N = I + 1", n: 101, interval: 100, conns: 2, connOf: modConns(2), run: 1},
		{name: "uneven connections", n: 777, interval: 3 * time.Millisecond, conns: 4, connOf: func(c int) int {
			if c%10 == 0 {
				return 3
			}
			return c % 3
		}, run: 8},
		{name: "shard mapping", n: 5000, interval: time.Second, conns: 6, connOf: func(c int) int { return (c % 256) % 6 }, run: 13},
		{name: "run larger than a connection", n: 50, interval: time.Millisecond, conns: 5, connOf: modConns(5), run: 1000},
		{name: "run 0 means 1", n: 60, interval: time.Millisecond, conns: 4, connOf: modConns(4), run: 0},
		{name: "empty connection", n: 30, interval: time.Second, conns: 4, connOf: modConns(3), run: 2},
		// On a grid: several fires per cell, a grid that does not divide the
		// interval, one coarser than the spacing, and one finer.
		{name: "grid 1ms, 20 per cell", n: 20000, interval: time.Second, conns: 10, connOf: modConns(10), run: 20, grid: time.Millisecond},
		{name: "grid not dividing I", n: 1000, interval: 7*time.Millisecond + 3, conns: 3, connOf: modConns(3), run: 4, grid: time.Millisecond},
		{name: "grid coarser than I", n: 10, interval: time.Millisecond, conns: 2, connOf: modConns(2), run: 1, grid: 3 * time.Millisecond},
		{name: "grid finer than spacing", n: 100, interval: time.Second, conns: 2, connOf: modConns(2), run: 1, grid: 250 * time.Microsecond},
		{name: "grid N > I", n: 1000, interval: 37, conns: 10, connOf: modConns(10), run: 3, grid: 5},
	}
}

func build(t testing.TB, s shape) *schedule.Schedule {
	t.Helper()
	sc, err := schedule.New(s.n, s.interval, s.conns, s.connOf, s.run)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if s.grid > 0 {
		sc = sc.OnGrid(s.grid)
	}
	if sc.N() != s.n || sc.Interval() != s.interval {
		t.Fatalf("N() %d Interval() %v, want %d %v", sc.N(), sc.Interval(), s.n, s.interval)
	}
	return sc
}

// sampleFires returns fire indexes to check: the first few cycles entirely
// (bounded), and random ones up to far in the run.
func sampleFires(n int) []uint64 {
	var fs []uint64
	for f := range uint64(min(3*n, 30000)) {
		fs = append(fs, f)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		fs = append(fs, r.Uint64N(uint64(n)*100000))
	}
	return fs
}

func TestFiresUpToIsExactInverseOfFireTime(t *testing.T) {
	for _, s := range shapes() {
		t.Run(s.name, func(t *testing.T) {
			sc := build(t, s)
			for _, f := range sampleFires(s.n) {
				at := sc.FireTime(f)
				if got := sc.FiresUpTo(at); got <= f {
					t.Fatalf("FiresUpTo(FireTime(%d)=%d) = %d, want > %d", f, at, got, f)
				}
				if got := sc.FiresUpTo(at - 1); got > f {
					t.Fatalf("FiresUpTo(FireTime(%d)-1=%d) = %d, want ≤ %d", f, at-1, got, f)
				}
				if _, _, at2 := sc.Fire(f); at2 != at {
					t.Fatalf("Fire(%d) time %d != FireTime %d", f, at2, at)
				}
			}
		})
	}
}

func TestFiresUpToNonDecreasing(t *testing.T) {
	for _, s := range shapes() {
		t.Run(s.name, func(t *testing.T) {
			sc := build(t, s)
			if got := sc.FiresUpTo(-1); got != 0 {
				t.Errorf("FiresUpTo(-1) = %d, want 0", got)
			}
			if got := sc.FiresUpTo(-1 << 62); got != 0 {
				t.Errorf("FiresUpTo(very negative) = %d, want 0", got)
			}
			if got := sc.FiresUpTo(0); got < 1 {
				t.Errorf("FiresUpTo(0) = %d, want ≥ 1 (position 0 fires at the epoch)", got)
			}
			// Step through three intervals; the step adapts so the test
			// stays small for long intervals.
			I := int64(s.interval)
			step := max(1, I/5000)
			prev := uint64(0)
			for t0 := int64(0); t0 < 3*I; t0 += step {
				got := sc.FiresUpTo(t0)
				if got < prev {
					t.Fatalf("FiresUpTo(%d) = %d < FiresUpTo(%d) = %d", t0, got, t0-step, prev)
				}
				prev = got
			}
			// One full interval is exactly N fires, from any start.
			for _, t0 := range []int64{0, 1, I / 3, I - 1, 5*I + 7} {
				if d := sc.FiresUpTo(t0+I) - sc.FiresUpTo(t0); d != uint64(s.n) {
					t.Errorf("fires in (%d, %d] = %d, want N = %d", t0, t0+I, d, s.n)
				}
			}
		})
	}
}

// phases returns the phase of every position: the time of fire p in cycle 0.
func phases(sc *schedule.Schedule) []int64 {
	ps := make([]int64, sc.N())
	for p := range ps {
		ps[p] = sc.FireTime(uint64(p))
	}
	return ps
}

// TestPhasesSpreadEvenly: the exact schedule spaces positions I/N apart;
// on a grid G each phase is the exact one rounded down to a multiple of G
// (the package doc's phase_G), so the fires of a cell coincide.
func TestPhasesSpreadEvenly(t *testing.T) {
	for _, s := range shapes() {
		t.Run(s.name, func(t *testing.T) {
			sc := build(t, s)
			ps := phases(sc)
			if s.grid > 0 {
				exact := phases(sc.OnGrid(0))
				G := int64(s.grid)
				for p := range ps {
					if want := exact[p] - exact[p]%G; ps[p] != want {
						t.Fatalf("phase(%d) = %d on a grid of %d, want %d (exact %d)", p, ps[p], G, want, exact[p])
					}
				}
				if sc.Grid() != s.grid {
					t.Errorf("Grid() = %v, want %v", sc.Grid(), s.grid)
				}
				return
			}
			I, N := int64(s.interval), int64(s.n)
			maxGap := (I + N - 1) / N // ceil(I/N)
			minGap := I / N           // floor(I/N)
			if ps[0] != 0 {
				t.Errorf("phase(0) = %d, want 0", ps[0])
			}
			for p := 1; p < len(ps); p++ {
				gap := ps[p] - ps[p-1]
				if gap < minGap || gap > maxGap {
					t.Fatalf("gap between positions %d and %d is %d ns, want in [floor(I/N), ceil(I/N)] = [%d, %d]", p-1, p, gap, minGap, maxGap)
				}
			}
			// The wrap-around gap to the next cycle obeys the same bound.
			if gap := I - ps[len(ps)-1]; gap < max(minGap, 1) || gap > maxGap {
				t.Errorf("wrap-around gap %d ns, want in [%d, %d]", gap, max(minGap, 1), maxGap)
			}
		})
	}
}

// TestEveryClientOncePerInterval: the fires with times in [kI, (k+1)I) are
// fires kN..(k+1)N-1, and their clients are a permutation of all clients,
// each with sequence number k.
func TestEveryClientOncePerInterval(t *testing.T) {
	for _, s := range shapes() {
		t.Run(s.name, func(t *testing.T) {
			sc := build(t, s)
			I, N := int64(s.interval), uint64(s.n)
			for _, k := range []uint64{0, 1, 2, 1000, 123456} {
				lo := sc.FiresUpTo(int64(k)*I - 1)
				hi := sc.FiresUpTo(int64(k+1)*I - 1)
				if lo != k*N || hi != (k+1)*N {
					t.Fatalf("cycle %d spans fires [%d, %d), want [%d, %d)", k, lo, hi, k*N, (k+1)*N)
				}
				seen := make([]bool, N)
				for f := lo; f < hi; f++ {
					c, seq, at := sc.Fire(f)
					if uint64(c) >= N || seen[c] {
						t.Fatalf("cycle %d: client %d out of range or fired twice", k, c)
					}
					seen[c] = true
					if uint64(seq) != k {
						t.Fatalf("fire %d: seq %d, want %d", f, seq, k)
					}
					if at < int64(k)*I || at >= int64(k+1)*I {
						t.Fatalf("fire %d at %d, outside cycle %d", f, at, k)
					}
				}
			}
		})
	}
}

func TestTimeOfAndPosition(t *testing.T) {
	for _, s := range shapes() {
		t.Run(s.name, func(t *testing.T) {
			sc := build(t, s)
			for _, f := range sampleFires(s.n) {
				c, seq, at := sc.Fire(f)
				if got := sc.TimeOf(c, seq); got != at {
					t.Fatalf("TimeOf(%d, %d) = %d, want %d (time of fire %d)", c, seq, got, at, f)
				}
				if p := sc.Position(c); uint64(p) != f%uint64(s.n) {
					t.Fatalf("Position(%d) = %d, want %d", c, p, f%uint64(s.n))
				}
			}
		})
	}
}

// TestPositionsGroupedByConnection: walking the positions, the connections
// come in runs of at most `run` positions, visiting the connections in turn
// (0, 1, ..., conns-1, 0, ...), each run as long as `run` unless the
// connection has fewer clients left; and every connection gets all its
// clients.
func TestPositionsGroupedByConnection(t *testing.T) {
	for _, s := range shapes() {
		t.Run(s.name, func(t *testing.T) {
			sc := build(t, s)
			run := max(s.run, 1)
			left := make([]int, s.conns)
			for c := range s.n {
				left[s.connOf(c)]++
			}
			total := slices.Clone(left)
			// Connections in position order, one entry per run.
			type segment struct{ conn, length int }
			var segs []segment
			for p := range s.n {
				c, _, _ := sc.Fire(uint64(p))
				j := s.connOf(int(c))
				if len(segs) > 0 && segs[len(segs)-1].conn == j && segs[len(segs)-1].length < run {
					segs[len(segs)-1].length++
				} else {
					segs = append(segs, segment{j, 1})
				}
			}
			// Replay the documented rule and compare.
			var want []segment
			for remaining := s.n; remaining > 0; {
				for j := range s.conns {
					if l := min(run, left[j]); l > 0 {
						want = append(want, segment{j, l})
						left[j] -= l
						remaining -= l
					}
				}
			}
			// Adjacent runs of the same connection (others empty) merge in
			// segs up to `run`; compare the flattened sequences instead.
			flat := func(ss []segment) []int {
				var out []int
				for _, sg := range ss {
					for range sg.length {
						out = append(out, sg.conn)
					}
				}
				return out
			}
			if got, w := flat(segs), flat(want); !slices.Equal(got, w) {
				t.Fatalf("connection of each position:\n got %v\nwant %v", head(got), head(w))
			}
			// Within a connection, clients keep ascending id order.
			lastClient := make([]int, s.conns)
			for j := range lastClient {
				lastClient[j] = -1
			}
			for p := range s.n {
				c, _, _ := sc.Fire(uint64(p))
				j := s.connOf(int(c))
				if int(c) <= lastClient[j] {
					t.Fatalf("connection %d: client %d after %d", j, c, lastClient[j])
				}
				lastClient[j] = int(c)
				total[j]--
			}
			for j, n := range total {
				if n != 0 {
					t.Errorf("connection %d: %d clients missing from the positions", j, n)
				}
			}
		})
	}
}

func head(s []int) []int { return s[:min(len(s), 60)] }

// TestLargeSchedule: 1M clients over 24h, checked far into the run.
func TestLargeSchedule(t *testing.T) {
	const n = 1_000_000
	interval := 24 * time.Hour
	sc, err := schedule.New(n, interval, 100, modConns(100), 50)
	if err != nil {
		t.Fatal(err)
	}
	I := int64(interval)
	for _, k := range []uint64{0, 1, 100, 100_000} { // up to ~274 years in
		for _, p := range []uint64{0, 1, n / 2, n - 1} {
			f := k*n + p
			at := sc.FireTime(f)
			wantAt := int64(k)*I + int64(p)*(I/n) // I divisible by N here
			if at != wantAt {
				t.Errorf("FireTime(%d) = %d, want %d", f, at, wantAt)
			}
			if got := sc.FiresUpTo(at); got != f+1 {
				t.Errorf("FiresUpTo(%d) = %d, want %d", at, got, f+1)
			}
			c, seq, _ := sc.Fire(f)
			if uint64(seq) != k || sc.TimeOf(c, seq) != at {
				t.Errorf("fire %d: seq %d TimeOf %d, want %d %d", f, seq, sc.TimeOf(c, seq), k, at)
			}
		}
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name     string
		n        int
		interval time.Duration
		conns    int
		want     string
	}{
		{name: "zero clients", n: 0, interval: time.Second, conns: 1, want: "clients"},
		{name: "negative clients", n: -1, interval: time.Second, conns: 1, want: "clients"},
		{name: "2^32 clients", n: 1 << 32, interval: time.Second, conns: 1, want: "clients"},
		{name: "zero interval", n: 1, interval: 0, conns: 1, want: "interval"},
		{name: "negative interval", n: 1, interval: -time.Second, conns: 1, want: "interval"},
		{name: "zero connections", n: 1, interval: time.Second, conns: 0, want: "connections"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sc, err := schedule.New(tc.n, tc.interval, tc.conns, func(int) int { return 0 }, 1)
			if err == nil {
				t.Fatalf("New succeeded: %v", sc)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestFireAllocs(t *testing.T) {
	sc := build(t, shapes()[1])
	f := uint64(0)
	if n := testing.AllocsPerRun(1000, func() {
		_ = sc.FiresUpTo(int64(f) * 1000)
		_, _, _ = sc.Fire(f)
		_ = sc.TimeOf(3, 7)
		f++
	}); n != 0 {
		t.Errorf("%v allocs per fire, want 0", n)
	}
}

func BenchmarkNew1M(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := schedule.New(1_000_000, 2*time.Second, 100, func(c int) int { return (c % 256) % 100 }, 50); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(schedule.BytesPerClient+4), "B/client")
}

// BenchmarkFire is the run loop's per-fire cost: a tick of 1 ms asks
// FiresUpTo once, then reads every due fire (1M clients / 2 s = 500 per tick).
func BenchmarkFire(b *testing.B) {
	sc, err := schedule.New(1_000_000, 2*time.Second, 100, modConns(100), 500)
	if err != nil {
		b.Fatal(err)
	}
	var next uint64
	var now int64
	var sink uint32
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if i%500 == 0 { // one tick per 500 fires
			now += int64(time.Millisecond)
			_ = sc.FiresUpTo(now)
		}
		c, seq, _ := sc.Fire(next)
		sink += c + seq
		next++
	}
	_ = sink
	b.ReportMetric(float64(schedule.BytesPerClient+4), "B/client")
}

func TestPerTick(t *testing.T) {
	for _, tc := range []struct {
		n              int
		interval, tick time.Duration
		want           int
	}{
		{100000, 2 * time.Second, time.Millisecond, 50},
		{1000, time.Second, time.Millisecond, 1},
		{10, time.Second, time.Millisecond, 1},
		{1500, time.Second, time.Millisecond, 2},
		{1000000, time.Second, 100 * time.Microsecond, 100},
	} {
		if got := schedule.PerTick(tc.n, tc.interval, tc.tick); got != tc.want {
			t.Errorf("PerTick(%d, %v, %v) = %d, want %d", tc.n, tc.interval, tc.tick, got, tc.want)
		}
	}
}

// TestFireIndexInvertsFire: FireIndex(Fire(f)) = f, exact and on a grid.
func TestFireIndexInvertsFire(t *testing.T) {
	for _, s := range shapes() {
		t.Run(s.name, func(t *testing.T) {
			sc := build(t, s)
			for _, f := range sampleFires(s.n) {
				client, seq, _ := sc.Fire(f)
				if uint64(seq) >= 1<<32-1 {
					continue
				}
				if got := sc.FireIndex(client, seq); got != f {
					t.Fatalf("FireIndex(Fire(%d)) = %d", f, got)
				}
			}
		})
	}
}
