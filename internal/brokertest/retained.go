package brokertest

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// retainedCalls numbers Retained's connections: a client id of their own,
// so that a call right after another is not taken for the same client (a
// broker that closes the earlier session late would drop the new one's
// subscription with it).
var retainedCalls atomic.Int64

// Retained returns the retained message the broker at url holds on topic
// (nil when none). It subscribes, then publishes a probe (not retained) on
// the topic and waits for it: a broker sends retained messages on
// subscribing, before it forwards a later publish, so whatever arrives
// before the probe is the retained message. Whoever else subscribes to the
// topic receives the probe ("brokertest-probe").
func Retained(t testing.TB, url, topic string) []byte {
	t.Helper()
	probe := []byte("brokertest-probe")
	got := make(chan []byte, 16)
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("brokertest-retained-%d", retainedCalls.Add(1))).SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(Patience) || tok.Error() != nil {
		t.Fatalf("retained %s: connect %s: %v", topic, url, tok.Error())
	}
	defer c.Disconnect(0)
	tok := c.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) { got <- bytes.Clone(m.Payload()) })
	if !tok.WaitTimeout(Patience) || tok.Error() != nil {
		t.Fatalf("retained %s: subscribe: %v", topic, tok.Error())
	}
	if tok := c.Publish(topic, 1, false, probe); !tok.WaitTimeout(Patience) || tok.Error() != nil {
		t.Fatalf("retained %s: probe: %v", topic, tok.Error())
	}
	var held []byte
	for {
		select {
		case p := <-got:
			if bytes.Equal(p, probe) {
				return held
			}
			held = p
		case <-time.After(Patience):
			t.Fatalf("retained %s: the probe did not come back", topic)
		}
	}
}
