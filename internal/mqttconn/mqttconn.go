// Package mqttconn owns the MQTT connections and sessions of both engines:
// the Conn and Transport interfaces they use, a pool of N connections with
// unique client ids (Pool, Dial), subscriptions re-made on every
// (re)connect, bounded reconnect backoff, the delivery of inbound messages
// to the MessageHandler, and the report of messages accepted but never
// written (Options.OnUnsent).
//
// The engines see only Conn and Transport; the client library stays behind
// them: paho.mqtt.golang for MQTT 3.1.1, paho.golang (autopaho) for MQTT 5
// (Options.ProtocolVersion), whose PUBLISH packets carry Response Topic,
// Correlation Data and Message Expiry Interval (Message). The client library
// owns the session: CONNECT, SUBSCRIBE, keepalive, acknowledgements, QoS 1/2
// messages, reconnecting. Every session's socket is this package's session
// (session.go): the client library dials through it.
//
// Hot path. QoS 0 messages bypass the client library both ways. paho's
// Publish allocates a token, a packet and a timer per message and wakes a
// writer goroutine; here QueueMessage and PublishMessage encode the PUBLISH
// packet (package mqttpkt) straight into the write buffer of the session's
// socket (package sockio), which coalesces: one write carries every message
// that accumulated, made by Flush on the caller's goroutine or by the
// socket's flusher. Inbound, paho's router would allocate a message and pass
// it through two goroutines; here the session's reader parses QoS 0 PUBLISH
// packets in the read buffer and hands them to the MessageHandler on the
// reading goroutine, and passes every other packet on to the client
// library. Neither way allocates or hands the message to another goroutine.
package mqttconn

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/sockio"
)

// Sentinel errors.
var (
	// ErrNotConnected: the connection is down (reconnecting); nothing was sent.
	ErrNotConnected = errors.New("mqtt connection not connected")
	// ErrBackpressure: more than Options.MaxPendingBytes are waiting to be
	// written (the broker or network stalls); nothing was queued.
	ErrBackpressure = errors.New("mqtt write buffer full")
	// ErrNeedsV5: a message with MQTT 5 properties (Response Topic,
	// Correlation Data, Message Expiry) on an MQTT 3.1.1 connection.
	ErrNeedsV5 = errors.New("mqtt 5 properties on an mqtt 3.1.1 connection")
)

// Conn is one MQTT connection as the engines use it. Publish never blocks on
// the network for QoS 0: it fails fast with ErrNotConnected or ErrBackpressure.
type Conn interface {
	// Publish queues payload for topic and wakes the connection's flusher,
	// which writes after Options.Linger. The payload is copied before Publish
	// returns, so the caller may reuse it.
	Publish(topic string, payload []byte) error
	// Queue is Publish without waking the flusher: the frame is written by
	// the next Flush (or with a later Publish). Use it for a burst of
	// messages, then call Flush once.
	Queue(topic string, payload []byte) error
	// QueueMessage and PublishMessage are Queue and Publish for a Message,
	// with its MQTT 5 properties (ErrNeedsV5 on a 3.1.1 connection).
	QueueMessage(m *Message) error
	PublishMessage(m *Message) error
	// Flush writes everything queued with one non-blocking attempt from the
	// caller's goroutine and leaves what would block to the flusher: it never
	// blocks on the network.
	Flush()
	// Connected reports whether the connection is up and its subscriptions
	// are made: publishes are accepted only then, so none reaches a new
	// socket before its CONNECT and SUBSCRIBE.
	Connected() bool
}

// MessageHandler receives a message of connection conn, with its MQTT 5
// properties. For inbound messages it runs on the connection's single
// reading goroutine, one message at a time: it must not block (decode, do a
// non-blocking hand-off, return). The message is valid only until the
// handler returns (QoS 0 messages are parsed in place from the read buffer):
// copy what must be kept.
type MessageHandler func(conn int, m *Message)

// Options configures a Pool. Zero values take the documented defaults.
type Options struct {
	// Broker is the broker URL: tcp://host:port, or ssl://, tls:// or mqtts://
	// for TLS. Required.
	Broker string
	// ClientIDPrefix: connection i uses client id "{prefix}-{i}". Must be unique
	// per process across the broker. Required.
	ClientIDPrefix string
	// Connections is the number of connections. Default 1.
	Connections int
	// QoS for publishes and subscriptions, 0..2. Default 0.
	QoS byte
	// Username and Password for the broker, optional.
	Username, Password string
	// TLS is used for TLS broker URLs; nil means the system roots.
	TLS *tls.Config
	// Subscriptions returns the topic filters connection i subscribes to on
	// every (re)connect. Nil means none.
	Subscriptions func(i int) []string
	// ProtocolVersion is 4 (MQTT 3.1.1, paho.mqtt.golang) or 5 (MQTT 5,
	// paho.golang). Default 4.
	ProtocolVersion byte
	// OnMessage receives inbound messages with their MQTT 5 properties.
	// Required when Subscriptions is set.
	OnMessage MessageHandler
	// Plain uses paho as it comes: its own connection (no read buffer, no
	// write coalescing), Publish for every message, its router for every
	// inbound message. It exists to measure what the fast paths save.
	Plain bool
	// OnState is called when connection i goes up (connected and subscribed)
	// or down. Optional; must not block.
	OnState func(i int, up bool)
	// OnUnsent receives every PUBLISH that connection i accepted (Publish or
	// Queue returned nil) but discarded unwritten: the socket failed before
	// its bytes reached it, or Close could not write it. Optional; must not
	// block. Not called with Plain (paho drops such messages silently).
	// The message has its MQTT 5 properties.
	OnUnsent MessageHandler
	// SuspectAfter: a connection that wrote and has read nothing for longer
	// than this is suspect (Pool.Suspect), e.g. a half-open link that
	// keepalive has not caught yet. Default KeepAlive.
	SuspectAfter time.Duration

	// KeepAlive interval. Default 30s.
	KeepAlive time.Duration
	// ConnectTimeout bounds one connection attempt and Dial's wait for all
	// connections. Default 10s.
	ConnectTimeout time.Duration
	// SubscribeTimeout bounds the wait for one SUBACK; a subscription not
	// acknowledged in time is made again on the same session. Default
	// ConnectTimeout.
	SubscribeTimeout time.Duration
	// WriteTimeout bounds one socket write. Default 5s.
	WriteTimeout time.Duration
	// MaxReconnectInterval caps the reconnect backoff. Default 2s.
	MaxReconnectInterval time.Duration
	// Linger is how long the flusher waits after the first buffered frame for
	// more before writing. Default 0 (write as soon as the flusher runs).
	Linger time.Duration
	// ReadBufferBytes is the size of the read buffer. Default 64 KiB.
	ReadBufferBytes int
	// MaxPendingBytes bounds the write buffer of one connection, so a stalled
	// broker cannot grow memory without limit. Default 1 MiB (about 15,000
	// requests).
	MaxPendingBytes int
	// Logger for connection events. Default slog.Default().
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	if o.ProtocolVersion == 0 {
		o.ProtocolVersion = 4
	}
	if o.Connections <= 0 {
		o.Connections = 1
	}
	if o.KeepAlive <= 0 {
		o.KeepAlive = 30 * time.Second
	}
	if o.SuspectAfter <= 0 {
		o.SuspectAfter = o.KeepAlive
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 10 * time.Second
	}
	if o.SubscribeTimeout <= 0 {
		o.SubscribeTimeout = o.ConnectTimeout
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 5 * time.Second
	}
	if o.MaxReconnectInterval <= 0 {
		o.MaxReconnectInterval = 2 * time.Second
	}
	if o.ReadBufferBytes <= 0 {
		o.ReadBufferBytes = sockio.DefaultReadBufferBytes
	}
	if o.MaxPendingBytes <= 0 {
		o.MaxPendingBytes = sockio.DefaultMaxPendingBytes
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// waitUntil polls cond every 10 ms until it holds, d passes or ctx ends;
// it reports whether cond held.
func waitUntil(ctx context.Context, d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// VersionName returns "3.1.1" or "5" for a protocol version.
func VersionName(v byte) string {
	if v == 5 {
		return "5"
	}
	return "3.1.1"
}
