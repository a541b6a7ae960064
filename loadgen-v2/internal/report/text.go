package report

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/latency"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
)

// WriteText prints r as a readable table.
func (r *Report) WriteText(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	p := func(format string, a ...any) { fmt.Fprintf(tw, format+"\n", a...) }
	p("=== mqtt-rr-bench loadgen report (%s) ===", strings.Join(r.Instances, ", "))
	if r.Protocol != "" {
		p("protocol\tMQTT %s, correlation %s", r.Protocol, r.Correlation)
	}
	if r.Broker != nil {
		for i, line := range wrap(r.Broker.String(), 64) {
			if i == 0 {
				p("broker\t%s", line)
			} else {
				p("\t%s", line)
			}
		}
	}
	p("duration\t%.1f s", r.DurationSeconds)
	p("target rate\t%.0f req/s", r.TargetRPS)
	p("achieved rate\t%.0f req/s\t(ratio %.4f; requests whose bytes reached the socket)", r.ThroughputRPS, r.RateRatio)
	p("SUCCESS RATE\t%.6f\t(matched / scheduled)", r.SuccessRate)
	p("scheduled\t%d\t(fires of %d of %d virtual clients)", r.Scheduled, r.ClientsFired, r.VirtualClients)
	p("  sent\t%d", r.RequestsSent)
	p("    matched\t%d", r.ResponsesMatched)
	p("    timed out\t%d", r.Timeouts)
	p("    still pending\t%d", r.StillPending)
	p("  skipped (inflight limit)\t%d", r.Skipped)
	p("  send failed\t%d", r.SendFailed)
	p("responses late / duplicate / implausible / unknown / malformed\t%d / %d / %d / %d / %d", r.Late, r.Duplicate, r.Implausible, r.Unknown, r.Malformed)
	if r.Oversized > 0 {
		p("inbound oversized\t%d\t(messages above the %d MiB frame limit, skipped unread)", r.Oversized, mqttconn.DefaultMaxInboundFrame>>20)
	}
	p("match rate\t%.6f\t(matched / sent)", r.MatchRate)
	p("payload bytes\t%d out (%.0f B/s), %d in (%.0f B/s)", r.RequestBytes, r.RequestBytesPerSec, r.ResponseBytes, r.ResponseBytesPerSec)
	yes := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "NO"
	}
	p("accounting balanced\t%s\t(scheduled = sent + skipped + send failed: %s; sent = matched + timed out + pending: %s)",
		yes(r.Balanced), yes(r.ScheduledBalanced()), yes(r.SentBalanced()))
	if u := r.Usage; u != nil {
		p("loadgen process\tCPU %.2f s user + %.2f s sys = %.1f µs per request (%.1f µs while sending), max RSS %.1f MB",
			u.CPUUserSeconds, u.CPUSystemSeconds, u.CPUMicrosPerRequest, u.SendingCPUMicrosPerRequest, u.MaxRSSMB)
	}
	if r.BrokerDropped != nil {
		p("broker dropped\t%d", *r.BrokerDropped)
	}
	p("")
	p("latency (ms)\tp50\tp90\tp99\tp99.9\tp99.99\tmax\tcount")
	row := func(name string, s latency.Summary) {
		p("%s\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t%d", name, s.P50, s.P90, s.P99, s.P999, s.P9999, s.Max, s.Count)
	}
	row("round trip (from intended send)", r.Latency)
	row("  schedule lag (send - intended)", r.ScheduleLag)
	row("  worker queue wait", r.WorkerQueue)
	row("  worker processing", r.WorkerProcess)
	row("  broker + network (the rest)", r.BrokerNetwork)
	if r.Warmup != nil {
		p("")
		p("warmup (excluded)\tscheduled %d, sent %d, matched %d, timed out %d, pending %d, skipped %d, send failed %d",
			r.Warmup.Scheduled, r.Warmup.RequestsSent, r.Warmup.ResponsesMatched, r.Warmup.Timeouts, r.Warmup.StillPending, r.Warmup.Skipped, r.Warmup.SendFailed)
	}
	if len(r.Warnings) > 0 {
		p("")
		for _, w := range r.Warnings {
			p("WARNING\t%s", w)
		}
	}
	if r.SLO.P99MS > 0 || r.SLO.MatchRate > 0 || r.SLO.SuccessRate > 0 || len(r.SLO.Failures) > 0 {
		p("")
		if r.SLO.Passed {
			p("SLO\tPASSED")
		} else {
			for _, f := range r.SLO.Failures {
				p("SLO FAILED\t%s", f)
			}
		}
	}
	_ = tw.Flush()
}

// wrap splits s after its commas into lines of at most width bytes where it
// can (a part longer than width stays whole).
func wrap(s string, width int) []string {
	var lines []string
	line := ""
	for part := range strings.SplitAfterSeq(s, ", ") {
		if line != "" && len(line)+len(strings.TrimSuffix(part, " ")) > width {
			lines = append(lines, strings.TrimSuffix(line, " "))
			line = ""
		}
		line += part
	}
	return append(lines, line)
}
