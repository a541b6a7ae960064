package config_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/envconf"
)

// TestFleetResolve: FLEET_INDEX resolves from the number, from an Indexed
// Job's JOB_COMPLETION_INDEX, or from INSTANCE_ID's trailing -N; the first
// virtual client is index × VIRTUAL_CLIENTS unless CLIENT_ID_OFFSET says
// otherwise; index 0 coordinates unless FLEET_COORDINATOR=external.
func TestFleetResolve(t *testing.T) {
	base := map[string]string{"FLEET_ID": "f1", "FLEET_SIZE": "10", "DURATION": "30s", "VIRTUAL_CLIENTS": "100000", "INSTANCE_ID": "lg"}
	tests := []struct {
		name       string
		env        map[string]string
		index      int
		offset     uint32
		coordinate bool
	}{
		{"explicit index", map[string]string{"FLEET_INDEX": "3"}, 3, 300000, false},
		{"index 0 coordinates", map[string]string{"FLEET_INDEX": "0"}, 0, 0, true},
		{"external coordinator", map[string]string{"FLEET_INDEX": "0", "FLEET_COORDINATOR": "external"}, 0, 0, false},
		{"Indexed Job", map[string]string{"JOB_COMPLETION_INDEX": "7"}, 7, 700000, false},
		{"Indexed Job before the hostname", map[string]string{"JOB_COMPLETION_INDEX": "2", "INSTANCE_ID": "loadgen-9"}, 2, 200000, false},
		{"INSTANCE_ID ordinal", map[string]string{"INSTANCE_ID": "loadgen-4"}, 4, 400000, false},
		{"CLIENT_ID_OFFSET kept", map[string]string{"FLEET_INDEX": "1", "CLIENT_ID_OFFSET": "5000000"}, 1, 5000000, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"JOB_COMPLETION_INDEX": ""}
			for k, v := range base {
				env[k] = v
			}
			for k, v := range tc.env {
				env[k] = v
			}
			t.Setenv("JOB_COMPLETION_INDEX", env["JOB_COMPLETION_INDEX"])
			delete(env, "JOB_COMPLETION_INDEX")
			r, err := load(t, env)
			if err != nil {
				t.Fatal(err)
			}
			f := r.Fleet
			if f == nil || f.ID != "f1" || f.Size != 10 || f.Index != tc.index || f.Coordinate != tc.coordinate || r.Offset != tc.offset {
				t.Errorf("fleet %+v offset %d; want index %d, coordinate %v, offset %d", f, r.Offset, tc.index, tc.coordinate, tc.offset)
			}
			if len(f.Digest) != 12 || f.Settings["qos"] != "0" || f.Settings["virtual_clients"] != "100000" {
				t.Errorf("settings %v digest %q", f.Settings, f.Digest)
			}
		})
	}
	t.Run("no fleet", func(t *testing.T) {
		r, err := load(t, map[string]string{"INSTANCE_ID": "lg"})
		if err != nil || r.Fleet != nil {
			t.Fatalf("fleet %+v err %v, want none", r.Fleet, err)
		}
	})
}

// TestFleetDigest: the digest changes with a shared setting (QOS) and not
// with a per-instance one (BROKER, CONNECTIONS, INSTANCE_ID).
func TestFleetDigest(t *testing.T) {
	digest := func(env map[string]string) string {
		t.Helper()
		all := map[string]string{"FLEET_ID": "f1", "FLEET_SIZE": "2", "FLEET_INDEX": "1", "DURATION": "30s", "INSTANCE_ID": "a"}
		for k, v := range env {
			all[k] = v
		}
		r, err := load(t, all)
		if err != nil {
			t.Fatal(err)
		}
		return r.Fleet.Digest
	}
	d := digest(nil)
	if digest(map[string]string{"BROKER": "tcp://10.0.0.1:1883", "CONNECTIONS": "50", "INSTANCE_ID": "b"}) != d {
		t.Error("the digest changed with per-instance settings")
	}
	for _, kv := range [][2]string{{"QOS", "1"}, {"INTERVAL_MS", "1000"}, {"WARMUP", "5s"}, {"SLO_P99_MS", "10"}, {"FLEET_SIZE", "3"}} {
		if digest(map[string]string{kv[0]: kv[1]}) == d {
			t.Errorf("%s=%s left the digest unchanged", kv[0], kv[1])
		}
	}
}

// TestFleetInvalid: every FLEET_* problem exits 2 naming its variable.
func TestFleetInvalid(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"FLEET_SIZE": "3"}, "FLEET_SIZE=3 needs FLEET_ID"},
		{map[string]string{"FLEET_ID": "a.b", "FLEET_SIZE": "3", "DURATION": "1m", "FLEET_INDEX": "0"}, "FLEET_ID"},
		{map[string]string{"FLEET_ID": "f", "DURATION": "1m", "FLEET_INDEX": "0"}, "FLEET_SIZE"},
		{map[string]string{"FLEET_ID": "f", "FLEET_SIZE": "3", "FLEET_INDEX": "0"}, "DURATION"},
		{map[string]string{"FLEET_ID": "f", "FLEET_SIZE": "3", "DURATION": "1m", "FLEET_INDEX": "3"}, "FLEET_INDEX"},
		{map[string]string{"FLEET_ID": "f", "FLEET_SIZE": "3", "DURATION": "1m", "FLEET_INDEX": "0", "FLEET_COORDINATOR": "me"}, "FLEET_COORDINATOR"},
		{map[string]string{"FLEET_ID": "f", "FLEET_SIZE": "3", "DURATION": "1m", "FLEET_INDEX": "0", "FLEET_START_DELAY": "10ms"}, "FLEET_START_DELAY"},
		{map[string]string{"FLEET_ID": "f", "FLEET_SIZE": "3", "DURATION": "1m", "INSTANCE_ID": "nodash"}, "FLEET_INDEX=auto needs JOB_COMPLETION_INDEX"},
		{map[string]string{"FLEET_ID": "f", "FLEET_SIZE": "3", "DURATION": "1m", "INSTANCE_ID": "lg-5"}, "not an index from 0 to FLEET_SIZE-1 (2)"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			t.Setenv("JOB_COMPLETION_INDEX", "")
			if _, ok := tc.env["INSTANCE_ID"]; !ok {
				tc.env["INSTANCE_ID"] = "lg"
			}
			_, err := load(t, tc.env)
			if !errors.Is(err, envconf.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want ErrInvalid naming %q", err, tc.want)
			}
		})
	}
}
