package chart

import (
	"math"
	"strconv"
)

// scale maps axis values to pixels over [p0, p1].
type scale struct {
	lo, hi float64 // in axis space (log10 for log axes)
	p0, p1 float64
	log    bool
}

func (sc scale) px(v float64) float64 {
	if sc.log {
		v = math.Log10(v)
	}
	if sc.hi == sc.lo {
		return (sc.p0 + sc.p1) / 2
	}
	return sc.p0 + (v-sc.lo)/(sc.hi-sc.lo)*(sc.p1-sc.p0)
}

// usable reports whether v can be placed on the axis.
func usable(v float64, log bool) bool {
	return !math.IsNaN(v) && !math.IsInf(v, 0) && (!log || v > 0)
}

// bounds returns the data range of an axis (x or y of every usable point,
// and the marks on it), or ok false when there is none.
func bounds(p Plot, y bool) (lo, hi float64, ok bool) {
	ax := p.X
	if y {
		ax = p.Y
	}
	lo, hi = math.Inf(1), math.Inf(-1)
	add := func(v float64) {
		if usable(v, ax.Log) {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
	}
	for _, se := range p.Series {
		for _, pt := range se.Points {
			if usable(pt.X, p.X.Log) && usable(pt.Y, p.Y.Log) {
				if y {
					add(pt.Y)
				} else {
					add(pt.X)
				}
			}
		}
	}
	if lo > hi {
		return 0, 0, false
	}
	for _, m := range p.Marks {
		if m.Vertical != y {
			add(m.At)
		}
	}
	return lo, hi, true
}

// axisScale builds the scale and the ticks of one axis.
func axisScale(ax Axis, lo, hi, p0, p1 float64) (scale, []float64) {
	if ax.Min != 0 || ax.Max != 0 {
		lo, hi = ax.Min, ax.Max
	}
	if ax.Log {
		l, h := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
		if h == l {
			h = l + 1
		}
		var ticks []float64
		decades := h - l
		for e := l; e <= h; e++ {
			for _, m := range []float64{1, 2, 5} {
				v := m * math.Pow(10, e)
				if (m == 1 || decades <= 3) && e+math.Log10(m) <= h+1e-9 {
					ticks = append(ticks, v)
				}
			}
		}
		return scale{lo: l, hi: h, p0: p0, p1: p1, log: true}, ticks
	}
	if lo > 0 && ax.Min == 0 && ax.Max == 0 {
		lo = 0 // linear axes start at zero unless told otherwise
	}
	if hi == lo {
		hi = lo + 1
	}
	step := niceStep((hi - lo) / 8)
	lo = math.Floor(lo/step) * step
	hi = math.Ceil(hi/step) * step
	var ticks []float64
	for v := lo; v <= hi+step/2; v += step {
		ticks = append(ticks, v)
	}
	return scale{lo: lo, hi: hi, p0: p0, p1: p1}, ticks
}

// niceStep rounds a raw tick step up to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 || math.IsNaN(raw) || math.IsInf(raw, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if raw <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// Compact prints a tick value: 0.05, 2, 150, 5k, 1.5M.
func Compact(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e6:
		return trim(v/1e6) + "M"
	case a >= 1e3:
		return trim(v/1e3) + "k"
	default:
		return trim(v)
	}
}

// Plain prints a tick value with up to 4 significant digits: 0.05, 2, 1500.
func Plain(v float64) string { return trim(v) }

// trim rounds v to 4 significant digits and prints it without exponent.
func trim(v float64) string {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	p := math.Pow(10, 3-math.Floor(math.Log10(math.Abs(v))))
	return strconv.FormatFloat(math.Round(v*p)/p, 'f', -1, 64)
}
