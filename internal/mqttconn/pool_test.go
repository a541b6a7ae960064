package mqttconn_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/broker"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/brokertest"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// noLeaks checks, after every other cleanup of the test, that no goroutine is
// left. paho's Disconnect returns before its own goroutines end (documented
// in paho), so it waits for them to end: until none is left, failing only
// after brokertest.Patience (a bound for a broken run, not a window the
// goroutines must end in: on a loaded machine a 5 s window was missed).
func noLeaks(t *testing.T) {
	t.Cleanup(func() {
		deadline := time.Now().Add(brokertest.Patience)
		for {
			err := goleak.Find()
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Error(err)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// counter is a Handler that counts messages per topic prefix and checks that
// the messages of each publishing connection arrive in order.
type counter struct {
	mu    sync.Mutex
	n     map[string]int      // by first topic level
	last  map[string]int64    // topic level and publisher -> last sequence seen
	bad   []string            // order violations
	conns map[int]map[int]int // receiving conn -> count
}

func newCounter() *counter {
	return &counter{n: map[string]int{}, last: map[string]int64{}, conns: map[int]map[int]int{}}
}

func (c *counter) handle(conn int, m *mqttconn.Message) {
	topic, payload := m.Topic, m.Payload
	c.mu.Lock()
	defer c.mu.Unlock()
	level, _, _ := strings.Cut(topic, "/")
	c.n[level]++
	if c.conns[conn] == nil {
		c.conns[conn] = map[int]int{}
	}
	c.conns[conn][0]++
	if len(payload) >= 8 {
		key := level + "/" + strconv.Itoa(int(binary.BigEndian.Uint32(payload)))
		seq := int64(binary.BigEndian.Uint32(payload[4:]))
		if last, ok := c.last[key]; ok && seq <= last {
			c.bad = append(c.bad, topic)
		}
		c.last[key] = seq
	}
}

func (c *counter) count(level string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[level]
}

func (c *counter) onConn(conn int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conns[conn][0]
}

func dial(t *testing.T, o mqttconn.Options) *mqttconn.Pool {
	t.Helper()
	if o.Logger == nil {
		o.Logger = quiet
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = 5 * time.Second
	}
	p, err := mqttconn.Dial(context.Background(), o)
	if err != nil {
		t.Fatalf("Dial %s: %v", o.ClientIDPrefix, err)
	}
	t.Cleanup(p.Close)
	return p
}

func TestPoolPublishSubscribe(t *testing.T) {
	noLeaks(t)
	b := brokertest.Start(t)
	got := newCounter()
	sub := dial(t, mqttconn.Options{
		Broker: b.URL(), ClientIDPrefix: "sub", Connections: 2,
		Subscriptions: func(i int) []string { return []string{[]string{"t/+", "u/+"}[i]} },
		OnMessage:     got.handle,
	})
	pub := dial(t, mqttconn.Options{Broker: b.URL(), ClientIDPrefix: "pub", Connections: 4})
	if sub.Up() != 2 || pub.Up() != 4 || sub.Len() != 2 || pub.Len() != 4 {
		t.Fatalf("Up: sub %d/%d, pub %d/%d; want all connections up", sub.Up(), sub.Len(), pub.Up(), pub.Len())
	}
	for i := range pub.Len() {
		if !pub.Conn(i).Connected() {
			t.Errorf("conn %d not Connected()", i)
		}
	}

	// 10k messages with QueueMessage + Flush in bursts, 10k with
	// PublishMessage, spread over the publisher's connections; each payload
	// carries (conn, seq).
	const n = 10000
	payload := make([]byte, 40)
	send := func(level string, queue bool) {
		for i := range n {
			c := i % pub.Len()
			binary.BigEndian.PutUint32(payload, uint32(c))
			binary.BigEndian.PutUint32(payload[4:], uint32(i))
			conn := pub.Conn(c)
			var err error
			if queue {
				err = conn.QueueMessage(&mqttconn.Message{Topic: level + "/x", Payload: payload})
				if i%100 == 99 {
					for j := range pub.Len() {
						pub.Conn(j).Flush()
					}
				}
			} else {
				err = conn.PublishMessage(&mqttconn.Message{Topic: level + "/y", Payload: payload})
			}
			if err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
		}
		for j := range pub.Len() {
			pub.Conn(j).Flush()
		}
	}
	send("t", true)
	brokertest.WaitFor(t, "10k queued messages", func() bool { return got.count("t") >= n })
	send("u", false)
	brokertest.WaitFor(t, "10k published messages", func() bool { return got.count("u") >= n })
	if got.count("t") != n || got.count("u") != n {
		t.Errorf("received t=%d u=%d, want %d each", got.count("t"), got.count("u"), n)
	}
	if got.onConn(0) != n || got.onConn(1) != n {
		t.Errorf("per connection: %d and %d, want %d each (t/+ on conn 0, u/+ on conn 1)", got.onConn(0), got.onConn(1), n)
	}
	if len(got.bad) > 0 {
		t.Errorf("%d messages out of order, first on %s", len(got.bad), got.bad[0])
	}
	if d := b.Dropped(); d != 0 {
		t.Errorf("broker dropped %d messages", d)
	}

	// Unsubscribe stops delivery; a sentinel subscriber shows that the
	// broker has routed everything published afterwards.
	if err := sub.Unsubscribe(context.Background()); err != nil {
		t.Fatalf("Unsubscribe: %v", err)
	}
	sentinel := newCounter()
	dial(t, mqttconn.Options{Broker: b.URL(), ClientIDPrefix: "sentinel", Subscriptions: func(int) []string { return []string{"t/+"} }, OnMessage: sentinel.handle})
	for i := range 1000 {
		if err := pub.Conn(0).PublishMessage(&mqttconn.Message{Topic: "t/z", Payload: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	brokertest.WaitFor(t, "the sentinel to receive 1000 messages", func() bool { return sentinel.count("t") == 1000 })
	if got.count("t") != n {
		t.Errorf("after Unsubscribe the pool received %d more messages", got.count("t")-n)
	}
	if sub.Up() != 2 {
		t.Errorf("Unsubscribe closed connections: %d up, want 2 (replies must still be publishable)", sub.Up())
	}

	// Close is idempotent and fails later publishes fast.
	pub.Close()
	pub.Close()
	if pub.Up() != 0 {
		t.Errorf("Up after Close = %d, want 0", pub.Up())
	}
	if err := pub.Conn(0).PublishMessage(&mqttconn.Message{Topic: "t/x", Payload: payload}); !errors.Is(err, mqttconn.ErrNotConnected) {
		t.Errorf("PublishMessage after Close = %v, want ErrNotConnected", err)
	}
	sub.Close()
	_ = b.Close()
}

// TestPoolResubscribesAfterReconnect restarts the broker on the same address:
// the pool reconnects by itself, re-makes its subscription and OnState sees
// down then up.
//
// ConnectTimeout is short because mochi's Close disconnects its clients before
// it closes its listener: a reconnect that lands in between is accepted and
// never answered, and waits out one ConnectTimeout.
func TestPoolResubscribesAfterReconnect(t *testing.T) {
	noLeaks(t)
	b1 := brokertest.Start(t)
	addr := b1.Addr()

	var mu sync.Mutex
	var states []bool
	var received atomic.Int64
	sub := dial(t, mqttconn.Options{
		Broker: b1.URL(), ClientIDPrefix: "sub", MaxReconnectInterval: 100 * time.Millisecond, ConnectTimeout: time.Second,
		Subscriptions: func(int) []string { return []string{"t/+"} },
		OnMessage:     func(int, *mqttconn.Message) { received.Add(1) },
		OnState: func(i int, up bool) {
			mu.Lock()
			states = append(states, up)
			mu.Unlock()
		},
	})
	pub := dial(t, mqttconn.Options{Broker: b1.URL(), ClientIDPrefix: "pub", MaxReconnectInterval: 100 * time.Millisecond, ConnectTimeout: time.Second})

	publishUntilReceived := func(what string) {
		t.Helper()
		before := received.Load()
		brokertest.WaitFor(t, what, func() bool {
			_ = pub.Conn(0).PublishMessage(&mqttconn.Message{Topic: "t/1", Payload: []byte("hello")})
			return received.Load() > before
		})
	}
	publishUntilReceived("a message before the restart")

	if err := b1.Close(); err != nil {
		t.Fatalf("close broker: %v", err)
	}
	brokertest.WaitFor(t, "both pools to notice the broker is gone", func() bool { return sub.Up() == 0 && pub.Up() == 0 })
	if err := pub.Conn(0).PublishMessage(&mqttconn.Message{Topic: "t/1", Payload: []byte("x")}); !errors.Is(err, mqttconn.ErrNotConnected) {
		t.Errorf("PublishMessage while down = %v, want ErrNotConnected", err)
	}

	b2, err := broker.Start(broker.Options{Addr: addr}) // the same address (brokertest.Start takes a new one)
	if err != nil {
		t.Fatalf("restart broker: %v", err)
	}
	t.Cleanup(func() { _ = b2.Close() })
	brokertest.WaitFor(t, "both pools to reconnect", func() bool { return sub.Up() == 1 && pub.Up() == 1 })
	publishUntilReceived("a message after the restart (subscription re-made)")

	mu.Lock()
	got := append([]bool(nil), states...)
	mu.Unlock()
	if want := []bool{true, false, true}; !equalBools(got, want) {
		t.Errorf("OnState saw %v, want %v", got, want)
	}
	sub.Close()
	pub.Close()
	_ = b2.Close()
}

func equalBools(a, b []bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestDialErrors(t *testing.T) {
	noLeaks(t)
	// A port with nothing listening.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := ln.Addr().String()
	ln.Close()

	canceled, cancel := context.WithCancel(context.Background())
	cancel()

	tests := []struct {
		name    string
		ctx     context.Context
		opts    mqttconn.Options
		wantErr string
		is      error
	}{
		{name: "http scheme", opts: mqttconn.Options{Broker: "http://127.0.0.1:1883"}, wantErr: `has scheme "http"; allowed: tcp://`},
		{name: "websocket scheme", opts: mqttconn.Options{Broker: "ws://127.0.0.1:1883"}, wantErr: `has scheme "ws"; allowed: tcp://`},
		{name: "no scheme", opts: mqttconn.Options{Broker: "127.0.0.1:1883"}, wantErr: "broker url"},
		{name: "not a url", opts: mqttconn.Options{Broker: "::bad"}, wantErr: "broker url"},
		{name: "qos 3", opts: mqttconn.Options{Broker: "tcp://127.0.0.1:1883", QoS: 3}, wantErr: "qos 3"},
		{name: "closed port", opts: mqttconn.Options{Broker: "tcp://" + closedPort, Connections: 2, ConnectTimeout: 300 * time.Millisecond}, wantErr: "0 of 2 connections up"},
		{name: "canceled context", ctx: canceled, opts: mqttconn.Options{Broker: "tcp://" + closedPort, ConnectTimeout: 5 * time.Second}, is: context.Canceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := tc.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			tc.opts.ClientIDPrefix = "dial-test"
			tc.opts.Logger = quiet
			start := time.Now()
			p, err := mqttconn.Dial(ctx, tc.opts)
			elapsed := time.Since(start)
			if err == nil {
				p.Close()
				t.Fatal("Dial succeeded")
			}
			if tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not contain %q", err, tc.wantErr)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			// Bounded by ConnectTimeout (plus the Close of the attempt).
			if limit := max(tc.opts.ConnectTimeout, 0) + 3*time.Second; elapsed > limit && tc.is == nil {
				t.Errorf("Dial took %v, want it bounded by ConnectTimeout %v", elapsed, tc.opts.ConnectTimeout)
			}
		})
	}
}
