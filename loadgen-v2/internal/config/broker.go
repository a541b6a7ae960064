package config

import (
	"errors"
	"fmt"
	"slices"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/envconf"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/wire"
)

// RequestPacketBytes bounds the size of one request's PUBLISH packet, in
// bytes: the payload (PAYLOAD_BYTES, or the envelope or template with its
// instance id and reply topic), the request topic, the MQTT 5 properties and
// the fixed header.
func (r *Resolved) RequestPacketBytes() int {
	topic := len(slices.MaxFunc(r.RequestTopics, func(a, b string) int { return len(a) - len(b) }))
	reply := len(slices.MaxFunc(r.ResponseTopics, func(a, b string) int { return len(a) - len(b) }))
	payload := 25 + len(r.InstanceID) + reply
	if t := r.Protocol.Template; t != nil {
		payload = len(t.String(&wire.Fields{Instance: r.InstanceID})) + 64
	}
	payload = max(payload, r.PayloadBytes)
	props := 0
	if r.Protocol.Version == 5 {
		props = 5 + 3 + reply + 3 + 16 + 5 // length, response topic, correlation data, expiry
	}
	return 5 + 2 + topic + 2 + props + payload
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
	if n := r.RequestPacketBytes(); c.MaximumPacketSize > 0 && n > int(c.MaximumPacketSize) {
		errs = append(errs, fmt.Errorf("PAYLOAD_BYTES=%d: requests take up to %d bytes, above the Maximum Packet Size of %d bytes the broker announced at connect; set PAYLOAD_BYTES lower or raise the broker's limit",
			r.PayloadBytes, n, c.MaximumPacketSize))
	}
	if len(errs) == 0 {
		return nil
	}
	return envconf.Invalid(errors.Join(errs...))
}
