package mqttconn_test

import (
	"context"
	"errors"
	"testing"

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
