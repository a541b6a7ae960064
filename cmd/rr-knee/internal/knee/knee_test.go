package knee

import (
	"slices"
	"strings"
	"testing"
)

// system answers a run: it passes up to capacity req/s with no steal,
// unless the run's name is in runs.
type system struct {
	capacity int
	runs     map[string]Result
}

func (s system) result(r Run) Result {
	if res, ok := s.runs[r.Name()]; ok {
		return res
	}
	return Result{Passed: r.Rate <= s.capacity}
}

// drive runs a search to its end against sys: the names of its runs and
// the outcome.
func drive(t *testing.T, c Config, sys system) ([]string, Outcome) {
	t.Helper()
	s := New(c)
	var names []string
	for {
		r, ok := s.Next()
		if !ok {
			return names, s.Outcome()
		}
		if r2, _ := s.Next(); r2 != r {
			t.Fatalf("Next changed without a Record: %v then %v", r, r2)
		}
		if len(names) > 200 {
			t.Fatalf("no end after %d runs: %s", len(names), strings.Join(names, " "))
		}
		names = append(names, r.Name())
		s.Record(sys.result(r))
	}
}

func with(f func(*Config)) Config {
	c := Default()
	f(&c)
	return c
}

// dirty is a failed run with more steal than the default MaxSteal (0.03).
var dirty = Result{Steal: 0.10}

// The expected runs are derived by hand from the script's bash before this
// package (git eda5fad, scripts/benchmark.sh): knee_step lines 520-538
// (a pass at line 530, a clean run at 533, a failed rate at 534 and 537),
// knee lines 542-570 (doubling 546-555 with the KNEE_MAX test at 549,
// halving 556-562, bisection 563-569: the precision test at 564, the
// midpoint at 565, its bounds at 566).
func TestSearch(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		sys  system
		runs string
		want Outcome
	}{
		{
			name: "all pass: doubling up to KNEE_MAX (320000 = 2·160000 still runs, 549)",
			cfg:  Default(), sys: system{capacity: 1 << 30},
			runs: "knee-5000 knee-10000 knee-20000 knee-40000 knee-80000 knee-160000 knee-320000",
			want: Outcome{Knee: 320000},
		},
		{
			name: "KNEE_START above KNEE_MAX: the start runs, nothing after it",
			cfg:  with(func(c *Config) { c.Max = 4000 }), sys: system{capacity: 1 << 30},
			runs: "knee-5000",
			want: Outcome{Knee: 5000},
		},
		{
			// 40000 misses twice (534); mids 30000, 35000, 37500 (missed
			// twice), then (35000+37500)/2 = 36250 → 36300 (565, half up);
			// 37500 − 36300 = 1200 ≤ 36300·0.05 = 1815 (564).
			name: "pass, fail, bisect to KNEE_PRECISION",
			cfg:  Default(), sys: system{capacity: 37000},
			runs: "knee-5000 knee-10000 knee-20000 knee-40000 knee-40000-try2 knee-30000 knee-35000 knee-37500 knee-37500-try2 knee-36300",
			want: Outcome{Knee: 36300, LowestFailing: 37500},
		},
		{
			// 5000, 2500, 1250 miss (556-562), 625 passes; mids 900
			// ((625+1250)/2 = 937 → 900), 1100, 1000; then (1000+1100)/2 =
			// 1050 → 1100 = hi stops it (566) although 100 > 1000·0.05.
			name: "first step fails: halving down, then bisection",
			cfg:  Default(), sys: system{capacity: 1000},
			runs: "knee-5000 knee-5000-try2 knee-2500 knee-2500-try2 knee-1250 knee-1250-try2 knee-625 knee-900 knee-1100 knee-1100-try2 knee-1000",
			want: Outcome{Knee: 1000, LowestFailing: 1100},
		},
		{
			name: "nothing passes: halving stops below 200 req/s, no knee",
			cfg:  Default(), sys: system{capacity: 0},
			runs: "knee-5000 knee-5000-try2 knee-2500 knee-2500-try2 knee-1250 knee-1250-try2 knee-625 knee-625-try2 knee-312 knee-312-try2 knee-156 knee-156-try2",
			want: Outcome{LowestFailing: 156},
		},
		{
			name: "KNEE_START 100 fails: no halving at all (100 < 200)",
			cfg:  with(func(c *Config) { c.Start = 100 }), sys: system{capacity: 0},
			runs: "knee-100 knee-100-try2",
			want: Outcome{LowestFailing: 100},
		},
		{
			// two misses with steal are not enough (534 needs a clean one);
			// the third is clean: 40000 fails.
			name: "high steal retried, then a clean miss fails the rate",
			cfg:  with(func(c *Config) { c.Start = 20000; c.Precision = 0.5 }),
			sys: system{capacity: 37000, runs: map[string]Result{
				"knee-40000": dirty, "knee-40000-try2": dirty,
			}},
			runs: "knee-20000 knee-40000 knee-40000-try2 knee-40000-try3 knee-30000",
			want: Outcome{Knee: 30000, LowestFailing: 40000},
		},
		{
			name: "high steal retried, then the rate passes",
			cfg:  with(func(c *Config) { c.Start = 20000; c.Max = 40000 }),
			sys: system{capacity: 0, runs: map[string]Result{
				"knee-20000": {Passed: true}, "knee-40000": dirty, "knee-40000-try2": dirty, "knee-40000-try3": {Passed: true},
			}},
			runs: "knee-20000 knee-40000 knee-40000-try2 knee-40000-try3",
			want: Outcome{Knee: 40000},
		},
		{
			name: "high steal on every try: the rate fails when KNEE_TRIES runs are used (537)",
			cfg:  with(func(c *Config) { c.Start = 20000; c.Precision = 0.5 }),
			sys: system{capacity: 37000, runs: map[string]Result{
				"knee-40000": dirty, "knee-40000-try2": dirty, "knee-40000-try3": dirty, "knee-40000-try4": dirty,
			}},
			runs: "knee-20000 knee-40000 knee-40000-try2 knee-40000-try3 knee-40000-try4 knee-30000",
			want: Outcome{Knee: 30000, LowestFailing: 40000},
		},
		{
			name: "steal equal to KNEE_MAX_STEAL is clean (s <= m, 533)",
			cfg:  with(func(c *Config) { c.Start = 20000; c.Precision = 0.5 }),
			sys: system{capacity: 37000, runs: map[string]Result{
				"knee-40000": {Steal: 0.03}, "knee-40000-try2": dirty,
			}},
			runs: "knee-20000 knee-40000 knee-40000-try2 knee-30000",
			want: Outcome{Knee: 30000, LowestFailing: 40000},
		},
		{
			name: "a flapping step: a clean miss, then a pass (530)",
			cfg:  with(func(c *Config) { c.Start = 20000; c.Max = 40000 }),
			sys: system{capacity: 37000, runs: map[string]Result{
				"knee-40000-try2": {Passed: true},
			}},
			runs: "knee-20000 knee-40000 knee-40000-try2",
			want: Outcome{Knee: 40000},
		},
		{
			name: "a miss below the capacity (a neighbour's burst) bounds the bisection",
			cfg:  with(func(c *Config) { c.Start = 20000 }),
			sys: system{capacity: 37000, runs: map[string]Result{
				"knee-35000": {}, "knee-35000-try2": {Steal: 0.5},
			}},
			// 35000 fails: hi 35000; 32500 and 33800 pass; 35000 − 33800 = 1200 ≤ 33800·0.05
			runs: "knee-20000 knee-40000 knee-40000-try2 knee-30000 knee-35000 knee-35000-try2 knee-32500 knee-33800",
			want: Outcome{Knee: 33800, LowestFailing: 35000},
		},
		{
			name: "KNEE_CONFIRM=0: the first clean miss fails the rate",
			cfg:  with(func(c *Config) { c.Start = 20000; c.Precision = 0.5; c.Confirm = false }),
			sys:  system{capacity: 37000},
			runs: "knee-20000 knee-40000 knee-30000",
			want: Outcome{Knee: 30000, LowestFailing: 40000},
		},
		{
			name: "KNEE_CONFIRM=0: a miss with steal is run again",
			cfg:  with(func(c *Config) { c.Start = 20000; c.Precision = 0.5; c.Confirm = false }),
			sys:  system{capacity: 37000, runs: map[string]Result{"knee-40000": dirty}},
			runs: "knee-20000 knee-40000 knee-40000-try2 knee-30000",
			want: Outcome{Knee: 30000, LowestFailing: 40000},
		},
		{
			name: "KNEE_TRIES=1: one miss fails the rate, steal or not",
			cfg:  with(func(c *Config) { c.Start = 20000; c.Precision = 0.5; c.Tries = 1 }),
			sys:  system{capacity: 37000, runs: map[string]Result{"knee-40000": dirty}},
			runs: "knee-20000 knee-40000 knee-30000",
			want: Outcome{Knee: 30000, LowestFailing: 40000},
		},
		{
			name: "KNEE_TRIES=0: every rate fails without a run",
			cfg:  with(func(c *Config) { c.Tries = 0 }),
			sys:  system{capacity: 1 << 30},
			runs: "",
			want: Outcome{LowestFailing: 156},
		},
		{
			// 1200 passes, 1300 fails; (1200+1300)/2 = 1250 → 1300 = hi (566).
			name: "KNEE_PRECISION=0: bisection down to the hundreds",
			cfg:  with(func(c *Config) { c.Start = 1000; c.Precision = 0; c.Confirm = false }),
			sys:  system{capacity: 1234},
			runs: "knee-1000 knee-2000 knee-1500 knee-1300 knee-1200",
			want: Outcome{Knee: 1200, LowestFailing: 1300},
		},
		{
			// lo 2000, hi 2200: 200 > 2000·0.1 = 200 is false (564), though
			// the midpoint 2100 lies between them.
			name: "hi − lo equal to lo·KNEE_PRECISION stops the bisection",
			cfg:  with(func(c *Config) { c.Start = 4400; c.Confirm = false; c.Precision = 0.1 }),
			sys:  system{capacity: 2050},
			runs: "knee-4400 knee-2200 knee-1100 knee-1700 knee-2000",
			want: Outcome{Knee: 2000, LowestFailing: 2200},
		},
		{
			name: "hi − lo just above lo·KNEE_PRECISION: one more step",
			cfg:  with(func(c *Config) { c.Start = 4400; c.Confirm = false; c.Precision = 0.0999 }),
			sys:  system{capacity: 2050},
			runs: "knee-4400 knee-2200 knee-1100 knee-1700 knee-2000 knee-2100",
			want: Outcome{Knee: 2000, LowestFailing: 2100},
		},
		{
			// lo 2000, hi 2100, 100 > 2000·0.0499: mid (2000+2100)/2 = 2050
			// → 2100 = hi (566) ends it all the same.
			name: "the midpoint rounds onto hi",
			cfg:  with(func(c *Config) { c.Start = 4200; c.Confirm = false; c.Precision = 0.0499 }),
			sys:  system{capacity: 2050},
			runs: "knee-4200 knee-2100 knee-1050 knee-1600 knee-1900 knee-2000",
			want: Outcome{Knee: 2000, LowestFailing: 2100},
		},
		{
			// lo 125, hi 250: mid (125+250)/2 = 187 → 200 passes; then 250 −
			// 200 = 50 > 10: mid 225 → 200 = lo (566).
			name: "the midpoint rounds onto lo",
			cfg:  with(func(c *Config) { c.Start = 500; c.Confirm = false }),
			sys:  system{capacity: 200},
			runs: "knee-500 knee-250 knee-125 knee-200",
			want: Outcome{Knee: 200, LowestFailing: 250},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			names, got := drive(t, tc.cfg, tc.sys)
			if want := strings.Fields(tc.runs); !slices.Equal(names, want) {
				t.Errorf("runs\n got %s\nwant %s", strings.Join(names, " "), strings.Join(want, " "))
			}
			if got != tc.want {
				t.Errorf("outcome %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestRunName(t *testing.T) {
	for r, want := range map[Run]string{
		{Rate: 5000, Try: 1}:  "knee-5000",
		{Rate: 36300, Try: 2}: "knee-36300-try2",
		{Rate: 100, Try: 4}:   "knee-100-try4",
	} {
		if got := r.Name(); got != want {
			t.Errorf("%+v: %q, want %q", r, got, want)
		}
	}
}

func TestRecordAfterTheEndPanics(t *testing.T) {
	s := New(with(func(c *Config) { c.Max = 0 }))
	s.Record(Result{Passed: true})
	if _, ok := s.Next(); ok {
		t.Fatal("search not over after its only step")
	}
	defer func() {
		if recover() == nil {
			t.Error("Record after the end did not panic")
		}
	}()
	s.Record(Result{Passed: true})
}
