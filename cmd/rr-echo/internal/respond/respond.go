// Package respond owns `rr-echo respond`: the plain paho echo responder that
// CPU figures of worker-v2 are read against. It answers loadgen-v2's requests
// (the binary envelope, MQTT 3.1.1) the simplest way paho allows: one client
// per connection on the workers' shared subscription, whose message handler
// decodes the request and publishes the response on its reply topic — no
// queue, no worker goroutines, no processing (the queue wait and processing
// time it reports are 0).
package respond

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/cmd/rr-echo/internal/pahoclient"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/envconf"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/wire"
)

// Config is the configuration of `rr-echo respond`.
type Config struct {
	Broker      string        `envconfig:"BROKER" default:"tcp://localhost:1883" desc:"MQTT broker URL (tcp://, mqtt://, ssl://, tls://, mqtts://)" json:"broker"`
	Connections int           `envconfig:"CONNECTIONS" default:"10" desc:"responder connections, each a paho client on the shared subscription (1..1000; worker-v2's default)" json:"connections"`
	Sub         string        `envconfig:"MQTT_SUB" default:"req/+" desc:"topic filter the requests arrive on" json:"sub"`
	ShareGroup  string        `envconfig:"SHARE_GROUP" default:"workers" desc:"shared subscription group name" json:"share_group"`
	QoS         int           `envconfig:"QOS" default:"0" desc:"MQTT QoS of the subscription and the responses (0, 1 or 2)" json:"qos"`
	Duration    time.Duration `envconfig:"DURATION" default:"0s" desc:"stop after this long (duration; 0: until SIGINT/SIGTERM)" json:"duration"`
	envconf.Security
}

// Validate implements envconf.Validator.
func (c *Config) Validate() error {
	errs := []error{
		envconf.Check(c.Connections >= 1 && c.Connections <= 1000, "CONNECTIONS", c.Connections, "must be 1..1000"),
		envconf.Check(c.Sub != "", "MQTT_SUB", c.Sub, "must not be empty"),
		envconf.Check(wire.ValidTopicName(c.ShareGroup), "SHARE_GROUP", c.ShareGroup, "must be 1-255 bytes without '/', '+', '#'"),
		envconf.Check(c.QoS >= 0 && c.QoS <= 2, "QOS", c.QoS, "must be 0, 1 or 2"),
		envconf.Check(c.Duration >= 0, "DURATION", c.Duration, "must not be negative"),
	}
	errs = append(errs, c.Security.Validate("BROKER", c.Broker)...)
	return errors.Join(errs...)
}

// Answered counts what a responder did; it is written as JSON when it stops.
type Answered struct {
	Kind      string `json:"kind"`      // "echo-responder"
	Received  uint64 `json:"received"`  // requests delivered to the handlers
	Answered  uint64 `json:"answered"`  // responses handed to paho's Publish
	Malformed uint64 `json:"malformed"` // requests that were no envelope (dropped)
}

// Run runs the responder until ctx ends or DURATION passes. ready, when not
// nil, is called once every connection is subscribed.
func Run(ctx context.Context, cfg Config, ready func()) (*Answered, error) {
	d, err := pahoclient.NewDialer(cfg.Broker, cfg.Security)
	if err != nil {
		return nil, err
	}
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	var received, answered, malformed atomic.Uint64
	qos := byte(cfg.QoS)
	filter := wire.SharedFilter(cfg.ShareGroup, cfg.Sub)
	handler := func(c paho.Client, m paho.Message) {
		received.Add(1)
		var req wire.Request
		if err := wire.DecodeRequest(m.Payload(), &req); err != nil {
			malformed.Add(1)
			return
		}
		resp := wire.AppendResponse(make([]byte, 0, wire.ResponseSize), &wire.Response{
			RunID: req.RunID, ClientID: req.ClientID, Seq: req.Seq, Intended: req.Intended})
		c.Publish(string(req.ReplyTopic), qos, false, resp)
		answered.Add(1)
	}
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	var clients []paho.Client
	defer func() {
		for _, c := range clients {
			c.Disconnect(250)
		}
	}()
	for i := range cfg.Connections {
		c, err := d.Connect("echo-responder-" + run + "-" + strconv.Itoa(i))
		if err != nil {
			return nil, fmt.Errorf("connect responder %d to %s: %w", i, cfg.Broker, err)
		}
		clients = append(clients, c)
		if err := pahoclient.Wait(c.Subscribe(filter, qos, handler)); err != nil {
			return nil, fmt.Errorf("responder %d: subscribe %s: %w", i, filter, err)
		}
	}
	if ready != nil {
		ready()
	}
	<-ctx.Done()
	for _, c := range clients {
		c.Unsubscribe(filter).WaitTimeout(pahoclient.Timeout)
		c.Disconnect(250) // waits for the handler in progress
	}
	clients = nil
	return &Answered{Kind: "echo-responder", Received: received.Load(), Answered: answered.Load(), Malformed: malformed.Load()}, nil
}
