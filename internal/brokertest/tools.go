package brokertest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// CI reports whether the tests run in CI: the CI variable is set (to
// anything but "", "0" or "false"), as .ci/run and CI services set it. There a
// missing tool fails the test that needs it instead of skipping it, so a
// check that CI is expected to run never passes by not running.
func CI() bool {
	v := strings.ToLower(strings.TrimSpace(os.Getenv("CI")))
	return v != "" && v != "0" && v != "false"
}

// NeedTool returns the path of the executable name (on PATH, else in
// /usr/sbin or /usr/local/sbin). When it is missing the test is skipped,
// naming it and how to get it (install, e.g. "apt-get install -y
// mosquitto") — or, in CI, fails (Unavailable).
func NeedTool(t testing.TB, name, install string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	Unavailable(t, name+" not installed ("+install+")")
	return ""
}

// Unavailable ends the test for lack of what it needs (what says what is
// missing and how to get it): skipped, or, in CI, failed.
func Unavailable(t testing.TB, what string) {
	t.Helper()
	if CI() {
		t.Fatalf("%s: CI must run this test (CI=%s), so a missing tool is a failure here", what, os.Getenv("CI"))
		return
	}
	t.Skip(what)
}

// WithoutPart notes that part of the test does not run for lack of what
// (how to get it included): logged as "SKIP part: what", or, in CI, an
// error.
func WithoutPart(t testing.TB, part, what string) {
	t.Helper()
	if CI() {
		t.Errorf("%s does not run: %s; CI must run it (CI=%s)", part, what, os.Getenv("CI"))
		return
	}
	t.Logf("SKIP %s: %s", part, what)
}
