package report_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/report"
)

// FuzzMerge: reports come off the wire (a fleet's instances publish them)
// and from files: Merge of any two never panics, and a merge it accepts is
// written as JSON, read back and merged again.
func FuzzMerge(f *testing.F) {
	goldens, _ := filepath.Glob(filepath.Join("testdata", "*.json.golden"))
	for _, a := range goldens {
		for _, b := range goldens {
			ja, _ := os.ReadFile(a)
			jb, _ := os.ReadFile(b)
			f.Add(ja, jb)
		}
	}
	f.Add([]byte(`{"runs":[{"instance":"a","run_id":"1","first_client":18446744073709551615,"clients":2,`+
		`"start":"2026-01-01T00:00:00Z","measured_start":"2026-01-01T00:00:01Z","end":"2026-01-01T00:00:00Z"}]}`),
		[]byte(`{"fleet":{"id":"f","size":1000000},"runs":[{"fleet_index":-1}],"config":{"qos":"x","duration":1e400}}`))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		var ra, rb report.Report
		if json.Unmarshal(a, &ra) != nil || json.Unmarshal(b, &rb) != nil {
			return
		}
		if ra.Fleet != nil && ra.Fleet.Size > 10000 || rb.Fleet != nil && rb.Fleet.Size > 10000 {
			return // listing a million missing indexes is slow, not wrong
		}
		m, err := report.Merge([]*report.Report{&ra, &rb}, report.Objectives{})
		if err != nil {
			return
		}
		path := filepath.Join(t.TempDir(), "m.json")
		if err := m.WriteJSON(path); err != nil {
			t.Fatalf("WriteJSON of a merged report: %v", err)
		}
		back, err := report.Read(path)
		if err != nil {
			t.Fatalf("Read of a merged report: %v", err)
		}
		if _, err := report.Merge([]*report.Report{back}, report.Objectives{}); err != nil && !errors.Is(err, report.ErrRefused) {
			t.Fatalf("a merged report does not merge again: %v", err)
		}
	})
}
