package config

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/envconf"
)

// variables lists every variable of Config, so tests start from an empty
// environment whatever the machine has set.
var variables = []string{
	"MQTT_BROKER", "MQTT_SUB", "SHARED_SUBSCRIPTION", "SHARE_GROUP", "CONNECTIONS",
	"MIN_WORKERS", "MAX_WORKERS", "QUEUE_CAP", "QUEUE_MAX_BYTES", "SCALE_UP_THRESHOLD", "SCALE_DOWN_THRESHOLD",
	"SCALE_INTERVAL", "SCALE_TARGET_UTILIZATION", "SCALE_MAX_WAIT", "SCALE_DOWN_WINDOW", "MODE", "SLEEP_MS", "SLEEP_JITTER_MS", "CPU_ITERATIONS", "DROP_ON_FULL",
	"HTTP_ADDR", "SHUTDOWN_TIMEOUT", "QOS", "WRITE_LINGER", "KEEPALIVE", "CLIENT_ID_PREFIX", "LOG_LEVEL",
	"MQTT_USERNAME", "MQTT_PASSWORD", "MQTT_PASSWORD_FILE", "TLS_CA_FILE", "TLS_CERT_FILE",
	"TLS_KEY_FILE", "TLS_SERVER_NAME", "TLS_INSECURE",
	"MQTT_VERSION", "CORRELATE", "REPLY_TO", "RESPONSE_TEMPLATE", "RESPONSE_BYTES",
}

func cleanEnv(t *testing.T) {
	t.Helper()
	for _, v := range variables {
		t.Setenv(v, "") // restores the original value after the test
		os.Unsetenv(v)
	}
}

func TestDefaultsMatchLoad(t *testing.T) {
	cleanEnv(t)
	got, err := Load()
	if err != nil {
		t.Fatalf("Load with an empty environment: %v", err)
	}
	if want := Defaults(); !reflect.DeepEqual(got, want) {
		t.Errorf("Load() = %+v\nDefaults() = %+v", got, want)
	}
	if err := Defaults().Validate(); err != nil {
		t.Errorf("Defaults().Validate() = %v", err)
	}
}

// load loads the environment and validates it, as main does.
func load() (*Config, error) {
	c, err := Load()
	if err != nil {
		return nil, err
	}
	return c, c.Validate()
}

func TestLoadValid(t *testing.T) {
	cleanEnv(t)
	t.Setenv("SHARED_SUBSCRIPTION", "false")
	t.Setenv("SHARE_GROUP", "")
	t.Setenv("MODE", "sleep")
	t.Setenv("SLEEP_MS", "0")
	t.Setenv("WRITE_LINGER", "0s")
	t.Setenv("HTTP_ADDR", "")
	t.Setenv("MIN_WORKERS", "1")
	t.Setenv("MAX_WORKERS", "1")
	t.Setenv("MQTT_SUB", "a/+/b/#")
	t.Setenv("MQTT_BROKER", "mqtts://broker.example:8883")
	c, err := load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.Shared || c.HTTPAddr != "" || c.MinWorkers != 1 || c.WriteLinger != 0 {
		t.Errorf("Load() = %+v", c)
	}
}

func TestLoadInvalid(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want []string // every substring must appear in the error
	}{
		{"broker not a URL", map[string]string{"MQTT_BROKER": "::nope"}, []string{"MQTT_BROKER=::nope"}},
		{"broker scheme", map[string]string{"MQTT_BROKER": "http://localhost:1883"}, []string{"MQTT_BROKER=http://localhost:1883", "scheme"}},
		{"broker without host", map[string]string{"MQTT_BROKER": "tcp://"}, []string{"MQTT_BROKER=tcp://", "no host"}},
		{"sub empty", map[string]string{"MQTT_SUB": ""}, []string{"MQTT_SUB=\"\""}},
		{"sub bad wildcard", map[string]string{"MQTT_SUB": "req/a+"}, []string{"MQTT_SUB=req/a+"}},
		{"sub # not last", map[string]string{"MQTT_SUB": "req/#/x"}, []string{"MQTT_SUB=req/#/x"}},
		{"sub already shared", map[string]string{"MQTT_SUB": "$share/g/req/+"}, []string{"MQTT_SUB=$share/g/req/+", "SHARE_GROUP"}},
		{"shared not a bool", map[string]string{"SHARED_SUBSCRIPTION": "maybe"}, []string{"SHARED_SUBSCRIPTION", "maybe", "boolean"}},
		{"share group empty", map[string]string{"SHARE_GROUP": ""}, []string{"SHARE_GROUP=\"\"", "SHARED_SUBSCRIPTION=false"}},
		{"share group slash", map[string]string{"SHARE_GROUP": "a/b"}, []string{"SHARE_GROUP=a/b"}},
		{"worker count with shared", map[string]string{"WORKER_COUNT": "2"}, []string{"WORKER_COUNT=2", "SHARED_SUBSCRIPTION=false"}},
		{"worker count zero", map[string]string{"WORKER_COUNT": "0"}, []string{"WORKER_COUNT=0", "between 1 and 65536"}},
		{"worker index not below count", map[string]string{"SHARED_SUBSCRIPTION": "false", "WORKER_COUNT": "2", "WORKER_INDEX": "2"}, []string{"WORKER_INDEX=2", "below WORKER_COUNT=2"}},
		{"worker index not a number", map[string]string{"WORKER_INDEX": "one"}, []string{"WORKER_INDEX=\"one\"", "auto"}},
		{"worker count above shards", map[string]string{"SHARED_SUBSCRIPTION": "false", "WORKER_COUNT": "8", "SHARDS": "4"}, []string{"WORKER_COUNT=8", "SHARDS=4"}},
		{"split needs one +", map[string]string{"SHARED_SUBSCRIPTION": "false", "WORKER_COUNT": "2", "MQTT_SUB": "req/#"}, []string{"MQTT_SUB=req/#", "one '+'"}},
		{"connections not a number", map[string]string{"CONNECTIONS": "ten"}, []string{"CONNECTIONS", "ten", "integer"}},
		{"connections zero", map[string]string{"CONNECTIONS": "0"}, []string{"CONNECTIONS=0", "between 1 and 1000"}},
		{"connections negative", map[string]string{"CONNECTIONS": "-3"}, []string{"CONNECTIONS=-3"}},
		{"connections too many", map[string]string{"CONNECTIONS": "1001"}, []string{"CONNECTIONS=1001"}},
		{"min workers not a number", map[string]string{"MIN_WORKERS": "1.5"}, []string{"MIN_WORKERS", "1.5", "integer"}},
		{"min workers zero", map[string]string{"MIN_WORKERS": "0"}, []string{"MIN_WORKERS=0", "at least 1"}},
		{"min workers negative", map[string]string{"MIN_WORKERS": "-1"}, []string{"MIN_WORKERS=-1"}},
		{"max workers zero", map[string]string{"MAX_WORKERS": "0"}, []string{"MAX_WORKERS=0"}},
		{"max workers not a number", map[string]string{"MAX_WORKERS": "lots"}, []string{"MAX_WORKERS", "lots"}},
		{"max workers too many", map[string]string{"MAX_WORKERS": "100001"}, []string{"MAX_WORKERS=100001"}},
		{"min greater than max", map[string]string{"MIN_WORKERS": "50", "MAX_WORKERS": "10"}, []string{"MIN_WORKERS=50 is greater than MAX_WORKERS=10"}},
		{"queue cap zero", map[string]string{"QUEUE_CAP": "0"}, []string{"QUEUE_CAP=0"}},
		{"queue cap negative", map[string]string{"QUEUE_CAP": "-1"}, []string{"QUEUE_CAP=-1"}},
		{"queue cap not a number", map[string]string{"QUEUE_CAP": "1e5"}, []string{"QUEUE_CAP", "1e5"}},
		{"queue cap too big", map[string]string{"QUEUE_CAP": "10000001"}, []string{"QUEUE_CAP=10000001"}},
		{"up threshold not a number", map[string]string{"SCALE_UP_THRESHOLD": "high"}, []string{"SCALE_UP_THRESHOLD", "high", "number"}},
		{"up threshold zero", map[string]string{"SCALE_UP_THRESHOLD": "0"}, []string{"SCALE_UP_THRESHOLD=0", "between 0 and 1"}},
		{"up threshold one", map[string]string{"SCALE_UP_THRESHOLD": "1"}, []string{"SCALE_UP_THRESHOLD=1"}},
		{"up threshold negative", map[string]string{"SCALE_UP_THRESHOLD": "-0.5"}, []string{"SCALE_UP_THRESHOLD=-0.5"}},
		{"down threshold zero", map[string]string{"SCALE_DOWN_THRESHOLD": "0"}, []string{"SCALE_DOWN_THRESHOLD=0"}},
		{"down threshold above one", map[string]string{"SCALE_DOWN_THRESHOLD": "1.2"}, []string{"SCALE_DOWN_THRESHOLD=1.2"}},
		{"down threshold not a number", map[string]string{"SCALE_DOWN_THRESHOLD": "low"}, []string{"SCALE_DOWN_THRESHOLD", "low"}},
		{"thresholds crossed", map[string]string{"SCALE_UP_THRESHOLD": "0.3", "SCALE_DOWN_THRESHOLD": "0.5"}, []string{"SCALE_DOWN_THRESHOLD=0.5 must be below SCALE_UP_THRESHOLD=0.3"}},
		{"thresholds equal", map[string]string{"SCALE_UP_THRESHOLD": "0.5", "SCALE_DOWN_THRESHOLD": "0.5"}, []string{"SCALE_DOWN_THRESHOLD=0.5", "SCALE_UP_THRESHOLD=0.5"}},
		{"scale interval not a duration", map[string]string{"SCALE_INTERVAL": "5"}, []string{"SCALE_INTERVAL", "duration"}},
		{"scale interval zero", map[string]string{"SCALE_INTERVAL": "0s"}, []string{"SCALE_INTERVAL=0s"}},
		{"scale interval negative", map[string]string{"SCALE_INTERVAL": "-1s"}, []string{"SCALE_INTERVAL=-1s"}},
		{"queue bytes with a unit", map[string]string{"QUEUE_MAX_BYTES": "64MiB"}, []string{`QUEUE_MAX_BYTES="64MiB" is not a valid integer`}},
		{"queue bytes too small", map[string]string{"QUEUE_MAX_BYTES": "1000"}, []string{"QUEUE_MAX_BYTES=1000 must be between 65536 (64 KiB) and 68719476736 (64 GiB)"}},
		{"queue bytes too big", map[string]string{"QUEUE_MAX_BYTES": "68719476737"}, []string{"QUEUE_MAX_BYTES=68719476737 must be between"}},
		{"target utilization zero", map[string]string{"SCALE_TARGET_UTILIZATION": "0"}, []string{"SCALE_TARGET_UTILIZATION=0 must be above 0 and at most 1"}},
		{"target utilization above one", map[string]string{"SCALE_TARGET_UTILIZATION": "1.5"}, []string{"SCALE_TARGET_UTILIZATION=1.5 must be above 0 and at most 1"}},
		{"target utilization a percentage", map[string]string{"SCALE_TARGET_UTILIZATION": "80%"}, []string{`SCALE_TARGET_UTILIZATION="80%" is not a valid number`}},
		{"max wait zero", map[string]string{"SCALE_MAX_WAIT": "0s"}, []string{"SCALE_MAX_WAIT=0s must be between 10ms and 1h"}},
		{"max wait too long", map[string]string{"SCALE_MAX_WAIT": "2h"}, []string{"SCALE_MAX_WAIT=2h0m0s must be between 10ms and 1h"}},
		{"max wait not a duration", map[string]string{"SCALE_MAX_WAIT": "1"}, []string{"SCALE_MAX_WAIT", "duration"}},
		{"down window negative", map[string]string{"SCALE_DOWN_WINDOW": "-1s"}, []string{"SCALE_DOWN_WINDOW=-1s must be between 0s and 24h"}},
		{"down window too long", map[string]string{"SCALE_DOWN_WINDOW": "25h"}, []string{"SCALE_DOWN_WINDOW=25h0m0s must be between 0s and 24h"}},
		{"mode unknown", map[string]string{"MODE": "gpu"}, []string{"MODE=gpu", "health, sleep or cpu"}},
		{"mode empty", map[string]string{"MODE": ""}, []string{"MODE=\"\""}},
		{"sleep negative", map[string]string{"SLEEP_MS": "-5"}, []string{"SLEEP_MS=-5"}},
		{"sleep not a number", map[string]string{"SLEEP_MS": "10ms"}, []string{"SLEEP_MS", "10ms", "integer"}},
		{"jitter negative", map[string]string{"SLEEP_JITTER_MS": "-1"}, []string{"SLEEP_JITTER_MS=-1"}},
		{"jitter not a number", map[string]string{"SLEEP_JITTER_MS": "x"}, []string{"SLEEP_JITTER_MS", "x"}},
		{"cpu negative", map[string]string{"CPU_ITERATIONS": "-10"}, []string{"CPU_ITERATIONS=-10"}},
		{"cpu not a number", map[string]string{"CPU_ITERATIONS": "many"}, []string{"CPU_ITERATIONS", "many"}},
		{"drop on full not a bool", map[string]string{"DROP_ON_FULL": "sometimes"}, []string{"DROP_ON_FULL", "sometimes", "boolean"}},
		{"shutdown zero", map[string]string{"SHUTDOWN_TIMEOUT": "0s"}, []string{"SHUTDOWN_TIMEOUT=0s", "positive"}},
		{"shutdown negative", map[string]string{"SHUTDOWN_TIMEOUT": "-1s"}, []string{"SHUTDOWN_TIMEOUT=-1s"}},
		{"shutdown not a duration", map[string]string{"SHUTDOWN_TIMEOUT": "30"}, []string{"SHUTDOWN_TIMEOUT", "duration"}},
		{"qos 3", map[string]string{"QOS": "3"}, []string{"QOS=3", "0, 1 or 2"}},
		{"qos negative", map[string]string{"QOS": "-1"}, []string{"QOS=-1"}},
		{"qos not a number", map[string]string{"QOS": "one"}, []string{"QOS", "one"}},
		{"linger negative", map[string]string{"WRITE_LINGER": "-1ms"}, []string{"WRITE_LINGER=-1ms"}},
		{"linger too long", map[string]string{"WRITE_LINGER": "2s"}, []string{"WRITE_LINGER=2s"}},
		{"linger not a duration", map[string]string{"WRITE_LINGER": "500"}, []string{"WRITE_LINGER", "duration"}},
		{"keepalive 0", map[string]string{"KEEPALIVE": "0s"}, []string{"KEEPALIVE=0s"}},
		{"keepalive beyond MQTT", map[string]string{"KEEPALIVE": "19h"}, []string{"KEEPALIVE=19h0m0s"}},
		{"client id prefix too long", map[string]string{"CLIENT_ID_PREFIX": strings.Repeat("x", 201)}, []string{"CLIENT_ID_PREFIX="}},
		{"log level", map[string]string{"LOG_LEVEL": "verbose"}, []string{"LOG_LEVEL=verbose"}},
		{"password twice", map[string]string{"MQTT_PASSWORD": "a", "MQTT_PASSWORD_FILE": "/nonexistent"}, []string{"MQTT_PASSWORD_FILE"}},
		{"tls on tcp url", map[string]string{"TLS_INSECURE": "true"}, []string{"MQTT_BROKER=tcp://localhost:1883", "not a TLS URL"}},
		{"mqtt version", map[string]string{"MQTT_VERSION": "3"}, []string{`MQTT_VERSION="3"`, "3.1.1 or 5"}},
		{"correlate unknown", map[string]string{"CORRELATE": "xml"}, []string{`CORRELATE="xml"`, "envelope, properties or json:FIELD"}},
		{"properties on 3.1.1", map[string]string{"CORRELATE": "properties"}, []string{"CORRELATE=properties", "MQTT_VERSION=5"}},
		{"json without field", map[string]string{"CORRELATE": "json:"}, []string{`CORRELATE="json:"`}},
		{"reply_to empty", map[string]string{"CORRELATE": "json:id", "REPLY_TO": ""}, []string{`REPLY_TO=""`}},
		{"reply topic allow not a filter", map[string]string{"REPLY_TOPIC_ALLOW": "resp/#,a/#/b"}, []string{`REPLY_TOPIC_ALLOW=resp/#,a/#/b`, `"a/#/b" is not one`}},
		{"template unknown placeholder", map[string]string{"CORRELATE": "json:id", "RESPONSE_TEMPLATE": `{"x":"{{seq}}"}`}, []string{"RESPONSE_TEMPLATE=", "{{seq}}"}},
		{"template with the envelope", map[string]string{"RESPONSE_TEMPLATE": `{"ok":1}`}, []string{"RESPONSE_TEMPLATE=", "CORRELATE=envelope"}},
		{"template file missing", map[string]string{"MQTT_VERSION": "5", "RESPONSE_TEMPLATE": "@/nonexistent"}, []string{"RESPONSE_TEMPLATE=\"@/nonexistent\""}},
		{"response bytes negative", map[string]string{"RESPONSE_BYTES": "-1"}, []string{"RESPONSE_BYTES=-1"}},
		{"response bytes too many", map[string]string{"RESPONSE_BYTES": "2000000"}, []string{"RESPONSE_BYTES=2000000"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cleanEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			_, err := load()
			if err == nil {
				t.Fatalf("Load and Validate with %v = nil error", tc.env)
			}
			if !errors.Is(err, envconf.ErrInvalid) {
				t.Errorf("error does not wrap envconf.ErrInvalid: %v", err)
			}
			for _, w := range tc.want {
				// Case-insensitive: envconf spells type names its own way.
				if !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(w)) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestValidateAutoscaleMessages: the exact message of each invalid value of
// the queue and autoscaler variables, one problem at a time.
func TestValidateAutoscaleMessages(t *testing.T) {
	cases := []struct {
		name string
		set  func(c *Config)
		want string
	}{
		{"queue bytes below 64 KiB", func(c *Config) { c.QueueMaxBytes = 65535 }, "QUEUE_MAX_BYTES=65535 must be between 65536 (64 KiB) and 68719476736 (64 GiB)"},
		{"queue bytes above 64 GiB", func(c *Config) { c.QueueMaxBytes = 64<<30 + 1 }, "QUEUE_MAX_BYTES=68719476737 must be between 65536 (64 KiB) and 68719476736 (64 GiB)"},
		{"queue bytes negative", func(c *Config) { c.QueueMaxBytes = -1 }, "QUEUE_MAX_BYTES=-1 must be between 65536 (64 KiB) and 68719476736 (64 GiB)"},
		{"target 0", func(c *Config) { c.ScaleTarget = 0 }, "SCALE_TARGET_UTILIZATION=0 must be above 0 and at most 1"},
		{"target negative", func(c *Config) { c.ScaleTarget = -0.5 }, "SCALE_TARGET_UTILIZATION=-0.5 must be above 0 and at most 1"},
		{"target above 1", func(c *Config) { c.ScaleTarget = 1.01 }, "SCALE_TARGET_UTILIZATION=1.01 must be above 0 and at most 1"},
		{"max wait below 10ms", func(c *Config) { c.ScaleMaxWait = 9 * time.Millisecond }, "SCALE_MAX_WAIT=9ms must be between 10ms and 1h"},
		{"max wait above 1h", func(c *Config) { c.ScaleMaxWait = time.Hour + time.Second }, "SCALE_MAX_WAIT=1h0m1s must be between 10ms and 1h"},
		{"down window negative", func(c *Config) { c.ScaleDownWindow = -time.Second }, "SCALE_DOWN_WINDOW=-1s must be between 0s and 24h"},
		{"down window above 24h", func(c *Config) { c.ScaleDownWindow = 24*time.Hour + time.Minute }, "SCALE_DOWN_WINDOW=24h1m0s must be between 0s and 24h"},
		{"queue cap 0", func(c *Config) { c.QueueCap = 0 }, "QUEUE_CAP=0 must be between 1 and 10000000"},
		{"thresholds crossed", func(c *Config) { c.ScaleUp, c.ScaleDown = 0.3, 0.5 }, "SCALE_DOWN_THRESHOLD=0.5 must be below SCALE_UP_THRESHOLD=0.3"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := Defaults()
			tc.set(c)
			errs := c.problems()
			if len(errs) != 1 || errs[0].Error() != tc.want {
				t.Errorf("Validate() = %q, want exactly [%q]", errs, tc.want)
			}
		})
	}
	// The limits themselves are valid.
	c := Defaults()
	c.QueueMaxBytes, c.ScaleTarget, c.ScaleMaxWait, c.ScaleDownWindow = MinQueueBytes, 1, 10*time.Millisecond, 0
	if err := c.Validate(); err != nil {
		t.Errorf("lower limits: %v", err)
	}
	c.QueueMaxBytes, c.ScaleMaxWait, c.ScaleDownWindow = MaxQueueBytes, time.Hour, 24*time.Hour
	if err := c.Validate(); err != nil {
		t.Errorf("upper limits: %v", err)
	}
}

// TestValidateReportsEveryProblem: every problem, joined, worded by
// envconf.Invalid (as Load prints them) under ErrInvalid one a line, and c
// unchanged.
func TestValidateReportsEveryProblem(t *testing.T) {
	c := Defaults()
	c.Connections = 0
	c.QueueCap = 0
	c.Mode = "gpu"
	c.MinWorkers, c.MaxWorkers = 50, 10
	before := *c
	err := envconf.Invalid(c.Validate())
	if !errors.Is(err, envconf.ErrInvalid) {
		t.Fatalf("Validate() = %v, want ErrInvalid", err)
	}
	want := "invalid configuration:\n" +
		"  CONNECTIONS=0 must be between 1 and 1000\n" +
		"  QUEUE_CAP=0 must be between 1 and 10000000\n" +
		"  MODE=gpu must be health, sleep or cpu\n" +
		"  MIN_WORKERS=50 is greater than MAX_WORKERS=10"
	if err.Error() != want {
		t.Errorf("Validate() =\n%s\nwant\n%s", err, want)
	}
	if !reflect.DeepEqual(*c, before) {
		t.Errorf("Validate changed the configuration: %+v, was %+v", *c, before)
	}
}

func TestUsageListsEveryVariable(t *testing.T) {
	var b strings.Builder
	if err := envconf.Usage(&b, "worker-v2", "test", &Config{}); err != nil {
		t.Fatal(err)
	}
	for _, v := range variables {
		if !strings.Contains(b.String(), v) {
			t.Errorf("usage lacks %s", v)
		}
	}
}

func FuzzValidFilter(f *testing.F) {
	for _, s := range []string{"req/+", "#", "a/#", "a/#/b", "+/+", "", "a\x00b", "a+/b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ok := validFilter(s)
		if ok && (s == "" || strings.Contains(s, "#/") || strings.IndexByte(s, 0) >= 0) {
			t.Errorf("validFilter(%q) = true", s)
		}
	})
}
