package mqttconn

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// ErrRetainUnavailable: the broker said (MQTT 5 CONNACK: Retain Available =
// 0, or a CONNECT with a retained Will refused with reason 0x9A) that it
// keeps no retained messages.
var ErrRetainUnavailable = errors.New("the broker keeps no retained messages")

// Control is one MQTT connection for rare control messages — retained
// messages and the subscriptions that read them — beside a Pool. It goes
// through the client library's own publish path at QoS 1 (acknowledged),
// never the fast paths, and is not meant for traffic.
type Control struct {
	v3     mqtt.Client
	v5     *autopaho.ConnectionManager
	cancel context.CancelFunc // v5: stops the connection manager
	retain atomic.Bool        // the broker keeps retained messages (as far as known)
	o      Options
}

// ControlOptions are what a Control adds to the pool's Options (of which it
// takes Broker, ProtocolVersion, Username, Password, TLS, KeepAlive,
// ConnectTimeout and Logger).
type ControlOptions struct {
	// ClientID of the connection; it must be unique on the broker.
	ClientID string
	// OnMessage receives every message of the subscriptions, with the
	// RETAIN flag as the broker delivered it (set: a retained message sent
	// on subscribing). It runs on the client library's goroutine and must
	// not block. Optional.
	OnMessage func(topic string, payload []byte, retained bool)
	// WillTopic, when set, is the Last Will: the broker publishes
	// WillPayload there, retained at QoS 1, if the connection ends without
	// a DISCONNECT (the process was killed, the network failed).
	WillTopic   string
	WillPayload []byte
}

// DialControl connects a control connection, waiting up to
// Options.ConnectTimeout (or until ctx ends).
func DialControl(ctx context.Context, o Options, c ControlOptions) (*Control, error) {
	o.setDefaults()
	if err := ValidateBrokerURL(o.Broker); err != nil {
		return nil, fmt.Errorf("broker url %q %w", o.Broker, err)
	}
	u, err := url.Parse(o.Broker)
	if err != nil {
		return nil, fmt.Errorf("broker url %q: %w", o.Broker, err)
	}
	ctl := &Control{o: o}
	ctl.retain.Store(true)
	ctx, cancel := context.WithTimeout(ctx, o.ConnectTimeout)
	defer cancel()
	if o.ProtocolVersion == 5 {
		err = ctl.dial5(ctx, u, c)
	} else {
		err = ctl.dial3(ctx, c)
	}
	if err != nil {
		return nil, err
	}
	return ctl, nil
}

func (ctl *Control) dial3(ctx context.Context, c ControlOptions) error {
	o := ctl.o
	co := mqtt.NewClientOptions().AddBroker(o.Broker).SetClientID(c.ClientID).SetCleanSession(true).
		SetOrderMatters(true).SetAutoReconnect(true).SetMaxReconnectInterval(o.MaxReconnectInterval).
		SetKeepAlive(o.KeepAlive).SetConnectTimeout(o.ConnectTimeout).SetProtocolVersion(4).
		SetWriteTimeout(o.WriteTimeout).SetTLSConfig(o.TLS)
	if o.Username != "" {
		co.SetUsername(o.Username)
		co.SetPassword(o.Password)
	}
	if c.WillTopic != "" {
		co.SetBinaryWill(c.WillTopic, c.WillPayload, 1, true)
	}
	co.SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
		if c.OnMessage != nil {
			c.OnMessage(m.Topic(), m.Payload(), m.Retained())
		}
	})
	ctl.v3 = mqtt.NewClient(co)
	if err := wait(ctx, ctl.v3.Connect()); err != nil {
		ctl.v3.Disconnect(0)
		return fmt.Errorf("control connection to %s: %w", redact(o.Broker), err)
	}
	return nil
}

func (ctl *Control) dial5(ctx context.Context, u *url.URL, c ControlOptions) error {
	o := ctl.o
	run, cancel := context.WithCancel(context.Background())
	ctl.cancel = cancel
	// A control connection is not worth waiting for: the first failed
	// attempt ends the wait.
	up, failedAttempt := context.WithCancel(ctx)
	defer failedAttempt()
	var attemptErr atomic.Pointer[error]
	cfg := autopaho.ClientConfig{
		ServerUrls: []*url.URL{u}, TlsCfg: o.TLS,
		KeepAlive:                     uint16(min(o.KeepAlive/time.Second, 65535)),
		CleanStartOnInitialConnection: true,
		ConnectTimeout:                o.ConnectTimeout,
		ReconnectBackoff:              func(n int) time.Duration { return min(500*time.Millisecond*time.Duration(n), o.MaxReconnectInterval) },
		OnConnectionUp: func(_ *autopaho.ConnectionManager, ca *paho.Connack) {
			ctl.retain.Store(ca.Properties == nil || ca.Properties.RetainAvailable)
		},
		OnConnectError: func(err error) {
			var ce *autopaho.ConnackError
			if errors.As(err, &ce) && ce.ReasonCode == 0x9A { // Retain not supported (our Will is retained)
				err = fmt.Errorf("%w (CONNACK 0x9A, Retain not supported): %v", ErrRetainUnavailable, err)
			}
			attemptErr.CompareAndSwap(nil, &err)
			failedAttempt()
		},
		ClientConfig: paho.ClientConfig{
			ClientID: c.ClientID,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
				if c.OnMessage != nil {
					c.OnMessage(pr.Packet.Topic, pr.Packet.Payload, pr.Packet.Retain)
				}
				return true, nil
			}},
		},
	}
	if o.Username != "" {
		cfg.ConnectUsername, cfg.ConnectPassword = o.Username, []byte(o.Password)
	}
	if c.WillTopic != "" {
		cfg.WillMessage = &paho.WillMessage{Topic: c.WillTopic, Payload: c.WillPayload, QoS: 1, Retain: true}
	}
	cm, err := autopaho.NewConnection(run, cfg)
	if err == nil {
		ctl.v5 = cm
		if err = cm.AwaitConnection(up); err != nil {
			if e := attemptErr.Load(); e != nil {
				err = *e
			}
		}
	}
	if err != nil {
		cancel()
		if cm != nil {
			<-cm.Done()
		}
		return fmt.Errorf("control connection to %s: %w", redact(o.Broker), err)
	}
	return nil
}

// RetainAvailable reports whether the broker keeps retained messages: false
// when its MQTT 5 CONNACK said so; MQTT 3.1.1 cannot tell (true).
func (ctl *Control) RetainAvailable() bool { return ctl.retain.Load() }

// Subscribe subscribes to filter at QoS 1 and waits for the SUBACK (or ctx);
// a refused subscription (an ACL) is ErrSubscriptionRefused.
func (ctl *Control) Subscribe(ctx context.Context, filter string) error {
	if ctl.v5 != nil {
		sa, err := ctl.v5.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: 1}}})
		if err != nil {
			return fmt.Errorf("subscribe %s: %w", filter, err)
		}
		if len(sa.Reasons) > 0 && sa.Reasons[0] >= 0x80 {
			return fmt.Errorf("%w: %s (reason 0x%02x)", ErrSubscriptionRefused, filter, sa.Reasons[0])
		}
		return nil
	}
	tok := ctl.v3.Subscribe(filter, 1, nil)
	if err := wait(ctx, tok); err != nil {
		return fmt.Errorf("subscribe %s: %w", filter, err)
	}
	if st, ok := tok.(*mqtt.SubscribeToken); ok && st.Result()[filter] == 0x80 {
		return fmt.Errorf("%w: %s", ErrSubscriptionRefused, filter)
	}
	return nil
}

// Publish publishes payload on topic at QoS 1 and waits for the PUBACK (or
// ctx). A retained publish to a broker that keeps none is
// ErrRetainUnavailable, before anything is sent.
func (ctl *Control) Publish(ctx context.Context, topic string, payload []byte, retain bool) error {
	if retain && !ctl.RetainAvailable() {
		return fmt.Errorf("%w (CONNACK: Retain Available = 0)", ErrRetainUnavailable)
	}
	if ctl.v5 != nil {
		pr, err := ctl.v5.Publish(ctx, &paho.Publish{Topic: topic, Payload: payload, QoS: 1, Retain: retain})
		if err != nil {
			return fmt.Errorf("publish %s: %w", topic, err)
		}
		if pr != nil && pr.ReasonCode >= 0x80 {
			return fmt.Errorf("publish %s: refused by the broker (reason 0x%02x)", topic, pr.ReasonCode)
		}
		return nil
	}
	if err := wait(ctx, ctl.v3.Publish(topic, 1, retain, payload)); err != nil {
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	return nil
}

// Close disconnects (a DISCONNECT: the broker does not publish the Will)
// and stops the connection's goroutines. It is idempotent.
func (ctl *Control) Close() {
	if ctl.v5 != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = ctl.v5.Disconnect(ctx)
		cancel()
		ctl.cancel()
		<-ctl.v5.Done()
		return
	}
	if ctl.v3 != nil {
		ctl.v3.Disconnect(250)
	}
}

// wait waits for tok, or until ctx ends.
func wait(ctx context.Context, tok mqtt.Token) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// redact returns the broker URL without its user information.
func redact(broker string) string {
	u, err := url.Parse(broker)
	if err != nil {
		return "the broker"
	}
	return redactURL(u)
}
