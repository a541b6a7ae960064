// Package envconf owns how the binaries and helper commands read their
// configuration: environment variables parsed with envconfig, every
// validation problem reported at once (wrapping ErrInvalid, for exit status
// 2), the table of variables for -h, and the settings several binaries share
// (Security: broker authentication and TLS; ParseProtocol: MQTT_VERSION and
// CORRELATE).
//
// A Config struct declares each variable with the tags `envconfig:"NAME"`,
// `default:"..."` and `desc:"... (unit)"`.
package envconf

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"unicode"
	"unicode/utf8"

	"github.com/kelseyhightower/envconfig"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/wire"
)

// ErrInvalid is wrapped by every configuration error, so callers can map it to
// exit status 2.
var ErrInvalid = errors.New("invalid configuration")

// Validator is implemented by configs that check their values after parsing.
type Validator interface {
	// Validate returns every problem found joined with errors.Join (nil when
	// there is none), each naming the variable, the value and the rule, e.g.
	// "MIN_WORKERS=50 is greater than MAX_WORKERS=10".
	Validate() error
}

// Load parses the environment into spec (a pointer to a struct) and, if spec
// implements Validator, validates it. The error lists every problem.
func Load(spec any) error {
	if err := envconfig.Process("", spec); err != nil {
		var pe *envconfig.ParseError
		if errors.As(err, &pe) {
			return fmt.Errorf("%w: %s=%q is not a valid %s", ErrInvalid, pe.KeyName, pe.Value, typeName(pe.TypeName))
		}
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if v, ok := spec.(Validator); ok {
		return Invalid(v.Validate())
	}
	return nil
}

// Invalid words the problems joined in err (a Validate or Resolve error)
// under ErrInvalid, one a line, as every configuration error is printed;
// nil for nil.
func Invalid(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w:\n  %w", ErrInvalid, errors.Join(indent(Problems(err))...))
}

// Problems returns the problems a Validate error joins, one per rule broken:
// the errors given to errors.Join, or err itself when it joins nothing; nil
// for nil.
func Problems(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// indent puts every problem after the first on its own indented line.
func indent(errs []error) []error {
	out := make([]error, len(errs))
	for i, e := range errs {
		if i == 0 {
			out[i] = e
			continue
		}
		out[i] = fmt.Errorf("  %w", e)
	}
	return out
}

func typeName(t string) string {
	switch t {
	case "int", "int8", "int16", "int32", "int64":
		return "integer"
	case "uint", "uint8", "uint16", "uint32", "uint64":
		return "non-negative integer"
	case "float32", "float64":
		return "number"
	case "bool":
		return "boolean (true/false)"
	case "Duration", "time.Duration":
		return `duration (e.g. "10s", "1m30s")`
	}
	return t
}

// Usage writes the table of variables of spec (a pointer to a struct): name,
// default and description.
func Usage(w io.Writer, binary, summary string, spec any) error {
	fmt.Fprintf(w, "%s: %s\n\nConfiguration is read from environment variables:\n\n", binary, summary)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIABLE\tDEFAULT\tDESCRIPTION")
	const format = `{{range .}}{{usage_key .}}	{{usage_default .}}	{{usage_description .}}
{{end}}`
	if err := envconfig.Usagef("", spec, tw, format); err != nil {
		return err
	}
	return tw.Flush()
}

// Check returns a validation error "NAME=value rule" when !ok, else nil.
// It keeps Validate methods to one line a rule: list the Checks and return
// errors.Join of them (which drops the nils of the rules that hold).
func Check(ok bool, name string, value any, rule string) error {
	if ok {
		return nil
	}
	return fmt.Errorf("%s=%s %s", name, quote(value), rule)
}

// printable reports whether s is valid UTF-8 without control characters, so
// it can be shown as it is (anything else is shown %q-escaped).
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

func quote(v any) string {
	s := fmt.Sprint(v)
	if s == "" || strings.ContainsAny(s, " \t") || !printable(s) {
		return fmt.Sprintf("%q", s)
	}
	return s
}

// ParseProtocol parses MQTT_VERSION ("3.1.1" or "4" is protocol version 4,
// "5" or "5.0" version 5) and CORRELATE (wire.ParseCorrelation), the
// settings both binaries share. It returns every problem, each naming its
// variable.
func ParseProtocol(version, correlate string) (v byte, c wire.Correlation, field string, errs []error) {
	switch version {
	case "3.1.1", "4":
		v = 4
	case "5", "5.0":
		v = 5
	default:
		errs = append(errs, fmt.Errorf("MQTT_VERSION=%q must be 3.1.1 or 5", version))
	}
	c, field, err := wire.ParseCorrelation(correlate, v)
	switch {
	case errors.Is(err, wire.ErrPropertiesNeedV5):
		errs = append(errs, fmt.Errorf("CORRELATE=properties needs MQTT_VERSION=5 (Correlation Data is an MQTT 5 property)"))
	case err != nil:
		errs = append(errs, fmt.Errorf("CORRELATE=%w", err))
	}
	return v, c, field, errs
}
