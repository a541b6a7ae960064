package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/cliutil"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/envconf"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/config"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/fleet"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/report"
)

// fleetRun is the fleet side of one loadgen's run (nil methods: a single
// run): the member that joins and reports, and, on the coordinating
// instance, the coordinator running beside the load.
type fleetRun struct {
	res    *config.Resolved
	log    *slog.Logger
	member *fleet.Member
	cancel context.CancelFunc
	done   chan coordOutcome // nil unless coordinating
}

type coordOutcome struct {
	res *fleet.Result
	err error
}

// startFleet makes res's member and starts its coordinator when it is the
// coordinating instance; nil for a single run. The coordinator outlives a
// signal to this process (it still collects the others' reports, bounded
// by FLEET_TIMEOUT) and stops when abort is called.
func startFleet(ctx context.Context, res *config.Resolved, log *slog.Logger) *fleetRun {
	if res.Fleet == nil {
		return nil
	}
	fr := &fleetRun{res: res, log: log, member: fleet.NewMember(res, log)}
	if !res.Fleet.Coordinate {
		return fr
	}
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	fr.cancel, fr.done = cancel, make(chan coordOutcome, 1)
	ref := fr.member.Hello()
	f := res.Fleet
	go func() {
		r, err := fleet.Coordinate(cctx, fleet.Options{MQTT: res.MQTT, ID: f.ID, Size: f.Size, Timeout: f.Timeout, Lead: f.Lead, Reference: &ref, Log: log})
		fr.done <- coordOutcome{r, err}
	}()
	return fr
}

// join is the engine's start: the member's join (nil fr: none).
func (fr *fleetRun) join() func(context.Context) (time.Time, error) {
	if fr == nil {
		return nil
	}
	return fr.member.Join
}

// finish hands this instance's report (or its failure) to the coordinator.
func (fr *fleetRun) finish(rep *report.Report, runErr error) {
	if fr == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if runErr != nil || rep == nil {
		if runErr == nil {
			runErr = errors.New("no report")
		}
		fr.member.Fail(ctx, runErr)
		return
	}
	if err := fr.member.Report(ctx, rep); err != nil {
		fr.log.Error("fleet: the report did not reach the coordinator", "err", err)
	}
}

// verdict waits for the coordinator (when this instance coordinates),
// prints the fleet's outcome, writes FLEET_RESULTS, stores the merged
// report for /fleet/report, and returns the fleet's exit status; own is
// this instance's status, returned as it is when not coordinating.
func (fr *fleetRun) verdict(own int, stdout io.Writer, store func(*report.Report)) (int, error) {
	if fr == nil || fr.done == nil {
		return own, nil
	}
	out := <-fr.done
	fr.cancel()
	return fleetOutcome(fr.res.Fleet.ID, fr.res.Fleet.Results, out.res, out.err, stdout, store)
}

// refused returns, when this instance coordinates and its run failed
// because the fleet did not start (it received the abort it announced), the
// coordinator's own account: its exit status and reason. 0 otherwise.
func (fr *fleetRun) refused() (int, error) {
	if fr == nil || fr.done == nil || !fr.member.Aborted() {
		return 0, nil
	}
	out := <-fr.done // it announced the abort and is returning
	fr.cancel()
	var ref *fleet.Refusal
	if errors.As(out.err, &ref) {
		return ref.Code, fmt.Errorf("fleet %s not started: %w", fr.res.Fleet.ID, ref)
	}
	return 0, nil
}

// abort stops the coordinator (the instance's own run failed before the
// start) and waits for it.
func (fr *fleetRun) abort() {
	if fr == nil || fr.done == nil {
		return
	}
	fr.cancel()
	<-fr.done
}

// fleetOutcome prints and writes a coordinator's outcome and maps it to the
// exit status: a refusal's code, 1 for a runtime error, else Result.Code.
func fleetOutcome(id, dir string, r *fleet.Result, err error, stdout io.Writer, store func(*report.Report)) (int, error) {
	var ref *fleet.Refusal
	if errors.As(err, &ref) {
		return ref.Code, fmt.Errorf("fleet %s not started: %w", id, err)
	}
	if errors.Is(err, report.ErrRefused) { // the members' reports contradict each other
		return cliutil.ExitConfig, err
	}
	if err != nil {
		return cliutil.ExitError, err
	}
	fmt.Fprintf(stdout, "\n=== Fleet %s: merged report of %d instances ===\n", id, len(r.Reports))
	r.WriteText(stdout, id)
	if r.Merged != nil && store != nil {
		store(r.Merged)
	}
	if dir != "" {
		if err := r.Write(dir, id); err != nil {
			return cliutil.ExitError, err
		}
	}
	return r.Code(), nil
}

// Coordinate is `loadgen-v2 fleet`: the fleet's coordinator as a command
// of its own (the instances run with FLEET_COORDINATOR=external). It
// returns the fleet's exit status.
func Coordinate(ctx context.Context, stdout, stderr io.Writer) int {
	var c config.Coordinator
	if err := envconf.Load(&c); err != nil {
		fmt.Fprintln(stderr, "loadgen-v2 fleet:", err)
		return cliutil.ExitConfig
	}
	opts, err := c.MQTT()
	if err != nil {
		fmt.Fprintln(stderr, "loadgen-v2 fleet:", err)
		return cliutil.ExitConfig
	}
	if c.FleetResults == "" {
		c.FleetResults = "results/fleet-" + time.Now().Format("20060102-150405")
	}
	log := cliutil.Logger(stderr, c.LogLevel)
	r, err := fleet.Coordinate(ctx, fleet.Options{MQTT: opts, ID: c.FleetID, Size: c.FleetSize, Timeout: c.FleetTimeout, Lead: c.FleetLead, Log: log})
	code, err := fleetOutcome(c.FleetID, c.FleetResults, r, err, stdout, nil)
	if err != nil {
		fmt.Fprintln(stderr, "loadgen-v2 fleet:", err)
	} else {
		fmt.Fprintf(stderr, "loadgen-v2 fleet: results in %s\n", c.FleetResults)
	}
	return code
}
