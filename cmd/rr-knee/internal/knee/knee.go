// Package knee owns the decisions of the knee search of `scripts/benchmark.sh
// knee`: which offered rate to run next, whether a rate passes, and when the
// search stops with which knee. It runs nothing and reads no file: the caller
// runs what Next asks for and hands its outcome to Record, so a table of
// results drives it without a broker, a clock or a shell.
//
// The knee is the highest offered rate (req/s) whose step meets the SLO.
//
// # A run
//
// A run passes when the loadgen's own SLO verdict passed (its report's
// slo.passed: p99 ≤ SLO_P99_MS, match and success rate ≥ SLO_MATCH_RATE,
// books balanced); the search does not judge latencies itself. A failed run
// is clean when the share of CPU time the hypervisor stole during it is ≤
// MaxSteal; an unknown steal counts as 0.
//
// # A rate
//
// Each rate gets up to Tries runs (Run.Try 1, 2, …). On a shared machine a
// neighbour's burst or CPU steal can fail a run that the system could carry,
// while nothing makes a run pass that it cannot. So, after each run:
//
//   - the rate passes as soon as one of its runs passes;
//   - it fails when at least 2 runs failed (1 without Confirm) and at least
//     one failed run was clean;
//   - it fails when Tries runs failed, clean or not (Tries < 1: at once,
//     without a run).
//
// # The rates
//
//  1. Doubling: Start, 2·Start, 4·Start, … while each passes and the next one
//     is ≤ Max (Start is run even above Max). lo is the last passing rate; the
//     first failing one is hi. Reaching Max without a miss ends the search.
//  2. Halving, only when Start failed: while the last rate r ≥ 200, r = r/2
//     (integer division) until one passes (lo); each miss on the way is the
//     new hi. When none passes down to below 200 there is no knee.
//  3. Bisection between lo and hi while hi − lo > lo·Precision (float64):
//     mid = ((lo+hi)/2 + 50) / 100 · 100 in integer arithmetic, the midpoint
//     rounded down to a whole req/s and then to the nearest hundred (half up).
//     The search stops when mid is not strictly between lo and hi; a passing
//     mid becomes lo, a failing one hi.
//
// The outcome: Knee = lo, LowestFailing = hi; 0 for none.
//
// These are the rules the script kept in bash and awk before this package;
// rr-knee's tests replay that bash (cmd/rr-knee/testdata/knee-before-go.bash)
// and check that the search makes the same decisions.
package knee

import "fmt"

// Config sets the search; Default has the script's defaults. Its JSON form
// is part of rr-knee's state file.
type Config struct {
	// Start is the first offered rate, req/s (default 5000).
	Start int `json:"start"`
	// Max is the highest rate the doubling goes to, req/s (default 320000).
	Max int `json:"max"`
	// Precision ends the bisection: when hi − lo ≤ lo·Precision (default 0.05).
	Precision float64 `json:"precision"`
	// Tries is the most runs a rate gets (default 4).
	Tries int `json:"tries"`
	// MaxSteal is the share of CPU time (0..1) stolen by the hypervisor up to
	// which a failed run is clean: a miss of the system, not of the machine
	// (default 0.03).
	MaxSteal float64 `json:"max_steal"`
	// Confirm: a rate fails after two failed runs, one of them clean; false:
	// after the first clean one (default true).
	Confirm bool `json:"confirm"`
}

// Default returns the defaults of `scripts/benchmark.sh knee`.
func Default() Config {
	return Config{Start: 5000, Max: 320000, Precision: 0.05, Tries: 4, MaxSteal: 0.03, Confirm: true}
}

// Run is one run the search asks for.
type Run struct {
	Rate int // offered rate, req/s
	Try  int // 1 for the first run at Rate
}

// Name is the run's name, the base name of its report: knee-RATE for the
// first try, knee-RATE-tryN for the N-th.
func (r Run) Name() string {
	if r.Try > 1 {
		return fmt.Sprintf("knee-%d-try%d", r.Rate, r.Try)
	}
	return fmt.Sprintf("knee-%d", r.Rate)
}

// Result is what the search needs to know of a run.
type Result struct {
	Passed bool    // the loadgen's SLO verdict
	Steal  float64 // share of CPU time (0..1) stolen during the run; 0 when unknown
}

// Outcome is where the search ended.
type Outcome struct {
	Knee          int // the highest passing rate, req/s; 0 when none passed
	LowestFailing int // the lowest failing rate above Knee, req/s; 0 when none failed
}

type phase int

const (
	doubling phase = iota
	halving
	bisecting
	done
)

// Search is one knee search: Next says which run to do, Record takes its
// result. Not safe for concurrent use.
type Search struct {
	cfg    Config
	phase  phase
	rate   int // the rate being decided
	failed int // its runs so far, all failed
	clean  int // of them, those with steal ≤ MaxSteal
	lo, hi int // highest passing, lowest failing rate; 0 for none yet
}

// New starts a search at c.Start.
func New(c Config) *Search {
	s := &Search{cfg: c, phase: doubling, rate: c.Start}
	s.exhaust()
	return s
}

// Next returns the run to do next, or false when the search is over.
// It returns the same run until Record is called.
func (s *Search) Next() (Run, bool) {
	if s.phase == done {
		return Run{}, false
	}
	return Run{Rate: s.rate, Try: s.failed + 1}, true
}

// Record takes the result of the run Next returned. It panics when the
// search is over.
func (s *Search) Record(r Result) {
	if s.phase == done {
		panic("knee: Record after the search is over")
	}
	if r.Passed {
		s.decide(true)
		return
	}
	s.failed++
	if r.Steal <= s.cfg.MaxSteal {
		s.clean++
	}
	need := 2
	if !s.cfg.Confirm {
		need = 1
	}
	if s.failed >= need && s.clean >= 1 {
		s.decide(false)
		return
	}
	s.exhaust()
}

// Outcome returns the knee and the lowest failing rate found so far; final
// once Next returns false.
func (s *Search) Outcome() Outcome { return Outcome{Knee: s.lo, LowestFailing: s.hi} }

// exhaust fails the rates that have no run left.
func (s *Search) exhaust() {
	for s.phase != done && s.failed >= s.cfg.Tries {
		s.decide(false)
	}
}

// decide moves on from the current rate, which passed or failed.
func (s *Search) decide(passed bool) {
	r := s.rate
	s.failed, s.clean = 0, 0
	switch s.phase {
	case doubling:
		if passed {
			s.lo = r
			if 2*r <= s.cfg.Max {
				s.rate = 2 * r
				return
			}
		} else {
			s.hi = r
			if s.lo == 0 {
				s.halve()
				return
			}
		}
		s.bisect()
	case halving:
		if passed {
			s.lo = r
			s.bisect()
			return
		}
		s.hi = r
		s.halve()
	case bisecting:
		if passed {
			s.lo = r
		} else {
			s.hi = r
		}
		s.bisect()
	}
}

// halve goes on below a failing rate, down to 100 req/s.
func (s *Search) halve() {
	if s.rate < 200 {
		s.phase = done
		return
	}
	s.phase = halving
	s.rate /= 2
}

// bisect picks the midpoint of lo and hi, or ends the search when there is
// no bracket, it is narrow enough, or the rounded midpoint is not inside it.
func (s *Search) bisect() {
	s.phase = done
	if s.lo <= 0 || s.hi <= 0 || float64(s.hi-s.lo) <= float64(s.lo)*s.cfg.Precision {
		return
	}
	mid := ((s.lo+s.hi)/2 + 50) / 100 * 100
	if mid <= s.lo || mid >= s.hi {
		return
	}
	s.phase = bisecting
	s.rate = mid
}
