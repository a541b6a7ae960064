package mqttconn

import (
	"bytes"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.mqtt.golang/packets"
	"go.uber.org/goleak"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/brokertest"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttpkt"
)

// streamConn is a net.Conn whose reads come from r and whose writes are
// discarded.
type streamConn struct {
	net.Conn
	r io.Reader
}

func (c streamConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c streamConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c streamConn) Close() error                     { return nil }
func (c streamConn) SetWriteDeadline(time.Time) error { return nil }

// parse runs the demultiplexer of a session of protocol version v (4 or 5)
// with a 64-byte read buffer over stream and returns the messages it
// delivered (copied) and the bytes it passed on to the client library.
func parse(stream []byte, v byte) (msgs []Message, passed []byte, err error) {
	onPublish := func(m *Message) {
		msgs = append(msgs, Message{Topic: strings.Clone(m.Topic), Payload: bytes.Clone(m.Payload), ResponseTopic: strings.Clone(m.ResponseTopic),
			CorrelationData: bytes.Clone(m.CorrelationData), ExpirySeconds: m.ExpirySeconds})
	}
	s := newSession(streamConn{r: bytes.NewReader(stream)}, &Options{ProtocolVersion: v, ReadBufferBytes: 64}, onPublish, nil)
	defer s.Close()
	buf := make([]byte, 7) // paho reads in small pieces
	for {
		n, e := s.Read(buf)
		passed = append(passed, buf[:n]...)
		if e != nil {
			if errors.Is(e, io.EOF) {
				e = nil
			}
			return msgs, passed, e
		}
	}
}

func TestDemuxSplitsTheStream(t *testing.T) {
	var stream bytes.Buffer
	stream.Write(mqttpkt.AppendPublish(nil, &Message{Topic: "resp/a/1", Payload: []byte("one")}))
	ping := packets.NewControlPacket(packets.Pingresp)
	_ = ping.Write(&stream)
	stream.Write(mqttpkt.AppendPublish(nil, &Message{Topic: "resp/a/2", Payload: bytes.Repeat([]byte("x"), 300)})) // larger than the read buffer
	q1 := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	q1.Qos, q1.TopicName, q1.MessageID, q1.Payload = 1, "t", 7, []byte("qos1")
	_ = q1.Write(&stream)
	msgs, passed, err := parse(stream.Bytes(), 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 || msgs[0].Topic != "resp/a/1" || string(msgs[0].Payload) != "one" || msgs[1].Topic != "resp/a/2" || len(msgs[1].Payload) != 300 {
		t.Fatalf("publishes: %+v", msgs)
	}
	// paho sees exactly the PINGRESP and the QoS 1 PUBLISH, intact.
	r := bytes.NewReader(passed)
	p1, err := packets.ReadPacket(r)
	if _, ok := p1.(*packets.PingrespPacket); err != nil || !ok {
		t.Fatalf("first passed packet: %v %v", p1, err)
	}
	p2, err := packets.ReadPacket(r)
	if pp, ok := p2.(*packets.PublishPacket); err != nil || !ok || pp.Qos != 1 || string(pp.Payload) != "qos1" {
		t.Fatalf("second passed packet: %v %v", p2, err)
	}
	if r.Len() != 0 {
		t.Errorf("%d stray bytes passed", r.Len())
	}
}

// pahoPublish5 encodes a QoS 0 PUBLISH with paho.golang's own encoder.
func pahoPublish5(t testing.TB, topic string, payload []byte, props *paho5.Properties) []byte {
	t.Helper()
	cp := paho5.NewControlPacket(paho5.PUBLISH)
	pub := cp.Content.(*paho5.Publish)
	pub.Topic, pub.Payload = topic, payload
	if props != nil {
		pub.Properties = props
	}
	var w bytes.Buffer
	if _, err := cp.WriteTo(&w); err != nil {
		t.Fatal(err)
	}
	return w.Bytes()
}

func TestDemux5ReadsPahosFrames(t *testing.T) {
	format, exp := byte(1), uint32(30)
	var stream bytes.Buffer
	stream.Write(pahoPublish5(t, "resp/a/1", []byte("one"), &paho5.Properties{ResponseTopic: "back/1", CorrelationData: []byte{9, 8, 7}}))
	// Every other property a PUBLISH may carry is skipped.
	stream.Write(pahoPublish5(t, "resp/a/2", []byte("two"), &paho5.Properties{
		PayloadFormat: &format, MessageExpiry: &exp, ContentType: "application/json", CorrelationData: []byte("id-2"),
		User: []paho5.User{{Key: "k", Value: "v"}, {Key: "", Value: ""}}, ResponseTopic: "back/2",
	}))
	ping := paho5.NewControlPacket(paho5.PINGRESP)
	_, _ = ping.WriteTo(&stream)
	stream.Write(pahoPublish5(t, "resp/a/3", bytes.Repeat([]byte("x"), 300), nil))
	msgs, passed, err := parse(stream.Bytes(), 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 3 {
		t.Fatalf("%d messages: %+v", len(msgs), msgs)
	}
	if m := msgs[0]; m.Topic != "resp/a/1" || string(m.Payload) != "one" || m.ResponseTopic != "back/1" || !bytes.Equal(m.CorrelationData, []byte{9, 8, 7}) {
		t.Errorf("first: %+v", m)
	}
	if m := msgs[1]; m.Topic != "resp/a/2" || string(m.Payload) != "two" || m.ResponseTopic != "back/2" || string(m.CorrelationData) != "id-2" || m.ExpirySeconds != 30 {
		t.Errorf("second: %+v", m)
	}
	if m := msgs[2]; m.Topic != "resp/a/3" || len(m.Payload) != 300 || m.CorrelationData != nil || m.ResponseTopic != "" {
		t.Errorf("third: %+v", m)
	}
	if cp, err := paho5.ReadPacket(bytes.NewReader(passed)); err != nil || cp.Type != paho5.PINGRESP {
		t.Errorf("passed on: %v %v", cp, err)
	}
}

// TestDemuxRefusesMalformed: a packet the demultiplexer cannot take fails
// the read (the client library then closes the connection and reconnects).
func TestDemuxRefusesMalformed(t *testing.T) {
	alias := uint16(3)
	tooLong := append([]byte{0x90}, mqttpkt.AppendVarInt(nil, DefaultMaxInboundFrame)...) // a SUBACK
	for _, tc := range []struct {
		name   string
		v      byte
		stream []byte
	}{
		{"topic past the end", 4, []byte{0x30, 4, 0, 6, 'a', 'b'}},
		{"5-byte remaining length", 4, []byte{0x30, 0xff, 0xff, 0xff, 0xff}},
		{"packet other than PUBLISH larger than the bound", 4, tooLong},
		{"oversized PUBLISH of QoS 3", 4, append([]byte{0x36}, mqttpkt.AppendVarInt(nil, DefaultMaxInboundFrame)...)},
		{"property past the end", 5, []byte{0x30, 4, 0, 1, 't', 9}},
		{"topic alias", 5, pahoPublish5(t, "t", nil, &paho5.Properties{TopicAlias: &alias})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := parse(tc.stream, tc.v); !errors.Is(err, errMalformedPacket) || !errors.Is(err, mqttpkt.ErrMalformed) {
				t.Errorf("err %v, want errMalformedPacket", err)
			}
		})
	}
}

// captureConn is a streamConn that keeps what is written to it.
type captureConn struct {
	streamConn
	mu sync.Mutex
	w  bytes.Buffer
}

func (c *captureConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.w.Write(p)
}

// publishV encodes a PUBLISH of protocol version v with the client
// library's own encoder (paho.mqtt.golang for 4, paho.golang for 5).
func publishV(t testing.TB, v, qos byte, retain bool, id uint16, topic string, payload []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	if v == 5 {
		cp := paho5.NewControlPacket(paho5.PUBLISH)
		pub := cp.Content.(*paho5.Publish)
		pub.QoS, pub.Retain, pub.PacketID, pub.Topic, pub.Payload = qos, retain, id, topic, payload
		if _, err := cp.WriteTo(&b); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	p.Qos, p.Retain, p.MessageID, p.TopicName, p.Payload = qos, retain, id, topic, payload
	if err := p.Write(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestDemuxSkipsOversized: a PUBLISH above the frame limit, at any QoS,
// retained or not, is read past and reported, never delivered or passed on;
// at QoS 1 it is answered with a PUBACK, at QoS 2 with a PUBREC, of its
// packet identifier; the packets around it go where they always go.
func TestDemuxSkipsOversized(t *testing.T) {
	for _, v := range []byte{4, 5} {
		t.Run(VersionName(v), func(t *testing.T) {
			big := bytes.Repeat([]byte("x"), 500)
			var stream bytes.Buffer
			stream.Write(publishV(t, v, 0, false, 0, "resp/a/1", []byte("one")))
			stream.Write(publishV(t, v, 0, true, 0, "resp/big/0", big))
			stream.Write(publishV(t, v, 1, false, 0x1234, "resp/big/1", big))
			stream.Write(publishV(t, v, 2, true, 7, strings.Repeat("t", 80), big)) // topic longer than the read buffer
			stream.Write(publishV(t, v, 1, false, 9, "resp/q1", []byte("small")))
			stream.Write([]byte{0xD0, 0}) // PINGRESP
			stream.Write(publishV(t, v, 0, false, 0, "resp/a/2", []byte("two")))
			var msgs []string
			var skipped []Oversized
			nc := &captureConn{streamConn: streamConn{r: bytes.NewReader(stream.Bytes())}}
			s := newSession(nc, &Options{ProtocolVersion: v, ReadBufferBytes: 64, MaxInboundFrame: 200},
				func(m *Message) { msgs = append(msgs, m.Topic+"="+string(m.Payload)) }, nil)
			s.onOversized = func(o Oversized) { skipped = append(skipped, o) }
			var passed []byte
			buf := make([]byte, 7)
			for {
				n, err := s.Read(buf)
				passed = append(passed, buf[:n]...)
				if err != nil {
					if !errors.Is(err, io.EOF) {
						t.Fatal(err)
					}
					break
				}
			}
			_ = s.Close() // writes what is buffered
			if strings.Join(msgs, " ") != "resp/a/1=one resp/a/2=two" {
				t.Errorf("delivered %v", msgs)
			}
			// header 3 bytes, topic 2+len, packet id 2 (QoS > 0), properties 1 (MQTT 5), payload 500
			props := 0
			if v == 5 {
				props = 1
			}
			want := []Oversized{{Topic: "resp/big/0", Bytes: 515 + props, Retained: true}, {Topic: "resp/big/1", Bytes: 517 + props, QoS: 1},
				{Bytes: 587 + props, QoS: 2, Retained: true}}
			if !slices.Equal(skipped, want) {
				t.Errorf("skipped %+v\nwant    %+v", skipped, want)
			}
			if want := append(publishV(t, v, 1, false, 9, "resp/q1", []byte("small")), 0xD0, 0); !bytes.Equal(passed, want) {
				t.Errorf("passed on % x\nwant       % x", passed, want)
			}
			nc.mu.Lock()
			acks := nc.w.Bytes()
			nc.mu.Unlock()
			if want := []byte{0x40, 2, 0x12, 0x34, 0x50, 2, 0, 7}; !bytes.Equal(acks, want) {
				t.Errorf("wrote % x, want PUBACK 0x1234, PUBREC 7: % x", acks, want)
			}
		})
	}
}

func TestCheckMessage(t *testing.T) {
	if err := checkMessage(&Message{Topic: "t", CorrelationData: []byte{1}}, false); !errors.Is(err, ErrNeedsV5) {
		t.Errorf("v5 property on 3.1.1: %v", err)
	}
	if err := checkMessage(&Message{Topic: "t", ResponseTopic: string(make([]byte, 70000))}, true); err == nil {
		t.Error("a 70,000-byte response topic was accepted")
	}
	if err := checkMessage(&Message{Topic: "t", ResponseTopic: "r", CorrelationData: []byte{1}, ExpirySeconds: 5}, true); err != nil {
		t.Error(err)
	}
}

// TestReportUnsent: of the frames the socket discarded, every PUBLISH (at
// any QoS) reaches onUnsent with its properties, and nothing else does.
func TestReportUnsent(t *testing.T) {
	q1 := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	q1.Qos, q1.TopicName, q1.MessageID, q1.Payload = 1, "req/q1", 7, []byte("qos1")
	var q1b bytes.Buffer
	_ = q1.Write(&q1b)
	m5 := &Message{Topic: "req/5", Payload: []byte("p"), ResponseTopic: "resp/5", CorrelationData: []byte{1, 2}, ExpirySeconds: 9}
	for _, tc := range []struct {
		name   string
		v      byte
		frames [][]byte
		want   []Message
	}{
		{"3.1.1", 4, [][]byte{
			mqttpkt.AppendPublish(nil, &Message{Topic: "req/1", Payload: []byte("a")}),
			{0xC0, 0x00}, // PINGREQ
			q1b.Bytes(),
		}, []Message{{Topic: "req/1", Payload: []byte("a")}, {Topic: "req/q1", Payload: []byte("qos1")}}},
		{"5", 5, [][]byte{mqttpkt.AppendPublish5(nil, m5), {0xC0, 0x00}}, []Message{*m5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []Message
			s := &session{v5: tc.v == 5, onUnsent: func(m *Message) { got = append(got, *m) }}
			s.reportUnsent(bytes.Join(tc.frames, nil))
			if len(got) != len(tc.want) {
				t.Fatalf("reported %d messages, want %d: %+v", len(got), len(tc.want), got)
			}
			for i, w := range tc.want {
				m := got[i]
				if m.Topic != w.Topic || !bytes.Equal(m.Payload, w.Payload) || m.ResponseTopic != w.ResponseTopic ||
					!bytes.Equal(m.CorrelationData, w.CorrelationData) || m.ExpirySeconds != w.ExpirySeconds {
					t.Errorf("message %d: %+v, want %+v", i, m, w)
				}
			}
		})
	}
}

// TestReadReportsTheWriteError: once a write failed (and closed the socket),
// Read fails with the write's error, not with "use of closed network
// connection", which paho.mqtt.golang would take for its own Disconnect.
func TestReadReportsTheWriteError(t *testing.T) {
	defer goleak.VerifyNone(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	_ = peer.(*net.TCPConn).SetLinger(0) // close with a reset: the next writes fail
	peer.Close()
	s := newSession(nc, &Options{ProtocolVersion: 4}, nil, nil)
	defer s.Close()
	brokertest.WaitFor(t, "a write to fail", func() bool {
		_, _ = s.Write([]byte{0xC0, 0x00})
		return s.Err() != nil
	})
	// A read may still see the reset before the failed write has closed
	// the socket; once it has, every read reports the write's error.
	want := "mqtt connection failed on write: " + s.Err().Error()
	brokertest.WaitFor(t, "Read to report the write error", func() bool {
		_, err = s.Read(make([]byte, 1))
		return err != nil && err.Error() == want
	})
	if errors.Is(err, net.ErrClosed) || !s.Dead() {
		t.Errorf("Read: %v (dead %v), want the write's error, not wrapping net.ErrClosed", err, s.Dead())
	}
}

// The demultiplexer never panics on whatever the broker sends, and passes
// on whole packets only.
func FuzzDemux(f *testing.F) {
	f.Add(mqttpkt.AppendPublish(nil, &Message{Topic: "a/b", Payload: []byte("payload")}), false)
	f.Add([]byte{0x30, 4, 0, 6, 'a', 'b'}, false)
	f.Add([]byte{0xd0, 0x00, 0x30, 0x02, 0x00, 0x00}, false)
	f.Add(mqttpkt.AppendPublish5(nil, &Message{Topic: "a/b", Payload: []byte("p"), ResponseTopic: "r", CorrelationData: []byte{1, 2}, ExpirySeconds: 3}), true)
	f.Add([]byte{0x30, 9, 0, 1, 't', 5, 0x26, 0, 0, 0, 5}, true)
	f.Fuzz(func(t *testing.T, stream []byte, v5 bool) {
		if len(stream) > 1<<16 {
			return
		}
		v := byte(4)
		if v5 {
			v = 5
		}
		_, passed, err := parse(stream, v)
		if err != nil {
			return
		}
		for len(passed) > 0 {
			size, ok := mqttpkt.FrameLen(passed)
			if !ok || size > len(passed) {
				t.Fatalf("passed on a cut packet: % x", passed)
			}
			passed = passed[size:]
		}
	})
}
