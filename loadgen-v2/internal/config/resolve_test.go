package config_test

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/wire"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/config"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/loadgentest"
)

// TestValidateIsPure: Validate changes nothing, reads no machine default
// (INSTANCE_ID stays unset) and gives the same answer twice; Resolve fills
// the defaults in its own copy.
func TestValidateIsPure(t *testing.T) {
	loadgentest.SetEnv(t, map[string]string{"CLIENT_ID_OFFSET": "7"})
	c, err := config.Load()
	if err != nil {
		t.Fatal(err)
	}
	before := *c
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*c, before) || c.InstanceID != "" {
		t.Errorf("Validate changed the config: %+v", *c)
	}
	r, err := c.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	if c.InstanceID != "" || r.InstanceID == "" || r.Offset != 7 {
		t.Errorf("Resolve: config INSTANCE_ID %q, resolved %q, offset %d", c.InstanceID, r.InstanceID, r.Offset)
	}
}

// TestResolve: what the engines take, per protocol: the topics of each shard,
// the subscriptions of each connection, the requester and the MQTT options.
func TestResolve(t *testing.T) {
	for _, tc := range []struct {
		name  string
		env   map[string]string
		check func(t *testing.T, r *config.Resolved)
	}{
		{"envelope, per-shard response topics", map[string]string{"SHARDS": "4", "CONNECTIONS": "2", "PAYLOAD_BYTES": "100"}, func(t *testing.T, r *config.Resolved) {
			if !slices.Equal(r.RequestTopics, []string{"req/0", "req/1", "req/2", "req/3"}) || r.ResponseTopics[3] != "resp/lg-1/3" {
				t.Errorf("topics %v %v", r.RequestTopics, r.ResponseTopics)
			}
			if s := r.MQTT.Subscriptions(1); !slices.Equal(s, []string{"resp/lg-1/1", "resp/lg-1/3"}) {
				t.Errorf("connection 1 subscribes %v", s)
			}
			q := r.Requester
			if q.Mode != wire.Envelope || q.Size != 100 || q.V5 || q.Filler != nil || q.Instance != "lg-1" || r.Protocol.Label != "envelope" {
				t.Errorf("requester %+v, label %q", q, r.Protocol.Label)
			}
			if r.MQTT.ProtocolVersion != 4 || r.MQTT.Connections != 2 || r.MQTT.Plain || !strings.HasPrefix(r.MQTT.ClientIDPrefix, "lg-lg-1-"+r.RunName()) {
				t.Errorf("options %+v", r.MQTT)
			}
			if r.ShardOf(5) != 1 || r.ConnOf(5) != 1 || r.ConnOf(6) != 0 {
				t.Errorf("client 5: shard %d connection %d; client 6: connection %d", r.ShardOf(5), r.ConnOf(5), r.ConnOf(6))
			}
		}},
		{"MQTT 5 properties, filler, one response topic", map[string]string{"MQTT_VERSION": "5", "PAYLOAD_BYTES": "3", "RESPONSE_TOPIC": "answers/{{instance}}", "REQUEST_TIMEOUT": "1500ms", "CONNECTIONS": "3"}, func(t *testing.T, r *config.Resolved) {
			if s0, s1 := r.MQTT.Subscriptions(0), r.MQTT.Subscriptions(1); !slices.Equal(s0, []string{"answers/lg-1"}) || s1 != nil {
				t.Errorf("subscriptions %v, %v; want the one topic on connection 0", s0, s1)
			}
			q := r.Requester
			if q.Mode != wire.Properties || string(q.Filler) != "xxx" || !q.V5 || q.ExpirySeconds != 2 || r.Protocol.Label != "properties" {
				t.Errorf("requester %+v", q)
			}
		}},
		{"JSON", map[string]string{"CORRELATE": "json:rid", "REQUEST_TEMPLATE": `{"rid":"{{id}}"}`, "CLIENT_ID_OFFSET": "1000", "TRANSPORT": "fast"}, func(t *testing.T, r *config.Resolved) {
			if q := r.Requester; q.Mode != wire.JSON || q.Field != "rid" || q.Template == nil || r.Protocol.Label != "json:rid" {
				t.Errorf("requester %+v, label %q", q, r.Protocol.Label)
			}
			if r.Offset != 1000 || r.ShardOf(0) != 1000%256 {
				t.Errorf("offset %d, shard of client 0 %d", r.Offset, r.ShardOf(0))
			}
		}},
		{"plain paho", map[string]string{"TRANSPORT": "paho"}, func(t *testing.T, r *config.Resolved) {
			if !r.MQTT.Plain {
				t.Error("TRANSPORT=paho is not Plain")
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"INSTANCE_ID": "lg-1"}
			for k, v := range tc.env {
				env[k] = v
			}
			r, err := load(t, env)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, r)
		})
	}
}

// TestResolveRunIDs: every Resolve is a new run.
func TestResolveRunIDs(t *testing.T) {
	loadgentest.SetEnv(t, map[string]string{"INSTANCE_ID": "lg"})
	c, err := config.Load()
	if err != nil {
		t.Fatal(err)
	}
	a, _ := c.Resolve()
	b, _ := c.Resolve()
	if a.RunID == b.RunID || len(a.RunName()) != 8 {
		t.Errorf("run ids %s and %s", a.RunName(), b.RunName())
	}
}

// TestResolveReadsThePasswordFile: the secrets are read by Resolve, into the
// options.
func TestResolveReadsThePasswordFile(t *testing.T) {
	pw := t.TempDir() + "/pw"
	if err := os.WriteFile(pw, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := load(t, map[string]string{"MQTT_USERNAME": "u", "MQTT_PASSWORD_FILE": pw})
	if err != nil {
		t.Fatal(err)
	}
	if r.MQTT.Username != "u" || r.MQTT.Password != "secret" {
		t.Errorf("credentials %q %q", r.MQTT.Username, r.MQTT.Password)
	}
}
