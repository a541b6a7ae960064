package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/envconf"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/wire"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/config"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/loadgentest"
)

// load reads env as the binary does: Load (parse, Validate), then Resolve.
func load(t *testing.T, env map[string]string) (*config.Resolved, error) {
	t.Helper()
	loadgentest.SetEnv(t, env)
	c, err := config.Load()
	if err != nil {
		return nil, err
	}
	return c.Resolve()
}

func TestEnvVarsFound(t *testing.T) {
	vars := strings.Join(loadgentest.EnvVars(), " ")
	for _, k := range []string{"BROKER", "VIRTUAL_CLIENTS", "CLIENT_ID_OFFSET", "SLO_MATCH_RATE", "TLS_INSECURE", "MQTT_PASSWORD_FILE"} {
		if !strings.Contains(vars, k) {
			t.Errorf("variable %s not found in the Config tags: %s", k, vars)
		}
	}
}

func TestDefaults(t *testing.T) {
	c, err := load(t, nil)
	if err != nil {
		t.Fatalf("Load with defaults: %v", err)
	}
	tests := []struct {
		name      string
		got, want any
	}{
		{"BROKER", c.Broker, "tcp://localhost:1883"},
		{"VIRTUAL_CLIENTS", c.VirtualClients, 100000},
		{"CONNECTIONS", c.Connections, 100},
		{"SHARDS", c.Shards, 256},
		{"INTERVAL_MS", c.IntervalMS, 2000},
		{"MAX_INFLIGHT_PER_CLIENT", c.MaxInflight, 1},
		{"PUBLISH_WORKERS", c.PublishWorkers, 20},
		{"BATCH_SIZE", c.BatchSize, 500},
		{"QOS", c.QoS, 0},
		{"REQUEST_TIMEOUT", c.RequestTimeout, 10 * time.Second},
		{"DURATION", c.Duration, time.Duration(0)},
		{"CLIENT_ID_OFFSET", c.ClientIDOffset, "0"},
		{"METRICS_ADDR", c.MetricsAddr, ":8090"},
		{"PROGRESS_INTERVAL", c.ProgressEvery, 5 * time.Second},
		{"METRICS_LINGER", c.MetricsLinger, time.Duration(0)},
		{"LOG_LEVEL", c.LogLevel, "info"},
		{"TLS_INSECURE", c.Insecure, false},
		{"Offset", c.Offset, uint32(0)},
		{"Interval()", c.Interval(), 2 * time.Second},
		{"Rate()", c.Rate(), 50000.0},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	if !wire.ValidTopicName(c.InstanceID) {
		t.Errorf("default INSTANCE_ID %q is not usable in a topic", c.InstanceID)
	}
	if !strings.HasSuffix(c.InstanceID, "-"+strconv.Itoa(os.Getpid())) {
		t.Errorf("default INSTANCE_ID %q does not end in -pid", c.InstanceID)
	}
}

func TestValid(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		env    map[string]string
		offset uint32
		check  func(t *testing.T, c *config.Resolved)
	}{
		{name: "auto offset from the pod ordinal", env: map[string]string{"CLIENT_ID_OFFSET": "auto", "INSTANCE_ID": "loadgen-3", "VIRTUAL_CLIENTS": "1000"}, offset: 3000},
		{name: "auto offset, ordinal 0", env: map[string]string{"CLIENT_ID_OFFSET": "auto", "INSTANCE_ID": "lg-0", "VIRTUAL_CLIENTS": "1000"}, offset: 0},
		{name: "auto offset, double dash", env: map[string]string{"CLIENT_ID_OFFSET": "auto", "INSTANCE_ID": "loadgen--3", "VIRTUAL_CLIENTS": "7"}, offset: 21},
		{name: "auto offset, dashes in the name", env: map[string]string{"CLIENT_ID_OFFSET": "auto", "INSTANCE_ID": "my-load-gen-12", "VIRTUAL_CLIENTS": "10"}, offset: 120},
		{name: "explicit offset", env: map[string]string{"CLIENT_ID_OFFSET": "5000"}, offset: 5000},
		{name: "offset up to the last id", env: map[string]string{"CLIENT_ID_OFFSET": "4294967286", "VIRTUAL_CLIENTS": "10"}, offset: 4294967286},
		{name: "connections equal shards", env: map[string]string{"CONNECTIONS": "16", "SHARDS": "16"}},
		{name: "qos 2", env: map[string]string{"QOS": "2"}},
		{name: "uppercase log level", env: map[string]string{"LOG_LEVEL": "DEBUG"}},
		{name: "slo bounds", env: map[string]string{"SLO_MATCH_RATE": "1", "SLO_P99_MS": "0.5"}},
		{name: "warmup within duration", env: map[string]string{"DURATION": "1m", "WARMUP": "59s"}},
		{name: "warmup without duration", env: map[string]string{"WARMUP": "1h"}},
		{name: "tls insecure with ssl", env: map[string]string{"BROKER": "ssl://broker:8883", "TLS_INSECURE": "true"}},
		{name: "mqtts without port", env: map[string]string{"BROKER": "mqtts://broker"}},
		{name: "password file", env: map[string]string{"MQTT_USERNAME": "u", "MQTT_PASSWORD_FILE": pw}},
		{name: "a million virtual clients", env: map[string]string{"VIRTUAL_CLIENTS": "1000000"}},
		{name: "interval 24 h", env: map[string]string{"INTERVAL_MS": "86400000"}},
		{name: "keepalive 5s", env: map[string]string{"KEEPALIVE": "5s"}},
		{name: "metrics linger 30s", env: map[string]string{"METRICS_LINGER": "30s"}, check: func(t *testing.T, c *config.Resolved) {
			if c.MetricsLinger != 30*time.Second {
				t.Errorf("METRICS_LINGER = %v, want 30s", c.MetricsLinger)
			}
		}},
		{name: "metrics linger 1h", env: map[string]string{"METRICS_LINGER": "1h"}},
		{name: "metrics linger 0 without metrics", env: map[string]string{"METRICS_LINGER": "0", "METRICS_ADDR": ""}},
		{name: "slo success", env: map[string]string{"SLO_SUCCESS_RATE": "0.999"}},
		{name: "UTF-8 instance id", env: map[string]string{"INSTANCE_ID": "lg-ü-1"}},
		{name: "payload 1 MiB", env: map[string]string{"PAYLOAD_BYTES": "1048576"}},
		{name: "interval 1 ms", env: map[string]string{"INTERVAL_MS": "1", "VIRTUAL_CLIENTS": "10"}, check: func(t *testing.T, c *config.Resolved) {
			if c.Interval() != time.Millisecond || c.Rate() != 10000 {
				t.Errorf("Interval %v Rate %v, want 1ms 10000", c.Interval(), c.Rate())
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := load(t, tc.env)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if c.Offset != tc.offset {
				t.Errorf("Offset = %d, want %d", c.Offset, tc.offset)
			}
			if tc.check != nil {
				tc.check(t, c)
			}
		})
	}
}

func TestInvalid(t *testing.T) {
	long := strings.Repeat("x", 256)
	existing := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(existing, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		env   map[string]string
		names []string // variables the error must name (as "NAME=")
		bare  bool     // a rule about presence: names without values (secrets stay out)
	}{
		// Not numbers / not durations.
		{name: "virtual clients not a number", env: map[string]string{"VIRTUAL_CLIENTS": "lots"}, names: []string{"VIRTUAL_CLIENTS"}},
		{name: "connections not a number", env: map[string]string{"CONNECTIONS": "1e2"}, names: []string{"CONNECTIONS"}},
		{name: "shards fractional", env: map[string]string{"SHARDS": "1.5"}, names: []string{"SHARDS"}},
		{name: "interval with unit", env: map[string]string{"INTERVAL_MS": "2s"}, names: []string{"INTERVAL_MS"}},
		{name: "inflight not a number", env: map[string]string{"MAX_INFLIGHT_PER_CLIENT": "one"}, names: []string{"MAX_INFLIGHT_PER_CLIENT"}},
		{name: "workers not a number", env: map[string]string{"PUBLISH_WORKERS": "x"}, names: []string{"PUBLISH_WORKERS"}},
		{name: "batch not a number", env: map[string]string{"BATCH_SIZE": "big"}, names: []string{"BATCH_SIZE"}},
		{name: "qos word", env: map[string]string{"QOS": "zero"}, names: []string{"QOS"}},
		{name: "timeout without unit", env: map[string]string{"REQUEST_TIMEOUT": "10"}, names: []string{"REQUEST_TIMEOUT"}},
		{name: "duration word", env: map[string]string{"DURATION": "forever"}, names: []string{"DURATION"}},
		{name: "warmup word", env: map[string]string{"WARMUP": "short"}, names: []string{"WARMUP"}},
		{name: "ramp up word", env: map[string]string{"RAMP_UP": "slow"}, names: []string{"RAMP_UP"}},
		{name: "payload not a number", env: map[string]string{"PAYLOAD_BYTES": "1KB"}, names: []string{"PAYLOAD_BYTES"}},
		{name: "progress word", env: map[string]string{"PROGRESS_INTERVAL": "often"}, names: []string{"PROGRESS_INTERVAL"}},
		{name: "slo p99 word", env: map[string]string{"SLO_P99_MS": "fast"}, names: []string{"SLO_P99_MS"}},
		{name: "slo match percent", env: map[string]string{"SLO_MATCH_RATE": "99%"}, names: []string{"SLO_MATCH_RATE"}},
		{name: "tls insecure word", env: map[string]string{"TLS_INSECURE": "yes please"}, names: []string{"TLS_INSECURE"}},
		// Protocol, correlation and templates.
		{name: "mqtt version 4.0", env: map[string]string{"MQTT_VERSION": "4.0"}, names: []string{"MQTT_VERSION"}},
		{name: "correlate unknown", env: map[string]string{"CORRELATE": "magic"}, names: []string{"CORRELATE"}},
		{name: "correlate properties on 3.1.1", env: map[string]string{"CORRELATE": "properties"}, names: []string{"CORRELATE"}},
		{name: "correlate json without field", env: map[string]string{"CORRELATE": "json:", "REQUEST_TEMPLATE": `{"id":"{{id}}"}`}, names: []string{"CORRELATE"}},
		{name: "correlate json without template", env: map[string]string{"CORRELATE": "json:id"}, names: []string{"CORRELATE"}},
		{name: "template without id", env: map[string]string{"REQUEST_TEMPLATE": `{"x":1}`, "CORRELATE": "json:id"}, names: []string{"REQUEST_TEMPLATE"}},
		{name: "template unknown placeholder", env: map[string]string{"REQUEST_TEMPLATE": `{"id":"{{id}}","u":"{{user}}"}`, "CORRELATE": "json:id"}, names: []string{"REQUEST_TEMPLATE"}},
		{name: "template with the envelope", env: map[string]string{"REQUEST_TEMPLATE": `{"id":"{{id}}"}`}, names: []string{"REQUEST_TEMPLATE"}},
		{name: "template file missing", env: map[string]string{"REQUEST_TEMPLATE": "@/nonexistent/t.json", "MQTT_VERSION": "5"}, names: []string{"REQUEST_TEMPLATE"}},
		{name: "response topic wildcard", env: map[string]string{"RESPONSE_TOPIC": "resp/{{instance}}/+/{{shard}}"}, names: []string{"RESPONSE_TOPIC"}},
		{name: "response topic with id", env: map[string]string{"RESPONSE_TOPIC": "resp/{{id}}", "MQTT_VERSION": "5"}, names: []string{"RESPONSE_TOPIC"}},
		{name: "envelope needs per-shard response topics", env: map[string]string{"RESPONSE_TOPIC": "resp/{{instance}}"}, names: []string{"RESPONSE_TOPIC"}},
		{name: "request topic hash", env: map[string]string{"REQUEST_TOPIC": "req/#"}, names: []string{"REQUEST_TOPIC"}},
		{name: "request topic empty", env: map[string]string{"REQUEST_TOPIC": ""}, names: []string{"REQUEST_TOPIC"}},
		{name: "paho transport with mqtt 5", env: map[string]string{"TRANSPORT": "paho", "MQTT_VERSION": "5"}, names: []string{"TRANSPORT"}},
		// Out of range.
		{name: "virtual clients 0", env: map[string]string{"VIRTUAL_CLIENTS": "0"}, names: []string{"VIRTUAL_CLIENTS"}},
		{name: "virtual clients negative", env: map[string]string{"VIRTUAL_CLIENTS": "-5"}, names: []string{"VIRTUAL_CLIENTS"}},
		{name: "virtual clients 2^31+1", env: map[string]string{"VIRTUAL_CLIENTS": "2147483649"}, names: []string{"VIRTUAL_CLIENTS"}},
		{name: "connections 0", env: map[string]string{"CONNECTIONS": "0"}, names: []string{"CONNECTIONS"}},
		{name: "connections negative", env: map[string]string{"CONNECTIONS": "-1"}, names: []string{"CONNECTIONS"}},
		{name: "connections 10001", env: map[string]string{"CONNECTIONS": "10001", "SHARDS": "65536"}, names: []string{"CONNECTIONS"}},
		{name: "shards 0", env: map[string]string{"SHARDS": "0"}, names: []string{"SHARDS"}},
		{name: "shards 65537", env: map[string]string{"SHARDS": "65537"}, names: []string{"SHARDS"}},
		{name: "connections > shards", env: map[string]string{"CONNECTIONS": "10", "SHARDS": "5"}, names: []string{"CONNECTIONS", "SHARDS"}},
		{name: "interval 0", env: map[string]string{"INTERVAL_MS": "0"}, names: []string{"INTERVAL_MS"}},
		{name: "interval negative", env: map[string]string{"INTERVAL_MS": "-1"}, names: []string{"INTERVAL_MS"}},
		{name: "interval beyond 24 h", env: map[string]string{"INTERVAL_MS": "86400001"}, names: []string{"INTERVAL_MS"}},
		{name: "interval overflowing ns", env: map[string]string{"INTERVAL_MS": "9223372036854775"}, names: []string{"INTERVAL_MS"}},
		{name: "client state beyond memory", env: map[string]string{"VIRTUAL_CLIENTS": "2147483648", "MAX_INFLIGHT_PER_CLIENT": "64"}, names: []string{"VIRTUAL_CLIENTS", "MAX_INFLIGHT_PER_CLIENT"}},
		{name: "keepalive 0", env: map[string]string{"KEEPALIVE": "0s"}, names: []string{"KEEPALIVE"}},
		{name: "keepalive beyond MQTT", env: map[string]string{"KEEPALIVE": "19h"}, names: []string{"KEEPALIVE"}},
		{name: "slo success 1.5", env: map[string]string{"SLO_SUCCESS_RATE": "1.5"}, names: []string{"SLO_SUCCESS_RATE"}},
		{name: "inflight 0", env: map[string]string{"MAX_INFLIGHT_PER_CLIENT": "0"}, names: []string{"MAX_INFLIGHT_PER_CLIENT"}},
		{name: "inflight 65", env: map[string]string{"MAX_INFLIGHT_PER_CLIENT": "65"}, names: []string{"MAX_INFLIGHT_PER_CLIENT"}},
		{name: "workers 0", env: map[string]string{"PUBLISH_WORKERS": "0"}, names: []string{"PUBLISH_WORKERS"}},
		{name: "workers 1025", env: map[string]string{"PUBLISH_WORKERS": "1025"}, names: []string{"PUBLISH_WORKERS"}},
		{name: "batch 0", env: map[string]string{"BATCH_SIZE": "0"}, names: []string{"BATCH_SIZE"}},
		{name: "batch too big", env: map[string]string{"BATCH_SIZE": "1000001"}, names: []string{"BATCH_SIZE"}},
		{name: "qos 3", env: map[string]string{"QOS": "3"}, names: []string{"QOS"}},
		{name: "qos negative", env: map[string]string{"QOS": "-1"}, names: []string{"QOS"}},
		{name: "timeout 0", env: map[string]string{"REQUEST_TIMEOUT": "0s"}, names: []string{"REQUEST_TIMEOUT"}},
		{name: "timeout negative", env: map[string]string{"REQUEST_TIMEOUT": "-1s"}, names: []string{"REQUEST_TIMEOUT"}},
		{name: "duration negative", env: map[string]string{"DURATION": "-1s"}, names: []string{"DURATION"}},
		{name: "warmup negative", env: map[string]string{"WARMUP": "-1s"}, names: []string{"WARMUP"}},
		{name: "warmup = duration", env: map[string]string{"WARMUP": "10s", "DURATION": "10s"}, names: []string{"WARMUP", "DURATION"}},
		{name: "ramp up negative", env: map[string]string{"RAMP_UP": "-1m"}, names: []string{"RAMP_UP"}},
		{name: "payload negative", env: map[string]string{"PAYLOAD_BYTES": "-1"}, names: []string{"PAYLOAD_BYTES"}},
		{name: "payload over 1 MiB", env: map[string]string{"PAYLOAD_BYTES": "1048577"}, names: []string{"PAYLOAD_BYTES"}},
		{name: "progress negative", env: map[string]string{"PROGRESS_INTERVAL": "-5s"}, names: []string{"PROGRESS_INTERVAL"}},
		{name: "metrics linger negative", env: map[string]string{"METRICS_LINGER": "-1s"}, names: []string{"METRICS_LINGER"}},
		{name: "metrics linger beyond 1h", env: map[string]string{"METRICS_LINGER": "2h"}, names: []string{"METRICS_LINGER"}},
		{name: "metrics linger without unit", env: map[string]string{"METRICS_LINGER": "30"}, names: []string{"METRICS_LINGER"}},
		{name: "metrics linger without metrics", env: map[string]string{"METRICS_LINGER": "30s", "METRICS_ADDR": ""}, names: []string{"METRICS_LINGER"}},
		{name: "slo p99 negative", env: map[string]string{"SLO_P99_MS": "-1"}, names: []string{"SLO_P99_MS"}},
		{name: "slo p99 NaN", env: map[string]string{"SLO_P99_MS": "NaN"}, names: []string{"SLO_P99_MS"}},
		{name: "slo match 2", env: map[string]string{"SLO_MATCH_RATE": "2"}, names: []string{"SLO_MATCH_RATE"}},
		{name: "slo match negative", env: map[string]string{"SLO_MATCH_RATE": "-0.1"}, names: []string{"SLO_MATCH_RATE"}},
		{name: "slo match NaN", env: map[string]string{"SLO_MATCH_RATE": "NaN"}, names: []string{"SLO_MATCH_RATE"}},
		{name: "log level", env: map[string]string{"LOG_LEVEL": "verbose"}, names: []string{"LOG_LEVEL"}},
		// Instance id and client id offset.
		{name: "instance id with slash", env: map[string]string{"INSTANCE_ID": "lg/1"}, names: []string{"INSTANCE_ID"}},
		{name: "instance id with plus", env: map[string]string{"INSTANCE_ID": "lg+1"}, names: []string{"INSTANCE_ID"}},
		{name: "instance id with hash", env: map[string]string{"INSTANCE_ID": "#"}, names: []string{"INSTANCE_ID"}},
		{name: "instance id 256 bytes", env: map[string]string{"INSTANCE_ID": long}, names: []string{"INSTANCE_ID"}},
		{name: "instance id with newline", env: map[string]string{"INSTANCE_ID": "lg\n1"}, names: []string{"INSTANCE_ID"}},
		{name: "instance id with escape", env: map[string]string{"INSTANCE_ID": "lg\x1b[2J"}, names: []string{"INSTANCE_ID"}},
		{name: "instance id invalid UTF-8", env: map[string]string{"INSTANCE_ID": "lg-\xff"}, names: []string{"INSTANCE_ID"}},
		{name: "auto without ordinal", env: map[string]string{"CLIENT_ID_OFFSET": "auto", "INSTANCE_ID": "loadgen"}, names: []string{"CLIENT_ID_OFFSET", "INSTANCE_ID"}},
		{name: "auto with word ordinal", env: map[string]string{"CLIENT_ID_OFFSET": "auto", "INSTANCE_ID": "loadgen-x"}, names: []string{"CLIENT_ID_OFFSET", "INSTANCE_ID"}},
		{name: "auto with empty ordinal", env: map[string]string{"CLIENT_ID_OFFSET": "auto", "INSTANCE_ID": "loadgen-"}, names: []string{"CLIENT_ID_OFFSET", "INSTANCE_ID"}},
		{name: "offset word", env: map[string]string{"CLIENT_ID_OFFSET": "first"}, names: []string{"CLIENT_ID_OFFSET"}},
		{name: "offset negative", env: map[string]string{"CLIENT_ID_OFFSET": "-1"}, names: []string{"CLIENT_ID_OFFSET"}},
		{name: "offset 2^32", env: map[string]string{"CLIENT_ID_OFFSET": "4294967296"}, names: []string{"CLIENT_ID_OFFSET"}},
		{name: "offset + clients overflow", env: map[string]string{"CLIENT_ID_OFFSET": "4294967287", "VIRTUAL_CLIENTS": "10"}, names: []string{"CLIENT_ID_OFFSET", "VIRTUAL_CLIENTS"}},
		{name: "auto offset overflow", env: map[string]string{"CLIENT_ID_OFFSET": "auto", "INSTANCE_ID": "lg-5000", "VIRTUAL_CLIENTS": "1000000"}, names: []string{"CLIENT_ID_OFFSET", "VIRTUAL_CLIENTS"}},
		{name: "auto huge ordinal", env: map[string]string{"CLIENT_ID_OFFSET": "auto", "INSTANCE_ID": "lg-99999999999999999999"}, names: []string{"CLIENT_ID_OFFSET"}},
		// Broker and security.
		{name: "http broker", env: map[string]string{"BROKER": "http://x"}, names: []string{"BROKER"}},
		{name: "websocket broker", env: map[string]string{"BROKER": "ws://x:80"}, names: []string{"BROKER"}},
		{name: "broker without host", env: map[string]string{"BROKER": "tcp://"}, names: []string{"BROKER"}},
		{name: "broker with port only", env: map[string]string{"BROKER": "tcp://:1883"}, names: []string{"BROKER"}},
		{name: "broker not a URL", env: map[string]string{"BROKER": "::bad"}, names: []string{"BROKER"}},
		{name: "broker without scheme", env: map[string]string{"BROKER": "localhost:1883"}, names: []string{"BROKER"}},
		{name: "broker empty", env: map[string]string{"BROKER": ""}, names: []string{"BROKER"}},
		{name: "tls insecure with tcp", env: map[string]string{"BROKER": "tcp://x:1883", "TLS_INSECURE": "true"}, names: []string{"BROKER"}},
		{name: "password and password file", env: map[string]string{"MQTT_PASSWORD": "s3cr3t-pw", "MQTT_PASSWORD_FILE": existing}, names: []string{"MQTT_PASSWORD", "MQTT_PASSWORD_FILE"}, bare: true},
		{name: "missing password file", env: map[string]string{"MQTT_PASSWORD_FILE": "/nonexistent/pw"}, names: []string{"MQTT_PASSWORD_FILE"}},
		{name: "cert without key", env: map[string]string{"BROKER": "ssl://x", "TLS_CERT_FILE": existing}, names: []string{"TLS_CERT_FILE", "TLS_KEY_FILE"}, bare: true},
		{name: "missing CA file", env: map[string]string{"BROKER": "ssl://x", "TLS_CA_FILE": "/nonexistent/ca.pem"}, names: []string{"TLS_CA_FILE"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := load(t, tc.env)
			if err == nil {
				t.Fatalf("Load and Resolve accepted %v: %+v", tc.env, c)
			}
			if !errors.Is(err, envconf.ErrInvalid) {
				t.Errorf("error does not wrap envconf.ErrInvalid: %v", err)
			}
			for _, name := range tc.names {
				if tc.bare {
					if !strings.Contains(err.Error(), name) {
						t.Errorf("error does not name %s:\n%v", name, err)
					}
				} else if !strings.Contains(err.Error(), name+"=") {
					t.Errorf("error does not name %s=...:\n%v", name, err)
				}
			}
			if pw := tc.env["MQTT_PASSWORD"]; pw != "" && strings.Contains(err.Error(), pw) {
				t.Errorf("error shows the password:\n%v", err)
			}
			if tc.bare {
				return
			}
			// The value is quoted or shown verbatim next to the name.
			for k, v := range tc.env {
				if k == tc.names[0] && v != "" && len(v) < 100 && !strings.Contains(err.Error(), v) && !strings.Contains(err.Error(), strconv.Quote(v)) {
					t.Errorf("error does not show the value %q of %s:\n%v", v, k, err)
				}
			}
		})
	}
}

// TestInvalidReportsEverything: several problems are reported at once.
func TestInvalidReportsEverything(t *testing.T) {
	_, err := load(t, map[string]string{"QOS": "3", "SLO_MATCH_RATE": "2", "INSTANCE_ID": "a/b", "BROKER": "http://x"})
	if err == nil {
		t.Fatal("Load succeeded")
	}
	for _, name := range []string{"QOS=3", "SLO_MATCH_RATE=2", "INSTANCE_ID=a/b", "BROKER=http://x"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("joined error lacks %s:\n%v", name, err)
		}
	}
}

func defaults() config.Config {
	return config.Config{
		Broker: "tcp://localhost:1883", VirtualClients: 1000, Connections: 10, Shards: 256, IntervalMS: 1000,
		MaxInflight: 1, PublishWorkers: 4, BatchSize: 500, RequestTimeout: time.Second, ClientIDOffset: "0",
		ProgressEvery: time.Second, LogLevel: "info", KeepAlive: 30 * time.Second,
	}
}

// FuzzValidate: Validate never panics on any instance id, offset, broker or
// log level, and what it accepts resolves to something usable (or fails
// Resolve only on what Validate leaves to it: the hostname's ordinal, the
// memory).
func FuzzValidate(f *testing.F) {
	f.Add("loadgen-3", "auto", "tcp://localhost:1883", "info", 1000)
	f.Add("lg", "0", "ssl://b:8883", "DEBUG", 1)
	f.Add("-", "auto", "::bad", "", -1)
	f.Add("a-4294967295", "auto", "mqtt://[::1]:1883", "warn", 2)
	f.Add("", "4294967295", "tcp://", "error", 0)
	f.Fuzz(func(t *testing.T, instance, offset, broker, level string, clients int) {
		c := defaults()
		c.InstanceID, c.ClientIDOffset, c.Broker, c.LogLevel, c.VirtualClients = instance, offset, broker, level, clients
		before := c
		err := c.Validate()
		if !reflect.DeepEqual(c, before) {
			t.Fatalf("Validate changed the config: %+v, was %+v", c, before)
		}
		if err != nil {
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				if e == nil {
					t.Fatal("Validate joined a nil error")
				}
			}
			return
		}
		r, err := c.Resolve()
		if err != nil {
			if !errors.Is(err, envconf.ErrInvalid) || !strings.Contains(err.Error(), "CLIENT_ID_OFFSET=auto") && !strings.Contains(err.Error(), "VIRTUAL_CLIENTS=") {
				t.Fatalf("Resolve failed on what Validate should have refused: %v", err)
			}
			return
		}
		if !wire.ValidTopicName(r.InstanceID) {
			t.Fatalf("accepted INSTANCE_ID %q", r.InstanceID)
		}
		if err := mqttconn.ValidateBrokerURL(r.Broker); err != nil {
			t.Fatalf("accepted BROKER %q: %v", r.Broker, err)
		}
		if uint64(r.Offset)+uint64(r.VirtualClients) > 1<<32 {
			t.Fatalf("accepted offset %d + %d clients beyond 2^32", r.Offset, r.VirtualClients)
		}
		if c.ClientIDOffset == "auto" && c.InstanceID != "" {
			i := strings.LastIndexByte(c.InstanceID, '-')
			ord, err := strconv.ParseUint(c.InstanceID[i+1:], 10, 32)
			if i < 0 || err != nil || uint64(r.Offset) != ord*uint64(c.VirtualClients) {
				t.Fatalf("auto offset %d for INSTANCE_ID %q and %d clients", r.Offset, c.InstanceID, c.VirtualClients)
			}
		}
	})
}
