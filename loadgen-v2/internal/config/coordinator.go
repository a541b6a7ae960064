package config

import (
	"errors"
	"fmt"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/envconf"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
)

// Coordinator is the configuration of `loadgen-v2 fleet`, the fleet's
// coordinator run as a command of its own (the instances set
// FLEET_COORDINATOR=external).
type Coordinator struct {
	Broker       string        `envconfig:"BROKER" default:"tcp://localhost:1883" desc:"MQTT broker URL the fleet's loadgens use (tcp://, ssl://, tls://, mqtts://)"`
	MQTTVersion  string        `envconfig:"MQTT_VERSION" default:"3.1.1" desc:"MQTT protocol version of the coordinator's connection: 3.1.1 or 5"`
	FleetID      string        `envconfig:"FLEET_ID" desc:"the fleet to coordinate (required; the loadgens' FLEET_ID)"`
	FleetSize    int           `envconfig:"FLEET_SIZE" default:"0" desc:"how many loadgens the fleet has (required; 1..1000)"`
	FleetTimeout time.Duration `envconfig:"FLEET_TIMEOUT" default:"2m" desc:"how long to wait for every loadgen to join, and for their reports after their DURATION and REQUEST_TIMEOUT"`
	FleetLead    time.Duration `envconfig:"FLEET_START_DELAY" default:"3s" desc:"announce the common start this far ahead (100ms..1m)"`
	FleetResults string        `envconfig:"FLEET_RESULTS" desc:"directory for the per-instance reports and the merged report, JSON and text (default results/fleet-YYYYMMDD-HHMMSS)"`
	KeepAlive    time.Duration `envconfig:"KEEPALIVE" default:"30s" desc:"MQTT keepalive of the coordinator's connection (1s..18h)"`
	LogLevel     string        `envconfig:"LOG_LEVEL" default:"info" desc:"debug, info, warn or error"`
	envconf.Security
}

// Validate returns every problem of c joined, each naming its variable.
func (c *Coordinator) Validate() error {
	chk := envconf.Check
	errs := []error{
		chk(c.FleetID != "" && len(c.FleetID) <= 64 && sanitize(c.FleetID) == c.FleetID, "FLEET_ID", c.FleetID, "must be set: 1-64 letters, digits, '-' or '_', the loadgens' FLEET_ID"),
		chk(c.FleetSize >= 1 && c.FleetSize <= MaxFleetSize, "FLEET_SIZE", c.FleetSize, fmt.Sprintf("must be between 1 and %d: the number of loadgens in the fleet", MaxFleetSize)),
		chk(c.FleetTimeout >= time.Second && c.FleetTimeout <= 24*time.Hour, "FLEET_TIMEOUT", c.FleetTimeout, "must be between 1s and 24h"),
		chk(c.FleetLead >= 100*time.Millisecond && c.FleetLead <= time.Minute, "FLEET_START_DELAY", c.FleetLead, "must be between 100ms and 1m"),
		chk(c.KeepAlive >= time.Second && c.KeepAlive <= 65535*time.Second, "KEEPALIVE", c.KeepAlive, "must be between 1s and 18h12m15s (MQTT's 65535 s)"),
		chk(validLevel(c.LogLevel), "LOG_LEVEL", c.LogLevel, "must be debug, info, warn or error"),
	}
	if _, _, _, perrs := envconf.ParseProtocol(c.MQTTVersion, ""); len(perrs) > 0 {
		errs = append(errs, perrs...)
	}
	errs = append(errs, c.Security.Validate("BROKER", c.Broker)...)
	return errors.Join(errs...)
}

// MQTT returns the coordinator's connection options (the password and TLS
// files read).
func (c *Coordinator) MQTT() (mqttconn.Options, error) {
	v, _, _, _ := envconf.ParseProtocol(c.MQTTVersion, "")
	o := mqttconn.Options{Broker: c.Broker, ProtocolVersion: v, KeepAlive: c.KeepAlive, Connections: 1}
	if err := c.Security.Apply(&o); err != nil {
		return o, envconf.Invalid(err)
	}
	return o, nil
}
