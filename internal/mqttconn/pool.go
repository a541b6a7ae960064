package mqttconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
	"golang.org/x/time/rate"
)

// Pool is a set of MQTT connections, the Transport of both engines: its
// members are paho.mqtt.golang clients for MQTT 3.1.1 (pahoConn, paho3.go)
// or autopaho clients for MQTT 5 (conn5, pool5.go).
type Pool struct {
	opts  Options
	conns []member
	once  sync.Once
	done  chan struct{} // closed by Close: ends subscribe retries

	// The shared subscription probe (Options.ProbeShareGroup).
	probeTopic, probeFilter string
	probeGot                atomic.Bool

	refusedLog    rate.Sometimes // the refused-publish warning, at most every 10 s
	subRefusedLog rate.Sometimes // the refused-subscription error, at most every 10 s
	oversizedLog  rate.Sometimes // the oversized-message warning, at most every 10 s
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
	p := &Pool{opts: o, done: make(chan struct{}), refusedLog: rate.Sometimes{Interval: 10 * time.Second},
		subRefusedLog: rate.Sometimes{Interval: 10 * time.Second}, oversizedLog: rate.Sometimes{Interval: 10 * time.Second}}
	if o.ProbeShareGroup != "" {
		p.withProbe()
	}
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
		p.conns = append(p.conns, newPahoConn(p, i))
	}
	var refused error
	diagnosed := false
	if !waitUntil(ctx, o.ConnectTimeout, func() bool {
		if refused = p.permanentError(u); refused != nil {
			return true
		}
		if !diagnosed && p.allClosedEarly() {
			diagnosed = true
			if refused = diagnose(u, o.ProtocolVersion == 5, min(o.ConnectTimeout, 2*time.Second)); refused != nil {
				return true
			}
		}
		return p.Up() == len(p.conns)
	}) || refused != nil {
		up := p.Up()
		p.Close()
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if errors.Is(refused, ErrTLSMismatch) || errors.Is(refused, ErrMQTT5Refused) {
			return nil, fmt.Errorf("connect to %s: %w", redactURL(u), refused)
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
	if p.probeTopic != "" {
		if err := p.probe(ctx); err != nil {
			p.Close()
			return nil, err
		}
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
func (p *Pool) permanentError(u *url.URL) error {
	err := p.lastError()
	if err == nil {
		return nil
	}
	if e := tlsToPlain(u, err); e != nil {
		return e
	}
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	// A TLS alert from the broker (e.g. "certificate required") has an
	// unexported type: recognise it by the net.OpError's operation.
	var op *net.OpError
	alert := errors.As(err, &op) && op.Op == "remote error"
	if errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword) || errors.Is(err, packets.ErrorRefusedNotAuthorised) || errors.Is(err, ErrSubscriptionRefused) ||
		errors.Is(err, errRefused5) || errors.Is(err, ErrMQTT5Refused) ||
		errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &he) || alert {
		return err
	}
	return nil
}

// allClosedEarly reports whether every connection's last connect attempt
// ended with the broker closing the connection before a CONNACK.
func (p *Pool) allClosedEarly() bool {
	for _, c := range p.conns {
		e := c.base().err.Load()
		if e == nil || !closedEarly(*e) {
			return false
		}
	}
	return true
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

// waitUntil polls cond every 10 ms until it holds, d passes or ctx ends;
// it reports whether cond held.
func waitUntil(ctx context.Context, d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}
