package main

import (
	"bytes"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var replays = flag.Int("replays", 6, "random scenarios TestSameDecisionsAsTheBash replays")

// scenario is a search's settings (KNEE_*) and a made-up system (FAKE_*, see
// testdata/replay.bash).
type scenario struct {
	name string
	vars map[string]string
}

func (s scenario) getenv(k string) string { return s.vars[k] }

func system(capacity, flapBelow, flapAbove, seed int) map[string]string {
	return map[string]string{
		"FAKE_CAPACITY": fmt.Sprint(capacity), "FAKE_FLAP_BELOW": fmt.Sprint(flapBelow),
		"FAKE_FLAP_ABOVE": fmt.Sprint(flapAbove), "FAKE_SEED": fmt.Sprint(seed),
	}
}

func merge(a, b map[string]string) map[string]string {
	maps.Copy(a, b)
	return a
}

// randomScenario draws settings around the edges of the rules and a system
// that flaps and steals.
func randomScenario(r *rand.Rand, i int) scenario {
	pick := func(vs ...string) string { return vs[r.IntN(len(vs))] }
	v := system(r.IntN(400000), []int{0, 0, 10, 30}[r.IntN(4)], []int{0, 0, 5, 20}[r.IntN(4)], r.IntN(1000))
	for k, val := range map[string]string{
		"KNEE_START":     pick("", "100", "150", "199", "200", "1000", "2100", "7300"),
		"KNEE_MAX":       pick("", "", "40000", "4000", "150000"),
		"KNEE_PRECISION": pick("", "0.05", "0.02", "0", "0.2", "0.011"),
		"KNEE_TRIES":     pick("", "1", "2", "3", "6"),
		"KNEE_MAX_STEAL": pick("", "0.03", "0", "0.02", "0.05"),
		"KNEE_CONFIRM":   pick("", "1", "0", "yes"),
	} {
		if val != "" {
			v[k] = val
		}
	}
	return scenario{name: fmt.Sprintf("random %d", i), vars: v}
}

// TestSameDecisionsAsTheBash replays the search as the script ran it in bash
// and awk before rr-knee (testdata/knee-before-go.bash, driven by
// testdata/replay.bash against a made-up system), then drives rr-knee start
// and next over the results folder it left, as the script does now: rr-knee
// must ask for the same runs in the same order and end at the same knee and
// lowest failing rate. The runs' results are the bash's own files: each
// report's slo.passed and its cpu_steal in summary.csv, or no report at all.
func TestSameDecisionsAsTheBash(t *testing.T) {
	for _, tool := range []string{"bash", "jq", "awk"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	scenarios := []scenario{
		{"defaults, clean system of 37000 req/s", system(37000, 0, 0, 1)},
		{"defaults, a system that flaps", system(37000, 20, 10, 2)},
		{"defaults, nothing passes", system(0, 0, 0, 3)},
		{"defaults, everything passes", system(1<<30, 0, 0, 4)},
		{"defaults, first rate fails", system(1800, 10, 0, 5)},
		{"hi − lo = lo·KNEE_PRECISION", merge(system(2050, 0, 0, 6), map[string]string{"KNEE_START": "4400", "KNEE_PRECISION": "0.1", "KNEE_CONFIRM": "0"})},
	}
	r := rand.New(rand.NewPCG(16, 10))
	n := *replays
	if testing.Short() {
		n = 2
	}
	for i := range n {
		scenarios = append(scenarios, randomScenario(r, i))
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			dir := t.TempDir()
			runs, done := replayBash(t, dir, sc)
			var asked []string
			line := mustRun(t, sc, "start", dir)
			for strings.HasPrefix(line, "run ") {
				name := strings.Fields(line)[2]
				if len(asked) == len(runs) || runs[len(asked)] != name {
					t.Fatalf("%v\nrr-knee asks for %s after %q;\nthe bash ran %q", sc.vars, name, asked, runs)
				}
				asked = append(asked, name)
				line = mustRun(t, sc, "next", dir)
			}
			if len(asked) != len(runs) || line != done {
				t.Fatalf("%v\nrr-knee: %q after %q;\nthe bash: %q after %q", sc.vars, line, asked, done, runs)
			}
		})
	}
}

// replayBash runs testdata/replay.bash in dir: the runs it did and its
// "done KNEE LOWEST_FAILING".
func replayBash(t *testing.T, dir string, sc scenario) ([]string, string) {
	t.Helper()
	cmd := exec.Command("bash", "testdata/replay.bash", dir)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range sc.vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("replay.bash: %v\n%s", err, stderr.String())
	}
	b, err := os.ReadFile(filepath.Join(dir, "runs.txt"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Fields(string(b)), strings.TrimSpace(string(out))
}

// mustRun runs rr-knee with sc's settings; its line of output.
func mustRun(t *testing.T, sc scenario, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run(args, sc.getenv, &stdout, &stderr); code != 0 {
		t.Fatalf("rr-knee %q: exit %d\n%s", args, code, stderr.String())
	}
	return strings.TrimSpace(stdout.String())
}
