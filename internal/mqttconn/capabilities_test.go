package mqttconn_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/brokertest"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
)

// TestSharedProbe: Dial with ProbeShareGroup succeeds on a broker that
// delivers shared subscriptions (the probe never reaches OnMessage) and
// fails with ErrSharedNotDelivered on one that accepts $share/… and
// delivers nothing (NATS).
func TestSharedProbe(t *testing.T) {
	for _, v := range []byte{4, 5} {
		t.Run("delivered v"+mqttconn.VersionName(v), func(t *testing.T) {
			b := brokertest.Start(t)
			delivered := 0
			p, err := mqttconn.Dial(context.Background(), mqttconn.Options{
				Broker: b.URL(), ClientIDPrefix: "probe", Connections: 2, ProtocolVersion: v,
				Subscriptions:   func(int) []string { return []string{"$share/g/req/+"} },
				OnMessage:       func(int, *mqttconn.Message) { delivered++ },
				ProbeShareGroup: "g",
			})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			c := p.Capabilities()
			if c.SharedProbe != "delivered" || c.Protocol != mqttconn.VersionName(v) {
				t.Errorf("capabilities %+v", c)
			}
			if v == 5 && (c.SharedSubscriptionAvailable == nil || !*c.SharedSubscriptionAvailable) {
				t.Errorf("MQTT 5 record lacks shared subscription availability: %+v", c)
			}
			p.Close()
			if delivered != 0 {
				t.Errorf("the probe reached OnMessage %d times", delivered)
			}
		})
	}
	t.Run("not delivered", func(t *testing.T) {
		n := brokertest.StartNATS(t)
		_, err := mqttconn.Dial(context.Background(), mqttconn.Options{
			Broker: n.URL(), ClientIDPrefix: "probe", Connections: 2,
			Subscriptions:   func(int) []string { return []string{"$share/g/req/+"} },
			OnMessage:       func(int, *mqttconn.Message) {},
			ProbeShareGroup: "g",
		})
		if !errors.Is(err, mqttconn.ErrSharedNotDelivered) {
			t.Fatalf("want ErrSharedNotDelivered, got %v", err)
		}
		t.Log(err)
	})
}

// TestFailFast: every connection failing the same way ends Dial with the
// cause and the setting to change, long before ConnectTimeout (asserted by
// the error, not by a clock: a timeout would say "0 of 2 connections up").
func TestFailFast(t *testing.T) {
	n := brokertest.StartNATS(t)
	b := brokertest.Start(t)
	tlsSrv := httptest.NewTLSServer(http.NotFoundHandler())
	t.Cleanup(tlsSrv.Close)
	for _, tc := range []struct {
		name   string
		o      mqttconn.Options
		target error
		want   string
	}{
		{"mqtt 5 on a 3.1.1 broker", mqttconn.Options{Broker: n.URL(), ProtocolVersion: 5}, mqttconn.ErrMQTT5Refused, "MQTT_VERSION=3.1.1"},
		{"tls to a plain listener", mqttconn.Options{Broker: "ssl://" + b.Addr()}, mqttconn.ErrTLSMismatch, "use tcp://"},
		{"tls to a plain listener v5", mqttconn.Options{Broker: "ssl://" + b.Addr(), ProtocolVersion: 5}, mqttconn.ErrTLSMismatch, "use tcp://"},
		{"plain to a tls listener", mqttconn.Options{Broker: "tcp://" + tlsSrv.Listener.Addr().String()}, mqttconn.ErrTLSMismatch, "use ssl://"},
		{"plain to a tls listener v5", mqttconn.Options{Broker: "tcp://" + tlsSrv.Listener.Addr().String(), ProtocolVersion: 5}, mqttconn.ErrTLSMismatch, "use ssl://"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.o
			o.ClientIDPrefix, o.Connections, o.ConnectTimeout = "ff", 2, time.Minute
			_, err := mqttconn.Dial(context.Background(), o)
			if !errors.Is(err, tc.target) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want %v naming %q, got %v", tc.target, tc.want, err)
			}
			t.Log(err)
		})
	}
}

// TestCapabilitiesString: the record on one line, as the report and the
// start log print it; a limit the CONNACK left out says what it means.
func TestCapabilitiesString(t *testing.T) {
	qos, ka, no, granted := byte(1), uint16(20), false, byte(1)
	for _, tc := range []struct {
		name string
		c    mqttconn.Capabilities
		want string
	}{
		{"zero", mqttconn.Capabilities{}, "not connected"},
		{"3.1.1", mqttconn.Capabilities{Protocol: "3.1.1", SharedProbe: "delivered"}, "MQTT 3.1.1 (announces no limits); shared subscription probe delivered"},
		{"3.1.1 granted", mqttconn.Capabilities{Protocol: "3.1.1", GrantedQoS: &granted, SharedProbe: "delivered"},
			"MQTT 3.1.1 (announces no limits); subscriptions granted QoS 1; shared subscription probe delivered"},
		{"5 nothing announced", mqttconn.Capabilities{Protocol: "5"},
			"MQTT 5: maximum QoS 2 (not announced), maximum packet size not announced, shared subscriptions yes, retain yes, receive maximum 65535 (not announced), topic alias maximum 0, server keep alive not announced"},
		{"5 limits", mqttconn.Capabilities{Protocol: "5", MaximumQoS: &qos, MaximumPacketSize: 2048, SharedSubscriptionAvailable: &no, RetainAvailable: &no,
			ReceiveMaximum: 20, TopicAliasMaximum: 10, ServerKeepAliveSeconds: &ka, AssignedClientID: "auto-7"},
			"MQTT 5: maximum QoS 1, maximum packet size 2048 B, shared subscriptions NO, retain NO, receive maximum 20, topic alias maximum 10, server keep alive 20 s, assigned client id auto-7"},
		{"5 granted", mqttconn.Capabilities{Protocol: "5", MaximumQoS: &qos, GrantedQoS: &granted},
			"MQTT 5: maximum QoS 1, maximum packet size not announced, shared subscriptions yes, retain yes, receive maximum 65535 (not announced), topic alias maximum 0, server keep alive not announced; subscriptions granted QoS 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.c.String(); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

// TestGrantedQoS: the record holds the lowest QoS the broker's SUBACKs
// granted, on both transports and both protocol versions. Subscribing at
// QoS 2, the embedded broker grants 2; NATS and Mosquitto with max_qos 1
// grant 1 (MQTT 3.1.1 and 5 alike): the sign that a QoS 2 PUBLISH would
// close the connection. Over several connections the lowest grant counts;
// without subscriptions the record has none.
func TestGrantedQoS(t *testing.T) {
	type transport struct {
		name  string
		v     byte
		plain bool
	}
	fast4, plain4, fast5 := transport{"fast 3.1.1", 4, false}, transport{"paho 3.1.1", 4, true}, transport{"fast 5", 5, false}
	embedded := func(t *testing.T) string { return brokertest.Start(t).URL() }
	mosquittoQoS1 := func(t *testing.T) string { return brokertest.StartMosquitto(t, "max_qos 1\n").URL() }
	nats := func(t *testing.T) string { return brokertest.StartNATS(t).URL() }
	noLeaks(t)
	for _, tc := range []struct {
		broker     string
		start      func(t *testing.T) string
		transports []transport
		want       byte
	}{
		{"embedded", embedded, []transport{fast4, plain4, fast5}, 2},
		{"mosquitto max_qos 1", mosquittoQoS1, []transport{fast4, plain4, fast5}, 1},
		{"nats", nats, []transport{fast4, plain4}, 1}, // NATS refuses MQTT 5
	} {
		t.Run(tc.broker, func(t *testing.T) {
			noLeaks(t) // registered first: runs after the broker stopped
			url := tc.start(t)
			for _, tr := range tc.transports {
				t.Run(tr.name, func(t *testing.T) {
					p := dial(t, mqttconn.Options{
						Broker: url, ClientIDPrefix: "granted", Connections: 2, ProtocolVersion: tr.v, Plain: tr.plain, QoS: 2,
						Subscriptions: func(i int) []string { return []string{"granted/" + strconv.Itoa(i) + "/+", "granted/all"} },
						OnMessage:     func(int, *mqttconn.Message) {},
					})
					c := p.Capabilities()
					if c.GrantedQoS == nil || *c.GrantedQoS != tc.want {
						t.Fatalf("granted QoS %v, want %d: %+v", derefByte(c.GrantedQoS), tc.want, c)
					}
					if want := "subscriptions granted QoS " + strconv.Itoa(int(tc.want)); !strings.Contains(c.String(), want) {
						t.Errorf("String() %q lacks %q", c.String(), want)
					}
					t.Log(c)
				})
			}
		})
	}
	t.Run("lowest over the connections", func(t *testing.T) {
		b := startScripted(t, func(n int) (byte, bool) { return byte(2 * (n % 2)), true }) // 2, 0: one connection each
		p := dial(t, mqttconn.Options{
			Broker: b.url(), ClientIDPrefix: "granted", Connections: 2, QoS: 2,
			Subscriptions: func(i int) []string { return []string{"granted/" + strconv.Itoa(i)} },
			OnMessage:     func(int, *mqttconn.Message) {},
		})
		if c := p.Capabilities(); c.GrantedQoS == nil || *c.GrantedQoS != 0 {
			t.Fatalf("granted QoS %v, want 0 (the lower of 2 and 0): %+v", derefByte(c.GrantedQoS), c)
		}
	})
	t.Run("no subscriptions", func(t *testing.T) {
		p := dial(t, mqttconn.Options{Broker: brokertest.Start(t).URL(), ClientIDPrefix: "granted", Connections: 1, QoS: 2})
		if c := p.Capabilities(); c.GrantedQoS != nil {
			t.Fatalf("granted QoS %d without subscriptions: %+v", *c.GrantedQoS, c)
		}
	})
}

func derefByte(p *byte) any {
	if p == nil {
		return nil
	}
	return *p
}
