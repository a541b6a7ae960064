package procs

import (
	"context"
	"io"
	"log/slog"
	"runtime"
	"testing"
)

func TestDecide(t *testing.T) {
	p := Policy{Min: 1, Max: 8, Target: 0.6, DownAfter: 3}
	cases := []struct {
		name string
		from State
		used []float64 // one interval each
		want int
	}{
		{"idle stays at the minimum", State{Procs: 1}, []float64{0}, 1},
		{"light load fits one P", State{Procs: 1}, []float64{0.5}, 1},
		{"one saturated P grows at once", State{Procs: 1}, []float64{0.95}, 2},
		{"at the target exactly: no growth", State{Procs: 1}, []float64{0.6}, 1},
		{"saturated 4 grows to ⌈4/0.6⌉", State{Procs: 4}, []float64{3.9}, 7},
		{"never above Max", State{Procs: 7}, []float64{7}, 8},
		{"down only after DownAfter low intervals", State{Procs: 4}, []float64{0.3, 0.3}, 4},
		{"down after DownAfter low intervals", State{Procs: 4}, []float64{0.3, 0.3, 0.3}, 1},
		{"down to the largest want of the low run", State{Procs: 4}, []float64{0.3, 1.5, 0.3}, 3},
		{"a busy interval resets the low run", State{Procs: 4}, []float64{0.3, 0.3, 2.2, 0.3, 0.3}, 4},
		{"a rise within the low run applies at once", State{Procs: 2}, []float64{0.3, 2.0}, 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.from
			for _, u := range tc.used {
				s = p.Decide(s, u)
			}
			if s.Procs != tc.want {
				t.Errorf("after %v from %d Ps: %d Ps, want %d", tc.used, tc.from.Procs, s.Procs, tc.want)
			}
		})
	}
}

func TestDecideMinimum(t *testing.T) {
	p := Policy{Min: 2, Max: 4, Target: 0.6, DownAfter: 1}
	if s := p.Decide(State{Procs: 4}, 0); s.Procs != 2 {
		t.Errorf("idle: %d Ps, want the minimum 2", s.Procs)
	}
}

// TestRunRestores: Run leaves GOMAXPROCS as it found it once ctx ends.
func TestRunRestores(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	Run(ctx, Default(before), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if got := runtime.GOMAXPROCS(0); got != before {
		t.Errorf("GOMAXPROCS %d after Run, want %d", got, before)
	}
}

func TestCPUTimeAdvances(t *testing.T) {
	a := cpuTime()
	x := 0
	for i := range 50_000_000 {
		x += i
	}
	_ = x
	if b := cpuTime(); b <= a {
		t.Errorf("CPU time %v then %v: does not advance over a busy loop", a, b)
	}
}
