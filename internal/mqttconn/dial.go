package mqttconn

import (
	"crypto/tls"
	"net"
	"net/url"
	"slices"
)

// dial connects to the broker (TCP or TLS) and makes the new session the
// current one.
func (c *connBase) dial(u *url.URL) (*session, error) {
	o := c.pool.opts
	d := &net.Dialer{Timeout: o.ConnectTimeout}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "1883")
		if slices.Contains(TLSSchemes, u.Scheme) {
			host = net.JoinHostPort(u.Hostname(), "8883")
		}
	}
	var nc net.Conn
	var err error
	switch {
	case slices.Contains(TLSSchemes, u.Scheme):
		cfg := o.TLS
		if cfg == nil {
			cfg = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		if cfg.ServerName == "" && !cfg.InsecureSkipVerify {
			cfg = cfg.Clone()
			cfg.ServerName = u.Hostname()
		}
		nc, err = (&tls.Dialer{NetDialer: d, Config: cfg}).Dial("tcp", host)
	default:
		nc, err = d.Dial("tcp", host)
	}
	if err != nil {
		return nil, err
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	var onPublish, onUnsent func(*Message)
	if o.OnMessage != nil && o.QoS == 0 {
		onPublish = c.deliver
	}
	if o.OnUnsent != nil {
		onUnsent = c.unsent
	}
	s := newSession(nc, &o, onPublish, onUnsent)
	s.onOversized = c.oversized
	if old := c.cur.Swap(s); old != nil {
		_ = old.Close()
	}
	c.refresh()
	return s, nil
}

// redactURL returns u without its user information (the password).
func redactURL(u *url.URL) string {
	c := *u
	c.User = nil
	return c.String()
}
