package latency_test

import (
	"math"
	"sync"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/latency"
)

// within reports whether got is within the HDR relative precision of want
// (3 significant digits: 0.1%), plus one microsecond for integer rounding.
func within(got, want float64) bool {
	return math.Abs(got-want) <= want*0.001+0.001
}

func TestRecorderStripesAndTotal(t *testing.T) {
	tests := []struct {
		name    string
		stripes int
	}{
		{name: "one stripe", stripes: 1},
		{name: "four stripes", stripes: 4},
		{name: "zero means one", stripes: 0},
		{name: "negative means one", stripes: -3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := latency.NewRecorder(tc.stripes)
			// Stripe indexes beyond the stripe count wrap around.
			for i := range 100 {
				r.Record(i, time.Duration(i+1)*time.Millisecond)
			}
			h := r.Total()
			if h.TotalCount() != 100 {
				t.Fatalf("Total count = %d, want 100", h.TotalCount())
			}
			if got := h.Min(); got != 1000 {
				t.Errorf("min = %d µs, want 1000", got)
			}
			if got := h.Max(); !within(float64(got), 100_000) {
				t.Errorf("max = %d µs, want ≈100000", got)
			}
			// Total is a copy: recording more does not change it, and a
			// second Total sees everything.
			r.Record(0, time.Second)
			if h.TotalCount() != 100 {
				t.Errorf("Total is not a copy")
			}
			if got := r.Total().TotalCount(); got != 101 {
				t.Errorf("second Total count = %d, want 101", got)
			}
		})
	}
}

func TestRecorderInterval(t *testing.T) {
	r := latency.NewIntervalRecorder(3)
	for i := range 30 {
		r.Record(i, time.Millisecond)
	}
	if got := r.Interval().TotalCount(); got != 30 {
		t.Fatalf("first interval count = %d, want 30", got)
	}
	if got := r.Interval().TotalCount(); got != 0 {
		t.Errorf("interval right after Interval() = %d, want 0 (reset)", got)
	}
	for i := range 5 {
		r.Record(i, 2*time.Millisecond)
	}
	iv := r.Interval()
	if iv.TotalCount() != 5 || iv.Min() != 2000 {
		t.Errorf("second interval: count %d min %d, want 5 and 2000", iv.TotalCount(), iv.Min())
	}
	if got := r.Total().TotalCount(); got != 35 {
		t.Errorf("Total after intervals = %d, want 35 (Interval must not reset the total)", got)
	}
}

func TestRecordClamp(t *testing.T) {
	tests := []struct {
		name string
		d    time.Duration
		want int64 // µs, as stored (within HDR precision)
	}{
		{name: "zero", d: 0, want: latency.MinMicros},
		{name: "sub-microsecond", d: 500 * time.Nanosecond, want: latency.MinMicros},
		{name: "negative", d: -time.Second, want: latency.MinMicros},
		{name: "one hour", d: time.Hour, want: latency.MaxMicros},
		{name: "over one hour", d: 5 * time.Hour, want: latency.MaxMicros},
		{name: "max duration", d: math.MaxInt64, want: latency.MaxMicros},
		{name: "in range", d: 1234 * time.Microsecond, want: 1234},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := latency.NewRecorder(1)
			r.Record(0, tc.d)
			h := r.Total()
			if h.TotalCount() != 1 {
				t.Fatalf("value was dropped: count %d (out-of-range values must be clamped, not lost)", h.TotalCount())
			}
			if !h.ValuesAreEquivalent(h.Max(), tc.want) {
				t.Errorf("recorded %d µs, want %d µs", h.Max(), tc.want)
			}
		})
	}
}

func uniform(lo, hi int64) *hdrhistogram.Histogram {
	h := latency.New()
	for v := lo; v <= hi; v++ {
		_ = h.RecordValue(v)
	}
	return h
}

func TestSummarize(t *testing.T) {
	s := latency.Summarize(uniform(1, 10000)) // 1 µs .. 10 ms
	tests := []struct {
		name      string
		got, want float64
	}{
		{name: "min", got: s.Min, want: 0.001},
		{name: "mean", got: s.Mean, want: 5.0005},
		{name: "p50", got: s.P50, want: 5.0},
		{name: "p90", got: s.P90, want: 9.0},
		{name: "p99", got: s.P99, want: 9.9},
		{name: "p99.9", got: s.P999, want: 9.99},
		{name: "p99.99", got: s.P9999, want: 9.999},
		{name: "max", got: s.Max, want: 10.0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !within(tc.got, tc.want) {
				t.Errorf("%s = %v ms, want %v ms ± 0.1%%", tc.name, tc.got, tc.want)
			}
		})
	}
	if s.Count != 10000 {
		t.Errorf("count = %d, want 10000", s.Count)
	}
	if z := latency.Summarize(latency.New()); z != (latency.Summary{}) {
		t.Errorf("empty histogram summary = %+v, want zeros", z)
	}
}

func TestEncodeDecode(t *testing.T) {
	tests := []struct {
		name string
		h    *hdrhistogram.Histogram
	}{
		{name: "empty", h: latency.New()},
		{name: "uniform", h: uniform(1, 10000)},
		{name: "extremes", h: func() *hdrhistogram.Histogram {
			h := latency.New()
			_ = h.RecordValue(latency.MinMicros)
			_ = h.RecordValues(latency.MaxMicros, 7)
			return h
		}()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := latency.Encode(tc.h)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			got, err := latency.Decode(s)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if got.TotalCount() != tc.h.TotalCount() {
				t.Errorf("count %d, want %d", got.TotalCount(), tc.h.TotalCount())
			}
			if a, b := latency.Summarize(got), latency.Summarize(tc.h); a != b {
				t.Errorf("summary after round trip\n got %+v\nwant %+v", a, b)
			}
			if !got.Equals(tc.h) {
				t.Errorf("decoded histogram differs from the original")
			}
		})
	}
	if _, err := latency.Decode("not a histogram"); err == nil {
		t.Errorf("Decode of garbage succeeded")
	}
}

// TestMergeEncoded: histograms of two loadgen instances, exported and merged,
// give the same percentiles as one histogram of every value.
func TestMergeEncoded(t *testing.T) {
	a, b, all := latency.New(), latency.New(), latency.New()
	for v := int64(1); v <= 20000; v++ {
		x := v*v%50000 + 1 // a spread of values
		all.RecordValue(x)
		if v%3 == 0 {
			a.RecordValue(x)
		} else {
			b.RecordValue(x)
		}
	}
	merged := latency.New()
	for _, h := range []*hdrhistogram.Histogram{a, b} {
		s, err := latency.Encode(h)
		if err != nil {
			t.Fatal(err)
		}
		d, err := latency.Decode(s)
		if err != nil {
			t.Fatal(err)
		}
		if dropped := merged.Merge(d); dropped != 0 {
			t.Fatalf("merge dropped %d values", dropped)
		}
	}
	if got, want := latency.Summarize(merged), latency.Summarize(all); got != want {
		t.Errorf("merged summary\n got %+v\nwant %+v", got, want)
	}
	for _, q := range []float64{1, 25, 50, 75, 90, 99, 99.9, 99.99, 100} {
		if g, w := merged.ValueAtQuantile(q), all.ValueAtQuantile(q); g != w {
			t.Errorf("p%v = %d, want %d", q, g, w)
		}
	}
}

func TestRecorderConcurrent(t *testing.T) {
	r := latency.NewIntervalRecorder(4)
	var wg sync.WaitGroup
	const goroutines, each = 8, 2000
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				r.Record(g, time.Duration(i+1)*time.Microsecond)
				if i%500 == 0 {
					_ = r.Total()
				}
			}
		})
	}
	var intervals int64
	wg.Go(func() {
		for range 20 {
			intervals += r.Interval().TotalCount()
		}
	})
	wg.Wait()
	intervals += r.Interval().TotalCount()
	if got := r.Total().TotalCount(); got != goroutines*each {
		t.Errorf("total %d, want %d", got, goroutines*each)
	}
	if intervals != goroutines*each {
		t.Errorf("sum of intervals %d, want %d (every value in exactly one interval)", intervals, goroutines*each)
	}
}

func TestRecordAllocs(t *testing.T) {
	r := latency.NewRecorder(2)
	if n := testing.AllocsPerRun(1000, func() { r.Record(1, 1500*time.Microsecond) }); n != 0 {
		t.Errorf("Record: %v allocs/op, want 0", n)
	}
}

func BenchmarkRecord(b *testing.B) {
	r := latency.NewRecorder(8)
	b.ReportAllocs()
	d := time.Duration(0)
	for b.Loop() {
		d += 997 * time.Nanosecond
		r.Record(0, d%(100*time.Millisecond))
	}
}

func BenchmarkRecordParallel(b *testing.B) {
	r := latency.NewRecorder(8)
	var next sync.Mutex
	stripe := 0
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		next.Lock()
		i := stripe
		stripe++
		next.Unlock()
		d := time.Duration(0)
		for pb.Next() {
			d += 997 * time.Nanosecond
			r.Record(i, d%(100*time.Millisecond))
		}
	})
}

func TestNoIntervalRecorder(t *testing.T) {
	r := latency.NewRecorder(2)
	r.Record(0, time.Millisecond)
	if n := r.Interval().TotalCount(); n != 0 {
		t.Errorf("interval of a recorder without one: %d values", n)
	}
	if n := r.Total().TotalCount(); n != 1 {
		t.Errorf("total %d, want 1", n)
	}
}

func TestBuckets(t *testing.T) {
	h := latency.New()
	for _, us := range []int64{50, 900, 1000, 2000, 30000, 2_000_000} {
		_ = h.RecordValue(us)
	}
	b, count, sum := latency.Buckets(h, []float64{0.0001, 0.001, 0.01, 0.1, 1})
	want := map[float64]uint64{0.0001: 1, 0.001: 3, 0.01: 4, 0.1: 5, 1: 5}
	for k, v := range want {
		if b[k] != v {
			t.Errorf("bucket le=%g: %d, want %d (all: %v)", k, b[k], v, b)
		}
	}
	if count != 6 || sum < 2.033 || sum > 2.035 {
		t.Errorf("count %d sum %g, want 6 and ~2.034 s", count, sum)
	}
}
