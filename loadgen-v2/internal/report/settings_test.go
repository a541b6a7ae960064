package report

import (
	"encoding/json"
	"testing"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/config"
)

// TestFleetSettingsHaveEnvNames: every setting a merge compares
// (config.FleetSettings) is a field of config.Config with an environment
// variable, so a refusal names the variable a user sets.
func TestFleetSettingsHaveEnvNames(t *testing.T) {
	for _, name := range config.FleetSettings {
		if _, ok := settings()[name]; !ok {
			t.Errorf("config.FleetSettings lists %q, which is no JSON field of config.Config with an envconfig tag", name)
		}
	}
	for json, env := range map[string]string{"max_inflight_per_client": "MAX_INFLIGHT_PER_CLIENT", "request_template": "REQUEST_TEMPLATE",
		"fleet_start_delay": "FLEET_START_DELAY", "interval_ms": "INTERVAL_MS", "username": "MQTT_USERNAME", "no_such_field": "NO_SUCH_FIELD"} {
		if got := SettingEnv(json); got != env {
			t.Errorf("SettingEnv(%q) = %q, want %q", json, got, env)
		}
	}
}

// TestSettingValue: a config value as a reader sets it; missing (omitempty)
// is the zero value, a value of the wrong type its JSON.
func TestSettingValue(t *testing.T) {
	cfg := map[string]json.RawMessage{"qos": []byte("1"), "duration": []byte("90000000000"), "correlate": []byte(`"envelope"`),
		"slo_p99_ms": []byte("2.5"), "shards": []byte(`"many"`)}
	for _, tc := range []struct{ name, want string }{
		{"qos", "1"}, {"duration", "1m30s"}, {"correlate", `"envelope"`}, {"slo_p99_ms", "2.5"}, {"shards", `"many"`},
		{"slo_match_rate", "0"}, {"request_template", `""`}, {"warmup", "0s"}, {"no_such_field", "null"},
	} {
		if got := settingValue(cfg, tc.name); got != tc.want {
			t.Errorf("settingValue(%s) = %s, want %s", tc.name, got, tc.want)
		}
	}
}
