package engine

import (
	"testing"
	"time"
)

// TestLoadSampler: the autoscaler's samples. The first one measures from the
// baseline (Run sets it when connected); the arrival rate is the received count's growth over the
// interval; the service time is the mean occupancy of the messages finished
// in the interval, kept while none finish.
func TestLoadSampler(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := loadSampler{at: t0}
	for _, c := range []struct {
		name               string
		at                 time.Duration
		received, finished uint64
		busy               time.Duration
		arrivals           float64
		service            time.Duration
	}{
		{"100 arrivals in a second, nothing finished: service unknown", time.Second, 100, 0, 0, 100, 0},
		{"ten finished at 20 ms each", 2 * time.Second, 100, 10, 200 * time.Millisecond, 0, 20 * time.Millisecond},
		{"nothing finished: the last known service time", 3 * time.Second, 100, 10, 200 * time.Millisecond, 0, 20 * time.Millisecond},
		{"50 arrivals in half a second, two finished at 5 and 15 ms", 3500 * time.Millisecond, 150, 12, 220 * time.Millisecond, 100, 10 * time.Millisecond},
	} {
		arrivals, service := l.next(t0.Add(c.at), c.received, c.finished, c.busy)
		if arrivals != c.arrivals || service != c.service {
			t.Errorf("%s: arrivals %v/s, service %v; want %v/s, %v", c.name, arrivals, service, c.arrivals, c.service)
		}
	}
	if a, s := (&loadSampler{}).next(t0, 100, 10, time.Second); a != 0 || s != 0 {
		t.Errorf("without a baseline: arrivals %v, service %v; want 0, 0", a, s)
	}
}
