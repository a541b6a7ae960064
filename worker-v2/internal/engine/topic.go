package engine

import "unicode/utf8"

// validReplyTopic reports whether t can be published to: a non-empty MQTT
// topic name without the wildcards '+' and '#', in well-formed UTF-8 without
// U+0000, control characters (U+0001..U+001F, U+007F..U+009F) or
// non-characters (U+FDD0..U+FDEF, U+xFFFE, U+xFFFF).
//
// A PUBLISH to any other name is a protocol violation for which the broker
// (Mosquitto in particular) closes the connection, losing every reply
// buffered with it; so a request carrying such a reply topic is counted as
// malformed and never answered. The check allocates nothing.
func validReplyTopic(t []byte) bool {
	if len(t) == 0 {
		return false
	}
	for i := 0; i < len(t); {
		c := t[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f || c == '+' || c == '#' {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(t[i:])
		if r == utf8.RuneError && n <= 1 {
			return false
		}
		if r <= 0x9f || (r >= 0xfdd0 && r <= 0xfdef) || r&0xfffe == 0xfffe {
			return false
		}
		i += n
	}
	return true
}
