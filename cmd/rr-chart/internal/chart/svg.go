// Package chart owns the pictures of a benchmark run: line charts written as
// self-contained SVG (no scripts, fonts or external resources) from the
// steps of a suite — latency percentiles against offered rate, the percentile
// spectrum of each step's HDR histogram, and time series such as the
// worker's pool size and queue depth.
//
// svg.go draws (frame, grid, series, marks, legend); axis.go computes the
// axes (data bounds, linear and log scales, ticks and their labels);
// bench.go turns loadgen reports and time-series CSV into plots.
package chart

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

// Point is one data point in axis units.
type Point struct{ X, Y float64 }

// Series is one named line of a plot.
type Series struct {
	Name   string
	Points []Point
	// Markers draws a dot at every point (for plots with few points).
	Markers bool
	// Open draws the markers of the points whose index is set hollow (e.g.
	// the steps that missed the SLO); nil means all filled.
	Open []bool
}

// Axis describes one axis. Min and Max are taken from the data when both
// are zero.
type Axis struct {
	Label    string
	Log      bool
	Min, Max float64
	// Format prints a tick value; nil uses Compact.
	Format func(v float64) string
}

// Mark is a labelled reference line across the plot: horizontal at Y (an
// SLO threshold) when Vertical is false, vertical at X (the knee) when true.
type Mark struct {
	Vertical bool
	At       float64
	Label    string
}

// Plot is one panel: axes, series and reference lines.
type Plot struct {
	Title  string
	X, Y   Axis
	Series []Series
	Marks  []Mark
	// Note is a line of explanation under the legend (e.g. what hollow
	// markers mean).
	Note string
}

// Geometry of a figure, in SVG user units (px).
const (
	width        = 900
	panelHeight  = 380
	titleHeight  = 34
	marginLeft   = 78
	marginRight  = 190 // legend column
	marginTop    = 30
	marginBottom = 54

	// subtitleHeight: each line of the title after the first.
	subtitleHeight = 18
)

// Palette: Okabe–Ito, distinguishable with the common colour-vision
// deficiencies; series beyond it cycle with a dash pattern.
var palette = []string{"#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"}

// Write renders a figure: a title and the panels stacked vertically, each
// with its own axes. The title's first line is the heading; further lines
// (after "\n") are printed under it, smaller. A panel without any point
// says "no data" instead of drawing axes from nothing; the output is valid
// SVG either way.
func Write(w io.Writer, title string, panels ...Plot) error {
	bw := bufio.NewWriter(w)
	s := &svgWriter{w: bw}
	lines := strings.Split(title, "\n")
	top := titleHeight + (len(lines)-1)*subtitleHeight
	h := top + len(panels)*panelHeight
	if len(panels) == 0 {
		h = top + panelHeight
	}
	s.printf(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	s.printf(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, h, width, h)
	s.printf(`<title>%s</title>`+"\n", esc(strings.Join(lines, " — ")))
	s.printf(`<rect width="100%%" height="100%%" fill="#ffffff"/>` + "\n")
	s.printf(`<text class="title" x="%d" y="22" font-size="16" font-weight="bold">%s</text>`+"\n", marginLeft, esc(lines[0]))
	for i, l := range lines[1:] {
		s.printf(`<text class="subtitle" x="%d" y="%d" font-size="13">%s</text>`+"\n", marginLeft, 22+(i+1)*subtitleHeight, esc(l))
	}
	if len(panels) == 0 {
		s.noData(top)
	}
	for i, p := range panels {
		s.panel(p, top+i*panelHeight)
	}
	s.printf("</svg>\n")
	if s.err != nil {
		return s.err
	}
	return bw.Flush()
}

type svgWriter struct {
	w   io.Writer
	err error
}

func (s *svgWriter) printf(format string, a ...any) {
	if s.err == nil {
		_, s.err = fmt.Fprintf(s.w, format, a...)
	}
}

func esc(t string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(t))
	return b.String()
}

func (s *svgWriter) noData(top int) {
	s.printf(`<text class="nodata" x="%d" y="%d" text-anchor="middle" fill="#666666">no data</text>`+"\n",
		(marginLeft+width-marginRight)/2, top+panelHeight/2)
}

func (s *svgWriter) panel(p Plot, top int) {
	x0, x1 := float64(marginLeft), float64(width-marginRight)
	y0, y1 := float64(top+panelHeight-marginBottom), float64(top+marginTop)
	s.printf(`<g class="panel">` + "\n")
	defer s.printf("</g>\n")
	if p.Title != "" {
		s.printf(`<text class="panel-title" x="%d" y="%d" font-size="13" font-weight="bold">%s</text>`+"\n", marginLeft, top+18, esc(p.Title))
	}
	xlo, xhi, okx := bounds(p, false)
	ylo, yhi, oky := bounds(p, true)
	if !okx || !oky {
		s.noData(top)
		return
	}
	xs, xticks := axisScale(p.X, xlo, xhi, x0, x1)
	ys, yticks := axisScale(p.Y, ylo, yhi, y0, y1)
	xf, yf := p.X.Format, p.Y.Format
	if xf == nil {
		xf = Compact
	}
	if yf == nil {
		yf = Compact
	}

	// Grid and ticks.
	s.printf(`<g class="axis x-axis" stroke="#dddddd">` + "\n")
	for _, t := range xticks {
		x := xs.px(t)
		s.printf(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`+"\n", x, y0, x, y1)
		s.printf(`<text x="%.1f" y="%.1f" text-anchor="middle" stroke="none" fill="#333333">%s</text>`+"\n", x, y0+16, esc(xf(t)))
	}
	s.printf(`<text class="axis-label" x="%.1f" y="%.1f" text-anchor="middle" stroke="none" fill="#000000">%s</text>`+"\n", (x0+x1)/2, y0+40, esc(p.X.Label))
	s.printf("</g>\n")
	s.printf(`<g class="axis y-axis" stroke="#dddddd">` + "\n")
	for _, t := range yticks {
		y := ys.px(t)
		s.printf(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`+"\n", x0, y, x1, y)
		s.printf(`<text x="%.1f" y="%.1f" text-anchor="end" stroke="none" fill="#333333">%s</text>`+"\n", x0-6, y+4, esc(yf(t)))
	}
	s.printf(`<text class="axis-label" transform="translate(%.1f %.1f) rotate(-90)" text-anchor="middle" stroke="none" fill="#000000">%s</text>`+"\n", x0-58, (y0+y1)/2, esc(p.Y.Label))
	s.printf("</g>\n")
	s.printf(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#333333"/>`+"\n", x0, y1, x1-x0, y0-y1)

	// Reference lines.
	for _, m := range p.Marks {
		if !usable(m.At, (m.Vertical && p.X.Log) || (!m.Vertical && p.Y.Log)) {
			continue
		}
		if m.Vertical {
			x := xs.px(m.At)
			tx, anchor := x+4, "start"
			if x > (x0+x1)/2 { // label on the inner side, clear of the legend
				tx, anchor = x-4, "end"
			}
			s.printf(`<g class="mark"><line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#555555" stroke-dasharray="6 4"/><text x="%.1f" y="%.1f" text-anchor="%s" fill="#555555">%s</text></g>`+"\n",
				x, y0, x, y1, tx, y1+14, anchor, esc(m.Label))
		} else {
			y := ys.px(m.At)
			s.printf(`<g class="mark"><line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#C00000" stroke-dasharray="6 4"/><text x="%.1f" y="%.1f" fill="#C00000">%s</text></g>`+"\n",
				x0, y, x1, y, x0+4, y-4, esc(m.Label))
		}
	}

	// Series, clipped to the plot area.
	clip := fmt.Sprintf("clip%d", top)
	s.printf(`<clipPath id="%s"><rect x="%.1f" y="%.1f" width="%.1f" height="%.1f"/></clipPath>`+"\n", clip, x0, y1, x1-x0, y0-y1)
	for i, se := range p.Series {
		color := palette[i%len(palette)]
		dash := ""
		if i >= len(palette) {
			dash = ` stroke-dasharray="2 3"`
		}
		var d strings.Builder
		var pts []Point
		for _, pt := range se.Points {
			if !usable(pt.X, p.X.Log) || !usable(pt.Y, p.Y.Log) {
				continue
			}
			cmd := "L"
			if len(pts) == 0 {
				cmd = "M"
			}
			fmt.Fprintf(&d, "%s%.1f %.1f ", cmd, xs.px(pt.X), ys.px(pt.Y))
			pts = append(pts, pt)
		}
		s.printf(`<g class="series" data-name="%s">`+"\n", esc(se.Name))
		if len(pts) > 0 {
			s.printf(`<path d="%s" fill="none" stroke="%s" stroke-width="2"%s clip-path="url(#%s)"/>`+"\n", strings.TrimSpace(d.String()), color, dash, clip)
		}
		if se.Markers {
			for k, pt := range se.Points {
				if !usable(pt.X, p.X.Log) || !usable(pt.Y, p.Y.Log) {
					continue
				}
				fill := color
				if k < len(se.Open) && se.Open[k] {
					fill = "#ffffff"
				}
				s.printf(`<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s" stroke="%s" stroke-width="1.5"/>`+"\n", xs.px(pt.X), ys.px(pt.Y), fill, color)
			}
		}
		// Legend entry.
		ly := float64(top+marginTop) + 10 + float64(i)*18
		lx := float64(width-marginRight) + 14
		s.printf(`<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"%s/><text x="%.1f" y="%.1f">%s</text>`+"\n",
			lx, ly, lx+22, ly, color, dash, lx+28, ly+4, esc(se.Name))
		s.printf("</g>\n")
	}
	if p.Note != "" {
		s.printf(`<text class="note" x="%d" y="%.1f" font-size="11" fill="#555555">%s</text>`+"\n",
			width-marginRight+14, float64(top+marginTop)+14+float64(len(p.Series))*18, esc(p.Note))
	}
}
