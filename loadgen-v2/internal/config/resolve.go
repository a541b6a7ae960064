package config

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/envconf"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/wire"
)

// Resolved is a valid Config resolved on this machine: everything the engine
// packages take, derived once by Resolve. It is read-only.
type Resolved struct {
	// Config is the configuration as given, INSTANCE_ID defaulted to
	// hostname-pid when unset, every character of the hostname but letters,
	// digits, '-' and '_' made '-' (the report carries it).
	Config
	// RunID is random per run: it is in every request, in the client ids
	// and in the run_id label of every metric (RunName).
	RunID uint32
	// Offset is the id of the first virtual client (CLIENT_ID_OFFSET).
	Offset uint32
	// Protocol is MQTT_VERSION, CORRELATE and the templates, parsed.
	Protocol Protocol
	// Requester encodes the requests and reads the responses' keys.
	Requester *wire.Requester
	// RequestTopics and ResponseTopics are the topics of each shard
	// (REQUEST_TOPIC, RESPONSE_TOPIC filled); the response topics are also
	// the subscriptions.
	RequestTopics, ResponseTopics []string
	// Fleet is the fleet run this instance belongs to (FLEET_*); nil for a
	// single run.
	Fleet *Fleet
	// MQTT is the connection pool's options, all but what the engine hooks
	// in: the handlers (OnMessage, OnUnsent, OnState) and the Logger.
	MQTT mqttconn.Options
}

// RunName returns the run id as metrics, responses and client ids carry it:
// 8 hex digits.
func (r *Resolved) RunName() string { return fmt.Sprintf("%08x", r.RunID) }

// ShardOf returns the shard of local client i: (Offset+i) mod SHARDS.
func (r *Resolved) ShardOf(i uint32) int { return wire.Shard(r.Offset+i, r.Shards) }

// ConnOf returns the connection of local client i. Responses are routed by
// shard, so all clients of a shard share a connection: shard mod
// CONNECTIONS.
func (r *Resolved) ConnOf(i uint32) int { return r.ShardOf(i) % r.Connections }

// Resolve resolves c, which Load has validated, on this machine: INSTANCE_ID
// defaults to the hostname and pid; CLIENT_ID_OFFSET=auto takes the ordinal
// of INSTANCE_ID, else of the hostname; the client state must fit in the
// memory this process may use (the cgroup limit, else /proc/meminfo's
// MemAvailable); the password and TLS files are read. The error wraps
// envconf.ErrInvalid and lists every problem, one a line.
func (c *Config) Resolve() (*Resolved, error) {
	r := &Resolved{Config: *c}
	ordinalFrom := c.InstanceID
	if c.InstanceID == "" {
		h, _ := os.Hostname()
		r.InstanceID = sanitize(h) + "-" + strconv.Itoa(os.Getpid())
		ordinalFrom = h // a StatefulSet pod's hostname is its name, ending in -N
	}
	off, offErr := c.offset(ordinalFrom)
	proto, errs := c.protocol()
	errs = append(errs, offErr, c.checkMemory(memoryLimit()))
	if err := errors.Join(errs...); err != nil {
		return nil, envconf.Invalid(err)
	}
	r.Offset, r.Protocol = off, proto
	if err := r.resolveFleet(ordinalFrom); err != nil {
		return nil, envconf.Invalid(err)
	}

	var b [4]byte
	_, _ = rand.Read(b[:])
	r.RunID = binary.BigEndian.Uint32(b[:])
	p := &r.Protocol
	for s := range r.Shards {
		f := &wire.Fields{Instance: r.InstanceID, Shard: s}
		r.RequestTopics = append(r.RequestTopics, p.ReqTopic.String(f))
		r.ResponseTopics = append(r.ResponseTopics, p.RespTopic.String(f))
	}
	r.Requester = &wire.Requester{Mode: p.Correlation, Field: p.JSONField, Template: p.Template, Instance: r.InstanceID, Size: r.PayloadBytes}
	if p.Template == nil && p.Correlation == wire.Properties {
		r.Requester.Filler = []byte(strings.Repeat("x", r.PayloadBytes))
	}
	if p.Version == 5 {
		r.Requester.V5 = true
		r.Requester.ExpirySeconds = uint32(min((r.RequestTimeout+time.Second-1)/time.Second, 1<<32-1))
	}
	r.MQTT = mqttconn.Options{
		Broker:          r.Broker,
		ClientIDPrefix:  fmt.Sprintf("lg-%s-%s", r.InstanceID, r.RunName()),
		Connections:     r.Connections,
		QoS:             byte(r.QoS),
		ProtocolVersion: p.Version,
		Subscriptions:   r.subscriptions,
		KeepAlive:       r.KeepAlive,
		// Requests went out and nothing came back for a whole request timeout.
		SuspectAfter: r.RequestTimeout,
		Plain:        r.Transport == "paho",
		TopicHint:    r.topicHint,
	}
	if err := r.Security.Apply(&r.MQTT); err != nil {
		return nil, err
	}
	return r, nil
}

// subscriptions returns the response topics connection j subscribes to: the
// topics of its shards (j, j + CONNECTIONS, ...), or, when the response
// topic names no shard, the one topic on connection 0.
func (r *Resolved) subscriptions(j int) []string {
	if !r.Protocol.PerShard {
		if j == 0 {
			return r.ResponseTopics[:1]
		}
		return nil
	}
	var f []string
	for s := j; s < r.Shards; s += r.Connections {
		f = append(f, r.ResponseTopics[s])
	}
	return f
}

// checkMemory refuses a client count whose state cannot fit in avail bytes,
// the memory this process may use (from src), so that the run fails up front
// with the figure instead of dying out of memory later.
func (c *Config) checkMemory(avail uint64, src string) error {
	need := c.StateBytes()
	if avail == 0 || need <= avail {
		return nil
	}
	return fmt.Errorf("VIRTUAL_CLIENTS=%d with MAX_INFLIGHT_PER_CLIENT=%d needs %.1f GiB of client state (%d B per client), more than the %.1f GiB available (%s)",
		c.VirtualClients, c.MaxInflight, float64(need)/(1<<30), need/uint64(max(c.VirtualClients, 1)), float64(avail)/(1<<30), src)
}

// memoryLimit returns the bytes this process may use and where the figure
// comes from: the cgroup v2 memory.max when set, else /proc/meminfo's
// MemAvailable; 0 when neither can be read.
func memoryLimit() (uint64, string) {
	var limit uint64
	src := ""
	if b, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		if v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil {
			limit, src = v, "cgroup memory.max"
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			f := strings.Fields(line)
			if len(f) >= 2 && f[0] == "MemAvailable:" {
				if kb, err := strconv.ParseUint(f[1], 10, 64); err == nil && (limit == 0 || kb*1024 < limit) {
					limit, src = kb*1024, "MemAvailable"
				}
			}
		}
	}
	return limit, src
}

// offset resolves CLIENT_ID_OFFSET; with auto, the ordinal is the trailing
// -N of name (INSTANCE_ID, or the hostname when INSTANCE_ID is not set).
func (c *Config) offset(name string) (uint32, error) {
	var off uint64
	if c.ClientIDOffset == "auto" {
		i := strings.LastIndexByte(name, '-')
		ord, err := strconv.ParseUint(name[i+1:], 10, 32)
		if i < 0 || err != nil {
			return 0, fmt.Errorf("CLIENT_ID_OFFSET=auto needs INSTANCE_ID=%s (or, when INSTANCE_ID is unset, the hostname) to end in -N, a pod ordinal", name)
		}
		off = ord * uint64(max(c.VirtualClients, 0))
	} else {
		v, err := strconv.ParseUint(c.ClientIDOffset, 10, 32)
		if err != nil {
			return 0, fmt.Errorf("CLIENT_ID_OFFSET=%s must be a non-negative integer or auto", c.ClientIDOffset)
		}
		off = v
	}
	if off+uint64(max(c.VirtualClients, 0)) > 1<<32 {
		return 0, fmt.Errorf("CLIENT_ID_OFFSET=%s plus VIRTUAL_CLIENTS=%d exceeds the 32-bit client id space", c.ClientIDOffset, c.VirtualClients)
	}
	return uint32(off), nil
}

// sanitize makes a hostname a topic level every broker accepts: letters,
// digits, '-' and '_' stay, every other byte becomes '-' (a dot among them:
// NATS maps '.' to its subject separator and refuses it in a topic).
func sanitize(s string) string {
	b := []byte(s)
	for i, ch := range b {
		if !topicSafe(ch) {
			b[i] = '-'
		}
	}
	if len(b) == 0 {
		return "loadgen"
	}
	return string(b)
}

// topicSafe reports whether ch is accepted in a topic level by every broker.
func topicSafe(ch byte) bool {
	return ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_'
}
