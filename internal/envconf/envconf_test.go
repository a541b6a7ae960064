package envconf_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/envconf"
)

var errTooBig = errors.New("too big")

// testConfig exercises every kind of field the binaries use.
type testConfig struct {
	Count  int            `envconfig:"ECT_COUNT" default:"10" desc:"how many things"`
	Size   uint           `envconfig:"ECT_SIZE" default:"3" desc:"size of a thing (bytes)"`
	Ratio  float64        `envconfig:"ECT_RATIO" default:"0.5" desc:"share of things (0..1)"`
	Wait   time.Duration  `envconfig:"ECT_WAIT" default:"1s" desc:"how long to wait"`
	On     bool           `envconfig:"ECT_ON" default:"false" desc:"switch it on"`
	Name   string         `envconfig:"ECT_NAME" default:"thing" desc:"name of the thing"`
	Ports  []int          `envconfig:"ECT_PORTS" desc:"ports, comma separated"`
	Limits map[string]int `envconfig:"ECT_LIMITS" desc:"limits, k:v comma separated"`
}

func (c *testConfig) Validate() error {
	errs := []error{
		envconf.Check(c.Count >= 1, "ECT_COUNT", c.Count, "must be at least 1"),
		envconf.Check(c.Ratio >= 0 && c.Ratio <= 1, "ECT_RATIO", c.Ratio, "must be between 0 and 1"),
		envconf.Check(c.Name != "", "ECT_NAME", c.Name, "must not be empty"),
	}
	if c.Size > uint(max(c.Count, 0)) {
		errs = append(errs, fmt.Errorf("ECT_SIZE=%d is greater than ECT_COUNT=%d: %w", c.Size, c.Count, errTooBig))
	}
	return errors.Join(errs...)
}

var testVars = []string{"ECT_COUNT", "ECT_SIZE", "ECT_RATIO", "ECT_WAIT", "ECT_ON", "ECT_NAME", "ECT_PORTS", "ECT_LIMITS"}

// clearEnv unsets the test's variables for the duration of t.
func clearEnv(t *testing.T) {
	for _, k := range testVars {
		t.Setenv(k, "") // registers the restore
		os.Unsetenv(k)
	}
}

func TestLoadDefaults(t *testing.T) {
	clearEnv(t)
	var c testConfig
	if err := envconf.Load(&c); err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := testConfig{Count: 10, Size: 3, Ratio: 0.5, Wait: time.Second, Name: "thing"}
	if fmt.Sprint(c) != fmt.Sprint(want) {
		t.Errorf("defaults: got %+v, want %+v", c, want)
	}
}

func TestLoadValues(t *testing.T) {
	clearEnv(t)
	t.Setenv("ECT_COUNT", "20")
	t.Setenv("ECT_WAIT", "1m30s")
	t.Setenv("ECT_ON", "true")
	t.Setenv("ECT_PORTS", "1,2,3")
	t.Setenv("ECT_LIMITS", "a:1,b:2")
	var c testConfig
	if err := envconf.Load(&c); err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.Count != 20 || c.Wait != 90*time.Second || !c.On || len(c.Ports) != 3 || c.Limits["b"] != 2 {
		t.Errorf("got %+v", c)
	}
}

func TestLoadParseErrors(t *testing.T) {
	tests := []struct {
		name, key, value, kind string
	}{
		{name: "int not a number", key: "ECT_COUNT", value: "ten", kind: "integer"},
		{name: "int with unit", key: "ECT_COUNT", value: "10s", kind: "integer"},
		{name: "int overflow", key: "ECT_COUNT", value: "99999999999999999999", kind: "integer"},
		{name: "uint negative", key: "ECT_SIZE", value: "-1", kind: "non-negative integer"},
		{name: "float", key: "ECT_RATIO", value: "half", kind: "number"},
		{name: "duration without unit", key: "ECT_WAIT", value: "10", kind: "duration"},
		{name: "duration garbage", key: "ECT_WAIT", value: "soon", kind: "duration"},
		{name: "bool", key: "ECT_ON", value: "maybe", kind: "boolean"},
		{name: "value with spaces", key: "ECT_COUNT", value: "1 000", kind: "integer"},
		{name: "empty int", key: "ECT_COUNT", value: "", kind: "integer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clearEnv(t)
			t.Setenv(tc.key, tc.value)
			var c testConfig
			err := envconf.Load(&c)
			if !errors.Is(err, envconf.ErrInvalid) {
				t.Fatalf("Load = %v, want an error wrapping ErrInvalid", err)
			}
			msg := err.Error()
			if want := fmt.Sprintf("%s=%q", tc.key, tc.value); !strings.Contains(msg, want) {
				t.Errorf("error %q does not name the variable and quote the value (%s)", msg, want)
			}
			if !strings.Contains(msg, tc.kind) {
				t.Errorf("error %q does not say a %s is wanted", msg, tc.kind)
			}
		})
	}
}

func TestLoadValidateJoinsAll(t *testing.T) {
	clearEnv(t)
	t.Setenv("ECT_COUNT", "0")
	t.Setenv("ECT_RATIO", "2")
	t.Setenv("ECT_NAME", "")
	t.Setenv("ECT_SIZE", "5")
	var c testConfig
	err := envconf.Load(&c)
	if !errors.Is(err, envconf.ErrInvalid) {
		t.Fatalf("Load = %v, want an error wrapping ErrInvalid", err)
	}
	if !errors.Is(err, errTooBig) {
		t.Errorf("the joined error does not wrap each problem (errTooBig missing): %v", err)
	}
	for _, want := range []string{
		"ECT_COUNT=0 must be at least 1",
		"ECT_RATIO=2 must be between 0 and 1",
		`ECT_NAME="" must not be empty`,
		"ECT_SIZE=5 is greater than ECT_COUNT=0",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not contain %q:\n%v", want, err)
		}
	}
	if n := strings.Count(err.Error(), "\n"); n != 4 {
		t.Errorf("want one line per problem after the header (4 newlines), got %d:\n%v", n, err)
	}
}

func TestLoadWithoutValidator(t *testing.T) {
	clearEnv(t)
	t.Setenv("ECT_COUNT", "-5") // would fail testConfig.Validate
	var c struct {
		Count int `envconfig:"ECT_COUNT" default:"1"`
	}
	if err := envconf.Load(&c); err != nil || c.Count != -5 {
		t.Errorf("Load = %v, Count %d; want nil, -5", err, c.Count)
	}
}

func TestLoadBadSpec(t *testing.T) {
	var c testConfig
	if err := envconf.Load(c); !errors.Is(err, envconf.ErrInvalid) {
		t.Errorf("Load(non-pointer) = %v, want an error wrapping ErrInvalid", err)
	}
}

func TestUsage(t *testing.T) {
	var buf bytes.Buffer
	if err := envconf.Usage(&buf, "tool", "does things", &testConfig{}); err != nil {
		t.Fatalf("Usage: %v", err)
	}
	out := buf.String()
	if !strings.HasPrefix(out, "tool: does things\n") {
		t.Errorf("Usage does not start with the binary and summary:\n%s", out)
	}
	lines := strings.Split(out, "\n")
	find := func(key string) string {
		for _, l := range lines {
			if f := strings.Fields(l); len(f) > 0 && f[0] == key {
				return l
			}
		}
		return ""
	}
	if find("VARIABLE") == "" {
		t.Errorf("no header line:\n%s", out)
	}
	tests := []struct {
		key, def, desc string
	}{
		{"ECT_COUNT", "10", "how many things"},
		{"ECT_SIZE", "3", "size of a thing (bytes)"},
		{"ECT_RATIO", "0.5", "share of things (0..1)"},
		{"ECT_WAIT", "1s", "how long to wait"},
		{"ECT_ON", "false", "switch it on"},
		{"ECT_NAME", "thing", "name of the thing"},
		{"ECT_PORTS", "", "ports, comma separated"},
	}
	for _, tc := range tests {
		t.Run(tc.key, func(t *testing.T) {
			l := find(tc.key)
			if l == "" {
				t.Fatalf("%s not listed:\n%s", tc.key, out)
			}
			if f := strings.Fields(l); tc.def != "" && (len(f) < 2 || f[1] != tc.def) {
				t.Errorf("line %q: want default %q in the second column", l, tc.def)
			}
			if !strings.HasSuffix(l, tc.desc) {
				t.Errorf("line %q: want description %q", l, tc.desc)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name  string
		ok    bool
		value any
		want  string
	}{
		{name: "ok", ok: true, value: 1, want: ""},
		{name: "int", value: 50, want: "X=50 must be small"},
		{name: "duration", value: -time.Second, want: "X=-1s must be small"},
		{name: "empty string is quoted", value: "", want: `X="" must be small`},
		{name: "spaces are quoted", value: "a b", want: `X="a b" must be small`},
		{name: "tab is quoted", value: "a\tb", want: `X="a\tb" must be small`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := envconf.Check(tc.ok, "X", tc.value, "must be small")
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Errorf("Check = %q, want %q", got, tc.want)
			}
		})
	}
}

// FuzzLoad sets the test variables from fuzz input: Load must never panic,
// and every error it returns must wrap ErrInvalid (so main exits with 2).
func FuzzLoad(f *testing.F) {
	f.Add("10", "3", "0.5", "1s", "true", "1,2", "a:1")
	f.Add("-1", "-1", "NaN", "-5m", "1", "", "")
	f.Add("0x10", "1e3", "+Inf", "1h1h", "T", "x,,", "a:b:c")
	f.Add("", "", "", "", "", ",", ":")
	f.Fuzz(func(t *testing.T, count, size, ratio, wait, on, ports, limits string) {
		vals := map[string]string{"ECT_COUNT": count, "ECT_SIZE": size, "ECT_RATIO": ratio, "ECT_WAIT": wait, "ECT_ON": on, "ECT_PORTS": ports, "ECT_LIMITS": limits}
		for k, v := range vals {
			old, had := os.LookupEnv(k)
			if err := os.Setenv(k, v); err != nil {
				t.Skip("value not settable in the environment (NUL)")
			}
			defer func() {
				if had {
					os.Setenv(k, old)
				} else {
					os.Unsetenv(k)
				}
			}()
		}
		var c testConfig
		err := envconf.Load(&c)
		if err != nil {
			if !errors.Is(err, envconf.ErrInvalid) {
				t.Fatalf("Load error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		// Loaded means validated.
		if c.Count < 1 || !(c.Ratio >= 0 && c.Ratio <= 1) || c.Size > uint(c.Count) {
			t.Fatalf("Load accepted a config that Validate rejects: %+v", c)
		}
	})
}

// TestProblems: the problems of a joined error are the errors joined; a
// plain error is one problem; nil is none.
func TestProblems(t *testing.T) {
	a, b := errors.New("a"), errors.New("b")
	if got := envconf.Problems(errors.Join(nil, a, nil, b, nil)); len(got) != 2 || got[0] != a || got[1] != b {
		t.Errorf("Problems(Join(nil, a, nil, b, nil)) = %v, want [a b]", got)
	}
	if got := envconf.Problems(a); len(got) != 1 || got[0] != a {
		t.Errorf("Problems(a) = %v, want [a]", got)
	}
	if got := envconf.Problems(errors.Join(nil, nil)); got != nil {
		t.Errorf("Problems of passes = %v, want nil", got)
	}
}
