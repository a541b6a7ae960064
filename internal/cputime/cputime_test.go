package cputime

import "testing"

func TestSelfAdvances(t *testing.T) {
	a := Self()
	x := 0
	for i := range 50_000_000 {
		x += i
	}
	_ = x
	if b := Self(); b <= a {
		t.Errorf("CPU time %v then %v: does not advance over a busy loop", a, b)
	}
}
