package mqttpkt

import "unsafe"

// AppendPublish appends an MQTT 3.1.1 PUBLISH packet at QoS 0, without DUP
// or RETAIN, carrying m's Topic and Payload: first byte 0x30, remaining
// length, topic, payload. m's MQTT 5 properties are not written (an MQTT
// 3.1.1 packet cannot carry them: check HasProperties first), and the topic
// must be at most MaxFieldBytes long.
func AppendPublish(dst []byte, m *Message) []byte {
	dst = append(dst, PUBLISH<<4)
	dst = AppendVarInt(dst, 2+len(m.Topic)+len(m.Payload))
	dst = append(dst, byte(len(m.Topic)>>8), byte(len(m.Topic)))
	dst = append(dst, m.Topic...)
	return append(dst, m.Payload...)
}

// ParsePublish parses the body of an MQTT 3.1.1 PUBLISH packet (the
// remaining length's bytes after the fixed header) whose first byte is first,
// into m: Topic and Payload, the packet identifier skipped when the QoS is
// above 0. Both alias body (Topic through an unsafe string): they are valid
// while body is unchanged. It returns ErrMalformed when the topic or the
// packet identifier runs past the body. The topic's UTF-8 is not checked.
func ParsePublish(first byte, body []byte, m *Message) error {
	if len(body) < 2 {
		return ErrMalformed
	}
	tl := int(body[0])<<8 | int(body[1])
	off := 2 + tl
	if QoS(first) > 0 {
		off += 2
	}
	if off > len(body) {
		return ErrMalformed
	}
	*m = Message{Topic: aliasString(body[2 : 2+tl]), Payload: body[off:]}
	return nil
}

// aliasString returns b as a string without copying: valid while b is
// unchanged.
func aliasString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
