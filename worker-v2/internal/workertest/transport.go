package workertest

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
)

// Dialer dials Transports; Dial is an mqttconn.Dialer.
type Dialer struct {
	mu   sync.Mutex
	last *Transport
}

// Dial returns a Transport of o.Connections connections, all up, for the
// handlers of o.
func (d *Dialer) Dial(_ context.Context, o mqttconn.Options) (mqttconn.Transport, error) {
	t := &Transport{opts: o}
	for i := range max(o.Connections, 1) {
		t.conns = append(t.conns, &Conn{t: t, i: i})
	}
	for i := range t.conns {
		t.state(i, true)
	}
	d.mu.Lock()
	d.last = t
	d.mu.Unlock()
	return t, nil
}

// Transport returns the Transport Dial returned last, nil before.
func (d *Dialer) Transport() *Transport {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.last
}

// Unreachable is an mqttconn.Dialer for a broker that never answers: it
// returns ctx's error once ctx ends.
func Unreachable(ctx context.Context, _ mqttconn.Options) (mqttconn.Transport, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// Transport is the in-memory mqttconn.Transport.
type Transport struct {
	opts         mqttconn.Options
	conns        []*Conn
	unsubscribed atomic.Bool
	closed       atomic.Bool
	closing      sync.Once
}

func (t *Transport) state(i int, up bool) {
	if t.opts.OnState != nil {
		t.opts.OnState(i, up)
	}
}

// Len implements mqttconn.Transport.
func (t *Transport) Len() int { return len(t.conns) }

// Conn implements mqttconn.Transport.
func (t *Transport) Conn(i int) mqttconn.Conn { return t.conns[i] }

// C returns connection i with its test controls.
func (t *Transport) C(i int) *Conn { return t.conns[i] }

// Up implements mqttconn.Transport.
func (t *Transport) Up() int {
	n := 0
	for _, c := range t.conns {
		if c.Connected() {
			n++
		}
	}
	return n
}

// Suspect implements mqttconn.Transport.
func (t *Transport) Suspect() int {
	n := 0
	for _, c := range t.conns {
		if c.suspect.Load() {
			n++
		}
	}
	return n
}

// Capabilities implements mqttconn.Transport: a broker that announced
// nothing, over the protocol the options ask for.
func (t *Transport) Capabilities() mqttconn.Capabilities {
	return mqttconn.Capabilities{Protocol: mqttconn.VersionName(t.opts.ProtocolVersion)}
}

// Unsubscribe implements mqttconn.Transport: Deliver delivers nothing from
// now on.
func (t *Transport) Unsubscribe(context.Context) error {
	t.unsubscribed.Store(true)
	return nil
}

// Close implements mqttconn.Transport: it waits for a handler that runs,
// writes what each connection buffered (a stalled connection reports it to
// OnUnsent instead) and takes the connections down.
func (t *Transport) Close() {
	t.closing.Do(func() {
		t.closed.Store(true)
		for _, c := range t.conns {
			c.handler.Lock() // no handler runs after Close
			c.handler.Unlock()
			c.mu.Lock()
			stalled := c.stalled
			c.mu.Unlock()
			if stalled {
				c.Reset()
			} else {
				c.Flush()
			}
			c.down.Store(true)
			t.state(c.i, false)
		}
	})
}

// Deliver runs the message handler of connection conn for m, as the
// connection's dispatch goroutine does: one message at a time per
// connection, returning when the handler does. It reports false, and runs
// nothing, once the transport is unsubscribed or closed.
func (t *Transport) Deliver(conn int, m *mqttconn.Message) bool {
	c := t.conns[conn]
	c.handler.Lock()
	defer c.handler.Unlock()
	if t.unsubscribed.Load() || t.closed.Load() {
		return false
	}
	t.opts.OnMessage(conn, m)
	return true
}

// Reply is a message a connection accepted, copied.
type Reply struct {
	Topic           string
	Payload         []byte
	CorrelationData []byte
}

// Conn is one in-memory connection: an mqttconn.Conn whose written replies
// the test reads.
type Conn struct {
	t       *Transport
	i       int
	handler sync.Mutex // held while the connection's handler runs

	mu      sync.Mutex
	pending []Reply // accepted, not written yet
	written []Reply
	batches []int // replies per write
	stalled bool
	limit   int // while stalled: the most replies pending

	down, suspect atomic.Bool
}

// QueueMessage implements mqttconn.Conn: it keeps a copy of m until the next
// Flush. It fails with mqttconn.ErrNotConnected while the connection is
// down and with mqttconn.ErrBackpressure when a stalled connection holds its
// limit.
func (c *Conn) QueueMessage(m *mqttconn.Message) error {
	if !c.Connected() {
		return mqttconn.ErrNotConnected
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stalled && len(c.pending) >= c.limit {
		return mqttconn.ErrBackpressure
	}
	c.pending = append(c.pending, Reply{Topic: strings.Clone(m.Topic), Payload: clone(m.Payload), CorrelationData: clone(m.CorrelationData)})
	return nil
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}

// PublishMessage implements mqttconn.Conn: QueueMessage, then the write a
// connection's flusher would make.
func (c *Conn) PublishMessage(m *mqttconn.Message) error {
	if err := c.QueueMessage(m); err != nil {
		return err
	}
	c.Flush()
	return nil
}

// Queue and Publish implement mqttconn.Conn for a payload on topic.
func (c *Conn) Queue(topic string, payload []byte) error {
	return c.QueueMessage(&mqttconn.Message{Topic: topic, Payload: payload})
}

func (c *Conn) Publish(topic string, payload []byte) error {
	return c.PublishMessage(&mqttconn.Message{Topic: topic, Payload: payload})
}

// Flush implements mqttconn.Conn: what is pending is written as one batch,
// unless the connection is stalled.
func (c *Conn) Flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stalled || len(c.pending) == 0 {
		return
	}
	c.written = append(c.written, c.pending...)
	c.batches = append(c.batches, len(c.pending))
	c.pending = c.pending[:0]
}

// Connected implements mqttconn.Conn.
func (c *Conn) Connected() bool { return !c.down.Load() }

// Written returns copies of the replies written so far, in order.
func (c *Conn) Written() []Reply {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Reply(nil), c.written...)
}

// Batches returns how many replies each write carried.
func (c *Conn) Batches() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.batches...)
}

// Stall stops the connection's writes, as a broker that stops reading: at
// most limit replies wait, then QueueMessage refuses with
// mqttconn.ErrBackpressure.
func (c *Conn) Stall(limit int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stalled, c.limit = true, limit
}

// Reset fails the connection's socket: the pending replies are reported to
// OnUnsent, one by one, and dropped; the stall ends.
func (c *Conn) Reset() {
	c.mu.Lock()
	lost := c.pending
	c.pending, c.stalled = nil, false
	c.mu.Unlock()
	for i := range lost {
		if c.t.opts.OnUnsent != nil {
			c.t.opts.OnUnsent(c.i, &mqttconn.Message{Topic: lost[i].Topic, Payload: lost[i].Payload, CorrelationData: lost[i].CorrelationData})
		}
	}
}

// SetDown takes the connection down (true) or up again (false), reporting
// it to OnState.
func (c *Conn) SetDown(down bool) {
	c.down.Store(down)
	c.t.state(c.i, !down)
}

// SetSuspect marks the connection suspect: up, but heard nothing back.
func (c *Conn) SetSuspect(s bool) { c.suspect.Store(s) }
