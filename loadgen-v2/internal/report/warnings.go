package report

import (
	"fmt"
	"strings"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
)

// Kinds of warnings: what a reader must not miss about a run. Each warning
// of a report has one; the JSON report lists them in warning_kinds (in the
// order of warnings) and the metric mqttrr_loadgen_report_warnings counts
// them by kind. A new warning gets a kind here and a line in warn.
const (
	WarnKindRate         = "rate_below_target"
	WarnKindNotSent      = "not_sent"
	WarnKindClients      = "clients_not_fired"
	WarnKindNoResponse   = "no_response"
	WarnKindForeign      = "unknown_or_malformed"
	WarnKindInstanceUsed = "instance_id_in_use"
	WarnKindDuplicate    = "duplicate"
	WarnKindImplausible  = "implausible"
	WarnKindStopped      = "stopped_before_sending"
	WarnKindOversized    = "oversized_inbound"
	WarnKindToolLag      = "loadgen_lag"       // warnLatency
	WarnKindNagle        = "delayed_ack_nagle" // warnLatency

	// Merge's warnings: about what was merged, not about the figures.
	WarnKindStartSkew         = "start_skew"         // measured starts more than WarnStartSkew apart
	WarnKindWindows           = "windows_differ"     // measured windows' lengths differ by more than WarnWindowSpread
	WarnKindNotConcurrent     = "not_concurrent"     // measured windows that do not all overlap
	WarnKindUntimed           = "untimed_reports"    // reports without times: side by side assumed
	WarnKindFleets            = "different_fleets"   // reports of different fleets (or of none)
	WarnKindFleetIncomplete   = "fleet_incomplete"   // fewer instances than FLEET_SIZE
	WarnKindSettingsUnchecked = "settings_unchecked" // reports without a config: settings not compared
)

// Thresholds of the report's warnings.
const (
	// WarnRateRatio: an achieved rate below this share of the target.
	WarnRateRatio = 0.99
	// WarnNotSent: skipped + send failed above this share of scheduled.
	WarnNotSent = 0.001
	// WarnForeign: unknown (other than another run's) + malformed responses
	// above this share of the requests sent.
	WarnForeign = 0.001
	// WarnStartSkew: merged instances whose measured starts spread wider.
	WarnStartSkew = time.Second
	// WarnWindowSpread: merged instances whose measured windows' lengths
	// differ by more.
	WarnWindowSpread = time.Second
)

// Warn adds a warning of kind to r: its text to Warnings, its kind to
// WarningKinds. Every warning of a report goes through here.
func (r *Report) Warn(kind, format string, a ...any) {
	r.Warnings = append(r.Warnings, fmt.Sprintf(format, a...))
	r.WarningKinds = append(r.WarningKinds, kind)
}

// WarningCounts returns how many warnings of each kind r has.
func (r *Report) WarningCounts() map[string]int {
	n := map[string]int{}
	for _, k := range r.WarningKinds {
		n[k]++
	}
	return n
}

// warn fills r.Warnings from its figures (an unbalanced book is an SLO
// failure, reported there).
func (r *Report) warn() {
	r.Warnings, r.WarningKinds = nil, nil
	if r.Scheduled == 0 && r.RequestsSent == 0 && (r.Warmup == nil || r.Warmup.Scheduled == 0) {
		r.Warn(WarnKindStopped, "stopped before sending: nothing was scheduled, every count is zero")
	}
	if r.TargetRPS > 0 && r.DurationSeconds > 0 && r.RateRatio < WarnRateRatio {
		r.Warn(WarnKindRate, "achieved rate %.0f req/s is %.1f%% of the target %.0f req/s", r.ThroughputRPS, 100*r.RateRatio, r.TargetRPS)
	}
	if ns := r.Skipped + r.SendFailed; r.Scheduled > 0 && float64(ns) > WarnNotSent*float64(r.Scheduled) {
		r.Warn(WarnKindNotSent, "%.2f%% of scheduled requests were not sent: %d skipped (client had MAX_INFLIGHT_PER_CLIENT outstanding), %d send failed (connection down or write buffer full)",
			100*float64(ns)/float64(r.Scheduled), r.Skipped, r.SendFailed)
	}
	if r.VirtualClients > 0 && r.ClientsFired < r.VirtualClients && r.Scheduled > 0 {
		why := ""
		if r.IntervalSeconds > 0 && r.DurationSeconds < r.IntervalSeconds {
			why = fmt.Sprintf(": the measured duration %.1f s is shorter than INTERVAL_MS (%.1f s)", r.DurationSeconds, r.IntervalSeconds)
		}
		r.Warn(WarnKindClients, "only %d of %d virtual clients fired%s", r.ClientsFired, r.VirtualClients, why)
	}
	if r.RequestsSent > 0 && r.ResponsesMatched+r.Late+r.Duplicate+r.Implausible+r.Unknown+r.Malformed == 0 {
		r.Warn(WarnKindNoResponse, "no response at all to %d requests sent: is a worker subscribed to the request topic "+
			"(worker-v2's MQTT_SUB, REQUEST_TOPIC here) on this broker? A broker that accepts $share subscriptions "+
			"but delivers nothing to them (NATS, RabbitMQ MQTT) looks the same: run worker-v2 with SHARED_SUBSCRIPTION=false",
			r.RequestsSent)
	}
	if other := r.Unknown - min(r.UnknownOtherRun, r.Unknown) + r.Malformed; other > 0 && float64(other) > WarnForeign*float64(r.RequestsSent) {
		r.Warn(WarnKindForeign, "%d unknown and %d malformed responses (%s of sent): something else answers on the response topics "+
			"(a foreign responder, another loadgen's instance on them, or a responder that does not speak CORRELATE=%s)",
			r.Unknown-min(r.UnknownOtherRun, r.Unknown), r.Malformed, share(other, r.RequestsSent), orDefault(r.Correlation, "envelope"))
	}
	if r.UnknownOtherRun > 0 || len(r.InstanceClaims) > 0 {
		id := "INSTANCE_ID"
		if len(r.Instances) == 1 {
			id = "INSTANCE_ID=" + r.Instances[0]
		}
		if len(r.InstanceClaims) > 0 {
			also := ""
			if r.UnknownOtherRun > 0 {
				also = fmt.Sprintf(" (%d responses for this instance carried another run id)", r.UnknownOtherRun)
			}
			r.Warn(WarnKindInstanceUsed, "%s%s", ClaimConflict(id, r.InstanceClaims), also)
		} else {
			r.Warn(WarnKindInstanceUsed, "%d responses for this instance carried another run id: another loadgen is using %s "+
				"(each gets the other's responses), or a previous run's answers were still arriving; give every loadgen its own INSTANCE_ID",
				r.UnknownOtherRun, id)
		}
	}
	if r.Oversized > 0 {
		r.Warn(WarnKindOversized, "%d inbound messages above the %d MiB frame limit were skipped unread (the connections stayed up): "+
			"someone publishes large messages to the response topics; broker ACLs keep them out", r.Oversized, maxInboundMiB)
	}
	if r.Duplicate > 0 {
		r.Warn(WarnKindDuplicate, "%d duplicate responses (a request answered more than once): several workers on a plain subscription "+
			"(SHARED_SUBSCRIPTION=false, or a broker that ignores $share), a second responder on the request topic, or QoS 1 redelivery after a reconnect",
			r.Duplicate)
	}
	if r.Implausible > 0 {
		r.Warn(WarnKindImplausible, "%d implausible responses (worker-stamped times longer than the measured round trip: forged or foreign responders on the response topics)", r.Implausible)
	}
}

// ClaimConflict is the warning, logged at once and in the report, that
// other runs claimed id (INSTANCE_ID=name) while this one lasted.
func ClaimConflict(id string, claims []string) string {
	return fmt.Sprintf("another loadgen claimed %s during this run (%s): two loadgens with one INSTANCE_ID "+
		"receive each other's responses (counted unknown); give every loadgen its own INSTANCE_ID", id, strings.Join(claims, "; "))
}

// share formats n / of as a percentage ("n/a" when of is 0).
func share(n, of uint64) string {
	if of == 0 {
		return "none sent"
	}
	return fmt.Sprintf("%.2f%%", 100*float64(n)/float64(of))
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// maxInboundMiB is the connections' inbound frame limit, MiB.
const maxInboundMiB = mqttconn.DefaultMaxInboundFrame >> 20
