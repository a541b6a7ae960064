// Package fleet runs many loadgen instances as one run: one start, one
// length, one merged report and one verdict. The instances and their
// coordinator meet on the broker the run already uses, under
// mqtt-rr-bench/fleet/{FLEET_ID}/:
//
//	hello/{index}   instance → coordinator: who it is (run id, index, client
//	                range, settings digest); repeated every HelloEvery until
//	                the start, so that the coordinator may come up last
//	start           coordinator → instances, retained: the common start time
//	                and the members (index → run id), or the reason the
//	                fleet will not start (Abort)
//	report/{index}  instance → coordinator, retained: its final JSON report
//	status/{index}  the instance's Last Will, retained: it went away without
//	                a report (killed, or its run failed: Failed)
//
// The coordinator (Coordinate) waits for FLEET_SIZE distinct indexes within
// FLEET_TIMEOUT, refuses a duplicate index, a different settings digest, a
// different fleet size or overlapping client ranges (every member is told,
// and exits 2), and otherwise announces a start FLEET_START_DELAY ahead.
// Every instance counts its schedule, ramp-up and warm-up from that time
// (Member.Join). The coordinator then collects the reports until every
// member has reported or is known gone (its Will), merges them
// (report.Merge), names the missing ones, and clears the retained topics.
//
// Retained messages of an earlier run under the same fleet id are harmless:
// every message carries the run id of its instance, and the coordinator
// reads only its members'.
package fleet

import (
	"fmt"
	"time"
)

// TopicRoot is the root of every fleet's control topics.
const TopicRoot = "mqtt-rr-bench/fleet/"

// HelloEvery is how often an instance repeats its hello until the start.
const HelloEvery = time.Second

// Topics are the control topics of one fleet.
type Topics struct{ id string }

// TopicsOf returns the control topics of fleet id.
func TopicsOf(id string) Topics { return Topics{id} }

func (t Topics) base() string { return TopicRoot + t.id + "/" }

// Hello is where instance index says hello; HelloAll matches every index.
func (t Topics) Hello(index int) string { return fmt.Sprintf("%shello/%d", t.base(), index) }

// Report is where instance index publishes its report.
func (t Topics) Report(index int) string { return fmt.Sprintf("%sreport/%d", t.base(), index) }

// Status is instance index's Last Will.
func (t Topics) Status(index int) string { return fmt.Sprintf("%sstatus/%d", t.base(), index) }

// Start is where the coordinator announces the start.
func (t Topics) Start() string { return t.base() + "start" }

// All is the filter of every control topic of the fleet.
func (t Topics) All() string { return t.base() + "#" }

// Hello is an instance's announcement.
type Hello struct {
	Index    int    `json:"index"`
	Size     int    `json:"size"`
	RunID    string `json:"run_id"`
	Instance string `json:"instance"`
	Host     string `json:"host,omitempty"`
	PID      int    `json:"pid,omitempty"`
	// FirstClient and Clients are the instance's virtual-client range.
	FirstClient uint64 `json:"first_client"`
	Clients     uint64 `json:"clients"`
	// Digest hashes Settings, the settings every member must share
	// (config.FleetSettings: JSON name → JSON value).
	Digest   string            `json:"digest"`
	Settings map[string]string `json:"settings"`
	// Duration is DURATION and Drain REQUEST_TIMEOUT: the coordinator
	// waits for the reports until the start + Duration + Drain (and
	// FLEET_TIMEOUT more).
	Duration time.Duration `json:"duration"`
	Drain    time.Duration `json:"drain"`
	// Timeout is the instance's FLEET_TIMEOUT, Lead its FLEET_START_DELAY.
	Timeout time.Duration `json:"timeout"`
	Lead    time.Duration `json:"lead"`
}

// Name describes the instance for messages: "index 3 (loadgen-3 on host h,
// run 1a2b3c4d)".
func (h Hello) Name() string {
	return fmt.Sprintf("index %d (%s on host %s, run %s)", h.Index, h.Instance, h.Host, h.RunID)
}

// Start is the coordinator's announcement: the members and their common
// start, or why the fleet does not start.
type Start struct {
	// At is the common start (wall clock).
	At time.Time `json:"at"`
	// Members maps each index to its instance's run id.
	Members map[int]string `json:"members"`
	// Abort, when set, is why the fleet does not start; Code the exit
	// status every member exits with (2: the fleet's configuration is
	// wrong; 1: it could not be assembled).
	Abort string `json:"abort,omitempty"`
	Code  int    `json:"code,omitempty"`
	// Coordinator is the coordinator's id (for messages).
	Coordinator string `json:"coordinator"`
}

// Status is an instance's Last Will (Lost), or the note of a run that
// failed without a report (Failed).
type Status struct {
	RunID  string `json:"run_id"`
	Lost   bool   `json:"lost,omitempty"`
	Failed string `json:"failed,omitempty"`
}
