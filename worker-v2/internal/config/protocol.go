package config

import (
	"fmt"
	"strings"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/envconf"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/wire"
)

// protocolSettings are MQTT_VERSION, CORRELATE and RESPONSE_TEMPLATE parsed.
type protocolSettings struct {
	Version     byte // 4 (3.1.1) or 5
	Correlation wire.Correlation
	IDField     string         // json:FIELD
	Template    *wire.Template // reply payload (properties, json); nil: filler
}

// DefaultJSONResponse is RESPONSE_TEMPLATE's default with CORRELATE=json:FIELD.
const DefaultJSONResponse = `{"id":"{{id}}","status":"ok"}`

// parseProtocol parses MQTT_VERSION, CORRELATE, REPLY_TO, RESPONSE_TEMPLATE (reading
// its file for @path) and RESPONSE_BYTES, and returns every problem.
func (c *Config) parseProtocol() (protocolSettings, []error) {
	var p protocolSettings
	var errs []error
	p.Version, p.Correlation, p.IDField, errs = envconf.ParseProtocol(c.MQTTVersion, c.Correlate)
	if c.ResponseBytes < 0 || c.ResponseBytes > 1<<20 {
		errs = append(errs, fmt.Errorf("RESPONSE_BYTES=%d must be between 0 and 1048576", c.ResponseBytes))
	}
	if p.Correlation == wire.JSON && (c.ReplyTo == "" || strings.ContainsAny(c.ReplyTo, "\"\\")) {
		errs = append(errs, fmt.Errorf("REPLY_TO=%q must name a JSON member, without quotes or backslashes", c.ReplyTo))
	}
	value := c.ResponseTmpl
	if value == "" && p.Correlation == wire.JSON {
		value = DefaultJSONResponse
	}
	t, err := wire.ReadTemplate("RESPONSE_TEMPLATE", value, "id")
	switch {
	case err != nil:
		errs = append(errs, err)
	case t != nil && p.Correlation == wire.Envelope:
		errs = append(errs, fmt.Errorf("RESPONSE_TEMPLATE=%q is set but CORRELATE=envelope answers with the binary envelope: set CORRELATE=properties (MQTT 5) or json:FIELD", clip(c.ResponseTmpl)))
	default:
		p.Template = t
	}
	return p, errs
}

func clip(s string) string {
	if len(s) > 60 {
		return s[:60] + "…"
	}
	return s
}
