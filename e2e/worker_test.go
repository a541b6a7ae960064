package e2e

// The worker under changing conditions, observed from outside through /stats
// and the loadgen reports: the autoscaler following a load step up and back
// down, and a graceful rolling stop of one of two workers under load.

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// statsDoc is the part of worker-v2's /stats the tests below read.
type statsDoc struct {
	Workers       int     `json:"workers"`
	QueueDepth    int     `json:"queue_depth"`
	QueueCap      int     `json:"queue_cap"`
	InFlight      int     `json:"in_flight"`
	Received      uint64  `json:"received"`
	Processed     uint64  `json:"processed"`
	DroppedFull   uint64  `json:"dropped_full"`
	Malformed     uint64  `json:"malformed"`
	ReplyFailed   uint64  `json:"reply_failed"`
	Abandoned     uint64  `json:"abandoned"`
	Draining      bool    `json:"draining"`
	RateRPS       float64 `json:"rate_rps"`
	ScalingEvents []struct {
		Time   time.Time `json:"time"`
		From   int       `json:"from"`
		To     int       `json:"to"`
		Reason string    `json:"reason"`
	} `json:"scaling_events"`
}

// statsSample is one poll of /stats, at `at` since the start of the test.
type statsSample struct {
	at time.Duration
	s  statsDoc
}

// statsPoller polls a worker's /stats every period in the background.
type statsPoller struct {
	mu      sync.Mutex
	samples []statsSample
	stop    chan struct{}
	done    chan struct{}
}

func pollStats(addr string, began time.Time, period time.Duration) *statsPoller {
	p := &statsPoller{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			var s statsDoc
			if err := fetch("http://"+addr+"/stats", &s); err == nil {
				p.mu.Lock()
				p.samples = append(p.samples, statsSample{time.Since(began), s})
				p.mu.Unlock()
			}
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return p
}

// Stop ends the polling and returns the samples, oldest first.
func (p *statsPoller) Stop() []statsSample {
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.samples
}

// maxWorkers returns the largest worker count sampled in [from, to).
func maxWorkers(ss []statsSample, from, to time.Duration) (n int, at time.Duration) {
	n = -1
	for _, s := range ss {
		if s.at >= from && s.at < to && s.s.Workers > n {
			n, at = s.s.Workers, s.at
		}
	}
	return n, at
}

// workerTimeline renders the worker count over time compactly: one
// "t:workers" entry per change, the largest queue depth seen meanwhile in
// brackets when it was not 0.
func workerTimeline(ss []statsSample) string {
	var b strings.Builder
	for i := 0; i < len(ss); {
		j, q := i, 0
		for ; j < len(ss) && ss[j].s.Workers == ss[i].s.Workers; j++ {
			q = max(q, ss[j].s.QueueDepth)
		}
		fmt.Fprintf(&b, "%.1fs:%d", ss[i].at.Seconds(), ss[i].s.Workers)
		if q > 0 {
			fmt.Fprintf(&b, "[q%d]", q)
		}
		b.WriteByte(' ')
		i = j
	}
	return strings.TrimSpace(b.String())
}

// TestWorkerAutoscaleLoadStep: one worker (5 ms of sleep per request, a queue
// of 500, the autoscaler sampling every 200 ms) under a base load of 1000
// req/s for 11 s, and a second loadgen adding 4000 req/s for 3 s from about
// 3 s on. The worker count, seen through /stats, must rise during the step
// above what the base load needed and fall again after it while the base load
// still runs; the scaling events show both directions; both reports balance.
//
// The step outruns the pool: sized for the base load (6-8 workers, ~1200
// req/s), it needs three doublings (600 ms at one per SCALE_INTERVAL) to
// reach the 5000 req/s, and a queue of 500 holds only ~0.1 s of that
// overload. What happens to the overflow depends on DROP_ON_FULL:
//
//   - false: the worker stops reading, Mosquitto holds the overflow, nothing
//     is lost: the base loadgen's match rate must be ≥ 0.99 (it is 1).
//   - true (the default): the overflow is dropped and counted (dropped_full,
//     ~1000-1300 requests, ~1/5 of them the base loadgen's: its match rate
//     is ~0.98). Asserted: every loss is a counted drop (the loadgens'
//     timeouts add up to dropped_full) and the drops stop once the pool has
//     scaled up.
//
// Both loadgens run open loop (MAX_INFLIGHT_PER_CLIENT=8 > REQUEST_TIMEOUT /
// INTERVAL_MS), so a dropped request does not make its client skip sends and
// lower the offered load while it times out.
func TestWorkerAutoscaleLoadStep(t *testing.T) {
	for _, drop := range []bool{false, true} {
		t.Run(fmt.Sprintf("DROP_ON_FULL=%v", drop), func(t *testing.T) { autoscaleStep(t, drop) })
	}
}

func autoscaleStep(t *testing.T, dropOnFull bool) {
	const (
		minWorkers = 2
		baseRate   = 1000 // req/s: 500 clients every 500 ms
		stepRate   = 4000 // req/s: 2000 clients every 500 ms
		baseSecs   = 11
		stepAt     = 3 * time.Second // after the base loadgen is up
		stepSecs   = 3
	)
	m := startMosquitto(t, "")
	w, waddr := startWorker(t, m.URL(), "MODE=sleep", "SLEEP_MS=5", fmt.Sprintf("MIN_WORKERS=%d", minWorkers),
		"MAX_WORKERS=200", "QUEUE_CAP=500", "SCALE_INTERVAL=200ms", fmt.Sprintf("DROP_ON_FULL=%v", dropOnFull))
	dir := t.TempDir()
	baseRF, stepRF := filepath.Join(dir, "base.json"), filepath.Join(dir, "step.json")
	baseAddr, stepAddr := freeAddr(t), freeAddr(t)
	lgExtra := []string{"REQUEST_TIMEOUT=2s", "MAX_INFLIGHT_PER_CLIENT=8"}

	began := time.Now()
	poller := pollStats(waddr, began, 150*time.Millisecond)
	base := start(t, "loadgen-v2", loadgenEnv(m.URL(), baseRF, append([]string{"INSTANCE_ID=as-base", "CLIENT_ID_OFFSET=0",
		fmt.Sprintf("VIRTUAL_CLIENTS=%d", baseRate/2), fmt.Sprintf("DURATION=%ds", baseSecs),
		"METRICS_ADDR=" + baseAddr}, lgExtra...)...)...)
	waitHTTP(t, "http://"+baseAddr+"/health", 20*time.Second)
	baseUp := time.Since(began)

	sleepUntil(began.Add(baseUp + stepAt))
	step := start(t, "loadgen-v2", loadgenEnv(m.URL(), stepRF, append([]string{"INSTANCE_ID=as-step", "CLIENT_ID_OFFSET=1000000",
		fmt.Sprintf("VIRTUAL_CLIENTS=%d", stepRate/2), fmt.Sprintf("DURATION=%ds", stepSecs),
		"METRICS_ADDR=" + stepAddr}, lgExtra...)...)...)
	waitHTTP(t, "http://"+stepAddr+"/health", 20*time.Second)
	stepFrom := time.Since(began)
	stepTo := stepFrom + stepSecs*time.Second

	if code := step.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("step loadgen exit %d\n%s\n%s", code, step.out.String(), step.errOut.String())
	}
	if code := base.wait(t, 60*time.Second); code != 0 {
		t.Fatalf("base loadgen exit %d\n%s\n%s", code, base.out.String(), base.errOut.String())
	}
	baseEnd := baseUp + baseSecs*time.Second
	ss := poller.Stop()
	var final statsDoc
	getJSON(t, "http://"+waddr+"/stats", &final)

	t.Logf("base loadgen up at %.1fs, step %.1fs..%.1fs, base sends until ~%.1fs; %d samples of /stats",
		baseUp.Seconds(), stepFrom.Seconds(), stepTo.Seconds(), baseEnd.Seconds(), len(ss))
	t.Logf("workers over time (t:workers[max queue_depth]): %s", workerTimeline(ss))

	rb, rs := readReport(t, baseRF), readReport(t, stepRF)
	logReport(t, "base", rb)
	logReport(t, "step", rs)
	checkBalanced(t, rb)
	checkBalanced(t, rs)
	t.Logf("BASE match_rate %.6f (%d of %d); step match_rate %.6f (%d of %d)",
		rb.MatchRate, rb.ResponsesMatched, rb.RequestsSent, rs.MatchRate, rs.ResponsesMatched, rs.RequestsSent)
	t.Logf("worker: received %d processed %d dropped_full %d malformed %d reply_failed %d abandoned %d",
		final.Received, final.Processed, final.DroppedFull, final.Malformed, final.ReplyFailed, final.Abandoned)
	if final.Malformed+final.ReplyFailed+final.Abandoned != 0 || rb.Unknown+rs.Unknown != 0 {
		t.Errorf("unexpected losses: worker malformed %d reply_failed %d abandoned %d; loadgen unknown %d+%d",
			final.Malformed, final.ReplyFailed, final.Abandoned, rb.Unknown, rs.Unknown)
	}

	// The worker count: the plateau the base load needed just before the step,
	// the peak during the step, the lowest count after the step while the base
	// load still runs.
	before, _ := maxWorkers(ss, stepFrom-time.Second, stepFrom)
	peak, peakAt := maxWorkers(ss, stepFrom, stepTo+500*time.Millisecond)
	after := -1
	for _, s := range ss {
		if s.at >= stepTo && s.at < baseEnd && (after < 0 || s.s.Workers < after) {
			after = s.s.Workers
		}
	}
	t.Logf("workers: %d before the step, peak %d at %.1fs, lowest %d after the step (base load still on), %d at the end",
		before, peak, peakAt.Seconds(), after, final.Workers)
	if peak <= minWorkers || peak <= before {
		t.Errorf("the worker count did not rise during the step: %d before, peak %d (MIN_WORKERS %d)", before, peak, minWorkers)
	}
	if after < 0 || after >= peak {
		t.Errorf("the worker count did not come back down after the step: peak %d, lowest after %d", peak, after)
	}

	var ups, downs, upsInStep, downsAfter int
	var evs []string
	for _, e := range final.ScalingEvents {
		at := e.Time.Sub(began)
		ev := fmt.Sprintf("%.1fs %d→%d", at.Seconds(), e.From, e.To)
		switch {
		case e.To > e.From:
			ups++
			if at >= stepFrom && at < stepTo {
				upsInStep++
			}
		case e.To < e.From:
			downs++
			if at >= stepTo {
				downsAfter++
			}
			if at < stepFrom {
				ev += " (" + e.Reason + ")"
			}
		}
		evs = append(evs, ev)
	}
	t.Logf("scaling events (%d up, %d down): %s", ups, downs, strings.Join(evs, ", "))
	if upsInStep == 0 || downsAfter == 0 {
		t.Errorf("scaling events lack a scale-up during the step (%d) or a scale-down after it (%d)", upsInStep, downsAfter)
	}

	if !dropOnFull {
		if final.DroppedFull != 0 {
			t.Errorf("dropped_full %d with DROP_ON_FULL=false", final.DroppedFull)
		}
		if rb.MatchRate < 0.99 {
			t.Errorf("base loadgen match_rate %.6f, want ≥ 0.99 across the step", rb.MatchRate)
		}
	} else {
		// Every loss is a drop the worker counted, and the drops end once the
		// pool has scaled up: none from one second after the peak on.
		if lost := rb.Timeouts + rs.Timeouts; lost != final.DroppedFull {
			t.Errorf("the loadgens timed out %d requests, the worker dropped %d: a loss the worker did not count", lost, final.DroppedFull)
		}
		var atPeak uint64
		for _, s := range ss {
			if s.at <= peakAt+time.Second {
				atPeak = s.s.DroppedFull
			}
		}
		if final.DroppedFull != atPeak {
			t.Errorf("dropped_full grew from %d (1 s after the peak) to %d: drops went on after the scale-up", atPeak, final.DroppedFull)
		}
		if rb.MatchRate < 0.95 {
			t.Errorf("base loadgen match_rate %.6f, want ≥ 0.95 (losses only in the scale-up transient)", rb.MatchRate)
		}
	}
	if code := w.stop(t); code != 0 {
		t.Errorf("worker exit %d: %s", code, w.errOut.String())
	}
}

// drainedRE matches the worker's last log line (engine.shutdown) and captures
// its received count.
var drainedRE = regexp.MustCompile(`msg=drained .*received=([0-9]+).*`)

// TestWorkerRollingStop: two workers share the requests of one loadgen at
// 3000 req/s for 8 s; 4 s in, one worker gets SIGTERM and stops gracefully
// (unsubscribe, finish its queue, disconnect). It must exit 0 having
// abandoned nothing, the two workers together must have received exactly the
// requests sent (Mosquitto lost none around the unsubscribe), and the loadgen
// must see (almost) no loss: match rate ≥ 0.999, balanced report.
func TestWorkerRollingStop(t *testing.T) {
	const rate = 3000 // req/s: 1500 clients every 500 ms
	m := startMosquitto(t, "")
	w1, w1addr := startWorker(t, m.URL(), "CLIENT_ID_PREFIX=wk-roll-a")
	w2, w2addr := startWorker(t, m.URL(), "CLIENT_ID_PREFIX=wk-roll-b")
	rf := filepath.Join(t.TempDir(), "report.json")
	maddr := freeAddr(t)
	lg := start(t, "loadgen-v2", loadgenEnv(m.URL(), rf, "VIRTUAL_CLIENTS=1500", "DURATION=8s",
		"REQUEST_TIMEOUT=2s", "METRICS_ADDR="+maddr)...)
	waitHTTP(t, "http://"+maddr+"/health", 20*time.Second)
	began := time.Now()

	sleepUntil(began.Add(4 * time.Second))
	s1 := readWorkerStats(t, w1addr)
	s2 := readWorkerStats(t, w2addr)
	if s1.n(t, "processed") == 0 || s2.n(t, "processed") == 0 {
		t.Errorf("both workers should share the load before the stop: w1 %v; w2 %v", s1, s2)
	}
	atStop, _ := pollVars(maddr)
	if err := w1.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	stopAt := time.Now()
	code1 := w1.wait(t, 40*time.Second)
	took := time.Since(stopAt)
	var drained string
	var received1 uint64
	if sub := drainedRE.FindStringSubmatch(w1.errOut.String()); sub != nil {
		drained = sub[0]
		received1, _ = strconv.ParseUint(sub[1], 10, 64)
	}
	t.Logf("SIGTERM to worker 1 at %.2f s (having processed %v); exit %d after %v: %s",
		stopAt.Sub(began).Seconds(), s1["processed"], code1, took.Round(time.Millisecond), drained)
	if code1 != 0 {
		t.Errorf("worker 1 exit %d after SIGTERM, want 0:\n%s", code1, tail(w1.errOut.String(), 2000))
	}
	if drained == "" || !strings.Contains(drained, "abandoned=0 ") {
		t.Errorf("worker 1 did not drain cleanly: %q", drained)
	}

	if code := lg.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("loadgen exit %d\n%s\n%s", code, lg.out.String(), lg.errOut.String())
	}
	r := readReport(t, rf)
	logReport(t, "rolling stop", r)
	s2 = readWorkerStats(t, w2addr)
	t.Logf("timeouts: %d at the SIGTERM (of %d sent), %d at the end; survivor: %v", atStop.Timeouts, atStop.RequestsSent, r.Timeouts, s2)
	checkBalanced(t, r)
	if d := float64(r.RequestsSent)/(rate*8) - 1; d > 0.01 || d < -0.01 {
		t.Errorf("sent %d, want %d ±1%%", r.RequestsSent, rate*8)
	}
	// The broker delivered every request to exactly one of the two workers.
	if got, want := received1+uint64(s2.n(t, "received")), r.RequestsSent; got != want {
		t.Errorf("the workers received %d+%v = %d requests, the loadgen sent %d: the broker lost or duplicated some",
			received1, s2["received"], got, want)
	}
	if r.MatchRate < 0.999 {
		t.Errorf("match_rate %.6f, want ≥ 0.999: a graceful stop should lose (almost) nothing", r.MatchRate)
	}
	if healthCode("http://"+w2addr+"/health") != 200 || !w2.alive() {
		t.Errorf("survivor unhealthy or dead")
	}
	if code := w2.stop(t); code != 0 {
		t.Errorf("survivor exit %d: %s", code, w2.errOut.String())
	}
}
