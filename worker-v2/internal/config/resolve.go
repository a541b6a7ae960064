package config

import (
	"bytes"
	"errors"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/envconf"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/wire"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/autoscale"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/modes"
)

// Resolved is what the engine packages need, derived from a valid Config by
// Resolve. The engine reads nothing from the environment.
type Resolved struct {
	// Config is the configuration it was resolved from, with
	// CLIENT_ID_PREFIX filled (wk-{hostname}-{pid} when empty).
	Config
	// Conn are the options of the connection pool: broker, client ids,
	// CONNECTIONS, QOS, the subscription (Filter), protocol version,
	// WRITE_LINGER, KEEPALIVE, credentials and TLS. The engine adds its
	// callbacks (OnMessage, OnUnsent, OnState) and its logger.
	Conn mqttconn.Options
	// BrokerNote says which broker variable was used when BROKER was given
	// (empty otherwise): the worker logs it at start.
	BrokerNote string
	// BrokerConflict: BROKER and MQTT_BROKER were both set and differ.
	BrokerConflict bool
	// Filter is the subscription: $share/SHARE_GROUP/MQTT_SUB on every
	// connection, or with SHARED_SUBSCRIPTION=false MQTT_SUB on the first
	// connection only (each request answered once per instance).
	Filter string
	// Filters are the first connection's filters with SHARED_SUBSCRIPTION=false:
	// [MQTT_SUB], or with WORKER_COUNT above 1 MQTT_SUB with its '+' as each
	// shard of this instance.
	Filters []string
	// Rules say what a request must carry and what its reply is (CORRELATE,
	// REPLY_TO, RESPONSE_TEMPLATE, RESPONSE_BYTES) and where a reply may go
	// (REPLY_TOPIC_ALLOW; nil when it allows everything, "#").
	Rules wire.Responder
	// Processing is MODE with its SLEEP_MS, SLEEP_JITTER_MS or
	// CPU_ITERATIONS.
	Processing modes.Options
	// WorkerCap is the pool's upper bound: MAX_WORKERS, and in MODE=cpu at
	// most max(MIN_WORKERS, GOMAXPROCS at Resolve) — a CPU-bound worker
	// beyond the cores adds no throughput.
	WorkerCap int
	// Policy is the autoscaler's policy: MIN_WORKERS..WorkerCap and the
	// SCALE_* variables.
	Policy autoscale.Policy
	// AdaptGOMAXPROCS: GOMAXPROCS follows the load (package gomaxprocs).
	// Not when the GOMAXPROCS variable fixes it, not in MODE=cpu (CPU-bound
	// workers need every core), not on one processor.
	AdaptGOMAXPROCS bool
}

// Resolve derives the engine's settings from c, which Validate accepted. It
// reads the password and TLS files and the RESPONSE_TEMPLATE file; an error
// (a file that changed since Validate) wraps envconf.ErrInvalid.
func (c *Config) Resolve() (*Resolved, error) {
	r := &Resolved{Config: *c}
	if r.ClientIDPrefix == "" {
		r.ClientIDPrefix = DefaultClientIDPrefix()
	}
	p, errs := c.parseProtocol()
	if len(errs) > 0 {
		return nil, envconf.Invalid(errors.Join(errs...))
	}
	r.Rules = wire.Responder{Mode: p.Correlation, IDField: p.IDField, ReplyToField: c.ReplyTo, Template: p.Template,
		Filler: bytes.Repeat([]byte{'x'}, c.ResponseBytes), Allow: c.replyAllow()}
	r.Processing = modes.Options{
		Mode:       c.Mode,
		Sleep:      time.Duration(c.SleepMS) * time.Millisecond,
		Jitter:     time.Duration(c.SleepJitterMS) * time.Millisecond,
		Iterations: c.CPUIterations,
	}
	procs := runtime.GOMAXPROCS(0)
	r.WorkerCap = c.MaxWorkers
	if c.Mode == modes.CPU {
		r.WorkerCap = min(c.MaxWorkers, max(c.MinWorkers, procs))
	}
	r.Policy = autoscale.Policy{
		Min: c.MinWorkers, Max: r.WorkerCap,
		Up: c.ScaleUp, Down: c.ScaleDown,
		Target:     c.ScaleTarget,
		MaxWait:    c.ScaleMaxWait,
		DownWindow: c.ScaleDownWindow,
	}
	// BROKER (the loadgen's name) stands in for MQTT_BROKER when that is
	// not set; both set and different: MQTT_BROKER wins, and the worker says so.
	if c.BrokerAlias != "" {
		if _, set := os.LookupEnv("MQTT_BROKER"); !set {
			r.Broker = c.BrokerAlias
			r.BrokerNote = "broker from BROKER (MQTT_BROKER not set): " + c.BrokerAlias
		} else if c.BrokerAlias != c.Broker {
			r.BrokerNote = "BROKER=" + c.BrokerAlias + " and MQTT_BROKER=" + c.Broker + " differ: using MQTT_BROKER"
			r.BrokerConflict = true
		}
	}
	_, fixed := os.LookupEnv("GOMAXPROCS")
	r.AdaptGOMAXPROCS = !fixed && c.Mode != modes.CPU && procs > 1

	r.Filter = c.Sub
	var subs func(int) []string
	if c.Shared {
		r.Filter = wire.SharedFilter(c.ShareGroup, c.Sub)
		filters := []string{r.Filter}
		subs = func(int) []string { return filters }
	} else {
		idx, err := c.Index()
		if err != nil {
			return nil, envconf.Invalid(err)
		}
		r.Filters = ShardFilters(c.Sub, c.Shards, c.WorkerCount, idx)
		filters := r.Filters
		subs = func(i int) []string {
			if i == 0 {
				return filters
			}
			return nil
		}
	}
	r.Conn = mqttconn.Options{
		Broker:          r.Broker,
		ClientIDPrefix:  r.ClientIDPrefix,
		Connections:     c.Connections,
		QoS:             byte(c.QoS),
		Subscriptions:   subs,
		ProtocolVersion: p.Version,
		Linger:          c.WriteLinger,
		KeepAlive:       c.KeepAlive,
		TopicHint:       r.topicHint,
	}
	if c.Shared && c.SharedProbe {
		r.Conn.ProbeShareGroup = c.ShareGroup
	}
	if err := c.Security.Apply(&r.Conn); err != nil {
		return nil, err
	}
	return r, nil
}

// DefaultClientIDPrefix returns "wk-{hostname}-{pid}".
func DefaultClientIDPrefix() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "worker"
	}
	return "wk-" + h + "-" + strconv.Itoa(os.Getpid())
}

// DefaultReplyAllow is REPLY_TOPIC_ALLOW's default: loadgen-v2's response
// topics (resp/{instance}/{shard}, or resp/{instance}).
const DefaultReplyAllow = "resp/#"

// replyFilters returns the filters of REPLY_TOPIC_ALLOW (empty: the default).
func (c *Config) replyFilters() []string {
	v := c.ReplyAllow
	if strings.TrimSpace(v) == "" {
		v = DefaultReplyAllow
	}
	fs := strings.Split(v, ",")
	for i := range fs {
		fs[i] = strings.TrimSpace(fs[i])
	}
	return fs
}

// replyAllow returns the filters a reply topic must match; nil when one of
// them is "#" (every topic).
func (c *Config) replyAllow() []string {
	fs := c.replyFilters()
	if slices.Contains(fs, "#") {
		return nil
	}
	return fs
}

// ShardFilters returns the filters of instance index of count: [sub] when
// count is 1, else sub with its '+' level as each shard s < shards where
// s mod count = index.
func ShardFilters(sub string, shards, count, index int) []string {
	if count <= 1 {
		return []string{sub}
	}
	var f []string
	for s := index; s < shards; s += count {
		f = append(f, strings.Replace(sub, "+", strconv.Itoa(s), 1))
	}
	return f
}
