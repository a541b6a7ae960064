package cputime

import "testing"

func TestProcessAdvances(t *testing.T) {
	a := Process()
	x := 0
	for i := range 50_000_000 {
		x += i
	}
	_ = x
	if b := Process(); b <= a {
		t.Errorf("CPU time %v then %v: does not advance over a busy loop", a, b)
	}
}
