package wire

import (
	"encoding/binary"
	"time"
	"unsafe"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
)

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
	// Allow are the MQTT topic filters a reply topic must match
	// (REPLY_TOPIC_ALLOW); nil allows every valid topic name. A request whose
	// reply topic matches none is refused (ReplyAllowed): a worker must not
	// publish wherever a request tells it to.
	Allow []string
}

// ReplyAllowed reports whether the reply to the packed request (Pack) may be
// published: its reply topic matches one of Allow (or Allow is nil).
func (r *Responder) ReplyAllowed(packed []byte) bool {
	if r.Allow == nil {
		return true
	}
	var topic []byte
	if r.Mode == Envelope {
		var req Request
		if DecodeRequest(packed, &req) != nil {
			return false
		}
		topic = req.ReplyTopic
	} else {
		topic, _, _, _ = unpack(packed)
	}
	for _, f := range r.Allow {
		if MatchFilter(f, topic) {
			return true
		}
	}
	return false
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
