package mqttpkt

import (
	"bytes"
	"errors"
	"testing"
	"unicode/utf8"

	"github.com/eclipse/paho.golang/packets"
)

// pahoPublish5 encodes a PUBLISH with paho.golang's own encoder (the oracle
// of these tests).
func pahoPublish5(t testing.TB, qos byte, topic string, payload []byte, props *packets.Properties) []byte {
	t.Helper()
	cp := packets.NewControlPacket(packets.PUBLISH)
	pub := cp.Content.(*packets.Publish)
	pub.QoS, pub.Topic, pub.Payload = qos, topic, payload
	if qos > 0 {
		pub.PacketID = 7
	}
	if props != nil {
		pub.Properties = props
	}
	var w bytes.Buffer
	if _, err := cp.WriteTo(&w); err != nil {
		t.Fatal(err)
	}
	return w.Bytes()
}

// parse5 parses a whole MQTT 5 PUBLISH packet.
func parse5(frame []byte) (Message, error) {
	var m Message
	rl, n, err := Header(frame)
	if err != nil || n+rl != len(frame) {
		return m, ErrMalformed
	}
	return m, ParsePublish5(frame[0], frame[n:], &m)
}

func TestAppendPublish5MatchesPaho(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    Message
	}{
		{"no properties", Message{Topic: "req/7", Payload: []byte("hello")}},
		{"request", Message{Topic: "req/7", Payload: []byte("{}"), ResponseTopic: "resp/lg-0/7", CorrelationData: []byte{0, 1, 2, 3}, ExpirySeconds: 10}},
		{"empty payload, empty correlation", Message{Topic: "t", ResponseTopic: "r", CorrelationData: []byte{}}},
		{"long payload", Message{Topic: "req/1", Payload: bytes.Repeat([]byte("x"), 20000), CorrelationData: []byte("c")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			frame := AppendPublish5(nil, &tc.m)
			cp, err := packets.ReadPacket(bytes.NewReader(frame))
			if err != nil {
				t.Fatalf("paho.golang cannot read our frame: %v", err)
			}
			pub, ok := cp.Content.(*packets.Publish)
			if !ok || pub.QoS != 0 || pub.Topic != tc.m.Topic || !bytes.Equal(pub.Payload, tc.m.Payload) {
				t.Fatalf("paho read %+v", cp.Content)
			}
			p := pub.Properties
			if p.ResponseTopic != tc.m.ResponseTopic || !bytes.Equal(p.CorrelationData, tc.m.CorrelationData) ||
				(tc.m.CorrelationData != nil) != (p.CorrelationData != nil) {
				t.Errorf("properties: %+v", p)
			}
			if (tc.m.ExpirySeconds > 0) != (p.MessageExpiry != nil) || p.MessageExpiry != nil && *p.MessageExpiry != tc.m.ExpirySeconds {
				t.Errorf("expiry: %v", p.MessageExpiry)
			}
			m, err := parse5(frame)
			if err != nil || m.Topic != tc.m.Topic || !bytes.Equal(m.Payload, tc.m.Payload) || m.ResponseTopic != tc.m.ResponseTopic ||
				!bytes.Equal(m.CorrelationData, tc.m.CorrelationData) || m.ExpirySeconds != tc.m.ExpirySeconds {
				t.Errorf("ParsePublish5 read back %+v, %v", m, err)
			}
		})
	}
}

func TestParsePublish5ReadsPahosFrames(t *testing.T) {
	format, exp, subID := byte(1), uint32(30), 300
	tests := []struct {
		name  string
		frame []byte
		want  Message
	}{
		{
			name:  "request properties",
			frame: pahoPublish5(t, 0, "resp/a/1", []byte("one"), &packets.Properties{ResponseTopic: "back/1", CorrelationData: []byte{9, 8, 7}}),
			want:  Message{Topic: "resp/a/1", Payload: []byte("one"), ResponseTopic: "back/1", CorrelationData: []byte{9, 8, 7}},
		},
		{
			// Every other property a PUBLISH may carry is skipped.
			name: "every PUBLISH property",
			frame: pahoPublish5(t, 0, "resp/a/2", []byte("two"), &packets.Properties{
				PayloadFormat: &format, MessageExpiry: &exp, ContentType: "application/json", CorrelationData: []byte("id-2"),
				User: []packets.User{{Key: "k", Value: "v"}, {Key: "", Value: ""}}, ResponseTopic: "back/2", SubscriptionIdentifier: &subID,
			}),
			want: Message{Topic: "resp/a/2", Payload: []byte("two"), ResponseTopic: "back/2", CorrelationData: []byte("id-2"), ExpirySeconds: 30},
		},
		{
			name:  "no properties",
			frame: pahoPublish5(t, 0, "resp/a/3", bytes.Repeat([]byte("x"), 300), nil),
			want:  Message{Topic: "resp/a/3", Payload: bytes.Repeat([]byte("x"), 300)},
		},
		{
			name:  "QoS 1",
			frame: pahoPublish5(t, 1, "req/1", []byte("q"), &packets.Properties{CorrelationData: []byte{1}}),
			want:  Message{Topic: "req/1", Payload: []byte("q"), CorrelationData: []byte{1}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := parse5(tc.frame)
			if err != nil {
				t.Fatal(err)
			}
			if m.Topic != tc.want.Topic || !bytes.Equal(m.Payload, tc.want.Payload) || m.ResponseTopic != tc.want.ResponseTopic ||
				!bytes.Equal(m.CorrelationData, tc.want.CorrelationData) || m.ExpirySeconds != tc.want.ExpirySeconds {
				t.Errorf("read %+v, want %+v", m, tc.want)
			}
		})
	}
}

func TestParsePublish5Refuses(t *testing.T) {
	alias := uint16(3)
	for _, tc := range []struct {
		name  string
		first byte
		body  []byte // after the fixed header
	}{
		{"no topic length", 0x30, []byte{0}},
		{"topic past the end", 0x30, []byte{0, 6, 'a'}},
		{"packet identifier past the end", 0x32, []byte{0, 1, 't', 0}},
		{"no property length", 0x30, []byte{0, 1, 't'}},
		{"property length past the end", 0x30, []byte{0, 1, 't', 9}},
		{"unknown property", 0x30, []byte{0, 1, 't', 1, 0x7f}},
		{"string past the end", 0x30, []byte{0, 1, 't', 3, 0x08, 0, 9}},
		{"four-byte property cut", 0x30, []byte{0, 1, 't', 3, 0x02, 0, 0}},
		{"variable byte integer property cut", 0x30, []byte{0, 1, 't', 2, 0x0B, 0x80}},
		{"user property value cut", 0x30, []byte{0, 1, 't', 5, 0x26, 0, 0, 0, 5}},
		{"invalid UTF-8 response topic", 0x30, []byte{0, 1, 't', 4, 0x08, 0, 1, 0xff}},
		{"empty topic", 0x30, []byte{0, 0, 0}},
		{"topic alias", 0x30, pahoPublish5(t, 0, "t", nil, &packets.Properties{TopicAlias: &alias})[2:]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m Message
			if err := ParsePublish5(tc.first, tc.body, &m); !errors.Is(err, ErrMalformed) {
				t.Errorf("err %v, want ErrMalformed", err)
			}
		})
	}
}

// Whatever ParsePublish5 reads from a whole packet, paho.golang reads the
// same way from the same bytes (when paho reads it at all: it is stricter
// on some fields, e.g. properties a PUBLISH may not carry).
func FuzzParsePublish5(f *testing.F) {
	f.Add(AppendPublish5(nil, &Message{Topic: "a/b", Payload: []byte("p"), ResponseTopic: "r", CorrelationData: []byte{1, 2}, ExpirySeconds: 3}))
	f.Add([]byte{0x30, 4, 0, 1, 't', 9})
	f.Add([]byte{0x30, 9, 0, 1, 't', 5, 0x26, 0, 0, 0, 5})
	f.Add([]byte{0x32, 8, 0, 1, 't', 0, 7, 2, 0x01, 1})
	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) == 0 || len(frame) > 1<<16 || Type(frame[0]) != PUBLISH {
			return
		}
		m, err := parse5(frame)
		if err != nil {
			return
		}
		cp, perr := packets.ReadPacket(bytes.NewReader(frame))
		if perr != nil {
			return
		}
		pub, ok := cp.Content.(*packets.Publish)
		if !ok {
			t.Fatalf("we read a PUBLISH, paho read %T", cp.Content)
		}
		exp := uint32(0)
		if pub.Properties.MessageExpiry != nil {
			exp = *pub.Properties.MessageExpiry
		}
		if pub.Topic != m.Topic || !bytes.Equal(pub.Payload, m.Payload) || pub.Properties.ResponseTopic != m.ResponseTopic ||
			!bytes.Equal(pub.Properties.CorrelationData, m.CorrelationData) || exp != m.ExpirySeconds {
			t.Fatalf("we read %+v, paho read %+v %+v", m, pub, pub.Properties)
		}
	})
}

// Whatever AppendPublish5 writes, paho.golang and ParsePublish5 read back.
func FuzzAppendPublish5(f *testing.F) {
	f.Add("req/7", []byte("{}"), "resp/lg-0/7", []byte{0, 1, 2, 3}, true, uint32(10))
	f.Add("t", []byte{}, "", []byte{}, true, uint32(0))
	f.Add("t", []byte("x"), "r", []byte(nil), false, uint32(1))
	f.Fuzz(func(t *testing.T, topic string, payload []byte, responseTopic string, corr []byte, withCorr bool, expiry uint32) {
		if len(topic) > MaxFieldBytes || len(responseTopic) > MaxFieldBytes || len(corr) > MaxFieldBytes {
			return
		}
		in := Message{Topic: topic, Payload: payload, ResponseTopic: responseTopic, ExpirySeconds: expiry}
		if withCorr {
			in.CorrelationData = append([]byte{}, corr...)
		}
		frame := AppendPublish5(nil, &in)
		if size, ok := FrameLen(frame); !ok || size != len(frame) {
			t.Fatalf("FrameLen = %d, %v; frame of %d bytes", size, ok, len(frame))
		}
		cp, err := packets.ReadPacket(bytes.NewReader(frame))
		if err != nil {
			t.Fatalf("paho: %v", err)
		}
		pub := cp.Content.(*packets.Publish)
		p := pub.Properties
		if pub.Topic != topic || !bytes.Equal(pub.Payload, payload) || p.ResponseTopic != responseTopic ||
			!bytes.Equal(p.CorrelationData, in.CorrelationData) || (expiry > 0) != (p.MessageExpiry != nil) ||
			p.MessageExpiry != nil && *p.MessageExpiry != expiry {
			t.Fatalf("wrote %+v, paho read %+v %+v", in, pub, p)
		}
		if topic == "" || !utf8.ValidString(responseTopic) {
			return // ParsePublish5 refuses these (see its doc)
		}
		m, err := parse5(frame)
		if err != nil || m.Topic != topic || !bytes.Equal(m.Payload, payload) || m.ResponseTopic != responseTopic ||
			!bytes.Equal(m.CorrelationData, in.CorrelationData) || (m.CorrelationData != nil) != withCorr || m.ExpirySeconds != expiry {
			t.Fatalf("wrote %+v, read back %+v, %v", in, m, err)
		}
	})
}
