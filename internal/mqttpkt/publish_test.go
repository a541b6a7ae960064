package mqttpkt

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// TestAppendPublishMatchesPaho decodes our PUBLISH packets with paho's own
// packet reader, across every length of the remaining-length field.
func TestAppendPublishMatchesPaho(t *testing.T) {
	const topic = "req/17"
	overhead := 2 + len(topic) // remaining length = overhead + payload
	tests := []struct {
		name        string
		topic       string
		payloadSize int
		rlBytes     int // bytes of the remaining-length field
	}{
		{name: "empty payload", topic: topic, payloadSize: 0, rlBytes: 1},
		{name: "100 bytes", topic: topic, payloadSize: 100, rlBytes: 1},
		{name: "remaining length 127", topic: topic, payloadSize: 127 - overhead, rlBytes: 1},
		{name: "remaining length 128", topic: topic, payloadSize: 128 - overhead, rlBytes: 2},
		{name: "200 bytes", topic: topic, payloadSize: 200, rlBytes: 2},
		{name: "remaining length 16383", topic: topic, payloadSize: 16383 - overhead, rlBytes: 2},
		{name: "remaining length 16384", topic: topic, payloadSize: 16384 - overhead, rlBytes: 3},
		{name: "20000 bytes", topic: topic, payloadSize: 20000, rlBytes: 3},
		{name: "remaining length 2097151", topic: topic, payloadSize: 2097151 - overhead, rlBytes: 3},
		{name: "remaining length 2097152", topic: topic, payloadSize: 2097152 - overhead, rlBytes: 4},
		{name: "2.1 MB", topic: topic, payloadSize: 2_100_000, rlBytes: 4},
		{name: "long topic", topic: strings.Repeat("a/", 200) + "z", payloadSize: 30, rlBytes: 2},
		{name: "one-byte topic", topic: "t", payloadSize: 1, rlBytes: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			payload := make([]byte, tc.payloadSize)
			for i := range payload {
				payload[i] = byte(i*7 + 3)
			}
			prefix := []byte{0xAA, 0xBB}
			frame := AppendPublish(append([]byte(nil), prefix...), &Message{Topic: tc.topic, Payload: payload})
			if !bytes.HasPrefix(frame, prefix) {
				t.Fatal("AppendPublish overwrote dst")
			}
			frame = frame[len(prefix):]
			if want := 1 + tc.rlBytes + 2 + len(tc.topic) + tc.payloadSize; len(frame) != want {
				t.Fatalf("frame of %d bytes, want %d (remaining length in %d bytes)", len(frame), want, tc.rlBytes)
			}
			if size, ok := FrameLen(frame); !ok || size != len(frame) {
				t.Errorf("FrameLen = %d, %v; want %d", size, ok, len(frame))
			}
			r := bytes.NewReader(frame)
			cp, err := packets.ReadPacket(r)
			if err != nil {
				t.Fatalf("paho ReadPacket: %v", err)
			}
			if r.Len() != 0 {
				t.Errorf("paho left %d bytes unread", r.Len())
			}
			pp, ok := cp.(*packets.PublishPacket)
			if !ok {
				t.Fatalf("paho decoded %T, want *packets.PublishPacket", cp)
			}
			if pp.Qos != 0 || pp.Retain || pp.Dup {
				t.Errorf("flags: qos %d retain %v dup %v, want 0 false false", pp.Qos, pp.Retain, pp.Dup)
			}
			if pp.TopicName != tc.topic {
				t.Errorf("topic %.40q, want %.40q", pp.TopicName, tc.topic)
			}
			if !bytes.Equal(pp.Payload, payload) {
				t.Errorf("payload differs: %d bytes, want %d", len(pp.Payload), len(payload))
			}
		})
	}
}

func TestAppendAllocs(t *testing.T) {
	buf := make([]byte, 0, 1024)
	m := &Message{Topic: "req/17", Payload: make([]byte, 60)}
	m5 := &Message{Topic: "req/17", Payload: make([]byte, 60), ResponseTopic: "resp/lg-0/17", CorrelationData: []byte{1, 2, 3, 4}, ExpirySeconds: 10}
	if n := testing.AllocsPerRun(1000, func() { buf = AppendPublish(buf[:0], m) }); n != 0 {
		t.Errorf("AppendPublish: %v allocs/op with capacity, want 0", n)
	}
	if n := testing.AllocsPerRun(1000, func() { buf = AppendPublish5(buf[:0], m5) }); n != 0 {
		t.Errorf("AppendPublish5: %v allocs/op with capacity, want 0", n)
	}
}

func TestParsePublish(t *testing.T) {
	tests := []struct {
		name    string
		first   byte
		body    []byte
		topic   string
		payload string
		err     error
	}{
		{name: "QoS 0", first: 0x30, body: []byte{0, 3, 'a', '/', 'b', 'h', 'i'}, topic: "a/b", payload: "hi"},
		{name: "QoS 1 skips the packet identifier", first: 0x32, body: []byte{0, 1, 't', 0, 7, 'x'}, topic: "t", payload: "x"},
		{name: "DUP and RETAIN ignored", first: 0x39, body: []byte{0, 1, 't', 'p'}, topic: "t", payload: "p"},
		{name: "empty payload", first: 0x30, body: []byte{0, 1, 't'}, topic: "t"},
		{name: "no topic length", first: 0x30, body: []byte{0}, err: ErrMalformed},
		{name: "topic past the end", first: 0x30, body: []byte{0, 6, 'a', 'b'}, err: ErrMalformed},
		{name: "packet identifier past the end", first: 0x32, body: []byte{0, 1, 't', 0}, err: ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var m Message
			err := ParsePublish(tc.first, tc.body, &m)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if err == nil && (m.Topic != tc.topic || string(m.Payload) != tc.payload) {
				t.Errorf("read %q %q, want %q %q", m.Topic, m.Payload, tc.topic, tc.payload)
			}
		})
	}
}

// ParsePublish and paho.mqtt.golang agree on every whole PUBLISH packet:
// both refuse it, or both read the same topic and payload.
func FuzzParsePublish(f *testing.F) {
	f.Add(AppendPublish(nil, &Message{Topic: "a/b", Payload: []byte("payload")}))
	f.Add([]byte{0x30, 4, 0, 6, 'a', 'b'})
	f.Add([]byte{0x32, 5, 0, 1, 't', 0, 7})
	f.Add([]byte{0x32, 4, 0, 1, 't', 0})
	f.Add([]byte{0x30, 1, 0})
	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) == 0 || len(frame) > 1<<16 || Type(frame[0]) != PUBLISH {
			return
		}
		rl, n, err := Header(frame)
		if err != nil || n+rl != len(frame) {
			return // not one whole packet
		}
		var m Message
		err = ParsePublish(frame[0], frame[n:], &m)
		cp, perr := packets.ReadPacket(bytes.NewReader(frame))
		if (err == nil) != (perr == nil) {
			t.Fatalf("we: %v, paho: %v", err, perr)
		}
		if err != nil {
			return
		}
		pp := cp.(*packets.PublishPacket)
		if pp.TopicName != m.Topic || !bytes.Equal(pp.Payload, m.Payload) {
			t.Fatalf("we read %q % x, paho read %q % x", m.Topic, m.Payload, pp.TopicName, pp.Payload)
		}
	})
}

// Whatever AppendPublish writes, paho.mqtt.golang and ParsePublish read back.
func FuzzAppendPublish(f *testing.F) {
	f.Add("req/17", []byte("payload"))
	f.Add("", []byte{})
	f.Add(strings.Repeat("t", 300), make([]byte, 20000))
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		if len(topic) > MaxFieldBytes {
			return
		}
		frame := AppendPublish(nil, &Message{Topic: topic, Payload: payload})
		rl, n, err := Header(frame)
		if err != nil || n+rl != len(frame) {
			t.Fatalf("Header: %d + %d of %d bytes, %v", n, rl, len(frame), err)
		}
		var m Message
		if err := ParsePublish(frame[0], frame[n:], &m); err != nil || m.Topic != topic || !bytes.Equal(m.Payload, payload) {
			t.Fatalf("ParsePublish: %q % x, %v", m.Topic, m.Payload, err)
		}
		cp, err := packets.ReadPacket(bytes.NewReader(frame))
		if err != nil {
			t.Fatalf("paho: %v", err)
		}
		if pp := cp.(*packets.PublishPacket); pp.TopicName != topic || !bytes.Equal(pp.Payload, payload) || pp.Qos != 0 {
			t.Fatalf("paho read %q % x at QoS %d", pp.TopicName, pp.Payload, pp.Qos)
		}
	})
}
