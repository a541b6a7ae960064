// Package wire owns the request/response envelope exchanged between loadgen-v2
// and worker-v2, and the topic names they use.
//
// The envelope is a compact, versioned, fixed-layout binary format (big endian),
// so that encoding and decoding allocate nothing and cost a few nanoseconds.
//
// Request, version 1 (28 bytes + instance + reply topic + padding):
//
//	offset size field
//	0      1    version (=1)
//	1      1    kind (=1, request)
//	2      4    run id: random per loadgen run; responses of other runs are "unknown"
//	6      4    virtual client id
//	10     4    per-client sequence number (the client's schedule fire index)
//	14     8    intended send time, nanoseconds on the loadgen's clock (opaque to the worker)
//	22     1    instance id length n (0..255)
//	23     n    instance id (the loadgen instance that sent the request)
//	23+n   2    reply topic length m (1..65535)
//	25+n   m    reply topic
//	25+n+m ...  padding (ignored; lets users set a payload size)
//
// Response, version 1 (30 bytes):
//
//	offset size field
//	0      1    version (=1)
//	1      1    kind (=2, response)
//	2      4    run id (echoed)
//	6      4    virtual client id (echoed)
//	10     4    sequence number (echoed)
//	14     8    intended send time (echoed)
//	22     4    queue wait in the worker, microseconds (saturating)
//	26     4    processing time in the worker, microseconds (saturating)
//
// The two durations are measured on the worker's clock only, so the loadgen can
// split a round trip into network+broker, queue wait and processing without
// comparing clocks across hosts.
//
// A decoder never panics: any payload that is too short, has an unknown version
// or kind, or whose lengths point past its end returns an error wrapping
// ErrMalformed, and the caller counts and drops it.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// Version is the envelope version written by this package.
const Version = 1

// Kinds of envelope.
const (
	KindRequest  = 1
	KindResponse = 2
)

// Sizes of the fixed parts, in bytes.
const (
	requestFixed = 25 // without instance, reply topic and padding
	ResponseSize = 30
	// MaxInstanceLen is the longest instance id a request can carry, in bytes.
	MaxInstanceLen = 255
	// MaxTopicLen is the longest reply topic a request can carry, in bytes.
	MaxTopicLen = 65535
)

// Sentinel errors.
var (
	// ErrMalformed is wrapped by every decode error.
	ErrMalformed = errors.New("malformed payload")
	// ErrTooLong is returned by encoders when a field does not fit the format.
	ErrTooLong = errors.New("field too long")
)

// Request is a decoded request. Instance and ReplyTopic alias the decoded
// payload (no copy); copy them if the payload is reused.
type Request struct {
	RunID      uint32
	ClientID   uint32
	Seq        uint32
	Intended   int64 // nanoseconds on the loadgen's clock
	Instance   []byte
	ReplyTopic []byte
}

// Response is a decoded response.
type Response struct {
	RunID     uint32
	ClientID  uint32
	Seq       uint32
	Intended  int64  // echoed from the request, nanoseconds on the loadgen's clock
	QueueUS   uint32 // time the request waited in the worker's queue, microseconds
	ProcessUS uint32 // processing time in the worker, microseconds
}

// RequestSize returns the encoded size of a request with the given instance
// and reply topic lengths and padding, in bytes.
func RequestSize(instanceLen, topicLen, padding int) int {
	return requestFixed + instanceLen + topicLen + padding
}

// AppendRequest appends the encoding of r followed by padding zero bytes to
// dst and returns the extended slice. It allocates only if dst lacks capacity.
func AppendRequest(dst []byte, r *Request, padding int) ([]byte, error) {
	if len(r.Instance) > MaxInstanceLen {
		return dst, fmt.Errorf("instance id of %d bytes: %w (max %d)", len(r.Instance), ErrTooLong, MaxInstanceLen)
	}
	if len(r.ReplyTopic) == 0 || len(r.ReplyTopic) > MaxTopicLen {
		return dst, fmt.Errorf("reply topic of %d bytes: %w (allowed 1..%d)", len(r.ReplyTopic), ErrTooLong, MaxTopicLen)
	}
	dst = append(dst, Version, KindRequest)
	dst = binary.BigEndian.AppendUint32(dst, r.RunID)
	dst = binary.BigEndian.AppendUint32(dst, r.ClientID)
	dst = binary.BigEndian.AppendUint32(dst, r.Seq)
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.Intended))
	dst = append(dst, byte(len(r.Instance)))
	dst = append(dst, r.Instance...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(r.ReplyTopic)))
	dst = append(dst, r.ReplyTopic...)
	if padding > 0 {
		n := len(dst)
		dst = slices.Grow(dst, padding)[:n+padding]
		clear(dst[n:])
	}
	return dst, nil
}

// DecodeRequest decodes a request. It never panics and does not allocate;
// the returned slices alias b.
func DecodeRequest(b []byte, r *Request) error {
	if len(b) < requestFixed {
		return fmt.Errorf("request of %d bytes, need at least %d: %w", len(b), requestFixed, ErrMalformed)
	}
	if b[0] != Version {
		return fmt.Errorf("unknown version %d: %w", b[0], ErrMalformed)
	}
	if b[1] != KindRequest {
		return fmt.Errorf("kind %d is not a request: %w", b[1], ErrMalformed)
	}
	r.RunID = binary.BigEndian.Uint32(b[2:])
	r.ClientID = binary.BigEndian.Uint32(b[6:])
	r.Seq = binary.BigEndian.Uint32(b[10:])
	r.Intended = int64(binary.BigEndian.Uint64(b[14:]))
	n := int(b[22])
	if len(b) < requestFixed+n {
		return fmt.Errorf("instance id of %d bytes past the end: %w", n, ErrMalformed)
	}
	r.Instance = b[23 : 23+n]
	m := int(binary.BigEndian.Uint16(b[23+n:]))
	if m == 0 {
		return fmt.Errorf("empty reply topic: %w", ErrMalformed)
	}
	if len(b) < requestFixed+n+m {
		return fmt.Errorf("reply topic of %d bytes past the end: %w", m, ErrMalformed)
	}
	r.ReplyTopic = b[25+n : 25+n+m]
	return nil
}

// AppendResponse appends the encoding of r to dst.
func AppendResponse(dst []byte, r *Response) []byte {
	dst = append(dst, Version, KindResponse)
	dst = binary.BigEndian.AppendUint32(dst, r.RunID)
	dst = binary.BigEndian.AppendUint32(dst, r.ClientID)
	dst = binary.BigEndian.AppendUint32(dst, r.Seq)
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.Intended))
	dst = binary.BigEndian.AppendUint32(dst, r.QueueUS)
	dst = binary.BigEndian.AppendUint32(dst, r.ProcessUS)
	return dst
}

// DecodeResponse decodes a response. It never panics and does not allocate.
// Trailing bytes are malformed: a response has a fixed size.
func DecodeResponse(b []byte, r *Response) error {
	if len(b) != ResponseSize {
		return fmt.Errorf("response of %d bytes, want %d: %w", len(b), ResponseSize, ErrMalformed)
	}
	if b[0] != Version {
		return fmt.Errorf("unknown version %d: %w", b[0], ErrMalformed)
	}
	if b[1] != KindResponse {
		return fmt.Errorf("kind %d is not a response: %w", b[1], ErrMalformed)
	}
	r.RunID = binary.BigEndian.Uint32(b[2:])
	r.ClientID = binary.BigEndian.Uint32(b[6:])
	r.Seq = binary.BigEndian.Uint32(b[10:])
	r.Intended = int64(binary.BigEndian.Uint64(b[14:]))
	r.QueueUS = binary.BigEndian.Uint32(b[22:])
	r.ProcessUS = binary.BigEndian.Uint32(b[26:])
	return nil
}

// Micros converts d to whole microseconds, saturating at the uint32 range
// (about 71 minutes) and clamping negatives to 0.
func Micros(d time.Duration) uint32 {
	us := d.Microseconds()
	switch {
	case us < 0:
		return 0
	case us > int64(^uint32(0)):
		return ^uint32(0)
	}
	return uint32(us)
}

// Shard returns the request shard of a virtual client: clientID mod shards.
func Shard(clientID uint32, shards int) int { return int(clientID % uint32(shards)) }

// AppendRequestTopic appends "req/{shard}" to dst.
func AppendRequestTopic(dst []byte, shard int) []byte {
	dst = append(dst, "req/"...)
	return strconv.AppendInt(dst, int64(shard), 10)
}

// RequestTopic returns "req/{shard}".
func RequestTopic(shard int) string { return string(AppendRequestTopic(nil, shard)) }

// ResponseTopic returns the topic a loadgen instance receives responses on for
// one shard: "resp/{instance}/{shard}".
func ResponseTopic(instance string, shard int) string {
	return "resp/" + instance + "/" + strconv.Itoa(shard)
}

// ResponseFilter returns the subscription filter that covers every response
// topic of an instance: "resp/{instance}/+".
func ResponseFilter(instance string) string { return "resp/" + instance + "/+" }

// SharedFilter returns "$share/{group}/{filter}", or filter itself when group
// is empty (plain subscription, for brokers without shared subscriptions).
func SharedFilter(group, filter string) string {
	if group == "" {
		return filter
	}
	return "$share/" + group + "/" + filter
}

// ValidTopicName reports whether s can be used as an MQTT topic name segment
// (instance ids go into topic names): 1..MaxInstanceLen bytes of valid UTF-8,
// free of the wildcards '+' and '#', the separator '/', and of control
// characters (U+0000..U+001F, U+007F..U+009F), which MQTT forbids or
// discourages in topic names and brokers answer by closing the connection.
func ValidTopicName(s string) bool {
	if s == "" || len(s) > MaxInstanceLen || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		switch {
		case r == '+', r == '#', r == '/', r < 0x20, r >= 0x7f && r <= 0x9f:
			return false
		}
	}
	return true
}

// ValidReplyTopic reports whether t can be published to: a non-empty MQTT
// topic name without the wildcards '+' and '#', in well-formed UTF-8 without
// U+0000, control characters (U+0001..U+001F, U+007F..U+009F) or
// non-characters (U+FDD0..U+FDEF, U+xFFFE, U+xFFFF).
//
// A PUBLISH to any other name is a protocol violation for which the broker
// (Mosquitto in particular) closes the connection, losing every reply
// buffered with it; so a request naming such a reply topic is counted as
// malformed and never answered. The check allocates nothing.
func ValidReplyTopic(t []byte) bool {
	if len(t) == 0 || len(t) > MaxTopicLen {
		return false
	}
	for i := 0; i < len(t); {
		c := t[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f || c == '+' || c == '#' {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(t[i:])
		if r == utf8.RuneError && n <= 1 {
			return false
		}
		if r <= 0x9f || (r >= 0xfdd0 && r <= 0xfdef) || r&0xfffe == 0xfffe {
			return false
		}
		i += n
	}
	return true
}
