package mqttconn_test

import (
	"context"
	"strings"
	"testing"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/brokertest"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
)

// TestControlRetained: a control connection publishes a retained message
// (acknowledged), and a second one that subscribes afterwards receives it
// flagged retained, then a live publish flagged not retained. MQTT 3.1.1
// and 5, against the embedded broker.
func TestControlRetained(t *testing.T) {
	for _, v := range []byte{4, 5} {
		t.Run(mqttconn.VersionName(v), func(t *testing.T) {
			b := brokertest.Start(t)
			ctx := context.Background()
			o := mqttconn.Options{Broker: b.URL(), ProtocolVersion: v}
			w, err := mqttconn.DialControl(ctx, o, mqttconn.ControlOptions{ClientID: "writer"})
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			if !w.RetainAvailable() {
				t.Fatal("the embedded broker keeps retained messages")
			}
			if err := w.Publish(ctx, "ctl/x", []byte("held"), true); err != nil {
				t.Fatal(err)
			}
			type msg struct {
				payload  string
				retained bool
			}
			got := make(chan msg, 4)
			r, err := mqttconn.DialControl(ctx, o, mqttconn.ControlOptions{ClientID: "reader", OnMessage: func(topic string, p []byte, retained bool) {
				got <- msg{topic + " " + string(p), retained}
			}})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if err := r.Subscribe(ctx, "ctl/#"); err != nil {
				t.Fatal(err)
			}
			if m := <-got; m != (msg{"ctl/x held", true}) {
				t.Errorf("on subscribing: %+v, want the retained message flagged retained", m)
			}
			if err := w.Publish(ctx, "ctl/x", []byte("live"), false); err != nil {
				t.Fatal(err)
			}
			// A broker may acknowledge a publish before it has forwarded it
			// (mochi does): "held" can come a second time, live.
			m := <-got
			if m == (msg{"ctl/x held", false}) {
				m = <-got
			}
			if m != (msg{"ctl/x live", false}) {
				t.Errorf("live: %+v, want not retained", m)
			}
		})
	}
}

// TestControlRefusesBadURL: the broker URL is checked before dialling.
func TestControlRefusesBadURL(t *testing.T) {
	_, err := mqttconn.DialControl(context.Background(), mqttconn.Options{Broker: "http://x"}, mqttconn.ControlOptions{ClientID: "c"})
	if err == nil || !strings.Contains(err.Error(), "http://x") {
		t.Errorf("err %v, want the URL named", err)
	}
}
