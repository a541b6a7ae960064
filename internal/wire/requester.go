package wire

import "github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"

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
