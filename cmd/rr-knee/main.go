// Command rr-knee makes the decisions of `scripts/benchmark.sh knee`: which
// offered rate to run next, whether a rate passed, when the search ends and
// with which knee (the rules are package knee's). The script runs what it
// asks for, one run at a time, and keeps the results folder; rr-knee keeps
// the search's state in that folder, logs/knee-search.json: its settings
// and the verdict and CPU steal of every run, in order.
//
//	rr-knee start DIR   a new search with the KNEE_* settings; prints the first run
//	rr-knee next DIR    takes the result of the run it asked for last; prints the next run
//
// Each prints one line: "run RATE NAME" (run NAME at RATE req/s, its report
// DIR/NAME.json) or "done KNEE LOWEST_FAILING" (req/s, 0 for none).
// A run's result is its report's SLO verdict (DIR/NAME.json, slo.passed; no
// report: missed) and its CPU steal (the cpu_steal column of its row in
// DIR/summary.csv; none: unknown, counted as 0).
//
// Exit status: 0 ok, 1 a file could not be read or written, 2 bad usage or setting.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/cmd/rr-knee/internal/knee"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/cliutil"
	buildinfo "github.com/mqtt-rr-bench/mqtt-rr-bench/internal/metrics"
)

const usage = `rr-knee: the decisions of the knee search of scripts/benchmark.sh knee

  rr-knee start DIR   a new search with the settings below (replacing one in DIR); prints its first run
  rr-knee next DIR    takes the result of the run it asked for last (DIR/NAME.json's SLO
                      verdict, its cpu_steal in DIR/summary.csv); prints the next run

Each prints one line: "run RATE NAME" (run NAME at RATE req/s; its report is DIR/NAME.json)
or "done KNEE LOWEST_FAILING" (req/s, 0 for none). The state is DIR/logs/knee-search.json.

The search doubles the rate from KNEE_START while the rates pass, then bisects between the
highest passing and the lowest failing rate. A rate passes when one of its runs passes (the
loadgen's SLO verdict); it fails after two missed runs, one of them clean (CPU steal at most
KNEE_MAX_STEAL; unknown counts as 0), or when KNEE_TRIES runs missed.

` + variables + `

Exit status: 0 ok, 1 a file could not be read or written, 2 bad usage or setting.`

func main() { os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr)) }

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if cliutil.WantsVersion(args) {
		fmt.Fprintln(stdout, buildinfo.VersionLine("rr-knee"))
		return 0
	}
	if cliutil.WantsHelp(args) {
		fmt.Fprintln(stdout, usage)
		return cliutil.ExitOK
	}
	if len(args) != 2 || (args[0] != "start" && args[0] != "next") {
		fmt.Fprintf(stderr, "rr-knee: want start DIR or next DIR, got %q\n\n%s\n", args, usage)
		return cliutil.ExitConfig
	}
	dir := args[1]
	var line string
	var err error
	if args[0] == "start" {
		c, cerr := configFromEnv(getenv)
		if cerr != nil {
			fmt.Fprintln(stderr, "rr-knee:", cerr)
			return cliutil.ExitConfig
		}
		line, err = start(dir, c)
	} else {
		line, err = next(dir)
	}
	if err != nil {
		fmt.Fprintln(stderr, "rr-knee:", err)
		return cliutil.ExitError
	}
	fmt.Fprintln(stdout, line)
	return cliutil.ExitOK
}

// start begins a new search in dir.
func start(dir string, c knee.Config) (string, error) {
	st := &state{Config: c, Runs: []runResult{}}
	path := statePath(dir)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	if err := st.save(path); err != nil {
		return "", err
	}
	return step(knee.New(c)), nil
}

// next records the result of the run the search in dir asked for last and
// moves on; a search that is over says so again.
func next(dir string) (string, error) {
	path := statePath(dir)
	st, err := loadState(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("no search in %s: rr-knee start %[1]s first", dir)
	} else if err != nil {
		return "", err
	}
	s, err := st.search()
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	r, ok := s.Next()
	if !ok {
		return step(s), nil
	}
	res, err := readRun(dir, r.Name())
	if err != nil {
		return "", err
	}
	st.Runs = append(st.Runs, res)
	if err := st.save(path); err != nil {
		return "", err
	}
	s.Record(res.result())
	return step(s), nil
}

// step is the line that tells the script what to do next.
func step(s *knee.Search) string {
	if r, ok := s.Next(); ok {
		return fmt.Sprintf("run %d %s", r.Rate, r.Name())
	}
	o := s.Outcome()
	return fmt.Sprintf("done %d %d", o.Knee, o.LowestFailing)
}
