package config

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/envconf"
)

// MaxFleetSize is the largest FLEET_SIZE.
const MaxFleetSize = 1000

// Fleet is a fleet run's identity as this instance resolved it (nil on
// Resolved: a single run).
type Fleet struct {
	// ID is FLEET_ID, Size FLEET_SIZE and Index this instance's index.
	ID          string
	Size, Index int
	// Coordinate: this process coordinates the fleet (index 0 with
	// FLEET_COORDINATOR=self).
	Coordinate bool
	// Timeout is FLEET_TIMEOUT, Lead FLEET_START_DELAY.
	Timeout, Lead time.Duration
	// Results is FLEET_RESULTS.
	Results string
	// Settings are the settings every instance of a fleet must share (the
	// JSON names of FleetSettings, the values as JSON), Digest their hash.
	Settings map[string]string
	Digest   string
}

// FleetSettings are the settings (by their JSON names) that every loadgen of
// a fleet must share for the merged report to mean anything: the schedule,
// the protocol, the payload and the objectives. The rest (the broker address,
// connections, the metrics address, logging) may differ per instance.
var FleetSettings = []string{
	"virtual_clients", "shards", "interval_ms", "max_inflight_per_client", "qos", "request_timeout",
	"duration", "warmup", "ramp_up", "payload_bytes", "mqtt_version", "correlate", "request_template",
	"request_topic", "response_topic", "slo_p99_ms", "slo_match_rate", "slo_success_rate", "fleet_size",
}

// validateFleet checks the FLEET_* variables (pure: FLEET_INDEX=auto is
// resolved by Resolve).
func (c *Config) validateFleet() []error {
	if c.FleetID == "" {
		if c.FleetSize != 0 {
			return []error{fmt.Errorf("FLEET_SIZE=%d needs FLEET_ID: set FLEET_ID to the id every loadgen of the fleet shares", c.FleetSize)}
		}
		return nil
	}
	chk := envconf.Check
	errs := []error{
		chk(len(c.FleetID) <= 64 && sanitize(c.FleetID) == c.FleetID, "FLEET_ID", c.FleetID, "must be 1-64 letters, digits, '-' or '_' (it is a topic level and a Prometheus label)"),
		chk(c.FleetSize >= 1 && c.FleetSize <= MaxFleetSize, "FLEET_SIZE", c.FleetSize, fmt.Sprintf("must be between 1 and %d with FLEET_ID set", MaxFleetSize)),
		chk(c.Duration > 0, "DURATION", c.Duration, "must be set with FLEET_ID: a fleet run has a fixed length, counted from the common start"),
		chk(c.FleetCoord == "self" || c.FleetCoord == "external", "FLEET_COORDINATOR", c.FleetCoord, "must be self or external"),
		chk(c.FleetTimeout >= time.Second && c.FleetTimeout <= 24*time.Hour, "FLEET_TIMEOUT", c.FleetTimeout, "must be between 1s and 24h"),
		chk(c.FleetLead >= 100*time.Millisecond && c.FleetLead <= time.Minute, "FLEET_START_DELAY", c.FleetLead, "must be between 100ms and 1m"),
	}
	if c.FleetIndex != "auto" {
		i, err := strconv.Atoi(c.FleetIndex)
		errs = append(errs, chk(err == nil && i >= 0 && (c.FleetSize < 1 || i < c.FleetSize), "FLEET_INDEX", c.FleetIndex, fmt.Sprintf("must be auto or a whole number from 0 to FLEET_SIZE-1 (%d)", c.FleetSize-1)))
	}
	return errs
}

// fleetIndex resolves FLEET_INDEX: the number, or with auto the Indexed
// Job's JOB_COMPLETION_INDEX (jobIndex, "" when unset), else the trailing
// -N of name (INSTANCE_ID, else the hostname).
func (c *Config) fleetIndex(jobIndex, name string) (int, error) {
	src, v := "FLEET_INDEX", c.FleetIndex
	if v == "auto" {
		switch i := strings.LastIndexByte(name, '-'); {
		case jobIndex != "":
			src, v = "JOB_COMPLETION_INDEX", jobIndex
		case i >= 0:
			src, v = "the trailing -N of "+name, name[i+1:]
		default:
			return 0, fmt.Errorf("FLEET_INDEX=auto needs JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) or INSTANCE_ID=%s (or, when INSTANCE_ID is unset, the hostname) ending in -N; set FLEET_INDEX", name)
		}
	}
	i, err := strconv.Atoi(v)
	if err != nil || i < 0 || i >= c.FleetSize {
		return 0, fmt.Errorf("FLEET_INDEX=%s: %s gives %q, not an index from 0 to FLEET_SIZE-1 (%d)", c.FleetIndex, src, v, c.FleetSize-1)
	}
	return i, nil
}

// resolveFleet fills r.Fleet and, unless CLIENT_ID_OFFSET says otherwise
// (a value other than 0), the offset FLEET_INDEX × VIRTUAL_CLIENTS.
func (r *Resolved) resolveFleet(name string) error {
	if r.FleetID == "" {
		return nil
	}
	idx, err := r.fleetIndex(os.Getenv("JOB_COMPLETION_INDEX"), name)
	if err != nil {
		return err
	}
	settings, digest, err := r.Config.fleetSettings()
	if err != nil {
		return err
	}
	r.Fleet = &Fleet{ID: r.FleetID, Size: r.FleetSize, Index: idx, Coordinate: idx == 0 && r.FleetCoord == "self",
		Timeout: r.FleetTimeout, Lead: r.FleetLead, Results: r.FleetResults, Settings: settings, Digest: digest}
	if r.ClientIDOffset == "0" {
		off := uint64(idx) * uint64(r.VirtualClients)
		if off+uint64(r.VirtualClients) > 1<<32 {
			return fmt.Errorf("FLEET_INDEX=%d × VIRTUAL_CLIENTS=%d exceeds the 32-bit client id space", idx, r.VirtualClients)
		}
		r.Offset = uint32(off)
	}
	return nil
}

// fleetSettings returns the FleetSettings of c and their digest: 12 hex
// digits of the SHA-256 of their canonical JSON.
func (c *Config) fleetSettings() (map[string]string, string, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, "", err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return nil, "", err
	}
	out := make(map[string]string, len(FleetSettings))
	h := sha256.New()
	for _, k := range slices.Sorted(slices.Values(FleetSettings)) {
		v := string(all[k])
		if v == "" {
			v = "null"
		}
		out[k] = v
		fmt.Fprintf(h, "%s=%s\n", k, v)
	}
	return out, hex.EncodeToString(h.Sum(nil))[:12], nil
}
