package fleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/report"
)

// Options configure a coordinator.
type Options struct {
	// MQTT are the connection options (broker, protocol, security) of the
	// coordinator's control connection.
	MQTT mqttconn.Options
	// ID is FLEET_ID, Size FLEET_SIZE.
	ID   string
	Size int
	// Timeout is FLEET_TIMEOUT: how long to wait for every index to join,
	// and, after the members' DURATION and REQUEST_TIMEOUT, for their
	// reports. Lead is FLEET_START_DELAY.
	Timeout, Lead time.Duration
	// Reference, when set, is the hello every member must agree with (the
	// coordinating instance's own); otherwise the first hello is.
	Reference *Hello
	Log       *slog.Logger
}

// Result is a fleet run's outcome.
type Result struct {
	// Members are the members' hellos by index; Reports the reports that
	// arrived, by index.
	Members map[int]Hello
	Reports map[int]*report.Report
	// Start is the announced start.
	Start time.Time
	// Merged is the merged report, its SLO outcome extended with the
	// missing members (nil when no member reported).
	Merged *report.Report
	// Missing describes each member that sent no report.
	Missing []string
}

// Code returns the fleet's exit status: 0 when every member reported and
// the merged report meets the SLOs, else 3.
func (r *Result) Code() int {
	if r.Merged == nil || !r.Merged.SLO.Passed || len(r.Missing) > 0 {
		return 3
	}
	return 0
}

// Refusal is a fleet the coordinator refused to start: Code 2 for a
// configuration that cannot make one fleet (a duplicate index, different
// settings, overlapping clients), 1 when not every member came.
type Refusal struct {
	Code   int
	Reason string
}

func (e *Refusal) Error() string { return e.Reason }

// coordinator is the state the control connection's messages fill.
type coordinator struct {
	o      Options
	topics Topics
	id     string

	mu      sync.Mutex
	changed chan struct{} // signalled (non-blocking) on every change
	hellos  map[int]Hello
	dups    map[int][]Hello // other run ids that said hello on a taken index
	members map[int]string  // index → run id, once the start is announced
	reports map[int]*report.Report
	status  map[int]Status
	bad     []string // undecodable messages, described
}

// Coordinate runs the fleet's coordination (see the package doc): it
// returns the Result once every member reported or is gone, or a *Refusal
// when the fleet does not start. Cancelling ctx during the collection
// merges what has arrived.
func Coordinate(ctx context.Context, o Options) (*Result, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	var nonce [4]byte
	_, _ = rand.Read(nonce[:])
	c := &coordinator{o: o, topics: TopicsOf(o.ID), id: "coordinator-" + hex.EncodeToString(nonce[:]),
		changed: make(chan struct{}, 1), hellos: map[int]Hello{}, dups: map[int][]Hello{},
		reports: map[int]*report.Report{}, status: map[int]Status{}}
	mo := o.MQTT
	mo.Logger = o.Log
	ctl, err := mqttconn.DialControl(ctx, mo, mqttconn.ControlOptions{ClientID: "lg-fleet-" + o.ID + "-" + c.id, OnMessage: c.onMessage})
	if err != nil {
		return nil, fmt.Errorf("fleet %s: coordinator's control connection: %w", o.ID, err)
	}
	defer ctl.Close()
	for _, f := range []string{c.topics.base() + "hello/+", c.topics.base() + "report/+", c.topics.base() + "status/+"} {
		if err := ctl.Subscribe(ctx, f); err != nil {
			return nil, fmt.Errorf("fleet %s: cannot read %s (an ACL? allow %s# for the loadgen): %w", o.ID, f, TopicRoot, err)
		}
	}
	o.Log.Info("fleet: coordinator waiting for the instances", "fleet", o.ID, "size", o.Size, "timeout", o.Timeout.String())

	members, refusal := c.assemble(ctx)
	if refusal != nil {
		c.refuse(ctx, ctl, refusal)
		return nil, refusal
	}
	at := time.Now().Add(o.Lead).UTC()
	start := Start{At: at, Members: members, Coordinator: c.id}
	c.mu.Lock()
	c.members = members
	c.mu.Unlock()
	if err := c.announce(ctl, start); err != nil {
		return nil, err
	}
	o.Log.Info("fleet: start announced", "fleet", o.ID, "at", at.Format(time.RFC3339Nano), "members", len(members))

	res := c.collect(ctx, at)
	res.Start = at
	c.cleanup(ctl, members)
	return res, c.merge(res)
}

// onMessage files a control message (on the client library's goroutine).
func (c *coordinator) onMessage(topic string, payload []byte, _ bool) {
	kind, idx, ok := c.parseTopic(topic)
	if !ok || len(payload) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.signal()
	switch kind {
	case "hello":
		var h Hello
		if err := json.Unmarshal(payload, &h); err != nil || h.RunID == "" || h.Index != idx {
			c.bad = append(c.bad, fmt.Sprintf("an undecodable hello on %s (%d bytes)", topic, len(payload)))
			return
		}
		if prev, ok := c.hellos[idx]; !ok {
			c.hellos[idx] = h
		} else if prev.RunID != h.RunID && !slices.ContainsFunc(c.dups[idx], func(d Hello) bool { return d.RunID == h.RunID }) {
			c.dups[idx] = append(c.dups[idx], h)
		}
	case "report":
		if c.members == nil {
			return // an earlier run's retained report
		}
		var r report.Report
		if err := json.Unmarshal(payload, &r); err != nil {
			c.bad = append(c.bad, fmt.Sprintf("an undecodable report on %s (%d bytes): %v", topic, len(payload), err))
			return
		}
		if len(r.Runs) == 0 || r.Runs[0].RunID != c.members[idx] {
			return
		}
		c.reports[idx] = &r
	case "status":
		var s Status
		if err := json.Unmarshal(payload, &s); err != nil {
			return
		}
		if c.members != nil && s.RunID == c.members[idx] {
			c.status[idx] = s
		}
	}
}

func (c *coordinator) signal() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// parseTopic splits a control topic into its kind and index.
func (c *coordinator) parseTopic(topic string) (kind string, idx int, ok bool) {
	rest, found := strings.CutPrefix(topic, c.topics.base())
	if !found {
		return "", 0, false
	}
	kind, num, found := strings.Cut(rest, "/")
	if !found {
		return "", 0, false
	}
	idx, err := strconv.Atoi(num)
	if err != nil || idx < 0 {
		return "", 0, false
	}
	return kind, idx, true
}

// assemble waits until every index from 0 to Size-1 said hello, checking
// each against the reference; it returns the members, or why the fleet
// cannot start.
func (c *coordinator) assemble(ctx context.Context) (map[int]string, *Refusal) {
	o := c.o
	deadline := time.NewTimer(o.Timeout)
	defer deadline.Stop()
	progress := time.NewTicker(5 * time.Second)
	defer progress.Stop()
	for {
		c.mu.Lock()
		members := map[int]string{}
		for i, h := range c.hellos {
			members[i] = h.RunID
		}
		refusal := c.check()
		n := len(c.hellos)
		c.mu.Unlock()
		if refusal != nil {
			return members, refusal
		}
		if n == o.Size {
			return members, nil
		}
		select {
		case <-c.changed:
		case <-progress.C:
			o.Log.Info("fleet: waiting for the instances", "fleet", o.ID, "joined", n, "size", o.Size, "missing", c.missingIndexes())
		case <-deadline.C:
			return members, &Refusal{Code: 1, Reason: fmt.Sprintf("%d of %d instances joined within FLEET_TIMEOUT=%v; missing: %s. Start them (FLEET_ID=%s, FLEET_SIZE=%d, each its own FLEET_INDEX) against the same broker, or raise FLEET_TIMEOUT",
				n, o.Size, o.Timeout, c.missingIndexes(), o.ID, o.Size)}
		case <-ctx.Done():
			return members, &Refusal{Code: 1, Reason: fmt.Sprintf("stopped while waiting for the instances (%d of %d joined)", n, o.Size)}
		}
	}
}

// missingIndexes lists the indexes that have not said hello: "3, 7".
func (c *coordinator) missingIndexes() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for i := range c.o.Size {
		if _, ok := c.hellos[i]; !ok {
			out = append(out, "index "+strconv.Itoa(i))
		}
	}
	return strings.Join(out, ", ")
}

// check returns why the hellos so far cannot make one fleet (c.mu held).
func (c *coordinator) check() *Refusal {
	o := c.o
	var why []string
	for _, i := range slices.Sorted(maps.Keys(c.dups)) {
		for _, d := range c.dups[i] {
			why = append(why, fmt.Sprintf("FLEET_INDEX=%d is taken twice: by %s and by %s; give every instance its own FLEET_INDEX", i, c.hellos[i].Name(), d.Name()))
		}
	}
	ref := o.Reference
	idxs := slices.Sorted(maps.Keys(c.hellos))
	if ref == nil && len(idxs) > 0 {
		h := c.hellos[idxs[0]]
		ref = &h
	}
	for _, i := range idxs {
		h := c.hellos[i]
		if h.Index >= o.Size || h.Size != o.Size {
			why = append(why, fmt.Sprintf("%s has FLEET_SIZE=%d and FLEET_INDEX=%d; the fleet's FLEET_SIZE is %d", h.Name(), h.Size, h.Index, o.Size))
			continue
		}
		if ref != nil && h.Digest != ref.Digest && h.RunID != ref.RunID {
			why = append(why, fmt.Sprintf("%s has settings that differ from %s: %s; a fleet's instances must share them", h.Name(), ref.Name(), settingsDiff(ref.Settings, h.Settings)))
		}
	}
	for a := 0; a < len(idxs); a++ {
		for b := a + 1; b < len(idxs); b++ {
			x, y := c.hellos[idxs[a]], c.hellos[idxs[b]]
			if x.FirstClient < y.FirstClient+y.Clients && y.FirstClient < x.FirstClient+x.Clients {
				why = append(why, fmt.Sprintf("%s has virtual clients %d..%d and %s %d..%d: they overlap (CLIENT_ID_OFFSET; leave it 0 and the offset is FLEET_INDEX × VIRTUAL_CLIENTS)",
					x.Name(), x.FirstClient, x.FirstClient+x.Clients-1, y.Name(), y.FirstClient, y.FirstClient+y.Clients-1))
			}
		}
	}
	if len(why) == 0 {
		return nil
	}
	return &Refusal{Code: 2, Reason: strings.Join(why, "; ")}
}

// settingsDiff names the settings that differ between a and b by their
// environment variables: "QOS=0 against QOS=1, SHARDS=…".
func settingsDiff(a, b map[string]string) string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(a)) {
		if a[k] != b[k] {
			name := report.SettingEnv(k)
			out = append(out, fmt.Sprintf("%s=%s against %s=%s", name, unquote(b[k]), name, unquote(a[k])))
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, report.SettingEnv(k)+" is set on one only")
		}
	}
	if len(out) == 0 {
		return "the settings digests differ (different versions of loadgen-v2?)"
	}
	return strings.Join(out, ", ")
}

// unquote shows a JSON value as a setting: strings without their quotes.
func unquote(v string) string {
	var s string
	if json.Unmarshal([]byte(v), &s) == nil {
		return s
	}
	return v
}

// RefusalLinger is how long a coordinator that refused the fleet keeps
// telling instances that say hello after the refusal (those started a
// moment later than the others), so that they exit at once too.
const RefusalLinger = 2 * HelloEvery

// refuse announces the refusal to every instance that said hello, and for
// RefusalLinger to every one that says hello later, then clears it. Every
// instance subscribed to the start topic before its first hello: it has
// the refusal once the broker acknowledged it.
func (c *coordinator) refuse(ctx context.Context, ctl *mqttconn.Control, r *Refusal) {
	linger := time.NewTimer(RefusalLinger)
	defer linger.Stop()
	told := -1
	for {
		c.mu.Lock()
		members, n := map[int]string{}, len(c.hellos)
		for i, h := range c.hellos {
			members[i] = h.RunID
		}
		k := -1 // the duplicates of a taken index, under keys of their own
		for _, ds := range c.dups {
			for _, d := range ds {
				members[k] = d.RunID
				k--
			}
		}
		n += -1 - k
		c.mu.Unlock()
		if n != told {
			if err := c.announce(ctl, Start{Abort: r.Reason, Code: r.Code, Coordinator: c.id, Members: members}); err != nil {
				c.o.Log.Warn("fleet: the refusal could not be announced: the instances wait FLEET_TIMEOUT", "err", err)
			}
			told = n
		}
		select {
		case <-c.changed:
			continue
		case <-linger.C:
		case <-ctx.Done():
		}
		break
	}
	c.cleanup(ctl, nil)
}

// announce publishes s, retained: every member reads it when it
// subscribes, whenever that is.
func (c *coordinator) announce(ctl *mqttconn.Control, s Start) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ctl.Publish(ctx, c.topics.Start(), b, true); err != nil {
		return fmt.Errorf("fleet %s: cannot announce the start on %s: %w", c.o.ID, c.topics.Start(), err)
	}
	return nil
}

// collect waits until every member has reported or is known gone, the
// reports' deadline passed (the start + the longest DURATION and
// REQUEST_TIMEOUT + FLEET_TIMEOUT), or ctx ended.
func (c *coordinator) collect(ctx context.Context, at time.Time) *Result {
	var run time.Duration
	c.mu.Lock()
	for _, h := range c.hellos {
		run = max(run, h.Duration+h.Drain)
	}
	c.mu.Unlock()
	deadline := time.NewTimer(time.Until(at.Add(run + c.o.Timeout)))
	defer deadline.Stop()
	for {
		c.mu.Lock()
		done := 0
		for i := range c.members {
			if _, ok := c.reports[i]; ok {
				done++
			} else if _, ok := c.status[i]; ok {
				done++
			}
		}
		c.mu.Unlock()
		if done == len(c.members) {
			break
		}
		select {
		case <-c.changed:
			continue
		case <-deadline.C:
		case <-ctx.Done():
		}
		break
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	res := &Result{Members: maps.Clone(c.hellos), Reports: maps.Clone(c.reports)}
	for _, i := range slices.Sorted(maps.Keys(c.members)) {
		if _, ok := c.reports[i]; ok {
			continue
		}
		why := fmt.Sprintf("no report within FLEET_TIMEOUT=%v after its end", c.o.Timeout)
		if s, ok := c.status[i]; ok && s.Failed != "" {
			why = "its run failed: " + s.Failed
		} else if ok && s.Lost {
			why = "its connection to the broker was lost before it reported (killed, or out of memory?)"
		} else if ctx.Err() != nil {
			why = "the coordinator was stopped before it reported"
		}
		res.Missing = append(res.Missing, c.hellos[i].Name()+" missing: "+why)
	}
	for _, b := range c.bad {
		c.o.Log.Warn("fleet: " + b + "; ignored")
	}
	return res
}

// cleanup clears the retained control messages of the run.
func (c *coordinator) cleanup(ctl *mqttconn.Control, members map[int]string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	topics := []string{c.topics.Start()}
	for i := range members {
		topics = append(topics, c.topics.Report(i), c.topics.Status(i))
	}
	for _, t := range topics {
		if err := ctl.Publish(ctx, t, nil, true); err != nil {
			c.o.Log.Warn("fleet: could not clear a control topic", "topic", t, "err", err)
		}
	}
}

// merge merges the reports that arrived into res.Merged, with the
// objectives the members share, and fails it for every missing member.
func (c *coordinator) merge(res *Result) error {
	if len(res.Reports) == 0 {
		return nil // no merged report; Code says 3 and Missing says why
	}
	var rs []*report.Report
	for _, i := range slices.Sorted(maps.Keys(res.Reports)) {
		r := res.Reports[i]
		r.Source = fmt.Sprintf("the report of %s", res.Members[i].Name())
		rs = append(rs, r)
	}
	m, err := report.Merge(rs, objectives(rs[0]))
	if err != nil {
		return fmt.Errorf("fleet %s: %w", c.o.ID, err)
	}
	if len(res.Missing) > 0 {
		head := fmt.Sprintf("%d of %d reported", len(res.Reports), len(res.Members))
		m.SLO.Failures = append(m.SLO.Failures, head+"; "+strings.Join(res.Missing, "; "))
		m.SLO.Passed = false
	}
	res.Merged = m
	return nil
}

// objectives reads the SLO_* settings of a member's report (the fleet
// shares them).
func objectives(r *report.Report) report.Objectives {
	var cfg struct {
		P99     float64 `json:"slo_p99_ms"`
		Match   float64 `json:"slo_match_rate"`
		Success float64 `json:"slo_success_rate"`
	}
	_ = json.Unmarshal(r.Config, &cfg)
	return report.Objectives{P99MS: cfg.P99, MatchRate: cfg.Match, SuccessRate: cfg.Success}
}
