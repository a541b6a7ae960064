package mqttconn

import (
	"crypto/tls"
	"log/slog"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/sockio"
)

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
	// write coalescing), its Publish for every message, its router for every
	// inbound message. It exists to measure what the fast paths save.
	Plain bool
	// OnState is called when connection i goes up (connected and subscribed)
	// or down. Optional; must not block.
	OnState func(i int, up bool)
	// OnUnsent receives every PUBLISH that connection i accepted
	// (QueueMessage or PublishMessage returned nil) but discarded unwritten:
	// the socket failed before its bytes reached it, or Close could not write
	// it. Optional; must not block. Not called with Plain (paho drops such
	// messages silently). The message has its MQTT 5 properties.
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
	// MaxReconnectInterval caps the waits between connection attempts (and
	// subscribe retries): the first attempt after a loss goes at once, the
	// next ones after 20 ms growing by half each time, jittered
	// (ReconnectDelay). Default 2s.
	MaxReconnectInterval time.Duration
	// Linger is how long the flusher waits after the first buffered frame for
	// more before writing. Default 0 (write as soon as the flusher runs).
	Linger time.Duration
	// ReadBufferBytes is the size of the read buffer. Default 64 KiB.
	ReadBufferBytes int
	// MaxInboundFrame is the largest inbound packet taken, in bytes: a
	// larger PUBLISH is skipped unread (acknowledged at QoS 1 and 2) and
	// reported to OnOversized, the connection stays up; a larger packet of
	// another type closes the connection. Default DefaultMaxInboundFrame
	// (2 MiB). Not applied with Plain (paho reads its own socket).
	MaxInboundFrame int
	// OnOversized is called for every inbound PUBLISH skipped for being
	// larger than MaxInboundFrame, on connection i's reading goroutine.
	// Optional; must not block.
	OnOversized func(i int, o Oversized)
	// MaxPendingBytes bounds the write buffer of one connection, so a stalled
	// broker cannot grow memory without limit. Default 1 MiB (about 15,000
	// requests).
	MaxPendingBytes int
	// ProbeShareGroup, when set, makes Dial check that the broker delivers
	// shared subscriptions: connection 0 also subscribes to
	// $share/{ProbeShareGroup}/{ProbeTopicPrefix}{random}, and once every
	// connection is up Dial publishes to that topic until it arrives, or
	// fails with ErrSharedNotDelivered after ProbeTimeout.
	ProbeShareGroup string
	// ProbeTimeout bounds the probe. Default 3s.
	ProbeTimeout time.Duration
	// TopicHint, when set, says where a topic filter came from (the
	// setting that made it, and what to change), for the error of a
	// subscription the broker refused (ErrSubscriptionRefused). Optional;
	// "" adds nothing.
	TopicHint func(filter string) string
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
	if o.MaxInboundFrame <= 0 {
		o.MaxInboundFrame = DefaultMaxInboundFrame
	}
	if o.MaxPendingBytes <= 0 {
		o.MaxPendingBytes = sockio.DefaultMaxPendingBytes
	}
	if o.ProbeTimeout <= 0 {
		o.ProbeTimeout = 3 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}
