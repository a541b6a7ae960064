package report

import (
	"encoding/json"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
)

// Outcome is a finished run as its report sees it: the final books and the
// figures around them.
type Outcome struct {
	Instance string
	// Protocol is the MQTT version ("3.1.1" or "5"); Correlation how
	// responses were matched (envelope, properties or json:FIELD).
	Protocol, Correlation string
	// Measured are the counts of the requests intended from WARMUP on, with
	// the responses that matched nothing; Warmup those intended before
	// (ignored when WarmupTime is 0).
	Measured, Warmup Counts
	// WarmupTime is WARMUP; SendEnd is when sending ended, after the epoch.
	WarmupTime, SendEnd time.Duration
	// TargetRPS is what the schedule offered over [WARMUP, SendEnd), req/s
	// (schedule.TargetRate).
	TargetRPS                    float64
	VirtualClients, ClientsFired uint64
	Interval                     time.Duration
	// RequestBytes and ResponseBytes are the payload bytes of the whole run.
	RequestBytes, ResponseBytes uint64
	Usage                       *ProcessUsage
	// Config is the configuration of the run, as JSON.
	Config json.RawMessage
	// Broker is what the broker announced when the connections connected.
	Broker     *mqttconn.Capabilities
	Hists      Hists
	Objectives Objectives

	// InstanceClaims are other runs' claims on this instance (Report).
	InstanceClaims []string
	// Run identifies the run (Report.Runs); Fleet its fleet (nil: none).
	Run   Run
	Fleet *Fleet
}

// Build assembles the report of o and finishes it (Finish): the measured
// duration is [WARMUP, SendEnd), the byte rates are over the whole sending
// time.
func Build(o *Outcome) (*Report, error) {
	r := &Report{
		Instances: []string{o.Instance}, Protocol: o.Protocol, Correlation: o.Correlation,
		Counts:       o.Measured,
		RequestBytes: o.RequestBytes, ResponseBytes: o.ResponseBytes,
		VirtualClients: o.VirtualClients, ClientsFired: o.ClientsFired, IntervalSeconds: o.Interval.Seconds(),
		TargetRPS: o.TargetRPS, Usage: o.Usage, Config: o.Config, Broker: o.Broker, InstanceClaims: o.InstanceClaims,
		Fleet: o.Fleet, Runs: []Run{o.Run},
	}
	if o.SendEnd > 0 {
		secs := o.SendEnd.Seconds()
		r.RequestBytesPerSec, r.ResponseBytesPerSec = float64(r.RequestBytes)/secs, float64(r.ResponseBytes)/secs
	}
	if o.WarmupTime > 0 {
		w := o.Warmup
		r.Warmup = &w
	}
	r.DurationSeconds = (o.SendEnd - min(o.WarmupTime, o.SendEnd)).Seconds()
	err := r.Finish(o.Hists, o.Objectives)
	return r, err
}
