// Package config owns worker-v2's configuration: every environment variable,
// its default, its unit and its rule. It is the only package of the worker
// that reads the environment. Three steps, as main runs them:
//
//   - Load parses the environment into a Config (a value that does not parse
//     is an error naming the variable);
//   - Validate checks every rule and reports every problem at once; it
//     changes nothing;
//   - Resolve derives what the engine packages need from a valid Config:
//     the client id prefix, the protocol settings, the reply rules, the
//     processing mode, the autoscaler's policy, the connection options with
//     the broker credentials and TLS files read.
package config

import (
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/envconf"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/modes"
)

// Bounds of the numeric variables.
const (
	MaxConnections = 1000
	MaxWorkersCap  = 100_000    // goroutines; each costs ≥ 8 KB of stack
	MaxQueueCap    = 10_000_000 // slots of 16 bytes: 160 MB, payloads apart
	// QUEUE_MAX_BYTES bounds: at least 64 KiB, at most 64 GiB.
	MinQueueBytes = 64 << 10
	MaxQueueBytes = 64 << 30
)

// Config is worker-v2's configuration as the environment gives it. The zero
// value is not useful: use Load (environment) or Defaults (tests).
type Config struct {
	Broker          string        `envconfig:"MQTT_BROKER" default:"tcp://localhost:1883" desc:"MQTT broker URL (tcp://, mqtt://, ssl://, tls://, mqtts://)" json:"broker"`
	BrokerAlias     string        `envconfig:"BROKER" desc:"the loadgen's name for MQTT_BROKER, accepted here too: used when MQTT_BROKER is not set; when both are set and differ, MQTT_BROKER is used and the worker says so" json:"broker_alias,omitempty"`
	Sub             string        `envconfig:"MQTT_SUB" default:"req/+" desc:"topic filter the requests arrive on" json:"sub"`
	Shared          bool          `envconfig:"SHARED_SUBSCRIPTION" default:"true" desc:"subscribe as $share/SHARE_GROUP/MQTT_SUB on every connection; false = one connection subscribes to MQTT_SUB (each worker instance answers every request once: run one instance, or split the shards with WORKER_COUNT)" json:"shared_subscription"`
	SharedProbe     bool          `envconfig:"SHARED_SUBSCRIPTION_PROBE" default:"true" desc:"at start, check that the broker delivers shared subscriptions (a probe on mqtt-rr-bench/probe/..., which an ACL must allow) and exit 1 when it does not" json:"shared_subscription_probe"`
	WorkerCount     int           `envconfig:"WORKER_COUNT" default:"1" desc:"with SHARED_SUBSCRIPTION=false: instances splitting the request shards; instance WORKER_INDEX subscribes to MQTT_SUB with its '+' as each shard s < SHARDS where s mod WORKER_COUNT = WORKER_INDEX" json:"worker_count"`
	WorkerIndex     string        `envconfig:"WORKER_INDEX" default:"0" desc:"this instance's index, 0..WORKER_COUNT-1; auto = the trailing -N of the hostname (a StatefulSet ordinal)" json:"worker_index"`
	Shards          int           `envconfig:"SHARDS" default:"256" desc:"with WORKER_COUNT above 1: the request shards, as the loadgen's SHARDS" json:"shards"`
	ShareGroup      string        `envconfig:"SHARE_GROUP" default:"workers" desc:"shared subscription group name" json:"share_group"`
	Connections     int           `envconfig:"CONNECTIONS" default:"10" desc:"MQTT connections, each subscribed and used for replies (1..1000)" json:"connections"`
	MinWorkers      int           `envconfig:"MIN_WORKERS" default:"10" desc:"fewest worker goroutines the autoscaler keeps" json:"min_workers"`
	MaxWorkers      int           `envconfig:"MAX_WORKERS" default:"1000" desc:"most worker goroutines the autoscaler starts (MODE=cpu: at most max(MIN_WORKERS, GOMAXPROCS), since CPU-bound workers beyond the cores only slow each other)" json:"max_workers"`
	QueueCap        int           `envconfig:"QUEUE_CAP" default:"100000" desc:"capacity of the request queue between connections and workers (messages; 16 bytes a slot, allocated up front)" json:"queue_cap"`
	QueueMaxBytes   int64         `envconfig:"QUEUE_MAX_BYTES" default:"67108864" desc:"capacity of the request queue in bytes of the payload copies it holds (65536..68719476736; 67108864 = 64 MiB); a message that does not fit is full like one beyond QUEUE_CAP, except into an empty queue" json:"queue_max_bytes"`
	ScaleUp         float64       `envconfig:"SCALE_UP_THRESHOLD" default:"0.7" desc:"queue fill (0..1, items or bytes) above which workers are at least doubled" json:"scale_up_threshold"`
	ScaleDown       float64       `envconfig:"SCALE_DOWN_THRESHOLD" default:"0.2" desc:"queue fill (0..1, items or bytes) below which workers may be cut" json:"scale_down_threshold"`
	ScaleInterval   time.Duration `envconfig:"SCALE_INTERVAL" default:"1s" desc:"autoscaler sampling period (duration)" json:"scale_interval"`
	ScaleTarget     float64       `envconfig:"SCALE_TARGET_UTILIZATION" default:"0.8" desc:"worker utilisation the pool is sized for: workers = ⌈(arrival rate + queued / SCALE_MAX_WAIT) × mean service time / this⌉ (0..1]" json:"scale_target_utilization"`
	ScaleMaxWait    time.Duration `envconfig:"SCALE_MAX_WAIT" default:"1s" desc:"the oldest queued request waiting longer than this scales up at once (at least ×2); also the time the pool is sized to drain the queue in (duration, 10ms..1h; keep it well under the loadgen's REQUEST_TIMEOUT)" json:"scale_max_wait"`
	ScaleDownWindow time.Duration `envconfig:"SCALE_DOWN_WINDOW" default:"30s" desc:"scale-down stabilisation: never cut below the highest need of this last stretch, then at most half per SCALE_INTERVAL (duration, 0..24h)" json:"scale_down_window"`
	Mode            string        `envconfig:"MODE" default:"health" desc:"processing: health (reply at once), sleep (SLEEP_MS ± SLEEP_JITTER_MS), cpu (CPU_ITERATIONS of hashing)" json:"mode"`
	SleepMS         int           `envconfig:"SLEEP_MS" default:"10" desc:"MODE=sleep: processing time per request (ms)" json:"sleep_ms"`
	SleepJitterMS   int           `envconfig:"SLEEP_JITTER_MS" default:"0" desc:"MODE=sleep: uniform jitter added to SLEEP_MS, ± this much, never below 0 (ms)" json:"sleep_jitter_ms"`
	CPUIterations   int           `envconfig:"CPU_ITERATIONS" default:"10000" desc:"MODE=cpu: hash rounds over the payload per request (about 2-3 ns each)" json:"cpu_iterations"`
	DropOnFull      bool          `envconfig:"DROP_ON_FULL" default:"true" desc:"when the queue is full: true = drop and count the request, false = stop reading the connection (the broker then queues or drops)" json:"drop_on_full"`
	HTTPAddr        string        `envconfig:"HTTP_ADDR" default:":8080" desc:"listen address for /metrics, /stats (also /debug/vars), /health, /ready (empty = off)" json:"http_addr"`
	ShutdownTimeout time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"30s" desc:"on SIGTERM, how long workers may take to empty the queue (duration)" json:"shutdown_timeout"`
	QoS             int           `envconfig:"QOS" default:"0" desc:"MQTT QoS of the subscription and the replies (0, 1 or 2)" json:"qos"`
	KeepAlive       time.Duration `envconfig:"KEEPALIVE" default:"30s" desc:"MQTT keepalive; a connection whose broker stays silent for 1.5 × KEEPALIVE is dropped and reconnected, and one that wrote and heard nothing for KEEPALIVE is reported suspect (/health 503) (1s..18h12m15s)" json:"keepalive"`
	WriteLinger     time.Duration `envconfig:"WRITE_LINGER" default:"0s" desc:"0: each worker writes its replies itself, in MODE=health once the queue is empty (a backlog goes out in few writes); above 0: the connection's flusher writes, after waiting this long to batch more replies (duration)" json:"write_linger"`
	ClientIDPrefix  string        `envconfig:"CLIENT_ID_PREFIX" desc:"MQTT client id prefix; connection i is {prefix}-{i} (default wk-{hostname}-{pid})" json:"client_id_prefix"`
	LogLevel        string        `envconfig:"LOG_LEVEL" default:"info" desc:"debug, info, warn or error" json:"log_level"`
	MQTTVersion     string        `envconfig:"MQTT_VERSION" default:"3.1.1" desc:"MQTT protocol version: 3.1.1 or 5" json:"mqtt_version"`
	Correlate       string        `envconfig:"CORRELATE" desc:"which requests the worker answers and how: envelope (loadgen-v2's binary payload, with queue and processing times; default on 3.1.1), properties (any MQTT 5 request: reply to its Response Topic with its Correlation Data; default on 5) or json:FIELD (copy the request's JSON member FIELD into RESPONSE_TEMPLATE's {{id}})" json:"correlate"`
	ReplyTo         string        `envconfig:"REPLY_TO" default:"reply_to" desc:"CORRELATE=json:FIELD: the request's JSON member naming the reply topic when the request has no MQTT 5 Response Topic" json:"reply_to"`
	ReplyAllow      string        `envconfig:"REPLY_TOPIC_ALLOW" default:"resp/#" desc:"comma-separated MQTT topic filters a reply topic must match (default: loadgen-v2's response topics resp/{instance}/{shard}); a request naming any other reply topic is refused and counted, never answered; # allows every topic" json:"reply_topic_allow"`
	ResponseTmpl    string        `envconfig:"RESPONSE_TEMPLATE" desc:"reply payload for properties and json:FIELD; {{id}} is the request's id (json); @path reads a file (default: {\"id\":\"{{id}}\",\"status\":\"ok\"} for json, RESPONSE_BYTES bytes for properties)" json:"response_template,omitempty"`
	ResponseBytes   int           `envconfig:"RESPONSE_BYTES" default:"16" desc:"CORRELATE=properties without RESPONSE_TEMPLATE: reply payload size (bytes, 0..1048576); the envelope's reply is always 30 bytes" json:"response_bytes"`
	envconf.Security
}

// Defaults returns the configuration with every default applied, as Load
// returns it with an empty environment.
func Defaults() *Config {
	return &Config{
		Broker:          "tcp://localhost:1883",
		Sub:             "req/+",
		Shared:          true,
		SharedProbe:     true,
		WorkerCount:     1,
		WorkerIndex:     "0",
		Shards:          256,
		ShareGroup:      "workers",
		Connections:     10,
		MinWorkers:      10,
		MaxWorkers:      1000,
		QueueCap:        100000,
		QueueMaxBytes:   64 << 20,
		ScaleUp:         0.7,
		ScaleDown:       0.2,
		ScaleInterval:   time.Second,
		ScaleTarget:     0.8,
		ScaleMaxWait:    time.Second,
		ScaleDownWindow: 30 * time.Second,
		Mode:            modes.Health,
		SleepMS:         10,
		SleepJitterMS:   0,
		CPUIterations:   10000,
		DropOnFull:      true,
		HTTPAddr:        ":8080",
		ShutdownTimeout: 30 * time.Second,
		QoS:             0,
		WriteLinger:     0,
		KeepAlive:       30 * time.Second,
		LogLevel:        "info",
		MQTTVersion:     "3.1.1",
		ReplyTo:         "reply_to",
		ReplyAllow:      DefaultReplyAllow,
		ResponseBytes:   16,
	}
}

// Load parses the environment into a Config. It does not validate (see
// Validate): an error is a value that does not parse as its type, and wraps
// envconf.ErrInvalid.
func Load() (*Config, error) {
	c := &Config{}
	if err := envconf.Load(c); err != nil {
		return nil, err
	}
	return c, nil
}
