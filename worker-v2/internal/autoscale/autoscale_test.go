package autoscale

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// policy is the worker's default policy: MIN_WORKERS=10, MAX_WORKERS=1000,
// thresholds 0.7/0.2, utilisation target 0.8, SCALE_MAX_WAIT=1s,
// SCALE_DOWN_WINDOW=30s.
var policy = Policy{Min: 10, Max: 1000, Up: 0.7, Down: 0.2, Target: 0.8, MaxWait: time.Second, DownWindow: 30 * time.Second}

const ms = time.Millisecond

func TestNeed(t *testing.T) {
	cases := []struct {
		name string
		obs  Observation
		p    Policy
		want int
	}{
		{"unknown service time", Observation{Arrivals: 10000}, policy, 0},
		{"no arrivals", Observation{Service: 5 * ms}, policy, 0},
		{"little's law over the target", Observation{Arrivals: 10000, Service: 5 * ms}, policy, 63},     // ⌈50/0.8⌉
		{"an exact quotient is not rounded up", Observation{Arrivals: 40, Service: 20 * ms}, policy, 1}, // 0.8/0.8
		{"backlog drains within MaxWait", Observation{Arrivals: 10000, Service: 5 * ms, QueueLen: 8000}, policy, 113},
		{"no budget, no backlog term", Observation{Arrivals: 10000, Service: 5 * ms, QueueLen: 8000}, Policy{Min: 1, Max: 1000}, 63},
		{"target 1", Observation{Arrivals: 10000, Service: 5 * ms}, Policy{Min: 1, Max: 1000, Target: 1}, 50},
		{"target 0 is the default", Observation{Arrivals: 10000, Service: 5 * ms}, Policy{Min: 1, Max: 1000}, 63},
		{"capped at max", Observation{Arrivals: 1e9, Service: time.Second}, policy, 1000},
		{"negative rate is none", Observation{Arrivals: -5, Service: 5 * ms}, policy, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.obs.Need(tc.p); got != tc.want {
				t.Errorf("Need(%+v) = %d, want %d", tc.obs, got, tc.want)
			}
		})
	}
}

func TestDecide(t *testing.T) {
	small := Policy{Min: 1, Max: 5, Up: 0.7, Down: 0.2}
	cases := []struct {
		name string
		obs  Observation
		p    Policy
		want int
		why  Trigger
	}{
		// Up on demand: need = ⌈(λ + B/MaxWait)·S/0.8⌉.
		{"demand: 10k req/s x 5 ms from MIN_WORKERS at once", Observation{Workers: 10, Arrivals: 10000, Service: 5 * ms}, policy, 63, Demand},
		{"demand scales up in the band", Observation{Workers: 20, QueueLen: 50, QueueCap: 100, Arrivals: 100000, Service: 4 * ms}, policy, 501, Demand}, // (100000+50)·0.004/0.8
		{"demand far below the fill trigger (default queue)", Observation{Workers: 10, QueueLen: 8000, QueueCap: 100000, Arrivals: 10000, Service: 5 * ms, Oldest: 800 * ms}, policy, 113, Demand},
		{"demand: 5k -> 30k step with its first second of backlog", Observation{Workers: 32, QueueLen: 24000, QueueCap: 100000, Arrivals: 30000, Service: 5 * ms, Oldest: 900 * ms}, policy, 338, Demand},
		{"demand at the pool holds", Observation{Workers: 63, Arrivals: 10000, Service: 5 * ms}, policy, 63, Hold},
		{"demand within the tolerance holds", Observation{Workers: 58, Arrivals: 10000, Service: 5 * ms}, policy, 58, Hold}, // 63 ≤ 58·1.1
		{"demand just past the tolerance", Observation{Workers: 57, Arrivals: 10000, Service: 5 * ms}, policy, 63, Demand},
		{"demand capped at max", Observation{Workers: 10, Arrivals: 1e6, Service: 10 * ms}, policy, 1000, Demand},
		{"demand at max holds", Observation{Workers: 1000, Arrivals: 1e6, Service: 10 * ms}, policy, 1000, Hold},
		{"unknown service time: no demand rule", Observation{Workers: 10, QueueLen: 5000, QueueCap: 100000, Arrivals: 10000, Oldest: 500 * ms}, policy, 10, Hold},

		// Up on queue wait: at least double.
		{"oldest above MaxWait doubles", Observation{Workers: 10, QueueLen: 5, QueueCap: 100000, Oldest: 1001 * ms}, policy, 20, Wait},
		{"oldest at exactly MaxWait holds", Observation{Workers: 10, QueueLen: 5, QueueCap: 100000, Oldest: time.Second}, policy, 10, Hold},
		{"oldest above MaxWait takes need when larger", Observation{Workers: 10, QueueLen: 5, QueueCap: 100000, Oldest: 2 * time.Second, Arrivals: 10000, Service: 5 * ms}, policy, 63, Demand},
		{"need below double: the wait doubles", Observation{Workers: 40, QueueLen: 5, QueueCap: 100000, Oldest: 2 * time.Second, Arrivals: 10000, Service: 5 * ms}, policy, 80, Wait},
		{"MaxWait 0: no wait trigger", Observation{Workers: 10, QueueLen: 5, QueueCap: 100000, Oldest: time.Hour}, Policy{Min: 10, Max: 100, Up: 0.7, Down: 0.2}, 10, Hold},
		{"wait at max holds", Observation{Workers: 1000, QueueLen: 5, QueueCap: 100000, Oldest: time.Minute}, policy, 1000, Hold},

		// Up on queue fill (the seed's trigger): at least double.
		{"fill above up doubles", Observation{Workers: 40, QueueLen: 71, QueueCap: 100}, policy, 80, Fill},
		{"fill at exactly up holds", Observation{Workers: 40, QueueLen: 70, QueueCap: 100}, policy, 40, Hold},
		{"byte fill above up doubles", Observation{Workers: 40, QueueLen: 3, QueueCap: 100, QueueBytes: 71 << 20, QueueMaxBytes: 100 << 20}, policy, 80, Fill},
		{"fill takes need when larger", Observation{Workers: 10, QueueLen: 100, QueueCap: 100, Arrivals: 30000, Service: 5 * ms}, policy, 189, Demand}, // (30000+100)·0.005/0.8
		{"fill and wait: the wait is named", Observation{Workers: 10, QueueLen: 100, QueueCap: 100, Oldest: 5 * time.Second}, policy, 20, Wait},
		{"up from one adds one", Observation{Workers: 1, QueueLen: 9, QueueCap: 10}, small, 2, Fill},
		{"fill up capped at max", Observation{Workers: 600, QueueLen: 100, QueueCap: 100}, policy, 1000, Fill},
		{"fill at max holds", Observation{Workers: 1000, QueueLen: 100, QueueCap: 100}, policy, 1000, Hold},

		// Down: stabilised, by at most half, never below need, busy + 25% or Min.
		{"idle: halve toward min", Observation{Workers: 100, QueueCap: 100}, policy, 50, Down},
		{"idle: last halving lands on min", Observation{Workers: 20, QueueCap: 100}, policy, 10, Down},
		{"idle: just above min returns to it", Observation{Workers: 11, QueueCap: 100}, policy, 10, Down},
		{"at min holds", Observation{Workers: 10, QueueCap: 100}, policy, 10, Hold},
		{"never below demand", Observation{Workers: 100, QueueCap: 100, Arrivals: 10000, Service: 5 * ms}, policy, 63, Down},
		{"never below busy plus headroom", Observation{Workers: 100, Busy: 60, QueueCap: 100}, policy, 75, Down},
		{"busy plus headroom within the tolerance holds", Observation{Workers: 100, Busy: 75, QueueCap: 100}, policy, 100, Hold}, // 94 ≥ 90
		{"all busy never scales up on low fill", Observation{Workers: 20, Busy: 20, QueueCap: 100}, policy, 20, Hold},
		{"the window holds a scale-up", Observation{Workers: 338, QueueCap: 100000, Arrivals: 30000, Service: 5 * ms, Recent: 338}, policy, 338, Hold},
		{"the window's highest recommendation floors a cut", Observation{Workers: 338, QueueCap: 100000, Arrivals: 5000, Service: 5 * ms, Recent: 188}, policy, 188, Down},
		{"a cut is at most half", Observation{Workers: 188, QueueCap: 100000, Arrivals: 5000, Service: 5 * ms, Recent: 32}, policy, 94, Down},
		{"need within the tolerance holds", Observation{Workers: 100, QueueCap: 100, Arrivals: 14400, Service: 5 * ms}, policy, 100, Hold}, // need 90
		{"no cut while the queue is above down", Observation{Workers: 100, QueueLen: 30, QueueCap: 100}, policy, 100, Hold},
		{"no cut at exactly down", Observation{Workers: 100, QueueLen: 20, QueueCap: 100}, policy, 100, Hold},
		{"no cut while bytes are above down", Observation{Workers: 100, QueueCap: 100, QueueBytes: 30, QueueMaxBytes: 100}, policy, 100, Hold},
		{"no cut while a message waits too long", Observation{Workers: 1000, QueueLen: 1, QueueCap: 100000, Oldest: 2 * time.Second}, policy, 1000, Hold},
		{"zero capacity counts as empty", Observation{Workers: 40}, Policy{Min: 1, Max: 100, Up: 0.7, Down: 0.2}, 20, Down},

		// Bounds.
		{"below min is raised", Observation{Workers: 3, QueueLen: 50, QueueCap: 100}, policy, 10, Bounds},
		{"above max is lowered", Observation{Workers: 2000, QueueLen: 100, QueueCap: 100}, policy, 1000, Bounds},
		{"min equals max", Observation{Workers: 1, QueueLen: 10, QueueCap: 10, Arrivals: 1000, Service: time.Second}, Policy{Min: 1, Max: 1, Up: 0.7, Down: 0.2}, 1, Hold},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := Decide(tc.obs, tc.p)
			if d.Workers != tc.want || d.Trigger != tc.why {
				t.Errorf("Decide(%+v) = %d (%v), want %d (%v)", tc.obs, d.Workers, d.Trigger, tc.want, tc.why)
			}
			if d.Workers > tc.obs.Workers && d.Want != d.Workers {
				t.Errorf("scale-up to %d recommends %d for the window", d.Workers, d.Want)
			}
			if d.Trigger == Down && (d.Workers < tc.p.Min || d.Workers*2 < tc.obs.Workers || d.Workers < d.Need) {
				t.Errorf("cut %d → %d: below Min, more than half, or below need %d", tc.obs.Workers, d.Workers, d.Need)
			}
		})
	}
}

func TestDecideWant(t *testing.T) {
	// What a sample recommends to the window: the need, busy + 25%, Min.
	for _, tc := range []struct {
		obs  Observation
		want int
	}{
		{Observation{Workers: 100, QueueCap: 100}, 10},
		{Observation{Workers: 100, Busy: 60, QueueCap: 100}, 75},
		{Observation{Workers: 100, QueueCap: 100, Arrivals: 10000, Service: 5 * ms}, 63},
		{Observation{Workers: 10, Arrivals: 10000, Service: 5 * ms}, 63}, // a scale-up: the new count
	} {
		if got := Decide(tc.obs, policy).Want; got != tc.want {
			t.Errorf("Decide(%+v).Want = %d, want %d", tc.obs, got, tc.want)
		}
	}
}

// pool is a fake worker pool the Scaler drives: the test sets the load; the
// worker count is what the Scaler applied.
type pool struct {
	mu      sync.Mutex
	obs     Observation // load and queue; Workers is kept by apply
	history []int
}

func (p *pool) sample() Observation {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.obs
}

func (p *pool) apply(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.obs.Workers = n
	p.history = append(p.history, n)
}

func (p *pool) set(f func(o *Observation)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(&p.obs)
}

func (p *pool) workers() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.obs.Workers
}

// runLoop runs s in virtual time and returns tick (advance to just after the
// next sample) and stop.
func runLoop(t *testing.T, s *Scaler, interval time.Duration) (tick func(), stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	time.Sleep(interval / 2) // sample half-way between ticks
	return func() {
			time.Sleep(interval)
			synctest.Wait()
		}, func() {
			cancel()
			<-done
		}
}

// TestScalerLoadStep drives the loop in virtual time through the benchmark's
// step, 5k → 30k → 5k req/s at 5 ms a request with the default queue: the
// pool meets the base load and the step at the first sample that sees them,
// holds through the stabilisation window, and after it comes back to the
// base demand by cuts of at most half, never below it.
func TestScalerLoadStep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = time.Second
		p := &pool{obs: Observation{Workers: policy.Min, QueueCap: 100000, Service: 5 * ms}}
		s := New(policy, interval, p.sample, p.apply)
		tick, stop := runLoop(t, s, interval)
		defer stop()

		base := func(o *Observation) { o.Arrivals, o.QueueLen, o.Oldest = 5000, 0, 0 }
		p.set(base)
		tick()
		if got := p.workers(); got != 32 { // ⌈5000·0.005/0.8⌉
			t.Fatalf("base load: %d workers, want 32", got)
		}
		for range 40 {
			tick()
		}

		// The step: the first sample sees its arrivals and a second of backlog.
		p.set(func(o *Observation) { o.Arrivals, o.QueueLen, o.Oldest = 30000, 24000, 900*ms })
		tick()
		if got := p.workers(); got != 338 {
			t.Fatalf("first sample of the step: %d workers, want 338 (⌈(30000+24000)·0.005/0.8⌉)", got)
		}
		p.set(func(o *Observation) { o.QueueLen, o.Oldest = 0, 0 })
		steps := 0
		for ; p.workers() == 338; steps++ {
			tick()
		}
		if got, want := p.workers(), 188; got != want || steps != 30 {
			t.Fatalf("during the step: %d workers after %d samples at 338, want %d after 30 (the window)", got, steps, want)
		}
		for range 10 {
			tick()
		}

		// Back to the base load: the window holds 188 for 30 s, then cuts.
		p.set(base)
		upAt := len(p.history)
		for range 29 {
			tick()
			if got := p.workers(); got != 188 {
				t.Fatalf("%d workers within the window after the step, want 188", got)
			}
		}
		for range 10 {
			tick()
		}
		if got := p.workers(); got != 32 {
			t.Errorf("after the window: %d workers, want the base need 32", got)
		}
		cuts := p.history[upAt:]
		if want := []int{94, 47, 32}; !slices.Equal(cuts, want) {
			t.Errorf("cuts after the step %v, want %v (half at a time, floored at the need)", cuts, want)
		}
		if s.Ups() != 2 || s.Downs() != 4 {
			t.Errorf("ups, downs = %d, %d; want 2, 4 (10→32, 32→338; 338→188→94→47→32)", s.Ups(), s.Downs())
		}
		ev := s.Events()
		if len(ev) != 6 || ev[1].Trigger != "demand" || ev[1].Need != 338 || ev[1].ArrivalRPS != 30000 || ev[2].Trigger != "down" ||
			!strings.Contains(ev[1].Reason, "need 338") || ev[5].Need != 32 || ev[5].To != 32 {
			t.Errorf("events %+v", ev)
		}
	})
}

// TestScalerQueueWait: with no service time known (nothing finished: every
// worker is stuck in a long request), an old queued message doubles the pool
// every interval until it is answered, and the scale-up is held for the
// window before an idle pool returns to Min.
func TestScalerQueueWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = time.Second
		pol := policy
		pol.DownWindow = 5 * time.Second
		p := &pool{obs: Observation{Workers: pol.Min, QueueCap: 100000, QueueLen: 50}}
		s := New(pol, interval, p.sample, p.apply)
		tick, stop := runLoop(t, s, interval)
		defer stop()

		for i, oldest := range []time.Duration{500 * ms, 1500 * ms, 2500 * ms, 3500 * ms} {
			p.set(func(o *Observation) { o.Oldest = oldest })
			tick()
			want := []int{10, 20, 40, 80}[i]
			if got := p.workers(); got != want {
				t.Fatalf("oldest %v: %d workers, want %d", oldest, got, want)
			}
		}
		p.set(func(o *Observation) { o.QueueLen, o.Oldest = 0, 0 })
		for range 4 {
			tick()
			if got := p.workers(); got != 80 {
				t.Fatalf("%d workers within the window, want 80", got)
			}
		}
		for range 10 {
			tick()
		}
		if got := p.workers(); got != pol.Min {
			t.Errorf("idle after the window: %d workers, want %d", got, pol.Min)
		}
		for _, e := range s.Events()[:3] {
			if e.Trigger != "queue_wait" || !strings.Contains(e.Reason, "oldest above 1s") {
				t.Errorf("event %+v, want a queue_wait scale-up", e)
			}
		}
	})
}

// TestScalerWindowZero: without a window only the current sample counts, and
// the fill trigger (the seed's) still doubles a pool with no demand known.
func TestScalerWindowZero(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = 100 * ms
		pol := Policy{Min: 10, Max: 1000, Up: 0.7, Down: 0.2}
		p := &pool{obs: Observation{Workers: 10, QueueCap: 1000, QueueLen: 1000}}
		s := New(pol, interval, p.sample, p.apply)
		tick, stop := runLoop(t, s, interval)
		defer stop()
		for range 8 {
			tick()
		}
		p.set(func(o *Observation) { o.QueueLen = 0 })
		for range 8 {
			tick()
		}
		want := []int{20, 40, 80, 160, 320, 640, 1000, 500, 250, 125, 63, 32, 16, 10}
		if !slices.Equal(p.history, want) {
			t.Errorf("history %v, want %v", p.history, want)
		}
	})
}

func TestEventLogWraps(t *testing.T) {
	p := &pool{obs: Observation{Workers: 1, QueueCap: 10}}
	s := New(Policy{Min: 1, Max: 4, Up: 0.5, Down: 0.1}, time.Second, p.sample, p.apply)
	t0 := time.Unix(0, 0)
	step := func(i int) { // a full queue doubles, an empty one halves: one event a step
		p.set(func(o *Observation) { o.QueueLen = 10 * (1 - i%2) })
		s.Step(t0.Add(time.Duration(i) * time.Second))
	}
	for i := range 3 {
		step(i)
	}
	if ev := s.Events(); len(ev) != 3 || ev[0].From != 1 || ev[0].To != 2 || ev[0].Trigger != "queue_fill" ||
		ev[1].To != 1 || ev[1].Trigger != "down" || ev[2].To != 2 {
		t.Errorf("events = %+v, want 1→2, 2→1, 1→2", ev)
	}
	for i := 3; i < EventLog+7; i++ {
		step(i)
	}
	ev := s.Events()
	if len(ev) != EventLog {
		t.Fatalf("%d events kept, want %d", len(ev), EventLog)
	}
	if ev[0].Time != t0.Add(7*time.Second) {
		t.Errorf("oldest event kept at %v, want the 8th", ev[0].Time)
	}
	for i := 1; i < len(ev); i++ {
		if !ev[i].Time.After(ev[i-1].Time) || ev[i].From != ev[i-1].To {
			t.Errorf("events %d and %d out of order or discontinuous: %+v, %+v", i-1, i, ev[i-1], ev[i])
		}
	}
	if s.Ups()+s.Downs() != EventLog+7 {
		t.Errorf("ups %d + downs %d, want %d", s.Ups(), s.Downs(), EventLog+7)
	}
}

func TestTriggerString(t *testing.T) {
	for tr, want := range map[Trigger]string{Hold: "hold", Bounds: "bounds", Demand: "demand", Wait: "queue_wait", Fill: "queue_fill", Down: "down", 42: "trigger(42)"} {
		if got := tr.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", tr, got, want)
		}
	}
}
