package mqttpkt

import (
	"bytes"
	"errors"
	"testing"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

func TestVarInt(t *testing.T) {
	tests := []struct {
		name string
		enc  []byte
		v, n int
		err  error
	}{
		{name: "0", enc: []byte{0}, v: 0, n: 1},
		{name: "127", enc: []byte{0x7f}, v: 127, n: 1},
		{name: "128", enc: []byte{0x80, 0x01}, v: 128, n: 2},
		{name: "16383", enc: []byte{0xff, 0x7f}, v: 16383, n: 2},
		{name: "16384", enc: []byte{0x80, 0x80, 0x01}, v: 16384, n: 3},
		{name: "2097151", enc: []byte{0xff, 0xff, 0x7f}, v: 2097151, n: 3},
		{name: "2097152", enc: []byte{0x80, 0x80, 0x80, 0x01}, v: 2097152, n: 4},
		{name: "MaxVarInt", enc: []byte{0xff, 0xff, 0xff, 0x7f}, v: MaxVarInt, n: 4},
		{name: "bytes after it are not read", enc: []byte{0x05, 0xff, 0xff}, v: 5, n: 1},
		{name: "longer than needed", enc: []byte{0x80, 0x00}, v: 0, n: 2},
		{name: "empty", enc: nil, err: ErrShort},
		{name: "cut after one byte", enc: []byte{0x80}, err: ErrShort},
		{name: "cut after three bytes", enc: []byte{0x80, 0x80, 0x80}, err: ErrShort},
		{name: "five bytes", enc: []byte{0x80, 0x80, 0x80, 0x80, 0x01}, err: ErrMalformed},
		{name: "four bytes, all continued", enc: []byte{0xff, 0xff, 0xff, 0xff}, err: ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, n, err := VarInt(tc.enc)
			if !errors.Is(err, tc.err) || v != tc.v || n != tc.n {
				t.Fatalf("VarInt(% x) = %d, %d, %v; want %d, %d, %v", tc.enc, v, n, err, tc.v, tc.n, tc.err)
			}
			if err != nil || tc.name == "longer than needed" {
				return
			}
			if got := AppendVarInt([]byte{0xAA}, tc.v); !bytes.Equal(got, append([]byte{0xAA}, tc.enc[:tc.n]...)) {
				t.Errorf("AppendVarInt(%d) = % x, want % x after the prefix", tc.v, got, tc.enc[:tc.n])
			}
			if got := VarIntLen(tc.v); got != tc.n {
				t.Errorf("VarIntLen(%d) = %d, want %d", tc.v, got, tc.n)
			}
		})
	}
}

func TestHeader(t *testing.T) {
	tests := []struct {
		name    string
		b       []byte
		rl, n   int
		err     error
		size    int  // FrameLen
		frameOK bool // FrameLen
	}{
		{name: "PINGRESP", b: []byte{0xD0, 0x00}, rl: 0, n: 2, size: 2, frameOK: true},
		{name: "PUBLISH of 200 bytes, body not here", b: []byte{0x30, 0xC8, 0x01}, rl: 200, n: 3, size: 203, frameOK: true},
		{name: "empty", b: nil, err: ErrShort},
		{name: "first byte only", b: []byte{0x30}, err: ErrShort},
		{name: "length cut", b: []byte{0x30, 0x80, 0x80}, err: ErrShort},
		{name: "length of five bytes", b: []byte{0x30, 0x80, 0x80, 0x80, 0x80, 0x01}, err: ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rl, n, err := Header(tc.b)
			if !errors.Is(err, tc.err) || rl != tc.rl || n != tc.n {
				t.Errorf("Header(% x) = %d, %d, %v; want %d, %d, %v", tc.b, rl, n, err, tc.rl, tc.n, tc.err)
			}
			size, ok := FrameLen(tc.b)
			if ok != tc.frameOK || ok && size != tc.size {
				t.Errorf("FrameLen(% x) = %d, %v; want %d, %v", tc.b, size, ok, tc.size, tc.frameOK)
			}
		})
	}
}

// pahoRemainingLength returns the fixed header paho.mqtt.golang writes for a
// PINGREQ that claims remaining length v: 0xC0 and v encoded by paho.
func pahoRemainingLength(t *testing.T, v int) []byte {
	t.Helper()
	p := packets.NewControlPacket(packets.Pingreq).(*packets.PingreqPacket)
	p.RemainingLength = v
	var b bytes.Buffer
	if err := p.Write(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// AppendVarInt writes what paho writes, and VarInt reads it back.
func FuzzAppendVarInt(f *testing.F) {
	for _, v := range []uint32{0, 127, 128, 16383, 16384, 2097151, 2097152, MaxVarInt} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v32 uint32) {
		v := int(v32 % (MaxVarInt + 1))
		enc := AppendVarInt(nil, v)
		if want := pahoRemainingLength(t, v)[1:]; !bytes.Equal(enc, want) {
			t.Fatalf("AppendVarInt(%d) = % x, paho writes % x", v, enc, want)
		}
		if VarIntLen(v) != len(enc) {
			t.Fatalf("VarIntLen(%d) = %d, encoding of %d bytes", v, VarIntLen(v), len(enc))
		}
		got, n, err := VarInt(enc)
		if err != nil || got != v || n != len(enc) {
			t.Fatalf("VarInt(% x) = %d, %d, %v; want %d, %d", enc, got, n, err, v, len(enc))
		}
	})
}

// VarInt reads what paho reads: a PINGREQ whose remaining length is b is
// read by paho.mqtt.golang's packet reader as VarInt decodes it, and a cut
// one fails there too.
func FuzzVarInt(f *testing.F) {
	f.Add([]byte{0x00})
	f.Add([]byte{0xC8, 0x01})
	f.Add([]byte{0x80, 0x80, 0x01})
	f.Add([]byte{0x80, 0x00})
	f.Add([]byte{0x80})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, n, err := VarInt(b)
		switch {
		case errors.Is(err, ErrShort):
			// paho runs out of bytes too.
			if _, perr := packets.ReadPacket(bytes.NewReader(append([]byte{0xC0}, b...))); perr == nil {
				t.Fatalf("VarInt(% x): ErrShort, but paho read a packet", b)
			}
		case errors.Is(err, ErrMalformed):
			if len(b) < 4 || b[0]&b[1]&b[2]&b[3]&0x80 == 0 {
				t.Fatalf("VarInt(% x): ErrMalformed, but the first four bytes do not all continue", b)
			}
			// paho stops after four bytes and reads on: no oracle.
		case err != nil:
			t.Fatalf("VarInt(% x): %v", b, err)
		case v > 1<<20:
			// Too large to hand paho a body of that length in a fuzz run.
		default:
			frame := append(append([]byte{0xC0}, b[:n]...), make([]byte, v)...)
			r := bytes.NewReader(frame)
			cp, perr := packets.ReadPacket(r)
			if perr != nil {
				t.Fatalf("VarInt(% x) = %d in %d bytes; paho cannot read that packet: %v", b, v, n, perr)
			}
			if rl := cp.(*packets.PingreqPacket).RemainingLength; rl != v || r.Len() != 0 {
				t.Fatalf("VarInt(% x) = %d in %d bytes; paho reads %d and leaves %d bytes", b, v, n, rl, r.Len())
			}
		}
	})
}
