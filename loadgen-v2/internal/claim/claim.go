// Package claim owns the loadgen's claim on its instance id: a retained
// message on Topic(instance) that says which run uses the instance, since
// when and until when. Two loadgens with one INSTANCE_ID share their
// response topics and receive each other's responses; with the claim, the
// second is told before it sends (the first run's claim is there), and the
// first the moment the second claims (it stays subscribed).
//
// Take reads the topic, publishes the claim and waits until the broker
// delivers the claim back: whatever arrived before it is the claim the topic
// held (the broker sends retained messages on subscribing, before it
// forwards a later publish). Release clears the claim (an empty retained
// message) when the topic still holds it; a Last Will marks it ended if the
// process dies. A broker that keeps no retained messages, an ACL that
// forbids the topic or a broker that cannot be reached skips the claim with
// an INFO line: the run goes on without it.
package claim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
)

// TopicPrefix is where the claims live: TopicPrefix + INSTANCE_ID.
const TopicPrefix = "mqtt-rr-bench/instance/"

// Topic returns the claim topic of instance.
func Topic(instance string) string { return TopicPrefix + instance }

// DefaultEchoWait is how long Take waits, once the broker acknowledged the
// claim, for the broker to deliver it back.
const DefaultEchoWait = 2 * time.Second

// Record is a claim: the JSON payload of the retained message.
type Record struct {
	RunID   string    `json:"run_id"`
	Started time.Time `json:"started"`
	// Until is when the run will have ended at the latest (it connects,
	// sends for DURATION and drains for REQUEST_TIMEOUT); zero for a run
	// that lasts until it is stopped.
	Until time.Time `json:"until,omitzero"`
	Host  string    `json:"host,omitempty"`
	PID   int       `json:"pid,omitempty"`
	// Ended marks the claim of a run that is over: the Last Will the broker
	// publishes when the run's claim connection ends without a DISCONNECT
	// (the process was killed). Some brokers refuse an empty Will, which
	// would have cleared the claim.
	Ended bool `json:"ended,omitempty"`
}

// Live reports whether the run of r may still be running at now.
func (r Record) Live(now time.Time) bool {
	return !r.Ended && (r.Until.IsZero() || now.Before(r.Until))
}

// String describes r: "run 1a2b3c4d on host h (pid 12), started 15:04:05Z,
// until stopped".
func (r Record) String() string {
	until := "until stopped"
	if !r.Until.IsZero() {
		until = "until " + r.Until.UTC().Format(time.TimeOnly+"Z")
	}
	return fmt.Sprintf("run %s on host %s (pid %d), started %s, %s", r.RunID, r.Host, r.PID, r.Started.UTC().Format(time.TimeOnly+"Z"), until)
}

// Options configure a claim.
type Options struct {
	// Instance is INSTANCE_ID; RunID this run's id.
	Instance, RunID string
	// Window is how long the run may last from now (0: until stopped).
	Window time.Duration
	// MQTT are the run's connection options (broker, protocol, security);
	// ClientID is the claim connection's client id.
	MQTT     mqttconn.Options
	ClientID string
	// EchoWait: DefaultEchoWait when 0.
	EchoWait time.Duration
	// OnConflict is called, once per other run, when a live claim of
	// another run is seen on the topic (from the connection's goroutine:
	// it must not block). Optional.
	OnConflict func(other Record)
	Log        *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Claim is a run's claim on its instance id.
type Claim struct {
	o     Options
	topic string
	own   Record
	ctl   *mqttconn.Control // nil: no claim (skipped)

	mu        sync.Mutex
	echoed    chan struct{} // closed when our claim came back
	seenOwn   bool
	lastOwn   bool     // the topic's last message is our claim
	conflicts []Record // other runs' live claims, one per run
}

// Take claims the instance (see the package doc). It never fails: a claim
// that cannot be made is skipped with an INFO line; Conflicts and Release
// work either way. It returns when the claim is made or skipped, or ctx
// ended.
func Take(ctx context.Context, o Options) *Claim {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.EchoWait <= 0 {
		o.EchoWait = DefaultEchoWait
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	now := o.Now()
	host, _ := os.Hostname()
	c := &Claim{o: o, topic: Topic(o.Instance), echoed: make(chan struct{}),
		own: Record{RunID: o.RunID, Started: now.UTC(), Host: host, PID: os.Getpid()}}
	if o.Window > 0 {
		c.own.Until = now.Add(o.Window).UTC()
	}
	skip := func(why string, err error) *Claim {
		o.Log.Info("instance claim skipped: "+why+"; the run goes on without it (INSTANCE_CLAIM=false stops trying)", "topic", c.topic, "err", err)
		if c.ctl != nil {
			c.ctl.Close()
			c.ctl = nil
		}
		return c
	}
	payload, err := json.Marshal(c.own)
	if err != nil {
		return skip("cannot encode it", err)
	}
	ended := c.own
	ended.Ended = true
	will, err := json.Marshal(ended)
	if err != nil {
		return skip("cannot encode it", err)
	}
	ctl, err := mqttconn.DialControl(ctx, o.MQTT, mqttconn.ControlOptions{ClientID: o.ClientID, OnMessage: c.onMessage,
		WillTopic: c.topic, WillPayload: will})
	if errors.Is(err, mqttconn.ErrRetainUnavailable) {
		return skip("the broker keeps no retained messages", err)
	}
	if err != nil {
		return skip("no connection for it (a broker that refuses retained messages closes it)", err)
	}
	c.ctl = ctl
	if !ctl.RetainAvailable() {
		return skip("the broker keeps no retained messages", mqttconn.ErrRetainUnavailable)
	}
	if err := ctl.Subscribe(ctx, c.topic); err != nil {
		return skip("cannot read the claim topic (an ACL? allow "+TopicPrefix+"# for the loadgen)", err)
	}
	if err := ctl.Publish(ctx, c.topic, payload, true); err != nil {
		return skip("cannot publish the claim (an ACL? allow "+TopicPrefix+"# for the loadgen)", err)
	}
	t := time.NewTimer(o.EchoWait)
	defer t.Stop()
	select {
	case <-c.echoed:
	case <-ctx.Done():
	case <-t.C:
		o.Log.Info("instance claim published but not delivered back: the claims of other runs cannot be read (an ACL? allow "+TopicPrefix+"# for the loadgen, or INSTANCE_CLAIM=false)",
			"topic", c.topic, "waited_seconds", o.EchoWait.Seconds())
	}
	return c
}

// onMessage reads a message on the claim topic: our claim coming back, a
// clear (empty), or another run's claim — a conflict when that run may
// still be running. Anything else is ignored.
func (c *Claim) onMessage(topic string, payload []byte, retained bool) {
	if topic != c.topic {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(payload) == 0 {
		c.lastOwn = false
		return
	}
	var r Record
	if err := json.Unmarshal(payload, &r); err != nil || r.RunID == "" {
		c.o.Log.Debug("instance claim topic: not a claim; ignored", "topic", topic, "bytes", len(payload))
		return
	}
	if r.RunID == c.own.RunID && r.Started.Equal(c.own.Started) {
		c.lastOwn = true
		if !c.seenOwn {
			c.seenOwn = true
			close(c.echoed)
		}
		return
	}
	c.lastOwn = false
	// A retained claim is the topic's state when we subscribed: a run that
	// may still be running. A claim published now is a run starting now.
	if !r.Live(c.o.Now()) {
		if retained && !r.Ended {
			c.o.Log.Info("instance claim: the expired claim of an earlier run is replaced", "topic", topic, "earlier", r.String())
		}
		return
	}
	if slices.ContainsFunc(c.conflicts, func(o Record) bool { return o.RunID == r.RunID }) {
		return
	}
	c.conflicts = append(c.conflicts, r)
	if c.o.OnConflict != nil {
		c.o.OnConflict(r)
	}
}

// Conflicts returns the live claims of other runs seen so far.
func (c *Claim) Conflicts() []Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.conflicts)
}

// Active reports whether the claim was made (Take did not skip it).
func (c *Claim) Active() bool { return c.ctl != nil }

// Release clears the claim — an empty retained message — when the topic
// still holds it (or when its echo never came, so the topic's state is not
// known), waiting up to timeout for the broker's acknowledgement, and
// disconnects. Another run's later claim is left in place. Idempotent.
func (c *Claim) Release(timeout time.Duration) {
	if c.ctl == nil {
		return
	}
	c.mu.Lock()
	clear := c.lastOwn || !c.seenOwn
	c.mu.Unlock()
	if clear {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		if err := c.ctl.Publish(ctx, c.topic, nil, true); err != nil {
			c.o.Log.Info("instance claim not cleared: it expires at its end time", "topic", c.topic, "err", err)
		}
		cancel()
	}
	c.ctl.Close()
	c.ctl = nil
}
