package mqttconn

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttpkt"
)

// loopConn is a net.Conn whose reads return stream over and over.
type loopConn struct {
	net.Conn
	stream []byte
	off    int
}

func (c *loopConn) Read(p []byte) (int, error) {
	n := copy(p, c.stream[c.off:])
	c.off = (c.off + n) % len(c.stream)
	return n, nil
}
func (c *loopConn) Close() error                     { return nil }
func (c *loopConn) SetWriteDeadline(time.Time) error { return nil }

// benchRead measures the demultiplexer's cost per inbound QoS 0 PUBLISH
// (frame): a session reads 64 of them, then a PINGRESP for the client
// library, over and over from memory.
func benchRead(b *testing.B, v byte, frame []byte) {
	var stream []byte
	for range 64 {
		stream = append(stream, frame...)
	}
	stream = append(stream, 0xD0, 0x00)
	n := 0
	s := newSession(&loopConn{stream: stream}, &Options{ProtocolVersion: v, ReadBufferBytes: 64 << 10}, func(*Message) { n++ }, nil)
	defer s.Close()
	p := make([]byte, 512)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	b.ResetTimer()
	for n < b.N {
		if _, err := s.Read(p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadPublish(b *testing.B) {
	benchRead(b, 4, mqttpkt.AppendPublish(nil, &Message{Topic: "resp/lg-0/17", Payload: make([]byte, 50)}))
}

func BenchmarkReadPublish5(b *testing.B) {
	benchRead(b, 5, mqttpkt.AppendPublish5(nil, request5))
}

// request5 is an MQTT 5 request as the loadgen sends it.
var request5 = &Message{Topic: "req/17", Payload: make([]byte, 50), ResponseTopic: "resp/lg-0/17", CorrelationData: []byte{1, 2, 3, 4, 5, 6, 7, 8}, ExpirySeconds: 10}

// sinkBroker accepts MQTT connections, acknowledges their CONNECT (of
// protocol version v) and discards everything else they send, without
// allocating per packet: a peer that costs the benchmarks nothing but CPU.
func sinkBroker(b *testing.B, v byte) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	connack := []byte{0x20, 0x02, 0x00, 0x00}
	if v == 5 {
		connack = []byte{0x20, 0x03, 0x00, 0x00, 0x00} // no properties
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if _, _, err := readPacket(c); err != nil {
					return
				}
				if _, err := c.Write(connack); err != nil {
					return
				}
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	b.Cleanup(func() { ln.Close(); <-done })
	return "tcp://" + ln.Addr().String()
}

// readPacket reads one MQTT packet from r.
func readPacket(r io.Reader) (first byte, body []byte, err error) {
	hdr := make([]byte, 1, 5)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return 0, nil, err
	}
	for {
		var d [1]byte
		if _, err := io.ReadFull(r, d[:]); err != nil {
			return 0, nil, err
		}
		hdr = append(hdr, d[0])
		rl, _, err := mqttpkt.Header(hdr)
		if err == mqttpkt.ErrShort {
			continue
		}
		if err != nil {
			return 0, nil, err
		}
		body = make([]byte, rl)
		_, err = io.ReadFull(r, body)
		return hdr[0], body, err
	}
}

// benchPublish measures one QoS 0 message through Conn (PublishMessage, or
// QueueMessage then Flush) of a pool connected to a broker that discards
// what it gets. Backpressure is retried and reported.
func benchPublish(b *testing.B, v byte, m *Message, flush bool) {
	p, err := Dial(context.Background(), Options{Broker: sinkBroker(b, v), ClientIDPrefix: "bench", ProtocolVersion: v,
		MaxPendingBytes: 4 << 20, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	c := p.Conn(0)
	refused := 0
	b.ReportAllocs()
	for b.Loop() {
		for {
			if flush {
				err = c.QueueMessage(m)
				c.Flush()
			} else {
				err = c.PublishMessage(m)
			}
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

func BenchmarkPublishMessage(b *testing.B) {
	benchPublish(b, 4, &Message{Topic: "resp/lg-0/17", Payload: make([]byte, 50)}, false)
}

func BenchmarkPublishMessage5(b *testing.B) { benchPublish(b, 5, request5, false) }

func BenchmarkQueueFlush(b *testing.B) {
	benchPublish(b, 4, &Message{Topic: "resp/lg-0/17", Payload: make([]byte, 50)}, true)
}
