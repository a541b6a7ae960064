package mqttconn

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
)

// Schemes are the broker URL schemes the pool dials: the plain ones, then
// the TLS ones. This is the one list; errors and help text print it.
var (
	PlainSchemes = []string{"tcp", "mqtt"}
	TLSSchemes   = []string{"ssl", "tls", "mqtts"}
)

// ValidateBrokerURL checks that broker is a URL with one of the Schemes and
// a host. The error describes the value; the caller adds the variable.
func ValidateBrokerURL(broker string) error {
	u, err := url.Parse(broker)
	if err != nil {
		return fmt.Errorf("is not a URL: %v", err)
	}
	if !slices.Contains(PlainSchemes, u.Scheme) && !slices.Contains(TLSSchemes, u.Scheme) {
		return fmt.Errorf("has scheme %q; allowed: %s", u.Scheme, schemeList())
	}
	if u.Hostname() == "" {
		return fmt.Errorf("has no host (want e.g. tcp://localhost:1883)")
	}
	return nil
}

// IsTLS reports whether broker is a TLS URL (one of TLSSchemes).
func IsTLS(broker string) bool {
	scheme, _, ok := strings.Cut(broker, "://")
	return ok && slices.Contains(TLSSchemes, scheme)
}

// schemeList is "tcp://, mqtt://, ssl://, tls://, mqtts://".
func schemeList() string {
	var b strings.Builder
	for _, s := range slices.Concat(PlainSchemes, TLSSchemes) {
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		b.WriteString(s + "://")
	}
	return b.String()
}
