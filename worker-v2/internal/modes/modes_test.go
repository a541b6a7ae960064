package modes

import (
	"testing"
	"testing/synctest"
	"time"
)

func TestNewUnknownMode(t *testing.T) {
	if _, err := New(Options{Mode: "gpu"}, 1); err == nil {
		t.Fatal("New(gpu) = nil error")
	}
}

func TestHealthIsImmediate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, err := New(Options{Mode: Health}, 1)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if !p.Process([]byte("x"), nil) {
			t.Fatal("Process = false")
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("health took %v of virtual time", d)
		}
	})
}

func TestWorkDependsOnIterations(t *testing.T) {
	payload := []byte("request payload")
	seen := map[uint64]int{}
	for _, n := range []int{0, 1, 2, 15, 16, 17, 1000, 10000} {
		h := Work(payload, n)
		if h != Work(payload, n) {
			t.Fatalf("Work(%d) is not deterministic", n)
		}
		if m, ok := seen[h]; ok {
			t.Errorf("Work(%d) = Work(%d) = %#x", n, m, h)
		}
		seen[h] = n
	}
	if Work([]byte("a"), 100) == Work([]byte("b"), 100) {
		t.Error("Work does not depend on the payload")
	}
	if Work(nil, 100) == Work(nil, 101) {
		t.Error("Work on an empty payload does not depend on iterations")
	}
}

func TestCPUProcessorDoesTheWork(t *testing.T) {
	p, err := New(Options{Mode: CPU, Iterations: 1000}, 1)
	if err != nil {
		t.Fatal(err)
	}
	b := p.(*burner)
	if !p.Process([]byte("abc"), nil) {
		t.Fatal("Process = false")
	}
	if b.sink != Work([]byte("abc"), 1000) {
		t.Errorf("sink = %#x, want Work(abc, 1000)", b.sink)
	}
	payload := []byte("abc")
	if n := testing.AllocsPerRun(100, func() { p.Process(payload, nil) }); n != 0 {
		t.Errorf("cpu Process allocates %v times", n)
	}
}

func TestSleepHonoursDuration(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, err := New(Options{Mode: Sleep, Sleep: 10 * time.Millisecond}, 1)
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			start := time.Now()
			if !p.Process(nil, nil) {
				t.Fatal("Process = false")
			}
			if d := time.Since(start); d != 10*time.Millisecond {
				t.Errorf("slept %v, want 10ms", d)
			}
		}
	})
}

func TestSleepJitterBounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, _ := New(Options{Mode: Sleep, Sleep: 10 * time.Millisecond, Jitter: 4 * time.Millisecond}, 7)
		var lo, hi time.Duration = time.Hour, 0
		for range 200 {
			start := time.Now()
			p.Process(nil, nil)
			d := time.Since(start)
			if d < 6*time.Millisecond || d > 14*time.Millisecond {
				t.Fatalf("slept %v, want 10ms ± 4ms", d)
			}
			lo, hi = min(lo, d), max(hi, d)
		}
		if hi-lo < 4*time.Millisecond {
			t.Errorf("200 sleeps spread over only %v..%v: jitter not applied", lo, hi)
		}
	})
}

func TestSleepNeverNegative(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, _ := New(Options{Mode: Sleep, Sleep: time.Millisecond, Jitter: 50 * time.Millisecond}, 3)
		zero := 0
		for range 100 {
			if d := p.(*sleeper).Duration(); d < 0 {
				t.Fatalf("duration %v < 0", d)
			} else if d == 0 {
				zero++
			}
			p.Process(nil, nil)
		}
		if zero == 0 {
			t.Error("a jitter far above the mean never clamped to 0")
		}
	})
}

func TestSleepAbort(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, _ := New(Options{Mode: Sleep, Sleep: time.Hour}, 1)
		abort := make(chan struct{})
		go func() {
			time.Sleep(time.Second)
			close(abort)
		}()
		start := time.Now()
		if p.Process(nil, abort) {
			t.Error("aborted sleep returned true")
		}
		if d := time.Since(start); d != time.Second {
			t.Errorf("abort took %v, want 1s", d)
		}
	})
}

func TestSleepDoesNotAllocate(t *testing.T) {
	p, _ := New(Options{Mode: Sleep, Sleep: time.Microsecond, Jitter: time.Microsecond}, 1)
	if n := testing.AllocsPerRun(50, func() { p.Process(nil, nil) }); n != 0 {
		t.Errorf("sleep Process allocates %v times", n)
	}
}

func BenchmarkCPU10000(b *testing.B) {
	p, _ := New(Options{Mode: CPU, Iterations: 10000}, 1)
	payload := make([]byte, 64)
	b.ReportAllocs()
	for b.Loop() {
		p.Process(payload, nil)
	}
}
