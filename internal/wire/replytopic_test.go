package wire

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestValidReplyTopic(t *testing.T) {
	cases := []struct {
		name  string
		topic string
		want  bool
	}{
		{"plain", "resp/loadgen-1/17", true},
		{"unicode", "resp/zürich/日本", true},
		{"leading slash", "/resp", true},
		{"empty level", "resp//1", true},
		{"empty", "", false},
		{"plus", "resp/+/1", false},
		{"hash", "resp/#", false},
		{"lone plus", "+", false},
		{"plus inside a level", "resp/a+b", false},
		{"NUL", "resp/a\x00b", false},
		{"control", "resp/a\nb", false},
		{"DEL", "resp/\x7f", false},
		{"C1 control", "resp/\u0085", false},
		{"invalid UTF-8", "resp/\xff\xfe", false},
		{"truncated UTF-8", "resp/\xe6\x97", false},
		{"surrogate", "resp/\xed\xa0\x80", false},
		{"non-character FDD0", "resp/\ufdd0", false},
		{"non-character FFFF", "resp/\uffff", false},
		{"non-character 1FFFE", "resp/\U0001fffe", false},
		{"max code point", "resp/\U0010fffd", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := ValidReplyTopic([]byte(tc.topic)); got != tc.want {
				t.Errorf("ValidReplyTopic(%q) = %v, want %v", tc.topic, got, tc.want)
			}
		})
	}
}

func FuzzValidReplyTopic(f *testing.F) {
	for _, s := range []string{"resp/a/1", "+", "#", "a\x00", "\xff", "日本", "\ufdd0"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !ValidReplyTopic(b) {
			return
		}
		s := string(b)
		if s == "" || !utf8.ValidString(s) || strings.ContainsAny(s, "+#\x00") {
			t.Errorf("ValidReplyTopic(%q) = true", s)
		}
		for _, r := range s {
			if r < 0x20 || (r >= 0x7f && r <= 0x9f) {
				t.Errorf("ValidReplyTopic(%q) = true with control %U", s, r)
			}
		}
	})
}
