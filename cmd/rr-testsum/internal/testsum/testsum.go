// Package testsum turns the events of `go test -json` into what someone
// watching `make test` needs: a line per package as it ends (its result,
// duration, tests and skips), a line per slow top-level test as it ends
// (progress inside a long package such as e2e), every skipped test with its
// reason, the output of every failed test and build, and a summary.
package testsum

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Options shape the output.
type Options struct {
	// Slow: a top-level test that ran at least this long gets a line as it
	// ends. 0: none.
	Slow time.Duration
	// Module is stripped from package paths ("github.com/x/y/").
	Module string
	// Now is the clock for the summary's wall time (time.Now when nil).
	Now func() time.Time
}

// Summary is what the run came to.
type Summary struct {
	Packages, Tests, Skipped, Failed int
	// Skips are the skipped tests: "PACKAGE TEST: reason".
	Skips []string
	// FailedPackages failed a test, their build or their run.
	FailedPackages []string
}

// OK reports whether nothing failed.
func (s Summary) OK() bool { return s.Failed == 0 && len(s.FailedPackages) == 0 }

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action      string
	Package     string
	Test        string
	Output      string
	Elapsed     float64
	ImportPath  string // build-output, build-fail
	FailedBuild string
}

type pkgState struct {
	tests, skipped, failed int
	output                 []string            // package-level output
	testOut                map[string][]string // each running test's output
}

// maxLines bounds the output kept per test or package (the last lines).
const maxLines = 400

// Run reads events from r until EOF and writes the progress to w. Lines
// that are not events are written as they are.
func Run(r io.Reader, w io.Writer, o Options) (Summary, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	start := o.Now()
	var sum Summary
	pkgs := map[string]*pkgState{}
	builds := map[string][]string{} // build output by import path
	name := func(p string) string { return strings.TrimPrefix(strings.TrimPrefix(p, o.Module), "/") }
	get := func(p string) *pkgState {
		if pkgs[p] == nil {
			pkgs[p] = &pkgState{testOut: map[string][]string{}}
		}
		return pkgs[p]
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil || e.Action == "" {
			fmt.Fprintf(w, "%s\n", line)
			continue
		}
		switch {
		case e.Action == "build-output":
			builds[e.ImportPath] = keep(builds[e.ImportPath], e.Output)
		case e.Action == "build-fail":
			fmt.Fprintf(w, "FAIL  %s: the build failed\n", name(e.ImportPath))
			indent(w, builds[e.ImportPath])
		case e.Test == "":
			p := get(e.Package)
			switch e.Action {
			case "output":
				p.output = keep(p.output, e.Output)
			case "pass", "fail", "skip":
				sum.Packages++
				endPackage(w, &sum, name(e.Package), e, p)
				delete(pkgs, e.Package)
			}
		default:
			p := get(e.Package)
			switch e.Action {
			case "run":
				p.tests++
				sum.Tests++
			case "output":
				p.testOut[e.Test] = keep(p.testOut[e.Test], e.Output)
			case "pass":
				if o.Slow > 0 && !strings.Contains(e.Test, "/") && e.Elapsed >= o.Slow.Seconds() {
					fmt.Fprintf(w, "      %s %s (%s)\n", name(e.Package), e.Test, secs(e.Elapsed))
				}
			case "skip":
				p.skipped++
				sum.Skipped++
				s := fmt.Sprintf("%s %s: %s", name(e.Package), e.Test, skipReason(p.testOut[e.Test]))
				sum.Skips = append(sum.Skips, s)
				fmt.Fprintf(w, "SKIP  %s\n", s)
			case "fail":
				p.failed++
				sum.Failed++
				fmt.Fprintf(w, "FAIL  %s %s (%s)\n", name(e.Package), e.Test, secs(e.Elapsed))
				indent(w, slices.DeleteFunc(p.testOut[e.Test], framing))
			}
			if e.Action == "pass" || e.Action == "skip" || e.Action == "fail" {
				delete(p.testOut, e.Test)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return sum, err
	}
	verdict := "ok"
	if !sum.OK() {
		verdict = "FAILED"
	}
	fmt.Fprintf(w, "\nDONE  %s: %d packages, %d tests, %d skipped, %d failed in %s\n", verdict, sum.Packages, sum.Tests, sum.Skipped, sum.Failed,
		o.Now().Sub(start).Round(time.Second))
	if len(sum.Skips) > 0 {
		fmt.Fprintln(w, "skipped (each says what it lacks):")
		for _, s := range sum.Skips {
			fmt.Fprintf(w, "  %s\n", s)
		}
	}
	if len(sum.FailedPackages) > 0 {
		fmt.Fprintf(w, "failed: %s\n", strings.Join(sum.FailedPackages, ", "))
	}
	// The plain closing line CI systems read: passed, failed, skipped.
	fmt.Fprintf(w, "tests: %d passed, %d failed, %d skipped\n", sum.Tests-sum.Failed-sum.Skipped, sum.Failed, sum.Skipped)
	return sum, nil
}

// endPackage prints the package's line: ok, FAIL (with its output when no
// test failed: a build failure, a panic, a timeout) or its lack of tests.
func endPackage(w io.Writer, sum *Summary, name string, e event, p *pkgState) {
	counts := fmt.Sprintf("%d tests", p.tests)
	if p.skipped > 0 {
		counts += fmt.Sprintf(", %d skipped", p.skipped)
	}
	if p.failed > 0 {
		counts += fmt.Sprintf(", %d failed", p.failed)
	}
	switch {
	case e.Action == "skip" || p.tests == 0 && e.Action == "pass" && slices.ContainsFunc(p.output, func(l string) bool { return strings.Contains(l, "[no test files]") }):
		fmt.Fprintf(w, "-     %-40s (no test files)\n", name)
	case e.Action == "pass":
		fmt.Fprintf(w, "ok    %-40s %7s  %s\n", name, secs(e.Elapsed), counts)
	default:
		sum.FailedPackages = append(sum.FailedPackages, name)
		fmt.Fprintf(w, "FAIL  %-40s %7s  %s\n", name, secs(e.Elapsed), counts)
		if p.failed == 0 || len(p.testOut) > 0 {
			indent(w, p.output)
			for t, out := range p.testOut { // tests still running when it ended: a panic or a timeout
				fmt.Fprintf(w, "  (running: %s)\n", t)
				indent(w, out)
			}
		}
	}
}

// skipReason is the last line a skipped test wrote before "--- SKIP".
func skipReason(out []string) string {
	for i := len(out) - 1; i >= 0; i-- {
		l := strings.TrimSpace(out[i])
		if l == "" || strings.HasPrefix(l, "--- SKIP") || strings.HasPrefix(l, "=== ") {
			continue
		}
		// "file_test.go:12: reason"
		if f, rest, ok := strings.Cut(l, ": "); ok && strings.Contains(f, ".go:") {
			return rest
		}
		return l
	}
	return "(no reason given)"
}

// framing reports whether l is one of go test's own lines around a test's
// output (=== RUN, --- FAIL, ...), which the FAIL line already says.
func framing(l string) bool {
	l = strings.TrimSpace(l)
	return strings.HasPrefix(l, "=== ") || strings.HasPrefix(l, "--- ")
}

func keep(lines []string, out string) []string {
	lines = append(lines, strings.TrimRight(out, "\n"))
	if len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
	}
	return lines
}

func indent(w io.Writer, lines []string) {
	for _, l := range lines {
		fmt.Fprintf(w, "    %s\n", l)
	}
}

func secs(s float64) string { return fmt.Sprintf("%.1fs", s) }
