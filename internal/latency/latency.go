// Package latency owns latency histograms: HDR histograms recorded by
// several goroutines without contention, merged exactly for reports, and
// exported in the standard compressed HdrHistogram encoding (as in hlog files)
// so that reports of several loadgen instances can be merged exactly.
// Percentiles are always read from a (merged) histogram, never averaged.
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
// and an interval histogram per stripe (for live progress).
type Recorder struct {
	stripes []stripe
}

type stripe struct {
	mu       sync.Mutex
	total    *hdrhistogram.Histogram
	interval *hdrhistogram.Histogram
	_        [40]byte // keep stripes on separate cache lines
}

// NewRecorder returns a recorder with n stripes (n ≥ 1).
func NewRecorder(n int) *Recorder {
	n = max(n, 1)
	r := &Recorder{stripes: make([]stripe, n)}
	for i := range r.stripes {
		r.stripes[i].total = New()
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
	_ = s.interval.RecordValue(us)
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
		h.Merge(s.interval)
		s.interval.Reset()
		s.mu.Unlock()
	}
	return h
}

// Reset clears everything recorded.
func (r *Recorder) Reset() {
	for i := range r.stripes {
		s := &r.stripes[i]
		s.mu.Lock()
		s.total.Reset()
		s.interval.Reset()
		s.mu.Unlock()
	}
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
