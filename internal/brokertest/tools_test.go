package brokertest

import (
	"fmt"
	"strings"
	"testing"
)

// tb records what a helper asked of its test instead of doing it.
type tb struct {
	testing.TB
	skip, fatal, errs, logs string
}

func (r *tb) Helper()                   {}
func (r *tb) Skip(a ...any)             { r.skip = fmt.Sprint(a...) }
func (r *tb) Fatalf(f string, a ...any) { r.fatal = fmt.Sprintf(f, a...) }
func (r *tb) Errorf(f string, a ...any) { r.errs = fmt.Sprintf(f, a...) }
func (r *tb) Logf(f string, a ...any)   { r.logs = fmt.Sprintf(f, a...) }

func TestCI(t *testing.T) {
	for v, want := range map[string]bool{"": false, "0": false, "false": false, "FALSE": false, "true": true, "1": true, "yes": true} {
		t.Setenv("CI", v)
		if CI() != want {
			t.Errorf("CI=%q: CI() = %v, want %v", v, !want, want)
		}
	}
}

// TestMissingToolSkipsOrFailsInCI: a missing tool skips the test, naming it
// and how to get it; in CI (CI=true) it fails the test instead. A part of a
// test that cannot run is logged as SKIP, and an error in CI.
func TestMissingToolSkipsOrFailsInCI(t *testing.T) {
	if p := NeedTool(t, "sh", "it is everywhere"); p == "" {
		t.Fatal("sh not found")
	}
	for _, ci := range []string{"", "true"} {
		t.Setenv("CI", ci)
		r := &tb{TB: t}
		if p := NeedTool(r, "no-such-tool-here", "apt-get install -y it"); p != "" {
			t.Errorf("found %q", p)
		}
		WithoutPart(r, "the web dashboard", "chromium not installed")
		want := "no-such-tool-here not installed (apt-get install -y it)"
		if ci == "" && (r.skip != want || r.fatal != "" || r.errs != "" || r.logs != "SKIP the web dashboard: chromium not installed") {
			t.Errorf("outside CI: %+v", *r)
		}
		if ci != "" && (r.skip != "" || !strings.HasPrefix(r.fatal, want+": CI must run this test (CI=true)") ||
			!strings.Contains(r.errs, "the web dashboard does not run: chromium not installed; CI must run it")) {
			t.Errorf("in CI: %+v", *r)
		}
	}
}
