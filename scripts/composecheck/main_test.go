package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestComposeFile: the repository's Compose file passes; one without a
// FLEET_* variable or the /reports volume of the loadgen fails. The
// variants are written beside the original (relative paths stay valid).
func TestComposeFile(t *testing.T) {
	const file = "../../docker-compose.production.yml"
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, old, new string
		want           int
	}{
		{name: "as shipped", want: 0},
		{name: "no FLEET_SIZE", old: "      FLEET_SIZE: ${FLEET_SIZE:-0}\n", new: "", want: 1},
		{name: "no reports volume", old: "      - loadgen-reports:/reports\n", new: "", want: 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := file
			if tt.old != "" {
				if !strings.Contains(string(b), tt.old) {
					t.Fatalf("test bug: %q not in %s", tt.old, file)
				}
				f = filepath.Join(filepath.Dir(file), ".composecheck-"+strings.ReplaceAll(tt.name, " ", "-")+".yml")
				if err := os.WriteFile(f, []byte(strings.Replace(string(b), tt.old, tt.new, 1)), 0o600); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { os.Remove(f) })
			}
			if got := run([]string{f}); got != tt.want {
				t.Errorf("exit %d, want %d", got, tt.want)
			}
		})
	}
}
