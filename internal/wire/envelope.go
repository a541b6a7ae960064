package wire

// The envelope: loadgen-v2's own request/response format, a compact,
// versioned, fixed-layout binary encoding (big endian), so that encoding and
// decoding allocate nothing and cost a few nanoseconds.
//
// Request, version 1 (25 bytes + instance + reply topic + padding):
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

import (
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
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
	return appendRequest(dst, Key{r.RunID, r.ClientID, r.Seq}, r.Intended, r.Instance, r.ReplyTopic, padding)
}

// appendRequest is AppendRequest for the fields given apart, the instance and
// the reply topic as strings or bytes.
func appendRequest[S string | []byte](dst []byte, k Key, intended int64, instance, reply S, padding int) ([]byte, error) {
	if len(instance) > MaxInstanceLen {
		return dst, fmt.Errorf("instance id of %d bytes: %w (max %d)", len(instance), ErrTooLong, MaxInstanceLen)
	}
	if len(reply) == 0 || len(reply) > MaxTopicLen {
		return dst, fmt.Errorf("reply topic of %d bytes: %w (allowed 1..%d)", len(reply), ErrTooLong, MaxTopicLen)
	}
	dst = append(dst, Version, KindRequest)
	dst = binary.BigEndian.AppendUint32(dst, k.RunID)
	dst = binary.BigEndian.AppendUint32(dst, k.ClientID)
	dst = binary.BigEndian.AppendUint32(dst, k.Seq)
	dst = binary.BigEndian.AppendUint64(dst, uint64(intended))
	dst = append(dst, byte(len(instance)))
	dst = append(dst, instance...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(reply)))
	dst = append(dst, reply...)
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

// encodeEnvelope encodes request k as an envelope, padded to the
// requester's Size.
func (e *Encoder) encodeEnvelope(reply string, k Key, intended int64) error {
	pad := max(e.r.Size-RequestSize(len(e.r.Instance), len(reply), 0), 0)
	var err error
	e.payload, err = appendRequest(e.payload[:0], k, intended, e.r.Instance, reply, pad)
	e.msg.Payload = e.payload
	return err
}

// readEnvelope reads an envelope response: its key, the intended time it
// echoes and the worker's stamps.
func readEnvelope(payload []byte, rc *Received) bool {
	rc.Stamped = true
	return DecodeResponse(payload, &rc.Response) == nil
}

// requestKeyEnvelope reads the key of an envelope request.
func requestKeyEnvelope(payload []byte) (Key, bool) {
	var r Request
	if DecodeRequest(payload, &r) != nil {
		return Key{}, false
	}
	return Key{r.RunID, r.ClientID, r.Seq}, true
}

// packEnvelope keeps an envelope request as it came, when it is one and
// names a valid reply topic.
func packEnvelope(dst []byte, m *mqttconn.Message) ([]byte, bool) {
	var req Request
	if DecodeRequest(m.Payload, &req) != nil || !ValidReplyTopic(req.ReplyTopic) {
		return dst, false
	}
	return append(dst, m.Payload...), true
}

// answerEnvelope answers a packed envelope request on its reply topic with
// the worker's queue wait and processing time.
func answerEnvelope(m *mqttconn.Message, buf, packed []byte, wait, took time.Duration) []byte {
	var req Request
	_ = DecodeRequest(packed, &req) // checked by Pack
	resp := Response{RunID: req.RunID, ClientID: req.ClientID, Seq: req.Seq, Intended: req.Intended,
		QueueUS: Micros(wait), ProcessUS: Micros(took)}
	buf = AppendResponse(buf[:0], &resp)
	*m = mqttconn.Message{Topic: aliasString(req.ReplyTopic), Payload: buf}
	return buf
}
