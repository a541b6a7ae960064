// Package gomaxprocs sets the Go runtime's parallelism (GOMAXPROCS) by the
// worker's load: one P at light load, otherwise the processors the runtime
// found at start (the cores, or the container's CPU limit).
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
// Rule (Decide, every Interval), with used the cores the process used over
// the interval (CPU time / wall time): the worker runs on one P once it has
// used less than Light cores for DownAfter intervals in a row, and on Max
// (the runtime's own choice) again as soon as it uses more than Up cores on
// that one P. Up is above what a load just under Light costs on one P
// (Light × about 0.78, the one-P cost ratio), so the count does not flap.
// One P is only for light load: near the knee, a single thread competing
// with the broker and the loadgen for 2 cores gets less CPU than the worker
// needs (measured: 32k req/s on one P, p99 175 ms; on two, 42 ms), and the
// thread wake-ups cost little against the work.
//
// Not used when the GOMAXPROCS environment variable is set (the operator's
// fixed choice) or in MODE=cpu (CPU-bound workers need every core); see
// worker-v2's app. Setting GOMAXPROCS turns off the runtime's own updates of
// it to a changed container CPU limit (Go 1.25+): Max is the limit read at
// start, so a pod whose limit is resized in place keeps the old one until
// it restarts.
package gomaxprocs

import (
	"context"
	"log/slog"
	"math"
	"runtime"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/cputime"
)

// Policy says when the worker runs on one P.
type Policy struct {
	Max       int     // the P count outside light load
	Light     float64 // cores: below this for DownAfter intervals, one P
	Up        float64 // cores: above this on one P, Max again
	DownAfter int     // intervals in a row below Light before going to one P
}

// Default returns the policy worker-v2 runs: one P below 0.4 cores for 5 s,
// max again above 0.33 cores.
func Default(max int) Policy {
	return Policy{Max: max, Light: 0.4, Up: 0.33, DownAfter: 5}
}

// State is what Decide carries from one interval to the next.
type State struct {
	Procs int // the current P count
	light int // intervals in a row below Light
}

// Decide returns the state after an interval in which the process used
// used cores.
func (p Policy) Decide(s State, used float64) State {
	if s.Procs == 1 {
		if used > p.Up {
			return State{Procs: p.Max}
		}
		return s
	}
	if used >= p.Light {
		return State{Procs: s.Procs}
	}
	s.light++
	if s.light >= p.DownAfter {
		return State{Procs: 1}
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
	lastCPU, lastAt := cputime.Self(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cpu, now := cputime.Self(), time.Now()
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
