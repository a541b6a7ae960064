package mqttconn

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Connect failures that retrying cannot cure, found in the first attempts so
// that Dial fails in about a second instead of ConnectTimeout.
var (
	// ErrMQTT5Refused: the broker closed the MQTT 5 CONNECT or answered it
	// with CONNACK 0x01 / 0x84 (unsupported protocol version).
	ErrMQTT5Refused = errors.New("the broker refused MQTT 5: set MQTT_VERSION=3.1.1")
	// ErrTLSMismatch: TLS to a plain listener, or plain TCP to a TLS one.
	ErrTLSMismatch = errors.New("TLS mismatch")
)

// closedEarly reports whether err is the broker closing the connection
// before its CONNACK: EOF or a reset.
func closedEarly(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		err != nil && (strings.HasSuffix(err.Error(), "EOF") || strings.Contains(err.Error(), "connection reset by peer"))
}

// tlsToPlain returns ErrTLSMismatch, explained, when err is a TLS handshake
// that got something other than TLS back.
func tlsToPlain(u *url.URL, err error) error {
	var rh tls.RecordHeaderError
	if errors.As(err, &rh) || err != nil && strings.Contains(err.Error(), "first record does not look like a TLS handshake") {
		return fmt.Errorf("%w: %s is a TLS URL but %s answers without TLS (a plain MQTT listener): use tcp://%s, or the broker's TLS port",
			ErrTLSMismatch, u.Scheme, u.Host, u.Host)
	}
	return nil
}

// diagnose explains connect failures that closed the connection before a
// CONNACK on every connection: a plain URL to a TLS listener (checked with a
// TLS handshake, the certificate not verified) or, on MQTT 5, a broker that
// does not speak it. nil when it cannot tell.
func diagnose(u *url.URL, v5 bool, timeout time.Duration) error {
	d := &net.Dialer{Timeout: timeout}
	if slices.Contains(TLSSchemes, u.Scheme) {
		host := u.Host
		if u.Port() == "" {
			host = net.JoinHostPort(u.Hostname(), "8883")
		}
		if speaksPlainMQTT(d, host, timeout) {
			return fmt.Errorf("%w: %s is a TLS URL but %s is a plain MQTT listener (it answered a CONNECT without TLS): use tcp://%s, or the broker's TLS port",
				ErrTLSMismatch, u.Scheme, host, host)
		}
		return nil
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "1883")
	}
	c, err := tls.DialWithDialer(d, "tcp", host, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // only asks whether the port speaks TLS
	if err == nil {
		_ = c.Close()
		return fmt.Errorf("%w: %s answers with TLS: use ssl://%s (or tls://, mqtts://) with TLS_CA_FILE if its certificate is private", ErrTLSMismatch, host, host)
	}
	if v5 {
		return fmt.Errorf("%w (it closed the MQTT 5 CONNECT without a CONNACK)", ErrMQTT5Refused)
	}
	return nil
}

// speaksPlainMQTT reports whether host answers an MQTT 3.1.1 CONNECT sent
// without TLS with a CONNACK.
func speaksPlainMQTT(d *net.Dialer, host string, timeout time.Duration) bool {
	c, err := d.Dial("tcp", host)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	// CONNECT: protocol "MQTT" level 4, clean session, keepalive 10 s, empty
	// client id; then DISCONNECT once answered.
	if _, err := c.Write([]byte{0x10, 0x0c, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 10, 0, 0}); err != nil {
		return false
	}
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil || b[0] != 0x20 {
		return false
	}
	_, _ = c.Write([]byte{0xe0, 0})
	return true
}
