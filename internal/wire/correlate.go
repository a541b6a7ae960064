package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
)

// Correlation of requests to any service (not only worker-v2):
//
//   - MQTT 5: the request's Correlation Data property carries Key in
//     CorrelationSize bytes (run id, client id, sequence number, big endian);
//     the responder echoes it (MQTT 5.0 §4.10).
//   - JSON: the request payload, filled from a Template, carries Key as a
//     text token (AppendID: "{run as 8 hex digits}-{client}-{seq}") in a
//     field that the responder copies into its response; the loadgen finds
//     it with JSONField.
//
// Neither carries the intended send time: the loadgen recomputes it from the
// schedule (client, seq), so a responder cannot make a request look faster.

// Key identifies one request of one loadgen run.
type Key struct {
	RunID, ClientID, Seq uint32
}

// CorrelationSize is the length of a Key as MQTT 5 Correlation Data, bytes.
const CorrelationSize = 12

// AppendCorrelation appends k as Correlation Data.
func AppendCorrelation(dst []byte, k Key) []byte {
	dst = binary.BigEndian.AppendUint32(dst, k.RunID)
	dst = binary.BigEndian.AppendUint32(dst, k.ClientID)
	return binary.BigEndian.AppendUint32(dst, k.Seq)
}

// DecodeCorrelation decodes Correlation Data made by AppendCorrelation.
func DecodeCorrelation(b []byte) (Key, error) {
	if len(b) != CorrelationSize {
		return Key{}, fmt.Errorf("%w: correlation data of %d bytes, want %d", ErrMalformed, len(b), CorrelationSize)
	}
	return Key{binary.BigEndian.Uint32(b), binary.BigEndian.Uint32(b[4:]), binary.BigEndian.Uint32(b[8:])}, nil
}

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

// Correlation is how a response is tied to its request.
type Correlation int

const (
	// Envelope: loadgen-v2's binary envelope (Request / Response), with the
	// worker's queue and processing times.
	Envelope Correlation = iota
	// Properties: MQTT 5 Response Topic + Correlation Data, for any MQTT 5
	// requester or responder.
	Properties
	// JSON: a member of the JSON payload carries the request's id.
	JSON
)

func (c Correlation) String() string {
	switch c {
	case Properties:
		return "properties"
	case JSON:
		return "json"
	}
	return "envelope"
}

// ParseCorrelation parses a CORRELATE value: envelope, properties or
// json:FIELD; empty is envelope on MQTT 3.1.1 (version 4) and properties on
// MQTT 5. It returns the JSON member name for json:FIELD. The errors name the
// value and what is allowed (the caller adds the variable).
// ErrPropertiesNeedV5: correlation by MQTT 5 properties on MQTT 3.1.1.
var ErrPropertiesNeedV5 = errors.New("properties needs MQTT 5 (Correlation Data is an MQTT 5 property)")

func ParseCorrelation(s string, version byte) (Correlation, string, error) {
	switch {
	case s == "" && version == 5, s == "properties":
		if version != 5 {
			return Properties, "", ErrPropertiesNeedV5
		}
		return Properties, "", nil
	case s == "" || s == "envelope":
		return Envelope, "", nil
	case len(s) > 5 && s[:5] == "json:":
		f := s[5:]
		for i := 0; i < len(f); i++ {
			if f[i] == '"' || f[i] == '\\' {
				return JSON, "", fmt.Errorf("%q must name a JSON member: json:FIELD, FIELD without quotes or backslashes", s)
			}
		}
		return JSON, f, nil
	case s == "json:":
		return JSON, "", fmt.Errorf("%q must name a JSON member: json:FIELD", s)
	}
	return Envelope, "", fmt.Errorf("%q must be envelope, properties or json:FIELD", s)
}
