package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// TestFleetJob: the shipped fleet Job passes, and each way of breaking the
// fleet's run is named.
func TestFleetJob(t *testing.T) {
	b, err := os.ReadFile("../loadgen-fleet.yaml")
	if err != nil {
		t.Fatal(err)
	}
	job := string(b)
	for _, tt := range []struct {
		name, old, new string // replace old with new; empty old = as is
		want           string
	}{
		{name: "good", want: "0 problems"},
		{name: "parallelism apart", old: "parallelism: 10", new: "parallelism: 5", want: "parallelism=5, completions=10 and FLEET_SIZE=10 differ"},
		{name: "restarts", old: "restartPolicy: Never", new: "restartPolicy: OnFailure", want: `restartPolicy is "OnFailure"`},
		{name: "not indexed", old: "completionMode: Indexed", new: "completionMode: NonIndexed", want: "completionMode is not Indexed"},
		{name: "one index for all", old: "- name: FLEET_INDEX\n              value: auto", new: "- name: FLEET_INDEX\n              value: \"0\"", want: `FLEET_INDEX="0"`},
		{name: "retries", old: "backoffLimitPerIndex: 0", new: "backoffLimitPerIndex: 2", want: "backoffLimitPerIndex is not 0"},
		{name: "short deadline", old: "activeDeadlineSeconds: 1200", new: "activeDeadlineSeconds: 60", want: "activeDeadlineSeconds=60 is shorter than the run may take"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := job
			if tt.old != "" {
				if !strings.Contains(in, tt.old) {
					t.Fatalf("test bug: %q not in k8s/loadgen-fleet.yaml", tt.old)
				}
				in = strings.Replace(in, tt.old, tt.new, 1)
			}
			var out, errOut bytes.Buffer
			code := run(nil, strings.NewReader(in), &out, &errOut)
			if want := map[bool]int{true: 0, false: 1}[tt.old == ""]; code != want || !strings.Contains(out.String()+errOut.String(), tt.want) {
				t.Errorf("exit %d, want %d; output lacks %q:\n%s%s", code, want, tt.want, out.String(), errOut.String())
			}
		})
	}
}
