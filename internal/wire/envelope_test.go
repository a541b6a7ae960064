package wire_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/wire"
)

func sampleRequest() wire.Request {
	return wire.Request{
		RunID:      0xdeadbeef,
		ClientID:   123456,
		Seq:        42,
		Intended:   1_700_000_000_123_456_789,
		Instance:   []byte("loadgen-3"),
		ReplyTopic: []byte("resp/loadgen-3/17"),
	}
}

func sampleResponse() wire.Response {
	return wire.Response{
		RunID:     0xdeadbeef,
		ClientID:  123456,
		Seq:       42,
		Intended:  -5, // opaque to the format: negative values must survive too
		QueueUS:   1234,
		ProcessUS: math.MaxUint32,
	}
}

func TestRequestRoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(r *wire.Request)
		padding int
	}{
		{name: "typical", mutate: func(*wire.Request) {}},
		{name: "padding", mutate: func(*wire.Request) {}, padding: 1000},
		{name: "empty instance", mutate: func(r *wire.Request) { r.Instance = nil }},
		{name: "max instance", mutate: func(r *wire.Request) { r.Instance = bytes.Repeat([]byte{'i'}, wire.MaxInstanceLen) }},
		{name: "one byte topic", mutate: func(r *wire.Request) { r.ReplyTopic = []byte{'t'} }},
		{name: "max topic", mutate: func(r *wire.Request) { r.ReplyTopic = bytes.Repeat([]byte{'t'}, wire.MaxTopicLen) }},
		{name: "extreme numbers", mutate: func(r *wire.Request) {
			r.RunID, r.ClientID, r.Seq, r.Intended = math.MaxUint32, math.MaxUint32, math.MaxUint32, math.MinInt64
		}},
		{name: "zero numbers", mutate: func(r *wire.Request) { r.RunID, r.ClientID, r.Seq, r.Intended = 0, 0, 0, 0 }},
		{name: "negative padding is none", mutate: func(*wire.Request) {}, padding: -3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := sampleRequest()
			tc.mutate(&in)
			prefix := []byte("prefix")
			b, err := wire.AppendRequest(append([]byte(nil), prefix...), &in, tc.padding)
			if err != nil {
				t.Fatalf("AppendRequest: %v", err)
			}
			if !bytes.HasPrefix(b, prefix) {
				t.Fatalf("AppendRequest overwrote dst prefix")
			}
			b = b[len(prefix):]
			want := wire.RequestSize(len(in.Instance), len(in.ReplyTopic), max(tc.padding, 0))
			if len(b) != want {
				t.Fatalf("encoded %d bytes, RequestSize says %d", len(b), want)
			}
			var out wire.Request
			if err := wire.DecodeRequest(b, &out); err != nil {
				t.Fatalf("DecodeRequest: %v", err)
			}
			assertRequestEqual(t, out, in)
			if pad := b[len(b)-max(tc.padding, 0):]; bytes.ContainsFunc(pad, func(r rune) bool { return r != 0 }) {
				t.Errorf("padding is not zero bytes")
			}
		})
	}
}

func assertRequestEqual(t *testing.T, got, want wire.Request) {
	t.Helper()
	if got.RunID != want.RunID || got.ClientID != want.ClientID || got.Seq != want.Seq || got.Intended != want.Intended {
		t.Errorf("numbers: got %+v, want %+v", got, want)
	}
	if !bytes.Equal(got.Instance, want.Instance) {
		t.Errorf("instance: got %q, want %q", got.Instance, want.Instance)
	}
	if !bytes.Equal(got.ReplyTopic, want.ReplyTopic) {
		t.Errorf("reply topic: got %d bytes %.40q, want %d bytes %.40q", len(got.ReplyTopic), got.ReplyTopic, len(want.ReplyTopic), want.ReplyTopic)
	}
}

// TestRequestLayout pins the documented byte layout, so that a change of the
// format is deliberate (the worker and the loadgen may be deployed apart).
func TestRequestLayout(t *testing.T) {
	r := wire.Request{RunID: 0x01020304, ClientID: 0x05060708, Seq: 0x090a0b0c, Intended: 0x0d0e0f1011121314, Instance: []byte("ab"), ReplyTopic: []byte("xyz")}
	b, err := wire.AppendRequest(nil, &r, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{
		1, 1,
		1, 2, 3, 4,
		5, 6, 7, 8,
		9, 10, 11, 12,
		13, 14, 15, 16, 17, 18, 19, 20,
		2, 'a', 'b',
		0, 3, 'x', 'y', 'z',
		0, 0,
	}
	if !bytes.Equal(b, want) {
		t.Errorf("layout:\n got % x\nwant % x", b, want)
	}
}

func TestResponseRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		in   wire.Response
	}{
		{name: "typical", in: sampleResponse()},
		{name: "zero", in: wire.Response{}},
		{name: "max", in: wire.Response{RunID: math.MaxUint32, ClientID: math.MaxUint32, Seq: math.MaxUint32, Intended: math.MaxInt64, QueueUS: math.MaxUint32, ProcessUS: math.MaxUint32}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := wire.AppendResponse([]byte("p"), &tc.in)
			if len(b) != 1+wire.ResponseSize || b[0] != 'p' {
				t.Fatalf("AppendResponse gave %d bytes (want 1 + %d) or lost the prefix", len(b), wire.ResponseSize)
			}
			var out wire.Response
			if err := wire.DecodeResponse(b[1:], &out); err != nil {
				t.Fatalf("DecodeResponse: %v", err)
			}
			if out != tc.in {
				t.Errorf("got %+v, want %+v", out, tc.in)
			}
		})
	}
}

func TestDecodeRequestMalformed(t *testing.T) {
	valid := func() []byte {
		r := sampleRequest()
		b, err := wire.AppendRequest(nil, &r, 0)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	n := len(sampleRequest().Instance)
	tests := []struct {
		name string
		b    []byte
		msg  string // substring of the error
	}{
		{name: "nil", b: nil, msg: "need at least"},
		{name: "one byte", b: []byte{1}, msg: "need at least"},
		{name: "fixed part minus one", b: valid()[:24], msg: "need at least"},
		{name: "wrong version 0", b: func() []byte { b := valid(); b[0] = 0; return b }(), msg: "version"},
		{name: "wrong version 2", b: func() []byte { b := valid(); b[0] = 2; return b }(), msg: "version"},
		{name: "response kind", b: func() []byte { b := valid(); b[1] = wire.KindResponse; return b }(), msg: "not a request"},
		{name: "kind 0", b: func() []byte { b := valid(); b[1] = 0; return b }(), msg: "not a request"},
		{name: "instance length past the end", b: func() []byte { b := valid(); b[22] = 255; return b }(), msg: "instance"},
		{name: "instance cut", b: valid()[:23+n], msg: "instance"},
		{name: "topic length past the end", b: func() []byte { b := valid(); binary.BigEndian.PutUint16(b[23+n:], 65535); return b }(), msg: "reply topic"},
		{name: "topic cut by one", b: func() []byte { b := valid(); return b[:len(b)-1] }(), msg: "reply topic"},
		{name: "empty reply topic", b: func() []byte { b := valid(); binary.BigEndian.PutUint16(b[23+n:], 0); return b }(), msg: "empty reply topic"},
		{name: "all zero 25 bytes", b: make([]byte, 25), msg: "version"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r wire.Request
			err := wire.DecodeRequest(tc.b, &r)
			if !errors.Is(err, wire.ErrMalformed) {
				t.Fatalf("DecodeRequest(% x) = %v, want an error wrapping ErrMalformed", tc.b, err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not mention %q", err, tc.msg)
			}
		})
	}
}

func TestDecodeResponseMalformed(t *testing.T) {
	valid := func() []byte { r := sampleResponse(); return wire.AppendResponse(nil, &r) }
	tests := []struct {
		name string
		b    []byte
		msg  string
	}{
		{name: "nil", b: nil, msg: "want 30"},
		{name: "short by one", b: valid()[:wire.ResponseSize-1], msg: "want 30"},
		{name: "trailing byte", b: append(valid(), 0), msg: "want 30"},
		{name: "two responses", b: append(valid(), valid()...), msg: "want 30"},
		{name: "wrong version", b: func() []byte { b := valid(); b[0] = 9; return b }(), msg: "version"},
		{name: "request kind", b: func() []byte { b := valid(); b[1] = wire.KindRequest; return b }(), msg: "not a response"},
		{name: "a request", b: func() []byte {
			r := sampleRequest()
			b, _ := wire.AppendRequest(nil, &r, 0)
			return b
		}(), msg: "want 30"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r wire.Response
			err := wire.DecodeResponse(tc.b, &r)
			if !errors.Is(err, wire.ErrMalformed) {
				t.Fatalf("DecodeResponse(% x) = %v, want an error wrapping ErrMalformed", tc.b, err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not mention %q", err, tc.msg)
			}
		})
	}
}

func TestAppendRequestTooLong(t *testing.T) {
	tests := []struct {
		name     string
		instance []byte
		topic    []byte
	}{
		{name: "instance 256", instance: bytes.Repeat([]byte{'i'}, wire.MaxInstanceLen+1), topic: []byte("t")},
		{name: "topic 65536", instance: []byte("i"), topic: bytes.Repeat([]byte{'t'}, wire.MaxTopicLen+1)},
		{name: "empty topic", instance: []byte("i"), topic: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := wire.Request{Instance: tc.instance, ReplyTopic: tc.topic}
			dst := []byte("keep")
			out, err := wire.AppendRequest(dst, &r, 10)
			if !errors.Is(err, wire.ErrTooLong) {
				t.Fatalf("AppendRequest error = %v, want ErrTooLong", err)
			}
			if string(out) != "keep" {
				t.Errorf("AppendRequest changed dst on error: %q", out)
			}
		})
	}
}

func TestMicros(t *testing.T) {
	tests := []struct {
		name string
		d    time.Duration
		want uint32
	}{
		{name: "zero", d: 0, want: 0},
		{name: "sub-microsecond truncates", d: 999 * time.Nanosecond, want: 0},
		{name: "one microsecond", d: time.Microsecond, want: 1},
		{name: "1.5 ms", d: 1500 * time.Microsecond, want: 1500},
		{name: "negative", d: -time.Second, want: 0},
		{name: "min duration", d: math.MinInt64, want: 0},
		{name: "exactly max", d: time.Duration(math.MaxUint32) * time.Microsecond, want: math.MaxUint32},
		{name: "just over max", d: time.Duration(math.MaxUint32+1) * time.Microsecond, want: math.MaxUint32},
		{name: "two hours", d: 2 * time.Hour, want: math.MaxUint32},
		{name: "max duration", d: math.MaxInt64, want: math.MaxUint32},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := wire.Micros(tc.d); got != tc.want {
				t.Errorf("Micros(%v) = %d, want %d", tc.d, got, tc.want)
			}
		})
	}
}

// TestZeroAllocs asserts the documented "does not allocate" of the hot path
// (allocation counts are deterministic, unlike timings).
func TestZeroAllocs(t *testing.T) {
	req := sampleRequest()
	resp := sampleResponse()
	buf := make([]byte, 0, 4096)
	reqBytes, _ := wire.AppendRequest(nil, &req, 100)
	respBytes := wire.AppendResponse(nil, &resp)
	tests := []struct {
		name string
		fn   func()
	}{
		{name: "AppendRequest", fn: func() { _, _ = wire.AppendRequest(buf[:0], &req, 100) }},
		{name: "DecodeRequest", fn: func() { var r wire.Request; _ = wire.DecodeRequest(reqBytes, &r) }},
		{name: "AppendResponse", fn: func() { _ = wire.AppendResponse(buf[:0], &resp) }},
		{name: "DecodeResponse", fn: func() { var r wire.Response; _ = wire.DecodeResponse(respBytes, &r) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(1000, tc.fn); n != 0 {
				t.Errorf("%s: %v allocs/op, want 0", tc.name, n)
			}
		})
	}
}

func FuzzDecodeRequest(f *testing.F) {
	for _, pad := range []int{0, 1, 17} {
		r := sampleRequest()
		b, _ := wire.AppendRequest(nil, &r, pad)
		f.Add(b)
	}
	r := sampleRequest()
	r.Instance = nil
	r.ReplyTopic = []byte("x")
	b, _ := wire.AppendRequest(nil, &r, 0)
	f.Add(b)
	f.Add([]byte{})
	f.Add(make([]byte, 25))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r wire.Request
		if err := wire.DecodeRequest(b, &r); err != nil {
			if !errors.Is(err, wire.ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		used := wire.RequestSize(len(r.Instance), len(r.ReplyTopic), 0)
		if used > len(b) {
			t.Fatalf("decoded fields need %d bytes, payload has %d", used, len(b))
		}
		enc, err := wire.AppendRequest(nil, &r, len(b)-used)
		if err != nil {
			t.Fatalf("re-encoding a decoded request: %v", err)
		}
		if len(enc) != len(b) || !bytes.Equal(enc[:used], b[:used]) {
			t.Fatalf("re-encoding differs:\n got % x\nfrom % x", enc[:used], b[:used])
		}
		var r2 wire.Request
		if err := wire.DecodeRequest(enc, &r2); err != nil {
			t.Fatalf("decoding the re-encoding: %v", err)
		}
		assertRequestEqual(t, r2, r)
	})
}

func FuzzDecodeResponse(f *testing.F) {
	for _, r := range []wire.Response{sampleResponse(), {}} {
		f.Add(wire.AppendResponse(nil, &r))
	}
	f.Add([]byte{})
	f.Add(make([]byte, 31))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r wire.Response
		if err := wire.DecodeResponse(b, &r); err != nil {
			if !errors.Is(err, wire.ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		enc := wire.AppendResponse(nil, &r)
		if !bytes.Equal(enc, b) {
			t.Fatalf("re-encoding differs:\n got % x\nfrom % x", enc, b)
		}
		var r2 wire.Response
		if err := wire.DecodeResponse(enc, &r2); err != nil {
			t.Fatalf("decoding the re-encoding: %v", err)
		}
		if r2 != r {
			t.Fatalf("got %+v, want %+v", r2, r)
		}
	})
}

var sink []byte

func BenchmarkAppendRequest(b *testing.B) {
	r := sampleRequest()
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = wire.AppendRequest(buf[:0], &r, 64)
	}
	sink = buf
}

func BenchmarkDecodeRequest(b *testing.B) {
	r := sampleRequest()
	p, _ := wire.AppendRequest(nil, &r, 64)
	var out wire.Request
	b.ReportAllocs()
	for b.Loop() {
		if err := wire.DecodeRequest(p, &out); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendResponse(b *testing.B) {
	r := sampleResponse()
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		buf = wire.AppendResponse(buf[:0], &r)
	}
	sink = buf
}

func BenchmarkDecodeResponse(b *testing.B) {
	r := sampleResponse()
	p := wire.AppendResponse(nil, &r)
	var out wire.Response
	b.ReportAllocs()
	for b.Loop() {
		if err := wire.DecodeResponse(p, &out); err != nil {
			b.Fatal(err)
		}
	}
}
