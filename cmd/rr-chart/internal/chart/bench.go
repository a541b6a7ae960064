package chart

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/latency"
)

// Step is one measured step of a suite, read from a loadgen-v2 JSON report
// (or an rr-echo result, which uses the same field names).
type Step struct {
	Name           string
	TargetRPS      float64 // offered rate, req/s (0 for a closed-loop echo)
	ThroughputRPS  float64 // achieved rate, req/s
	VirtualClients float64
	Latency        latency.Summary         // ms
	Hist           *hdrhistogram.Histogram // round trip, µs; nil when the report has none
	Passed         bool                    // the report's SLO verdict (true when no SLO was set)
	// Broker is where the step ran (Describe): the benchmark script's name
	// for it (bench.broker) or the configured URL; DurationS the measured
	// seconds, WarmupS the warm-up left out before them.
	Broker             string
	DurationS, WarmupS float64
}

// stepJSON is the part of the report a chart reads.
type stepJSON struct {
	TargetRPS      float64         `json:"target_rps"`
	ThroughputRPS  float64         `json:"throughput_rps"`
	VirtualClients float64         `json:"virtual_clients"`
	Latency        latency.Summary `json:"latency_ms"`
	Histograms     struct {
		Latency string `json:"latency"`
	} `json:"histograms"`
	SLO *struct {
		Passed bool `json:"passed"`
	} `json:"slo"`
	DurationS float64 `json:"duration_s"`
	Config    struct {
		Broker string `json:"broker"`
		Warmup int64  `json:"warmup"` // ns
	} `json:"config"`
	Bench struct {
		Broker string `json:"broker"`
	} `json:"bench"`
}

// ReadStep reads one JSON report; the step is named after the file
// (without directory and .json).
func ReadStep(path string) (Step, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Step{}, err
	}
	var j stepJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return Step{}, fmt.Errorf("%s: %w", path, err)
	}
	st := Step{
		Name:           strings.TrimSuffix(filepath.Base(path), ".json"),
		TargetRPS:      j.TargetRPS,
		ThroughputRPS:  j.ThroughputRPS,
		VirtualClients: j.VirtualClients,
		Latency:        j.Latency,
		Passed:         j.SLO == nil || j.SLO.Passed,
		Broker:         brokerName(j.Bench.Broker, j.Config.Broker),
		DurationS:      j.DurationS,
		WarmupS:        float64(j.Config.Warmup) / 1e9,
	}
	if j.Histograms.Latency != "" {
		if st.Hist, err = latency.Decode(j.Histograms.Latency); err != nil {
			return Step{}, fmt.Errorf("%s: %w", path, err)
		}
	}
	return st, nil
}

// XField selects what the rate chart puts on its x axis.
type XField string

// The x axes of RatePlot.
const (
	XTarget     XField = "target_rps"      // offered rate
	XThroughput XField = "throughput_rps"  // achieved rate
	XClients    XField = "virtual_clients" // number of virtual clients
)

// ErrXField is returned for an x field RatePlot does not know.
var ErrXField = errors.New("unknown x field (want target_rps, throughput_rps or virtual_clients)")

func (f XField) of(s Step) (float64, string, error) {
	switch f {
	case XTarget, "":
		return s.TargetRPS, "offered rate (req/s)", nil
	case XThroughput:
		return s.ThroughputRPS, "achieved rate (req/s)", nil
	case XClients:
		return s.VirtualClients, "virtual clients", nil
	}
	return 0, "", fmt.Errorf("%q: %w", string(f), ErrXField)
}

// RatePlot is latency percentiles (p50, p90, p99, p99.9, max; ms, log
// scale) against x, one point per step, in x order. Steps that missed their
// SLO have hollow markers. sloP99 > 0 draws the p99 objective; knee > 0 a
// vertical line at that x.
func RatePlot(steps []Step, x XField, sloP99, knee float64) (Plot, error) {
	_, label, err := x.of(Step{})
	if err != nil {
		return Plot{}, err
	}
	sorted := slices.Clone(steps)
	slices.SortStableFunc(sorted, func(a, b Step) int {
		xa, _, _ := x.of(a)
		xb, _, _ := x.of(b)
		switch {
		case xa < xb:
			return -1
		case xa > xb:
			return 1
		}
		return 0
	})
	pcts := []struct {
		name string
		get  func(latency.Summary) float64
	}{
		{"p50", func(s latency.Summary) float64 { return s.P50 }},
		{"p90", func(s latency.Summary) float64 { return s.P90 }},
		{"p99", func(s latency.Summary) float64 { return s.P99 }},
		{"p99.9", func(s latency.Summary) float64 { return s.P999 }},
		{"max", func(s latency.Summary) float64 { return s.Max }},
	}
	p := Plot{
		X: Axis{Label: label},
		Y: Axis{Label: "round-trip latency (ms, log scale)", Log: true, Format: Plain},
	}
	for _, pc := range pcts {
		se := Series{Name: pc.name, Markers: true}
		for _, st := range sorted {
			if st.Latency.Count == 0 {
				continue
			}
			xv, _, _ := x.of(st)
			se.Points = append(se.Points, Point{xv, pc.get(st.Latency)})
			se.Open = append(se.Open, !st.Passed)
		}
		p.Series = append(p.Series, se)
	}
	for _, st := range sorted {
		if !st.Passed && st.Latency.Count > 0 {
			p.Note = "hollow: SLO missed"
		}
	}
	if sloP99 > 0 {
		p.Marks = append(p.Marks, Mark{At: sloP99, Label: "SLO p99 " + trim(sloP99) + " ms"})
	}
	if knee > 0 {
		p.Marks = append(p.Marks, Mark{Vertical: true, At: knee, Label: "knee " + Compact(knee)})
	}
	return p, nil
}

// spectrumPointsPerDecade is the resolution of a spectrum along 1/(1-q).
const spectrumPointsPerDecade = 20

// spectrumMaxX caps the spectrum at the 99.9999th percentile.
const spectrumMaxX = 1e6

// SpectrumPlot is the percentile spectrum of every step with a histogram:
// latency (ms) against percentile q on a log-scaled 1/(1-q) axis (labelled
// 0%, 90%, 99%, 99.9%, ...), as HdrHistogram plots it. A step of n values is
// drawn up to 1/(1-q) = min(n, 10^6), where its last point is the maximum. The y
// axis turns logarithmic when the highest maximum is more than 100 times the
// lowest median (steps past the knee next to steps below it).
func SpectrumPlot(steps []Step) Plot {
	p := Plot{
		X: Axis{Label: "percentile", Log: true, Min: 1, Format: percentile},
		Y: Axis{Label: "round-trip latency (ms)", Format: Plain},
	}
	lo, hi := math.Inf(1), 0.0
	for _, st := range steps {
		if st.Hist == nil || st.Hist.TotalCount() == 0 {
			continue
		}
		n := float64(st.Hist.TotalCount())
		last := math.Min(n, spectrumMaxX)
		se := Series{Name: st.Name}
		for k := 0; ; k++ {
			x := math.Pow(10, float64(k)/spectrumPointsPerDecade)
			if x >= last {
				break
			}
			v := st.Hist.Min() // ValueAtQuantile(0) is the bucket floor 0
			if k > 0 {
				v = st.Hist.ValueAtQuantile(100 * (1 - 1/x))
			}
			se.Points = append(se.Points, Point{x, float64(v) / 1000})
		}
		mx := float64(st.Hist.Max()) / 1000
		se.Points = append(se.Points, Point{math.Max(last, 1), mx})
		lo = math.Min(lo, math.Max(float64(st.Hist.ValueAtQuantile(50))/1000, 0.001))
		hi = math.Max(hi, mx)
		p.Series = append(p.Series, se)
	}
	if hi > 0 {
		p.X.Max = math.Pow(10, math.Ceil(math.Log10(maxX(p.Series))))
		if hi/lo > 100 {
			p.Y = Axis{Label: "round-trip latency (ms, log scale)", Log: true, Format: Plain}
		}
	}
	return p
}

func maxX(ss []Series) float64 {
	m := 1.0
	for _, s := range ss {
		for _, pt := range s.Points {
			m = math.Max(m, pt.X)
		}
	}
	if m == 1 {
		m = 10
	}
	return m
}

// percentile labels a 1/(1-q) tick with q: 1 → 0%, 10 → 90%, 1000 → 99.9%.
func percentile(v float64) string {
	q := 100 * (1 - 1/v)
	return strconv.FormatFloat(math.Round(q*1e6)/1e6, 'f', -1, 64) + "%"
}

// ReadTimeline reads a time series as CSV: a header row, then one row per
// sample; the first column is the x axis (its header is the axis label, e.g.
// t_s). Every further column is a series; a header "panel/series" puts the
// series in the named panel (columns with the same panel share it), a plain
// header gets a panel of its own. Panels come in the order of their first
// column. Cells that are not numbers (empty, "?") are gaps.
func ReadTimeline(r io.Reader) ([]Plot, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1 // ragged rows are reported below, by row number
	rows, err := cr.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("timeline: %w", err)
	}
	if len(rows) == 0 {
		return nil, nil
	}
	head := rows[0]
	if len(head) < 2 {
		return nil, fmt.Errorf("timeline: want at least two columns (x, one series), have %d", len(head))
	}
	var plots []Plot
	panelOf := map[string]int{}
	type col struct{ panel, series int }
	cols := make([]col, len(head)-1)
	for i, h := range head[1:] {
		panel, name := h, h
		if k := strings.LastIndexByte(h, '/'); k > 0 {
			panel, name = h[:k], h[k+1:]
		}
		pi, ok := panelOf[panel]
		if !ok {
			pi = len(plots)
			panelOf[panel] = pi
			plots = append(plots, Plot{Title: panel, X: Axis{Label: head[0]}, Y: Axis{Label: panel}})
		}
		plots[pi].Series = append(plots[pi].Series, Series{Name: name})
		cols[i] = col{pi, len(plots[pi].Series) - 1}
	}
	for n, row := range rows[1:] {
		if len(row) != len(head) {
			return nil, fmt.Errorf("timeline: row %d has %d cells, the header %d", n+2, len(row), len(head))
		}
		x, err := strconv.ParseFloat(strings.TrimSpace(row[0]), 64)
		if err != nil {
			continue
		}
		for i, c := range cols {
			if y, err := strconv.ParseFloat(strings.TrimSpace(row[i+1]), 64); err == nil {
				se := &plots[c.panel].Series[c.series]
				se.Points = append(se.Points, Point{x, y})
			}
		}
	}
	return plots, nil
}
