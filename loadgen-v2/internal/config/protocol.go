package config

import (
	"fmt"
	"strings"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/envconf"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/wire"
)

// Protocol is how the loadgen talks to the service: MQTT_VERSION, CORRELATE,
// REQUEST_TEMPLATE and the topic templates, parsed.
type Protocol struct {
	Version     byte             // 4 (3.1.1) or 5
	Correlation wire.Correlation // how the loadgen matches a response to its request
	JSONField   string           // Correlation == JSON: the response member with the id
	// Label names the correlation as the report and the metrics carry it:
	// envelope, properties or json:FIELD.
	Label     string
	Template  *wire.Template // request payload; nil: envelope, or PAYLOAD_BYTES filler
	ReqTopic  *wire.Template
	RespTopic *wire.Template
	// PerShard: the response topic names the shard, so responses are routed
	// to the connection of their shard; else one topic, on connection 0.
	PerShard bool
}

// protocol parses MQTT_VERSION, CORRELATE, REQUEST_TEMPLATE (reading its
// file for @path) and the topic templates, and returns every problem.
func (c *Config) protocol() (Protocol, []error) {
	var p Protocol
	var errs []error
	p.Version, p.Correlation, p.JSONField, errs = envconf.ParseProtocol(c.MQTTVersion, c.Correlate)
	p.Label = p.Correlation.Label(p.JSONField)
	if c.Transport == "paho" && (p.Version == 5 || p.Correlation != wire.Envelope) {
		errs = append(errs, fmt.Errorf("TRANSPORT=paho is the plain MQTT 3.1.1 baseline with the envelope; it does not combine with MQTT_VERSION=%s CORRELATE=%s", c.MQTTVersion, p.Correlation))
	}

	t, err := wire.ReadTemplate("REQUEST_TEMPLATE", c.RequestTmpl)
	switch {
	case err != nil:
		errs = append(errs, err)
	case t == nil:
		if p.Correlation == wire.JSON {
			errs = append(errs, fmt.Errorf("CORRELATE=%s needs REQUEST_TEMPLATE, a payload with {{id}} (e.g. {\"id\":\"{{id}}\",\"reply_to\":\"{{reply}}\"})", c.Correlate))
		}
	case p.Correlation == wire.Envelope:
		errs = append(errs, fmt.Errorf("REQUEST_TEMPLATE=%q is set but CORRELATE=envelope sends worker-v2's binary envelope: set CORRELATE=properties (MQTT 5) or json:FIELD", clip(c.RequestTmpl)))
	case p.Correlation == wire.JSON && !t.Uses("id"):
		errs = append(errs, fmt.Errorf("REQUEST_TEMPLATE=%q has no {{id}}: with CORRELATE=%s the response must carry the request's id back", clip(c.RequestTmpl), c.Correlate))
	default:
		p.Template = t
	}

	if p.ReqTopic, err = topicTemplate("REQUEST_TOPIC", c.RequestTopic); err != nil {
		errs = append(errs, err)
	}
	if p.RespTopic, err = topicTemplate("RESPONSE_TOPIC", c.ResponseTopic); err != nil {
		errs = append(errs, err)
	} else {
		p.PerShard = p.RespTopic.Uses("shard")
		if p.Correlation == wire.Envelope && !(p.PerShard && p.RespTopic.Uses("instance")) {
			errs = append(errs, fmt.Errorf("RESPONSE_TOPIC=%q must contain {{instance}} and {{shard}} with CORRELATE=envelope", c.ResponseTopic))
		}
	}
	return p, errs
}

// topicTemplate parses a topic with {{instance}} and {{shard}}: no wildcard,
// not empty.
func topicTemplate(name, s string) (*wire.Template, error) {
	t, err := wire.ParseTemplate(s, "instance", "shard")
	switch {
	case err != nil:
		return nil, fmt.Errorf("%s=%q: %w", name, s, err)
	case s == "" || t.HasWildcard() || strings.HasPrefix(s, "$"):
		return nil, fmt.Errorf("%s=%q must be a topic name: not empty, no wildcard '+' or '#', not starting with '$'", name, s)
	}
	return t, nil
}

func clip(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}
