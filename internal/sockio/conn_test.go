package sockio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
	"go.uber.org/goleak"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/brokertest"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttpkt"
)

// The tests write MQTT packets (mqttpkt's, and PINGREQs as a client library
// writes them through Write) and read them at the peer with paho's packet
// reader: whatever the coalescing does, the peer must read whole packets, in
// order.

// open wraps c as the MQTT connections do.
func open(c net.Conn, o Options) *Conn {
	o.FrameLen = mqttpkt.FrameLen
	return New(c, o)
}

// appendPublish appends a QoS 0 PUBLISH of topic and payload.
func appendPublish(s *Conn, topic string, payload []byte, kick bool) error {
	buf, err := s.BeginAppend()
	if err != nil {
		return err
	}
	s.EndAppend(mqttpkt.AppendPublish(buf, &mqttpkt.Message{Topic: topic, Payload: payload}), kick)
	return nil
}

var pingreq = []byte{0xC0, 0x00} // as paho writes it through Write

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

// readPackets reads MQTT packets from c until EOF and sends the result.
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

func TestRawIOOnTCPOnly(t *testing.T) {
	defer goleak.VerifyNone(t)
	cl, _ := tcpPair(t)
	s := open(cl, Options{})
	defer s.Close()
	p, _ := net.Pipe() // no socket: the portable path
	sp := open(p, Options{})
	defer sp.Close()
	if got := sp.raw.nonBlocking(); got {
		t.Errorf("nonBlocking on a net.Pipe = true, want false")
	}
	if got, want := s.raw.nonBlocking(), runtime.GOOS == "linux"; got != want {
		t.Errorf("nonBlocking on TCP = %v, want %v on this platform", got, want)
	}
}

func TestDeliversInOrder(t *testing.T) {
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
			s := open(cl, Options{ReadBufferBytes: 4096, Linger: tc.linger, WriteTimeout: 5 * time.Second, MaxPendingBytes: 64 << 20})
			done := readPackets(srv)
			const n = 20000
			payload := make([]byte, 40)
			pings := 0
			for i := range n {
				binary.BigEndian.PutUint32(payload, uint32(i))
				if err := appendPublish(s, fmt.Sprintf("t/%d", i%7), payload, tc.kick(i)); err != nil {
					t.Fatalf("append %d: %v", i, err)
				}
				if i%1000 == 0 {
					if _, err := s.Write(pingreq); err != nil {
						t.Fatalf("Write: %v", err)
					}
					pings++
				}
			}
			if err := s.Close(); err != nil {
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

// TestCloseFlushes: frames queued without a kick, or waiting out a long
// linger, are written by Close.
func TestCloseFlushes(t *testing.T) {
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
			s := open(cl, Options{ReadBufferBytes: 4096, Linger: tc.linger, WriteTimeout: time.Second})
			done := readPackets(srv)
			for i := range 50 {
				if err := appendPublish(s, "t", []byte{byte(i)}, tc.kick); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if got := <-done; len(got) != 50 {
				t.Errorf("peer received %d packets after Close, want 50", len(got))
			}
			// Idempotent, and the connection refuses more work.
			if err := s.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
			if err := appendPublish(s, "t", nil, true); !errors.Is(err, ErrClosed) {
				t.Errorf("append after Close = %v, want ErrClosed", err)
			}
			if _, err := s.Write(pingreq); !errors.Is(err, ErrClosed) {
				t.Errorf("Write after Close = %v, want ErrClosed", err)
			}
			if !s.Dead() {
				t.Errorf("not Dead after Close")
			}
		})
	}
}

func TestWriteErrorIsSticky(t *testing.T) {
	defer goleak.VerifyNone(t)
	cl, peer := net.Pipe()
	s := open(cl, Options{ReadBufferBytes: 4096, WriteTimeout: time.Second})
	defer s.Close()
	peer.Close()

	var err error
	brokertest.WaitFor(t, "the write error", func() bool {
		err = appendPublish(s, "t", []byte("x"), true)
		return err != nil
	})
	if !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("append = %v, want the socket's write error (io.ErrClosedPipe)", err)
	}
	for i := range 3 {
		if err := appendPublish(s, "t", []byte("x"), true); !errors.Is(err, io.ErrClosedPipe) {
			t.Errorf("append %d after the error = %v, want the sticky write error", i, err)
		}
	}
	if _, err := s.Write(pingreq); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("Write after the error = %v, want the sticky write error", err)
	}
	if err := s.Err(); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("Err = %v, want the sticky write error", err)
	}
	if !s.Dead() {
		t.Errorf("not Dead after a write error")
	}
	// The socket is closed too, so that the client library's reader fails
	// and reconnects.
	if _, err := s.Read(make([]byte, 1)); err == nil {
		t.Errorf("Read after a write error succeeded; want the connection closed")
	}
}

func TestBackpressure(t *testing.T) {
	payload := make([]byte, 50)
	frameLen := len(mqttpkt.AppendPublish(nil, &mqttpkt.Message{Topic: "t/1", Payload: payload}))
	const limit = 1000
	t.Run("queued without kick", func(t *testing.T) {
		defer goleak.VerifyNone(t)
		cl, srv := tcpPair(t)
		s := open(cl, Options{ReadBufferBytes: 4096, WriteTimeout: time.Second, MaxPendingBytes: limit})
		accepted := 0
		for {
			err := appendPublish(s, "t/1", payload, false)
			if errors.Is(err, ErrFull) {
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
		// The client library's own packets are never refused.
		if _, err := s.Write(pingreq); err != nil {
			t.Errorf("Write under backpressure: %v", err)
		}
		done := readPackets(srv)
		s.signal()
		brokertest.WaitFor(t, "the buffer to drain", func() bool { return appendPublish(s, "t/1", payload, true) == nil })
		s.Close()
		if got := len(<-done); got < accepted+2 {
			t.Errorf("peer got %d packets, want at least %d", got, accepted+2)
		}
	})
	t.Run("stalled peer", func(t *testing.T) {
		defer goleak.VerifyNone(t)
		cl, peer := net.Pipe() // synchronous: a write blocks until the peer reads
		s := open(cl, Options{ReadBufferBytes: 4096, MaxPendingBytes: limit})
		var err error
		for i := 0; i < 10*limit; i++ {
			if err = appendPublish(s, "t/1", payload, true); err != nil {
				break
			}
		}
		if !errors.Is(err, ErrFull) {
			t.Fatalf("appending to a stalled peer: %v, want ErrFull", err)
		}
		done := make(chan int64)
		go func() { n, _ := io.Copy(io.Discard, peer); done <- n }()
		brokertest.WaitFor(t, "the stalled peer to drain", func() bool { return appendPublish(s, "t/1", payload, true) == nil })
		s.Close()
		if n := <-done; n == 0 {
			t.Errorf("peer read nothing")
		}
	})
}

// TestUnsentReportsWholeFrames: the socket fails before anything is written;
// every frame accepted, appended or written, is reported unsent once, whole.
func TestUnsentReportsWholeFrames(t *testing.T) {
	defer goleak.VerifyNone(t)
	cl, peer := net.Pipe()
	var unsent [][]byte
	s := open(cl, Options{ReadBufferBytes: 4096, OnUnsent: func(frames []byte) {
		for len(frames) > 0 {
			size, ok := mqttpkt.FrameLen(frames)
			if !ok || size > len(frames) {
				t.Errorf("OnUnsent got a cut frame: % x", frames)
				return
			}
			unsent = append(unsent, append([]byte(nil), frames[:size]...))
			frames = frames[size:]
		}
	}})
	const n = 100
	for i := range n {
		if err := appendPublish(s, "t", []byte{byte(i)}, false); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Write(pingreq); err != nil {
		t.Fatal(err)
	}
	peer.Close()
	s.Flush() // no raw socket: wakes the flusher, whose write fails
	brokertest.WaitFor(t, "the write to fail", s.Dead)
	s.Close()
	if len(unsent) != n+1 {
		t.Fatalf("%d frames reported unsent, want %d", len(unsent), n+1)
	}
	for i, f := range unsent[:n] {
		if want := mqttpkt.AppendPublish(nil, &mqttpkt.Message{Topic: "t", Payload: []byte{byte(i)}}); string(f) != string(want) {
			t.Errorf("unsent frame %d: % x, want % x", i, f, want)
		}
	}
	if string(unsent[n]) != string(pingreq) {
		t.Errorf("last unsent frame % x, want the PINGREQ", unsent[n])
	}
}

// TestSuspect: a connection that wrote and heard nothing since is suspect
// once the bound has passed; reading anything clears it.
func TestSuspect(t *testing.T) {
	defer goleak.VerifyNone(t)
	cl, srv := tcpPair(t)
	s := open(cl, Options{ReadBufferBytes: 4096})
	defer s.Close()
	if s.Suspect(0) {
		t.Fatal("suspect before any write")
	}
	if err := appendPublish(s, "t", []byte("x"), false); err != nil {
		t.Fatal(err)
	}
	s.Flush()
	brokertest.WaitFor(t, "the write to make the connection suspect", func() bool { return s.Suspect(0) })
	if s.Suspect(time.Hour) {
		t.Errorf("suspect within a bound of an hour")
	}
	if _, err := srv.Write(pingreq); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(s, make([]byte, len(pingreq))); err != nil {
		t.Fatal(err)
	}
	if s.Suspect(0) {
		t.Errorf("still suspect after a read")
	}
}

// BenchmarkQueue measures appending one ~60-byte PUBLISH frame to a Conn
// whose flusher writes to a real loopback TCP socket read by a discarding
// peer. Backpressure (the socket behind the appends) is retried and reported.
func BenchmarkQueue(b *testing.B) {
	cl, srv := tcpPair(b)
	go func() { _, _ = io.Copy(io.Discard, srv) }()
	s := open(cl, Options{WriteTimeout: 5 * time.Second, MaxPendingBytes: 4 << 20})
	defer s.Close()
	m := &mqttpkt.Message{Topic: "req/17", Payload: make([]byte, 50)}
	refused := 0
	b.SetBytes(int64(len(mqttpkt.AppendPublish(nil, m))))
	b.ReportAllocs()
	for b.Loop() {
		for {
			buf, err := s.BeginAppend()
			if err == nil {
				s.EndAppend(mqttpkt.AppendPublish(buf, m), true)
				break
			}
			if !errors.Is(err, ErrFull) {
				b.Fatal(err)
			}
			refused++
			time.Sleep(10 * time.Microsecond)
		}
	}
	b.ReportMetric(float64(refused)/float64(b.N), "refused/op")
}

// TestDeadlineDoesNotOutliveTheWrite: the flusher's write deadline must not
// stay on the socket, or a later non-blocking Flush fails with "i/o timeout"
// once it has passed (seen: every connection dropped 5 s into a run).
func TestDeadlineDoesNotOutliveTheWrite(t *testing.T) {
	defer goleak.VerifyNone(t)
	cl, srv := tcpPair(t)
	s := open(cl, Options{ReadBufferBytes: 4096, WriteTimeout: 20 * time.Millisecond})
	done := readPackets(srv)
	if err := appendPublish(s, "t", []byte{1}, true); err != nil { // the flusher writes, with a deadline
		t.Fatal(err)
	}
	brokertest.WaitFor(t, "the flusher's write", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.pending) == 0
	})
	time.Sleep(50 * time.Millisecond) // past the deadline the flusher set
	for i := range 10 {
		if err := appendPublish(s, "t", []byte{byte(i + 2)}, false); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		s.Flush()
	}
	if err := s.Err(); err != nil || s.Dead() {
		t.Fatalf("Flush after an old deadline failed the connection: %v", err)
	}
	s.Close()
	if got := len(<-done); got != 11 {
		t.Errorf("peer received %d packets, want 11", got)
	}
}
