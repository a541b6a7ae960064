package config

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/envconf"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/wire"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/worker-v2/internal/modes"
)

func resolve(t *testing.T, c *Config) *Resolved {
	t.Helper()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	r, err := c.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestResolveDefaults: what the engine gets from the defaults.
func TestResolveDefaults(t *testing.T) {
	c := Defaults()
	r := resolve(t, c)
	if !strings.HasPrefix(r.ClientIDPrefix, "wk-") || c.ClientIDPrefix != "" {
		t.Errorf("CLIENT_ID_PREFIX resolved to %q (want wk-{hostname}-{pid}), the config's is %q (want it unchanged)", r.ClientIDPrefix, c.ClientIDPrefix)
	}
	o := r.Conn
	if o.Broker != c.Broker || o.ClientIDPrefix != r.ClientIDPrefix || o.Connections != 10 || o.QoS != 0 || o.ProtocolVersion != 4 ||
		o.Linger != 0 || o.KeepAlive != 30*time.Second || o.TLS != nil || o.OnMessage != nil {
		t.Errorf("connection options %+v", o)
	}
	if r.Filter != "$share/workers/req/+" || len(o.Subscriptions(3)) != 1 || o.Subscriptions(3)[0] != r.Filter {
		t.Errorf("filter %q, subscriptions %v", r.Filter, o.Subscriptions(3))
	}
	if o.ProbeShareGroup != "workers" {
		t.Errorf("the shared subscription must be probed in group workers, got %q", o.ProbeShareGroup)
	}
	if r.Rules.Mode != wire.Envelope || len(r.Rules.Filler) != 16 || r.Rules.Template != nil {
		t.Errorf("rules %+v", r.Rules)
	}
	if r.Processing != (modes.Options{Mode: modes.Health, Sleep: 10 * time.Millisecond, Iterations: 10000}) {
		t.Errorf("processing %+v", r.Processing)
	}
	p := r.Policy
	if p.Min != 10 || p.Max != 1000 || r.WorkerCap != 1000 || p.Up != 0.7 || p.Down != 0.2 || p.Target != 0.8 || p.MaxWait != time.Second || p.DownWindow != 30*time.Second {
		t.Errorf("policy %+v, worker cap %d", p, r.WorkerCap)
	}
}

func TestResolveVariants(t *testing.T) {
	c := Defaults()
	c.Shared, c.ShareGroup = false, ""
	c.ClientIDPrefix = "mine"
	c.MQTTVersion, c.Correlate = "5", "json:rid"
	c.Mode, c.SleepMS, c.SleepJitterMS = modes.Sleep, 20, 5
	c.WriteLinger, c.QoS = 2*time.Millisecond, 1
	r := resolve(t, c)
	if r.Filter != "req/+" || r.Conn.ClientIDPrefix != "mine" || r.Conn.ProtocolVersion != 5 || r.Conn.QoS != 1 || r.Conn.Linger != 2*time.Millisecond {
		t.Errorf("filter %q, options %+v", r.Filter, r.Conn)
	}
	if r.Rules.Mode != wire.JSON || r.Rules.IDField != "rid" || r.Rules.ReplyToField != "reply_to" || r.Rules.Template == nil {
		t.Errorf("rules %+v", r.Rules)
	}
	if r.Processing.Sleep != 20*time.Millisecond || r.Processing.Jitter != 5*time.Millisecond {
		t.Errorf("processing %+v", r.Processing)
	}
}

// TestResolvePlainSubscription: SHARED_SUBSCRIPTION=false subscribes on the
// first connection only (each request answered once per instance), with no
// probe; WORKER_COUNT splits the shards.
func TestResolvePlainSubscription(t *testing.T) {
	c := Defaults()
	c.Shared = false
	r := resolve(t, c)
	o := r.Conn
	if got := o.Subscriptions(0); len(got) != 1 || got[0] != "req/+" {
		t.Errorf("connection 0 subscribes to %v, want [req/+]", got)
	}
	for i := 1; i < c.Connections; i++ {
		if got := o.Subscriptions(i); len(got) != 0 {
			t.Errorf("connection %d subscribes to %v, want nothing (one subscriber per instance)", i, got)
		}
	}
	if o.ProbeShareGroup != "" {
		t.Errorf("no probe without a shared subscription, got group %q", o.ProbeShareGroup)
	}
	c.WorkerCount, c.WorkerIndex, c.Shards = 3, "1", 8
	r = resolve(t, c)
	if got := strings.Join(r.Conn.Subscriptions(0), ","); got != "req/1,req/4,req/7" {
		t.Errorf("instance 1 of 3 over 8 shards subscribes to %s, want req/1,req/4,req/7", got)
	}
}

// TestShardFiltersCoverEveryShardOnce: the instances' filters together name
// every shard exactly once.
func TestShardFiltersCoverEveryShardOnce(t *testing.T) {
	for _, tc := range []struct{ shards, count int }{{256, 1}, {256, 2}, {64, 3}, {5, 5}} {
		seen := map[string]int{}
		for i := range tc.count {
			for _, f := range ShardFilters("req/+", tc.shards, tc.count, i) {
				seen[f]++
			}
		}
		if tc.count == 1 {
			if seen["req/+"] != 1 || len(seen) != 1 {
				t.Errorf("count 1: %v", seen)
			}
			continue
		}
		if len(seen) != tc.shards {
			t.Errorf("%d shards over %d instances: %d filters", tc.shards, tc.count, len(seen))
		}
		for f, n := range seen {
			if n != 1 {
				t.Errorf("%s subscribed %d times", f, n)
			}
		}
	}
}

// TestWorkerCap: in MODE=cpu the pool's bound is max(MIN_WORKERS,
// GOMAXPROCS), at most MAX_WORKERS; other modes keep MAX_WORKERS.
func TestWorkerCap(t *testing.T) {
	procs := runtime.GOMAXPROCS(0)
	for _, c := range []struct {
		mode     string
		min, max int
		want     int
	}{
		{modes.Sleep, 10, 1000, 1000},
		{modes.Health, 1, 50, 50},
		{modes.CPU, 1, 1000, procs},
		{modes.CPU, procs + 3, 1000, procs + 3},
		{modes.CPU, 1, 1, 1},
	} {
		cfg := Defaults()
		cfg.Mode, cfg.MinWorkers, cfg.MaxWorkers = c.mode, c.min, c.max
		r := resolve(t, cfg)
		if r.WorkerCap != c.want || r.Policy.Max != c.want {
			t.Errorf("%s MIN %d MAX %d: bound %d (policy %d), want %d", c.mode, c.min, c.max, r.WorkerCap, r.Policy.Max, c.want)
		}
	}
}

// TestAdaptGOMAXPROCS: GOMAXPROCS follows the load unless the operator fixed
// it or the workers are CPU-bound.
func TestAdaptGOMAXPROCS(t *testing.T) {
	c := Defaults()
	t.Setenv("GOMAXPROCS", "2") // restored after the test
	if resolve(t, c).AdaptGOMAXPROCS {
		t.Error("GOMAXPROCS set: must stay fixed")
	}
	if err := os.Unsetenv("GOMAXPROCS"); err != nil {
		t.Fatal(err)
	}
	if got, want := resolve(t, c).AdaptGOMAXPROCS, runtime.GOMAXPROCS(0) > 1; got != want {
		t.Errorf("MODE=health, GOMAXPROCS unset, %d processors: adapt %v, want %v", runtime.GOMAXPROCS(0), got, want)
	}
	c.Mode = modes.CPU
	if resolve(t, c).AdaptGOMAXPROCS {
		t.Error("MODE=cpu: CPU-bound workers need every core, must stay fixed")
	}
}

// TestResolveReadsFiles: the password file is read into the options; a file
// gone since Validate is a configuration error.
func TestResolveReadsFiles(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "password")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := Defaults()
	c.Username, c.PasswordFile = "worker", pw
	if r := resolve(t, c); r.Conn.Username != "worker" || r.Conn.Password != "s3cret" {
		t.Errorf("credentials %q %q", r.Conn.Username, r.Conn.Password)
	}
	if err := os.Remove(pw); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Resolve(); !errors.Is(err, envconf.ErrInvalid) || !strings.Contains(err.Error(), "MQTT_PASSWORD_FILE") {
		t.Errorf("Resolve with the password file gone = %v, want ErrInvalid naming MQTT_PASSWORD_FILE", err)
	}
}

// TestBrokerAlias: the worker accepts the loadgen's BROKER; when MQTT_BROKER
// is set too and differs, MQTT_BROKER is used and the worker says so.
func TestBrokerAlias(t *testing.T) {
	for _, tc := range []struct {
		name         string
		env          map[string]string
		broker, note string
		conflict     bool
	}{
		{"BROKER alone", map[string]string{"BROKER": "tcp://b:1883"}, "tcp://b:1883", "broker from BROKER (MQTT_BROKER not set): tcp://b:1883", false},
		{"both, different", map[string]string{"BROKER": "tcp://b:1883", "MQTT_BROKER": "tcp://m:1883"}, "tcp://m:1883",
			"BROKER=tcp://b:1883 and MQTT_BROKER=tcp://m:1883 differ: using MQTT_BROKER", true},
		{"both, the same", map[string]string{"BROKER": "tcp://m:1883", "MQTT_BROKER": "tcp://m:1883"}, "tcp://m:1883", "", false},
		{"neither", nil, "tcp://localhost:1883", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"BROKER", "MQTT_BROKER"} {
				t.Setenv(k, "")
				os.Unsetenv(k)
			}
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			c, err := Load()
			if err != nil {
				t.Fatal(err)
			}
			r, err := c.Resolve()
			if err != nil {
				t.Fatal(err)
			}
			if r.Conn.Broker != tc.broker || r.BrokerNote != tc.note || r.BrokerConflict != tc.conflict {
				t.Errorf("broker %q note %q conflict %v, want %q %q %v", r.Conn.Broker, r.BrokerNote, r.BrokerConflict, tc.broker, tc.note, tc.conflict)
			}
		})
	}
}
