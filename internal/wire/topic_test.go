package wire

import (
	"math"
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

func TestSharedFilter(t *testing.T) {
	tests := []struct {
		name string
		got  string
		want string
	}{
		{name: "shared", got: SharedFilter("workers", "req/+"), want: "$share/workers/req/+"},
		{name: "shared, empty group", got: SharedFilter("", "req/+"), want: "req/+"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("got %q, want %q", tc.got, tc.want)
			}
		})
	}
}

func TestShard(t *testing.T) {
	tests := []struct {
		client uint32
		shards int
		want   int
	}{
		{0, 256, 0}, {255, 256, 255}, {256, 256, 0}, {math.MaxUint32, 256, 255}, {12345, 1, 0}, {math.MaxUint32, 65536, 65535},
	}
	for _, tc := range tests {
		if got := Shard(tc.client, tc.shards); got != tc.want {
			t.Errorf("Shard(%d, %d) = %d, want %d", tc.client, tc.shards, got, tc.want)
		}
	}
}

func TestValidTopicName(t *testing.T) {
	tests := []struct {
		name string
		s    string
		want bool
	}{
		{name: "simple", s: "loadgen-3", want: true},
		{name: "dots and underscores", s: "host.example_1-42", want: true},
		{name: "one byte", s: "a", want: true},
		{name: "255 bytes", s: strings.Repeat("a", 255), want: true},
		{name: "empty", s: "", want: false},
		{name: "256 bytes", s: strings.Repeat("a", 256), want: false},
		{name: "slash", s: "a/b", want: false},
		{name: "plus", s: "a+", want: false},
		{name: "hash", s: "#", want: false},
		{name: "NUL", s: "a\x00b", want: false},
		{name: "newline", s: "a\nb", want: false},
		{name: "escape", s: "lg\x1b[31m", want: false},
		{name: "DEL", s: "a\x7f", want: false},
		{name: "C1 control", s: "a\u0085b", want: false},
		{name: "invalid UTF-8", s: "lg-\xff\xfe", want: false},
		{name: "truncated UTF-8", s: "lg-\xc3", want: false},
		{name: "UTF-8 letters", s: "lastgenerator-ü-日本", want: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ValidTopicName(tc.s); got != tc.want {
				t.Errorf("ValidTopicName(%q) = %v, want %v", tc.s, got, tc.want)
			}
		})
	}
}

func TestMatchFilter(t *testing.T) {
	for _, tc := range []struct {
		f, topic string
		want     bool
	}{
		{"resp/#", "resp/lg-1/7", true},
		{"resp/#", "resp/lg-1", true},
		{"resp/#", "resp", true},
		{"resp/#", "rogue/answers", false},
		{"resp/#", "response/x", false},
		{"resp/+/+", "resp/lg-1/7", true},
		{"resp/+/+", "resp/lg-1", false},
		{"resp/+/+", "resp/lg-1/7/8", false},
		{"resp/+", "resp/", true},
		{"#", "anything/at/all", true},
		{"#", "$SYS/broker", false},
		{"+/x", "$SYS/x", false},
		{"$SYS/#", "$SYS/broker", true},
		{"a/b", "a/b", true},
		{"a/b", "a/bc", false},
	} {
		if got := MatchFilter(tc.f, []byte(tc.topic)); got != tc.want {
			t.Errorf("MatchFilter(%q, %q) = %v, want %v", tc.f, tc.topic, got, tc.want)
		}
	}
	for f, want := range map[string]bool{"resp/#": true, "resp/+/x": true, "#": true, "": false, "a/#/b": false, "a+/b": false, "a/b#": false} {
		if ValidFilter(f) != want {
			t.Errorf("ValidFilter(%q) = %v, want %v", f, !want, want)
		}
	}
}

func BenchmarkMatchFilter(b *testing.B) {
	topic := []byte("resp/loadgen-v2-0/17")
	for b.Loop() {
		if !MatchFilter("resp/#", topic) {
			b.Fatal("no match")
		}
	}
}
