package mqttconn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
	"go.uber.org/goleak"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttpkt"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t testing.TB) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { client.Close(); r.c.Close() })
	return client, r.c
}

// readAll reads MQTT packets from c until EOF and sends the result.
func readPackets(c net.Conn) <-chan []packets.ControlPacket {
	out := make(chan []packets.ControlPacket, 1)
	go func() {
		var got []packets.ControlPacket
		for {
			cp, err := packets.ReadPacket(c)
			if err != nil {
				out <- got
				return
			}
			got = append(got, cp)
		}
	}()
	return out
}

func TestBufConnDeliversInOrder(t *testing.T) {
	tests := []struct {
		name   string
		linger time.Duration
		kick   func(i int) bool
	}{
		{name: "kick every frame", kick: func(int) bool { return true }},
		{name: "kick every 100th frame", kick: func(i int) bool { return i%100 == 99 }},
		{name: "linger", linger: 200 * time.Microsecond, kick: func(i int) bool { return i%10 == 0 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			defer goleak.VerifyNone(t)
			cl, srv := tcpPair(t)
			b := newBufConn(cl, 4096, tc.linger, 5*time.Second, 64<<20)
			done := readPackets(srv)
			const n = 20000
			payload := make([]byte, 40)
			ping := []byte{0xC0, 0x00} // PINGREQ, as paho writes it through Write
			pings := 0
			for i := range n {
				binary.BigEndian.PutUint32(payload, uint32(i))
				if err := b.appendPublish(fmt.Sprintf("t/%d", i%7), payload, tc.kick(i)); err != nil {
					t.Fatalf("appendPublish %d: %v", i, err)
				}
				if i%1000 == 0 {
					if _, err := b.Write(ping); err != nil {
						t.Fatalf("Write: %v", err)
					}
					pings++
				}
			}
			if err := b.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			got := <-done
			if len(got) != n+pings {
				t.Fatalf("received %d packets, want %d", len(got), n+pings)
			}
			next := 0
			for _, cp := range got {
				switch p := cp.(type) {
				case *packets.PingreqPacket:
				case *packets.PublishPacket:
					if seq := binary.BigEndian.Uint32(p.Payload); seq != uint32(next) {
						t.Fatalf("publish %d arrived where %d was expected", seq, next)
					}
					if want := fmt.Sprintf("t/%d", next%7); p.TopicName != want {
						t.Fatalf("publish %d on topic %q, want %q", next, p.TopicName, want)
					}
					next++
				default:
					t.Fatalf("unexpected packet %T", cp)
				}
			}
		})
	}
}

// TestBufConnCloseFlushes: frames queued without a kick, or waiting out a long
// linger, are written by Close.
func TestBufConnCloseFlushes(t *testing.T) {
	tests := []struct {
		name   string
		linger time.Duration
		kick   bool
	}{
		{name: "never kicked", kick: false},
		{name: "long linger", linger: time.Hour, kick: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			defer goleak.VerifyNone(t)
			cl, srv := tcpPair(t)
			b := newBufConn(cl, 4096, tc.linger, time.Second, 1<<20)
			done := readPackets(srv)
			for i := range 50 {
				if err := b.appendPublish("t", []byte{byte(i)}, tc.kick); err != nil {
					t.Fatal(err)
				}
			}
			if err := b.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if got := <-done; len(got) != 50 {
				t.Errorf("peer received %d packets after Close, want 50", len(got))
			}
			// Idempotent, and the connection refuses more work.
			if err := b.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
			if err := b.appendPublish("t", nil, true); !errors.Is(err, errClosed) {
				t.Errorf("appendPublish after Close = %v, want errClosed", err)
			}
			if _, err := b.Write([]byte{0xC0, 0}); !errors.Is(err, errClosed) {
				t.Errorf("Write after Close = %v, want errClosed", err)
			}
		})
	}
}

// waitFor polls cond until it holds or the deadline passes. It bounds a wait
// for an asynchronous event; it asserts nothing about speed.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestBufConnWriteErrorIsSticky(t *testing.T) {
	defer goleak.VerifyNone(t)
	cl, peer := net.Pipe()
	b := newBufConn(cl, 4096, 0, time.Second, 1<<20)
	defer b.Close()
	peer.Close()

	var err error
	waitFor(t, "the write error", func() bool {
		err = b.appendPublish("t", []byte("x"), true)
		return err != nil
	})
	if !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("appendPublish = %v, want the socket's write error (io.ErrClosedPipe)", err)
	}
	for i := range 3 {
		if err := b.appendPublish("t", []byte("x"), true); !errors.Is(err, io.ErrClosedPipe) {
			t.Errorf("append %d after the error = %v, want the sticky write error", i, err)
		}
	}
	if _, err := b.Write([]byte{0xC0, 0}); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("Write after the error = %v, want the sticky write error", err)
	}
	// The socket is closed too, so that paho's reader fails and reconnects.
	if _, err := b.Read(make([]byte, 1)); err == nil {
		t.Errorf("Read after a write error succeeded; want the connection closed")
	}
}

func TestBufConnBackpressure(t *testing.T) {
	payload := make([]byte, 50)
	frameLen := len(mqttpkt.AppendPublish(nil, &Message{Topic: "t/1", Payload: payload}))
	const limit = 1000
	t.Run("queued without kick", func(t *testing.T) {
		defer goleak.VerifyNone(t)
		cl, srv := tcpPair(t)
		b := newBufConn(cl, 4096, 0, time.Second, limit)
		accepted := 0
		for {
			err := b.appendPublish("t/1", payload, false)
			if errors.Is(err, ErrBackpressure) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			accepted++
			if accepted > 10*limit {
				t.Fatal("no backpressure")
			}
		}
		// Refused once more than limit bytes are pending: the last frame
		// accepted may cross the limit, the next is refused.
		if want := limit/frameLen + 1; accepted != want {
			t.Errorf("accepted %d frames of %d bytes before backpressure, want %d", accepted, frameLen, want)
		}
		// paho's own packets are never refused.
		if _, err := b.Write([]byte{0xC0, 0}); err != nil {
			t.Errorf("Write under backpressure: %v", err)
		}
		done := readPackets(srv)
		b.signal()
		waitFor(t, "the buffer to drain", func() bool { return b.appendPublish("t/1", payload, true) == nil })
		b.Close()
		if got := len(<-done); got < accepted+2 {
			t.Errorf("peer got %d packets, want at least %d", got, accepted+2)
		}
	})
	t.Run("stalled peer", func(t *testing.T) {
		defer goleak.VerifyNone(t)
		cl, peer := net.Pipe() // synchronous: a write blocks until the peer reads
		b := newBufConn(cl, 4096, 0, 0, limit)
		var err error
		for i := 0; i < 10*limit; i++ {
			if err = b.appendPublish("t/1", payload, true); err != nil {
				break
			}
		}
		if !errors.Is(err, ErrBackpressure) {
			t.Fatalf("appending to a stalled peer: %v, want ErrBackpressure", err)
		}
		done := make(chan int64)
		go func() { n, _ := io.Copy(io.Discard, peer); done <- n }()
		waitFor(t, "the stalled peer to drain", func() bool { return b.appendPublish("t/1", payload, true) == nil })
		b.Close()
		if n := <-done; n == 0 {
			t.Errorf("peer read nothing")
		}
	})
}

// BenchmarkQueue measures appending one ~60-byte PUBLISH frame to a bufConn
// whose flusher writes to a real loopback TCP socket read by a discarding
// peer. Backpressure (the socket behind the appends) is retried and reported.
func BenchmarkQueue(b *testing.B) {
	cl, srv := tcpPair(b)
	go func() { _, _ = io.Copy(io.Discard, srv) }()
	bc := newBufConn(cl, 64<<10, 0, 5*time.Second, 4<<20)
	defer bc.Close()
	payload := make([]byte, 50)
	refused := 0
	b.SetBytes(int64(len(mqttpkt.AppendPublish(nil, &Message{Topic: "req/17", Payload: payload}))))
	b.ReportAllocs()
	for b.Loop() {
		for {
			err := bc.appendPublish("req/17", payload, true)
			if err == nil {
				break
			}
			if !errors.Is(err, ErrBackpressure) {
				b.Fatal(err)
			}
			refused++
			time.Sleep(10 * time.Microsecond)
		}
	}
	b.ReportMetric(float64(refused)/float64(b.N), "refused/op")
}

// TestBufConnDeadlineDoesNotOutliveTheWrite: the flusher's write deadline
// must not stay on the socket, or a later non-blocking flushSync fails with
// "i/o timeout" once it has passed (seen: every connection dropped 5 s into
// a run).
func TestBufConnDeadlineDoesNotOutliveTheWrite(t *testing.T) {
	defer goleak.VerifyNone(t)
	cl, srv := tcpPair(t)
	b := newBufConn(cl, 4096, 0, 20*time.Millisecond, 1<<20)
	done := readPackets(srv)
	if err := b.appendPublish("t", []byte{1}, true); err != nil { // the flusher writes, with a deadline
		t.Fatal(err)
	}
	waitFor(t, "the flusher's write", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.pending) == 0
	})
	time.Sleep(50 * time.Millisecond) // past the deadline the flusher set
	for i := range 10 {
		if err := b.appendPublish("t", []byte{byte(i + 2)}, false); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		b.flushSync()
	}
	b.mu.Lock()
	err := b.err
	b.mu.Unlock()
	if err != nil || b.dead.Load() {
		t.Fatalf("flushSync after an old deadline failed the connection: %v", err)
	}
	b.Close()
	if got := len(<-done); got != 11 {
		t.Errorf("peer received %d packets, want 11", got)
	}
}
