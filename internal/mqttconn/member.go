package mqttconn

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// member is one connection of the pool, of either protocol version.
type member interface {
	Conn
	base() *connBase
	// unsubscribe removes filters on the current session, if it is open.
	unsubscribe(ctx context.Context, filters []string) error
	// disconnect ends the client (no reconnect) and closes its session.
	disconnect()
}

// connBase is the state and behaviour both kinds of member share: the
// current session, delivery to the handlers, subscribe-on-connect with
// retries, the up/down state reported to OnState, and the QoS 0 publish.
//
// Session state lives on the session (session.go): a reconnect makes a new
// one, which accepts publishes only once its subscriptions are made, and a
// late connection-lost notification of an old session cannot mark the new
// one down.
type connBase struct {
	idx     int
	pool    *Pool
	self    member                  // the connection this is the base of
	cur     atomic.Pointer[session] // the current session
	up      atomic.Bool             // last state passed to OnState
	stateMu sync.Mutex              // serialises refresh
	err     atomic.Pointer[error]   // last connect or subscribe failure
	// attempts counts connection attempts since the last success
	// (reconnect.go).
	attempts atomic.Int32
	// granted is 1 + the lowest QoS the last SUBACK granted (0: the
	// connection has not subscribed): Capabilities.GrantedQoS.
	granted atomic.Int32

	// hmu guards delivery: handlers run under its read lock, and Close
	// takes the write lock, so no handler runs once Close has begun.
	hmu          sync.RWMutex
	closed       bool // no more inbound messages
	unsentClosed bool // no more unsent reports
}

func (c *connBase) base() *connBase { return c }

// deliver passes an inbound message to the handler unless the pool is closing.
func (c *connBase) deliver(m *Message) {
	if c.pool.isProbe(c.idx, m) {
		return
	}
	c.hmu.RLock()
	if !c.closed {
		c.pool.opts.OnMessage(c.idx, m)
	}
	c.hmu.RUnlock()
}

// unsent passes a message discarded unwritten to OnUnsent until the pool
// has closed.
func (c *connBase) unsent(m *Message) {
	c.hmu.RLock()
	if !c.unsentClosed {
		c.pool.opts.OnUnsent(c.idx, m)
	}
	c.hmu.RUnlock()
}

// subscribeSession makes the connection's subscriptions on a new session
// with subscribe, retrying with the reconnect policy's waits (ReconnectDelay) (a SUBACK that is late or refused
// must not leave the connection open and down for the rest of the run). It
// returns false when the session ended first (over) or the pool closed: the
// next session subscribes.
func (c *connBase) subscribeSession(subscribe func([]string) error, over func() bool) bool {
	o := c.pool.opts
	var filters []string
	if o.Subscriptions != nil {
		filters = o.Subscriptions(c.idx)
	}
	for attempt := 1; len(filters) > 0; attempt++ {
		err := subscribe(filters)
		if err == nil {
			break
		}
		select {
		case <-c.pool.done: // closing: the failure is ours
			return false
		default:
		}
		c.err.Store(&err)
		if over() { // the session ended: its loss is reported as such, and the next one subscribes
			o.Logger.Debug("mqtt subscribe ended with its session", "conn", c.idx, "err", err)
			return false
		}
		wait := ReconnectDelay(attempt, o.MaxReconnectInterval, rand.Float64())
		if errors.Is(err, ErrSubscriptionRefused) { // the same on every connection: once for the pool
			c.pool.subRefusedLog.Do(func() {
				o.Logger.Error("mqtt subscription refused; retrying (logged at most every 10 s)", "conn", c.idx, "filters", len(filters), "err", err, "retry_in_seconds", wait.Seconds())
			})
		} else { // routine: e.g. no SUBACK in time; retried on the same session
			o.Logger.Info("mqtt subscribe failed; retrying", "conn", c.idx, "filters", len(filters), "err", err, "retry_in_seconds", wait.Seconds())
		}
		t := time.NewTimer(wait)
		select {
		case <-c.pool.done:
			t.Stop()
			return false
		case <-t.C:
		}
	}
	c.err.Store(nil)
	return true
}

// refused returns the error of a subscription to filter that the broker
// refused (why: the SUBACK's reason, or the client library's error), naming
// where the filter came from (Options.TopicHint).
func (c *connBase) refused(filter, why string) error {
	err := fmt.Errorf("%w: %s (%s)", ErrSubscriptionRefused, filter, why)
	if h := c.pool.opts.TopicHint; h != nil {
		if hint := h(filter); hint != "" {
			err = fmt.Errorf("%w; %s", err, hint)
		}
	}
	return err
}

// grant records the QoS a SUBACK granted to each of the connection's
// subscriptions (codes: granted QoS 0..2; a refusal, 0x80 and above, is
// handled by the caller): the lowest of them.
func (c *connBase) grant(codes []byte) {
	low := int32(-1)
	for _, q := range codes {
		if q <= 2 && (low < 0 || int32(q) < low) {
			low = int32(q)
		}
	}
	if low >= 0 {
		c.granted.Store(low + 1)
	}
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

// sessionUp reports whether the current session is subscribed and its
// socket alive.
func (c *connBase) sessionUp() bool {
	s := c.cur.Load()
	return s != nil && s.ready.Load() && !s.Dead()
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

// Flush implements Conn: one non-blocking write of what QueueMessage buffered, from
// the caller's goroutine (no wake-up of the flusher when the socket takes it
// all); the rest is left to the flusher.
func (c *connBase) Flush() {
	if s := c.cur.Load(); s != nil {
		s.Flush()
	}
}
