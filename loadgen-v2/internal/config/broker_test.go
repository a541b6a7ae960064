package config_test

import (
	"errors"
	"strconv"
	"testing"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/envconf"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/config"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/loadgentest"
)

// TestCheckBrokerQoS: QOS above what the broker carries is refused, naming
// QOS and how the broker said so: the Maximum QoS of an MQTT 5 CONNACK, or
// the QoS its SUBACKs granted (the only sign on MQTT 3.1.1: NATS and
// Mosquitto with max_qos 1 grant QoS 1 for QoS 2). Both at once give one
// line.
func TestCheckBrokerQoS(t *testing.T) {
	b := func(v byte) *byte { return &v }
	for _, tc := range []struct {
		name string
		qos  int
		caps mqttconn.Capabilities
		want string // "": accepted
	}{
		{"3.1.1 nothing known", 2, mqttconn.Capabilities{Protocol: "3.1.1"}, ""},
		{"granted as asked", 2, mqttconn.Capabilities{Protocol: "3.1.1", GrantedQoS: b(2)}, ""},
		{"qos 0 granted 0", 0, mqttconn.Capabilities{Protocol: "3.1.1", GrantedQoS: b(0)}, ""},
		{"granted less", 2, mqttconn.Capabilities{Protocol: "3.1.1", GrantedQoS: b(1)},
			"QOS=2: the broker granted QoS 1 on the subscriptions (it does not support QoS 2); set QOS=1 or lower"},
		{"granted 0", 1, mqttconn.Capabilities{Protocol: "3.1.1", GrantedQoS: b(0)},
			"QOS=1: the broker granted QoS 0 on the subscriptions (it does not support QoS 1); set QOS=0 or lower"},
		{"announced and granted", 2, mqttconn.Capabilities{Protocol: "5", MaximumQoS: b(1), GrantedQoS: b(1)},
			"QOS=2: the broker announced Maximum QoS 1 at connect; set QOS=1 or lower"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			loadgentest.SetEnv(t, map[string]string{"QOS": strconv.Itoa(tc.qos)})
			c, err := config.Load()
			if err != nil {
				t.Fatal(err)
			}
			r, err := c.Resolve()
			if err != nil {
				t.Fatal(err)
			}
			err = r.CheckBroker(tc.caps)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if want := envconf.ErrInvalid.Error() + ":\n  " + tc.want; err == nil || !errors.Is(err, envconf.ErrInvalid) || err.Error() != want {
				t.Errorf("got  %v\nwant %s", err, want)
			}
		})
	}
}
