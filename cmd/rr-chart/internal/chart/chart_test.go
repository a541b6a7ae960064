package chart

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/latency"
)

// svgStats parses an SVG document completely (failing the test on invalid
// XML) and counts the elements by class.
func svgStats(t *testing.T, b []byte) (root string, classes map[string]int, texts []string) {
	t.Helper()
	classes = map[string]int{}
	d := xml.NewDecoder(bytes.NewReader(b))
	inText := false
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("invalid XML: %v\n%s", err, b)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = e.Name.Local
			}
			for _, a := range e.Attr {
				if a.Name.Local == "class" {
					for _, c := range strings.Fields(a.Value) {
						classes[c]++
					}
				}
			}
			inText = e.Name.Local == "text"
		case xml.CharData:
			if inText {
				texts = append(texts, string(e))
			}
		case xml.EndElement:
			inText = false
		}
	}
	return root, classes, texts
}

// writeReport writes a loadgen-shaped JSON report whose round-trip
// histogram holds the given latencies (µs).
func writeReport(t *testing.T, dir, name string, target float64, passed bool, us ...int64) string {
	t.Helper()
	h := latency.New()
	for _, v := range us {
		if err := h.RecordValue(v); err != nil {
			t.Fatal(err)
		}
	}
	enc, err := latency.Encode(h)
	if err != nil {
		t.Fatal(err)
	}
	r := map[string]any{
		"target_rps":      target,
		"throughput_rps":  target,
		"virtual_clients": 2 * target,
		"latency_ms":      latency.Summarize(h),
		"histograms":      map[string]string{"latency": enc},
		"slo":             map[string]bool{"passed": passed},
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func uniform(n int64) []int64 {
	v := make([]int64, n)
	for i := range v {
		v[i] = int64(i) + 1
	}
	return v
}

func TestWriteSVG(t *testing.T) {
	dir := t.TempDir()
	var steps []Step
	for i, rate := range []float64{20000, 5000, 10000} { // out of order on purpose
		st, err := ReadStep(writeReport(t, dir, "step-"+Compact(rate), rate, i != 0, uniform(int64(1000*(i+1)))...))
		if err != nil {
			t.Fatal(err)
		}
		steps = append(steps, st)
	}
	rate, err := RatePlot(steps, XTarget, 50, 10000)
	if err != nil {
		t.Fatal(err)
	}
	timeline, err := ReadTimeline(strings.NewReader("t_s,workers,queue_depth\n1,10,0\n2,20,?\n3,40,1500\n"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name       string
		panels     []Plot
		wantSeries int
		wantAxes   int // x and y axes drawn
		wantMarks  int
		wantNoData int
		wantText   []string
	}{
		{name: "no panels", wantNoData: 1},
		{name: "panel without points", panels: []Plot{{X: Axis{Label: "x"}, Y: Axis{Label: "y"}, Series: []Series{{Name: "empty"}}}}, wantNoData: 1},
		{name: "empty spectrum", panels: []Plot{SpectrumPlot(nil)}, wantNoData: 1},
		{name: "empty rate", panels: []Plot{mustRate(t, nil)}, wantNoData: 1},
		{name: "rate: one series per percentile", panels: []Plot{rate}, wantSeries: 5, wantAxes: 2, wantMarks: 2,
			wantText: []string{"offered rate (req/s)", "p99", "SLO p99 50 ms", "knee 10k", "hollow: SLO missed"}},
		{name: "spectrum: one series per step", panels: []Plot{SpectrumPlot(steps)}, wantSeries: 3, wantAxes: 2,
			wantText: []string{"percentile", "step-5k", "0%", "90%", "99.9%"}},
		{name: "timeline: one panel per column", panels: timeline, wantSeries: 2, wantAxes: 4, wantText: []string{"workers", "queue_depth", "t_s"}},
		{name: "title is escaped", panels: []Plot{{Title: `<a & "b">`, Series: []Series{{Name: "s&p", Points: []Point{{1, 1}, {2, 4}}}}}},
			wantSeries: 1, wantAxes: 2, wantText: []string{`<a & "b">`, "s&p"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Write(&buf, "title <"+tc.name+">", tc.panels...); err != nil {
				t.Fatal(err)
			}
			root, classes, texts := svgStats(t, buf.Bytes())
			if root != "svg" {
				t.Fatalf("root element %q, want svg", root)
			}
			if got := classes["series"]; got != tc.wantSeries {
				t.Errorf("series = %d, want %d", got, tc.wantSeries)
			}
			if got := classes["axis"]; got != tc.wantAxes {
				t.Errorf("axes = %d, want %d", got, tc.wantAxes)
			}
			if got := classes["mark"]; got != tc.wantMarks {
				t.Errorf("marks = %d, want %d", got, tc.wantMarks)
			}
			if got := classes["nodata"]; got != tc.wantNoData {
				t.Errorf("no-data notes = %d, want %d", got, tc.wantNoData)
			}
			all := strings.Join(texts, "\n")
			for _, w := range append(tc.wantText, "title <"+tc.name+">") {
				if !strings.Contains(all, w) {
					t.Errorf("text %q not in the chart; texts:\n%s", w, all)
				}
			}
		})
	}
}

func mustRate(t *testing.T, steps []Step) Plot {
	t.Helper()
	p, err := RatePlot(steps, XTarget, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRatePlotOrderAndVerdicts(t *testing.T) {
	steps := []Step{
		{Name: "c", TargetRPS: 30, Latency: latency.Summary{Count: 1, P50: 3, P99: 300}, Passed: false},
		{Name: "a", TargetRPS: 10, Latency: latency.Summary{Count: 1, P50: 1, P99: 10}, Passed: true},
		{Name: "empty", TargetRPS: 40}, // nothing measured: no point
		{Name: "b", TargetRPS: 20, Latency: latency.Summary{Count: 1, P50: 2, P99: 20}, Passed: true},
	}
	p, err := RatePlot(steps, XTarget, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	p99 := p.Series[2]
	if p99.Name != "p99" {
		t.Fatalf("series 2 is %q, want p99", p99.Name)
	}
	want := []Point{{10, 10}, {20, 20}, {30, 300}}
	if len(p99.Points) != len(want) {
		t.Fatalf("points %v, want %v", p99.Points, want)
	}
	for i := range want {
		if p99.Points[i] != want[i] {
			t.Errorf("point %d = %v, want %v", i, p99.Points[i], want[i])
		}
	}
	if wantOpen := []bool{false, false, true}; len(p99.Open) != 3 || p99.Open[0] != wantOpen[0] || p99.Open[2] != wantOpen[2] {
		t.Errorf("open markers %v, want %v", p99.Open, wantOpen)
	}
	if _, err := RatePlot(steps, "latency", 0, 0); !errors.Is(err, ErrXField) {
		t.Errorf("x field latency: err %v, want ErrXField", err)
	}
	clients, err := RatePlot(steps, XClients, 0, 0)
	if err != nil || clients.X.Label != "virtual clients" {
		t.Errorf("x virtual_clients: label %q, err %v", clients.X.Label, err)
	}
}

func TestSpectrumFromHistogram(t *testing.T) {
	dir := t.TempDir()
	st, err := ReadStep(writeReport(t, dir, "u", 1000, true, uniform(10000)...))
	if err != nil {
		t.Fatal(err)
	}
	if st.Name != "u" || st.Hist == nil || st.Hist.TotalCount() != 10000 {
		t.Fatalf("step %q with %v values", st.Name, st.Hist)
	}
	p := SpectrumPlot([]Step{st, {Name: "no histogram"}})
	if len(p.Series) != 1 {
		t.Fatalf("%d series, want 1 (steps without a histogram are left out)", len(p.Series))
	}
	pts := p.Series[0].Points
	first, last := pts[0], pts[len(pts)-1]
	if first.X != 1 || first.Y != 0.001 {
		t.Errorf("first point %v, want the minimum at 0%% (1, 0.001 ms)", first)
	}
	if last.X != 10000 || last.Y < 9.99 || last.Y > 10.01 {
		t.Errorf("last point %v, want the maximum (10 ms) at 1/(1-q) = count", last)
	}
	for i := 1; i < len(pts); i++ {
		if pts[i].X <= pts[i-1].X || pts[i].Y < pts[i-1].Y {
			t.Fatalf("spectrum not increasing at %d: %v then %v", i, pts[i-1], pts[i])
		}
	}
	// The 99th percentile of 1..10000 µs is 9.9 ms (HDR: within 0.1%).
	for _, pt := range pts {
		if pt.X > 99.9 && pt.X < 100.1 && (pt.Y < 9.88 || pt.Y > 9.92) {
			t.Errorf("p99 = %v ms, want 9.9", pt.Y)
		}
	}
	if p.Y.Log {
		t.Error("y axis is logarithmic for values within two decades")
	}
	wide := SpectrumPlot([]Step{st, mustStep(t, writeReport(t, dir, "slow", 1000, false, 5_000_000))})
	if !wide.Y.Log {
		t.Error("y axis is linear for values 1 µs .. 5 s")
	}
}

func mustStep(t *testing.T, path string) Step {
	t.Helper()
	st, err := ReadStep(path)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestReadStepErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"histograms":{"latency":"not base64 hdr"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadStep(bad); err == nil || !strings.Contains(err.Error(), "bad.json") {
		t.Errorf("bad histogram: err %v, want one naming the file", err)
	}
	if _, err := ReadStep(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("missing file: no error")
	}
	noSLO := filepath.Join(dir, "echo.json")
	if err := os.WriteFile(noSLO, []byte(`{"throughput_rps": 42000}`), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := ReadStep(noSLO)
	if err != nil || !st.Passed || st.Hist != nil || st.ThroughputRPS != 42000 {
		t.Errorf("report without SLO or histogram: %+v, %v", st, err)
	}
}

func TestReadTimeline(t *testing.T) {
	cases := []struct {
		name    string
		csv     string
		panels  int
		series  []int // per panel
		points  []int // of each panel's first series
		wantErr string
	}{
		{name: "empty", csv: "", panels: 0},
		{name: "gaps skipped", csv: "t_s,workers,queue\n0,10,5\n1,?,6\nx,1,1\n2,12,\n", panels: 2, series: []int{1, 1}, points: []int{2, 2}},
		{name: "panel/series groups columns", csv: "t_s,pool/workers,queue,pool/need\n0,10,5,12\n1,20,6,\n", panels: 2, series: []int{2, 1}, points: []int{2, 2}},
		{name: "one column", csv: "t_s\n1\n", wantErr: "at least two columns"},
		{name: "ragged row", csv: "t_s,a\n1,2,3\n", wantErr: "row 2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ps, err := ReadTimeline(strings.NewReader(tc.csv))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(ps) != tc.panels {
				t.Fatalf("%d panels, want %d", len(ps), tc.panels)
			}
			for i, n := range tc.series {
				if got := len(ps[i].Series); got != n {
					t.Errorf("panel %d: %d series, want %d", i, got, n)
				}
			}
			for i, n := range tc.points {
				if got := len(ps[i].Series[0].Points); got != n {
					t.Errorf("panel %d: %d points, want %d", i, got, n)
				}
			}
		})
	}
}

func TestTickLabels(t *testing.T) {
	cases := []struct {
		f    func(float64) string
		v    float64
		want string
	}{
		{percentile, 1, "0%"}, {percentile, 2, "50%"}, {percentile, 10, "90%"}, {percentile, 1000, "99.9%"}, {percentile, 1e6, "99.9999%"},
		{Compact, 0, "0"}, {Compact, 0.05, "0.05"}, {Compact, 150, "150"}, {Compact, 5000, "5k"}, {Compact, 45000, "45k"}, {Compact, 1.5e6, "1.5M"},
		{Plain, 20000, "20000"}, {Plain, 0.30000000000000004, "0.3"}, {Plain, 12.345678, "12.35"},
	}
	for _, tc := range cases {
		if got := tc.f(tc.v); got != tc.want {
			t.Errorf("label of %v = %q, want %q", tc.v, got, tc.want)
		}
	}
}

// TestDescribe: what a chart's title says of its steps.
func TestDescribe(t *testing.T) {
	tests := []struct {
		name  string
		steps []Step
		want  string
	}{
		{"nothing known", []Step{{Name: "a"}}, ""},
		{"one step, a URL without its password", []Step{{Broker: brokerName("", "tcp://me:secret@10.0.0.5:1883"), TargetRPS: 20000, DurationS: 18, WarmupS: 2}},
			"broker tcp://10.0.0.5:1883 · 20k req/s · 18 s measured after a 2 s warm-up"},
		{"a sweep without warm-up", []Step{{Broker: "mosquitto", TargetRPS: 10000, DurationS: 20}, {Broker: "mosquitto", TargetRPS: 20000, DurationS: 20},
			{Broker: "mosquitto", TargetRPS: 30000, DurationS: 20}, {Broker: "mosquitto", TargetRPS: 60000, DurationS: 20}},
			"broker mosquitto · 10k to 60k req/s · 20 s measured"},
		{"two rates and the ceiling", []Step{{Broker: "embedded", TargetRPS: 5000, DurationS: 8, WarmupS: 2}, {Broker: "embedded", TargetRPS: 2500, DurationS: 8, WarmupS: 2},
			{Broker: "embedded", ThroughputRPS: 41000, DurationS: 8, WarmupS: 2}},
			"broker embedded · 2.5k, 5k req/s · closed loop · 8 s measured after a 2 s warm-up"},
	}
	for _, tc := range tests {
		if got := Describe(tc.steps); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
