package mqttconn

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// ErrSharedNotDelivered: the broker accepted the shared subscription but did
// not deliver a probe published to it (Options.ProbeShareGroup).
var ErrSharedNotDelivered = errors.New("the broker accepts shared subscriptions but does not deliver them")

// ProbeTopicPrefix is the first levels of the probe topic of
// Options.ProbeShareGroup: a broker ACL must let the client publish and
// subscribe to ProbeTopicPrefix + "#".
const ProbeTopicPrefix = "mqtt-rr-bench/probe/"

// Capabilities is what a connection learnt of the broker when it connected:
// the protocol the broker accepted, on MQTT 5 what its CONNACK announced,
// and the QoS its SUBACKs granted. An MQTT 3.1.1 CONNACK announces nothing:
// there only Protocol and GrantedQoS are set.
type Capabilities struct {
	// Protocol accepted: "3.1.1" or "5"; "" before the first connection.
	Protocol string `json:"protocol"`
	// MaximumQoS the broker accepts from us (nil: not announced, i.e. 2).
	MaximumQoS *byte `json:"maximum_qos,omitempty"`
	// MaximumPacketSize the broker accepts (bytes; 0: not announced).
	MaximumPacketSize uint32 `json:"maximum_packet_size_bytes,omitempty"`
	// SharedSubscriptionAvailable (nil: 3.1.1; on 5 the client library
	// reports an absent property as true).
	SharedSubscriptionAvailable *bool `json:"shared_subscription_available,omitempty"`
	// RetainAvailable (nil: 3.1.1; absent on 5 means true).
	RetainAvailable *bool `json:"retain_available,omitempty"`
	// ReceiveMaximum: QoS 1/2 publishes the broker takes unacknowledged (0:
	// not announced, i.e. 65535).
	ReceiveMaximum uint16 `json:"receive_maximum,omitempty"`
	// TopicAliasMaximum (0: none).
	TopicAliasMaximum uint16 `json:"topic_alias_maximum,omitempty"`
	// ServerKeepAliveSeconds overrides our KEEPALIVE when set (seconds).
	ServerKeepAliveSeconds *uint16 `json:"server_keep_alive_seconds,omitempty"`
	// AssignedClientID, when the broker assigned one.
	AssignedClientID string `json:"assigned_client_id,omitempty"`
	// GrantedQoS is the lowest QoS the broker granted in the SUBACKs of the
	// pool's subscriptions, all asked at Options.QoS (nil: none made). A
	// broker grants less than asked when it does not carry the QoS asked:
	// NATS, and Mosquitto with max_qos 1, grant QoS 1 for QoS 2 (and close
	// the connection on a QoS 2 PUBLISH). On MQTT 3.1.1 it is the only sign.
	GrantedQoS *byte `json:"granted_qos,omitempty"`
	// SharedProbe: "delivered" when Options.ProbeShareGroup's probe arrived,
	// "" when no probe ran.
	SharedProbe string `json:"shared_probe,omitempty"`
}

// String is the record on one line, as the report prints it: "MQTT 5:
// maximum QoS 1, maximum packet size 2048 B, …" (a limit the CONNACK left
// out is named with the value it means, e.g. "maximum QoS 2 (not
// announced)"); "MQTT 3.1.1 (announces no limits)"; "not connected"; then
// "; subscriptions granted QoS 1" once subscriptions were made.
func (c Capabilities) String() string {
	if c.Protocol == "" {
		return "not connected"
	}
	var b strings.Builder
	b.WriteString("MQTT " + c.Protocol)
	if c.Protocol != "5" {
		b.WriteString(" (announces no limits)")
	} else {
		yes := func(v *bool) string {
			if v == nil || *v {
				return "yes"
			}
			return "NO"
		}
		num := func(v uint64, unit, absent string) string {
			if v == 0 {
				return absent
			}
			return strconv.FormatUint(v, 10) + unit
		}
		qos := "2 (not announced)"
		if c.MaximumQoS != nil {
			qos = strconv.Itoa(int(*c.MaximumQoS))
		}
		ka := "not announced"
		if c.ServerKeepAliveSeconds != nil {
			ka = strconv.Itoa(int(*c.ServerKeepAliveSeconds)) + " s"
		}
		fmt.Fprintf(&b, ": maximum QoS %s, maximum packet size %s, shared subscriptions %s, retain %s, receive maximum %s, topic alias maximum %d, server keep alive %s",
			qos, num(uint64(c.MaximumPacketSize), " B", "not announced"), yes(c.SharedSubscriptionAvailable), yes(c.RetainAvailable),
			num(uint64(c.ReceiveMaximum), "", "65535 (not announced)"), c.TopicAliasMaximum, ka)
		if c.AssignedClientID != "" {
			b.WriteString(", assigned client id " + c.AssignedClientID)
		}
	}
	if c.GrantedQoS != nil {
		b.WriteString("; subscriptions granted QoS " + strconv.Itoa(int(*c.GrantedQoS)))
	}
	if c.SharedProbe != "" {
		b.WriteString("; shared subscription probe " + c.SharedProbe)
	}
	return b.String()
}

// caps311 is the record of every MQTT 3.1.1 connection.
var caps311 = Capabilities{Protocol: "3.1.1"}

// capsFromConnack reads the record of an MQTT 5 connection from its CONNACK.
func capsFromConnack(ca *paho.Connack) *Capabilities {
	c := &Capabilities{Protocol: "5"}
	if ca == nil || ca.Properties == nil {
		return c
	}
	p := ca.Properties
	c.MaximumQoS, c.ServerKeepAliveSeconds, c.AssignedClientID = p.MaximumQoS, p.ServerKeepAlive, p.AssignedClientID
	if p.MaximumPacketSize != nil {
		c.MaximumPacketSize = *p.MaximumPacketSize
	}
	if p.ReceiveMaximum != nil {
		c.ReceiveMaximum = *p.ReceiveMaximum
	}
	if p.TopicAliasMaximum != nil {
		c.TopicAliasMaximum = *p.TopicAliasMaximum
	}
	shared, retain := p.SharedSubAvailable, p.RetainAvailable
	c.SharedSubscriptionAvailable, c.RetainAvailable = &shared, &retain
	return c
}

// Capabilities returns the record of the first connection that has
// connected (every connection talks to the same broker), with the lowest
// QoS granted to any connection's subscriptions and the shared
// subscription probe's result; a zero record before any has connected.
func (p *Pool) Capabilities() Capabilities {
	var c Capabilities
	for _, m := range p.conns {
		if s := m.base().cur.Load(); s != nil {
			if r := s.caps.Load(); r != nil {
				c = *r
				break
			}
		}
	}
	if p.opts.Plain && p.Up() > 0 {
		c = caps311
	}
	for _, m := range p.conns {
		if g := m.base().granted.Load(); c.Protocol != "" && g > 0 && (c.GrantedQoS == nil || byte(g-1) < *c.GrantedQoS) {
			q := byte(g - 1)
			c.GrantedQoS = &q
		}
	}
	if p.probeGot.Load() {
		c.SharedProbe = "delivered"
	}
	return c
}

// withProbe makes connection 0 subscribe also to the probe's shared
// subscription on every (re)connect.
func (p *Pool) withProbe() {
	var b [8]byte
	_, _ = rand.Read(b[:])
	p.probeTopic = ProbeTopicPrefix + hex.EncodeToString(b[:])
	p.probeFilter = "$share/" + p.opts.ProbeShareGroup + "/" + p.probeTopic
	subs := p.opts.Subscriptions
	p.opts.Subscriptions = func(i int) []string {
		var f []string
		if subs != nil {
			f = subs(i)
		}
		if i == 0 {
			f = append(append([]string(nil), f...), p.probeFilter)
		}
		return f
	}
}

// isProbe reports whether connection i received the probe (and records it).
func (p *Pool) isProbe(i int, m *Message) bool {
	if i != 0 || p.probeTopic == "" || m.Topic != p.probeTopic {
		return false
	}
	p.probeGot.Store(true)
	return true
}

// probe publishes to the probe topic on connection 0, again every 100 ms
// (at QoS 0 one may be lost), until it arrives or ProbeTimeout passes.
func (p *Pool) probe(ctx context.Context) error {
	if c := p.Capabilities(); c.MaximumQoS != nil && p.opts.QoS > *c.MaximumQoS || c.GrantedQoS != nil && p.opts.QoS > *c.GrantedQoS {
		// No publish at our QoS can pass (a broker may close the connection
		// on one): the caller reports the QoS (Capabilities).
		return nil
	}
	deadline := time.Now().Add(p.opts.ProbeTimeout)
	for !p.probeGot.Load() {
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: a probe published to %s did not arrive on %s within %v", ErrSharedNotDelivered, p.probeTopic, p.probeFilter, p.opts.ProbeTimeout)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		_ = p.conns[0].PublishMessage(&Message{Topic: p.probeTopic, Payload: []byte("probe")})
		waitUntil(ctx, 100*time.Millisecond, p.probeGot.Load)
	}
	return nil
}
