package mqttconn_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/brokertest"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
)

// scriptedBroker is a minimal MQTT 3.1.1 server for session tests: it
// answers CONNECT, PINGREQ and SUBSCRIBE as told, and records what it got.
type scriptedBroker struct {
	l net.Listener
	// suback decides the answer to the n-th SUBSCRIBE (1-based) of the whole
	// run: send a SUBACK with this return code, or ignore it (ok false).
	suback func(n int) (code byte, ok bool)
	// read, when false, makes the broker stop reading from its clients
	// (a broker that stalls): bytes pile up in the sockets.
	read atomic.Bool

	subscribes atomic.Int32
	publishes  atomic.Int32
	mu         sync.Mutex
	conns      []net.Conn
	wg         sync.WaitGroup
}

func startScripted(t *testing.T, suback func(n int) (byte, bool)) *scriptedBroker {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &scriptedBroker{l: l, suback: suback}
	b.read.Store(true)
	b.wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.conns = append(b.conns, c)
			b.mu.Unlock()
			b.wg.Go(func() { b.serve(c) })
		}
	})
	t.Cleanup(func() {
		_ = l.Close()
		b.mu.Lock()
		for _, c := range b.conns {
			_ = c.Close()
		}
		b.mu.Unlock()
		b.read.Store(true)
		b.wg.Wait()
	})
	return b
}

func (b *scriptedBroker) url() string { return "tcp://" + b.l.Addr().String() }

func (b *scriptedBroker) serve(c net.Conn) {
	defer c.Close()
	for {
		for !b.read.Load() {
			time.Sleep(time.Millisecond)
		}
		cp, err := packets.ReadPacket(c)
		if err != nil {
			return
		}
		var reply packets.ControlPacket
		switch p := cp.(type) {
		case *packets.ConnectPacket:
			reply = packets.NewControlPacket(packets.Connack)
		case *packets.PingreqPacket:
			reply = packets.NewControlPacket(packets.Pingresp)
		case *packets.SubscribePacket:
			n := int(b.subscribes.Add(1))
			code, ok := b.suback(n)
			if !ok {
				continue
			}
			sa := packets.NewControlPacket(packets.Suback).(*packets.SubackPacket)
			sa.MessageID = p.MessageID
			for range p.Topics {
				sa.ReturnCodes = append(sa.ReturnCodes, code)
			}
			reply = sa
		case *packets.PublishPacket:
			b.publishes.Add(1)
			continue
		case *packets.DisconnectPacket:
			return
		default:
			continue
		}
		if err := reply.Write(c); err != nil {
			return
		}
	}
}

// TestSubscribeRetriedWhenSubackNeverComes: the broker ignores the first
// SUBSCRIBE. The pool must not leave the connection open and down for good:
// it subscribes again on the same session and comes up.
func TestSubscribeRetriedWhenSubackNeverComes(t *testing.T) {
	noLeaks(t)
	b := startScripted(t, func(n int) (byte, bool) { return 0, n > 1 })
	var ups atomic.Int32
	p := dial(t, mqttconn.Options{
		Broker: b.url(), ClientIDPrefix: "retry", ConnectTimeout: 20 * time.Second, SubscribeTimeout: 200 * time.Millisecond,
		Subscriptions: func(int) []string { return []string{"resp/x"} },
		OnMessage:     func(int, *mqttconn.Message) {},
		OnState: func(_ int, up bool) {
			if up {
				ups.Add(1)
			}
		},
	})
	if p.Up() != 1 || ups.Load() != 1 {
		t.Fatalf("up %d (OnState up %d times), want 1", p.Up(), ups.Load())
	}
	if n := b.subscribes.Load(); n < 2 {
		t.Fatalf("broker saw %d SUBSCRIBE, want a retry after the unanswered one", n)
	}
}

// TestSubscriptionRefusedFailsDial: a refused subscription (SUBACK 0x80,
// typically an ACL) is reported at once with its reason, the filter and
// where the filter came from (Options.TopicHint).
func TestSubscriptionRefusedFailsDial(t *testing.T) {
	noLeaks(t)
	b := startScripted(t, func(int) (byte, bool) { return 0x80, true })
	_, err := mqttconn.Dial(context.Background(), mqttconn.Options{
		Broker: b.url(), ClientIDPrefix: "refused", ConnectTimeout: 20 * time.Second, Logger: quiet,
		Subscriptions: func(int) []string { return []string{"resp/forbidden"} },
		OnMessage:     func(int, *mqttconn.Message) {},
		TopicHint:     func(f string) string { return "made by SOME_SETTING from " + f },
	})
	if !errors.Is(err, mqttconn.ErrSubscriptionRefused) {
		t.Fatalf("Dial = %v, want ErrSubscriptionRefused", err)
	}
	if want := "subscription refused by broker: resp/forbidden (SUBACK 0x80); made by SOME_SETTING from resp/forbidden"; !strings.Contains(err.Error(), want) {
		t.Errorf("Dial = %v, want it to contain %q", err, want)
	}
}

// dialStalled connects a pool of o (with a 64 KiB write buffer) to a
// scripted broker that has stopped reading, and counts what it reports
// unsent. The pool is closed at the end of the test.
func dialStalled(t *testing.T, o mqttconn.Options) (*scriptedBroker, *mqttconn.Pool, *atomic.Int64) {
	t.Helper()
	noLeaks(t)
	b := startScripted(t, func(int) (byte, bool) { return 0, true })
	unsent := new(atomic.Int64)
	o.Broker, o.ConnectTimeout, o.Logger, o.MaxPendingBytes = b.url(), 5*time.Second, quiet, 64<<10
	o.OnUnsent = func(int, *mqttconn.Message) { unsent.Add(1) }
	p, err := mqttconn.Dial(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	b.read.Store(false)
	return b, p, unsent
}

// fillUntilRefused queues and flushes payload on c until c refuses it; it
// returns how many were accepted and the refusal.
func fillUntilRefused(c mqttconn.Conn, payload []byte) (int, error) {
	m := &mqttconn.Message{Topic: "req/1", Payload: payload}
	for accepted := 0; accepted < 1_000_000; accepted++ {
		if err := c.QueueMessage(m); err != nil {
			return accepted, err
		}
		c.Flush()
	}
	return 1_000_000, nil
}

// TestPublishNeverBlocksOnAStalledBroker: the broker stops reading.
// QueueMessage and Flush keep returning at once (the caller never waits on
// the socket), the byte bound applies (ErrBackpressure) while the connection
// stays up, and what was accepted but never written is reported as unsent
// when the pool closes: accepted == written + unsent (+ one frame cut by the
// failed write).
func TestPublishNeverBlocksOnAStalledBroker(t *testing.T) {
	b, p, unsent := dialStalled(t, mqttconn.Options{ClientIDPrefix: "stall", WriteTimeout: time.Hour})
	c := p.Conn(0)
	payload := make([]byte, 1000)
	// Flush makes one non-blocking attempt; a blocking write would hang here
	// for the hour.
	accepted, refused := fillUntilRefused(c, payload)
	if !errors.Is(refused, mqttconn.ErrBackpressure) {
		t.Fatalf("after %d accepted publishes: %v, want ErrBackpressure", accepted, refused)
	}
	if !c.Connected() {
		t.Fatalf("the connection went down; it should stay up and refuse for backpressure")
	}
	p.Close() // cannot write to the stalled broker: reports the rest as unsent
	b.read.Store(true)
	// At most one frame was cut by the failed write: its bytes reached the
	// socket (it counts as sent) but the broker cannot parse it.
	brokertest.WaitFor(t, "the broker to read what reached it", func() bool {
		return int(b.publishes.Load())+int(unsent.Load()) >= accepted-1
	})
	t.Logf("accepted %d = %d written whole + %d unsent (+ at most one cut)", accepted, b.publishes.Load(), unsent.Load())
	if got := int(b.publishes.Load()) + int(unsent.Load()); got != accepted && got != accepted-1 {
		t.Errorf("accepted %d, written %d + unsent %d = %d: the books of the connection do not balance",
			accepted, b.publishes.Load(), unsent.Load(), got)
	}
	if unsent.Load() == 0 {
		t.Errorf("nothing reported unsent although the broker never read the last %d bytes", 64<<10)
	}
}

// TestWriteTimeoutReportsEachFrameOnce: the broker stops reading, the socket
// takes part of the buffer (the rest is carried to the flusher), and the
// flusher's blocking write of the carry times out. Every accepted frame then
// ends exactly once: written whole, or reported unsent — the carry is not
// reported twice.
func TestWriteTimeoutReportsEachFrameOnce(t *testing.T) {
	b, p, unsent := dialStalled(t, mqttconn.Options{ClientIDPrefix: "timeout", WriteTimeout: 300 * time.Millisecond, MaxReconnectInterval: time.Hour})
	c := p.Conn(0)
	payload := make([]byte, 1000)
	accepted, _ := fillUntilRefused(c, payload)
	_ = c.PublishMessage(&mqttconn.Message{Topic: "req/1", Payload: payload}) // refused or not: wakes the flusher, whose write times out
	brokertest.WaitFor(t, "the write to time out and the connection to fail", func() bool { return !c.Connected() })
	b.read.Store(true)
	brokertest.WaitFor(t, "the broker to read what reached it", func() bool {
		return int(b.publishes.Load())+int(unsent.Load()) >= accepted-1
	})
	got := int(b.publishes.Load()) + int(unsent.Load())
	t.Logf("accepted %d = %d written whole + %d unsent", accepted, b.publishes.Load(), unsent.Load())
	if got > accepted+1 || got < accepted-1 {
		t.Errorf("accepted %d (+1 refused or not), written %d + unsent %d = %d: frames counted twice or lost", accepted, b.publishes.Load(), unsent.Load(), got)
	}
}
