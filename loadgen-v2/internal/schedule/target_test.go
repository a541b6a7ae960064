package schedule_test

import (
	"math"
	"testing"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/schedule"
)

func TestTargetRate(t *testing.T) {
	const rate = 1000.0
	s := time.Second
	for _, tc := range []struct {
		name              string
		ramp, warmup, end time.Duration
		want              float64
	}{
		{"no ramp", 0, 0, 10 * s, rate},
		{"no ramp, warm-up", 0, 2 * s, 10 * s, rate},
		// 0.25 of the full rate over half a ramp: ∫₀⁵ t/10 dt / 5.
		{"stop at half the ramp", 10 * s, 0, 5 * s, 250},
		{"stop at a tenth of the ramp", 10 * s, 0, s, 50},
		{"stop at nine tenths of the ramp", 10 * s, 0, 9 * s, 450},
		{"stop at the end of the ramp", 10 * s, 0, 10 * s, 500},
		// (50 + 10) / 20: the ramp's 5 s of the full rate, then 10 s at it.
		{"stop after the ramp", 10 * s, 0, 20 * s, 750},
		{"warm-up inside the ramp, stop inside it", 10 * s, 2 * s, 6 * s, 400},
		{"warm-up inside the ramp, stop at its end", 10 * s, 4 * s, 10 * s, 700},
		// ((100 − 64) / 20 + 10) / 12: the last 2 s of the ramp, then 10 s.
		{"warm-up inside the ramp, stop after it", 10 * s, 8 * s, 20 * s, 1000 * (1.8 + 10) / 12},
		{"warm-up as long as the ramp", 10 * s, 10 * s, 20 * s, rate},
		{"warm-up after the ramp", 10 * s, 15 * s, 20 * s, rate},
		{"stop before the warm-up ended", 10 * s, 6 * s, 4 * s, rate},
		{"stop when the warm-up ended", 10 * s, 6 * s, 6 * s, rate},
		{"stop at once", 10 * s, 0, 0, rate},
		{"a ramp of 1 ns, stop at 1 s", 1, 0, s, rate * (1 - 0.5e-9)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := schedule.TargetRate(rate, tc.ramp, tc.warmup, tc.end)
			if math.Abs(got-tc.want) > 1e-9*tc.want {
				t.Errorf("TargetRate(%v, ramp %v, [%v, %v)) = %v, want %v", rate, tc.ramp, tc.warmup, tc.end, got, tc.want)
			}
		})
	}
}

// TestTargetRateCountsTheSchedule: the fires of a schedule online in
// [from, to) are the target rate × (to − from) within the rounding
// TargetRate states: fewer than 1 + ramp/(N·I) per client online before to.
func TestTargetRateCountsTheSchedule(t *testing.T) {
	for _, tc := range []struct {
		n              int
		interval, ramp time.Duration
	}{
		{1000, 100 * time.Millisecond, 10 * time.Second},
		{100, time.Second, 10 * time.Second},
		{200, 10 * time.Millisecond, 4 * time.Second},
		{7, 3 * time.Millisecond, time.Second},
	} {
		s, err := schedule.New(tc.n, tc.interval, 3, func(c int) int { return c % 3 }, 2)
		if err != nil {
			t.Fatal(err)
		}
		rate := float64(tc.n) / tc.interval.Seconds()
		perClient := 1 + float64(tc.ramp)/(float64(tc.n)*float64(tc.interval))
		for _, from := range []time.Duration{0, tc.ramp / 3} {
			for to := from + tc.ramp/16; to <= tc.ramp*3/2; to += tc.ramp/16 + 7*time.Microsecond {
				var sent int
				for f := s.FiresUpTo(int64(from) - 1); f < s.FiresUpTo(int64(to)-1); f++ {
					if s.Online(f, int64(tc.ramp)) {
						sent++
					}
				}
				online := min(tc.n, int((to*time.Duration(tc.n)+tc.ramp-1)/tc.ramp))
				offered := schedule.TargetRate(rate, tc.ramp, from, to) * (to - from).Seconds()
				if d := float64(sent) - offered; math.Abs(d) >= float64(online)*perClient {
					t.Errorf("N %d, I %v, ramp %v, [%v, %v): %d fires, target offers %.1f: %.1f apart, more than %.1f",
						tc.n, tc.interval, tc.ramp, from, to, sent, offered, d, float64(online)*perClient)
				}
			}
		}
	}
}
