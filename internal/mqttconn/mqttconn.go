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

import "errors"

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
	// ErrSubscriptionRefused: the broker refused a subscription (SUBACK
	// 0x80, or an MQTT 5 reason ≥ 0x80 such as 0x9E, shared subscriptions
	// not supported), typically an ACL or a topic it does not accept;
	// retrying cannot cure it. The error names the filter and what
	// Options.TopicHint says of it.
	ErrSubscriptionRefused = errors.New("subscription refused by broker")
)

// Conn is one MQTT connection as the engines use it. At QoS 0 its publishes
// never block on the network: they fail fast with ErrNotConnected or
// ErrBackpressure. At QoS 1 and 2 they hand the message to the client
// library at once.
type Conn interface {
	// QueueMessage queues m, with its MQTT 5 properties (ErrNeedsV5 on a
	// 3.1.1 connection), to be written by the next Flush (or with a later
	// PublishMessage): use it for a burst of messages, then call Flush once.
	// m is copied before it returns, so the caller may reuse it.
	QueueMessage(m *Message) error
	// PublishMessage is QueueMessage, and wakes the connection's flusher,
	// which writes after Options.Linger.
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

// VersionName returns "3.1.1" or "5" for a protocol version.
func VersionName(v byte) string {
	if v == 5 {
		return "5"
	}
	return "3.1.1"
}
