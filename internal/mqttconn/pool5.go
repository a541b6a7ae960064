package mqttconn

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// errRefused5: the broker refused the MQTT 5 CONNECT for a reason retrying
// cannot cure (bad credentials, not authorised, banned, bad authentication
// method).
var errRefused5 = errors.New("connection refused by broker")

// conn5 is one autopaho connection manager (MQTT 5) and its current
// session. autopaho owns the MQTT session: CONNECT, keepalive,
// acknowledgements, QoS 1/2 and reconnecting. It dials through
// connBase.dial, so every session has the same fast paths as on 3.1.1.
type conn5 struct {
	connBase
	cm     *autopaho.ConnectionManager
	ctx    context.Context // ends with the pool: stops reconnecting
	cancel context.CancelFunc
}

// newConn5 starts connection i, which keeps connecting in the background.
func newConn5(p *Pool, i int, u *url.URL) (*conn5, error) {
	o := p.opts
	c := &conn5{connBase: connBase{idx: i, pool: p}}
	c.self = c
	c.ctx, c.cancel = context.WithCancel(context.Background())
	cfg := autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u},
		KeepAlive:                     uint16(min(o.KeepAlive/time.Second, 65535)),
		CleanStartOnInitialConnection: true,
		ConnectTimeout:                o.ConnectTimeout,
		// Attempt n (0 = the first after a loss) waits as the pool's
		// reconnect policy says (ReconnectDelay), as the 3.1.1 connections do.
		ReconnectBackoff: func(n int) time.Duration {
			return ReconnectDelay(n, o.MaxReconnectInterval, rand.Float64())
		},
		AttemptConnection: func(_ context.Context, _ autopaho.ClientConfig, u *url.URL) (net.Conn, error) {
			return c.dial(u)
		},
		// Both must not block: subscribing waits for a SUBACK.
		OnConnectionUp: func(cm *autopaho.ConnectionManager, ca *paho.Connack) {
			s := c.cur.Load()
			if s != nil {
				s.caps.Store(capsFromConnack(ca))
			}
			go c.onUp(cm, s)
		},
		OnConnectionDown: func() bool {
			c.refresh()
			o.Logger.Warn("mqtt connection lost", "conn", c.idx)
			return true
		},
		OnConnectError: func(err error) {
			var ce *autopaho.ConnackError
			if errors.As(err, &ce) {
				switch ce.ReasonCode {
				case 0x86, 0x87, 0x8A, 0x8C: // bad credentials, not authorised, banned, bad auth method
					err = fmt.Errorf("%w: %v", errRefused5, err)
				case 0x01, 0x84: // a 3.1.1 broker's "unacceptable protocol version"; unsupported protocol version
					err = fmt.Errorf("%w (CONNACK 0x%02x): %v", ErrMQTT5Refused, ce.ReasonCode, err)
				}
			}
			c.err.Store(&err)
			o.Logger.Debug("mqtt connect attempt failed", "conn", c.idx, "err", err)
		},
		ClientConfig: paho.ClientConfig{
			ClientID: o.ClientIDPrefix + "-" + strconv.Itoa(i),
			// Messages the fast path does not take (QoS > 0) arrive here.
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){
				func(pr paho.PublishReceived) (bool, error) {
					if o.OnMessage == nil {
						return true, nil
					}
					m := Message{Topic: pr.Packet.Topic, Payload: pr.Packet.Payload}
					if pp := pr.Packet.Properties; pp != nil {
						m.ResponseTopic, m.CorrelationData = pp.ResponseTopic, pp.CorrelationData
						if pp.MessageExpiry != nil {
							m.ExpirySeconds = *pp.MessageExpiry
						}
					}
					c.deliver(&m)
					return true, nil
				},
			},
		},
	}
	if o.Username != "" {
		cfg.ConnectUsername, cfg.ConnectPassword = o.Username, []byte(o.Password)
	}
	cm, err := autopaho.NewConnection(c.ctx, cfg)
	if err != nil {
		c.cancel()
		return nil, fmt.Errorf("mqtt 5 connection %d: %w", i, err)
	}
	c.cm = cm
	return c, nil
}

// onUp subscribes on session s, retrying with backoff while the session
// lasts, then marks it up (see pahoConn.onConnect).
func (c *conn5) onUp(cm *autopaho.ConnectionManager, s *session) {
	over := func() bool { return s == nil || s.Dead() || c.cur.Load() != s }
	if !c.subscribeSession(func(f []string) error { return c.subscribe(cm, f) }, over) {
		return
	}
	if s != nil {
		s.ready.Store(true)
	}
	c.refresh()
}

// subscribe makes the subscriptions once, waiting up to SubscribeTimeout.
func (c *conn5) subscribe(cm *autopaho.ConnectionManager, filters []string) error {
	o := c.pool.opts
	s := &paho.Subscribe{}
	for _, f := range filters {
		s.Subscriptions = append(s.Subscriptions, paho.SubscribeOptions{Topic: f, QoS: o.QoS})
	}
	ctx, cancel := context.WithTimeout(c.ctx, o.SubscribeTimeout)
	defer cancel()
	sa, err := cm.Subscribe(ctx, s)
	if sa != nil {
		for i, code := range sa.Reasons {
			if code >= 0x80 && i < len(filters) {
				return c.refused(filters[i], fmt.Sprintf("SUBACK reason 0x%02x", code))
			}
		}
	}
	if err != nil {
		if errors.Is(err, paho.ErrInvalidArguments) { // e.g. the CONNACK said Shared Subscription Available = 0
			f := filters[0]
			for _, g := range filters {
				if strings.HasPrefix(g, "$share/") {
					f = g
					break
				}
			}
			return c.refused(f, err.Error())
		}
		if ctx.Err() != nil {
			return fmt.Errorf("no SUBACK within %v", o.SubscribeTimeout)
		}
		return err
	}
	if sa != nil {
		c.grant(sa.Reasons) // all below 0x80 here: the QoS granted
	}
	return nil
}

// QueueMessage implements Conn.
func (c *conn5) QueueMessage(m *Message) error { return c.send(m, false) }

// PublishMessage implements Conn.
func (c *conn5) PublishMessage(m *Message) error { return c.send(m, true) }

func (c *conn5) send(m *Message, kick bool) error {
	if err := checkMessage(m, true); err != nil {
		return err
	}
	q := c.pool.opts.QoS
	if q == 0 {
		return c.appendFast(m, kick)
	}
	if !c.Connected() {
		return ErrNotConnected
	}
	// autopaho's Publish waits for the acknowledgement: never on the
	// caller's goroutine. A frame that is not written is reported unsent by
	// the transport; one written and not acknowledged counts as sent.
	p := &paho.Publish{QoS: q, Topic: strings.Clone(m.Topic), Payload: append([]byte(nil), m.Payload...)}
	if m.ResponseTopic != "" || m.CorrelationData != nil || m.ExpirySeconds > 0 {
		p.Properties = &paho.PublishProperties{ResponseTopic: strings.Clone(m.ResponseTopic)}
		if m.CorrelationData != nil {
			p.Properties.CorrelationData = append([]byte(nil), m.CorrelationData...)
		}
		if m.ExpirySeconds > 0 {
			e := m.ExpirySeconds
			p.Properties.MessageExpiry = &e
		}
	}
	go func() {
		ctx, cancel := context.WithTimeout(c.ctx, c.pool.opts.WriteTimeout+c.pool.opts.KeepAlive)
		defer cancel()
		resp, err := c.cm.Publish(ctx, p)
		if c.ctx.Err() != nil {
			return
		}
		// Refused, by the client library for a limit the broker announced
		// (Maximum QoS, ...) or by the broker (PUBACK/PUBREC reason ≥ 0x80):
		// not sent. Not acknowledged in time: written, so sent.
		var reason byte
		if resp != nil {
			reason = resp.ReasonCode
		}
		if errors.Is(err, paho.ErrInvalidArguments) || reason >= 0x80 {
			c.pool.refusedLog.Do(func() {
				c.pool.opts.Logger.Warn("mqtt publish refused; counted as not sent (this warning at most every 10 s)",
					"conn", c.idx, "qos", q, "reason_code", reason, "err", err)
			})
			if c.pool.opts.OnUnsent != nil {
				var cd []byte
				if p.Properties != nil {
					cd = p.Properties.CorrelationData
				}
				c.unsent(&Message{Topic: p.Topic, Payload: p.Payload, CorrelationData: cd})
			}
			return
		}
		if err != nil {
			c.pool.opts.Logger.Debug("mqtt 5 publish not acknowledged", "conn", c.idx, "qos", q, "err", err)
		}
	}()
	return nil
}

// Connected implements Conn.
func (c *conn5) Connected() bool { return c.sessionUp() }

func (c *conn5) unsubscribe(ctx context.Context, filters []string) error {
	if !c.Connected() {
		return nil
	}
	_, err := c.cm.Unsubscribe(ctx, &paho.Unsubscribe{Topics: filters})
	return err
}

func (c *conn5) disconnect() {
	ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
	_ = c.cm.Disconnect(ctx) // sends DISCONNECT when connected; stops reconnecting
	cancel()
	c.cancel()
	if s := c.cur.Load(); s != nil {
		_ = s.Close()
	}
	select {
	case <-c.cm.Done():
	case <-time.After(2 * time.Second):
	}
	c.refresh()
}
