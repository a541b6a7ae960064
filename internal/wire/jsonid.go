package wire

import (
	"fmt"
	"strconv"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
)

// JSON: the request payload, filled from a Template (Encode), carries the
// Key as a text token ({{id}}, AppendID: "{run as 8 hex digits}-{client}-{seq}")
// in a member that the responder copies into its response; the requester
// finds it there with JSONField. The reply topic is the MQTT 5 Response Topic, or on MQTT
// 3.1.1 a member of the request ({{reply}}).

// MaxIDLen is the longest token AppendID writes, bytes.
const MaxIDLen = 8 + 1 + 10 + 1 + 10

// AppendID appends k as a text token: 8 lower-case hex digits of the run id,
// '-', the client id and '-', the sequence number in decimal. It needs no
// escaping in JSON, XML or a URL.
func AppendID(dst []byte, k Key) []byte {
	const hex = "0123456789abcdef"
	for s := 28; s >= 0; s -= 4 {
		dst = append(dst, hex[k.RunID>>uint(s)&0xf])
	}
	dst = append(dst, '-')
	dst = strconv.AppendUint(dst, uint64(k.ClientID), 10)
	dst = append(dst, '-')
	return strconv.AppendUint(dst, uint64(k.Seq), 10)
}

// ParseID parses a token made by AppendID.
func ParseID(b []byte) (Key, error) {
	bad := func() (Key, error) {
		return Key{}, fmt.Errorf("%w: correlation id %q", ErrMalformed, truncate(b, 40))
	}
	if len(b) < 12 || len(b) > MaxIDLen || b[8] != '-' {
		return bad()
	}
	var k Key
	for _, c := range b[:8] {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		default:
			return bad()
		}
		k.RunID = k.RunID<<4 | uint32(d)
	}
	rest := b[9:]
	var ok bool
	if k.ClientID, rest, ok = parseUint32(rest); !ok || len(rest) == 0 || rest[0] != '-' {
		return bad()
	}
	if k.Seq, rest, ok = parseUint32(rest[1:]); !ok || len(rest) != 0 {
		return bad()
	}
	return k, nil
}

// parseUint32 parses the leading decimal digits of b (at least one, no sign,
// no leading zero but for "0") and returns the rest.
func parseUint32(b []byte) (uint32, []byte, bool) {
	var v uint64
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		v = v*10 + uint64(b[i]-'0')
		if v > 1<<32-1 {
			return 0, nil, false
		}
	}
	if i == 0 || i > 1 && b[0] == '0' {
		return 0, nil, false
	}
	return uint32(v), b[i:], true
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// readJSON reads the key of a response (or of a request) from its member
// field.
func readJSON(payload []byte, field string, rc *Received) bool {
	v, ok := JSONField(payload, field)
	if !ok {
		return false // not JSON, or no such member
	}
	k, err := ParseID(v)
	*rc = Received{Response: Response{RunID: k.RunID, ClientID: k.ClientID, Seq: k.Seq}}
	return err == nil
}

// packJSON keeps a JSON request's id (member idField) and reply topic (the
// Response Topic, else member replyToField) with its Correlation Data.
func packJSON(dst []byte, m *mqttconn.Message, idField, replyToField string) ([]byte, bool) {
	id, ok := JSONField(m.Payload, idField)
	if !ok || len(id) > 0xffff {
		return dst, false
	}
	rt := aliasBytes(m.ResponseTopic)
	if len(rt) == 0 {
		if rt, ok = JSONField(m.Payload, replyToField); !ok {
			return dst, false
		}
	}
	if !ValidReplyTopic(rt) {
		return dst, false
	}
	return appendPacked(dst, rt, m.CorrelationData, id, m.Payload), true
}
