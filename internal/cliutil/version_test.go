package cliutil

import "testing"

func TestWantsVersion(t *testing.T) {
	for args, want := range map[string]bool{"--version": true, "-version": true, "-v": true, "version": true, "": false, "merge": false, "-h": false} {
		var a []string
		if args != "" {
			a = []string{args}
		}
		if WantsVersion(a) != want {
			t.Errorf("WantsVersion(%q) = %v, want %v", a, !want, want)
		}
	}
}
