// Package mqttpkt is the MQTT wire codec of the connections' fast paths: the
// variable byte integer, the fixed header (how long a packet is), and PUBLISH
// packets of MQTT 3.1.1 and MQTT 5, appended to a buffer and parsed in place.
// Its functions are pure, over []byte: no I/O, and no allocation once the
// destination buffer has grown.
//
// Package mqttconn writes QoS 0 PUBLISH packets with it straight into a
// connection's write buffer and parses inbound ones in the read buffer, so
// that the client libraries (paho.mqtt.golang, paho.golang) never see them;
// those libraries still encode and decode every other packet. The tests hold
// every function to paho's own packet code as the oracle.
//
// A PUBLISH (MQTT 3.1.1 §3.3, MQTT 5.0 §3.3) is: the first byte (type 3 in the
// high nibble; DUP, QoS and RETAIN in the low one), the remaining length (a
// variable byte integer: the length of the rest of the packet), the topic
// (2-byte length + UTF-8), a 2-byte packet identifier when QoS > 0, in MQTT 5
// the properties (a variable byte integer length, then the properties), and
// the payload (the rest).
package mqttpkt

import "errors"

// Errors of the decoders.
var (
	// ErrMalformed: the bytes are no packet the specification allows (or, for
	// a PUBLISH, none this codec accepts: see ParsePublish5).
	ErrMalformed = errors.New("malformed MQTT packet")
	// ErrShort: the bytes end before the variable byte integer (or the fixed
	// header) does; more bytes may complete it.
	ErrShort = errors.New("MQTT packet header incomplete")
)

// PUBLISH is the packet type of a PUBLISH packet (Type of its first byte).
const PUBLISH = 3

// Type returns the packet type of a packet's first byte.
func Type(first byte) byte { return first >> 4 }

// QoS returns the QoS of a PUBLISH packet's first byte (0..2; 3 is
// malformed).
func QoS(first byte) byte { return first >> 1 & 3 }

// MaxFieldBytes is the longest topic, Response Topic or Correlation Data a
// packet can carry: an MQTT string or binary field has a 16-bit length.
const MaxFieldBytes = 65535

// Message is the application message a PUBLISH carries.
type Message struct {
	Topic   string
	Payload []byte
	// ResponseTopic and CorrelationData are the MQTT 5 request/response
	// properties (MQTT 5.0 §4.10): empty on 3.1.1, or when absent.
	ResponseTopic   string
	CorrelationData []byte
	// ExpirySeconds is the Message Expiry Interval (MQTT 5): the broker drops
	// the message once it has waited this long for a subscriber. 0 = none.
	ExpirySeconds uint32
}

// HasProperties reports whether m has any of the MQTT 5 properties, which an
// MQTT 3.1.1 PUBLISH cannot carry.
func (m *Message) HasProperties() bool {
	return m.ResponseTopic != "" || m.CorrelationData != nil || m.ExpirySeconds > 0
}
