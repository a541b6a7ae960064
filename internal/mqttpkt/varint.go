package mqttpkt

// The variable byte integer (MQTT 3.1.1 §2.2.3, MQTT 5.0 §1.5.5) holds
// 0..268,435,455 in one to four bytes, seven bits per byte, least
// significant group first; the high bit of a byte says another follows:
//
//	v = b0&0x7f + (b1&0x7f)·128 + (b2&0x7f)·128² + (b3&0x7f)·128³
//
// It encodes a packet's remaining length and, in MQTT 5, the length of its
// properties and some property values. This file has the one decoder every
// reader of such an integer uses.

// MaxVarInt is the largest value a variable byte integer holds (2^28 - 1).
const MaxVarInt = 1<<28 - 1

// VarInt decodes the variable byte integer at the start of b and returns its
// value and how many bytes it took. It returns ErrShort when b ends before
// the integer does and ErrMalformed when the integer runs past four bytes.
// An encoding longer than needed (0x80 0x00 for 0) is accepted, as paho
// accepts it.
func VarInt(b []byte) (v, n int, err error) {
	for i := range 4 {
		if i == len(b) {
			return 0, 0, ErrShort
		}
		d := b[i]
		v |= int(d&0x7f) << (7 * i)
		if d < 0x80 {
			return v, i + 1, nil
		}
	}
	return 0, 0, ErrMalformed
}

// AppendVarInt appends v (0 ≤ v ≤ MaxVarInt) as a variable byte integer in
// the fewest bytes.
func AppendVarInt(dst []byte, v int) []byte {
	for v >= 0x80 {
		dst = append(dst, byte(v)|0x80)
		v >>= 7
	}
	return append(dst, byte(v))
}

// VarIntLen returns how many bytes AppendVarInt takes for v.
func VarIntLen(v int) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// Header decodes the fixed header at the start of b (its first byte, then
// the remaining length) and returns the remaining length rl and the header's
// length n (2..5 bytes): the packet is b[:n+rl], its body b[n:n+rl]. It
// returns ErrShort when b ends before the header does and ErrMalformed when
// the remaining length runs past four bytes.
func Header(b []byte) (rl, n int, err error) {
	if len(b) == 0 {
		return 0, 0, ErrShort
	}
	rl, n, err = VarInt(b[1:])
	if err != nil {
		return 0, 0, err
	}
	return rl, 1 + n, nil
}

// FrameLen returns the length of the whole packet at the start of b (which
// may extend past b), read from its fixed header; ok is false when the
// header is incomplete or malformed.
func FrameLen(b []byte) (size int, ok bool) {
	rl, n, err := Header(b)
	return n + rl, err == nil
}
