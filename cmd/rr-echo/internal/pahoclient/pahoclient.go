// Package pahoclient owns how rr-echo's plain paho clients connect: one
// client per connection, clean session, no automatic reconnect, the broker
// credentials and TLS of envconf.Security, and every CONNECT or SUBSCRIBE
// waited for at most Timeout (a refused subscription is an error).
package pahoclient

import (
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/envconf"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
)

// Timeout bounds connecting and subscribing.
const Timeout = 10 * time.Second

// keepAlive is the MQTT keep-alive of every client.
const keepAlive = 30 * time.Second

// Dialer connects clients to one broker with one set of credentials.
type Dialer struct {
	broker             string
	username, password string
	tls                *tls.Config
}

// NewDialer reads the credentials and certificates of sec (once) for
// clients of broker.
func NewDialer(broker string, sec envconf.Security) (*Dialer, error) {
	o := mqttconn.Options{Broker: broker}
	if err := sec.Apply(&o); err != nil {
		return nil, err
	}
	return &Dialer{broker: broker, username: o.Username, password: o.Password, tls: o.TLS}, nil
}

// Connect connects a new client with the client id id. Messages that arrive
// outside any subscription's handler are dropped (and acknowledged).
func (d *Dialer) Connect(id string) (paho.Client, error) {
	o := paho.NewClientOptions().AddBroker(d.broker).SetClientID(id).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(Timeout).
		SetKeepAlive(keepAlive).SetUsername(d.username).SetPassword(d.password).
		SetDefaultPublishHandler(func(paho.Client, paho.Message) {})
	if d.tls != nil {
		o.SetTLSConfig(d.tls)
	}
	c := paho.NewClient(o)
	if err := Wait(c.Connect()); err != nil {
		return nil, err
	}
	return c, nil
}

// ErrTimeout is returned when the broker does not answer a CONNECT or
// SUBSCRIBE within Timeout.
var ErrTimeout = errors.New("no answer from the broker")

// Wait waits for t at most Timeout and returns its error; for a SUBSCRIBE,
// a refused subscription (return code 0x80 or above) is an error too.
func Wait(t paho.Token) error {
	if !t.WaitTimeout(Timeout) {
		return fmt.Errorf("%w within %v", ErrTimeout, Timeout)
	}
	if st, ok := t.(*paho.SubscribeToken); ok {
		for topic, code := range st.Result() {
			if code >= 0x80 {
				return fmt.Errorf("subscription to %s refused (code %#x)", topic, code)
			}
		}
	}
	return t.Error()
}
