package mqttconn_test

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/brokertest"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
)

// TestOversizedSkippedConnectionStays: against real brokers, a message above
// the frame limit, retained (delivered at subscribe) or not, at QoS 0, 1 and
// 2 over MQTT 3.1.1 and 5, is skipped and reported once, the connection
// never goes down, and the messages after it arrive. Mosquitto runs with
// max_inflight_messages 1: had the skipped QoS 1 or 2 message not been
// acknowledged, nothing after it would be delivered.
func TestOversizedSkippedConnectionStays(t *testing.T) {
	brokers := map[string]func(t *testing.T) string{
		"embedded":  func(t *testing.T) string { return brokertest.Start(t).URL() },
		"mosquitto": func(t *testing.T) string { return brokertest.StartMosquitto(t, "max_inflight_messages 1\n").URL() },
	}
	for _, bn := range []string{"embedded", "mosquitto"} {
		for _, v := range []byte{4, 5} {
			for _, qos := range []byte{0, 1, 2} {
				t.Run(fmt.Sprintf("%s v%s qos%d", bn, mqttconn.VersionName(v), qos), func(t *testing.T) {
					noLeaks(t)
					url := brokers[bn](t)
					pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID("hostile"))
					if tok := pub.Connect(); !tok.WaitTimeout(brokertest.Patience) || tok.Error() != nil {
						t.Fatalf("publisher: %v", tok.Error())
					}
					defer pub.Disconnect(0)
					publish := func(topic string, retained bool, payload []byte) {
						t.Helper()
						// The retained message goes at QoS 1 at least: its
						// acknowledgement says the broker stored it before the
						// victim subscribes (at QoS 0 it could still be in flight
						// and arrive as a live, unretained message). Delivered at
						// min(that, qos) = qos all the same.
						pq := qos
						if retained {
							pq = max(qos, 1)
						}
						if tok := pub.Publish(topic, pq, retained, payload); !tok.WaitTimeout(brokertest.Patience) || tok.Error() != nil {
							t.Fatalf("publish %s: %v", topic, tok.Error())
						}
					}
					big := bytes.Repeat([]byte("x"), 5000)
					publish("resp/big/retained", true, big)

					var oversized, small, downs atomic.Int64
					var last atomic.Pointer[mqttconn.Oversized]
					p, err := mqttconn.Dial(context.Background(), mqttconn.Options{
						Broker: url, ClientIDPrefix: "victim", QoS: qos, ProtocolVersion: v, Logger: quiet,
						MaxInboundFrame: 4096,
						Subscriptions:   func(int) []string { return []string{"resp/#"} },
						OnMessage:       func(int, *mqttconn.Message) { small.Add(1) },
						OnOversized: func(_ int, o mqttconn.Oversized) {
							oversized.Add(1)
							last.Store(&o)
						},
						OnState: func(_ int, up bool) {
							if !up {
								downs.Add(1)
							}
						},
					})
					if err != nil {
						t.Fatal(err)
					}
					defer p.Close()
					brokertest.WaitFor(t, "the retained oversized message skipped", func() bool { return oversized.Load() == 1 })
					if o := last.Load(); o.Topic != "resp/big/retained" || !o.Retained || o.Bytes < 5000 || o.QoS != qos {
						t.Errorf("reported %+v", *o)
					}
					for range 3 {
						publish("resp/small", false, []byte("ok"))
					}
					brokertest.WaitFor(t, "3 messages after it", func() bool { return small.Load() == 3 })
					publish("resp/big/live", false, big)
					publish("resp/small", false, []byte("ok"))
					brokertest.WaitFor(t, "a second oversized message and the one after it", func() bool { return oversized.Load() == 2 && small.Load() == 4 })
					if downs.Load() != 0 || p.Up() != 1 {
						t.Errorf("connection went down %d times (up %d)", downs.Load(), p.Up())
					}
				})
			}
		}
	}
}
