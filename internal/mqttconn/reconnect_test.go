package mqttconn_test

import (
	"testing"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
)

// TestReconnectDelay: the first attempt after a loss goes at once; then
// 20 ms growing by half per attempt, capped, jittered into [d/2, d).
func TestReconnectDelay(t *testing.T) {
	const cap2s = 2 * time.Second
	for _, tc := range []struct {
		name  string
		n     int
		limit time.Duration
		u     float64
		want  time.Duration
	}{
		{"first after a loss", 0, cap2s, 0.99, 0},
		{"second, least jitter", 1, cap2s, 0, 10 * time.Millisecond},
		{"second, most jitter", 1, cap2s, 1, 20 * time.Millisecond},
		{"third", 2, cap2s, 1, 30 * time.Millisecond},
		{"fifth", 4, cap2s, 1, 67500 * time.Microsecond},
		{"tenth", 9, cap2s, 1, time.Duration(20e6 * 25.62890625)},
		{"capped", 13, cap2s, 1, cap2s},
		{"capped, least jitter", 40, cap2s, 0, time.Second},
		{"huge n", 1 << 30, cap2s, 0.5, 1500 * time.Millisecond},
		{"small cap", 5, 50 * time.Millisecond, 1, 50 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := mqttconn.ReconnectDelay(tc.n, tc.limit, tc.u); got != tc.want {
				t.Errorf("ReconnectDelay(%d, %v, %v) = %v, want %v", tc.n, tc.limit, tc.u, got, tc.want)
			}
		})
	}
	// An outage of T is found within about 1.5 T + 20 ms: each wait is at
	// most half of all the waiting before it, plus the first 20 ms.
	var sum time.Duration
	for n := 1; n < 13; n++ {
		d := mqttconn.ReconnectDelay(n, cap2s, 1)
		if d > sum/2+20*time.Millisecond {
			t.Errorf("wait %d is %v after %v of waiting: more than half of it + 20 ms", n, d, sum)
		}
		sum += d
	}
}
