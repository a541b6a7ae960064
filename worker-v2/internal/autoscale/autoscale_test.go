package autoscale

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

var policy = Policy{Min: 10, Max: 1000, Up: 0.7, Down: 0.2, DownAfter: 3}

func TestDecide(t *testing.T) {
	cases := []struct {
		name string
		obs  Observation
		p    Policy
		want int
	}{
		{"hold in the band", Observation{Workers: 40, QueueLen: 50, QueueCap: 100}, policy, 40},
		{"hold at exactly up", Observation{Workers: 40, QueueLen: 70, QueueCap: 100}, policy, 40},
		{"hold at exactly down", Observation{Workers: 40, QueueLen: 20, QueueCap: 100, Calm: 5}, policy, 40},
		{"double above up", Observation{Workers: 40, QueueLen: 71, QueueCap: 100}, policy, 80},
		{"double when full", Observation{Workers: 10, QueueLen: 100, QueueCap: 100}, policy, 20},
		{"up capped at max", Observation{Workers: 600, QueueLen: 100, QueueCap: 100}, policy, 1000},
		{"up at max holds", Observation{Workers: 1000, QueueLen: 100, QueueCap: 100}, policy, 1000},
		{"up from one adds one", Observation{Workers: 1, QueueLen: 9, QueueCap: 10}, Policy{Min: 1, Max: 5, Up: 0.7, Down: 0.2}, 2},
		{"low but not long enough", Observation{Workers: 100, QueueLen: 0, QueueCap: 100, Calm: 1}, policy, 100},
		{"low for DownAfter samples cuts 10%", Observation{Workers: 100, QueueLen: 0, QueueCap: 100, Calm: 2}, policy, 90},
		{"long calm still cuts one step", Observation{Workers: 100, QueueLen: 10, QueueCap: 100, Calm: 40}, policy, 90},
		{"small pool cuts at least one", Observation{Workers: 12, QueueLen: 0, QueueCap: 100, Calm: 9}, policy, 11},
		{"cut floored at min", Observation{Workers: 10, QueueLen: 0, QueueCap: 100, Calm: 9}, policy, 10},
		{"cut floored by busy workers", Observation{Workers: 100, Busy: 80, QueueLen: 0, QueueCap: 100, Calm: 9}, policy, 100},
		{"cut to busy plus headroom", Observation{Workers: 100, Busy: 75, QueueLen: 0, QueueCap: 100, Calm: 9}, policy, 94},
		{"all busy never scales up on low fill", Observation{Workers: 20, Busy: 20, QueueLen: 0, QueueCap: 100, Calm: 9}, policy, 20},
		{"DownAfter 0 means 1", Observation{Workers: 50, QueueLen: 0, QueueCap: 100}, Policy{Min: 1, Max: 100, Up: 0.7, Down: 0.2}, 45},
		{"below min is raised", Observation{Workers: 3, QueueLen: 50, QueueCap: 100}, policy, 10},
		// Demand = arrivals/s × mean processing time (Little's law).
		{"step up to the demand in one go", Observation{Workers: 10, QueueLen: 100, QueueCap: 100, Demand: 150}, policy, 188}, // ⌈150/0.8⌉
		{"small demand still doubles", Observation{Workers: 40, QueueLen: 100, QueueCap: 100, Demand: 20}, policy, 80},
		{"demand capped at max", Observation{Workers: 10, QueueLen: 100, QueueCap: 100, Demand: 5000}, policy, 1000},
		{"demand floors a cut", Observation{Workers: 100, Busy: 10, QueueLen: 0, QueueCap: 100, Calm: 9, Demand: 76}, policy, 95},
		{"demand below the cut does not hold it", Observation{Workers: 100, Busy: 10, QueueLen: 0, QueueCap: 100, Calm: 9, Demand: 40}, policy, 90},
		{"demand never raises on low fill", Observation{Workers: 20, QueueLen: 0, QueueCap: 100, Calm: 9, Demand: 50}, policy, 20},
		{"demand ignored in the band", Observation{Workers: 20, QueueLen: 50, QueueCap: 100, Demand: 500}, policy, 20},
		{"above max is lowered", Observation{Workers: 2000, QueueLen: 100, QueueCap: 100}, policy, 1000},
		{"zero capacity holds", Observation{Workers: 40, QueueLen: 0, QueueCap: 0, Calm: 0}, Policy{Min: 1, Max: 100, Up: 0.7, Down: 0.2, DownAfter: 3}, 40},
		{"min equals max", Observation{Workers: 1, QueueLen: 10, QueueCap: 10}, Policy{Min: 1, Max: 1, Up: 0.7, Down: 0.2}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Decide(tc.obs, tc.p); got != tc.want {
				t.Errorf("Decide(%+v) = %d, want %d", tc.obs, got, tc.want)
			}
		})
	}
}

// pool is a fake worker pool the Scaler drives: a worker count and a queue
// length the test sets.
type pool struct {
	mu       sync.Mutex
	workers  int
	queueLen int
	cap      int
	history  []int
}

func (p *pool) sample() Observation {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Observation{Workers: p.workers, QueueLen: p.queueLen, QueueCap: p.cap}
}

func (p *pool) apply(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.workers = n
	p.history = append(p.history, n)
}

func (p *pool) get() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.workers
}

func (p *pool) setQueue(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.queueLen = n
}

// TestScalerLoop drives the loop in virtual time: a full queue takes the pool
// from Min to Max by doubling, one step per interval; an empty queue brings it
// back to Min after DownAfter samples, by cuts that never go up.
func TestScalerLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = time.Second
		p := &pool{workers: policy.Min, queueLen: 1000, cap: 1000}
		s := New(policy, interval, p.sample, p.apply)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { s.Run(ctx); close(done) }()
		start := time.Now()

		tick := func() { // advance to just after the next tick
			time.Sleep(interval)
			synctest.Wait()
		}
		time.Sleep(interval / 2) // sample half-way between ticks
		for _, want := range []int{20, 40, 80, 160, 320, 640, 1000, 1000} {
			tick()
			if got := p.get(); got != want {
				t.Fatalf("after %v of a full queue: %d workers, want %d", time.Since(start), got, want)
			}
		}
		if s.Ups() != 7 || s.Downs() != 0 {
			t.Errorf("ups, downs = %d, %d; want 7, 0", s.Ups(), s.Downs())
		}

		p.setQueue(0)
		for i := range policy.DownAfter - 1 {
			tick()
			if got := p.get(); got != policy.Max {
				t.Fatalf("empty-queue sample %d: %d workers, want %d (hysteresis)", i+1, got, policy.Max)
			}
		}
		prev, steps := policy.Max, 0
		for p.get() > policy.Min {
			tick()
			steps++
			got := p.get()
			if got >= prev || got < policy.Min {
				t.Fatalf("cut %d: %d workers after %d (want fewer, ≥ %d)", steps, got, prev, policy.Min)
			}
			prev = got
			if steps > 60 {
				t.Fatalf("still %d workers after %d cuts", got, steps)
			}
		}
		tick()
		if got := p.get(); got != policy.Min {
			t.Errorf("settled at %d workers, want %d", got, policy.Min)
		}
		if s.Downs() != uint64(steps) {
			t.Errorf("downs = %d, want %d", s.Downs(), steps)
		}
		// 1000 → 10 by cuts of ⌊w/10⌋ (at least 1): 900, 810, 729, 657, …, 11, 10.
		if steps != 49 {
			t.Errorf("scale-down took %d intervals, want 49", steps)
		}

		ev := s.Events()
		if len(ev) != EventLog {
			t.Fatalf("%d events kept, want %d", len(ev), EventLog)
		}
		last := ev[len(ev)-1]
		if last.To != policy.Min || last.From <= last.To || last.Reason == "" {
			t.Errorf("last event %+v", last)
		}
		for i := 1; i < len(ev); i++ {
			if !ev[i].Time.After(ev[i-1].Time) || ev[i].From != ev[i-1].To {
				t.Errorf("events %d and %d out of order or discontinuous: %+v, %+v", i-1, i, ev[i-1], ev[i])
			}
		}

		cancel()
		<-done
	})
}

func TestEventsBeforeWrap(t *testing.T) {
	p := &pool{workers: 1, queueLen: 10, cap: 10}
	s := New(Policy{Min: 1, Max: 4, Up: 0.5, Down: 0.1}, time.Second, p.sample, p.apply)
	t0 := time.Unix(0, 0)
	for i := range 5 {
		s.Step(t0.Add(time.Duration(i) * time.Second))
	}
	ev := s.Events()
	if len(ev) != 2 || ev[0].From != 1 || ev[0].To != 2 || ev[1].To != 4 {
		t.Errorf("events = %+v, want 1→2, 2→4", ev)
	}
}
