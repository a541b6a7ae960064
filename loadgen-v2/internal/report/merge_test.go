package report_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/latency"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/config"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/report"
)

// t0 is the first instance's epoch in the merge tests (wall clock, UTC).
var t0 = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

// inst is one loadgen run of the merge tests: who, which clients, when
// (offsets from t0), how fast, with which settings.
type inst struct {
	name  string
	first uint64 // first virtual client; clients is always 1000
	// start is the epoch's offset from t0, warmup WARMUP, send when sending
	// ended after the epoch.
	start, warmup, send time.Duration
	// rate is the target rate, req/s; sent the share of it that was sent
	// (0 means 1). Every request sent is matched.
	rate, sent float64
	lat        [2]int64 // latency values lo..hi, µs
	fleet      string   // FLEET_ID ("" none)
	index      int      // FLEET_INDEX (fleet runs)
	cfg        func(*config.Config)
	legacy     bool // written as before reports carried runs and fleets
	stopped    bool // stopped before sending: no counts, no times
}

// baseConfig is the configuration every instance of the merge tests shares
// unless cfg changes it.
func baseConfig() config.Config {
	return config.Config{Broker: "tcp://b:1883", VirtualClients: 1000, Connections: 10, Shards: 16, IntervalMS: 333, MaxInflight: 1,
		QoS: 0, RequestTimeout: 10 * time.Second, Duration: 20 * time.Second, MQTTVersion: "3.1.1", RequestTopic: "req/{{shard}}",
		ResponseTopic: "resp/{{instance}}/{{shard}}", SLOSuccess: 0.99}
}

// write builds the report of in (report.Build), writes it as JSON into dir
// and returns its path.
func (in inst) write(t *testing.T, dir string) string {
	t.Helper()
	cfg := baseConfig()
	cfg.InstanceID = in.name
	if in.fleet != "" {
		cfg.FleetID, cfg.FleetSize = in.fleet, 3
	}
	if in.cfg != nil {
		in.cfg(&cfg)
	}
	cj, err := json.Marshal(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	share := in.sent
	if share == 0 {
		share = 1
	}
	count := func(d time.Duration) report.Counts {
		n := uint64(math.Round(in.rate * share * d.Seconds()))
		return report.Counts{Scheduled: n, RequestsSent: n, ResponsesMatched: n}
	}
	lo, hi := in.lat[0], in.lat[1]
	if hi == 0 {
		lo, hi = 1000, 1999
	}
	epoch := t0.Add(in.start)
	idx := in.index
	o := report.Outcome{
		Instance: in.name, Protocol: cfg.MQTTVersion, Correlation: "envelope",
		Measured: count(in.send - in.warmup), Warmup: count(in.warmup), WarmupTime: in.warmup, SendEnd: in.send,
		TargetRPS: in.rate, VirtualClients: 1000, ClientsFired: 1000, Interval: 333 * time.Millisecond,
		RequestBytes: 100, ResponseBytes: 50, Config: cj, Hists: hists(hist(lo, hi)),
		Run: report.Run{Instance: in.name, RunID: in.name + "-run", FirstClient: in.first, Clients: 1000,
			Start: epoch, MeasuredStart: epoch.Add(in.warmup), End: epoch.Add(in.send)},
	}
	if in.stopped {
		o.Measured, o.Warmup, o.WarmupTime, o.SendEnd, o.TargetRPS, o.ClientsFired = report.Counts{}, report.Counts{}, 0, 0, 0, 0
		o.Run.Start, o.Run.MeasuredStart, o.Run.End = time.Time{}, time.Time{}, time.Time{}
	}
	if in.fleet != "" {
		o.Fleet = &report.Fleet{ID: in.fleet, Size: cfg.FleetSize}
		o.Run.FleetIndex = &idx
	}
	r, err := report.Build(&o)
	if err != nil {
		t.Fatal(err)
	}
	if in.legacy {
		r.Runs, r.Fleet = nil, nil
	}
	path := filepath.Join(dir, in.name+".json")
	if err := r.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	return path
}

// readAll reads the reports at paths.
func readAll(t *testing.T, paths ...string) []*report.Report {
	t.Helper()
	var rs []*report.Report
	for _, p := range paths {
		r, err := report.Read(p)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	return rs
}

// mergeFiles writes ins into a fresh directory and merges their reports.
func mergeFiles(t *testing.T, ins ...inst) (*report.Report, error) {
	t.Helper()
	dir := t.TempDir()
	var paths []string
	for _, in := range ins {
		paths = append(paths, in.write(t, dir))
	}
	return report.Merge(readAll(t, paths...), report.Objectives{})
}

// TestMergeRatesOverSpan: the fleet, two instances started 5 s apart
// with different windows (0-8 s and 5-20.4 s, overlapping 3 s), merges to
// its true span and rate, not "15.4 s at 6000 req/s"; the target is what
// the schedules offered over the span, so the ratio is sent / offered.
func TestMergeRatesOverSpan(t *testing.T) {
	a := inst{name: "lg-0", first: 0, send: 8 * time.Second, rate: 3000}
	b := inst{name: "lg-1", first: 1000, start: 5 * time.Second, send: 15400 * time.Millisecond, rate: 3000}
	tests := []struct {
		name                                    string
		a, b                                    inst
		span, common, throughput, target, ratio float64
	}{
		{name: "both at their target", a: a, b: b, span: 20.4, common: 3,
			throughput: (24000 + 46200) / 20.4, target: (3000*8 + 3000*15.4) / 20.4, ratio: 1},
		{name: "the second at half its target", a: a, b: func() inst { b := b; b.sent = 0.5; return b }(), span: 20.4, common: 3,
			throughput: (24000 + 23100) / 20.4, target: (3000*8 + 3000*15.4) / 20.4, ratio: (24000 + 23100) / (24000 + 46200.0)},
		{name: "with warm-up: the measured windows count", a: func() inst { a := a; a.warmup = 2 * time.Second; a.send = 10 * time.Second; return a }(),
			b: b, span: 18.4, common: 5, throughput: (24000 + 46200) / 18.4, target: (24000 + 46200) / 18.4, ratio: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := mergeFiles(t, tc.a, tc.b)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				what      string
				got, want float64
			}{
				{"span_s", m.SpanSeconds, tc.span}, {"duration_s", m.DurationSeconds, tc.span}, {"common_window_s", m.CommonSeconds, tc.common},
				{"throughput_rps", m.ThroughputRPS, tc.throughput}, {"target_rps", m.TargetRPS, tc.target}, {"rate_ratio", m.RateRatio, tc.ratio},
				{"responses_rps", m.ResponsesRPS, tc.throughput},
			} {
				if math.Abs(c.got-c.want) > 1e-6*math.Max(1, c.want) {
					t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
				}
			}
			if m.ThroughputRPS > 4000 {
				t.Errorf("throughput %v req/s: the instances' rates were added as if concurrent", m.ThroughputRPS)
			}
			if !slices.Contains(m.WarningKinds, report.WarnKindStartSkew) || !slices.Contains(m.WarningKinds, report.WarnKindWindows) {
				t.Errorf("warnings %q lack start skew and different windows", m.Warnings)
			}
			var text bytes.Buffer
			m.WriteText(&text)
			if want := fmt.Sprintf("all instances measuring together: %.1f s", tc.common); !strings.Contains(text.String(), want) || !strings.Contains(text.String(), "span") {
				t.Errorf("text report lacks the span and %q:\n%s", want, text.String())
			}
		})
	}

	// The same reports without their times merge as before, side by side:
	// the sum of the rates over the longest duration, with a WARNING.
	a.legacy, b.legacy = true, true
	m, err := mergeFiles(t, a, b)
	if err != nil {
		t.Fatal(err)
	}
	if !near(m.ThroughputRPS, 6000) || !near(m.DurationSeconds, 15.4) || m.SpanSeconds != 0 || m.CommonSeconds != 0 {
		t.Errorf("without times: throughput %v, duration %v, span %v, common %v; want 6000, 15.4, 0, 0", m.ThroughputRPS, m.DurationSeconds, m.SpanSeconds, m.CommonSeconds)
	}
	if !slices.Contains(m.WarningKinds, report.WarnKindUntimed) {
		t.Errorf("warnings %q lack %s", m.Warnings, report.WarnKindUntimed)
	}
}

// TestMergeRefused: every merge that would mean nothing is refused with an
// error wrapping ErrRefused that names the reports, the cause and the fix.
func TestMergeRefused(t *testing.T) {
	lg := func(name string, first uint64) inst {
		return inst{name: name, first: first, send: 10 * time.Second, rate: 100}
	}
	with := func(in inst, f func(*inst)) inst { f(&in); return in }
	setCfg := func(f func(*config.Config)) func(*inst) { return func(in *inst) { in.cfg = f } }
	tests := []struct {
		name  string
		ins   []inst
		twice bool     // give the first report twice
		say   []string // substrings of the error
	}{
		{name: "the same file twice", ins: []inst{lg("lg-0", 0), lg("lg-1", 1000)}, twice: true,
			say: []string{"the same run twice", "report 1 (", "lg-0.json) and report 3 (", "run lg-0-run of instance lg-0", "give each instance's report once"}},
		{name: "the same report without runs twice", ins: []inst{with(lg("lg-0", 0), func(in *inst) { in.legacy = true })}, twice: true,
			say: []string{"the same report twice", "report 1 (", "report 2 (", "same instances (lg-0)"}},
		{name: "overlapping virtual clients", ins: []inst{lg("lg-0", 0), lg("lg-1", 500)},
			say: []string{"virtual clients 0-999 of lg-0 (", "and 500-1499 of lg-1 (", "overlap", "CLIENT_ID_OFFSET", "FLEET_INDEX"}},
		{name: "a range inside a longer one, two instances on", ins: []inst{lg("lg-0", 0), lg("lg-1", 1000), lg("lg-2", 999)},
			say: []string{"0-999 of lg-0", "999-1998 of lg-2", "1000-1999 of lg-1"}},
		{name: "different QOS", ins: []inst{lg("lg-0", 0), with(lg("lg-1", 1000), setCfg(func(c *config.Config) { c.QoS = 1 }))},
			say: []string{"QOS: 0 in ", "lg-0.json, 1 in ", "lg-1.json", "different settings"}},
		{name: "different SHARDS, INTERVAL_MS and DURATION, each named", ins: []inst{lg("lg-0", 0),
			with(lg("lg-1", 1000), setCfg(func(c *config.Config) { c.Shards, c.IntervalMS, c.Duration = 32, 500, 90*time.Second }))},
			say: []string{"SHARDS: 16 in", "INTERVAL_MS: 333 in", "DURATION: 20s in ", "1m30s in "}},
		{name: "values grouped over several reports", ins: []inst{lg("lg-0", 0), with(lg("lg-1", 1000), setCfg(func(c *config.Config) { c.QoS = 1 })),
			with(lg("lg-2", 2000), setCfg(func(c *config.Config) { c.QoS = 1 }))},
			say: []string{"QOS: 0 in ", "lg-1.json and ", "lg-2.json"}},
		{name: "an SLO left out of one config (omitempty) is its zero", ins: []inst{lg("lg-0", 0), with(lg("lg-1", 1000), setCfg(func(c *config.Config) { c.SLOP99MS = 5 }))},
			say: []string{"SLO_P99_MS: 0 in ", "5 in "}},
		{name: "different MQTT versions", ins: []inst{lg("lg-0", 0), with(lg("lg-1", 1000), setCfg(func(c *config.Config) { c.MQTTVersion = "5" }))},
			say: []string{`MQTT_VERSION: "3.1.1" in `, `"5" in `}},
		{name: "FLEET_SIZE within one fleet", ins: []inst{with(lg("lg-0", 0), func(in *inst) { in.fleet = "f1" }),
			with(lg("lg-1", 1000), func(in *inst) { in.fleet, in.index, in.cfg = "f1", 1, func(c *config.Config) { c.FleetSize = 4 } })},
			say: []string{"FLEET_SIZE: 3 in ", "4 in "}},
		{name: "one FLEET_INDEX twice", ins: []inst{with(lg("lg-0", 0), func(in *inst) { in.fleet, in.index = "f1", 1 }),
			with(lg("lg-1", 1000), func(in *inst) { in.fleet, in.index = "f1", 1 })},
			say: []string{"FLEET_INDEX 1 twice in fleet f1: lg-0 (", "and lg-1 ("}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var paths []string
			for _, in := range tc.ins {
				paths = append(paths, in.write(t, dir))
			}
			if tc.twice {
				paths = append(paths, paths[0])
			}
			m, err := report.Merge(readAll(t, paths...), report.Objectives{})
			if !errors.Is(err, report.ErrRefused) {
				t.Fatalf("Merge = %v, %v; want an error wrapping ErrRefused", m, err)
			}
			for _, s := range tc.say {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error lacks %q:\n%v", s, err)
				}
			}
		})
	}
	if _, err := report.Merge(nil, report.Objectives{}); !errors.Is(err, report.ErrRefused) {
		t.Errorf("Merge of nothing = %v, want ErrRefused", err)
	}
}

// TestMergeProtocolWithoutConfig: reports that carry no config are still
// refused for different protocols (the resolved MQTT version and
// correlation), and warned about for the settings left unchecked.
func TestMergeProtocolWithoutConfig(t *testing.T) {
	dir := t.TempDir()
	a := inst{name: "lg-0", send: 10 * time.Second, rate: 100}.write(t, dir)
	b := inst{name: "lg-1", first: 1000, send: 10 * time.Second, rate: 100}.write(t, dir)
	rs := readAll(t, a, b)
	rs[0].Config, rs[1].Config = nil, nil
	m, err := report.Merge(rs, report.Objectives{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(m.WarningKinds, report.WarnKindSettingsUnchecked) {
		t.Errorf("warnings %q lack %s", m.Warnings, report.WarnKindSettingsUnchecked)
	}
	rs[1].Protocol, rs[1].Correlation = "5", "properties"
	_, err = report.Merge(rs, report.Objectives{})
	if !errors.Is(err, report.ErrRefused) || !strings.Contains(err.Error(), "protocol and correlation: MQTT 3.1.1 / envelope in ") ||
		!strings.Contains(err.Error(), "MQTT 5 / properties in ") {
		t.Errorf("Merge of two protocols = %v", err)
	}
}

// TestMergeWarnings: what the merge warns about (and only that), by kind.
func TestMergeWarnings(t *testing.T) {
	lg := func(name string, first uint64, start, send time.Duration) inst {
		return inst{name: name, first: first, start: start, send: send, rate: 100}
	}
	fleet := func(in inst, id string, index int) inst { in.fleet, in.index = id, index; return in }
	legacy := func(in inst) inst { in.legacy = true; return in }
	mergeKinds := []string{report.WarnKindStartSkew, report.WarnKindWindows, report.WarnKindNotConcurrent, report.WarnKindUntimed,
		report.WarnKindFleets, report.WarnKindFleetIncomplete, report.WarnKindSettingsUnchecked}
	tests := []struct {
		name   string
		ins    []inst
		kinds  []string // the merge's warning kinds, in order
		say    []string
		fleet  string // the merged report's fleet id
		common float64
	}{
		{name: "aligned", ins: []inst{lg("lg-0", 0, 0, 10*time.Second), lg("lg-1", 1000, 300*time.Millisecond, 10*time.Second)}, common: 9.7},
		{name: "started 1.5 s apart", ins: []inst{lg("lg-0", 0, 0, 10*time.Second), lg("lg-1", 1000, 1500*time.Millisecond, 10*time.Second)},
			kinds: []string{report.WarnKindStartSkew}, common: 8.5,
			say: []string{"started measuring 1.5 s apart (lg-0 first, lg-1 last at +1.5 s", "FLEET_ID"}},
		{name: "windows 2 s apart in length", ins: []inst{lg("lg-0", 0, 0, 10*time.Second), lg("lg-1", 1000, 0, 12*time.Second)},
			kinds: []string{report.WarnKindWindows}, common: 10,
			say: []string{"differ in length by 2.0 s (lg-0 10.0 s, lg-1 12.0 s)"}},
		{name: "windows that do not overlap", ins: []inst{lg("lg-0", 0, 0, 5*time.Second), lg("lg-1", 1000, 10*time.Second, 5*time.Second)},
			kinds: []string{report.WarnKindStartSkew, report.WarnKindNotConcurrent}, common: 0,
			say: []string{"do not all overlap: lg-0 ended at +5.0 s, before lg-1 started measuring at +10.0 s", "over the 15.0 s span, not the rate of concurrent load"}},
		{name: "reports without times", ins: []inst{legacy(lg("lg-0", 0, 0, 10*time.Second)), legacy(lg("lg-1", 1000, 0, 10*time.Second))},
			kinds: []string{report.WarnKindUntimed}, say: []string{"the reports carry no start and end times", "assumed to have run side by side"}},
		{name: "one report without times", ins: []inst{lg("lg-0", 0, 0, 10*time.Second), legacy(lg("lg-1", 1000, 0, 10*time.Second))},
			kinds: []string{report.WarnKindUntimed}, say: []string{"lg-1.json carries no start"}},
		{name: "one fleet, whole", ins: []inst{fleet(lg("lg-0", 0, 0, 10*time.Second), "f1", 0), fleet(lg("lg-1", 1000, 0, 10*time.Second), "f1", 1),
			fleet(lg("lg-2", 2000, 0, 10*time.Second), "f1", 2)}, fleet: "f1", common: 10},
		{name: "one fleet, index 2 missing", ins: []inst{fleet(lg("lg-0", 0, 0, 10*time.Second), "f1", 0), fleet(lg("lg-1", 1000, 0, 10*time.Second), "f1", 1)},
			kinds: []string{report.WarnKindFleetIncomplete}, fleet: "f1", common: 10, say: []string{"fleet f1: 2 of FLEET_SIZE=3 instances merged (index 2 missing)"}},
		{name: "two fleets and none", ins: []inst{fleet(lg("lg-0", 0, 0, 10*time.Second), "f1", 0), fleet(lg("lg-1", 1000, 0, 10*time.Second), "f2", 1),
			lg("lg-2", 2000, 0, 10*time.Second)},
			kinds: []string{report.WarnKindFleets}, common: 10, say: []string{"different fleets (fleet f1 in ", "fleet f2 in ", "no fleet in "}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := mergeFiles(t, tc.ins...)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, k := range m.WarningKinds {
				if slices.Contains(mergeKinds, k) {
					got = append(got, k)
				}
			}
			if !slices.Equal(got, tc.kinds) || len(m.Warnings) != len(m.WarningKinds) {
				t.Errorf("merge warnings %q (kinds %q), want kinds %q", m.Warnings, m.WarningKinds, tc.kinds)
			}
			for _, s := range tc.say {
				if !strings.Contains(strings.Join(m.Warnings, "\n"), s) {
					t.Errorf("warnings lack %q:\n%s", s, strings.Join(m.Warnings, "\n"))
				}
			}
			id := ""
			if m.Fleet != nil {
				id = m.Fleet.ID
			}
			if id != tc.fleet {
				t.Errorf("merged fleet %+v, want %q", m.Fleet, tc.fleet)
			}
			if !near(m.CommonSeconds, tc.common) {
				t.Errorf("common window %v s, want %v", m.CommonSeconds, tc.common)
			}
			var text bytes.Buffer
			m.WriteText(&text)
			for _, w := range m.Warnings {
				if !strings.Contains(words(text.String()), words("WARNING "+w)) {
					t.Errorf("text report lacks %q:\n%s", w, text.String())
				}
			}
			checkWidth(t, tc.name, text.String())
		})
	}
}

// TestMergeOfMerged: a merged report written as JSON, read back and merged
// with a third equals the merge of all three (runs, counts, warm-up,
// percentiles of the merged histogram, span and rates); merged with one of
// its own instances again it is refused.
func TestMergeOfMerged(t *testing.T) {
	dir := t.TempDir()
	a := inst{name: "lg-0", first: 0, send: 12 * time.Second, warmup: 2 * time.Second, rate: 300, lat: [2]int64{1, 990}, fleet: "f", index: 0}.write(t, dir)
	b := inst{name: "lg-1", first: 1000, start: 200 * time.Millisecond, send: 12 * time.Second, warmup: 2 * time.Second, rate: 300,
		sent: 0.9, lat: [2]int64{5000, 6999}, fleet: "f", index: 1}.write(t, dir)
	c := inst{name: "lg-2", first: 2000, start: 400 * time.Millisecond, send: 11 * time.Second, warmup: 2 * time.Second, rate: 300,
		lat: [2]int64{100, 109}, fleet: "f", index: 2}.write(t, dir)
	slo := report.Objectives{SuccessRate: 0.99}

	ab, err := report.Merge(readAll(t, a, b), slo)
	if err != nil {
		t.Fatal(err)
	}
	abPath := filepath.Join(dir, "ab.json")
	if err := ab.WriteJSON(abPath); err != nil {
		t.Fatal(err)
	}
	abc, err := report.Merge(readAll(t, abPath, c), slo)
	if err != nil {
		t.Fatal(err)
	}
	all, err := report.Merge(readAll(t, a, b, c), slo)
	if err != nil {
		t.Fatal(err)
	}
	union := hist(1, 990)
	union.Merge(hist(5000, 6999))
	union.Merge(hist(100, 109))
	if want := latency.Summarize(union); all.Latency != want || abc.Latency != want {
		t.Errorf("latency not that of the merged histogram:\n  all %+v\n  abc %+v\nwant %+v", all.Latency, abc.Latency, want)
	}
	if abc.Counts != all.Counts || abc.Warmup == nil || *abc.Warmup != *all.Warmup || !slices.EqualFunc(abc.Runs, all.Runs, sameRun) ||
		!near(abc.SpanSeconds, all.SpanSeconds) || !near(abc.CommonSeconds, all.CommonSeconds) || !near(abc.ThroughputRPS, all.ThroughputRPS) ||
		!near(abc.TargetRPS, all.TargetRPS) || !near(abc.RateRatio, all.RateRatio) || !near(abc.RequestBytesPerSec, all.RequestBytesPerSec) ||
		abc.SLO.Passed != all.SLO.Passed || !slices.Equal(abc.WarningKinds, all.WarningKinds) {
		t.Errorf("merge of the merged report differs from the merge of all:\n%+v\n%+v", abc, all)
	}
	if abc.Fleet == nil || abc.Fleet.ID != "f" || len(abc.Runs) != 3 || !slices.Equal(abc.Instances, []string{"lg-0", "lg-1", "lg-2"}) {
		t.Errorf("fleet %+v, runs %d, instances %q", abc.Fleet, len(abc.Runs), abc.Instances)
	}
	// The books: warm-up counts kept and summed; the span from 2 s (lg-0's
	// measured start) to 12.2 s (lg-1's end), every instance measuring from
	// 2.4 s (lg-2's measured start) to 11.4 s (lg-2's end).
	wantWarm := report.Counts{Scheduled: 600 + 540 + 600, RequestsSent: 600 + 540 + 600, ResponsesMatched: 600 + 540 + 600}
	if *all.Warmup != wantWarm || !near(all.SpanSeconds, 10.2) || !near(all.CommonSeconds, 9) || all.SuccessRate != 1 || !all.Balanced {
		t.Errorf("warmup %+v (want %+v), span %v (10.2), common %v (9), success %v", *all.Warmup, wantWarm, all.SpanSeconds, all.CommonSeconds, all.SuccessRate)
	}
	if !near(all.RateRatio, (3000+2700+2700)/(3000+3000+2700.0)) {
		t.Errorf("ratio %v", all.RateRatio)
	}

	_, err = report.Merge(readAll(t, abPath, b), slo)
	if !errors.Is(err, report.ErrRefused) || !strings.Contains(err.Error(), "ab.json) and report 2 (") || !strings.Contains(err.Error(), "run lg-1-run of instance lg-1") {
		t.Errorf("merged report with one of its instances again = %v, want the same run refused", err)
	}
}

func sameRun(a, b report.Run) bool {
	return a.Instance == b.Instance && a.RunID == b.RunID && a.FirstClient == b.FirstClient && a.Clients == b.Clients &&
		a.Start.Equal(b.Start) && a.MeasuredStart.Equal(b.MeasuredStart) && a.End.Equal(b.End) && *a.FleetIndex == *b.FleetIndex
}

// TestMergeOne: one report merged alone keeps its rates and duration.
func TestMergeOne(t *testing.T) {
	dir := t.TempDir()
	p := inst{name: "lg-0", send: 10 * time.Second, warmup: time.Second, rate: 250, sent: 0.8}.write(t, dir)
	r := readAll(t, p)[0]
	m, err := report.Merge([]*report.Report{r}, report.Objectives{})
	if err != nil {
		t.Fatal(err)
	}
	if !near(m.DurationSeconds, r.DurationSeconds) || !near(m.ThroughputRPS, r.ThroughputRPS) || !near(m.TargetRPS, r.TargetRPS) ||
		!near(m.RateRatio, r.RateRatio) || !near(m.RequestBytesPerSec, r.RequestBytesPerSec) || m.Counts != r.Counts || *m.Warmup != *r.Warmup {
		t.Errorf("merge of one report changed it:\n%+v\n%+v", m, r)
	}
	if !slices.Equal(m.WarningKinds, r.WarningKinds) {
		t.Errorf("warnings %q, want %q", m.Warnings, r.Warnings)
	}
}

// TestMergeStoppedBeforeSending: an instance stopped before it sent (no
// counts, no times) adds nothing to the span: the others' rates stay over
// their span, without the WARNING for reports without times, and so when
// the merged report is merged again.
func TestMergeStoppedBeforeSending(t *testing.T) {
	dir := t.TempDir()
	a := inst{name: "lg-0", send: 10 * time.Second, rate: 100}.write(t, dir)
	b := inst{name: "lg-1", first: 1000, rate: 100, stopped: true}.write(t, dir)
	c := inst{name: "lg-2", first: 2000, start: time.Second, send: 10 * time.Second, rate: 100}.write(t, dir)
	ab, err := report.Merge(readAll(t, a, b), report.Objectives{})
	if err != nil {
		t.Fatal(err)
	}
	if !near(ab.SpanSeconds, 10) || !near(ab.ThroughputRPS, 100) || slices.Contains(ab.WarningKinds, report.WarnKindUntimed) || len(ab.Runs) != 2 {
		t.Errorf("span %v, throughput %v, runs %d, warnings %q; want 10 s, 100 req/s, 2 runs, none about times",
			ab.SpanSeconds, ab.ThroughputRPS, len(ab.Runs), ab.Warnings)
	}
	abPath := filepath.Join(dir, "ab.json")
	if err := ab.WriteJSON(abPath); err != nil {
		t.Fatal(err)
	}
	abc, err := report.Merge(readAll(t, abPath, c), report.Objectives{})
	if err != nil {
		t.Fatal(err)
	}
	if !near(abc.SpanSeconds, 11) || !near(abc.CommonSeconds, 9) || !near(abc.ThroughputRPS, 2000/11.0) || slices.Contains(abc.WarningKinds, report.WarnKindUntimed) {
		t.Errorf("merged again: span %v, common %v, throughput %v, warnings %q; want 11 s, 9 s, %v req/s",
			abc.SpanSeconds, abc.CommonSeconds, abc.ThroughputRPS, abc.Warnings, 2000/11.0)
	}
}
