package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/envconf"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/mqttconn"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/config"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/loadgen-v2/internal/report"
)

// ErrNotAssembled: the fleet did not start (no start within FLEET_TIMEOUT,
// or the coordinator could not assemble it); exit 1.
var ErrNotAssembled = errors.New("the fleet did not start")

// Member is one instance's part in a fleet run: its hello, the wait for the
// start, and its report.
type Member struct {
	res    *config.Resolved
	log    *slog.Logger
	topics Topics
	hello  Hello

	ctl     *mqttconn.Control
	startCh chan Start // the first start (or abort) naming this instance
	once    sync.Once
	aborted atomic.Bool // the coordinator refused to start the fleet
	started atomic.Bool // the start was announced
}

// Aborted reports whether Join ended with the coordinator's refusal.
func (m *Member) Aborted() bool { return m.aborted.Load() }

// NewMember returns the member of res's fleet (res.Fleet must be set).
func NewMember(res *config.Resolved, log *slog.Logger) *Member {
	if log == nil {
		log = slog.Default()
	}
	f := res.Fleet
	host, _ := os.Hostname()
	return &Member{res: res, log: log, topics: TopicsOf(f.ID), startCh: make(chan Start, 1),
		hello: Hello{Index: f.Index, Size: f.Size, RunID: res.RunName(), Instance: res.InstanceID, Host: host, PID: os.Getpid(),
			FirstClient: uint64(res.Offset), Clients: uint64(res.VirtualClients), Digest: f.Digest, Settings: f.Settings,
			Duration: res.Duration, Drain: res.RequestTimeout, Timeout: f.Timeout, Lead: f.Lead}}
}

// Hello returns the member's announcement.
func (m *Member) Hello() Hello { return m.hello }

// Join connects the member's control connection (its Last Will marks the
// instance lost), says hello until the coordinator announces the start,
// and returns the start time. An abort from the coordinator is returned as
// an error wrapping envconf.ErrInvalid (a configuration the fleet refused:
// exit 2) or ErrNotAssembled; so is no start within FLEET_TIMEOUT.
func (m *Member) Join(ctx context.Context) (time.Time, error) {
	f := m.res.Fleet
	will, _ := json.Marshal(Status{RunID: m.hello.RunID, Lost: true})
	opts := m.res.MQTT
	opts.Logger = m.log
	ctl, err := mqttconn.DialControl(ctx, opts, mqttconn.ControlOptions{
		ClientID:  fmt.Sprintf("%s-fleet", m.res.MQTT.ClientIDPrefix),
		OnMessage: m.onMessage, WillTopic: m.topics.Status(f.Index), WillPayload: will})
	if err != nil {
		return time.Time{}, fmt.Errorf("fleet %s: control connection: %w", f.ID, err)
	}
	m.ctl = ctl
	if err := ctl.Subscribe(ctx, m.topics.Start()); err != nil {
		return time.Time{}, fmt.Errorf("fleet %s: cannot read %s (an ACL? allow %s# for the loadgen): %w", f.ID, m.topics.Start(), TopicRoot, err)
	}
	hello, err := json.Marshal(m.hello)
	if err != nil {
		return time.Time{}, err
	}
	m.log.Info("fleet: waiting for the start", "fleet", f.ID, "index", f.Index, "size", f.Size, "timeout", f.Timeout.String())
	deadline := time.NewTimer(f.Timeout)
	defer deadline.Stop()
	tick := time.NewTicker(HelloEvery)
	defer tick.Stop()
	for {
		if err := ctl.Publish(ctx, m.topics.Hello(f.Index), hello, false); err != nil {
			return time.Time{}, fmt.Errorf("fleet %s: cannot say hello on %s (an ACL? allow %s# for the loadgen): %w", f.ID, m.topics.Hello(f.Index), TopicRoot, err)
		}
		select {
		case s := <-m.startCh:
			if s.Abort != "" {
				m.aborted.Store(true)
				err := fmt.Errorf("fleet %s: the coordinator refused to start the fleet: %s", f.ID, s.Abort)
				if s.Code == 2 {
					return time.Time{}, envconf.Invalid(err)
				}
				return time.Time{}, fmt.Errorf("%w: %w", ErrNotAssembled, err)
			}
			m.started.Store(true)
			m.log.Info("fleet: start announced", "fleet", f.ID, "at", s.At.UTC().Format(time.RFC3339Nano), "in", time.Until(s.At).Round(time.Millisecond).String())
			return s.At, nil
		case <-tick.C:
		case <-deadline.C:
			who := "index 0 (FLEET_COORDINATOR=self)"
			if m.res.FleetCoord == "external" {
				who = "the 'loadgen-v2 fleet' command"
			}
			return time.Time{}, fmt.Errorf("%w: fleet %s: no start within FLEET_TIMEOUT=%v: is the coordinator, %s, running against the same broker with FLEET_ID=%s? are all %d instances up?",
				ErrNotAssembled, f.ID, f.Timeout, who, f.ID, f.Size)
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
}

// onMessage reads the start topic: a start (or abort) that names this
// instance's run is delivered once; anything else (an earlier run's
// retained start, a clear) is ignored.
func (m *Member) onMessage(topic string, payload []byte, _ bool) {
	if topic != m.topics.Start() || len(payload) == 0 {
		return
	}
	var s Start
	if err := json.Unmarshal(payload, &s); err != nil {
		m.log.Debug("fleet: not a start message; ignored", "topic", topic, "err", err)
		return
	}
	mine := s.Members[m.hello.Index] == m.hello.RunID
	if !mine && s.Abort != "" { // an abort names every run that said hello
		mine = slices.Contains(slices.Collect(maps.Values(s.Members)), m.hello.RunID)
	}
	if !mine {
		return
	}
	m.once.Do(func() { m.startCh <- s })
}

// Report publishes the member's final report (retained) for the
// coordinator and closes the control connection: the broker keeps the
// report until the coordinator clears it.
func (m *Member) Report(ctx context.Context, r *report.Report) error {
	if m.ctl == nil {
		return errors.New("fleet: report before join")
	}
	defer m.Close()
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := m.ctl.Publish(ctx, m.topics.Report(m.hello.Index), b, true); err != nil {
		return fmt.Errorf("fleet %s: cannot publish the report on %s: %w", m.res.Fleet.ID, m.topics.Report(m.hello.Index), err)
	}
	return nil
}

// Fail tells the coordinator that this instance's run failed without a
// report (why), and closes the control connection. Before the start there
// is nothing to tell: the coordinator collects no reports yet.
func (m *Member) Fail(ctx context.Context, why error) {
	if m.ctl == nil {
		return
	}
	defer m.Close()
	if !m.started.Load() {
		return
	}
	b, _ := json.Marshal(Status{RunID: m.hello.RunID, Failed: why.Error()})
	if err := m.ctl.Publish(ctx, m.topics.Status(m.hello.Index), b, true); err != nil {
		m.log.Warn("fleet: cannot tell the coordinator that the run failed", "err", err)
	}
}

// Close disconnects the control connection (no Will). Idempotent.
func (m *Member) Close() {
	if m.ctl != nil {
		m.ctl.Close()
		m.ctl = nil
	}
}
