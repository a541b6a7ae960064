package mqttpkt

import (
	"encoding/binary"
	"unicode/utf8"
)

// MQTT 5 PUBLISH packets (MQTT 5.0 §3.3) carry properties between the topic
// (and packet identifier) and the payload: a variable byte integer length,
// then identifier-value pairs. AppendPublish5 writes the three of
// request/response: Message Expiry Interval (0x02, four bytes), Response
// Topic (0x08, UTF-8 string) and Correlation Data (0x09, binary data).
// ParsePublish5 skips every other property a PUBLISH may carry by the
// encoding of its identifier.

// MQTT 5 property identifiers this codec writes or refuses.
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

// propsLen returns the length of the properties AppendPublish5 writes for m
// (without their length prefix).
func propsLen(m *Message) int {
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

// AppendPublish5 appends an MQTT 5 PUBLISH packet at QoS 0, without DUP or
// RETAIN, carrying m's topic, properties and payload. Message Expiry is
// written when ExpirySeconds > 0, Response Topic when it is not empty,
// Correlation Data when it is not nil (an empty one too). Topic,
// ResponseTopic and CorrelationData must each be at most MaxFieldBytes long.
func AppendPublish5(dst []byte, m *Message) []byte {
	pl := propsLen(m)
	rl := 2 + len(m.Topic) + VarIntLen(pl) + pl + len(m.Payload)
	dst = append(dst, PUBLISH<<4)
	dst = AppendVarInt(dst, rl)
	dst = append(dst, byte(len(m.Topic)>>8), byte(len(m.Topic)))
	dst = append(dst, m.Topic...)
	dst = AppendVarInt(dst, pl)
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

// ParsePublish5 parses the body of an MQTT 5 PUBLISH packet (the remaining
// length's bytes after the fixed header) whose first byte is first, into m:
// Topic, Payload, ResponseTopic, CorrelationData and ExpirySeconds, the
// packet identifier skipped when the QoS is above 0. Every field aliases
// body (the strings through unsafe strings): valid while body is unchanged.
// It returns ErrMalformed for any encoding the specification does not allow,
// and also for a Topic Alias (a client that never permits one must not get
// one), an empty topic (which only a topic alias could fill) and an invalid
// UTF-8 Response Topic. The UTF-8 of the topic and of the properties it
// skips is not checked.
func ParsePublish5(first byte, body []byte, m *Message) error {
	if len(body) < 2 {
		return ErrMalformed
	}
	tl := int(body[0])<<8 | int(body[1])
	off := 2 + tl
	if off > len(body) {
		return ErrMalformed
	}
	topic := body[2:off]
	if QoS(first) > 0 {
		off += 2
		if off > len(body) {
			return ErrMalformed
		}
	}
	pl, n, err := VarInt(body[off:])
	if err != nil || off+n+pl > len(body) {
		return ErrMalformed
	}
	props := body[off+n : off+n+pl]
	*m = Message{Topic: aliasString(topic), Payload: body[off+n+pl:]}
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
			_, vn, err := VarInt(props)
			if err != nil {
				return ErrMalformed
			}
			size = vn
		case kindString, kindBinary:
			if len(props) < 2 {
				return ErrMalformed
			}
			size = 2 + (int(props[0])<<8 | int(props[1]))
		case kindPair:
			if len(props) < 2 {
				return ErrMalformed
			}
			k := 2 + (int(props[0])<<8 | int(props[1]))
			if len(props) < k+2 {
				return ErrMalformed
			}
			size = k + 2 + (int(props[k])<<8 | int(props[k+1]))
		default:
			return ErrMalformed
		}
		if size > len(props) {
			return ErrMalformed
		}
		v := props[:size]
		props = props[size:]
		switch id {
		case propResponseTopic:
			if !utf8.Valid(v[2:]) {
				return ErrMalformed
			}
			m.ResponseTopic = aliasString(v[2:])
		case propCorrelationData:
			m.CorrelationData = v[2:]
		case propMessageExpiry:
			m.ExpirySeconds = binary.BigEndian.Uint32(v)
		case propTopicAlias:
			return ErrMalformed
		}
	}
	if tl == 0 {
		return ErrMalformed // an empty topic needs a topic alias
	}
	return nil
}
