package report_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/report"
)

// TestWarningsNameTheCause: each odd run gets one WARNING of its kind, in the
// text report and in the JSON fields warnings and warning_kinds, naming the
// likely cause and the setting to change.
func TestWarningsNameTheCause(t *testing.T) {
	tests := []struct {
		name  string
		c     report.Counts
		kinds []string
		say   []string
	}{
		{name: "clean", c: report.Counts{Scheduled: 1000, RequestsSent: 1000, ResponsesMatched: 1000}},
		{name: "no response at all", c: report.Counts{Scheduled: 6000, RequestsSent: 6000, Timeouts: 6000},
			kinds: []string{report.WarnKindNoResponse},
			say:   []string{"no response at all to 6000 requests sent", "worker subscribed to the request topic", "SHARED_SUBSCRIPTION=false"}},
		{name: "unknown and malformed above 0.1% of sent", c: report.Counts{Scheduled: 10000, RequestsSent: 10000, ResponsesMatched: 10000, Unknown: 8, Malformed: 4},
			kinds: []string{report.WarnKindForeign}, say: []string{"8 unknown and 4 malformed responses (0.12% of sent)", "CORRELATE=envelope"}},
		{name: "unknown at 0.1% of sent is quiet", c: report.Counts{Scheduled: 10000, RequestsSent: 10000, ResponsesMatched: 10000, Unknown: 10}},
		{name: "another loadgen with our INSTANCE_ID", c: report.Counts{Scheduled: 20000, RequestsSent: 20000, ResponsesMatched: 20000, Unknown: 19990, UnknownOtherRun: 19990},
			kinds: []string{report.WarnKindInstanceUsed}, say: []string{"19990 responses for this instance carried another run id", "another loadgen is using INSTANCE_ID=lg-7"}},
		{name: "duplicates and their cause", c: report.Counts{Scheduled: 100, RequestsSent: 100, ResponsesMatched: 100, Duplicate: 100},
			kinds: []string{report.WarnKindDuplicate}, say: []string{"100 duplicate responses", "SHARED_SUBSCRIPTION=false", "QoS 1 redelivery"}},
		{name: "stopped before sending", c: report.Counts{},
			kinds: []string{report.WarnKindStopped}, say: []string{"stopped before sending"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := report.Report{Instances: []string{"lg-7"}, Counts: tc.c, VirtualClients: 10, ClientsFired: 10}
			if tc.c.Scheduled == 0 {
				r.ClientsFired = 0
			}
			if err := r.Finish(hists(hist(100, 199)), report.Objectives{}); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(r.WarningKinds, tc.kinds) || len(r.Warnings) != len(r.WarningKinds) {
				t.Fatalf("warnings %q kinds %q, want kinds %q", r.Warnings, r.WarningKinds, tc.kinds)
			}
			var text bytes.Buffer
			r.WriteText(&text)
			for _, s := range tc.say {
				if !strings.Contains(strings.Join(r.Warnings, "\n"), s) {
					t.Errorf("warnings %q lack %q", r.Warnings, s)
				}
			}
			if n := strings.Count(text.String(), "WARNING"); n != len(tc.kinds) {
				t.Errorf("%d WARNING lines in the text report, want %d:\n%s", n, len(tc.kinds), text.String())
			}
		})
	}
}

// TestClaimConflictWarns: another run's claim on our instance is one
// WARNING of kind instance_id_in_use naming that run (with the other-run
// responses when there were some), kept by a merge.
func TestClaimConflictWarns(t *testing.T) {
	claim := "run 1a2b3c4d on host h (pid 7), started 10:00:00Z, until stopped"
	for _, other := range []uint64{0, 42} {
		r := report.Report{Instances: []string{"twin"}, InstanceClaims: []string{claim}, VirtualClients: 10, ClientsFired: 10,
			Counts: report.Counts{Scheduled: 10, RequestsSent: 10, ResponsesMatched: 10, Unknown: other, UnknownOtherRun: other}}
		if err := r.Finish(hists(hist(100, 199)), report.Objectives{}); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(r.WarningKinds, []string{report.WarnKindInstanceUsed}) {
			t.Fatalf("kinds %q, want one instance_id_in_use", r.WarningKinds)
		}
		for _, s := range []string{"another loadgen claimed INSTANCE_ID=twin", claim, "give every loadgen its own INSTANCE_ID"} {
			if !strings.Contains(r.Warnings[0], s) {
				t.Errorf("warning %q lacks %q", r.Warnings[0], s)
			}
		}
		if other > 0 && !strings.Contains(r.Warnings[0], "42 responses for this instance carried another run id") {
			t.Errorf("warning %q lacks the other run's responses", r.Warnings[0])
		}
		m, err := report.Merge([]*report.Report{&r}, report.Objectives{})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(m.InstanceClaims, r.InstanceClaims) || !slices.Contains(m.WarningKinds, report.WarnKindInstanceUsed) {
			t.Errorf("merged: claims %q, kinds %q", m.InstanceClaims, m.WarningKinds)
		}
	}
}
