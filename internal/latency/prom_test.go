package latency_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/latency"
)

// expand turns native spans and deltas into bucket index → count.
func expand(t *testing.T, spans []*dto.BucketSpan, deltas []int64) map[int]int64 {
	t.Helper()
	out := map[int]int64{}
	idx, n, count := 0, 0, int64(0)
	for i, s := range spans {
		if i == 0 {
			idx = int(s.GetOffset())
		} else {
			idx += int(s.GetOffset())
		}
		for range s.GetLength() {
			if n >= len(deltas) {
				t.Fatalf("spans cover more buckets than the %d deltas", len(deltas))
			}
			count += deltas[n]
			if count != 0 {
				out[idx] = count
			}
			idx++
			n++
		}
	}
	if n != len(deltas) {
		t.Fatalf("spans cover %d buckets, %d deltas", n, len(deltas))
	}
	return out
}

// TestNativeBucketsMatchClientGolang: the native buckets of an HDR
// histogram are those client_golang's own native histogram (bucket factor
// 1.1, schema 3) gives for the same values — an independent oracle for the
// bucket index arithmetic and the span/delta encoding.
func TestNativeBucketsMatchClientGolang(t *testing.T) {
	cases := []struct {
		name   string
		values func(r *rand.Rand) []int64 // µs
	}{
		{"one value", func(*rand.Rand) []int64 { return []int64{1500} }},
		{"powers of two (bucket boundaries)", func(*rand.Rand) []int64 {
			var v []int64
			for us := int64(1); us < 1<<30; us *= 2 {
				v = append(v, us)
			}
			return v
		}},
		{"log-uniform 1 µs .. 60 s", func(r *rand.Rand) []int64 {
			v := make([]int64, 20000)
			for i := range v {
				v[i] = int64(math.Exp(r.Float64() * math.Log(60e6)))
			}
			return v
		}},
		{"a narrow peak and a far tail", func(r *rand.Rand) []int64 {
			v := make([]int64, 0, 10100)
			for range 10000 {
				v = append(v, 2000+r.Int64N(300))
			}
			for range 100 {
				v = append(v, 5e6+r.Int64N(1e6))
			}
			return v
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := latency.New()
			for _, us := range tc.values(rand.New(rand.NewPCG(1, 2))) {
				if err := h.RecordValue(us); err != nil {
					t.Fatal(err)
				}
			}
			oracle := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "x", Help: "x", NativeHistogramBucketFactor: 1.1})
			// Each HDR bucket stands for its highest equivalent value.
			for _, bar := range h.Distribution() {
				for range bar.Count {
					oracle.Observe(float64(bar.To) / 1e6)
				}
			}
			var want dto.Metric
			if err := oracle.Write(&want); err != nil {
				t.Fatal(err)
			}
			if got := want.Histogram.GetSchema(); got != latency.NativeSchema {
				t.Fatalf("client_golang picked schema %d for factor 1.1, NativeSchema is %d", got, latency.NativeSchema)
			}
			spans, deltas := latency.NativeBuckets(h)
			got := expand(t, spans, deltas)
			exp := expand(t, want.Histogram.PositiveSpan, want.Histogram.PositiveDelta)
			if len(exp) == 0 {
				t.Fatal("client_golang gave no buckets")
			}
			t.Logf("%d native buckets", len(exp))
			if len(got) != len(exp) {
				t.Errorf("%d buckets, client_golang %d", len(got), len(exp))
			}
			for k, n := range exp {
				if got[k] != n {
					t.Errorf("bucket %d: %d, client_golang %d", k, got[k], n)
				}
			}
		})
	}
}

// TestMetricCarriesBothForms: the exported metric has the classic buckets of
// Buckets and native buckets of the same total, with a zero threshold that
// marks it native even when empty.
func TestMetricCarriesBothForms(t *testing.T) {
	desc := prometheus.NewDesc("mqttrr_test_seconds", "test", nil, nil)
	bounds := []float64{0.001, 0.01, 0.1}
	for _, n := range []int{0, 1000} {
		h := latency.New()
		for i := range n {
			_ = h.RecordValue(int64(100 + i*50)) // 0.1 .. 50 ms
		}
		m, err := latency.Metric(desc, h, bounds)
		if err != nil {
			t.Fatal(err)
		}
		var out dto.Metric
		if err := m.Write(&out); err != nil {
			t.Fatal(err)
		}
		hist := out.Histogram
		if hist.GetSampleCount() != uint64(n) || len(hist.Bucket) != len(bounds) {
			t.Fatalf("n=%d: count %d, %d classic buckets", n, hist.GetSampleCount(), len(hist.Bucket))
		}
		if hist.GetSchema() != latency.NativeSchema || hist.GetZeroThreshold() <= 0 || len(hist.PositiveSpan) == 0 {
			t.Errorf("n=%d: not native: schema %d zero threshold %g spans %d", n, hist.GetSchema(), hist.GetZeroThreshold(), len(hist.PositiveSpan))
		}
		var total int64
		for _, c := range expand(t, hist.PositiveSpan, hist.PositiveDelta) {
			total += c
		}
		if total != int64(n) {
			t.Errorf("n=%d: native buckets hold %d", n, total)
		}
		if n > 0 && hist.Bucket[0].GetCumulativeCount() != 19 { // 100, 150, ..., 1000 µs
			t.Errorf("le=0.001: %d, want 19", hist.Bucket[0].GetCumulativeCount())
		}
	}
}

// TestSpectrum: points from the least value to the maximum at q = 1, denser
// towards the tail, each value the HDR value at its quantile.
func TestSpectrum(t *testing.T) {
	if got := latency.Spectrum(latency.New(), 5); got != nil {
		t.Errorf("empty histogram: %v", got)
	}
	h := latency.New()
	for us := int64(1); us <= 100000; us++ {
		_ = h.RecordValue(us) // 1 µs .. 100 ms, uniform
	}
	pts := latency.Spectrum(h, 5)
	if len(pts) < 50 {
		t.Fatalf("%d points", len(pts))
	}
	last := pts[len(pts)-1]
	if last.Q != 1 || !within(last.MS*1000, 100000) || last.Count != 100000 {
		t.Errorf("last point %+v, want q 1, 100 ms, count 100000", last)
	}
	for i := 1; i < len(pts); i++ {
		if pts[i].Q < pts[i-1].Q || pts[i].MS < pts[i-1].MS || pts[i].Count < pts[i-1].Count {
			t.Fatalf("not monotonic at %d: %+v after %+v", i, pts[i], pts[i-1])
		}
	}
	for _, p := range pts[:len(pts)-1] {
		if want := float64(h.ValueAtQuantile(p.Q*100)) / 1000; p.Q > 0 && math.Abs(p.MS-want) > want*0.002+0.001 {
			t.Errorf("q %g: %g ms, HDR %g ms", p.Q, p.MS, want)
		}
	}
	// 5 ticks per half distance: about 5 points between 0.99 and 0.995.
	var tail int
	for _, p := range pts {
		if p.Q >= 0.99 && p.Q < 0.995 {
			tail++
		}
	}
	if tail < 3 {
		t.Errorf("%d points in [0.99, 0.995): the spectrum is not denser towards the tail", tail)
	}
}
