package config

import (
	"errors"
	"fmt"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/envconf"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/wire"
)

// replyTopicAllowance is the reply topic length ReplyPacketBytes assumes
// (the request names it), in bytes.
const replyTopicAllowance = 128

// ReplyPacketBytes estimates the size of one reply's PUBLISH packet, in
// bytes: the payload (the envelope's, RESPONSE_BYTES, or RESPONSE_TEMPLATE),
// a reply topic of replyTopicAllowance bytes, the MQTT 5 correlation data
// and the fixed header.
func (r *Resolved) ReplyPacketBytes() int {
	payload := wire.ResponseSize
	switch {
	case r.Rules.Template != nil:
		payload = len(r.Rules.Template.String(&wire.Fields{})) + 64
	case r.Rules.Mode == wire.Properties:
		payload = len(r.Rules.Filler)
	}
	return 5 + 2 + replyTopicAllowance + 32 + payload
}

// CheckBroker returns, wrapped in envconf.ErrInvalid, every setting the
// broker announced at connect that it cannot carry (MQTT 5 CONNACK: Maximum
// QoS, Maximum Packet Size; either version: a SUBACK granting less than
// QOS, as NATS and Mosquitto with max_qos 1 grant QoS 1 for QoS 2 and then
// close the connection on a QoS 2 PUBLISH), naming the variable and the
// broker's limit.
func (r *Resolved) CheckBroker(c mqttconn.Capabilities) error {
	var errs []error
	if c.MaximumQoS != nil && r.QoS > int(*c.MaximumQoS) {
		errs = append(errs, fmt.Errorf("QOS=%d: the broker announced Maximum QoS %d at connect; set QOS=%d or lower", r.QoS, *c.MaximumQoS, *c.MaximumQoS))
	} else if c.GrantedQoS != nil && r.QoS > int(*c.GrantedQoS) {
		errs = append(errs, fmt.Errorf("QOS=%d: the broker granted QoS %d on the subscriptions (it does not support QoS %d); set QOS=%d or lower", r.QoS, *c.GrantedQoS, r.QoS, *c.GrantedQoS))
	}
	if n := r.ReplyPacketBytes(); c.MaximumPacketSize > 0 && n > int(c.MaximumPacketSize) {
		errs = append(errs, fmt.Errorf("RESPONSE_BYTES=%d (RESPONSE_TEMPLATE): replies take up to %d bytes, above the Maximum Packet Size of %d bytes the broker announced at connect; reply smaller or raise the broker's limit",
			r.ResponseBytes, n, c.MaximumPacketSize))
	}
	if len(errs) == 0 {
		return nil
	}
	return envconf.Invalid(errors.Join(errs...))
}
