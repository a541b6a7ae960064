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
	"fmt"
	"math"
	"time"
)

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
