package mqttconn

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// Pool is a set of MQTT connections: paho.mqtt.golang clients for MQTT
// 3.1.1 (pahoConn), autopaho clients for MQTT 5 (conn5).
type Pool struct {
	opts  Options
	conns []member
	once  sync.Once
	done  chan struct{} // closed by Close: ends subscribe retries
}

// member is one connection of the pool, of either protocol version.
type member interface {
	Conn
	base() *connBase
	// unsubscribe removes filters on the current session, if it is open.
	unsubscribe(ctx context.Context, filters []string) error
	// disconnect ends the client (no reconnect) and closes its transport.
	disconnect()
}

// connBase is the state both kinds of connection keep.
//
// Session state lives on the session's transport (session): a reconnect
// makes a new one, which accepts publishes only once its subscriptions are
// made, and a late connection-lost notification of an old session cannot
// mark the new one down.
type connBase struct {
	idx     int
	pool    *Pool
	self    member                  // the connection this is the base of
	cur     atomic.Pointer[session] // transport of the current session
	up      atomic.Bool             // last state passed to OnState
	stateMu sync.Mutex              // serialises refresh
	err     atomic.Pointer[error]   // last connect or subscribe failure

	// hmu guards delivery: handlers run under its read lock, and Close
	// takes the write lock, so no handler runs once Close has begun.
	hmu          sync.RWMutex
	closed       bool // no more inbound messages
	unsentClosed bool // no more unsent reports
}

func (c *connBase) base() *connBase { return c }

// ErrSubscriptionRefused: the broker refused a subscription (SUBACK 0x80),
// typically an ACL; retrying cannot cure it.
var ErrSubscriptionRefused = errors.New("subscription refused by broker")

// pahoConn is one paho.mqtt.golang client (MQTT 3.1.1) plus the transport
// under it. With Plain, plainUp stands in for the transport's state.
type pahoConn struct {
	connBase
	client  mqtt.Client
	plainUp atomic.Bool // Plain only: connected and subscribed
}

// Dial creates the pool and connects every connection, waiting up to
// Options.ConnectTimeout for all of them to be connected and subscribed.
// Connections that drop later reconnect by themselves.
func Dial(ctx context.Context, o Options) (*Pool, error) {
	o.setDefaults()
	u, err := url.Parse(o.Broker)
	if err != nil {
		return nil, fmt.Errorf("broker url %q: %w", o.Broker, err)
	}
	if err := ValidateBrokerURL(o.Broker); err != nil {
		return nil, fmt.Errorf("broker url %q %w", o.Broker, err)
	}
	if o.QoS > 2 {
		return nil, fmt.Errorf("qos %d not in 0..2", o.QoS)
	}
	switch o.ProtocolVersion {
	case 4, 5:
	default:
		return nil, fmt.Errorf("mqtt protocol version %d not supported (4 = 3.1.1, 5)", o.ProtocolVersion)
	}
	if o.ProtocolVersion == 5 && o.Plain {
		return nil, errors.New("the plain paho transport is MQTT 3.1.1 only")
	}
	p := &Pool{opts: o, done: make(chan struct{})}
	for i := range o.Connections {
		if o.ProtocolVersion == 5 {
			c, err := newConn5(p, i, u)
			if err != nil {
				p.Close()
				return nil, err
			}
			p.conns = append(p.conns, c)
			continue
		}
		c := &pahoConn{connBase: connBase{idx: i, pool: p}}
		c.self = c
		c.client = mqtt.NewClient(p.clientOptions(c))
		p.conns = append(p.conns, c)
		c.client.Connect() // ConnectRetry: keeps trying in the background
	}
	var refused error
	if !waitUntil(ctx, o.ConnectTimeout, func() bool {
		if refused = p.permanentError(); refused != nil {
			return true
		}
		return p.Up() == len(p.conns)
	}) || refused != nil {
		up := p.Up()
		p.Close()
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if refused != nil {
			return nil, fmt.Errorf("connect to %s: refused: %w", redactURL(u), refused)
		}
		msg := fmt.Sprintf("connect to %s: %d of %d connections up after %v", redactURL(u), up, o.Connections, o.ConnectTimeout)
		if last := p.lastError(); last != nil {
			return nil, fmt.Errorf("%s; last error: %w", msg, last)
		}
		return nil, errors.New(msg)
	}
	return p, nil
}

// lastError returns the most recent connect failure of any connection.
func (p *Pool) lastError() error {
	for _, c := range p.conns {
		if e := c.base().err.Load(); e != nil {
			return *e
		}
	}
	return nil
}

// permanentError returns a connect failure that retrying cannot cure: bad
// credentials, not authorised, or a broker certificate that does not verify.
func (p *Pool) permanentError() error {
	err := p.lastError()
	if err == nil {
		return nil
	}
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	// A TLS alert from the broker (e.g. "certificate required") has an
	// unexported type: recognise it by the net.OpError's operation.
	var op *net.OpError
	alert := errors.As(err, &op) && op.Op == "remote error"
	if errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword) || errors.Is(err, packets.ErrorRefusedNotAuthorised) || errors.Is(err, ErrSubscriptionRefused) ||
		errors.Is(err, errRefused5) ||
		errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &he) || alert {
		return err
	}
	return nil
}

func redactURL(u *url.URL) string {
	c := *u
	c.User = nil
	return c.String()
}

func (p *Pool) clientOptions(c *pahoConn) *mqtt.ClientOptions {
	o := p.opts
	co := mqtt.NewClientOptions().
		AddBroker(o.Broker).
		SetClientID(o.ClientIDPrefix + "-" + strconv.Itoa(c.idx)).
		SetCleanSession(true).
		SetOrderMatters(true).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(500 * time.Millisecond).
		SetMaxReconnectInterval(o.MaxReconnectInterval).
		SetKeepAlive(o.KeepAlive).
		SetPingTimeout(10 * time.Second).
		SetConnectTimeout(o.ConnectTimeout).
		SetProtocolVersion(4).
		SetWriteTimeout(o.WriteTimeout).
		SetMessageChannelDepth(1024)
	if o.Plain {
		co.SetTLSConfig(o.TLS)
	} else {
		co.SetCustomOpenConnectionFn(c.open)
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

// open dials the broker and wraps the socket in a session.
func (c *pahoConn) open(u *url.URL, _ mqtt.ClientOptions) (net.Conn, error) { return c.dial(u) }

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
	if old := c.cur.Swap(s); old != nil {
		_ = old.Close()
	}
	c.refresh()
	return s, nil
}

// deliver passes an inbound message to the handler unless the pool is closing.
func (c *connBase) deliver(m *Message) {
	c.hmu.RLock()
	if !c.closed {
		c.pool.opts.OnMessage(c.idx, m)
	}
	c.hmu.RUnlock()
}

// unsent passes a discarded frame to OnUnsent until the pool has closed.
func (c *connBase) unsent(m *Message) {
	c.hmu.RLock()
	if !c.unsentClosed {
		c.pool.opts.OnUnsent(c.idx, m)
	}
	c.hmu.RUnlock()
}

// onConnect runs (on a goroutine of paho's) once a session is connected: it
// subscribes, retrying with backoff while the session lasts (a SUBACK that
// is late or refused must not leave the connection open and down for the
// rest of the run), then marks the session up.
func (c *pahoConn) onConnect(cl mqtt.Client) {
	s := c.cur.Load() // this session's transport (nil with Plain)
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

// subscribeSession makes the connection's subscriptions on a new session
// with subscribe, retrying with backoff (a SUBACK that is late or refused
// must not leave the connection open and down for the rest of the run). It
// returns false when the session ended first (over) or the pool closed: the
// next session subscribes.
func (c *connBase) subscribeSession(subscribe func([]string) error, over func() bool) bool {
	o := c.pool.opts
	var filters []string
	if o.Subscriptions != nil {
		filters = o.Subscriptions(c.idx)
	}
	backoff := 500 * time.Millisecond
	for len(filters) > 0 {
		err := subscribe(filters)
		if err == nil {
			break
		}
		c.err.Store(&err)
		o.Logger.Error("mqtt subscribe failed; retrying", "conn", c.idx, "filters", len(filters), "err", err, "retry_in_seconds", backoff.Seconds())
		if over() {
			return false
		}
		select {
		case <-c.pool.done:
			return false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, o.MaxReconnectInterval)
	}
	c.err.Store(nil)
	return true
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
		for f, code := range st.Result() {
			if code == 0x80 {
				return fmt.Errorf("%w: %s", ErrSubscriptionRefused, f)
			}
		}
	}
	return nil
}

// refresh recomputes the connection's state and reports a change to OnState.
func (c *connBase) refresh() {
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	up := c.self.Connected()
	if c.up.Swap(up) != up && c.pool.opts.OnState != nil {
		c.pool.opts.OnState(c.idx, up)
	}
}

// Publish implements Conn.
func (c *pahoConn) Publish(topic string, payload []byte) error {
	return c.sendMessage(&Message{Topic: topic, Payload: payload}, true)
}

// Queue implements Conn.
func (c *pahoConn) Queue(topic string, payload []byte) error {
	return c.sendMessage(&Message{Topic: topic, Payload: payload}, false)
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

// appendFast appends m, which checkMessage accepted, to the current
// session's write buffer.
func (c *connBase) appendFast(m *Message, kick bool) error {
	s := c.cur.Load()
	if s == nil || !s.ready.Load() || s.Dead() {
		return ErrNotConnected
	}
	return s.publish(m, kick)
}

// Flush implements Conn: one non-blocking write of what Queue buffered, from
// the caller's goroutine (no wake-up of the flusher when the socket takes it
// all); the rest is left to the flusher.
func (c *connBase) Flush() {
	if s := c.cur.Load(); s != nil {
		s.Flush()
	}
}

// Connected implements Conn.
func (c *pahoConn) Connected() bool {
	if c.pool.opts.Plain {
		return c.plainUp.Load()
	}
	s := c.cur.Load()
	return s != nil && s.ready.Load() && !s.Dead()
}

// Len returns the number of connections.
func (p *Pool) Len() int { return len(p.conns) }

// Conn returns connection i.
func (p *Pool) Conn(i int) Conn { return p.conns[i] }

// Up returns how many connections are connected and subscribed.
func (p *Pool) Up() int {
	n := 0
	for _, c := range p.conns {
		if c.Connected() {
			n++
		}
	}
	return n
}

// Suspect returns how many connections are up but have written and read
// nothing since for longer than Options.SuspectAfter: a half-open link, or a
// broker that stopped answering, before keepalive notices.
func (p *Pool) Suspect() int {
	n := 0
	for _, c := range p.conns {
		if s := c.base().cur.Load(); s != nil && c.Connected() && s.Suspect(p.opts.SuspectAfter) {
			n++
		}
	}
	return n
}

// Unsubscribe removes every connection's subscriptions (used before a
// graceful shutdown so the broker stops delivering), waiting at most until ctx
// ends. Connections stay open so replies can still be published.
func (p *Pool) Unsubscribe(ctx context.Context) error {
	if p.opts.Subscriptions == nil {
		return nil
	}
	var errs []error
	for i, c := range p.conns {
		filters := p.opts.Subscriptions(i)
		if len(filters) == 0 {
			continue
		}
		if err := c.unsubscribe(ctx, filters); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			errs = append(errs, fmt.Errorf("conn %d: %w", i, err))
		}
	}
	return errors.Join(errs...)
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

// Close stops delivering messages (it waits for a handler that is running),
// disconnects every connection (writing what is buffered within about a
// second each, and reporting what it cannot write to OnUnsent), and stops
// their goroutines. No handler or OnUnsent runs after Close returns. It is
// idempotent.
func (p *Pool) Close() {
	p.once.Do(func() {
		close(p.done)
		for _, c := range p.conns {
			b := c.base()
			b.hmu.Lock()
			b.closed = true
			b.hmu.Unlock()
		}
		var wg sync.WaitGroup
		for _, c := range p.conns {
			wg.Go(c.disconnect)
		}
		wg.Wait()
		for _, c := range p.conns {
			b := c.base()
			b.hmu.Lock()
			b.unsentClosed = true
			b.hmu.Unlock()
		}
	})
}
