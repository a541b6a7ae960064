package mqttconn_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/brokertest"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mosquitto"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
)

// echo5 round-trips n MQTT 5 requests through brokerURL: a responder pool on
// $share/g/req/+ answers each on its Response Topic with its Correlation
// Data; the requester checks every answer came back once, with its data.
func echo5(t *testing.T, brokerURL string, qos byte, n int) {
	ctx := context.Background()
	// The handler may run before Dial returns (a request left by an earlier
	// subtest): it answers only once the pool is known.
	var pool atomic.Pointer[mqttconn.Pool]
	responder, err := mqttconn.Dial(ctx, mqttconn.Options{
		Broker: brokerURL, ClientIDPrefix: "resp5", Connections: 2, QoS: qos, ProtocolVersion: 5, Logger: quiet,
		Subscriptions: func(int) []string { return []string{"$share/g/req/+"} },
		OnMessage: func(conn int, m *mqttconn.Message) {
			if m.ResponseTopic == "" {
				t.Errorf("request on %s without Response Topic", m.Topic)
				return
			}
			p := pool.Load()
			if p == nil {
				return
			}
			c := p.Conn(conn)
			if err := c.QueueMessage(&mqttconn.Message{Topic: m.ResponseTopic, CorrelationData: m.CorrelationData, Payload: append([]byte("re:"), m.Payload...)}); err != nil {
				t.Errorf("reply: %v", err)
			}
			c.Flush()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer responder.Close()
	pool.Store(responder)

	var mu sync.Mutex
	got := map[uint32]int{}
	bad := 0
	requester, err := mqttconn.Dial(ctx, mqttconn.Options{
		Broker: brokerURL, ClientIDPrefix: "req5", Connections: 1, QoS: qos, ProtocolVersion: 5, Logger: quiet,
		Subscriptions: func(int) []string { return []string{"back/+"} },
		OnMessage: func(_ int, m *mqttconn.Message) {
			mu.Lock()
			defer mu.Unlock()
			if len(m.CorrelationData) != 4 {
				bad++
				return
			}
			id := binary.BigEndian.Uint32(m.CorrelationData)
			if want := fmt.Sprintf("re:request %d", id); string(m.Payload) != want || m.Topic != fmt.Sprintf("back/%d", id%3) {
				bad++
				return
			}
			got[id]++
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer requester.Close()
	c := requester.Conn(0)
	for i := range uint32(n) {
		cd := binary.BigEndian.AppendUint32(nil, i)
		m := &mqttconn.Message{Topic: "req/1", Payload: fmt.Appendf(nil, "request %d", i), ResponseTopic: fmt.Sprintf("back/%d", i%3), CorrelationData: cd, ExpirySeconds: 30}
		if err := c.QueueMessage(m); err != nil {
			t.Fatal(err)
		}
		cd[0] = 0xff // Send copied it
	}
	c.Flush()
	brokertest.WaitFor(t, fmt.Sprintf("%d answers", n), func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got)+bad >= n
	})
	mu.Lock()
	defer mu.Unlock()
	if bad != 0 || len(got) != n {
		t.Fatalf("%d answers with wrong data, %d of %d requests answered", bad, len(got), n)
	}
	for id, k := range got {
		if k != 1 {
			t.Errorf("request %d answered %d times", id, k)
		}
	}
}

func TestPool5RoundTripEmbedded(t *testing.T) {
	noLeaks(t)
	b := brokertest.Start(t)
	t.Run("QoS 0", func(t *testing.T) { echo5(t, b.URL(), 0, 2000) })
	t.Run("QoS 1", func(t *testing.T) { echo5(t, b.URL(), 1, 200) })
}

func TestPool5RoundTripMosquitto(t *testing.T) {
	m, err := mosquitto.Start(t.TempDir(), "")
	if err == mosquitto.ErrNotInstalled {
		brokertest.Unavailable(t, "mosquitto not installed (apt-get install -y mosquitto)")
	}
	if err != nil {
		t.Fatal(err)
	}
	defer m.Stop()
	t.Run("QoS 0", func(t *testing.T) { echo5(t, m.URL(), 0, 2000) })
	t.Run("QoS 1", func(t *testing.T) { echo5(t, m.URL(), 1, 200) })
}

func TestPool5RefusesV5PropertiesOn311(t *testing.T) {
	b := brokertest.Start(t)
	p, err := mqttconn.Dial(context.Background(), mqttconn.Options{Broker: b.URL(), ClientIDPrefix: "v4", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	err = p.Conn(0).QueueMessage(&mqttconn.Message{Topic: "t", ResponseTopic: "r"})
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("mqtt 5")) {
		t.Fatalf("err %v, want ErrNeedsV5", err)
	}
}
