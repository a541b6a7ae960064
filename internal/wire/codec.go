package wire

import (
	"encoding/binary"
	"time"
	"unsafe"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
)

// Requester writes the requests of one loadgen run and reads their keys back
// from the responses, in one correlation mode. It is set up once and
// read-only after, so any goroutine may use it; each encoding goroutine has
// its own Encoder.
type Requester struct {
	// Mode is how responses are tied to requests.
	Mode Correlation
	// Field (JSON) is the member that carries the request's id, in the
	// response (and in the request, as REQUEST_TEMPLATE places {{id}}).
	Field string
	// Template is the request payload (Properties, JSON); for Properties,
	// nil means Filler.
	Template *Template
	// Filler is the request payload of Properties without a Template.
	Filler []byte
	// Instance is the requester's instance id: the envelope's, and
	// {{instance}}.
	Instance string
	// Size is the least size of an envelope request, bytes (PAYLOAD_BYTES):
	// shorter ones are padded.
	Size int
	// V5 makes every request carry its reply topic as the MQTT 5 Response
	// Topic, and ExpirySeconds (> 0) as its Message Expiry Interval.
	V5            bool
	ExpirySeconds uint32
}

// Encoder encodes requests for one goroutine. The message Encode returns
// aliases the Encoder's buffers until its next Encode.
type Encoder struct {
	r       *Requester
	payload []byte
	corr    []byte
	fields  Fields
	msg     mqttconn.Message
}

// NewEncoder returns an encoder of r's requests.
func (r *Requester) NewEncoder() *Encoder {
	return &Encoder{r: r, payload: make([]byte, 0, 256), corr: make([]byte, 0, CorrelationSize), fields: Fields{Instance: r.Instance}}
}

// Encode builds request k to topic, answered on reply: intended is its
// intended send time on the requester's clock (ns; the envelope carries it),
// unixMS the same as Unix milliseconds ({{ts}}), shard its topic shard
// ({{shard}}). It fails only when a field does not fit the envelope
// (ErrTooLong).
func (e *Encoder) Encode(topic, reply string, shard int, k Key, intended, unixMS int64) (*mqttconn.Message, error) {
	r := e.r
	e.msg = mqttconn.Message{Topic: topic}
	if r.V5 {
		e.msg.ResponseTopic, e.msg.ExpirySeconds = reply, r.ExpirySeconds
	}
	switch r.Mode {
	case Envelope:
		return &e.msg, e.encodeEnvelope(reply, k, intended)
	case Properties:
		e.encodeProperties(k)
	}
	// Properties and JSON: the payload is the template filled (for JSON, it
	// places the {{id}}), or the filler.
	if r.Template == nil {
		e.msg.Payload = r.Filler
		return &e.msg, nil
	}
	e.fields.Key, e.fields.UnixMS, e.fields.Shard, e.fields.Reply = k, unixMS, shard, reply
	e.payload = r.Template.AppendTo(e.payload[:0], &e.fields)
	e.msg.Payload = e.payload
	return &e.msg, nil
}

// Received is a response as the requester reads it: the request it answers
// (Key) and, when Stamped (Envelope), the intended send time it echoes and
// the worker's stamps; the other modes carry neither (zero).
type Received struct {
	Response
	Stamped bool
}

// Key returns the key of the request rc answers.
func (rc *Received) Key() Key { return Key{rc.RunID, rc.ClientID, rc.Seq} }

// Read decodes response m into rc. It returns false when m is malformed for
// the mode: no envelope response; missing, short or foreign-sized
// Correlation Data; not JSON, no such member, or no id in it.
func (r *Requester) Read(m *mqttconn.Message, rc *Received) bool {
	switch r.Mode {
	case Envelope:
		return readEnvelope(m.Payload, rc)
	case Properties:
		return readProperties(m.CorrelationData, rc)
	}
	return readJSON(m.Payload, r.Field, rc)
}

// RequestKey returns the Key of m, one of this requester's own requests (a
// frame a connection gave back unsent); ok is false when m carries none.
func (r *Requester) RequestKey(m *mqttconn.Message) (Key, bool) {
	var rc Received
	switch r.Mode {
	case Envelope:
		return requestKeyEnvelope(m.Payload)
	case Properties:
		ok := readProperties(m.CorrelationData, &rc)
		return rc.Key(), ok
	}
	ok := readJSON(m.Payload, r.Field, &rc)
	return rc.Key(), ok
}

// Responder answers requests in one correlation mode (the worker's side):
//
//   - Envelope: the request is loadgen-v2's envelope (Request); the answer is
//     a Response on the request's reply topic, carrying the worker's queue
//     wait and processing time.
//   - Properties: an MQTT 5 request, whatever its payload (MQTT 5.0 §4.10):
//     the answer goes to its Response Topic with its Correlation Data, and
//     its payload is Template (no placeholder but {{id}}, empty here) or
//     Filler.
//   - JSON: the request's member IDField is copied into Template's {{id}};
//     the answer goes to the Response Topic (MQTT 5) or else to the topic in
//     the member ReplyToField (3.1.1), with the request's Correlation Data
//     when it had one.
//
// A request that does not fit its mode (no envelope, no Response Topic, no id
// member, a reply topic that is no valid topic name) is malformed: Pack
// refuses it and is never answered.
//
// Pack runs where the request is read and keeps what the answer needs in the
// packed copy (a small header before the payload), so a queued request stays
// one buffer; Answer runs where it is processed. Neither allocates once the
// buffers have grown.
type Responder struct {
	Mode Correlation
	// IDField (JSON) is the request member whose value the answer carries.
	IDField string
	// ReplyToField (JSON) is the request member naming the reply topic when
	// the request has no Response Topic (MQTT 3.1.1).
	ReplyToField string
	// Template is the answer's payload (Properties, JSON); nil means Filler.
	Template *Template
	// Filler is the answer's payload when there is no template.
	Filler []byte
}

// Pack checks the request m for the mode and appends to dst what Answer
// needs: for Envelope the payload as it came; else a header (reply topic,
// correlation data, id: each a 2-byte length and its bytes) and the payload.
// ok is false for a malformed request.
func (r *Responder) Pack(dst []byte, m *mqttconn.Message) ([]byte, bool) {
	switch r.Mode {
	case Envelope:
		return packEnvelope(dst, m)
	case Properties:
		return packProperties(dst, m)
	}
	return packJSON(dst, m, r.IDField, r.ReplyToField)
}

// Request returns the request payload of a packed request (what the
// processor works on).
func (r *Responder) Request(packed []byte) []byte {
	if r.Mode == Envelope {
		return packed
	}
	_, _, _, payload := unpack(packed)
	return payload
}

// Answer builds the answer to the packed request into m; its payload is
// appended to buf (returned for reuse) and m aliases packed and buf. wait
// and took are the queue wait and the processing time (Envelope only).
func (r *Responder) Answer(m *mqttconn.Message, buf, packed []byte, wait, took time.Duration) []byte {
	if r.Mode == Envelope {
		return answerEnvelope(m, buf, packed, wait, took)
	}
	return r.answerPacked(m, buf, packed)
}

// appendPacked appends the header of a packed Properties or JSON request
// (reply topic, correlation data, id: each a 2-byte length and its bytes)
// and the payload.
func appendPacked(dst, topic, corr, id, payload []byte) []byte {
	for _, f := range [][]byte{topic, corr, id} {
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(f)))
		dst = append(dst, f...)
	}
	return append(dst, payload...)
}

func unpack(b []byte) (topic, corr, id, payload []byte) {
	field := func() []byte {
		n := int(binary.BigEndian.Uint16(b))
		f := b[2 : 2+n]
		b = b[2+n:]
		return f
	}
	topic, corr, id = field(), field(), field()
	return topic, corr, id, b
}

// answerPacked answers a packed Properties or JSON request: to its reply
// topic, with its Correlation Data when it had some, the template filled
// with its id (empty for Properties), or the filler.
func (r *Responder) answerPacked(m *mqttconn.Message, buf, packed []byte) []byte {
	topic, corr, id, _ := unpack(packed)
	*m = mqttconn.Message{Topic: aliasString(topic)}
	if len(corr) > 0 {
		m.CorrelationData = corr
	}
	if r.Template != nil {
		f := Fields{IDText: id}
		if f.IDText == nil {
			f.IDText = []byte{}
		}
		buf = r.Template.AppendTo(buf[:0], &f)
		m.Payload = buf
	} else {
		m.Payload = r.Filler
	}
	return buf
}

func aliasBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

func aliasString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
