// Package reply owns what worker-v2 answers to a request, by correlation
// mode, so that the worker answers any requester, not only loadgen-v2:
//
//   - Envelope: the request is loadgen-v2's binary envelope (wire.Request);
//     the reply is a wire.Response on the request's reply topic, carrying
//     the worker's queue wait and processing time.
//   - Properties: an MQTT 5 request, whatever its payload (MQTT 5.0 §4.10):
//     the reply goes to its Response Topic with its Correlation Data, and
//     its payload is RESPONSE_TEMPLATE (no placeholder but {{id}}, which is
//     empty here) or RESPONSE_BYTES bytes of filler.
//   - JSON: the request's JSON member ID_FIELD is copied into
//     RESPONSE_TEMPLATE's {{id}}; the reply goes to the Response Topic (MQTT
//     5) or else to the topic in the member REPLY_TO_FIELD (3.1.1), with the
//     request's Correlation Data when it had one.
//
// A request that does not fit its mode (no envelope, no Response Topic, no
// id member, a reply topic that is no valid topic name) is malformed: Pack
// refuses it and the worker counts it, never answers it.
//
// Pack runs on the connection's reading goroutine and keeps what the reply
// needs in the queued copy (a small header before the payload), so a queue
// slot stays one buffer; Answer runs on a worker goroutine. Neither
// allocates once the buffers have grown.
package reply

import (
	"encoding/binary"
	"time"
	"unsafe"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/wire"
)

// Rules say how to answer.
type Rules struct {
	Mode wire.Correlation
	// IDField (JSON) is the request member whose value the reply carries.
	IDField string
	// ReplyToField (JSON) is the request member naming the reply topic when
	// the request has no Response Topic (MQTT 3.1.1).
	ReplyToField string
	// Template is the reply payload (Properties, JSON); nil means Filler.
	Template *wire.Template
	// Filler is the reply payload when there is no template.
	Filler []byte
}

// Pack checks the request m for the mode and appends to dst what Answer
// needs: for Envelope the payload as it came; else a header (reply topic,
// correlation data, id: each a 2-byte length and its bytes) and the payload.
// ok is false for a malformed request.
func (r *Rules) Pack(dst []byte, m *mqttconn.Message) ([]byte, bool) {
	switch r.Mode {
	case wire.Envelope:
		var req wire.Request
		if wire.DecodeRequest(m.Payload, &req) != nil || !wire.ValidReplyTopic(req.ReplyTopic) {
			return dst, false
		}
		return append(dst, m.Payload...), true
	case wire.Properties:
		rt := aliasBytes(m.ResponseTopic)
		if !wire.ValidReplyTopic(rt) {
			return dst, false
		}
		return appendPacked(dst, rt, m.CorrelationData, nil, m.Payload), true
	}
	id, ok := wire.JSONField(m.Payload, r.IDField)
	if !ok || len(id) > 0xffff {
		return dst, false
	}
	rt := aliasBytes(m.ResponseTopic)
	if len(rt) == 0 {
		if rt, ok = wire.JSONField(m.Payload, r.ReplyToField); !ok {
			return dst, false
		}
	}
	if !wire.ValidReplyTopic(rt) {
		return dst, false
	}
	return appendPacked(dst, rt, m.CorrelationData, id, m.Payload), true
}

func appendPacked(dst, topic, corr, id, payload []byte) []byte {
	for _, f := range [][]byte{topic, corr, id} {
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(f)))
		dst = append(dst, f...)
	}
	return append(dst, payload...)
}

// Request returns the request payload of a packed request (what the
// processor works on).
func (r *Rules) Request(packed []byte) []byte {
	if r.Mode == wire.Envelope {
		return packed
	}
	_, _, _, payload := unpack(packed)
	return payload
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

// Answer builds the reply to the packed request into m; its payload is
// appended to buf (returned for reuse) and m aliases packed and buf. wait
// and took are the queue wait and the processing time (Envelope only).
func (r *Rules) Answer(m *mqttconn.Message, buf, packed []byte, wait, took time.Duration) []byte {
	if r.Mode == wire.Envelope {
		var req wire.Request
		_ = wire.DecodeRequest(packed, &req) // checked by Pack
		resp := wire.Response{RunID: req.RunID, ClientID: req.ClientID, Seq: req.Seq, Intended: req.Intended,
			QueueUS: wire.Micros(wait), ProcessUS: wire.Micros(took)}
		buf = wire.AppendResponse(buf[:0], &resp)
		*m = mqttconn.Message{Topic: aliasString(req.ReplyTopic), Payload: buf}
		return buf
	}
	topic, corr, id, _ := unpack(packed)
	*m = mqttconn.Message{Topic: aliasString(topic)}
	if len(corr) > 0 {
		m.CorrelationData = corr
	}
	if r.Template != nil {
		f := wire.Fields{IDText: id}
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
