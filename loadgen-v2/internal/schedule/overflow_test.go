package schedule

import (
	"math/big"
	"math/rand/v2"
	"testing"
	"time"
)

// TestNoOverflowHugeN checks the arithmetic for client counts that would need
// gigabytes of tables (the tables are not used by FireTime and FiresUpTo):
// every product is compared with exact big-integer math.
func TestNoOverflowHugeN(t *testing.T) {
	tests := []struct {
		name     string
		n        uint64
		interval time.Duration
	}{
		{name: "4e9 clients, 1h", n: 4_000_000_000, interval: time.Hour},
		{name: "2^32-1 clients, 1h", n: 1<<32 - 1, interval: time.Hour},
		{name: "2^32-1 clients, 1 year", n: 1<<32 - 1, interval: 365 * 24 * time.Hour},
		{name: "2^32-1 clients, 1ns", n: 1<<32 - 1, interval: 1},
		{name: "3 clients, 1 year", n: 3, interval: 365 * 24 * time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &Schedule{n: tc.n, interval: uint64(tc.interval)}
			N, I := new(big.Int).SetUint64(tc.n), new(big.Int).SetUint64(uint64(tc.interval))
			// Exact reference: time(f) = k*I + floor(p*I/N).
			ref := func(f uint64) int64 {
				k, p := f/tc.n, f%tc.n
				ph := new(big.Int).Mul(new(big.Int).SetUint64(p), I)
				ph.Quo(ph, N)
				at := new(big.Int).Mul(new(big.Int).SetUint64(k), I)
				return at.Add(at, ph).Int64()
			}
			r := rand.New(rand.NewPCG(3, 4))
			fs := []uint64{0, 1, tc.n - 1, tc.n, tc.n + 1, 2*tc.n - 1, 2 * tc.n}
			// Far fires, keeping k*I within int64 nanoseconds.
			maxK := uint64(1<<62) / uint64(tc.interval)
			for range 5000 {
				k := r.Uint64N(min(maxK, 1<<20) + 1)
				fs = append(fs, k*tc.n+r.Uint64N(tc.n))
			}
			for _, f := range fs {
				at := s.FireTime(f)
				if want := ref(f); at != want {
					t.Fatalf("FireTime(%d) = %d, want %d", f, at, want)
				}
				if got := s.FiresUpTo(at); got <= f {
					t.Fatalf("FiresUpTo(FireTime(%d)) = %d, want > %d", f, got, f)
				}
				if got := s.FiresUpTo(at - 1); got > f {
					t.Fatalf("FiresUpTo(FireTime(%d)-1) = %d, want ≤ %d", f, got, f)
				}
			}
			// End of a cycle: exactly N fires per interval.
			for _, k := range []int64{0, 1, min(1000, int64(maxK)-1)} {
				end := (k+1)*int64(tc.interval) - 1
				if got := s.FiresUpTo(end); got != uint64(k+1)*tc.n {
					t.Errorf("FiresUpTo(end of cycle %d) = %d, want %d", k, got, uint64(k+1)*tc.n)
				}
			}
		})
	}
}

// TestOnlineNoOverflow checks the ramp-up test t·N ≥ ramp·p against exact
// big-integer math for client counts and ramps whose products overflow 64
// bits (a 64-bit product let clients online too early or never).
func TestOnlineNoOverflow(t *testing.T) {
	tests := []struct {
		name     string
		n        uint64
		interval time.Duration
		ramp     time.Duration
	}{
		{name: "1M clients, ramp 10 min", n: 1_000_000, interval: time.Second, ramp: 10 * time.Minute},
		{name: "2^32-1 clients, ramp 1 h", n: 1<<32 - 1, interval: time.Hour, ramp: time.Hour},
		{name: "100M clients, ramp 1 day", n: 100_000_000, interval: 100 * time.Second, ramp: 24 * time.Hour},
		{name: "3 clients, ramp 1 year", n: 3, interval: time.Minute, ramp: 365 * 24 * time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &Schedule{n: tc.n, interval: uint64(tc.interval)}
			N, R := new(big.Int).SetUint64(tc.n), big.NewInt(int64(tc.ramp))
			r := rand.New(rand.NewPCG(5, 6))
			maxK := uint64(tc.ramp/tc.interval) + 2
			for range 20000 {
				f := r.Uint64N(maxK)*tc.n + r.Uint64N(tc.n)
				at := new(big.Int).SetInt64(s.FireTime(f))
				p := new(big.Int).SetUint64(f % tc.n)
				want := at.Mul(at, N).Cmp(new(big.Int).Mul(R, p)) >= 0
				if got := s.Online(f, int64(tc.ramp)); got != want {
					t.Fatalf("Online(%d) = %v, want %v", f, got, want)
				}
			}
		})
	}
}
