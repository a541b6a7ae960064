// Package autoscale owns the worker autoscaler: a pure decision function
// (Decide) from one observation of the queue to a worker count, and the loop
// (Scaler) that samples, decides and applies it every interval and keeps a
// log of the scaling events.
//
// The trigger is the queue fill, len/cap, sampled once per interval; the size
// of a step uses the demand, the workers the arrivals of the last interval
// need by Little's law: demand = arrival rate × mean processing time.
//
//   - fill > Up: the workers cannot keep up; go to the larger of double (at
//     least +1) and demand/Target (Target = 0.8 utilisation, so a backlog
//     drains too), up to Max. A load step of any size is met in one interval
//     when the demand is known; doubling alone needs ⌈log2(step)⌉ intervals.
//   - fill < Down for DownAfter samples in a row: cut 10% (at least 1), down
//     to Min, but never below demand/Target nor the workers busy at the sample
//     plus a quarter of headroom. An empty queue says "enough workers", not
//     "too many": without that floor a sleep-mode pool that just keeps up
//     would be cut until the queue fills, then doubled, and so on.
//   - otherwise hold.
//
// Hysteresis comes from the gap between Down and Up, from the DownAfter
// samples a cut waits for, and from the asymmetric steps (×2 up, −10% down):
// one noisy low sample never undoes a scale-up.
package autoscale

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultDownAfter is the number of consecutive low samples before a cut.
const DefaultDownAfter = 3

// EventLog is how many scaling events a Scaler keeps.
const EventLog = 50

// Policy bounds and tunes the decisions.
type Policy struct {
	Min, Max int     // worker count bounds, 1 ≤ Min ≤ Max
	Up       float64 // queue fill above which workers are doubled, in (0,1)
	Down     float64 // queue fill below which workers are cut, in (0, Up)
	// DownAfter is how many consecutive samples the fill must stay below Down
	// before a cut (≥ 1; 0 means 1).
	DownAfter int
}

// Observation is one sample of the worker pool.
type Observation struct {
	Workers  int // current worker count (the last decision)
	Busy     int // workers processing a message at the sample
	QueueLen int // messages waiting
	QueueCap int // queue capacity
	// Calm is how many samples in a row before this one had a fill below
	// Policy.Down. The Scaler keeps it.
	Calm int
	// Demand is the mean number of workers the arrivals of the last interval
	// kept busy: arrivals per second × mean processing time in seconds
	// (Little's law). 0 when unknown (then steps are ×2 up, −10% down).
	Demand float64
}

// Target is the worker utilisation the demand-based steps aim at.
const Target = 0.8

// needed returns ⌈Demand/Target⌉.
func (o Observation) needed() int {
	if o.Demand <= 0 {
		return 0
	}
	return int(math.Ceil(o.Demand / Target))
}

// Fill returns QueueLen/QueueCap (0 when the capacity is 0).
func (o Observation) Fill() float64 {
	if o.QueueCap <= 0 {
		return 0
	}
	return float64(o.QueueLen) / float64(o.QueueCap)
}

// Decide returns the worker count for obs under p. It is pure.
func Decide(obs Observation, p Policy) int {
	w := min(max(obs.Workers, p.Min), p.Max)
	if w != obs.Workers {
		return w // out of bounds (e.g. the policy changed): clamp first
	}
	fill := obs.Fill()
	switch {
	case fill > p.Up:
		return min(max(2*w, w+1, obs.needed()), p.Max)
	case fill < p.Down && obs.Calm+1 >= max(p.DownAfter, 1):
		n := w - max(w/10, 1)
		floor := max(obs.Busy+(obs.Busy+3)/4, obs.needed()) // busy plus 25% headroom, rounded up; the demand
		return min(w, max(n, floor, p.Min))                 // a cut never adds workers
	}
	return w
}

// Event is one change of the worker count.
type Event struct {
	Time   time.Time `json:"time"`
	From   int       `json:"from"`
	To     int       `json:"to"`
	Reason string    `json:"reason"`
}

// Scaler runs Decide every interval and applies its result.
type Scaler struct {
	policy   Policy
	interval time.Duration
	sample   func() Observation
	apply    func(workers int)

	calm     int // consecutive low samples; touched by Step only
	up, down atomic.Uint64

	mu     sync.Mutex
	events []Event // ring of the last EventLog events
	next   int     // ring write position once full
}

// New returns a Scaler. sample reports the pool (Calm is filled by the
// Scaler); apply sets the worker count and is called only on a change, from
// the goroutine running Run.
func New(p Policy, interval time.Duration, sample func() Observation, apply func(workers int)) *Scaler {
	return &Scaler{policy: p, interval: interval, sample: sample, apply: apply}
}

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

// Step takes one sample at now, decides and applies. It returns the worker
// count decided. Run calls it; it must not run concurrently with itself.
func (s *Scaler) Step(now time.Time) int {
	obs := s.sample()
	obs.Calm = s.calm
	to := Decide(obs, s.policy)
	if obs.Fill() < s.policy.Down {
		s.calm++
	} else {
		s.calm = 0
	}
	if to == obs.Workers {
		return to
	}
	if to > obs.Workers {
		s.up.Add(1)
	} else {
		s.down.Add(1)
	}
	reason := fmt.Sprintf("queue %d/%d (%.0f%%), demand %.1f workers", obs.QueueLen, obs.QueueCap, 100*obs.Fill(), obs.Demand)
	switch {
	case obs.Workers < s.policy.Min:
		reason = "below MIN_WORKERS"
	case obs.Workers > s.policy.Max:
		reason = "above MAX_WORKERS"
	case to > obs.Workers:
		reason += fmt.Sprintf(" above %.0f%%", 100*s.policy.Up)
	default:
		reason += fmt.Sprintf(" below %.0f%% for %d samples, %d busy", 100*s.policy.Down, obs.Calm+1, obs.Busy)
	}
	s.apply(to)
	s.record(Event{Time: now, From: obs.Workers, To: to, Reason: reason})
	return to
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
