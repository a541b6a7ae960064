// Package latency owns latency histograms: HDR histograms recorded by
// several goroutines without contention (Recorder), merged exactly for
// reports, summarized as percentiles and spectra, exported in the standard
// compressed HdrHistogram encoding (as in hlog files) so that reports of
// several loadgen instances can be merged exactly, and exposed to Prometheus
// converted at scrape time (Collector, prom.go), so no hot path observes a
// Prometheus histogram. Percentiles are always read from a (merged)
// histogram, never averaged.
//
// Values are recorded in microseconds, from 1 µs to 1 hour, at 3 significant
// digits (relative error ≤ 0.1%); larger values are clamped to 1 hour.
package latency

import (
	"fmt"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Range of recordable values, microseconds.
const (
	MinMicros   = 1
	MaxMicros   = int64(time.Hour / time.Microsecond)
	SigFigures  = 3
	encodingTag = hdrhistogram.V2CompressedEncodingCookieBase
)

// New returns an empty histogram with this package's range and precision.
func New() *hdrhistogram.Histogram {
	return hdrhistogram.New(MinMicros, MaxMicros, SigFigures)
}

// Recorder is a striped set of histograms: stripe i is used by the goroutines
// that pass i, each stripe behind its own (uncontended in practice) mutex,
// because hdrhistogram is not goroutine-safe. It keeps a cumulative histogram
// per stripe and, when made by NewIntervalRecorder, an interval histogram
// too (for live progress).
type Recorder struct {
	stripes []stripe
}

type stripe struct {
	mu       sync.Mutex
	total    *hdrhistogram.Histogram
	interval *hdrhistogram.Histogram
	_        [40]byte // keep stripes on separate cache lines
}

// NewRecorder returns a recorder with n stripes (n ≥ 1) and no interval
// histograms (Interval returns an empty histogram).
func NewRecorder(n int) *Recorder {
	n = max(n, 1)
	r := &Recorder{stripes: make([]stripe, n)}
	for i := range r.stripes {
		r.stripes[i].total = New()
	}
	return r
}

// NewIntervalRecorder returns a recorder with n stripes that also keeps the
// values since the last call to Interval.
func NewIntervalRecorder(n int) *Recorder {
	r := NewRecorder(n)
	for i := range r.stripes {
		r.stripes[i].interval = New()
	}
	return r
}

// Record records d in stripe i (taken modulo the number of stripes).
func (r *Recorder) Record(i int, d time.Duration) {
	us := clamp(d.Microseconds())
	s := &r.stripes[i%len(r.stripes)]
	s.mu.Lock()
	_ = s.total.RecordValue(us)
	if s.interval != nil {
		_ = s.interval.RecordValue(us)
	}
	s.mu.Unlock()
}

func clamp(us int64) int64 {
	if us < MinMicros {
		return MinMicros
	}
	if us > MaxMicros {
		return MaxMicros
	}
	return us
}

// Total returns a merged copy of everything recorded.
func (r *Recorder) Total() *hdrhistogram.Histogram {
	h := New()
	for i := range r.stripes {
		s := &r.stripes[i]
		s.mu.Lock()
		h.Merge(s.total)
		s.mu.Unlock()
	}
	return h
}

// Interval returns a merged copy of what was recorded since the previous call
// to Interval, and starts a new interval.
func (r *Recorder) Interval() *hdrhistogram.Histogram {
	h := New()
	for i := range r.stripes {
		s := &r.stripes[i]
		s.mu.Lock()
		if s.interval != nil {
			h.Merge(s.interval)
			s.interval.Reset()
		}
		s.mu.Unlock()
	}
	return h
}

// Summary is the percentiles of a histogram, in milliseconds.
type Summary struct {
	Count int64   `json:"count"`
	Min   float64 `json:"min"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p999"`
	P9999 float64 `json:"p9999"`
	Max   float64 `json:"max"`
}

// Summarize returns the percentiles of h (recorded in µs) in milliseconds.
// An empty histogram gives zeros.
func Summarize(h *hdrhistogram.Histogram) Summary {
	if h.TotalCount() == 0 {
		return Summary{}
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Summary{
		Count: h.TotalCount(),
		Min:   ms(h.Min()),
		Mean:  h.Mean() / 1000,
		P50:   ms(h.ValueAtQuantile(50)),
		P90:   ms(h.ValueAtQuantile(90)),
		P99:   ms(h.ValueAtQuantile(99)),
		P999:  ms(h.ValueAtQuantile(99.9)),
		P9999: ms(h.ValueAtQuantile(99.99)),
		Max:   ms(h.Max()),
	}
}

// Encode returns h in the compressed, base64 HdrHistogram V2 encoding.
func Encode(h *hdrhistogram.Histogram) (string, error) {
	b, err := h.Encode(encodingTag)
	if err != nil {
		return "", fmt.Errorf("encode histogram: %w", err)
	}
	return string(b), nil
}

// Decode parses a histogram written by Encode.
func Decode(s string) (*hdrhistogram.Histogram, error) {
	h, err := hdrhistogram.Decode([]byte(s))
	if err != nil {
		return nil, fmt.Errorf("decode histogram: %w", err)
	}
	return h, nil
}

// Buckets returns, for each upper bound in seconds (ascending), how many
// values of h (recorded in µs) are at most that bound, with the total count
// and the sum in seconds: the shape of a Prometheus classic histogram. A
// value is counted by the upper end of its HDR bucket (≤ 0.1% above it).
func Buckets(h *hdrhistogram.Histogram, bounds []float64) (cumulative map[float64]uint64, count uint64, sum float64) {
	cumulative = make(map[float64]uint64, len(bounds))
	var acc uint64
	b := 0
	for _, bar := range h.Distribution() {
		if bar.Count == 0 {
			continue
		}
		for b < len(bounds) && float64(bar.To) > bounds[b]*1e6 {
			cumulative[bounds[b]] = acc
			b++
		}
		acc += uint64(bar.Count)
	}
	for ; b < len(bounds); b++ {
		cumulative[bounds[b]] = acc
	}
	count = uint64(h.TotalCount())
	sum = h.Mean() * float64(count) / 1e6
	return cumulative, count, sum
}
