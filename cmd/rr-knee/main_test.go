package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/cmd/rr-knee/internal/knee"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// rrKnee runs rr-knee: exit status, stdout, stderr.
func rrKnee(getenv func(string) string, args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := run(args, getenv, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestUsage(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name         string
		args         []string
		vars         map[string]string
		code         int
		stdout, errs string
	}{
		{name: "help", args: []string{"-h"}, code: 0, stdout: "KNEE_MAX_STEAL  0.03"},
		{name: "no arguments", code: 2, errs: "want start DIR or next DIR"},
		{name: "no folder", args: []string{"start"}, code: 2, errs: "want start DIR or next DIR"},
		{name: "unknown command", args: []string{"stop", dir}, code: 2, errs: `["stop" "` + dir},
		{name: "bad setting", args: []string{"start", dir}, vars: map[string]string{"KNEE_START": "50"}, code: 2,
			errs: "rr-knee: KNEE_START=50: want a rate of at least 100 req/s\n"},
		{name: "next before start", args: []string{"next", dir}, code: 1, errs: "no search in " + dir},
		{name: "start", args: []string{"start", dir}, code: 0, stdout: "run 5000 knee-5000\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := rrKnee(env(tc.vars), tc.args...)
			if code != tc.code || !strings.Contains(stdout, tc.stdout) || !strings.Contains(stderr, tc.errs) {
				t.Errorf("exit %d, want %d\nstdout %q, want it to contain %q\nstderr %q, want it to contain %q",
					code, tc.code, stdout, tc.stdout, stderr, tc.errs)
			}
		})
	}
}

func TestConfigFromEnv(t *testing.T) {
	def := knee.Default()
	cases := []struct {
		name string
		vars map[string]string
		want knee.Config
		err  string
	}{
		{name: "unset: the defaults", want: def},
		{name: "empty: the defaults", vars: map[string]string{"KNEE_START": "", "KNEE_MAX": "", "KNEE_PRECISION": "", "KNEE_TRIES": "", "KNEE_MAX_STEAL": "", "KNEE_CONFIRM": ""}, want: def},
		{
			name: "all set",
			vars: map[string]string{"KNEE_START": "100", "KNEE_MAX": "50000", "KNEE_PRECISION": "0", "KNEE_TRIES": "6", "KNEE_MAX_STEAL": "5e-2", "KNEE_CONFIRM": "0"},
			want: knee.Config{Start: 100, Max: 50000, Precision: 0, Tries: 6, MaxSteal: 0.05, Confirm: false},
		},
		{name: "KNEE_CONFIRM other than 0 confirms", vars: map[string]string{"KNEE_CONFIRM": "no"}, want: def},
		{name: "KNEE_START below 100", vars: map[string]string{"KNEE_START": "99"}, err: "KNEE_START=99: want a rate of at least 100 req/s"},
		{name: "KNEE_START with a sign", vars: map[string]string{"KNEE_START": "+5000"}, err: "KNEE_START=+5000: want a rate of at least 100 req/s"},
		{name: "KNEE_MAX not a number", vars: map[string]string{"KNEE_MAX": "lots"}, err: "KNEE_MAX=lots: want a rate in req/s"},
		{name: "KNEE_PRECISION negative", vars: map[string]string{"KNEE_PRECISION": "-0.05"}, err: "KNEE_PRECISION=-0.05: want a share of the knee such as 0.05 (0 or more)"},
		{name: "KNEE_PRECISION not JSON", vars: map[string]string{"KNEE_PRECISION": ".05"}, err: "KNEE_PRECISION=.05: want a share of the knee such as 0.05 (0 or more)"},
		{name: "KNEE_PRECISION NaN", vars: map[string]string{"KNEE_PRECISION": "NaN"}, err: "KNEE_PRECISION=NaN: want a share"},
		{name: "KNEE_TRIES 0", vars: map[string]string{"KNEE_TRIES": "0"}, err: "KNEE_TRIES=0: want a number of runs of at least 1"},
		{name: "KNEE_MAX_STEAL a percentage", vars: map[string]string{"KNEE_MAX_STEAL": "3%"}, err: "KNEE_MAX_STEAL=3%: want a share of the CPU time such as 0.03 (0 or more)"},
		{
			name: "every problem at once",
			vars: map[string]string{"KNEE_START": "x", "KNEE_TRIES": "-1"},
			err:  "KNEE_START=x: want a rate of at least 100 req/s\nKNEE_TRIES=-1: want a number of runs of at least 1",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := configFromEnv(env(tc.vars))
			if tc.err != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c != tc.want {
				t.Errorf("%+v, want %+v", c, tc.want)
			}
		})
	}
}

// TestVariablesTable: the defaults the usage lists are knee.Default's.
func TestVariablesTable(t *testing.T) {
	vars := map[string]string{}
	for _, line := range strings.Split(variables, "\n") {
		f := strings.Fields(line)
		vars[f[0]] = f[1]
	}
	if len(vars) != 6 {
		t.Fatalf("the table lists %d variables: %v", len(vars), vars)
	}
	c, err := configFromEnv(env(vars))
	if err != nil || c != knee.Default() {
		t.Errorf("the listed defaults give %+v, %v; knee.Default is %+v", c, err, knee.Default())
	}
}

// copyFile copies testdata/from to dir/to, replacing old with new in it.
func copyFile(t *testing.T, dir, from, to, old, new string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", from))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, to), bytes.ReplaceAll(b, []byte(old), []byte(new)), 0o644); err != nil {
		t.Fatal(err)
	}
}

func steal(v float64) *float64 { return &v }

// TestStartNext drives a search through its state file over a results
// folder with a real report (testdata/knee-37500.json, a loadgen report that
// missed its p99) and a summary.csv as the script writes it.
func TestStartNext(t *testing.T) {
	dir := t.TempDir()
	getenv := env(map[string]string{"KNEE_START": "37500", "KNEE_MAX": "37500"})
	copyFile(t, dir, "summary.csv", "summary.csv", "", "")
	steps := []struct {
		do   func() // what the script's run leaves in dir
		cmd  string
		want string
	}{
		{cmd: "start", want: "run 37500 knee-37500"},
		// missed with steal 0.12: not clean, runs again
		{do: func() { copyFile(t, dir, "knee-37500.json", "knee-37500.json", "", "") }, cmd: "next", want: "run 37500 knee-37500-try2"},
		// missed with an unknown steal (empty in summary.csv): clean, the rate fails; halving
		{do: func() { copyFile(t, dir, "knee-37500.json", "knee-37500-try2.json", "", "") }, cmd: "next", want: "run 18750 knee-18750"},
		// no report at all: missed; no row in summary.csv: clean, but only one miss
		{cmd: "next", want: "run 18750 knee-18750-try2"},
		// passed: bisection between 18750 and 37500
		{do: func() {
			copyFile(t, dir, "knee-37500.json", "knee-18750-try2.json", `"passed": false`, `"passed": true`)
		}, cmd: "next", want: "run 28100 knee-28100"},
	}
	for _, s := range steps {
		if s.do != nil {
			s.do()
		}
		code, stdout, stderr := rrKnee(getenv, s.cmd, dir)
		if code != 0 || stdout != s.want+"\n" {
			t.Fatalf("rr-knee %s: exit %d, %q, want %q\n%s", s.cmd, code, stdout, s.want, stderr)
		}
	}

	st, err := loadState(statePath(dir))
	if err != nil {
		t.Fatal(err)
	}
	want := &state{
		Config: knee.Config{Start: 37500, Max: 37500, Precision: 0.05, Tries: 4, MaxSteal: 0.03, Confirm: true},
		Runs: []runResult{
			{Run: "knee-37500", Passed: false, Steal: steal(0.12)},
			{Run: "knee-37500-try2", Passed: false},
			{Run: "knee-18750", Passed: false},
			{Run: "knee-18750-try2", Passed: true},
		},
	}
	if !reflect.DeepEqual(st, want) {
		got, _ := json.Marshal(st)
		w, _ := json.Marshal(want)
		t.Fatalf("state\n got %s\nwant %s", got, w)
	}
	s, err := st.search()
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := s.Next(); !ok || r.Name() != "knee-28100" {
		t.Errorf("the replayed search asks for %v, %v; want knee-28100", r, ok)
	}
	if o := s.Outcome(); o != (knee.Outcome{Knee: 18750, LowestFailing: 37500}) {
		t.Errorf("replayed outcome %+v", o)
	}
}

func TestNextAfterTheEnd(t *testing.T) {
	dir := t.TempDir()
	getenv := env(map[string]string{"KNEE_MAX": "0"})
	copyFile(t, dir, "knee-37500.json", "knee-5000.json", `"passed": false`, `"passed": true`)
	for _, cmd := range []string{"start", "next", "next"} {
		want := "done 5000 0\n"
		if cmd == "start" {
			want = "run 5000 knee-5000\n"
		}
		if code, stdout, stderr := rrKnee(getenv, cmd, dir); code != 0 || stdout != want {
			t.Fatalf("rr-knee %s: exit %d, %q, want %q\n%s", cmd, code, stdout, want, stderr)
		}
	}
	st, err := loadState(statePath(dir))
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Runs) != 1 {
		t.Errorf("a next after the end recorded a run: %+v", st.Runs)
	}
}

func TestNextRefusesAnotherSearchsState(t *testing.T) {
	cases := []struct {
		name, state, err string
	}{
		{name: "not JSON", state: `{"config":`, err: "knee-search.json: unexpected end of JSON input"},
		{name: "another search's run", state: `{"config":{"start":5000,"max":320000,"precision":0.05,"tries":4,"max_steal":0.03,"confirm":true},"runs":[{"run":"knee-6000","passed":true}]}`,
			err: `run 1 is knee-6000, where the search asks for "knee-5000"`},
		{name: "a run after the end", state: `{"config":{"start":5000,"max":0,"precision":0.05,"tries":4,"max_steal":0.03,"confirm":true},"runs":[{"run":"knee-5000","passed":true},{"run":"knee-10000","passed":true}]}`,
			err: `run 2 is knee-10000, where the search asks for "none"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(statePath(dir), []byte(tc.state), 0o644); err != nil {
				t.Fatal(err)
			}
			code, _, stderr := rrKnee(env(nil), "next", dir)
			if code != 1 || !strings.Contains(stderr, tc.err) {
				t.Errorf("exit %d, stderr %q; want 1 and %q", code, stderr, tc.err)
			}
		})
	}
}

func TestReportPassed(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name, report string
		want         bool
	}{
		{name: "passed", report: `{"slo":{"passed":true}}`, want: true},
		{name: "missed", report: `{"slo":{"passed":false,"failures":["p99"]}}`},
		{name: "passed null", report: `{"slo":{"passed":null}}`},
		{name: "no slo", report: `{"target_rps":5000}`},
		{name: "slo not an object", report: `{"slo":"passed"}`},
		{name: "not JSON", report: `{"slo":`},
		{name: "empty file", report: ``},
		{name: "no file"},
		{name: "jq's truth: 0 is true", report: `{"slo":{"passed":0}}`, want: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".json")
			if tc.name != "no file" {
				if err := os.WriteFile(path, []byte(tc.report), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if got := reportPassed(path); got != tc.want {
				t.Errorf("%v, want %v", got, tc.want)
			}
		})
	}
	if reportPassed(filepath.Join("testdata", "knee-37500.json")) {
		t.Error("testdata/knee-37500.json missed its p99: read as passed")
	}
}

func TestSummarySteal(t *testing.T) {
	summary := filepath.Join("testdata", "summary.csv")
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name, path, step string
		want             *float64
		err              string
	}{
		{name: "zero", path: summary, step: "knee-5000", want: steal(0)},
		{name: "a value", path: summary, step: "knee-37500", want: steal(0.12)},
		{name: "empty: unknown", path: summary, step: "knee-37500-try2"},
		{name: "a step recorded twice: the last row", path: summary, step: "knee-36300", want: steal(0.004)},
		{name: "no row", path: summary, step: "knee-40000"},
		{name: "no file", path: filepath.Join(dir, "none.csv"), step: "knee-5000"},
		{name: "empty file", path: write("empty.csv", ""), step: "knee-5000"},
		{name: "no cpu_steal column", path: write("old.csv", "step,broker\n\"knee-5000\",\"mosquitto\"\n"), step: "knee-5000", err: "no step or cpu_steal column"},
		{name: "not a number", path: write("bad.csv", "step,cpu_steal\n\"knee-5000\",lots\n"), step: "knee-5000", err: `cpu_steal "lots" is not a number`},
		{name: "a short row is skipped", path: write("short.csv", "step,broker,cpu_steal\n\"knee-5000\"\n\"knee-5000\",\"m\",0.5\n"), step: "knee-5000", want: steal(0.5)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := summarySteal(tc.path, tc.step)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (got == nil) != (tc.want == nil) || got != nil && *got != *tc.want {
				t.Errorf("%v, want %v", deref(got), deref(tc.want))
			}
		})
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}
