package mqttconn

import (
	"fmt"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttpkt"
)

// Message is an MQTT application message with its MQTT 5 request/response
// properties (see mqttpkt.Message for the fields). Inbound, every field
// aliases the read buffer and is valid only until the handler returns;
// outbound, the connection copies what it needs before QueueMessage or
// PublishMessage returns.
type Message = mqttpkt.Message

// errMalformedPacket: the broker sent bytes that are no MQTT packet this
// connection accepts; the connection closes and reconnects.
var errMalformedPacket = fmt.Errorf("%w from broker", mqttpkt.ErrMalformed)

// checkMessage reports whether m can be written as a PUBLISH of the given
// protocol version: the MQTT 5 properties need version 5, and each string or
// binary field holds at most mqttpkt.MaxFieldBytes.
func checkMessage(m *Message, v5 bool) error {
	if !v5 && m.HasProperties() {
		return ErrNeedsV5
	}
	if len(m.Topic) > mqttpkt.MaxFieldBytes || len(m.ResponseTopic) > mqttpkt.MaxFieldBytes || len(m.CorrelationData) > mqttpkt.MaxFieldBytes {
		return fmt.Errorf("%w: a topic, response topic or correlation data longer than %d bytes", errMalformedPacket, mqttpkt.MaxFieldBytes)
	}
	return nil
}
