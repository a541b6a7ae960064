package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/latency"
)

// ErrRefused is wrapped by Merge's error when the reports must not be
// merged because the merged report would mean nothing: the same run twice,
// two runs of the same virtual clients, different settings or protocols,
// or no report at all. The error's text lists every such problem, one a
// line, each naming the reports and what to do. Callers map it to exit
// status 2 (bad input); any other error of Merge (a histogram that does not
// decode) is a runtime error.
var ErrRefused = errors.New("merge refused")

// WriteJSON writes r as indented JSON to path.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// Read reads a JSON report; its Source is path.
func Read(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	r.Source = path
	return &r, nil
}

// Merge combines the reports of loadgen instances (single or already
// merged reports) into one: counts, warm-up counts and bytes add up,
// percentiles are read from the merged histograms, the runs are listed
// together, and SLOs are evaluated on the result. The merged report has the
// schema of a single one, so it can be written, charted and merged again.
//
// Merge refuses (an error wrapping ErrRefused) the same run twice (same
// run id and instance, or for reports without runs the same figures and
// instances), overlapping virtual-client ranges, different settings among
// config.FleetSettings in the reports' config (FLEET_SIZE only within one
// fleet), different MQTT versions or correlations, and two runs of one
// fleet with the same FLEET_INDEX.
//
// Rates: when every run carries its times, the merged duration is the true
// span, first measured start to last end (SpanSeconds = DurationSeconds),
// and every rate is over it:
//
//	throughput = Σ sent / span        responses = Σ matched / span
//	target     = Σ target_i · duration_i / span
//
// so rate_ratio = Σ sent / Σ target_i · duration_i, the share of the
// requests the schedules offered that were sent, however the windows lay.
// CommonSeconds is the window in which every instance was measuring (last
// measured start to first end, 0 when they do not all overlap). WARNINGs
// say when the measured starts spread more than WarnStartSkew, the windows'
// lengths differ by more than WarnWindowSpread, or the windows do not all
// overlap (the rates are over the span, not those of concurrent load).
// A report stopped before sending (no counts, no times) adds nothing to
// the span. When a report that sent carries no times (written before
// reports recorded them), the reports are assumed side by side: rates add
// up and the duration is the longest, with a WARNING saying so.
func Merge(rs []*Report, slo Objectives) (*Report, error) {
	if len(rs) == 0 {
		return nil, fmt.Errorf("%w: no reports to merge: give one or more JSON reports", ErrRefused)
	}
	runs := make([][]Run, len(rs))
	for i, r := range rs {
		runs[i] = runsOf(r)
	}
	cfgs, err := configsOf(rs)
	if err != nil {
		return nil, err
	}
	if p := refusals(rs, runs, cfgs); len(p) > 0 {
		msg := ""
		for _, s := range p {
			msg += "\n  " + s
		}
		return nil, fmt.Errorf("%w, the merged report would mean nothing:%s", ErrRefused, msg)
	}

	out := &Report{Config: rs[0].Config, Broker: rs[0].Broker, Protocol: rs[0].Protocol, Correlation: rs[0].Correlation}
	hs := Hists{latency.New(), latency.New(), latency.New(), latency.New(), latency.New()}
	var warm *Counts
	for i, r := range rs {
		out.Instances = append(out.Instances, r.Instances...)
		out.InstanceClaims = append(out.InstanceClaims, r.InstanceClaims...)
		out.Runs = append(out.Runs, runs[i]...)
		out.Counts.Add(r.Counts)
		if r.Warmup != nil {
			if warm == nil {
				warm = &Counts{}
			}
			warm.Add(*r.Warmup)
		}
		out.RequestBytes += r.RequestBytes
		out.ResponseBytes += r.ResponseBytes
		out.VirtualClients += r.VirtualClients
		out.ClientsFired += r.ClientsFired
		out.IntervalSeconds = max(out.IntervalSeconds, r.IntervalSeconds)
		for _, x := range []struct {
			dst *hdrhistogram.Histogram
			src string
		}{{hs.Latency, r.Histograms.Latency}, {hs.ScheduleLag, r.Histograms.ScheduleLag}, {hs.WorkerQueue, r.Histograms.WorkerQueue}, {hs.WorkerProcess, r.Histograms.WorkerProcessing},
			{hs.BrokerNetwork, r.Histograms.BrokerNetwork}} {
			if x.src == "" {
				continue
			}
			h, err := latency.Decode(x.src)
			if err != nil {
				return nil, fmt.Errorf("%s: its histograms do not decode (a damaged file? take the report again from the instance): %w", label(rs, i), err)
			}
			x.dst.Merge(h)
		}
	}
	out.Warmup = warm
	out.Fleet = fleetOf(rs)

	var mw Report // the merge's own warnings, put first
	rates := func() {}
	if w := timesOf(timing(rs, runs)); w.timed {
		// Every rate over the true span (the package doc of Merge).
		span := w.lastEnd.Sub(w.firstMeasured).Seconds()
		var offered float64 // Σ target_i · duration_i, requests
		for _, r := range rs {
			offered += r.TargetRPS * r.DurationSeconds
		}
		out.DurationSeconds, out.SpanSeconds = span, span
		out.CommonSeconds = max(w.firstEnd.Sub(w.lastMeasured).Seconds(), 0)
		if all := w.lastEnd.Sub(w.firstStart).Seconds(); all > 0 { // bytes: the whole sending time, warm-up included
			out.RequestBytesPerSec, out.ResponseBytesPerSec = float64(out.RequestBytes)/all, float64(out.ResponseBytes)/all
		}
		rates = func() {
			out.TargetRPS = 0
			if span > 0 {
				out.TargetRPS = offered / span
			}
		}
		w.warn(&mw, span)
	} else {
		// Side by side assumed: rates add up (Finish would divide by the
		// longest duration).
		var thr, resp, target float64
		for _, r := range rs {
			thr += r.ThroughputRPS
			resp += r.ResponsesRPS
			target += r.TargetRPS
			out.DurationSeconds = max(out.DurationSeconds, r.DurationSeconds)
			out.RequestBytesPerSec += r.RequestBytesPerSec
			out.ResponseBytesPerSec += r.ResponseBytesPerSec
		}
		rates = func() { out.ThroughputRPS, out.ResponsesRPS, out.TargetRPS = thr, resp, target }
		if who, ok := untimedNames(rs, runs); ok && (len(rs) > 1 || len(out.Runs) > 1) {
			mw.Warn(WarnKindUntimed, "%s no start and end times (written by a loadgen-v2 before reports recorded them): "+
				"the instances are assumed to have run side by side, their rates summed over the longest duration "+
				"%.1f s; merge reports that carry their times for the fleet rate over the true span", who, out.DurationSeconds)
		}
	}
	mergeWarnings(&mw, rs, cfgs, out.Fleet, out.Runs)
	if err := out.finish(hs, slo, rates); err != nil {
		return nil, err
	}
	out.Warnings = append(mw.Warnings, out.Warnings...)
	out.WarningKinds = append(mw.WarningKinds, out.WarningKinds...)
	return out, nil
}

// runsOf returns the runs of r; for a report written before reports
// carried runs, one run without times or client range per instance.
func runsOf(r *Report) []Run {
	if len(r.Runs) > 0 {
		return r.Runs
	}
	runs := make([]Run, len(r.Instances))
	for i, name := range r.Instances {
		runs[i] = Run{Instance: name}
	}
	return runs
}

// timing returns the runs whose windows the merged rates are taken over:
// every run, but the runs without times of a report that sent nothing
// (stopped before sending: its times are zero) or that is a merge over a
// span (those runs were such reports). Nil when a report that counts
// carries a run without times: the merge cannot know the span.
func timing(rs []*Report, runs [][]Run) []Run {
	var out []Run
	for i, r := range rs {
		for _, run := range runs[i] {
			switch {
			case run.timed():
				out = append(out, run)
			case !active(r) || r.SpanSeconds > 0:
			default:
				return nil
			}
		}
	}
	return out
}

// active reports whether r scheduled or sent anything, warm-up included.
func active(r *Report) bool {
	return r.Scheduled > 0 || r.RequestsSent > 0 || r.Warmup != nil && (r.Warmup.Scheduled > 0 || r.Warmup.RequestsSent > 0)
}

// timed reports whether the run carries its measured window.
func (r Run) timed() bool {
	return !r.Start.IsZero() && !r.MeasuredStart.IsZero() && !r.End.IsZero() && !r.End.Before(r.MeasuredStart)
}

// name is how messages name the run: its instance, else its run id.
func (r Run) name() string {
	if r.Instance != "" {
		return r.Instance
	}
	if r.RunID != "" {
		return "run " + r.RunID
	}
	return "an unnamed instance"
}

// windows are the measured windows of a merge's runs.
type windows struct {
	timed bool // every run carries its times
	// firstStart is the earliest epoch; firstMeasured and lastMeasured the
	// earliest and latest measured starts, firstEnd and lastEnd the
	// earliest and latest ends; the runs they come from are the *Run fields.
	firstStart, firstMeasured, lastMeasured, firstEnd, lastEnd time.Time
	runFirstMeasured, runLastMeasured, runFirstEnd             Run
	// shortest and longest are the runs with the shortest and longest
	// measured windows.
	shortest, longest Run
}

func timesOf(runs []Run) windows {
	w := windows{timed: len(runs) > 0}
	for i, r := range runs {
		if !r.timed() {
			return windows{}
		}
		d := r.End.Sub(r.MeasuredStart)
		if i == 0 {
			w.firstStart, w.firstMeasured, w.lastMeasured, w.firstEnd, w.lastEnd = r.Start, r.MeasuredStart, r.MeasuredStart, r.End, r.End
			w.runFirstMeasured, w.runLastMeasured, w.runFirstEnd, w.shortest, w.longest = r, r, r, r, r
			continue
		}
		if r.Start.Before(w.firstStart) {
			w.firstStart = r.Start
		}
		if r.MeasuredStart.Before(w.firstMeasured) {
			w.firstMeasured, w.runFirstMeasured = r.MeasuredStart, r
		}
		if r.MeasuredStart.After(w.lastMeasured) {
			w.lastMeasured, w.runLastMeasured = r.MeasuredStart, r
		}
		if r.End.Before(w.firstEnd) {
			w.firstEnd, w.runFirstEnd = r.End, r
		}
		if r.End.After(w.lastEnd) {
			w.lastEnd = r.End
		}
		if d < w.shortest.End.Sub(w.shortest.MeasuredStart) {
			w.shortest = r
		}
		if d > w.longest.End.Sub(w.longest.MeasuredStart) {
			w.longest = r
		}
	}
	return w
}

// warn adds the warnings of the windows' layout to r: starts spread, window
// lengths that differ, windows that do not all overlap.
func (w windows) warn(r *Report, span float64) {
	at := func(t time.Time) string { return fmt.Sprintf("+%.1f s", t.Sub(w.firstMeasured).Seconds()) }
	origin := fmt.Sprintf("seconds from the first measured start, %s", w.firstMeasured.UTC().Format(time.RFC3339Nano))
	if skew := w.lastMeasured.Sub(w.firstMeasured); skew > WarnStartSkew {
		r.Warn(WarnKindStartSkew, "the instances started measuring %.1f s apart (%s first, %s last at %s; %s): the span %.1f s is longer "+
			"than any instance's load; start them together (a fleet run, FLEET_ID, starts them at one announced time)",
			skew.Seconds(), w.runFirstMeasured.name(), w.runLastMeasured.name(), at(w.lastMeasured), origin, span)
	}
	short, long := w.shortest.End.Sub(w.shortest.MeasuredStart), w.longest.End.Sub(w.longest.MeasuredStart)
	if long-short > WarnWindowSpread {
		r.Warn(WarnKindWindows, "the instances' measured windows differ in length by %.1f s (%s %.1f s, %s %.1f s): "+
			"some load stopped before the rest (a different DURATION, or an instance stopped early); the rates are over the %.1f s span",
			(long - short).Seconds(), w.shortest.name(), short.Seconds(), w.longest.name(), long.Seconds(), span)
	}
	if !w.firstEnd.After(w.lastMeasured) {
		r.Warn(WarnKindNotConcurrent, "the instances' measured windows do not all overlap: %s ended at %s, before %s started measuring at %s (%s); "+
			"the rates are averages over the %.1f s span, not the rate of concurrent load",
			w.runFirstEnd.name(), at(w.firstEnd), w.runLastMeasured.name(), at(w.lastMeasured), origin, span)
	}
}

// untimedNames names the reports that sent requests and carry runs
// without times, with the verb: "the reports carry", "a.json carries",
// "a.json and b.json carry"; ok is false when there are none.
func untimedNames(rs []*Report, runs [][]Run) (who string, ok bool) {
	var names []string
	for i, r := range rs {
		if active(r) && r.SpanSeconds == 0 && slices.ContainsFunc(runs[i], func(r Run) bool { return !r.timed() }) {
			names = append(names, label(rs, i))
		}
	}
	switch {
	case len(names) == 0:
		return "", false
	case len(rs) == 1:
		return "the runs of " + names[0] + " carry", true
	case len(names) == len(rs):
		return "the reports carry", true
	case len(names) == 1:
		return names[0] + " carries", true
	}
	return listNames(names) + " carry", true
}

// fleetOf is the merged report's fleet: the reports' fleet when all carry
// the same one, else none.
func fleetOf(rs []*Report) *Fleet {
	f := rs[0].Fleet
	for _, r := range rs {
		if f == nil || r.Fleet == nil || r.Fleet.ID != f.ID {
			return nil
		}
	}
	c := *f
	return &c
}

// label names report i of rs: its Source, else its position (from 1).
func label(rs []*Report, i int) string {
	if rs[i].Source != "" {
		return rs[i].Source
	}
	return fmt.Sprintf("report %d", i+1)
}

// position names report i of rs by its position and its Source.
func position(rs []*Report, i int) string {
	if rs[i].Source != "" {
		return fmt.Sprintf("report %d (%s)", i+1, rs[i].Source)
	}
	return fmt.Sprintf("report %d", i+1)
}

// listNames joins names for a sentence: at most three, then how many more.
func listNames(names []string) string {
	const most = 3
	more := ""
	if len(names) > most {
		more = fmt.Sprintf(" and %d more", len(names)-most)
		names = names[:most]
	}
	s := ""
	for i, n := range names {
		switch {
		case i == 0:
		case i == len(names)-1 && more == "":
			s += " and "
		default:
			s += ", "
		}
		s += n
	}
	return s + more
}
