package latency

import (
	"math"
	"sort"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Collector exposes an HDR histogram (a Recorder's Total) as one Prometheus
// histogram with classic buckets and native buckets (Metric). It is how both
// binaries export latency: the hot path records into a per-goroutine HDR
// Recorder (no Observe, no shared atomic per sample) and a scrape converts.
type Collector struct {
	desc   *prometheus.Desc
	hist   func() *hdrhistogram.Histogram
	bounds []float64
}

// NewCollector returns a Collector for desc (no variable labels) reading
// hist at every scrape, with classic buckets bounds (seconds; nil means
// DefaultBuckets).
func NewCollector(desc *prometheus.Desc, hist func() *hdrhistogram.Histogram, bounds []float64) *Collector {
	if bounds == nil {
		bounds = DefaultBuckets
	}
	return &Collector{desc: desc, hist: hist, bounds: bounds}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	m, err := Metric(c.desc, c.hist(), c.bounds)
	if err != nil {
		m = prometheus.NewInvalidMetric(c.desc, err)
	}
	ch <- m
}

// DefaultBuckets are the classic buckets, seconds: 100 µs .. 30 s, about
// 25% apart between 1 and 100 ms where request/response latencies live.
// Native buckets (9% apart at any magnitude) come with them.
var DefaultBuckets = []float64{
	0.0001, 0.00025, 0.0005, 0.00075,
	0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0065, 0.008,
	0.01, 0.0125, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.065, 0.08,
	0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10, 30,
}

// NativeSchema is the schema of the native histograms Metric exposes: 3,
// bucket boundaries 2^(k/8) seconds, each bucket 9.05% wider than the one
// below (the schema client_golang picks for NativeHistogramBucketFactor 1.1).
// A quantile read from it is within 9.05% of the exact value.
const NativeSchema = 3

// nativeZeroThreshold: no recorded value is this small (the least is 1 µs),
// so the zero bucket stays empty; a non-zero threshold marks the histogram
// as native even while it is empty (as client_golang does).
const nativeZeroThreshold = 2.938735877055719e-39 // 2^-128

// nativeBounds are the fractions of a power of two where the buckets of
// NativeSchema start: 2^(j/8 − 1), j = 0..7 (math.Frexp returns fractions in
// [0.5, 1)).
var nativeBounds = func() []float64 {
	n := 1 << NativeSchema
	b := make([]float64, n)
	for j := range b {
		b[j] = math.Exp2(float64(j)/float64(n) - 1)
	}
	return b
}()

// nativeKey returns the index of the native bucket holding v > 0 seconds:
// bucket k covers (2^((k−1)/8), 2^(k/8)].
func nativeKey(v float64) int {
	frac, exp := math.Frexp(v) // v = frac · 2^exp, frac in [0.5, 1)
	return sort.SearchFloat64s(nativeBounds, frac) + (exp-1)*len(nativeBounds)
}

// Metric returns h (values in µs) as one Prometheus histogram in seconds
// that carries both representations: the classic buckets at bounds
// (seconds, ascending; see Buckets) and native buckets of NativeSchema. A
// Prometheus with native histograms enabled stores the native form (one
// series, ~9% resolution at any magnitude); any other stores the classic
// `_bucket` series. The text exposition shows the classic form only.
//
// Each HDR bucket is counted by its highest equivalent value (≤ 0.1% above
// the values it holds), like Buckets and ValueAtQuantile.
func Metric(desc *prometheus.Desc, h *hdrhistogram.Histogram, bounds []float64, labelValues ...string) (prometheus.Metric, error) {
	cum, count, sum := Buckets(h, bounds)
	classic, err := prometheus.NewConstHistogram(desc, count, sum, cum, labelValues...)
	if err != nil {
		return nil, err
	}
	return &nativeMetric{Metric: classic, h: h}, nil
}

// nativeMetric is a classic const histogram whose Write adds the native
// buckets.
type nativeMetric struct {
	prometheus.Metric
	h *hdrhistogram.Histogram
}

func (m *nativeMetric) Write(out *dto.Metric) error {
	if err := m.Metric.Write(out); err != nil {
		return err
	}
	hist := out.Histogram
	hist.Schema = ptr[int32](NativeSchema)
	hist.ZeroThreshold = ptr(nativeZeroThreshold)
	hist.ZeroCount = ptr[uint64](0)
	hist.PositiveSpan, hist.PositiveDelta = NativeBuckets(m.h)
	if len(hist.PositiveSpan) == 0 {
		// An empty native histogram still needs a span to be told apart
		// from a classic one by every parser version (client_golang does
		// the same).
		hist.PositiveSpan = []*dto.BucketSpan{{Offset: ptr[int32](0), Length: ptr[uint32](0)}}
	}
	return nil
}

// NativeBuckets returns the positive buckets of h (values in µs, read as
// seconds) in the native histogram encoding of NativeSchema: spans of
// consecutive bucket indexes (the first offset absolute, the others the gap
// since the previous span) and the count of each bucket as a delta from the
// previous bucket's.
func NativeBuckets(h *hdrhistogram.Histogram) (spans []*dto.BucketSpan, deltas []int64) {
	var (
		keys   []int
		counts []int64
	)
	for _, bar := range h.Distribution() {
		if bar.Count == 0 {
			continue
		}
		k := nativeKey(float64(bar.To) / 1e6)
		if n := len(keys); n > 0 && keys[n-1] == k {
			counts[n-1] += bar.Count
			continue
		}
		keys, counts = append(keys, k), append(counts, bar.Count)
	}
	var prevCount int64
	for i, k := range keys {
		switch {
		case i == 0:
			spans = append(spans, &dto.BucketSpan{Offset: ptr(int32(k)), Length: ptr[uint32](0)})
		case k-keys[i-1] > 1:
			spans = append(spans, &dto.BucketSpan{Offset: ptr(int32(k - keys[i-1] - 1)), Length: ptr[uint32](0)})
		}
		s := spans[len(spans)-1]
		*s.Length++
		deltas = append(deltas, counts[i]-prevCount)
		prevCount = counts[i]
	}
	return spans, deltas
}

// Point is one point of a percentile spectrum: the value at quantile Q
// (0..1) of the distribution, in milliseconds, and how many values are at
// or below it.
type Point struct {
	Q     float64 `json:"q"`
	MS    float64 `json:"ms"`
	Count int64   `json:"count"`
}

// Spectrum returns the percentile spectrum of h (values in µs) as
// HdrHistogram's percentile distribution prints it: points ever denser
// towards the tail, ticksPerHalf of them per halving of the distance to 100%
// (5 is HdrHistogram's default), then the maximum at Q = 1. Plotted against
// 1/(1−Q) on a log axis it is the classic latency-by-percentile chart. An
// empty histogram gives no points.
func Spectrum(h *hdrhistogram.Histogram, ticksPerHalf int32) []Point {
	if h.TotalCount() == 0 {
		return nil
	}
	var out []Point
	for _, b := range h.CumulativeDistributionWithTicks(ticksPerHalf) {
		out = append(out, Point{Q: b.Quantile / 100, MS: float64(b.ValueAt) / 1000, Count: b.Count})
	}
	return out
}

func ptr[T any](v T) *T { return &v }
