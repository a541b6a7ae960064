package metrics

import (
	"strings"
	"testing"
)

func TestVersionLine(t *testing.T) {
	old := Version
	t.Cleanup(func() { Version = old })
	Version = "1.2.3"
	if got := VersionLine("loadgen-v2"); !strings.HasPrefix(got, "loadgen-v2 1.2.3 (revision ") || !strings.Contains(got, "go1") {
		t.Errorf("VersionLine = %q", got)
	}
}
