// Package ceiling owns rr-echo's ceiling measurement: the simplest
// request/response that can run over a broker, so that the knee of the real
// pipeline (loadgen-v2 → broker → worker-v2) can be read as a fraction of
// what the broker and the machine allow.
//
// Responders are plain paho clients on one shared subscription whose message
// handler publishes each request back, unchanged, on the requester's response
// topic. Requesters are plain paho connections that each keep Outstanding
// requests in flight (closed loop: every response sends the next request).
// A request's payload is its send time (8 bytes, UnixNano) padded to
// PayloadBytes; the round trip is measured by the requester's own clock.
// Being closed loop, the latencies are those of a saturated broker (queueing
// of Requesters × Outstanding requests), not of an offered rate: the
// headline is the round-trip rate.
package ceiling

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/cmd/rr-echo/internal/pahoclient"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/envconf"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/latency"
)

// Config is the configuration of rr-echo's ceiling measurement.
type Config struct {
	Broker       string        `envconfig:"BROKER" default:"tcp://localhost:1883" desc:"MQTT broker URL (tcp://, mqtt://, ssl://, tls://, mqtts://)" json:"broker"`
	Requesters   int           `envconfig:"ECHO_REQUESTERS" default:"8" desc:"requester connections (1..1000)" json:"requesters"`
	Outstanding  int           `envconfig:"ECHO_OUTSTANDING" default:"64" desc:"requests each requester keeps in flight (closed loop; 1..65535)" json:"outstanding"`
	Responders   int           `envconfig:"ECHO_RESPONDERS" default:"4" desc:"responder connections on one shared subscription (1..1000)" json:"responders"`
	PayloadBytes int           `envconfig:"PAYLOAD_BYTES" default:"16" desc:"request and response size (bytes, 8..65536; the first 8 hold the send time)" json:"payload_bytes"`
	QoS          int           `envconfig:"QOS" default:"0" desc:"MQTT QoS of requests, responses and subscriptions (0, 1 or 2)" json:"qos"`
	Duration     time.Duration `envconfig:"DURATION" default:"10s" desc:"how long round trips are counted, after WARMUP (duration)" json:"duration"`
	Warmup       time.Duration `envconfig:"WARMUP" default:"2s" desc:"round trips in this first stretch are not counted (duration)" json:"warmup"`
	ReportFile   string        `envconfig:"REPORT_FILE" desc:"also write the JSON result to this file" json:"report_file,omitempty"`
	envconf.Security
}

// Validate implements envconf.Validator.
func (c *Config) Validate() error {
	errs := []error{
		envconf.Check(c.Requesters >= 1 && c.Requesters <= 1000, "ECHO_REQUESTERS", c.Requesters, "must be 1..1000"),
		envconf.Check(c.Outstanding >= 1 && c.Outstanding <= 65535, "ECHO_OUTSTANDING", c.Outstanding, "must be 1..65535"),
		envconf.Check(c.Responders >= 1 && c.Responders <= 1000, "ECHO_RESPONDERS", c.Responders, "must be 1..1000"),
		envconf.Check(c.PayloadBytes >= 8 && c.PayloadBytes <= 65536, "PAYLOAD_BYTES", c.PayloadBytes, "must be 8..65536"),
		envconf.Check(c.QoS >= 0 && c.QoS <= 2, "QOS", c.QoS, "must be 0, 1 or 2"),
		envconf.Check(c.Duration > 0, "DURATION", c.Duration, "must be positive"),
		envconf.Check(c.Warmup >= 0, "WARMUP", c.Warmup, "must not be negative"),
	}
	errs = append(errs, c.Security.Validate("BROKER", c.Broker)...)
	return errors.Join(errs...)
}

// Result is the outcome of a run, written as JSON. Field names follow
// loadgen-v2's report where they mean the same (throughput_rps, latency_ms,
// histograms.latency), so rr-chart reads both.
type Result struct {
	Kind            string          `json:"kind"` // "echo"
	Config          Config          `json:"config"`
	DurationSeconds float64         `json:"duration_s"`
	RoundTrips      uint64          `json:"round_trips"` // responses received in the measured window
	ThroughputRPS   float64         `json:"throughput_rps"`
	Sent            uint64          `json:"sent"`     // requests published, warmup and drain included
	Received        uint64          `json:"received"` // responses received, warmup and drain included
	Lost            uint64          `json:"lost"`     // sent − received after the drain
	Latency         latency.Summary `json:"latency_ms"`
	Histograms      struct {
		Latency string `json:"latency"`
	} `json:"histograms"`
}

// drainTimeout bounds the wait for the last responses after the window.
const drainTimeout = 5 * time.Second

type requester struct {
	c        paho.Client
	reqTopic string
	sent     atomic.Uint64
	received atomic.Uint64
}

// Run connects the responders and requesters, runs WARMUP + DURATION and
// returns the result. ctx cancels the run early (the window then ends at
// once and the result covers what was measured).
func Run(ctx context.Context, cfg Config) (*Result, error) {
	d, err := pahoclient.NewDialer(cfg.Broker, cfg.Security)
	if err != nil {
		return nil, err
	}
	id := make([]byte, 4)
	_, _ = rand.Read(id)
	run := hex.EncodeToString(id)
	base := "echo/" + run
	qos := byte(cfg.QoS)
	dial := func(name string, onConnect func(paho.Client) error) (paho.Client, error) {
		c, err := d.Connect("echo-" + run + "-" + name)
		if err != nil {
			return nil, fmt.Errorf("connect %s to %s: %w", name, cfg.Broker, err)
		}
		if err := onConnect(c); err != nil {
			c.Disconnect(0)
			return nil, err
		}
		return c, nil
	}
	var clients []paho.Client
	defer func() {
		for _, c := range clients {
			c.Disconnect(100)
		}
	}()

	// Responders: one shared subscription; the handler publishes the
	// payload back on echo/{run}/resp/{i} for a request on echo/{run}/req/{i}.
	share := "$share/echo-" + run + "/" + base + "/req/+"
	for i := range cfg.Responders {
		c, err := dial("s"+strconv.Itoa(i), func(c paho.Client) error {
			return pahoclient.Wait(c.Subscribe(share, qos, func(c paho.Client, m paho.Message) {
				if k := strings.LastIndexByte(m.Topic(), '/'); k >= 0 {
					c.Publish(base+"/resp/"+m.Topic()[k+1:], qos, false, m.Payload())
				}
			}))
		})
		if err != nil {
			return nil, err
		}
		clients = append(clients, c)
	}

	rec := latency.NewRecorder(cfg.Requesters)
	var measuring, sending atomic.Bool
	sending.Store(true)
	reqs := make([]*requester, cfg.Requesters)
	for i := range reqs {
		r := &requester{reqTopic: base + "/req/" + strconv.Itoa(i)}
		reqs[i] = r
		c, err := dial("r"+strconv.Itoa(i), func(c paho.Client) error {
			return pahoclient.Wait(c.Subscribe(base+"/resp/"+strconv.Itoa(i), qos, func(c paho.Client, m paho.Message) {
				now := time.Now().UnixNano()
				r.received.Add(1)
				if p := m.Payload(); len(p) >= 8 && measuring.Load() {
					rec.Record(i, time.Duration(now-int64(binary.BigEndian.Uint64(p))))
				}
				if sending.Load() {
					r.publish(c, cfg.PayloadBytes, qos)
				}
			}))
		})
		if err != nil {
			return nil, err
		}
		r.c = c
		clients = append(clients, c)
	}

	// Closed loop: each requester starts Outstanding requests; every
	// response sends the next one until the window ends.
	for _, r := range reqs {
		for range cfg.Outstanding {
			r.publish(r.c, cfg.PayloadBytes, qos)
		}
	}
	if !sleep(ctx, cfg.Warmup) {
		return nil, ctx.Err()
	}
	measuring.Store(true)
	start := time.Now()
	sleep(ctx, cfg.Duration)
	measuring.Store(false)
	elapsed := time.Since(start)
	sending.Store(false)

	// Drain: wait until every request sent has its response (or time out:
	// the rest are counted lost).
	deadline := time.Now().Add(drainTimeout)
	for time.Now().Before(deadline) && outstanding(reqs) > 0 {
		time.Sleep(10 * time.Millisecond)
	}

	res := &Result{Kind: "echo", Config: cfg, DurationSeconds: elapsed.Seconds()}
	for _, r := range reqs {
		res.Sent += r.sent.Load()
		res.Received += r.received.Load()
	}
	res.Lost = res.Sent - min(res.Received, res.Sent)
	h := rec.Total()
	res.RoundTrips = uint64(h.TotalCount())
	res.ThroughputRPS = float64(res.RoundTrips) / elapsed.Seconds()
	res.Latency = latency.Summarize(h)
	if res.Histograms.Latency, err = latency.Encode(h); err != nil {
		return nil, err
	}
	return res, nil
}

// publish sends one request on c (the requester's connection) whose
// payload starts with the send time.
func (r *requester) publish(c paho.Client, size int, qos byte) {
	p := make([]byte, size)
	binary.BigEndian.PutUint64(p, uint64(time.Now().UnixNano()))
	r.sent.Add(1)
	c.Publish(r.reqTopic, qos, false, p)
}

func outstanding(reqs []*requester) uint64 {
	var n uint64
	for _, r := range reqs {
		if s, g := r.sent.Load(), r.received.Load(); s > g {
			n += s - g
		}
	}
	return n
}

// sleep waits d or until ctx is done; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
