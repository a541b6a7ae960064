package mqttconn

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// MQTT 5 PUBLISH frames: written and parsed here without the client library,
// like the 3.1.1 ones (appendPublishFrame, bufConn.read).
//
// A QoS 0 PUBLISH (MQTT 5.0 §3.3) is: fixed header 0x30, remaining length
// (variable byte integer), topic (2-byte length + UTF-8), property length
// (variable byte integer), properties, payload. The properties this package
// writes are Message Expiry Interval (0x02, four bytes), Response Topic (0x08,
// UTF-8 string) and Correlation Data (0x09, binary data); on reading, every
// property a PUBLISH may carry is skipped by its type, and Response Topic and
// Correlation Data are returned.

// MQTT 5 property identifiers used by request/response.
const (
	propMessageExpiry   = 0x02
	propResponseTopic   = 0x08
	propCorrelationData = 0x09
	propTopicAlias      = 0x23
)

// propKind is how a property's value is encoded (MQTT 5.0 §2.2.2.2).
type propKind byte

const (
	kindNone propKind = iota // not a valid property identifier
	kindByte
	kindTwo
	kindFour
	kindVarInt
	kindString // 2-byte length + UTF-8
	kindBinary // 2-byte length + bytes
	kindPair   // two strings (User Property)
)

// propKinds maps every property identifier of MQTT 5.0 to its encoding.
var propKinds = [256]propKind{
	0x01: kindByte, 0x02: kindFour, 0x03: kindString, 0x08: kindString, 0x09: kindBinary,
	0x0B: kindVarInt, 0x11: kindFour, 0x12: kindString, 0x13: kindTwo, 0x15: kindString,
	0x16: kindBinary, 0x17: kindByte, 0x18: kindFour, 0x19: kindByte, 0x1A: kindString,
	0x1C: kindString, 0x1F: kindString, 0x21: kindTwo, 0x22: kindTwo, 0x23: kindTwo,
	0x24: kindByte, 0x25: kindByte, 0x26: kindPair, 0x27: kindFour, 0x28: kindByte,
	0x29: kindByte, 0x2A: kindByte,
}

// MaxPropertyBytes is the longest Response Topic or Correlation Data this
// package writes (an MQTT string or binary field holds at most 65,535 bytes).
const MaxPropertyBytes = 65535

// appendVarInt appends v as an MQTT variable byte integer (v < 2^28).
func appendVarInt(dst []byte, v int) []byte {
	for {
		d := byte(v % 128)
		v /= 128
		if v > 0 {
			d |= 0x80
		}
		dst = append(dst, d)
		if v == 0 {
			return dst
		}
	}
}

// varIntLen returns the encoded length of v.
func varIntLen(v int) int {
	n := 1
	for v >= 128 {
		v /= 128
		n++
	}
	return n
}

// props5Len returns the length of the properties of m (without their
// length prefix).
func props5Len(m *Message) int {
	n := 0
	if m.ExpirySeconds > 0 {
		n += 5
	}
	if m.ResponseTopic != "" {
		n += 3 + len(m.ResponseTopic)
	}
	if m.CorrelationData != nil {
		n += 3 + len(m.CorrelationData)
	}
	return n
}

// appendPublishFrame5 appends an MQTT 5 PUBLISH packet, QoS 0, no retain,
// carrying m's topic, properties and payload. The caller has checked the
// lengths (checkMessage).
func appendPublishFrame5(dst []byte, m *Message) []byte {
	pl := props5Len(m)
	rl := 2 + len(m.Topic) + varIntLen(pl) + pl + len(m.Payload)
	dst = append(dst, 0x30)
	dst = appendVarInt(dst, rl)
	dst = append(dst, byte(len(m.Topic)>>8), byte(len(m.Topic)))
	dst = append(dst, m.Topic...)
	dst = appendVarInt(dst, pl)
	if m.ExpirySeconds > 0 {
		dst = append(dst, propMessageExpiry)
		dst = binary.BigEndian.AppendUint32(dst, m.ExpirySeconds)
	}
	if m.ResponseTopic != "" {
		dst = append(dst, propResponseTopic, byte(len(m.ResponseTopic)>>8), byte(len(m.ResponseTopic)))
		dst = append(dst, m.ResponseTopic...)
	}
	if m.CorrelationData != nil {
		dst = append(dst, propCorrelationData, byte(len(m.CorrelationData)>>8), byte(len(m.CorrelationData)))
		dst = append(dst, m.CorrelationData...)
	}
	return append(dst, m.Payload...)
}

// checkMessage reports whether m can be written as a PUBLISH of the given
// protocol version: the MQTT 5 properties need version 5, and each string or
// binary field holds at most 65,535 bytes.
func checkMessage(m *Message, v5 bool) error {
	if !v5 && (m.ResponseTopic != "" || m.CorrelationData != nil || m.ExpirySeconds > 0) {
		return ErrNeedsV5
	}
	if len(m.Topic) > MaxPropertyBytes || len(m.ResponseTopic) > MaxPropertyBytes || len(m.CorrelationData) > MaxPropertyBytes {
		return fmt.Errorf("%w: a topic, response topic or correlation data longer than %d bytes", errMalformedPacket, MaxPropertyBytes)
	}
	return nil
}

// readVarInt decodes an MQTT variable byte integer at the start of b and
// returns it with its length; ok is false when b ends first or the encoding
// exceeds four bytes.
func readVarInt(b []byte) (v, n int, ok bool) {
	mult := 1
	for i := 0; i < 4 && i < len(b); i++ {
		v += int(b[i]&0x7f) * mult
		if b[i]&0x80 == 0 {
			return v, i + 1, true
		}
		mult *= 128
	}
	return 0, 0, false
}

// parsePublish5 parses the body (after the fixed header) of an MQTT 5
// PUBLISH into m (withID: QoS > 0, a packet identifier follows the topic): Topic, ResponseTopic and CorrelationData alias
// body (ResponseTopic and Topic through unsafe strings made by the caller's
// conversion function str). It returns errMalformedPacket for any encoding
// the specification does not allow, including a topic alias (this client
// never permits one) and an invalid UTF-8 Response Topic.
func parsePublish5(body []byte, withID bool, m *Message, str func([]byte) string) error {
	if len(body) < 2 {
		return errMalformedPacket
	}
	tl := int(body[0])<<8 | int(body[1])
	off := 2 + tl
	if off > len(body) {
		return errMalformedPacket
	}
	topic := body[2:off]
	if withID {
		off += 2
		if off > len(body) {
			return errMalformedPacket
		}
	}
	pl, n, ok := readVarInt(body[off:])
	if !ok || off+n+pl > len(body) {
		return errMalformedPacket
	}
	props := body[off+n : off+n+pl]
	*m = Message{Topic: str(topic), Payload: body[off+n+pl:]}
	for len(props) > 0 {
		id := props[0]
		props = props[1:]
		var size int
		switch propKinds[id] {
		case kindByte:
			size = 1
		case kindTwo:
			size = 2
		case kindFour:
			size = 4
		case kindVarInt:
			_, vn, ok := readVarInt(props)
			if !ok {
				return errMalformedPacket
			}
			size = vn
		case kindString, kindBinary:
			if len(props) < 2 {
				return errMalformedPacket
			}
			size = 2 + (int(props[0])<<8 | int(props[1]))
		case kindPair:
			if len(props) < 2 {
				return errMalformedPacket
			}
			k := 2 + (int(props[0])<<8 | int(props[1]))
			if len(props) < k+2 {
				return errMalformedPacket
			}
			size = k + 2 + (int(props[k])<<8 | int(props[k+1]))
		default:
			return errMalformedPacket
		}
		if size > len(props) {
			return errMalformedPacket
		}
		v := props[:size]
		props = props[size:]
		switch id {
		case propResponseTopic:
			if !utf8.Valid(v[2:]) {
				return errMalformedPacket
			}
			m.ResponseTopic = str(v[2:])
		case propCorrelationData:
			m.CorrelationData = v[2:]
		case propMessageExpiry:
			m.ExpirySeconds = binary.BigEndian.Uint32(v)
		case propTopicAlias:
			return errMalformedPacket
		}
	}
	if tl == 0 {
		return errMalformedPacket // an empty topic needs a topic alias
	}
	return nil
}
