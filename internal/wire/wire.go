// Package wire owns what requests and responses look like on the wire, for
// both sides: the requester (loadgen-v2) and the responder (worker-v2, or any
// service). A correlation mode says how a response is tied to its request;
// each mode is one file holding its format and its four steps:
//
//   - encode: the requester writes a request (Requester, Encoder);
//   - key: the requester reads the request's Key back from a response, in one
//     decode (Requester.Read), or from its own request when a connection
//     hands it back unsent (Requester.RequestKey);
//   - pack: the responder checks a request and keeps what its answer needs
//     (Responder.Pack);
//   - answer: the responder builds the response (Responder.Answer).
//
// The modes:
//
//   - Envelope (envelope.go): loadgen-v2's fixed-layout binary envelope, with
//     the worker's queue wait and processing time in the response;
//   - Properties (properties.go): MQTT 5 Response Topic and Correlation Data
//     (MQTT 5.0 §4.10), any payload, any MQTT 5 responder;
//   - JSON (jsonid.go): a member of a JSON payload carries the request's id
//     (json:FIELD), for services that speak JSON over MQTT 3.1.1 or 5.
//
// Neither Properties nor JSON carries the intended send time: the requester
// recomputes it from the schedule (client, seq), so a responder cannot make a
// request look faster. Request payloads of Properties and JSON come from a
// Template.
//
// Nothing here allocates per message once buffers have grown, and no decoder
// panics: a payload that does not fit its mode is an error wrapping
// ErrMalformed (or a false ok), which the caller counts and drops.
package wire

import (
	"errors"
	"fmt"
)

// Sentinel errors.
var (
	// ErrMalformed is wrapped by every decode error.
	ErrMalformed = errors.New("malformed payload")
	// ErrTooLong is returned by encoders when a field does not fit the format.
	ErrTooLong = errors.New("field too long")
	// ErrPropertiesNeedV5: correlation by MQTT 5 properties on MQTT 3.1.1.
	ErrPropertiesNeedV5 = errors.New("properties needs MQTT 5 (Correlation Data is an MQTT 5 property)")
)

// Key identifies one request of one loadgen run.
type Key struct {
	RunID, ClientID, Seq uint32
}

// Correlation is how a response is tied to its request.
type Correlation int

const (
	// Envelope: loadgen-v2's binary envelope (Request / Response), with the
	// worker's queue and processing times.
	Envelope Correlation = iota
	// Properties: MQTT 5 Response Topic + Correlation Data, for any MQTT 5
	// requester or responder.
	Properties
	// JSON: a member of the JSON payload carries the request's id.
	JSON
)

func (c Correlation) String() string {
	switch c {
	case Properties:
		return "properties"
	case JSON:
		return "json"
	}
	return "envelope"
}

// Label names the mode as reports and metrics carry it: envelope,
// properties, or json:FIELD with field the JSON member.
func (c Correlation) Label(field string) string {
	if c == JSON {
		return "json:" + field
	}
	return c.String()
}

// ParseCorrelation parses a CORRELATE value: envelope, properties or
// json:FIELD; empty is envelope on MQTT 3.1.1 (version 4) and properties on
// MQTT 5. It returns the JSON member name for json:FIELD. The errors name the
// value and what is allowed (the caller adds the variable).
func ParseCorrelation(s string, version byte) (Correlation, string, error) {
	switch {
	case s == "" && version == 5, s == "properties":
		if version != 5 {
			return Properties, "", ErrPropertiesNeedV5
		}
		return Properties, "", nil
	case s == "" || s == "envelope":
		return Envelope, "", nil
	case len(s) > 5 && s[:5] == "json:":
		f := s[5:]
		for i := 0; i < len(f); i++ {
			if f[i] == '"' || f[i] == '\\' {
				return JSON, "", fmt.Errorf("%q must name a JSON member: json:FIELD, FIELD without quotes or backslashes", s)
			}
		}
		return JSON, f, nil
	case s == "json:":
		return JSON, "", fmt.Errorf("%q must name a JSON member: json:FIELD", s)
	}
	return Envelope, "", fmt.Errorf("%q must be envelope, properties or json:FIELD", s)
}
