package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/cmd/rr-knee/internal/knee"
)

// variables is the table of the search's variables for usage; the defaults
// are knee.Default's.
const variables = `  KNEE_START      5000    the first offered rate, req/s (at least 100), doubled while the steps pass
  KNEE_MAX        320000  the highest rate the doubling goes to, req/s
  KNEE_PRECISION  0.05    bisection until the lowest failing rate is within this share of the knee
  KNEE_TRIES      4       the most runs a rate gets
  KNEE_MAX_STEAL  0.03    a missed run during which the hypervisor stole at most this share of the CPU is clean
  KNEE_CONFIRM    1       a rate fails after two missed runs, one of them clean; 0: at the first clean miss`

// minStart is the lowest KNEE_START, req/s: the halving stops below 200.
const minStart = 100

// configFromEnv reads the KNEE_* variables through getenv; unset or empty
// means the default. The error names every variable that is wrong.
func configFromEnv(getenv func(string) string) (knee.Config, error) {
	c := knee.Default()
	var errs []error
	if v := getenv("KNEE_START"); v != "" {
		n, ok := rate(v)
		if !ok || n < minStart {
			errs = append(errs, fmt.Errorf("KNEE_START=%s: want a rate of at least %d req/s", v, minStart))
		}
		c.Start = n
	}
	if v := getenv("KNEE_MAX"); v != "" {
		n, ok := rate(v)
		if !ok {
			errs = append(errs, fmt.Errorf("KNEE_MAX=%s: want a rate in req/s", v))
		}
		c.Max = n
	}
	if v := getenv("KNEE_PRECISION"); v != "" {
		f, ok := share(v)
		if !ok {
			errs = append(errs, fmt.Errorf("KNEE_PRECISION=%s: want a share of the knee such as 0.05 (0 or more)", v))
		}
		c.Precision = f
	}
	if v := getenv("KNEE_TRIES"); v != "" {
		n, ok := rate(v)
		if !ok || n < 1 {
			errs = append(errs, fmt.Errorf("KNEE_TRIES=%s: want a number of runs of at least 1", v))
		}
		c.Tries = n
	}
	if v := getenv("KNEE_MAX_STEAL"); v != "" {
		f, ok := share(v)
		if !ok {
			errs = append(errs, fmt.Errorf("KNEE_MAX_STEAL=%s: want a share of the CPU time such as 0.03 (0 or more)", v))
		}
		c.MaxSteal = f
	}
	c.Confirm = getenv("KNEE_CONFIRM") != "0"
	return c, errors.Join(errs...)
}

// rate parses a whole number written with digits only, as the script's
// is_uint accepts it (no sign, no spaces).
func rate(s string) (int, bool) {
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}

// share parses a number ≥ 0 written as a JSON number (the script puts
// KNEE_PRECISION into manifest.json as it is).
func share(s string) (float64, bool) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || !json.Valid([]byte(s)) || f < 0 {
		return 0, false
	}
	return f, true
}
