package main

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/cmd/rr-knee/internal/knee"
)

// statePath is where a search keeps its state in a results folder.
func statePath(dir string) string { return filepath.Join(dir, "logs", "knee-search.json") }

// state is a search as saved between two runs: its configuration and the
// results of its runs, in order. Replaying them rebuilds the search.
type state struct {
	Config knee.Config `json:"config"`
	Runs   []runResult `json:"runs"`
}

// runResult is what the search took from one run.
type runResult struct {
	Run    string   `json:"run"`    // its name: knee-RATE or knee-RATE-tryN
	Passed bool     `json:"passed"` // the report's SLO verdict
	Steal  *float64 `json:"steal"`  // its CPU steal (0..1) in summary.csv; null when unknown
}

func (r runResult) result() knee.Result {
	res := knee.Result{Passed: r.Passed}
	if r.Steal != nil {
		res.Steal = *r.Steal
	}
	return res
}

// search replays st: the search after its recorded runs.
func (st *state) search() (*knee.Search, error) {
	s := knee.New(st.Config)
	for i, rr := range st.Runs {
		r, ok := s.Next()
		if !ok || r.Name() != rr.Run {
			return nil, fmt.Errorf("run %d is %s, where the search asks for %q: not this search's state", i+1, rr.Run, nextName(r, ok))
		}
		s.Record(rr.result())
	}
	return s, nil
}

func nextName(r knee.Run, ok bool) string {
	if !ok {
		return "none"
	}
	return r.Name()
}

func loadState(path string) (*state, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &st, nil
}

// save writes st to path through a temporary file, so an interrupted write
// leaves the previous state.
func (st *state) save(path string) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// readRun reads what the search needs of run name in the results folder
// dir: the SLO verdict of dir/NAME.json and the run's CPU steal in
// dir/summary.csv.
func readRun(dir, name string) (runResult, error) {
	steal, err := summarySteal(filepath.Join(dir, "summary.csv"), name)
	if err != nil {
		return runResult{}, err
	}
	return runResult{Run: name, Passed: reportPassed(filepath.Join(dir, name+".json")), Steal: steal}, nil
}

// reportPassed is the report's slo.passed, true unless it is false or null
// (jq -e's truth, which the script used): a run without a readable report
// failed.
func reportPassed(path string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	var r struct {
		SLO struct {
			Passed any `json:"passed"`
		} `json:"slo"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return false
	}
	return r.SLO.Passed != nil && r.SLO.Passed != false
}

// summarySteal is the cpu_steal of step name in the summary.csv at path (the
// last row of that step); nil when the file, the row or the value is missing.
func summarySteal(path, name string) (*float64, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	head, err := r.Read()
	if err == io.EOF {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	step, col := column(head, "step"), column(head, "cpu_steal")
	if step < 0 || col < 0 {
		return nil, fmt.Errorf("%s: no step or cpu_steal column in %q", path, head)
	}
	var steal *float64
	for {
		row, err := r.Read()
		if err == io.EOF {
			return steal, nil
		} else if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if len(row) <= max(step, col) || row[step] != name {
			continue
		}
		steal = nil
		if row[col] == "" {
			continue
		}
		v, err := strconv.ParseFloat(row[col], 64)
		if err != nil {
			return nil, fmt.Errorf("%s: step %s: cpu_steal %q is not a number", path, name, row[col])
		}
		steal = &v
	}
}

func column(head []string, name string) int {
	for i, h := range head {
		if h == name {
			return i
		}
	}
	return -1
}
