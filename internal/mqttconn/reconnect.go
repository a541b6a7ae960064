package mqttconn

import (
	"errors"
	"math"
	"math/rand/v2"
	"time"
)

// The reconnect policy of both protocol versions. A connection that was
// lost (or not made yet) is attempted again at once: attempt 0. Attempt
// n ≥ 1 — the n-th in a row that failed before it — waits first
//
//	d(n) = min(MaxReconnectInterval, 20 ms × 1.5^(n−1)) × j,   j uniform in [0.5, 1)
//
// Without jitter the waits are 20, 30, 45, 68, 101, 152, 228, 342, 513,
// 769 ms, …, up to the cap; each is about half of all the waiting before
// it (20 ms × 1.5^(n−1) against the sum 40 ms × (1.5^(n−1) − 1)), so a
// broker back after an outage of T is found within about 1.5 T + 20 ms: a
// 0.3 s blip costs a connection about 0.3–0.45 s of sending, not the
// second paho.mqtt.golang waits by itself. The jitter spreads the
// connections of a pool (and of many instances) over each wait, so a broker
// that comes back is not reconnected to by all of them in the same
// millisecond. At the cap (MaxReconnectInterval, default 2 s, reached after
// about 12 attempts, some 6 s into an outage) the waits are 1–2 s.
const (
	reconnectFirst  = 20 * time.Millisecond
	reconnectGrowth = 1.5
)

// ReconnectDelay is the wait before reconnect attempt n (0: the first after
// a loss, which goes at once), capped at limit; u in [0, 1) is the jitter
// draw (rand.Float64()).
func ReconnectDelay(n int, limit time.Duration, u float64) time.Duration {
	if n <= 0 {
		return 0
	}
	d := float64(reconnectFirst) * math.Pow(reconnectGrowth, float64(min(n-1, 64)))
	d = min(d, float64(limit))
	return time.Duration(d * (0.5 + u/2))
}

// errClosing: the pool is closing; no more connection attempts.
var errClosing = errors.New("mqtt pool closing")

// backoff waits before a connection attempt of connection c as the policy
// says: the attempt's number is how many attempts since the last success
// came before it (reset by connected). It returns errClosing, at once, when
// the pool closes meanwhile.
func (c *connBase) backoff() error {
	n := int(c.attempts.Add(1)) - 1
	d := ReconnectDelay(n, c.pool.opts.MaxReconnectInterval, rand.Float64())
	if d <= 0 {
		select {
		case <-c.pool.done:
			return errClosing
		default:
			return nil
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.pool.done:
		return errClosing
	case <-t.C:
		return nil
	}
}

// connected resets the attempt count: the next loss is retried at once.
func (c *connBase) connected() { c.attempts.Store(0) }
