package wire

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
)

func TestCorrelationRoundTrip(t *testing.T) {
	for _, k := range []Key{{}, {1, 2, 3}, {math.MaxUint32, math.MaxUint32, math.MaxUint32}, {0xdeadbeef, 999999, 0}} {
		got, err := DecodeCorrelation(AppendCorrelation(nil, k))
		if err != nil || got != k {
			t.Errorf("correlation %+v: got %+v %v", k, got, err)
		}
		id := AppendID(nil, k)
		if len(id) > MaxIDLen {
			t.Errorf("id %q longer than MaxIDLen", id)
		}
		got, err = ParseID(id)
		if err != nil || got != k {
			t.Errorf("id %q: got %+v %v", id, got, err)
		}
	}
	if _, err := DecodeCorrelation([]byte{1, 2, 3}); !errors.Is(err, ErrMalformed) {
		t.Errorf("short correlation data: %v", err)
	}
}

func TestParseIDRejects(t *testing.T) {
	for _, s := range []string{"", "0000000a-1-", "0000000a--1", "0000000A-1-2", "0000000a-01-2", "0000000a-1-2-", "0000000a-1-4294967296",
		"0000000a_1_2", "g000000a-1-2", strings.Repeat("9", 40), "0000000a-1-2 "} {
		if k, err := ParseID([]byte(s)); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseID(%q) = %+v, %v; want ErrMalformed", s, k, err)
		}
	}
}

func TestTemplate(t *testing.T) {
	f := &Fields{Key: Key{0xab, 7, 42}, UnixMS: 1700000000123, Instance: "lg-0", Shard: 5, Reply: "resp/lg-0/5"}
	for _, tc := range []struct{ tmpl, want string }{
		{`{"id":"{{id}}","client":{{client}},"seq":{{seq}},"ts":{{ts}}}`, `{"id":"000000ab-7-42","client":7,"seq":42,"ts":1700000000123}`},
		{`{{instance}}/{{shard}} -> {{ reply }}`, `lg-0/5 -> resp/lg-0/5`},
		{`no placeholders {}`, `no placeholders {}`},
		{``, ``},
	} {
		tp, err := ParseTemplate(tc.tmpl)
		if err != nil {
			t.Fatalf("%q: %v", tc.tmpl, err)
		}
		if got := string(tp.AppendTo(nil, f)); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.tmpl, got, tc.want)
		}
	}
	for _, tc := range []struct{ tmpl, msg string }{
		{`{{nope}}`, "unknown placeholder {{nope}}"},
		{`{"id":"{{id}"`, "unclosed placeholder"},
		{`resp/{{id}}`, "not allowed here"},
	} {
		_, err := ParseTemplate(tc.tmpl, "instance", "shard")
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%q: err %v, want %q", tc.tmpl, err, tc.msg)
		}
	}
	tp, _ := ParseTemplate(`resp/{{instance}}/+`)
	if !tp.HasWildcard() {
		t.Error("wildcard not seen")
	}
	if !tp.Uses("instance") || tp.Uses("id") || tp.Static() {
		t.Error("Uses/Static")
	}
}

func TestTemplateAppendAllocs(t *testing.T) {
	tp, _ := ParseTemplate(`{"id":"{{id}}","client":{{client}},"ts":{{ts}},"pad":"xxxxxxxx"}`)
	f := &Fields{Key: Key{1, 2, 3}, UnixMS: 5}
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() { buf = tp.AppendTo(buf[:0], f) }); n != 0 {
		t.Errorf("%.1f allocations per fill", n)
	}
}

func TestJSONField(t *testing.T) {
	for _, tc := range []struct {
		doc, name, want string
		ok              bool
	}{
		{`{"id":"abc"}`, "id", "abc", true},
		{` { "x" : {"id":"nested"} , "id" : "top" } `, "id", "top", true},
		{`{"a":[1,{"id":"in array"}],"b":"x\"id\":1","id":12.5e3}`, "id", "12.5e3", true},
		{`{"id":true}`, "id", "true", true},
		{`{"id":null,"z":1}`, "id", "null", true},
		{`{"id":"a\"b"}`, "id", `a\"b`, true},
		{`{"id":{"x":1}}`, "id", "", false},
		{`{"other":"abc"}`, "id", "", false},
		{`{}`, "id", "", false},
		{`["id","abc"]`, "id", "", false},
		{`{"id"`, "id", "", false},
		{`{"a":"unterminated`, "id", "", false},
		{`{"a":1 "id":2}`, "id", "", false},
		{``, "id", "", false},
	} {
		v, ok := JSONField([]byte(tc.doc), tc.name)
		if ok != tc.ok || string(v) != tc.want {
			t.Errorf("JSONField(%q, %q) = %q, %v; want %q, %v", tc.doc, tc.name, v, ok, tc.want, tc.ok)
		}
	}
}

func TestJSONFieldAllocs(t *testing.T) {
	doc := []byte(`{"status":"ok","data":{"a":[1,2,3]},"id":"0000000a-12-34"}`)
	if n := testing.AllocsPerRun(100, func() { _, _ = JSONField(doc, "id") }); n != 0 {
		t.Errorf("%.1f allocations per scan", n)
	}
}

// The scanner never panics, and on valid JSON whose member is a string
// without escapes it agrees with encoding/json.
func FuzzJSONField(f *testing.F) {
	f.Add([]byte(`{"id":"abc","x":[1,{"id":2}]}`), "id")
	f.Add([]byte(`{"a":"\\","id":"z"}`), "id")
	f.Add([]byte(`{"id":{"id":"x"}}`), "id")
	f.Fuzz(func(t *testing.T, doc []byte, name string) {
		v, ok := JSONField(doc, name)
		var m map[string]any
		if json.Unmarshal(doc, &m) != nil || !ok {
			return
		}
		if strings.ContainsAny(name, "\\\"") || strings.Contains(string(v), "\\") {
			return
		}
		if dup := strings.Count(string(doc), `"`+name+`"`); dup > 1 {
			return // duplicate members: encoding/json keeps the last, the scanner the first
		}
		want, found := m[name]
		if s, isStr := want.(string); found && isStr && s != string(v) {
			t.Fatalf("scanner %q, encoding/json %q", v, s)
		}
	})
}

func FuzzParseID(f *testing.F) {
	f.Add([]byte("0000000a-1-2"))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := ParseID(b)
		if err == nil && string(AppendID(nil, k)) != string(b) {
			t.Fatalf("ParseID(%q) = %+v, which prints as %q", b, k, AppendID(nil, k))
		}
	})
}

// TestParseCorrelation: the errors describe the value and what is allowed,
// never a variable name (the configuration packages add that).
func TestParseCorrelation(t *testing.T) {
	for _, tc := range []struct {
		s       string
		version byte
		want    Correlation
		field   string
		err     string
	}{
		{"", 4, Envelope, "", ""},
		{"", 5, Properties, "", ""},
		{"envelope", 5, Envelope, "", ""},
		{"properties", 5, Properties, "", ""},
		{"json:id", 4, JSON, "id", ""},
		{"json:req.id", 5, JSON, "req.id", ""},
		{"properties", 4, Properties, "", "needs MQTT 5"},
		{"json:", 4, JSON, "", "must name a JSON member"},
		{`json:a"b`, 4, JSON, "", "without quotes"},
		{"jsonpath:$.id", 4, Envelope, "", "must be envelope, properties or json:FIELD"},
	} {
		c, f, err := ParseCorrelation(tc.s, tc.version)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || strings.Contains(err.Error(), "CORRELATE") {
				t.Errorf("%q v%d: err %v, want %q", tc.s, tc.version, err, tc.err)
			}
			continue
		}
		if err != nil || c != tc.want || f != tc.field {
			t.Errorf("%q v%d: %v %q %v", tc.s, tc.version, c, f, err)
		}
	}
}
