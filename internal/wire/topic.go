package wire

import (
	"bytes"
	"strings"
	"unicode/utf8"
)

// Topics: request shards, shared subscriptions and what may be a topic name.

// Shard returns the request shard of a virtual client: clientID mod shards.
func Shard(clientID uint32, shards int) int { return int(clientID % uint32(shards)) }

// SharedFilter returns "$share/{group}/{filter}", or filter itself when group
// is empty (plain subscription, for brokers without shared subscriptions).
func SharedFilter(group, filter string) string {
	if group == "" {
		return filter
	}
	return "$share/" + group + "/" + filter
}

// ValidTopicName reports whether s can be used as an MQTT topic name segment
// (instance ids go into topic names): 1..MaxInstanceLen bytes of valid UTF-8,
// free of the wildcards '+' and '#', the separator '/', and of control
// characters (U+0000..U+001F, U+007F..U+009F), which MQTT forbids or
// discourages in topic names and brokers answer by closing the connection.
func ValidTopicName(s string) bool {
	if s == "" || len(s) > MaxInstanceLen || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		switch {
		case r == '+', r == '#', r == '/', r < 0x20, r >= 0x7f && r <= 0x9f:
			return false
		}
	}
	return true
}

// ValidReplyTopic reports whether t can be published to: a non-empty MQTT
// topic name without the wildcards '+' and '#', in well-formed UTF-8 without
// U+0000, control characters (U+0001..U+001F, U+007F..U+009F) or
// non-characters (U+FDD0..U+FDEF, U+xFFFE, U+xFFFF).
//
// A PUBLISH to any other name is a protocol violation for which the broker
// (Mosquitto in particular) closes the connection, losing every reply
// buffered with it; so a request naming such a reply topic is counted as
// malformed and never answered. The check allocates nothing.
func ValidReplyTopic(t []byte) bool {
	if len(t) == 0 || len(t) > MaxTopicLen {
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

// MatchFilter reports whether topic matches the MQTT topic filter f ('+'
// one level, '#' the rest, as a subscription would; a topic starting with
// '$' is matched by no wildcard in the first level). It allocates nothing.
func MatchFilter(f string, topic []byte) bool {
	if len(topic) > 0 && topic[0] == '$' && len(f) > 0 && (f[0] == '+' || f[0] == '#') {
		return false
	}
	for {
		level, rest, more := strings.Cut(f, "/")
		if level == "#" {
			return true
		}
		i := bytes.IndexByte(topic, '/')
		tl := topic
		if i >= 0 {
			tl = topic[:i]
		}
		if level != "+" && level != string(tl) {
			return false
		}
		switch {
		case !more && i < 0:
			return true
		case !more:
			return false
		case i < 0:
			return rest == "#" // "a/#" matches "a"
		}
		f, topic = rest, topic[i+1:]
	}
}

// ValidFilter reports whether f is a well-formed MQTT topic filter: '+' and
// '#' only as whole levels, '#' only last.
func ValidFilter(f string) bool {
	if f == "" || len(f) > MaxTopicLen || !utf8.ValidString(f) {
		return false
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		switch {
		case l == "#" && i != len(levels)-1:
			return false
		case l != "+" && l != "#" && strings.ContainsAny(l, "+#"):
			return false
		}
	}
	return true
}
