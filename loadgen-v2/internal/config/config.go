// Package config owns loadgen-v2's configuration: every environment variable,
// its default and its rule (Config, Validate: a pure check), and what a
// valid configuration resolves to on this machine (Resolve: the default
// instance id, the client id offset, the memory the client state needs, the
// parsed protocol, topics and MQTT options): the one value the engine
// packages take. Environment variable names appear here and nowhere below.
package config

import (
	"errors"
	"fmt"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/cliutil"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/envconf"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/wire"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/pending"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/schedule"
)

// Config is loadgen-v2's configuration.
type Config struct {
	Broker         string        `envconfig:"BROKER" default:"tcp://localhost:1883" desc:"MQTT broker URL (tcp://, ssl://, tls://, mqtts://)" json:"broker"`
	VirtualClients int           `envconfig:"VIRTUAL_CLIENTS" default:"100000" desc:"number of virtual clients" json:"virtual_clients"`
	Connections    int           `envconfig:"CONNECTIONS" default:"100" desc:"MQTT connections the virtual clients are multiplexed over" json:"connections"`
	Shards         int           `envconfig:"SHARDS" default:"256" desc:"request topic shards: client c publishes on req/{c mod SHARDS}" json:"shards"`
	IntervalMS     int           `envconfig:"INTERVAL_MS" default:"2000" desc:"interval between two requests of one virtual client (ms)" json:"interval_ms"`
	MaxInflight    int           `envconfig:"MAX_INFLIGHT_PER_CLIENT" default:"1" desc:"outstanding requests per virtual client; a send beyond it is skipped and counted" json:"max_inflight_per_client"`
	PublishWorkers int           `envconfig:"PUBLISH_WORKERS" default:"20" desc:"goroutines that encode and publish a scheduler tick's requests when a tick holds more than BATCH_SIZE" json:"publish_workers"`
	BatchSize      int           `envconfig:"BATCH_SIZE" default:"500" desc:"requests handed to one publish worker; also the most requests of one connection written together" json:"batch_size"`
	QoS            int           `envconfig:"QOS" default:"0" desc:"MQTT QoS of requests and response subscriptions (0, 1 or 2)" json:"qos"`
	RequestTimeout time.Duration `envconfig:"REQUEST_TIMEOUT" default:"10s" desc:"a request without response after this long counts as timed out" json:"request_timeout"`
	Duration       time.Duration `envconfig:"DURATION" default:"0s" desc:"how long to send (0 = until SIGINT/SIGTERM); then drain up to REQUEST_TIMEOUT and report" json:"duration"`
	Warmup         time.Duration `envconfig:"WARMUP" default:"0s" desc:"requests intended in the first WARMUP are sent but excluded from the report" json:"warmup"`
	RampUp         time.Duration `envconfig:"RAMP_UP" default:"0s" desc:"bring virtual clients online linearly over this time" json:"ramp_up"`
	InstanceID     string        `envconfig:"INSTANCE_ID" desc:"this loadgen's id, used in response topics (default: hostname-pid, every character of the hostname but letters, digits, '-' and '_' made '-')" json:"instance_id"`
	InstanceClaim  bool          `envconfig:"INSTANCE_CLAIM" default:"true" desc:"while the run lasts, a retained claim on mqtt-rr-bench/instance/{INSTANCE_ID} (cleared at the end), so a second loadgen with the same INSTANCE_ID warns before it sends; false = none" json:"instance_claim"`
	ClientIDOffset string        `envconfig:"CLIENT_ID_OFFSET" default:"0" desc:"id of the first virtual client (instances need disjoint ranges); auto = ordinal of INSTANCE_ID's trailing -N times VIRTUAL_CLIENTS" json:"client_id_offset"`
	PayloadBytes   int           `envconfig:"PAYLOAD_BYTES" default:"0" desc:"pad each request to at least this many bytes (CORRELATE=properties without REQUEST_TEMPLATE: the payload, this many bytes)" json:"payload_bytes"`
	MQTTVersion    string        `envconfig:"MQTT_VERSION" default:"3.1.1" desc:"MQTT protocol version: 3.1.1 or 5" json:"mqtt_version"`
	Correlate      string        `envconfig:"CORRELATE" desc:"how a response finds its request: envelope (worker-v2's binary payload; default on 3.1.1), properties (MQTT 5 Correlation Data, any MQTT 5 responder; default on 5) or json:FIELD (the response's top-level JSON member FIELD carries the {{id}} of REQUEST_TEMPLATE)" json:"correlate"`
	RequestTmpl    string        `envconfig:"REQUEST_TEMPLATE" desc:"request payload with placeholders {{id}}, {{client}}, {{seq}}, {{ts}} (intended send time, Unix ms), {{instance}}, {{shard}}, {{reply}} (the response topic); @path reads the file; required with CORRELATE=json:FIELD, optional with properties, unused with envelope" json:"request_template,omitempty"`
	RequestTopic   string        `envconfig:"REQUEST_TOPIC" default:"req/{{shard}}" desc:"topic of the requests; {{shard}} and {{instance}} allowed" json:"request_topic"`
	ResponseTopic  string        `envconfig:"RESPONSE_TOPIC" default:"resp/{{instance}}/{{shard}}" desc:"topic the responses come back on; {{instance}} and {{shard}} allowed; without {{shard}} one topic, subscribed on the first connection only" json:"response_topic"`
	MetricsAddr    string        `envconfig:"METRICS_ADDR" default:":8090" desc:"HTTP listen address for /metrics, /debug/vars, /health (empty = off)" json:"metrics_addr"`
	MetricsLinger  time.Duration `envconfig:"METRICS_LINGER" desc:"after the report, keep serving METRICS_ADDR this long (phase finished) so Prometheus scrapes the final counts; SIGINT/SIGTERM ends it (unset or 0 = exit at once; Compose and Kubernetes set 15s, make run 60s; at most 1h)" json:"metrics_linger,omitempty"`
	ReportFile     string        `envconfig:"REPORT_FILE" desc:"write the final report as JSON to this file" json:"report_file,omitempty"`
	ProgressEvery  time.Duration `envconfig:"PROGRESS_INTERVAL" default:"5s" desc:"live progress line period on stderr (0 = off)" json:"progress_interval"`
	SLOP99MS       float64       `envconfig:"SLO_P99_MS" default:"0" desc:"exit 3 if p99 latency exceeds this (ms; 0 = no SLO)" json:"slo_p99_ms,omitempty"`
	SLOMatchRate   float64       `envconfig:"SLO_MATCH_RATE" default:"0" desc:"exit 3 if the match rate (matched / sent) is below this (0..1; 0 = no SLO)" json:"slo_match_rate,omitempty"`
	SLOSuccess     float64       `envconfig:"SLO_SUCCESS_RATE" default:"0.99" desc:"exit 3 if the success rate (matched / scheduled) is below this (0..1; 0 = no SLO), so a run that mostly failed fails" json:"slo_success_rate,omitempty"`
	KeepAlive      time.Duration `envconfig:"KEEPALIVE" default:"30s" desc:"MQTT keepalive; a connection whose broker stays silent for 1.5 × KEEPALIVE is dropped and reconnected (1s..18h)" json:"keepalive"`
	Transport      string        `envconfig:"TRANSPORT" default:"fast" desc:"fast (buffered reads, coalesced writes, in-place parsing) or paho (plain paho, for comparison)" json:"transport"`
	CPUProfile     string        `envconfig:"CPU_PROFILE" desc:"write a pprof CPU profile of the run to this file" json:"cpu_profile,omitempty"`
	FleetID        string        `envconfig:"FLEET_ID" desc:"fleet run: the id shared by every loadgen of the fleet (letters, digits, '-', '_'; empty = a single run); instances meet on mqtt-rr-bench/fleet/{FLEET_ID}/ on the broker, start together and send their reports to the coordinator" json:"fleet_id,omitempty"`
	FleetSize      int           `envconfig:"FLEET_SIZE" default:"0" desc:"fleet run: how many loadgens the fleet has (1..1000; required with FLEET_ID)" json:"fleet_size,omitempty"`
	FleetIndex     string        `envconfig:"FLEET_INDEX" default:"auto" desc:"fleet run: this loadgen's index, 0..FLEET_SIZE-1; auto = JOB_COMPLETION_INDEX (a Kubernetes Indexed Job's pod), else the trailing -N of INSTANCE_ID or the hostname. The first virtual client is FLEET_INDEX × VIRTUAL_CLIENTS unless CLIENT_ID_OFFSET says otherwise" json:"fleet_index,omitempty"`
	FleetCoord     string        `envconfig:"FLEET_COORDINATOR" default:"self" desc:"fleet run: self = index 0 coordinates (start barrier, collection, merged report and verdict) beside its own load; external = a 'loadgen-v2 fleet' command does" json:"fleet_coordinator,omitempty"`
	FleetTimeout   time.Duration `envconfig:"FLEET_TIMEOUT" default:"2m" desc:"fleet run: how long to wait for every loadgen to join (coordinator) or for the start (instance)" json:"fleet_timeout,omitempty"`
	FleetLead      time.Duration `envconfig:"FLEET_START_DELAY" default:"3s" desc:"fleet run: the coordinator announces the common start this far ahead of the moment the last loadgen joined (100ms..1m)" json:"fleet_start_delay,omitempty"`
	FleetResults   string        `envconfig:"FLEET_RESULTS" desc:"fleet run, coordinator: write the per-instance reports, the merged report (JSON and text) into this directory (empty = none; 'loadgen-v2 fleet' defaults to results/fleet-TIME)" json:"fleet_results,omitempty"`
	LogLevel       string        `envconfig:"LOG_LEVEL" default:"info" desc:"debug, info, warn or error" json:"log_level"`
	envconf.Security
}

// MaxIntervalMS is the largest INTERVAL_MS (24 h): far beyond any useful
// interval, and small enough that every time computed from it fits int64 ns.
const MaxIntervalMS = 24 * 3600 * 1000

// Interval returns INTERVAL_MS as a duration.
func (c *Config) Interval() time.Duration { return time.Duration(c.IntervalMS) * time.Millisecond }

// Rate returns the target request rate, requests per second.
func (c *Config) Rate() float64 {
	return float64(c.VirtualClients) / c.Interval().Seconds()
}

// Load reads the environment and validates it (Validate). The error wraps
// envconf.ErrInvalid and lists every problem, one a line.
func Load() (*Config, error) {
	c := &Config{}
	if err := envconf.Load(c); err != nil {
		return nil, err
	}
	return c, nil
}

// Validate returns every problem of c joined (errors.Join), each naming the
// variable, its value and the rule; nil when c is valid. It is pure: it
// changes nothing and reads nothing of the machine (Resolve does), only the
// files the variables name (REQUEST_TEMPLATE=@path, the TLS and password
// files) to check them. With INSTANCE_ID unset, the hostname's ordinal that
// CLIENT_ID_OFFSET=auto needs is checked by Resolve.
func (c *Config) Validate() error {
	chk := envconf.Check
	errs := []error{
		chk(c.VirtualClients >= 1 && c.VirtualClients <= 1<<31, "VIRTUAL_CLIENTS", c.VirtualClients, "must be between 1 and 2147483648"),
		chk(c.Connections >= 1 && c.Connections <= 10000, "CONNECTIONS", c.Connections, "must be between 1 and 10000"),
		chk(c.Shards >= 1 && c.Shards <= 65536, "SHARDS", c.Shards, "must be between 1 and 65536"),
		chk(c.IntervalMS >= 1 && c.IntervalMS <= MaxIntervalMS, "INTERVAL_MS", c.IntervalMS, fmt.Sprintf("must be between 1 and %d (24 h)", MaxIntervalMS)),
		chk(c.MaxInflight >= 1 && c.MaxInflight <= 64, "MAX_INFLIGHT_PER_CLIENT", c.MaxInflight, "must be between 1 and 64"),
		chk(c.PublishWorkers >= 1 && c.PublishWorkers <= 1024, "PUBLISH_WORKERS", c.PublishWorkers, "must be between 1 and 1024"),
		chk(c.BatchSize >= 1 && c.BatchSize <= 1000000, "BATCH_SIZE", c.BatchSize, "must be between 1 and 1000000"),
		chk(c.QoS >= 0 && c.QoS <= 2, "QOS", c.QoS, "must be 0, 1 or 2"),
		chk(c.RequestTimeout > 0, "REQUEST_TIMEOUT", c.RequestTimeout, "must be positive"),
		chk(c.Duration >= 0, "DURATION", c.Duration, "must not be negative"),
		chk(c.Warmup >= 0, "WARMUP", c.Warmup, "must not be negative"),
		chk(c.RampUp >= 0, "RAMP_UP", c.RampUp, "must not be negative"),
		chk(c.PayloadBytes >= 0 && c.PayloadBytes <= 1<<20, "PAYLOAD_BYTES", c.PayloadBytes, "must be between 0 and 1048576"),
		chk(c.ProgressEvery >= 0, "PROGRESS_INTERVAL", c.ProgressEvery, "must not be negative"),
		chk(c.MetricsLinger >= 0 && c.MetricsLinger <= time.Hour, "METRICS_LINGER", c.MetricsLinger, "must be between 0 and 1h"),
		chk(c.MetricsLinger <= 0 || c.MetricsAddr != "", "METRICS_LINGER", c.MetricsLinger, "needs METRICS_ADDR: with METRICS_ADDR empty nothing is served"),
		chk(c.SLOP99MS >= 0, "SLO_P99_MS", c.SLOP99MS, "must not be negative"),
		chk(c.SLOMatchRate >= 0 && c.SLOMatchRate <= 1, "SLO_MATCH_RATE", c.SLOMatchRate, "must be between 0 and 1"),
		chk(c.SLOSuccess >= 0 && c.SLOSuccess <= 1, "SLO_SUCCESS_RATE", c.SLOSuccess, "must be between 0 and 1"),
		chk(c.KeepAlive >= time.Second && c.KeepAlive <= 65535*time.Second, "KEEPALIVE", c.KeepAlive, "must be between 1s and 18h12m15s (MQTT's 65535 s)"),
		chk(c.InstanceID == "" || wire.ValidTopicName(c.InstanceID), "INSTANCE_ID", c.InstanceID, "must be 1-255 bytes of UTF-8 without '/', '+', '#' or control characters"),
		chk(c.Duration == 0 || c.Warmup < c.Duration, "WARMUP", c.Warmup, fmt.Sprintf("must be shorter than DURATION=%v", c.Duration)),
		chk(c.Transport == "fast" || c.Transport == "paho", "TRANSPORT", c.Transport, "must be fast or paho"),
		chk(validLevel(c.LogLevel), "LOG_LEVEL", c.LogLevel, "must be debug, info, warn or error"),
	}
	errs = append(errs, c.validateFleet()...)
	if c.Connections > c.Shards && c.Shards >= 1 {
		errs = append(errs, fmt.Errorf("CONNECTIONS=%d is greater than SHARDS=%d: responses are routed by shard, so connections beyond SHARDS would carry nothing", c.Connections, c.Shards))
	}
	if c.InstanceID != "" || c.ClientIDOffset != "auto" {
		_, err := c.offset(c.InstanceID)
		errs = append(errs, err)
	}
	errs = append(errs, c.Security.Validate("BROKER", c.Broker)...)
	_, perrs := c.protocol()
	errs = append(errs, perrs...)
	return errors.Join(errs...)
}

// StateBytes returns the memory the virtual clients' state needs, bytes:
// VIRTUAL_CLIENTS × (schedule + MAX_INFLIGHT_PER_CLIENT pending slots).
func (c *Config) StateBytes() uint64 {
	return uint64(max(c.VirtualClients, 0)) * uint64(schedule.BytesPerClient+pending.BytesPerSlot*max(c.MaxInflight, 0))
}

// validLevel: LOG_LEVEL as slog parses it (cliutil.ParseLevel).
func validLevel(s string) bool {
	_, err := cliutil.ParseLevel(s)
	return err == nil
}
