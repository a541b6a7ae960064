package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/latency"
)

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

// Read reads a JSON report.
func Read(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

// Merge combines the reports of loadgen instances that ran side by side:
// counts add up, rates add up, the duration is the longest, and percentiles
// are read from the merged histograms.
func Merge(rs []*Report, slo Objectives) (*Report, error) {
	if len(rs) == 0 {
		return nil, errors.New("merge: no reports")
	}
	out := &Report{Config: rs[0].Config, Broker: rs[0].Broker}
	hs := Hists{latency.New(), latency.New(), latency.New(), latency.New(), latency.New()}
	for i, r := range rs {
		out.Instances = append(out.Instances, r.Instances...)
		out.InstanceClaims = append(out.InstanceClaims, r.InstanceClaims...)
		out.Counts.Add(r.Counts)
		out.RequestBytes += r.RequestBytes
		out.ResponseBytes += r.ResponseBytes
		out.RequestBytesPerSec += r.RequestBytesPerSec
		out.ResponseBytesPerSec += r.ResponseBytesPerSec
		if i == 0 {
			out.Protocol, out.Correlation = r.Protocol, r.Correlation
		} else if out.Protocol != r.Protocol || out.Correlation != r.Correlation {
			return nil, fmt.Errorf("merge: report %d is MQTT %s / %s, report 0 MQTT %s / %s", i, r.Protocol, r.Correlation, out.Protocol, out.Correlation)
		}
		out.VirtualClients += r.VirtualClients
		out.ClientsFired += r.ClientsFired
		out.IntervalSeconds = max(out.IntervalSeconds, r.IntervalSeconds)
		out.TargetRPS += r.TargetRPS
		out.DurationSeconds = max(out.DurationSeconds, r.DurationSeconds)
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
				return nil, fmt.Errorf("report %d: %w", i, err)
			}
			x.dst.Merge(h)
		}
	}
	// Rates of concurrent instances add up (Finish would divide by the
	// longest duration); the warnings are computed from the summed rates.
	var thr, resp float64
	for _, r := range rs {
		thr += r.ThroughputRPS
		resp += r.ResponsesRPS
	}
	if err := out.finish(hs, slo, func() { out.ThroughputRPS, out.ResponsesRPS = thr, resp }); err != nil {
		return nil, err
	}
	return out, nil
}
