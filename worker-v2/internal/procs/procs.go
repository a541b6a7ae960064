// Package procs sizes the Go runtime's parallelism (GOMAXPROCS) to what the
// worker's load uses, between 1 and the processors the runtime found at
// start (the cores, or the container's CPU limit).
//
// Why. worker-v2 in MODE=health or sleep is I/O bound: per request it reads,
// hands the request to a worker goroutine and writes. With an idle P, every
// hand-off makes the runtime wake a second thread to look for work (wakep:
// a futex wake-up, a spin, a futex sleep), work that serves no request.
// Measured at 20k req/s through Mosquitto on 2 cores: about 18.5 µs of CPU
// per request with GOMAXPROCS=2, 14.5 µs with 1, and lower latency too
// (scripts/benchmark.sh workercpu 20000). A fixed GOMAXPROCS=1 would cap a
// busy worker at one core, so the P count follows the load instead.
//
// Rule (Decide, every Interval): with used the cores the process used over
// the interval (CPU time / wall time),
//
//	want = clamp(⌈used / Target⌉, Min, Max)
//
// A want above the current count applies at once; one below it only after
// DownAfter intervals in a row that all wanted fewer (then the largest of
// their wants). Since a process cannot use more cores than it has Ps, a
// saturated count c reads used ≈ c and grows to ⌈c / Target⌉.
//
// Not used when the GOMAXPROCS environment variable is set (the operator's
// fixed choice) or in MODE=cpu (CPU-bound workers need every core); see
// worker-v2's app.
package procs

import (
	"context"
	"log/slog"
	"math"
	"runtime"
	"syscall"
	"time"
)

// Policy bounds and paces the P count.
type Policy struct {
	Min, Max  int
	Target    float64 // cores used per P aimed at (0..1]
	DownAfter int     // intervals in a row that want fewer Ps before scaling down
}

// Default returns the policy worker-v2 runs: 1..max Ps, 60% used per P,
// down after 5 intervals.
func Default(max int) Policy {
	return Policy{Min: 1, Max: max, Target: 0.6, DownAfter: 5}
}

// State is what Decide carries from one interval to the next.
type State struct {
	Procs int // the current P count
	low   int // intervals in a row that wanted fewer Ps
	lowAt int // the largest want among them
}

// Decide returns the state after an interval in which the process used
// used cores.
func (p Policy) Decide(s State, used float64) State {
	want := p.Min
	if used > 0 && p.Target > 0 {
		want = int(math.Ceil(used/p.Target - 1e-9))
	}
	want = min(max(want, p.Min), p.Max)
	switch {
	case want > s.Procs:
		return State{Procs: want}
	case want == s.Procs:
		return State{Procs: s.Procs}
	}
	s.low++
	s.lowAt = max(s.lowAt, want)
	if s.low >= p.DownAfter {
		return State{Procs: s.lowAt}
	}
	return s
}

// Interval is how often Run samples the process's CPU use.
const Interval = time.Second

// Run sets GOMAXPROCS by the policy every Interval until ctx ends, starting
// from p.Max (the runtime's own choice), and restores that count when it
// returns.
func Run(ctx context.Context, p Policy, log *slog.Logger) {
	s := State{Procs: runtime.GOMAXPROCS(0)}
	start := s.Procs
	defer runtime.GOMAXPROCS(start)
	t := time.NewTicker(Interval)
	defer t.Stop()
	lastCPU, lastAt := cpuTime(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cpu, now := cpuTime(), time.Now()
		used := (cpu - lastCPU).Seconds() / now.Sub(lastAt).Seconds()
		lastCPU, lastAt = cpu, now
		next := p.Decide(s, used)
		if next.Procs != s.Procs {
			log.Info("GOMAXPROCS follows the load", "from", s.Procs, "to", next.Procs, "cores_used", math.Round(used*100)/100)
			runtime.GOMAXPROCS(next.Procs)
		}
		s = next
	}
}

// cpuTime returns the user and system CPU time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
