package wire

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Template is a request payload or topic with placeholders, parsed once and
// filled per request without allocating (AppendTo).
//
// Placeholders (a request's values):
//
//	{{id}}        correlation token of the request (AppendID)
//	{{client}}    virtual client id (decimal)
//	{{seq}}       the client's sequence number (decimal)
//	{{ts}}        intended send time, Unix milliseconds
//	{{instance}}  the loadgen's INSTANCE_ID
//	{{shard}}     the request's topic shard (decimal)
//	{{reply}}     the topic the response is expected on
//
// Anything else between "{{" and "}}" is an error naming it; text outside
// placeholders is copied as is.
type Template struct {
	parts []part
	uses  uint8 // bit set of the placeholders present
}

type placeholder uint8

const (
	literal placeholder = iota
	phID
	phClient
	phSeq
	phTS
	phInstance
	phShard
	phReply
)

var placeholders = map[string]placeholder{
	"id": phID, "client": phClient, "seq": phSeq, "ts": phTS,
	"instance": phInstance, "shard": phShard, "reply": phReply,
}

// PlaceholderNames lists the placeholders a template may use, for messages.
const PlaceholderNames = "{{id}}, {{client}}, {{seq}}, {{ts}}, {{instance}}, {{shard}}, {{reply}}"

type part struct {
	kind placeholder
	text []byte // literal
}

// Fields are the values of one request.
type Fields struct {
	Key Key
	// IDText, when set, is what {{id}} writes instead of Key's token: a
	// responder's template copies the id its request carried.
	IDText   []byte
	UnixMS   int64
	Instance string
	Shard    int
	Reply    string
}

// ParseTemplate parses s. allowed limits the placeholders (nil allows all).
func ParseTemplate(s string, allowed ...string) (*Template, error) {
	t := &Template{}
	rest := s
	for {
		i := strings.Index(rest, "{{")
		if i < 0 {
			if rest != "" {
				t.parts = append(t.parts, part{text: []byte(rest)})
			}
			return t, nil
		}
		if i > 0 {
			t.parts = append(t.parts, part{text: []byte(rest[:i])})
		}
		j := strings.Index(rest[i:], "}}")
		if j < 0 {
			return nil, fmt.Errorf("unclosed placeholder at %q", clip(rest[i:]))
		}
		name := strings.TrimSpace(rest[i+2 : i+j])
		ph, ok := placeholders[name]
		if !ok {
			return nil, fmt.Errorf("unknown placeholder {{%s}} (known: %s)", name, PlaceholderNames)
		}
		if len(allowed) > 0 && !contains(allowed, name) {
			return nil, fmt.Errorf("placeholder {{%s}} not allowed here (allowed: {{%s}})", name, strings.Join(allowed, "}}, {{"))
		}
		t.parts = append(t.parts, part{kind: ph})
		t.uses |= 1 << ph
		rest = rest[i+j+2:]
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func clip(s string) string {
	if len(s) > 30 {
		return s[:30] + "…"
	}
	return s
}

// Uses reports whether the template contains placeholder name (e.g. "id").
func (t *Template) Uses(name string) bool {
	ph, ok := placeholders[name]
	return ok && t.uses&(1<<ph) != 0
}

// Static reports whether the template has no placeholder.
func (t *Template) Static() bool { return t.uses == 0 }

// AppendTo appends the template filled with f.
func (t *Template) AppendTo(dst []byte, f *Fields) []byte {
	for i := range t.parts {
		p := &t.parts[i]
		switch p.kind {
		case literal:
			dst = append(dst, p.text...)
		case phID:
			if f.IDText != nil {
				dst = append(dst, f.IDText...)
			} else {
				dst = AppendID(dst, f.Key)
			}
		case phClient:
			dst = strconv.AppendUint(dst, uint64(f.Key.ClientID), 10)
		case phSeq:
			dst = strconv.AppendUint(dst, uint64(f.Key.Seq), 10)
		case phTS:
			dst = strconv.AppendInt(dst, f.UnixMS, 10)
		case phInstance:
			dst = append(dst, f.Instance...)
		case phShard:
			dst = strconv.AppendInt(dst, int64(f.Shard), 10)
		case phReply:
			dst = append(dst, f.Reply...)
		}
	}
	return dst
}

// String fills the template (for topics, made once per shard).
func (t *Template) String(f *Fields) string { return string(t.AppendTo(nil, f)) }

// HasWildcard reports whether a topic template's literal text contains an
// MQTT wildcard ('+' or '#'), which a topic name must not.
func (t *Template) HasWildcard() bool {
	for _, p := range t.parts {
		if p.kind == literal && bytes.ContainsAny(p.text, "+#") {
			return true
		}
	}
	return false
}

// MaxTemplateBytes is the largest template a variable may give (1 MiB).
const MaxTemplateBytes = 1 << 20

// ReadTemplate parses the template a variable gives (name=value): its text,
// or the file at path for "@path". It returns nil for an empty value (the
// caller's default applies). The errors name the variable and its value.
func ReadTemplate(name, value string, allowed ...string) (*Template, error) {
	text := value
	if strings.HasPrefix(text, "@") {
		b, err := os.ReadFile(text[1:])
		if err != nil {
			return nil, fmt.Errorf("%s=%q: %w", name, value, err)
		}
		text = string(b)
	}
	if text == "" {
		return nil, nil
	}
	if len(text) > MaxTemplateBytes {
		return nil, fmt.Errorf("%s=%q is %d bytes, more than %d", name, clip(value), len(text), MaxTemplateBytes)
	}
	t, err := ParseTemplate(text, allowed...)
	if err != nil {
		return nil, fmt.Errorf("%s=%q: %w", name, clip(value), err)
	}
	return t, nil
}
