package wire

import (
	"encoding/binary"
	"fmt"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
)

// Properties: the request's MQTT 5 Correlation Data carries its Key in
// CorrelationSize bytes (run id, client id, sequence number, big endian) and
// its Response Topic the reply topic; the responder echoes the Correlation
// Data to the Response Topic (MQTT 5.0 §4.10). The payload is free: a
// Template or filler bytes.

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

// encodeProperties writes the key of request k as its Correlation Data (the
// payload is the template or the filler: Encode).
func (e *Encoder) encodeProperties(k Key) {
	e.corr = AppendCorrelation(e.corr[:0], k)
	e.msg.CorrelationData = e.corr
}

// readProperties reads the key of a response (or of a request) from its
// Correlation Data.
func readProperties(corr []byte, rc *Received) bool {
	k, err := DecodeCorrelation(corr)
	*rc = Received{Response: Response{RunID: k.RunID, ClientID: k.ClientID, Seq: k.Seq}}
	return err == nil
}

// packProperties keeps the Response Topic and Correlation Data of an MQTT 5
// request, whatever its payload.
func packProperties(dst []byte, m *mqttconn.Message) ([]byte, bool) {
	rt := aliasBytes(m.ResponseTopic)
	if !ValidReplyTopic(rt) {
		return dst, false
	}
	return appendPacked(dst, rt, m.CorrelationData, nil, m.Payload), true
}
