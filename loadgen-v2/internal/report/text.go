package report

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"unicode/utf8"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/latency"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
)

// TextWidth is the widest line of the text report, in columns (runes):
// figures, labels and explanations are laid out to fit, and longer free text
// (warnings, SLO failures) is wrapped at word boundaries.
const TextWidth = 100

// WriteText prints r as a readable table, no line wider than TextWidth
// (figures wider than their column, such as counts beyond ten digits, may
// push a line past it).
func (r *Report) WriteText(w io.Writer) {
	var t table
	t.line("=== mqtt-rr-bench loadgen report (%s) ===", strings.Join(r.Instances, ", "))
	if t.last() > TextWidth {
		t.lines = t.lines[:len(t.lines)-1]
		t.line("=== mqtt-rr-bench loadgen report (%d instances) ===", len(r.Instances))
		t.wrap("instances  ", strings.Split(strings.Join(r.Instances, ", "), " "))
	}
	if r.Protocol != "" {
		t.row("protocol", fmt.Sprintf("MQTT %s, correlation %s", r.Protocol, r.Correlation), "")
	}
	if r.Broker != nil {
		for i, line := range wrap(r.Broker.String(), 64) {
			name := ""
			if i == 0 {
				name = "broker"
			}
			t.row(name, line, "")
		}
	}
	if r.Fleet != nil {
		t.row("fleet", r.fleetLine(), "")
	}
	if r.SpanSeconds > 0 {
		t.row("span", fmt.Sprintf("%.1f s", r.SpanSeconds), fmt.Sprintf("all instances measuring together: %.1f s; rates are over the span", r.CommonSeconds))
	} else {
		t.row("duration", fmt.Sprintf("%.1f s", r.DurationSeconds), "")
	}
	t.row("target rate", fmt.Sprintf("%.0f req/s", r.TargetRPS), "")
	t.row("achieved rate", fmt.Sprintf("%.0f req/s", r.ThroughputRPS), fmt.Sprintf("ratio %.4f; requests whose bytes reached the socket", r.RateRatio))
	t.row("SUCCESS RATE", fmt.Sprintf("%.6f", r.SuccessRate), "matched / scheduled")
	t.row("scheduled", fmt.Sprint(r.Scheduled), fmt.Sprintf("fires of %d of %d virtual clients", r.ClientsFired, r.VirtualClients))
	t.row("  sent", fmt.Sprint(r.RequestsSent), "")
	t.row("    matched", fmt.Sprint(r.ResponsesMatched), "")
	t.row("    timed out", fmt.Sprint(r.Timeouts), "")
	t.row("    still pending", fmt.Sprint(r.StillPending), "")
	t.row("  skipped", fmt.Sprint(r.Skipped), "inflight limit (MAX_INFLIGHT_PER_CLIENT)")
	t.row("  send failed", fmt.Sprint(r.SendFailed), "")
	t.row("match rate", fmt.Sprintf("%.6f", r.MatchRate), "matched / sent")
	t.row("unmatched responses", fmt.Sprintf("%d late, %d duplicate, %d implausible, %d unknown, %d malformed",
		r.Late, r.Duplicate, r.Implausible, r.Unknown, r.Malformed), "")
	if r.Oversized > 0 {
		t.row("inbound oversized", fmt.Sprint(r.Oversized), fmt.Sprintf("above the %d MiB frame limit, skipped unread", mqttconn.DefaultMaxInboundFrame>>20))
	}
	t.row("payload bytes", fmt.Sprintf("%d out (%.0f B/s), %d in (%.0f B/s)", r.RequestBytes, r.RequestBytesPerSec, r.ResponseBytes, r.ResponseBytesPerSec), "")
	yes := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "NO"
	}
	t.row("accounting balanced", yes(r.Balanced), "scheduled = sent + skipped + send failed: "+yes(r.ScheduledBalanced()))
	t.row("", "", "sent = matched + timed out + pending: "+yes(r.SentBalanced()))
	if u := r.Usage; u != nil {
		t.row("loadgen CPU", fmt.Sprintf("%.2f s user + %.2f s sys: %.1f µs per request (%.1f µs while sending)",
			u.CPUUserSeconds, u.CPUSystemSeconds, u.CPUMicrosPerRequest, u.SendingCPUMicrosPerRequest), "")
		t.row("loadgen max RSS", fmt.Sprintf("%.1f MB", u.MaxRSSMB), "")
	}
	if r.BrokerDropped != nil {
		t.row("broker dropped", fmt.Sprint(*r.BrokerDropped), "")
	}
	t.flush()
	t.line("")
	var lat strings.Builder
	tw := tabwriter.NewWriter(&lat, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "latency (ms)\tp50\tp90\tp99\tp99.9\tp99.99\tmax\tcount")
	row := func(name string, s latency.Summary) {
		fmt.Fprintf(tw, "%s\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t%d\n", name, s.P50, s.P90, s.P99, s.P999, s.P9999, s.Max, s.Count)
	}
	row("round trip (from intended send)", r.Latency)
	row("  schedule lag (send - intended)", r.ScheduleLag)
	row("  worker queue wait", r.WorkerQueue)
	row("  worker processing", r.WorkerProcess)
	row("  broker + network (the rest)", r.BrokerNetwork)
	_ = tw.Flush()
	t.lines = append(t.lines, strings.Split(strings.TrimSuffix(lat.String(), "\n"), "\n")...)
	if c := r.Warmup; c != nil {
		t.line("")
		t.wrap("warmup (excluded)  ", []string{fmt.Sprintf("scheduled %d,", c.Scheduled), fmt.Sprintf("sent %d,", c.RequestsSent),
			fmt.Sprintf("matched %d,", c.ResponsesMatched), fmt.Sprintf("timed out %d,", c.Timeouts), fmt.Sprintf("pending %d,", c.StillPending),
			fmt.Sprintf("skipped %d,", c.Skipped), fmt.Sprintf("send failed %d", c.SendFailed)})
	}
	if len(r.Warnings) > 0 {
		t.line("")
		for _, w := range r.Warnings {
			t.wrap("WARNING  ", strings.Fields(w))
		}
	}
	if r.SLO.P99MS > 0 || r.SLO.MatchRate > 0 || r.SLO.SuccessRate > 0 || len(r.SLO.Failures) > 0 {
		t.line("")
		if r.SLO.Passed {
			t.line("SLO  PASSED")
		} else {
			for _, f := range r.SLO.Failures {
				t.wrap("SLO FAILED  ", strings.Fields(f))
			}
		}
	}
	for _, l := range t.lines {
		fmt.Fprintln(w, l)
	}
}

// fleetLine describes r's fleet: its id, and the instance's index (one
// run) or how many of its instances the report holds.
func (r *Report) fleetLine() string {
	f := r.Fleet
	var idx []int
	for _, run := range r.Runs {
		if run.FleetIndex != nil {
			idx = append(idx, *run.FleetIndex)
		}
	}
	if len(r.Runs) == 1 && len(idx) == 1 {
		return fmt.Sprintf("%s, index %d of FLEET_SIZE=%d", f.ID, idx[0], f.Size)
	}
	return fmt.Sprintf("%s, %d of FLEET_SIZE=%d instances", f.ID, len(idx), f.Size)
}

// table lays out the report's lines: rows of label, value and an optional
// note, aligned over each run of rows (flush ends a run), and free lines.
type table struct {
	lines []string
	rows  [][3]string
}

func (t *table) line(format string, a ...any) { t.lines = append(t.lines, fmt.Sprintf(format, a...)) }

// last is the width of the last line, in runes.
func (t *table) last() int { return utf8.RuneCountInString(t.lines[len(t.lines)-1]) }

func (t *table) row(label, value, note string) {
	t.rows = append(t.rows, [3]string{label, value, note})
}

// flush prints the rows: labels padded to the widest label, values that
// carry a note padded to the widest such value, two spaces between.
func (t *table) flush() {
	lw, vw := 0, 0
	for _, r := range t.rows {
		lw = max(lw, utf8.RuneCountInString(r[0]))
		if r[2] != "" {
			vw = max(vw, utf8.RuneCountInString(r[1]))
		}
	}
	pad := func(s string, w int) string { return s + strings.Repeat(" ", w-utf8.RuneCountInString(s)) }
	for _, r := range t.rows {
		l := pad(r[0], lw+2) + r[1]
		if r[2] != "" {
			l = pad(r[0], lw+2) + pad(r[1], vw+2) + r[2]
		}
		t.lines = append(t.lines, l)
	}
	t.rows = nil
}

// wrap adds Wrap(prefix, words, TextWidth).
func (t *table) wrap(prefix string, words []string) {
	t.lines = append(t.lines, Wrap(prefix, words, TextWidth)...)
}

// Wrap joins words with spaces into lines of at most width runes: the first
// line starts with prefix, the others with as many spaces. A word (which may
// hold spaces of its own: it is never broken) longer than the room gets a line
// of its own.
func Wrap(prefix string, words []string, width int) []string {
	indent := strings.Repeat(" ", utf8.RuneCountInString(prefix))
	room := width - utf8.RuneCountInString(prefix)
	var lines []string
	line, n := prefix, 0 // n: runes of words on line
	for _, word := range words {
		wl := utf8.RuneCountInString(word)
		if n > 0 && n+1+wl > room {
			lines = append(lines, line)
			line, n = indent, 0
		}
		if n > 0 {
			line += " "
			n++
		}
		line += word
		n += wl
	}
	return append(lines, line)
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
