package mqttconn

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttpkt"
)

// readerConn is a net.Conn whose reads come from a byte slice.
type readerConn struct {
	net.Conn
	r io.Reader
}

func (c readerConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// parse runs the in-place parser over stream and returns the publishes it
// delivered and the bytes it passed on to paho.
func parse(stream []byte) (pubs [][2]string, passed []byte, err error) {
	b := &bufConn{r: bufio.NewReaderSize(readerConn{r: bytes.NewReader(stream)}, 64)}
	b.onPublish = func(m *Message) { pubs = append(pubs, [2]string{strings.Clone(m.Topic), string(m.Payload)}) }
	passed, err = readAll(b)
	return pubs, passed, err
}

// readAll reads b in small pieces until EOF and returns what it passed on.
func readAll(b *bufConn) (passed []byte, err error) {
	buf := make([]byte, 7)
	for {
		n, e := b.Read(buf)
		passed = append(passed, buf[:n]...)
		if e != nil {
			if errors.Is(e, io.EOF) {
				e = nil
			}
			return passed, e
		}
	}
}

func TestFastPathSplitsTheStream(t *testing.T) {
	var stream bytes.Buffer
	stream.Write(mqttpkt.AppendPublish(nil, &Message{Topic: "resp/a/1", Payload: []byte("one")}))
	ping := packets.NewControlPacket(packets.Pingresp)
	_ = ping.Write(&stream)
	stream.Write(mqttpkt.AppendPublish(nil, &Message{Topic: "resp/a/2", Payload: bytes.Repeat([]byte("x"), 300)})) // larger than the read buffer
	q1 := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	q1.Qos, q1.TopicName, q1.MessageID, q1.Payload = 1, "t", 7, []byte("qos1")
	_ = q1.Write(&stream)
	pubs, passed, err := parse(stream.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(pubs) != 2 || pubs[0] != [2]string{"resp/a/1", "one"} || pubs[1][0] != "resp/a/2" || len(pubs[1][1]) != 300 {
		t.Fatalf("publishes: %q", pubs)
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

func TestFastPathRejectsBadTopicLength(t *testing.T) {
	// PUBLISH QoS 0, remaining length 4, topic length 6 (past the end).
	if _, _, err := parse([]byte{0x30, 4, 0, 6, 'a', 'b'}); !errors.Is(err, errMalformedPacket) {
		t.Errorf("err %v, want errMalformedPacket", err)
	}
	if _, _, err := parse([]byte{0x30, 0xff, 0xff, 0xff, 0xff}); !errors.Is(err, errMalformedPacket) {
		t.Errorf("5-byte remaining length: err %v", err)
	}
}

// The parser never panics on whatever the broker sends.
func FuzzFastPath(f *testing.F) {
	f.Add(mqttpkt.AppendPublish(nil, &Message{Topic: "a/b", Payload: []byte("payload")}))
	f.Add([]byte{0x30, 4, 0, 6, 'a', 'b'})
	f.Add([]byte{0xd0, 0x00, 0x30, 0x02, 0x00, 0x00})
	f.Fuzz(func(t *testing.T, stream []byte) {
		if len(stream) > 1<<16 {
			return
		}
		_, _, _ = parse(stream)
	})
}
