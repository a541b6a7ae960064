package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// The fleet rules (loadgen-v2's FLEET_* variables, issue 20): a container
// that sets FLEET_ID is one instance of a fleet, which starts all its
// instances together behind a barrier, runs them for DURATION and lets
// index 0 report for all. That holds only in an Indexed Job that runs every
// index at once and exactly once, and keeps the others running when one
// fails (index 0 must live to report the missing one):
//
//   - the workload is a Job with completionMode Indexed, restartPolicy Never,
//     and parallelism = completions = FLEET_SIZE;
//   - backoffLimitPerIndex is 0 (no index is retried), backoffLimit is unset
//     or at least completions and maxFailedIndexes unset or completions (a
//     Job that fails as a whole deletes its running pods, index 0 included),
//     and no podFailurePolicy rule uses FailJob or Ignore (FailJob does the
//     same, Ignore starts a replacement that cannot join);
//   - FLEET_INDEX is auto (the completion index), CLIENT_ID_OFFSET unset or 0
//     (the offset follows the index), DURATION above 0, FLEET_SIZE 1..1000,
//     a literal FLEET_ID a valid id;
//   - METRICS_LINGER is at least 30s with METRICS_ADDR set: index 0 serves
//     the merged report during it (make k8s-fleet-run fetches it);
//   - activeDeadlineSeconds, if set, leaves room for the run: FLEET_TIMEOUT +
//     DURATION + 2 x REQUEST_TIMEOUT + METRICS_LINGER + 60 s;
//   - no other loadgen workload runs in the same namespace of the same
//     deployment: both would own client ids from 0 and load the broker.

// maxFleetSize is loadgen-v2's largest FLEET_SIZE.
const maxFleetSize = 1000

// minFleetLinger is the least METRICS_LINGER of a fleet's pods.
const minFleetLinger = 30 * time.Second

var fleetIDRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// fleetEnv is a container's environment: literal values, and the names set
// from elsewhere (valueFrom) with an empty value.
type fleetEnv struct {
	lit  map[string]string
	from map[string]bool
}

func envOf(c corev1.Container) fleetEnv {
	e := fleetEnv{lit: map[string]string{}, from: map[string]bool{}}
	for _, v := range c.Env {
		if v.ValueFrom != nil {
			e.from[v.Name] = true
			delete(e.lit, v.Name)
		} else {
			e.lit[v.Name] = v.Value
			delete(e.from, v.Name)
		}
	}
	return e
}

func (e fleetEnv) has(name string) bool { _, ok := e.lit[name]; return ok || e.from[name] }

// duration returns the literal duration of name, def when unset.
func (e fleetEnv) duration(name string, def time.Duration) (time.Duration, error) {
	v, ok := e.lit[name]
	if !ok || v == "" {
		return def, nil
	}
	if v == "0" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s=%q is not a duration", name, v)
	}
	return d, nil
}

// isLoadgen tells a loadgen-v2 container: its image, or its variables.
func isLoadgen(c corev1.Container) bool {
	e := envOf(c)
	return strings.Contains(c.Image, "loadgen-v2") || (e.has("VIRTUAL_CLIENTS") && e.has("INTERVAL_MS"))
}

// checkFleet applies the fleet rules to one workload.
func checkFleet(w workload, fail func(format string, a ...any)) {
	for _, c := range w.template.Spec.Containers {
		e := envOf(c)
		if !e.has("FLEET_ID") {
			continue
		}
		cfail := func(format string, a ...any) { fail("container %q: "+format, append([]any{c.Name}, a...)...) }
		job, ok := w.o.obj.(*batchv1.Job)
		if !ok {
			cfail("FLEET_ID in a %s: its pods would restart after DURATION and start unrelated runs, and get no index; run a fleet as an Indexed Job (k8s/loadgen-fleet.yaml)", kindOf(w.o))
			continue
		}
		size := 0
		switch s, ok := e.lit["FLEET_SIZE"]; {
		case !ok:
			cfail("FLEET_ID without FLEET_SIZE: set FLEET_SIZE to the Job's completions")
		default:
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > maxFleetSize {
				cfail("FLEET_SIZE=%q is not a whole number from 1 to %d", s, maxFleetSize)
			} else {
				size = n
			}
		}
		if id, ok := e.lit["FLEET_ID"]; ok && !fleetIDRe.MatchString(id) {
			cfail("FLEET_ID=%q must be 1-64 letters, digits, '-' or '_'", id)
		}
		if v, ok := e.lit["FLEET_INDEX"]; (ok && v != "auto") || e.from["FLEET_INDEX"] {
			cfail("FLEET_INDEX=%q: in an Indexed Job it must be auto (the pod's completion index); one value for all pods is a duplicate index", v)
		}
		if v, ok := e.lit["CLIENT_ID_OFFSET"]; (ok && v != "0") || e.from["CLIENT_ID_OFFSET"] {
			cfail("CLIENT_ID_OFFSET=%q: leave it unset in a fleet, the offset is FLEET_INDEX x VIRTUAL_CLIENTS", v)
		}
		duration, err := e.duration("DURATION", 0)
		switch {
		case err != nil:
			cfail("%v", err)
		case duration <= 0:
			cfail("DURATION is not set above 0: a fleet run has a fixed length, counted from its common start")
		}
		linger, lerr := e.duration("METRICS_LINGER", 0)
		switch {
		case lerr != nil:
			cfail("%v", lerr)
		case linger < minFleetLinger:
			cfail("METRICS_LINGER=%v is below %v: index 0 serves the merged report at /fleet/report only during it (make k8s-fleet-run fetches it through the API server)", linger, minFleetLinger)
		}
		if v, ok := e.lit["METRICS_ADDR"]; ok && v == "" {
			cfail("METRICS_ADDR is empty: index 0 serves the merged report on it")
		}

		spec := job.Spec
		if spec.CompletionMode == nil || *spec.CompletionMode != batchv1.IndexedCompletion {
			fail("completionMode is not Indexed: the fleet's pods get their FLEET_INDEX from the completion index")
		}
		completions, parallelism := int32Or(spec.Completions, 1), int32Or(spec.Parallelism, 1)
		if size > 0 && (int(completions) != size || int(parallelism) != size) {
			fail("parallelism=%d, completions=%d and FLEET_SIZE=%d differ: set all three to the fleet's size (every instance runs at once behind the start barrier)", parallelism, completions, size)
		}
		if rp := w.template.Spec.RestartPolicy; rp != corev1.RestartPolicyNever {
			fail("restartPolicy is %q: a fleet instance runs once (Never); a restarted one cannot join a fleet that has started", rp)
		}
		if spec.BackoffLimitPerIndex == nil || *spec.BackoffLimitPerIndex != 0 {
			fail("backoffLimitPerIndex is not 0: no index may be retried (a new instance cannot join a fleet that has started), and a failed one must not stop the others")
		}
		if spec.BackoffLimit != nil && *spec.BackoffLimit < completions {
			fail("backoffLimit=%d: at that many failed pods the Job fails and deletes its running pods, index 0 and the fleet's report included; leave it unset (backoffLimitPerIndex: 0 already forbids retries)", *spec.BackoffLimit)
		}
		if spec.MaxFailedIndexes != nil && *spec.MaxFailedIndexes < completions {
			fail("maxFailedIndexes=%d: beyond it the Job fails and deletes its running pods, index 0 and the fleet's report included; leave it unset", *spec.MaxFailedIndexes)
		}
		if pfp := spec.PodFailurePolicy; pfp != nil {
			for i, r := range pfp.Rules {
				switch r.Action {
				case batchv1.PodFailurePolicyActionFailJob:
					fail("podFailurePolicy rule %d: FailJob deletes the running pods, index 0 and the fleet's report included; use FailIndex", i)
				case batchv1.PodFailurePolicyActionIgnore:
					fail("podFailurePolicy rule %d: Ignore starts a replacement pod, which cannot join a fleet that has started; use FailIndex", i)
				}
			}
		}
		if spec.ActiveDeadlineSeconds != nil && duration > 0 && lerr == nil {
			timeout, err1 := e.duration("FLEET_TIMEOUT", 2*time.Minute)
			reqTimeout, err2 := e.duration("REQUEST_TIMEOUT", 10*time.Second)
			if err1 != nil || err2 != nil {
				for _, err := range []error{err1, err2} {
					if err != nil {
						cfail("%v", err)
					}
				}
			} else if need := timeout + duration + 2*reqTimeout + linger + time.Minute; time.Duration(*spec.ActiveDeadlineSeconds)*time.Second < need {
				fail("activeDeadlineSeconds=%d is shorter than the run may take: FLEET_TIMEOUT %v + DURATION %v + 2 x REQUEST_TIMEOUT %v + METRICS_LINGER %v + 1m = %d s (at the deadline the Job deletes its pods)",
					*spec.ActiveDeadlineSeconds, timeout, duration, reqTimeout, linger, int(need.Seconds()))
			}
		}
	}
}

// checkFleetAlone refuses a fleet beside another loadgen workload with pods
// in the same namespace: both own client ids from 0 (the fleet by index, the
// others by ordinal or offset) and would answer each other's replies.
func checkFleetAlone(workloads []workload, fail func(o object, format string, a ...any)) {
	for _, f := range workloads {
		if _, ok := f.o.obj.(*batchv1.Job); !ok || !setsFleetID(f) {
			continue
		}
		for _, o := range workloads {
			if o.o.id() == f.o.id() || o.o.meta().GetNamespace() != f.o.meta().GetNamespace() || (o.replicas != nil && *o.replicas == 0) {
				continue
			}
			for _, c := range o.template.Spec.Containers {
				if isLoadgen(c) {
					fail(f.o, "runs beside the loadgen workload %s: both use client ids from 0 and load the same broker; deploy the fleet without it (k8s/overlays/fleet) or scale it to 0", o.o.id())
					break
				}
			}
		}
	}
}

func setsFleetID(w workload) bool {
	for _, c := range w.template.Spec.Containers {
		if envOf(c).has("FLEET_ID") {
			return true
		}
	}
	return false
}

func int32Or(p *int32, def int32) int32 {
	if p == nil {
		return def
	}
	return *p
}
