package autoscale

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// EventLog is how many scaling events a Scaler keeps.
const EventLog = 50

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
