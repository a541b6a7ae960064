package fleet

import (
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// WriteText prints the fleet's outcome: the merged report (when any member
// reported), then the fleet's line: members, start, skew, and each missing
// member.
func (r *Result) WriteText(w io.Writer, id string) {
	if r.Merged != nil {
		r.Merged.WriteText(w)
	}
	minSkew, maxSkew, n := 0.0, 0.0, 0
	for _, rep := range r.Reports {
		for _, run := range rep.Runs {
			if run.StartSkewMS == nil {
				continue
			}
			if n == 0 || *run.StartSkewMS < minSkew {
				minSkew = *run.StartSkewMS
			}
			if n == 0 || *run.StartSkewMS > maxSkew {
				maxSkew = *run.StartSkewMS
			}
			n++
		}
	}
	fmt.Fprintf(w, "Fleet %s: %d of %d instances reported; common start %s; instances started %.1f to %.1f ms from it\n",
		id, len(r.Reports), len(r.Members), r.Start.UTC().Format("15:04:05.000Z"), minSkew, maxSkew)
	for _, m := range r.Missing {
		fmt.Fprintln(w, "  MISSING: "+m)
	}
	verdict := "PASSED"
	if r.Code() != 0 {
		verdict = "FAILED"
	}
	fmt.Fprintf(w, "Fleet verdict: %s\n", verdict)
}

// Write writes the fleet's results into dir (created): every member's
// report as loadgen-INDEX.json, the merged report as merged.json and the
// text (WriteText) as merged.txt.
func (r *Result) Write(dir, id string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("FLEET_RESULTS=%s: %w", dir, err)
	}
	for _, i := range slices.Sorted(maps.Keys(r.Reports)) {
		if err := r.Reports[i].WriteJSON(filepath.Join(dir, fmt.Sprintf("loadgen-%d.json", i))); err != nil {
			return err
		}
	}
	if r.Merged != nil {
		if err := r.Merged.WriteJSON(filepath.Join(dir, "merged.json")); err != nil {
			return err
		}
	}
	var b strings.Builder
	r.WriteText(&b, id)
	return os.WriteFile(filepath.Join(dir, "merged.txt"), []byte(b.String()), 0o644)
}
