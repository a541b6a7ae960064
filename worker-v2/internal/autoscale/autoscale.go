// Package autoscale owns the worker autoscaler: a pure decision function
// (Decide) from one observation of the pool to a worker count, and the loop
// (Scaler) that samples, decides and applies it every interval, keeps the
// stabilisation window and a log of the scaling events.
//
// # The rule
//
// Every interval the engine reports the arrival rate λ (requests received per
// second over the interval, dropped ones included: the offered load), the
// mean service time S (how long a worker is occupied by one message: from
// taking it off the queue to having queued its reply), the backlog B
// (messages queued), the age of the oldest queued message, the queue fill
// (items and bytes) and the workers busy at the sample. By Little's law the
// offered load keeps λ·S workers busy on average: the demand. Draining the
// backlog within the budget T = MaxWait takes another B/T·S. At the target
// utilisation U (Target, default 0.8) the pool needs
//
//	need = ⌈(λ + B/T) · S / U⌉
//
// which is the Kubernetes HPA's desired = ⌈current · metric / target⌉ with
// metric = (λ + B/T)·S / current, the utilisation the current pool would run at.
//
// Up, at once (no stabilisation), to the largest that applies, at most Max:
//
//   - demand: need, when need > current · (1 + Tolerance) (the HPA's 10%
//     tolerance keeps noise from moving the pool);
//   - queue wait: max(2·current, current+1, need) when the oldest queued
//     message has waited longer than MaxWait: the demand estimate is missing
//     (no message finished yet, e.g. a service time longer than the
//     interval) or wrong, so grow geometrically until the wait is back;
//   - queue fill: the same when the queue is fuller (in items or in bytes)
//     than Up, the seed's trigger, kept as a last resort.
//
// Down, slowly, only while no trigger above fired and the fill is below Down:
// to the highest recommendation of the last DownWindow (the stabilisation
// window, as the HPA's scale-down: a short dip never undoes a scale-up), when
// that is below current · (1 − Tolerance) or is Min, and by at most half of
// the pool per interval. A sample's recommendation is max(need, busy + 25%, Min): never
// below the demand nor the workers busy at the sample (an empty queue says
// "enough workers", not "too many").
//
// A pool outside [Min, Max] (the policy changed) is clamped first.
package autoscale

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// EventLog is how many scaling events a Scaler keeps.
const EventLog = 50

// DefaultTarget is the utilisation the pool is sized for when Policy.Target
// is 0.
const DefaultTarget = 0.8

// Tolerance is the relative change of the worker count below which the
// demand rule holds (the Kubernetes HPA's default).
const Tolerance = 0.1

// Policy bounds and tunes the decisions.
type Policy struct {
	Min, Max int     // worker count bounds, 1 ≤ Min ≤ Max
	Up       float64 // queue fill (items or bytes) above which the pool grows geometrically, in (0,1)
	Down     float64 // queue fill below which the pool may shrink, in (0, Up)
	// Target is the worker utilisation the pool is sized for, in (0,1];
	// 0 means DefaultTarget.
	Target float64
	// MaxWait bounds the age of the oldest queued message: beyond it the pool
	// grows at once. It is also the budget within which the backlog must
	// drain (the B/T term of need). 0 disables both.
	MaxWait time.Duration
	// DownWindow is the stabilisation window: a scale-down goes no lower than
	// the highest recommendation of the samples of the last DownWindow. 0
	// means only the current sample counts.
	DownWindow time.Duration
}

func (p Policy) target() float64 {
	if p.Target <= 0 || p.Target > 1 {
		return DefaultTarget
	}
	return p.Target
}

// Observation is one sample of the worker pool.
type Observation struct {
	Workers int // current worker count (the last decision)
	Busy    int // workers processing a message at the sample

	QueueLen      int   // messages waiting
	QueueCap      int   // queue capacity, messages
	QueueBytes    int64 // bytes the waiting messages hold
	QueueMaxBytes int64 // queue capacity, bytes (0: no byte bound)
	// Oldest is how long the oldest queued message has waited (0 when the
	// queue is empty).
	Oldest time.Duration

	// Arrivals is the rate of requests received over the last interval,
	// per second, dropped ones included.
	Arrivals float64
	// Service is the mean time a worker is occupied by one message; 0 when
	// unknown (nothing finished yet), which disables the demand rule.
	Service time.Duration

	// Recent is the highest recommendation (Decision.Want) of the samples of
	// the last Policy.DownWindow before this one, 0 if none. The Scaler
	// fills it.
	Recent int
}

// Fill returns the larger of QueueLen/QueueCap and QueueBytes/QueueMaxBytes
// (a bound of 0 counts as empty).
func (o Observation) Fill() float64 {
	f := 0.0
	if o.QueueCap > 0 {
		f = float64(o.QueueLen) / float64(o.QueueCap)
	}
	if o.QueueMaxBytes > 0 {
		f = max(f, float64(o.QueueBytes)/float64(o.QueueMaxBytes))
	}
	return f
}

// Demand returns λ·S: the mean number of workers the arrivals keep busy.
func (o Observation) Demand() float64 { return o.Arrivals * o.Service.Seconds() }

// Need returns ⌈(λ + B/T)·S/U⌉ under p, at most p.Max; 0 when the service
// time is unknown.
func (o Observation) Need(p Policy) int {
	if o.Service <= 0 {
		return 0
	}
	rate := max(o.Arrivals, 0)
	if p.MaxWait > 0 {
		rate += float64(o.QueueLen) / p.MaxWait.Seconds()
	}
	d := rate * o.Service.Seconds() / p.target()
	if d >= float64(p.Max) {
		return p.Max
	}
	// The epsilon keeps a quotient that is an integer in exact arithmetic
	// (40 × 0.02 / 0.8) from rounding up to the next one.
	return max(int(math.Ceil(d-1e-9)), 0)
}

// Trigger says why a decision changed (or kept) the worker count.
type Trigger uint8

// Triggers.
const (
	Hold   Trigger = iota // no change
	Bounds                // clamped into [Min, Max]
	Demand                // up: need above the tolerance
	Wait                  // up: the oldest queued message waited longer than MaxWait
	Fill                  // up: the queue fuller than Up
	Down                  // down: the stabilised recommendation below the tolerance
)

var triggerNames = [...]string{"hold", "bounds", "demand", "queue_wait", "queue_fill", "down"}

func (t Trigger) String() string {
	if int(t) < len(triggerNames) {
		return triggerNames[t]
	}
	return fmt.Sprintf("trigger(%d)", t)
}

// Decision is the outcome of Decide.
type Decision struct {
	Workers int     // the worker count to run
	Trigger Trigger // why
	// Want is this sample's recommendation for the stabilisation window:
	// the new count after a scale-up, else max(need, busy + 25%, Min).
	Want int
	Need int // ⌈(λ + B/T)·S/U⌉, capped at Max (0: unknown)
}

// Decide returns the worker count for obs under p (see the package doc). It
// is pure.
func Decide(obs Observation, p Policy) Decision {
	w := min(max(obs.Workers, p.Min), p.Max)
	if w != obs.Workers {
		return Decision{Workers: w, Trigger: Bounds, Want: w}
	}
	need := obs.Need(p)
	busyFloor := obs.Busy + (obs.Busy+3)/4 // busy plus 25% headroom, rounded up
	want := min(max(need, busyFloor, p.Min), p.Max)

	to, why := w, Hold
	if float64(need) > float64(w)*(1+Tolerance) {
		to, why = need, Demand
	}
	waited := p.MaxWait > 0 && obs.Oldest > p.MaxWait
	full := obs.Fill() > p.Up
	if waited || full {
		if grow := min(max(2*w, w+1, need), p.Max); grow > to {
			to, why = grow, Fill
			if waited {
				why = Wait
			}
		}
	}
	if to > w {
		return Decision{Workers: to, Trigger: why, Want: to, Need: need}
	}
	hold := Decision{Workers: w, Trigger: Hold, Want: want, Need: need}
	if waited || full || obs.Fill() >= p.Down {
		return hold
	}
	target := max(want, obs.Recent)
	if target >= w || target > p.Min && float64(target) >= float64(w)*(1-Tolerance) {
		return hold // within the tolerance (a pool just above Min still returns to it)
	}
	return Decision{Workers: max(target, (w+1)/2), Trigger: Down, Want: want, Need: need}
}

// Event is one change of the worker count.
type Event struct {
	Time    time.Time `json:"time"`
	From    int       `json:"from"`
	To      int       `json:"to"`
	Trigger string    `json:"trigger"` // demand, queue_wait, queue_fill, down, bounds
	// Need and ArrivalRPS are the sample's need (Decision.Need) and arrival
	// rate (Observation.Arrivals).
	Need       int     `json:"need"`
	ArrivalRPS float64 `json:"arrival_rps"`
	Reason     string  `json:"reason"` // the figures behind it
}

// Scaler runs Decide every interval and applies its result.
type Scaler struct {
	policy   Policy
	interval time.Duration
	sample   func() Observation
	apply    func(workers int)

	window   []recommendation // touched by Step only
	up, down atomic.Uint64

	mu     sync.Mutex
	events []Event // ring of the last EventLog events
	next   int     // ring write position once full
}

// recommendation is one sample's Want in the stabilisation window.
type recommendation struct {
	at   time.Time
	want int
}

// New returns a Scaler. sample reports the pool (Recent is filled by the
// Scaler); apply sets the worker count and is called only on a change, from
// the goroutine running Run.
func New(p Policy, interval time.Duration, sample func() Observation, apply func(workers int)) *Scaler {
	return &Scaler{policy: p, interval: interval, sample: sample, apply: apply}
}

// Policy returns the policy the Scaler decides under.
func (s *Scaler) Policy() Policy { return s.policy }

// Run samples, decides and applies every interval until ctx ends.
func (s *Scaler) Run(ctx context.Context) {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.Step(now)
		}
	}
}

// Step takes one sample at now, decides and applies. It returns the
// decision. Run calls it; it must not run concurrently with itself.
func (s *Scaler) Step(now time.Time) Decision {
	obs := s.sample()
	obs.Recent = s.recent(now)
	d := Decide(obs, s.policy)
	s.remember(now, d.Want)
	if d.Workers == obs.Workers {
		return d
	}
	if d.Workers > obs.Workers {
		s.up.Add(1)
	} else {
		s.down.Add(1)
	}
	s.apply(d.Workers)
	s.record(Event{Time: now, From: obs.Workers, To: d.Workers, Trigger: d.Trigger.String(),
		Need: d.Need, ArrivalRPS: obs.Arrivals, Reason: s.reason(obs, d)})
	return d
}

// reason renders the figures behind a decision.
func (s *Scaler) reason(o Observation, d Decision) string {
	p := s.policy
	load := fmt.Sprintf("%.0f req/s × %.2f ms, queue %d (%.0f%% full), oldest %v, %d busy: need %d",
		o.Arrivals, float64(o.Service)/1e6, o.QueueLen, 100*o.Fill(), o.Oldest.Round(time.Millisecond), o.Busy, d.Need)
	switch d.Trigger {
	case Bounds:
		if o.Workers < p.Min {
			return "below MIN_WORKERS"
		}
		return "above the most workers allowed"
	case Demand:
		return load + fmt.Sprintf(" at %.0f%% utilisation", 100*p.target())
	case Wait:
		return load + fmt.Sprintf("; oldest above %v", p.MaxWait)
	case Fill:
		return load + fmt.Sprintf("; fill above %.0f%%", 100*p.Up)
	case Down:
		return load + fmt.Sprintf("; highest recommendation of the last %v %d", p.DownWindow, max(o.Recent, d.Want))
	}
	return load
}

// recent drops the recommendations older than the window and returns the
// highest of the rest (0 if none).
func (s *Scaler) recent(now time.Time) int {
	cut := 0
	for cut < len(s.window) && now.Sub(s.window[cut].at) >= s.policy.DownWindow {
		cut++
	}
	s.window = append(s.window[:0], s.window[cut:]...)
	if len(s.window) == 0 {
		return 0
	}
	return s.window[0].want
}

// remember adds a recommendation. The window is a monotonic queue: times
// increase and wants strictly decrease from the front, so the front is the
// highest want of the window and each sample is added and removed once.
func (s *Scaler) remember(now time.Time, want int) {
	for len(s.window) > 0 && s.window[len(s.window)-1].want <= want {
		s.window = s.window[:len(s.window)-1]
	}
	s.window = append(s.window, recommendation{now, want})
}

func (s *Scaler) record(e Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.events) < EventLog {
		s.events = append(s.events, e)
		return
	}
	s.events[s.next] = e
	s.next = (s.next + 1) % EventLog
}

// Events returns a copy of the last EventLog events, oldest first.
func (s *Scaler) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Event, 0, len(s.events))
	out = append(out, s.events[s.next:]...)
	return append(out, s.events[:s.next]...)
}

// Ups returns how many times the Scaler added workers.
func (s *Scaler) Ups() uint64 { return s.up.Load() }

// Downs returns how many times the Scaler removed workers.
func (s *Scaler) Downs() uint64 { return s.down.Load() }
