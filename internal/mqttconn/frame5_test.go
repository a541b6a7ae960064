package mqttconn

import (
	"bufio"
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/eclipse/paho.golang/packets"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttpkt"
)

// parse5 runs the in-place MQTT 5 parser over stream and returns the
// messages it delivered (copied) and the bytes it passed on.
func parse5(stream []byte) (msgs []Message, passed []byte, err error) {
	b := &bufConn{v5: true, r: bufio.NewReaderSize(readerConn{r: bytes.NewReader(stream)}, 64)}
	b.onPublish = func(m *Message) {
		msgs = append(msgs, Message{Topic: strings.Clone(m.Topic), Payload: bytes.Clone(m.Payload), ResponseTopic: strings.Clone(m.ResponseTopic),
			CorrelationData: bytes.Clone(m.CorrelationData), ExpirySeconds: m.ExpirySeconds})
	}
	passed, err = readAll(b)
	return msgs, passed, err
}

// pahoPublish5 encodes a QoS 0 PUBLISH with paho.golang's own encoder (the
// oracle of these tests).
func pahoPublish5(t testing.TB, topic string, payload []byte, props *packets.Properties) []byte {
	t.Helper()
	cp := packets.NewControlPacket(packets.PUBLISH)
	pub := cp.Content.(*packets.Publish)
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

func TestFastPath5ReadsPahosFrames(t *testing.T) {
	fmt, exp, alias := byte(1), uint32(30), uint16(3)
	var stream bytes.Buffer
	stream.Write(pahoPublish5(t, "resp/a/1", []byte("one"), &packets.Properties{ResponseTopic: "back/1", CorrelationData: []byte{9, 8, 7}}))
	// Every other property a PUBLISH may carry is skipped.
	stream.Write(pahoPublish5(t, "resp/a/2", []byte("two"), &packets.Properties{
		PayloadFormat: &fmt, MessageExpiry: &exp, ContentType: "application/json", CorrelationData: []byte("id-2"),
		User: []packets.User{{Key: "k", Value: "v"}, {Key: "", Value: ""}}, ResponseTopic: "back/2",
	}))
	ping := packets.NewControlPacket(packets.PINGRESP)
	_, _ = ping.WriteTo(&stream)
	stream.Write(pahoPublish5(t, "resp/a/3", bytes.Repeat([]byte("x"), 300), nil))
	msgs, passed, err := parse5(stream.Bytes())
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
	if cp, err := packets.ReadPacket(bytes.NewReader(passed)); err != nil || cp.Type != packets.PINGRESP {
		t.Errorf("passed on: %v %v", cp, err)
	}
	// A topic alias is refused (this client never allows one).
	if _, _, err := parse5(pahoPublish5(t, "t", nil, &packets.Properties{TopicAlias: &alias})); !errors.Is(err, errMalformedPacket) {
		t.Errorf("topic alias: err %v, want errMalformedPacket", err)
	}
}

func TestFastPath5RejectsMalformedProperties(t *testing.T) {
	for _, tc := range []struct {
		name string
		body []byte // after the fixed header
	}{
		{"property length past the end", []byte{0, 1, 't', 9}},
		{"unknown property", []byte{0, 1, 't', 1, 0x7f}},
		{"string past the end", []byte{0, 1, 't', 3, 0x08, 0, 9}},
		{"four-byte property cut", []byte{0, 1, 't', 3, 0x02, 0, 0}},
		{"user property value cut", []byte{0, 1, 't', 5, 0x26, 0, 0, 0, 5}},
		{"invalid UTF-8 response topic", []byte{0, 1, 't', 4, 0x08, 0, 1, 0xff}},
		{"empty topic", []byte{0, 0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			frame := append([]byte{0x30}, mqttpkt.AppendVarInt(nil, len(tc.body))...)
			if _, _, err := parse5(append(frame, tc.body...)); !errors.Is(err, errMalformedPacket) {
				t.Errorf("err %v, want errMalformedPacket", err)
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

// The MQTT 5 parser never panics, and whatever it delivers paho.golang reads
// the same way from the same bytes.
func FuzzFastPath5(f *testing.F) {
	f.Add(mqttpkt.AppendPublish5(nil, &Message{Topic: "a/b", Payload: []byte("p"), ResponseTopic: "r", CorrelationData: []byte{1, 2}, ExpirySeconds: 3}))
	f.Add([]byte{0x30, 4, 0, 1, 't', 9})
	f.Add([]byte{0x30, 9, 0, 1, 't', 5, 0x26, 0, 0, 0, 5})
	f.Fuzz(func(t *testing.T, stream []byte) {
		if len(stream) > 1<<16 {
			return
		}
		msgs, _, err := parse5(stream)
		if err != nil || len(msgs) != 1 || stream[0] != 0x30 {
			return
		}
		size, ok := mqttpkt.FrameLen(stream)
		if !ok || size != len(stream) {
			return
		}
		cp, perr := packets.ReadPacket(bytes.NewReader(stream))
		if perr != nil {
			return // paho is stricter on some fields (e.g. UTF-8 of other strings)
		}
		pub, ok := cp.Content.(*packets.Publish)
		if !ok {
			t.Fatalf("we read a PUBLISH, paho read %T", cp.Content)
		}
		m := msgs[0]
		if pub.Topic != m.Topic || !bytes.Equal(pub.Payload, m.Payload) || pub.Properties.ResponseTopic != m.ResponseTopic || !bytes.Equal(pub.Properties.CorrelationData, m.CorrelationData) {
			t.Fatalf("we read %+v, paho read %+v %+v", m, pub, pub.Properties)
		}
	})
}
