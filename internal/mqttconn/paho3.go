package mqttconn

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// pahoConn is one paho.mqtt.golang client (MQTT 3.1.1) and its current
// session. With Plain, paho dials its own socket (no session) and plainUp
// stands in for the session's state.
type pahoConn struct {
	connBase
	client  mqtt.Client
	plainUp atomic.Bool // Plain only: connected and subscribed
}

// newPahoConn starts connection i, which keeps connecting in the background.
func newPahoConn(p *Pool, i int) *pahoConn {
	c := &pahoConn{connBase: connBase{idx: i, pool: p}}
	c.self = c
	c.client = mqtt.NewClient(c.clientOptions())
	c.client.Connect() // ConnectRetry: keeps trying in the background
	return c
}

// clientOptions configures paho for connection c: clean sessions,
// reconnecting by itself, ordered delivery, the pool's timeouts, and every
// session's socket dialled by open (unless Plain).
func (c *pahoConn) clientOptions() *mqtt.ClientOptions {
	o := c.pool.opts
	co := mqtt.NewClientOptions().
		AddBroker(o.Broker).
		SetClientID(o.ClientIDPrefix + "-" + strconv.Itoa(c.idx)).
		SetCleanSession(true).
		SetOrderMatters(true).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetKeepAlive(o.KeepAlive).
		SetPingTimeout(10 * time.Second).
		SetConnectTimeout(o.ConnectTimeout).
		SetProtocolVersion(4).
		SetWriteTimeout(o.WriteTimeout)
	if o.Plain { // paho as it comes: its own waits (1 s, doubling to the cap)
		co.SetTLSConfig(o.TLS).SetConnectRetryInterval(500 * time.Millisecond).SetMaxReconnectInterval(o.MaxReconnectInterval)
	} else {
		// The pool's reconnect policy (reconnect.go) waits in open, before
		// each dial. paho's own waits — at least 1 s after a failed attempt,
		// min(1 s, MaxReconnectInterval) doubling up to it — would come on
		// top: they are cut to 1 ms.
		co.SetCustomOpenConnectionFn(c.open).SetConnectRetryInterval(time.Millisecond).SetMaxReconnectInterval(time.Millisecond)
	}
	if o.Username != "" {
		co.SetUsername(o.Username)
		co.SetPassword(o.Password)
	}
	co.SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
		if o.OnMessage != nil {
			c.deliver(&Message{Topic: m.Topic(), Payload: m.Payload()})
		}
	})
	co.SetOnConnectHandler(func(cl mqtt.Client) { c.onConnect(cl) })
	co.SetConnectionNotificationHandler(func(_ mqtt.Client, n mqtt.ConnectionNotification) {
		var err error
		switch n := n.(type) {
		case mqtt.ConnectionNotificationFailed:
			err = n.Reason
		case mqtt.ConnectionNotificationBrokerFailed:
			err = n.Reason
		case mqtt.ConnectionNotificationConnected:
			c.err.Store(nil)
			return
		default:
			return
		}
		if err != nil {
			c.err.Store(&err)
			o.Logger.Debug("mqtt connect attempt failed", "conn", c.idx, "err", err)
		}
	})
	co.SetConnectionLostHandler(func(cl mqtt.Client, err error) {
		// paho may run this after the next session is up: only a Plain
		// connection that is not open any more is marked down here (a
		// fast-path session is down once its own transport failed).
		if o.Plain && !cl.IsConnectionOpen() {
			c.plainUp.Store(false)
		}
		c.refresh()
		o.Logger.Warn("mqtt connection lost", "conn", c.idx, "err", err)
	})
	return co
}

// open waits as the reconnect policy says (backoff), then dials the broker
// and wraps the socket in a session.
func (c *pahoConn) open(u *url.URL, _ mqtt.ClientOptions) (net.Conn, error) {
	if err := c.backoff(); err != nil {
		return nil, err
	}
	return c.dial(u)
}

// onConnect runs (on a goroutine of paho's) once a session is connected: it
// subscribes, retrying with backoff while the session lasts (a SUBACK that
// is late or refused must not leave the connection open and down for the
// rest of the run), then marks the session up.
func (c *pahoConn) onConnect(cl mqtt.Client) {
	s := c.cur.Load() // this session's transport (nil with Plain)
	if s != nil {
		caps := caps311
		s.caps.Store(&caps)
	}
	c.connected()
	over := func() bool {
		return s != nil && (s.Dead() || c.cur.Load() != s) || s == nil && !cl.IsConnectionOpen()
	}
	if !c.subscribeSession(func(f []string) error { return c.subscribe(cl, f) }, over) {
		return
	}
	if s != nil {
		s.ready.Store(true)
	} else {
		c.plainUp.Store(true)
	}
	c.refresh()
}

// subscribe makes the subscriptions once, waiting up to SubscribeTimeout.
func (c *pahoConn) subscribe(cl mqtt.Client, filters []string) error {
	o := c.pool.opts
	m := make(map[string]byte, len(filters))
	for _, f := range filters {
		m[f] = o.QoS
	}
	tok := cl.SubscribeMultiple(m, nil)
	if !tok.WaitTimeout(o.SubscribeTimeout) {
		return fmt.Errorf("no SUBACK within %v", o.SubscribeTimeout)
	}
	if err := tok.Error(); err != nil {
		return err
	}
	if st, ok := tok.(*mqtt.SubscribeToken); ok {
		codes := make([]byte, 0, len(filters))
		for f, code := range st.Result() {
			if code == 0x80 {
				return c.refused(f, "SUBACK 0x80")
			}
			codes = append(codes, code)
		}
		c.grant(codes)
	}
	return nil
}

// QueueMessage implements Conn.
func (c *pahoConn) QueueMessage(m *Message) error { return c.sendMessage(m, false) }

// PublishMessage implements Conn.
func (c *pahoConn) PublishMessage(m *Message) error { return c.sendMessage(m, true) }

func (c *pahoConn) sendMessage(m *Message, kick bool) error {
	if err := checkMessage(m, false); err != nil {
		return err
	}
	if q := c.pool.opts.QoS; q > 0 || c.pool.opts.Plain {
		if !c.Connected() {
			return ErrNotConnected
		}
		// paho keeps topic and payload until its writer goroutine has sent
		// them (and, at QoS > 0, until acknowledged): give it copies.
		tok := c.client.Publish(strings.Clone(m.Topic), q, false, bytes.Clone(m.Payload))
		select {
		case <-tok.Done():
			return tok.Error()
		default:
			return nil
		}
	}
	return c.appendFast(m, kick)
}

// Connected implements Conn.
func (c *pahoConn) Connected() bool {
	if c.pool.opts.Plain {
		return c.plainUp.Load()
	}
	return c.sessionUp()
}

func (c *pahoConn) unsubscribe(ctx context.Context, filters []string) error {
	if !c.client.IsConnectionOpen() {
		return nil
	}
	tok := c.client.Unsubscribe(filters...)
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *pahoConn) disconnect() {
	c.client.Disconnect(250)
	if s := c.cur.Load(); s != nil {
		_ = s.Close()
	}
	c.plainUp.Store(false)
	c.refresh()
}
