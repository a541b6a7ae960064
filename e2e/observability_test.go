package e2e

// What people see of a run, checked against the tools they see it with: a
// real Prometheus (two: with native histograms and with classic ones only)
// scraping a live worker + loadgen through the end of the run, evaluating
// monitoring/alerts.yml and every query of the Grafana dashboard; the web
// dashboard in a real headless Chromium; the terminal dashboard in a real
// tmux. Screenshots and captures are kept in test-artifacts/observability/.
//
// Everything waits for events (a phase, a count that moved, a sample that
// Prometheus has) with generous deadlines; nothing is asserted about how
// long anything took.

import (
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/brokertest"
)

// obsPace is how often the test polls: Prometheus, the browser and tmux are
// slow to ask.
const obsPace = 100 * time.Millisecond

// artifactDir is test-artifacts/observability at the repository root
// (gitignored), emptied for this run.
func artifactDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("../test-artifacts/observability")
	if err != nil {
		t.Fatal(err)
	}
	_ = os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("artifacts in %s", dir)
	return dir
}

// --- Prometheus ----------------------------------------------------------------

type prom struct {
	name string
	url  string
	proc *proc
}

// startPrometheus runs a Prometheus scraping the loadgens and the worker
// every second and evaluating monitoring/alerts.yml every second.
func startPrometheus(t *testing.T, name string, loadgenAddrs []string, workerAddr string, flags ...string) *prom {
	t.Helper()
	dir := t.TempDir()
	rules, err := filepath.Abs("../monitoring/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 900ms
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: loadgen
    static_configs: [{targets: [%s]}]
  - job_name: worker
    static_configs: [{targets: [%q]}]
`, rules, quoteAll(loadgenAddrs), workerAddr)
	cf := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := brokertest.FreeAddr(t)
	p := &prom{name: name, url: "http://" + addr}
	args := append([]string{"--config.file=" + cf, "--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + addr, "--log.level=warn"}, flags...)
	p.proc = &proc{done: make(chan struct{})}
	p.proc.cmd = exec.Command("prometheus", args...)
	p.proc.cmd.Stdout, p.proc.cmd.Stderr = &p.proc.out, &p.proc.errOut
	p.proc.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.proc.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.proc.cmd.Wait(); close(p.proc.done) }()
	t.Cleanup(func() {
		_ = p.proc.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.proc.done:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-p.proc.cmd.Process.Pid, syscall.SIGKILL)
			<-p.proc.done
		}
	})
	brokertest.WaitOK(t, p.url+"/-/ready")
	return p
}

// quoteAll returns the addresses as a YAML flow sequence's items.
func quoteAll(addrs []string) string {
	q := make([]string, len(addrs))
	for i, a := range addrs {
		q[i] = strconv.Quote(a)
	}
	return strings.Join(q, ", ")
}

// promSeries is one series of a query result: its labels and its samples
// (float values; a native histogram sample counts as a value of NaN).
type promSeries struct {
	Metric  map[string]string
	Samples [][2]float64 // [unix seconds, value]
}

func (p *prom) api(t *testing.T, path string, q url.Values) json.RawMessage {
	t.Helper()
	_, body, err := brokertest.Get(p.url + path + "?" + q.Encode())
	if err != nil {
		t.Fatalf("%s: %v", p.name, err)
	}
	var r struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
		Error  string          `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil || r.Status != "success" {
		t.Fatalf("%s %s %v: %s %v", p.name, path, q, r.Error, err)
	}
	return r.Data
}

// query evaluates expr at time at (a range query over [start, at] when
// start is not zero, one sample per second).
func (p *prom) query(t *testing.T, expr string, start, at time.Time) []promSeries {
	t.Helper()
	q := url.Values{"query": {expr}, "time": {ts(at)}}
	path := "/api/v1/query"
	if !start.IsZero() {
		q = url.Values{"query": {expr}, "start": {ts(start)}, "end": {ts(at)}, "step": {"1"}}
		path = "/api/v1/query_range"
	}
	var data struct {
		Result []struct {
			Metric     map[string]string `json:"metric"`
			Value      []any             `json:"value"`
			Values     [][]any           `json:"values"`
			Histogram  []any             `json:"histogram"`
			Histograms [][]any           `json:"histograms"`
		} `json:"result"`
	}
	if err := json.Unmarshal(p.api(t, path, q), &data); err != nil {
		t.Fatal(err)
	}
	var out []promSeries
	for _, r := range data.Result {
		s := promSeries{Metric: r.Metric}
		add := func(v []any, hist bool) {
			if len(v) != 2 {
				return
			}
			tsec, _ := v[0].(float64)
			val := math.NaN()
			if str, ok := v[1].(string); ok && !hist {
				val, _ = strconv.ParseFloat(str, 64)
			}
			s.Samples = append(s.Samples, [2]float64{tsec, val})
		}
		if r.Value != nil {
			add(r.Value, false)
		}
		for _, v := range r.Values {
			add(v, false)
		}
		if r.Histogram != nil {
			add(r.Histogram, true)
		}
		for _, v := range r.Histograms {
			add(v, true)
		}
		out = append(out, s)
	}
	return out
}

// value returns the single value of an instant query at at, or NaN (and
// false) when it has none.
func (p *prom) value(t *testing.T, expr string, at time.Time) (float64, bool) {
	t.Helper()
	res := p.query(t, expr, time.Time{}, at)
	if len(res) != 1 || len(res[0].Samples) != 1 {
		return math.NaN(), false
	}
	return res[0].Samples[0][1], true
}

func ts(t time.Time) string { return strconv.FormatFloat(float64(t.UnixNano())/1e9, 'f', 3, 64) }

// lastRuleEvaluation returns when the rule group was last evaluated.
func (p *prom) lastRuleEvaluation(t *testing.T, group string) time.Time {
	t.Helper()
	var data struct {
		Groups []struct {
			Name           string    `json:"name"`
			LastEvaluation time.Time `json:"lastEvaluation"`
		} `json:"groups"`
	}
	if err := json.Unmarshal(p.api(t, "/api/v1/rules", url.Values{}), &data); err != nil {
		t.Fatal(err)
	}
	for _, g := range data.Groups {
		if g.Name == group {
			return g.LastEvaluation
		}
	}
	t.Fatalf("%s Prometheus has no rule group %s", p.name, group)
	return time.Time{}
}

// alertStates returns each alerting rule's state (inactive, pending, firing)
// and the last evaluation of its group.
func (p *prom) alertStates(t *testing.T) (map[string]string, time.Time) {
	t.Helper()
	var data struct {
		Groups []struct {
			Name           string    `json:"name"`
			LastEvaluation time.Time `json:"lastEvaluation"`
			Rules          []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				State string `json:"state"`
				Query string `json:"query"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := json.Unmarshal(p.api(t, "/api/v1/rules", url.Values{}), &data); err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	var last time.Time
	for _, g := range data.Groups {
		for _, r := range g.Rules {
			if r.Type == "alerting" {
				states[r.Name] = r.State
				last = g.LastEvaluation // one group holds the alerts
			}
		}
	}
	return states, last
}

// --- the Grafana dashboard's queries --------------------------------------------

type grafanaQuery struct {
	where, expr string
	instant     bool
}

func grafanaQueries(t *testing.T) []grafanaQuery {
	t.Helper()
	b, err := os.ReadFile("../monitoring/grafana/dashboards/mqtt-rr-bench.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr    string `json:"expr"`
				RefID   string `json:"refId"`
				Instant bool   `json:"instant"`
			} `json:"targets"`
		} `json:"panels"`
		Annotations struct {
			List []struct {
				Name string `json:"name"`
				Expr string `json:"expr"`
			} `json:"list"`
		} `json:"annotations"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	var qs []grafanaQuery
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			qs = append(qs, grafanaQuery{where: fmt.Sprintf("panel %q %s", p.Title, tg.RefID), expr: tg.Expr, instant: tg.Instant})
		}
	}
	for _, a := range d.Annotations.List {
		if a.Expr != "" {
			qs = append(qs, grafanaQuery{where: fmt.Sprintf("annotation %q", a.Name), expr: a.Expr})
		}
	}
	if len(qs) < 40 {
		t.Fatalf("only %d queries in the dashboard", len(qs))
	}
	return qs
}

var metricName = regexp.MustCompile(`\bmqttrr_[a-z0-9_]+`)

// exportedNames returns the metric family names a /metrics page carries
// (histogram families under their base name).
func exportedNames(t *testing.T, metricsURL string) map[string]bool {
	t.Helper()
	_, body, err := brokertest.Get(metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, line := range strings.Split(body, "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "#" && f[1] == "TYPE" {
			names[f[2]] = true
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[f[2]+s] = true
			}
		}
	}
	return names
}

// --- the test -------------------------------------------------------------------

// dashState is the web dashboard's <pre id="state"> document.
type dashState struct {
	Polls     int  `json:"polls"`
	LoadgenUp bool `json:"loadgen_up"`
	WorkerUp  bool `json:"worker_up"`
	Loadgen   *struct {
		RunID            string   `json:"run_id"`
		Phase            string   `json:"phase"`
		RequestsSent     uint64   `json:"requests_sent"`
		ResponsesMatched uint64   `json:"responses_matched"`
		MatchRate        *float64 `json:"match_rate"`
	} `json:"loadgen"`
	Worker *struct {
		Workers   int    `json:"workers"`
		Processed uint64 `json:"processed"`
	} `json:"worker"`
	Points  map[string]int `json:"points"`
	Summary *struct {
		RunID            string  `json:"run_id"`
		RequestsSent     uint64  `json:"requests_sent"`
		ResponsesMatched uint64  `json:"responses_matched"`
		MatchRate        float64 `json:"match_rate"`
		P99MS            float64 `json:"p99_ms"`
	} `json:"summary"`
}

// TestObservability runs a worker and a loadgen (1000 req/s for 40 s, its
// final state served until the test ends it with SIGTERM) and checks what
// Prometheus, Grafana's queries, the web dashboard and the terminal
// dashboard make of it, during the run and after it finished.
func TestObservability(t *testing.T) {
	brokertest.NeedTool(t, "prometheus", "apt-get install -y prometheus; .ci/run installs it")
	art := artifactDir(t)
	b := brokertest.Start(t)
	w, waddr := startWorker(t, b.URL())
	laddr := brokertest.FreeAddr(t)
	lgURL, wkURL := "http://"+laddr, "http://"+waddr

	// Both Prometheus servers scrape from before the loadgen starts, so
	// their first sample of every counter is 0 (the run's start).
	native := startPrometheus(t, "native", []string{laddr}, waddr, "--enable-feature=native-histograms")
	classic := startPrometheus(t, "classic", []string{laddr}, waddr)
	proms := []*prom{native, classic}
	promStart := time.Now()

	// The dashboards are up before the run starts (the loadgen's panels say
	// "not reachable" until then), so they see all of it.
	chromium := chromiumBinary()
	var page *browser
	var pageText string // what readState read last
	readState := func(s *dashState) bool {
		pageText = ""
		return page.eval(`document.getElementById("state").textContent`, &pageText) == nil && pageText != "" &&
			json.Unmarshal([]byte(pageText), s) == nil
	}
	if chromium == "" {
		brokertest.WithoutPart(t, "the web dashboard", "chromium not installed (apt-get install -y chromium; .ci/run installs it)")
	} else {
		page = startBrowser(t, chromium, 1400, 1500)
		dash, _ := filepath.Abs("../monitoring/dashboard.html")
		page.navigate(t, "file://"+dash+"?"+url.Values{"loadgen": {lgURL}, "worker": {wkURL}, "interval": {"1000"}}.Encode())
	}
	tmux, tmuxErr := exec.LookPath("tmux")
	sock := fmt.Sprintf("rrbench-obs-%d", os.Getpid())
	capture := func() string {
		out, _ := exec.Command(tmux, "-L", sock, "capture-pane", "-p", "-t", "obs").Output()
		return string(out)
	}
	sentOnScreen := regexp.MustCompile(`\bsent (\d+)\s+matched (\d+)`)
	screenSent := func(screen string) int64 {
		m := sentOnScreen.FindStringSubmatch(screen)
		if m == nil {
			return -1
		}
		n, _ := strconv.ParseInt(m[1], 10, 64)
		return n
	}
	if tmuxErr != nil {
		brokertest.WithoutPart(t, "the terminal dashboard", "tmux not installed (apt-get install -y tmux; .ci/run installs it)")
		tmux = ""
	} else {
		script, _ := filepath.Abs("../scripts/dashboard.sh")
		cmd := exec.Command(tmux, "-L", sock, "-f", "/dev/null", "new-session", "-d", "-s", "obs", "-x", "200", "-y", "40",
			fmt.Sprintf("LOADGEN_URL=%s WORKER_URL=%s %s --interval 1", lgURL, wkURL, script))
		cmd.Env = append(os.Environ(), "TERM=xterm-256color")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("tmux: %v\n%s", err, out)
		}
		t.Cleanup(func() { _ = exec.Command(tmux, "-L", sock, "kill-server").Run() })
	}

	// DURATION 40 s: on a busy machine (two make tests side by side) the web
	// dashboard polls every 2 s instead of every second, and its charts
	// need the steady phase to last long enough to fill (8 rate points).
	// A busy machine stretches round trips: up to 16 outstanding per client
	// (no skipped sends) and no success-rate SLO, so the exit status after
	// the linger is 0 whatever the machine did (the verdict has its own
	// tests).
	rf := filepath.Join(t.TempDir(), "report.json")
	lg := start(t, "loadgen-v2", "BROKER="+b.URL(), "METRICS_ADDR="+laddr, "VIRTUAL_CLIENTS=1000", "INTERVAL_MS=1000",
		"DURATION=40s", "CONNECTIONS=8", "SHARDS=64", "PROGRESS_INTERVAL=1s", "METRICS_LINGER=10m", "REPORT_FILE="+rf,
		"INSTANCE_ID=obs-lg-0", "MAX_INFLIGHT_PER_CLIENT=16", lossy)
	steady := waitLoadgen(t, lg, laddr, "the loadgen in phase steady", func(v lgVars) bool { return v.Phase == "steady" })
	runID := steady.RunID
	t.Logf("run %s steady: %d sent", runID, steady.RequestsSent)

	// --- during the run: both dashboards show it, and their numbers move --------
	var (
		pageFirst, pageMoved *dashState
		termFirst, termMoved string
		shot                 bool
	)
	pageDone := func() bool { return page == nil || pageMoved != nil }
	termDone := func() bool { return tmux == "" || termMoved != "" }
	var screen string // what the terminal showed last
	brokertest.Await(t, "both dashboards showing the steady run with numbers moving and charts filling", obsPace, func() (bool, string) {
		if !pageDone() {
			var st dashState
			switch {
			case !readState(&st) || !st.LoadgenUp || !st.WorkerUp || st.Loadgen == nil || st.Loadgen.Phase != "steady":
			case pageFirst == nil:
				pageFirst = &st
			case st.Loadgen.RequestsSent > pageFirst.Loadgen.RequestsSent && st.Points["rate"] >= 8 && st.Points["latency"] >= 12 &&
				st.Points["workers"] >= 3 && st.Points["spectrum"] > 0:
				pageMoved = &st
				now, _ := loadgenVars(laddr)
				if st.Loadgen.RunID != runID || st.Loadgen.RequestsSent > now.RequestsSent || st.Loadgen.ResponsesMatched > now.ResponsesMatched ||
					st.Loadgen.MatchRate == nil || *st.Loadgen.MatchRate > 1 {
					t.Errorf("web dashboard %+v, /debug/vars then %+v: the page does not show the endpoint's run", *st.Loadgen, now)
				}
				if st.Worker == nil || st.Worker.Workers < 1 || st.Worker.Processed == 0 {
					t.Errorf("web dashboard worker: %+v", st.Worker)
				}
				var label string
				if err := page.eval(`document.querySelector("#loadgen-p99 .k").textContent`, &label); err != nil || label != "latency p99 · last 1 s" {
					t.Errorf("p99 tile labelled %q (%v), want its window", label, err)
				}
				page.screenshot(t, filepath.Join(art, "dashboard-running.png"))
				shot = true
			}
		}
		if !termDone() {
			screen = capture()
			switch {
			case !strings.Contains(screen, "phase steady") || screenSent(screen) <= 0:
			case termFirst == "":
				termFirst = screen
			case screenSent(screen) > screenSent(termFirst):
				termMoved = screen
				now, _ := loadgenVars(laddr)
				if n := screenSent(screen); n > int64(now.RequestsSent) {
					t.Errorf("terminal shows %d sent, the endpoint %d afterwards", n, now.RequestsSent)
				}
				writeArtifact(t, filepath.Join(art, "terminal-running.txt"), screen)
			}
		}
		var ex []string
		if page != nil {
			ex = page.uncaught()
		}
		return pageDone() && termDone(), "page state: " + pageText + "\nexceptions: " + strings.Join(ex, "; ") + "\nterminal:\n" + screen
	})
	if termMoved != "" {
		for _, want := range []*regexp.Regexp{regexp.MustCompile(`run ` + runID + `  phase steady`),
			regexp.MustCompile(`match rate \d+\.\d{3}% \(settled, run\)`), regexp.MustCompile(`ms \(last 1 s; settled match `),
			regexp.MustCompile(`ms \(run so far\)`), regexp.MustCompile(`workers \d+ \(min \d+, max \d+\)`)} {
			if !want.MatchString(termMoved) {
				t.Errorf("terminal dashboard lacks %s:\n%s", want, termMoved)
			}
		}
	}
	if page != nil && !shot {
		t.Error("no screenshot of the running dashboard")
	}

	// --- the run finishes; its final state is served (METRICS_LINGER) --------
	waitLoadgen(t, lg, laddr, "the loadgen in phase finished", func(v lgVars) bool { return v.Phase == "finished" })
	var r report
	brokertest.WaitFor(t, "the report file", func() bool {
		if _, err := os.Stat(rf); err != nil {
			return false
		}
		r = readReport(t, rf)
		return true
	})
	logReport(t, "observability run", r)
	if !r.Balanced || r.StillPending != 0 || r.RequestsSent == 0 {
		t.Fatalf("report: %+v", r)
	}
	final, _ := loadgenVars(laddr)
	if final.RequestsSent != r.RequestsSent || final.ResponsesMatched != r.ResponsesMatched || final.Connects != 8+final.Reconnects {
		t.Errorf("/debug/vars when finished %+v, report sent %d matched %d: the final state is not the report's", final, r.RequestsSent, r.ResponsesMatched)
	}

	// Prometheus has scraped the final state (a sample of phase finished:
	// the counts are final from the first one on), and evaluated the rules
	// after that scrape; every query below is evaluated at end.
	var end time.Time
	for _, p := range proms {
		var scraped float64
		brokertest.Await(t, p.name+" Prometheus scraping phase finished", obsPace, func() (bool, string) {
			v, ok := p.value(t, fmt.Sprintf(`timestamp(mqttrr_loadgen_phase{run_id=%q,phase="finished"} == 1)`, runID), time.Now())
			scraped = v
			return ok, ""
		})
		brokertest.Await(t, p.name+" Prometheus evaluating the rules after that scrape", obsPace, func() (bool, string) {
			return p.lastRuleEvaluation(t, "mqttrr-loadgen.rules").After(time.Unix(0, int64(scraped*1e9))), ""
		})
	}
	end = time.Now()
	rng := fmt.Sprintf("%ds", int(end.Sub(promStart).Seconds())+60)

	for _, p := range proms {
		t.Run("prometheus "+p.name, func(t *testing.T) {
			// Rules: the match rates equal the report's.
			if v, _ := p.value(t, `job:mqttrr_loadgen_match_rate:ratio_run{job="loadgen"}`, end); math.Abs(v-r.MatchRate) > 1e-12 {
				t.Errorf("match rate rule (whole run) %v, report %v", v, r.MatchRate)
			}
			if v, ok := p.value(t, `job:mqttrr_loadgen_match_rate:ratio_rate5m{job="loadgen"}`, end); !ok || math.Abs(v-r.MatchRate) > 1e-9 {
				t.Errorf("match rate rule (5m) %v, report %v", v, r.MatchRate)
			}
			if v, _ := p.value(t, `job:mqttrr_loadgen_success_rate:ratio_run{job="loadgen"}`, end); math.Abs(v-r.SuccessRate) > 1e-12 {
				t.Errorf("success rate rule (whole run) %v, report %v", v, r.SuccessRate)
			}
			// Settled: with nothing timed out, the live match rate never dips
			// below 1 while requests are in flight.
			if r.Timeouts == 0 {
				for _, s := range p.query(t, `job:mqttrr_loadgen_match_rate:ratio_rate5m{job="loadgen"}`, promStart, end) {
					for _, smp := range s.Samples {
						if smp[1] != 1 {
							t.Errorf("live match rate %v at %v with no timeouts: requests in flight counted as losses", smp[1], time.Unix(int64(smp[0]), 0))
							break
						}
					}
				}
			} else {
				t.Logf("%d timeouts in this run: the live never-below-1 check does not apply", r.Timeouts)
			}
			// Whole-run figures from the dashboard's whole-run panels.
			sub := strings.NewReplacer(append([]string{"$__range", rng}, selection{runID: runID}.vars()...)...)
			whole := map[string]string{}
			for _, q := range grafanaQueries(t) {
				whole[q.where] = sub.Replace(q.expr)
			}
			if v, _ := p.value(t, whole[`panel "Requests sent (whole run)" A`], end); uint64(v) != r.RequestsSent {
				t.Errorf("whole-run requests sent %v, report %d", v, r.RequestsSent)
			}
			if v, _ := p.value(t, whole[`panel "Match rate (whole run, settled)" A`], end); math.Abs(v-r.MatchRate) > 1e-12 {
				t.Errorf("whole-run match rate %v, report %v", v, r.MatchRate)
			}
			p99, ok := p.value(t, whole[`panel "Latency p50 / p99 / p99.9 (whole run)" B`], end)
			want := r.Latency.P99 / 1000
			if !ok {
				t.Fatalf("no whole-run p99")
			}
			if p.name == "native" {
				// Native buckets are 9.05% wide: the estimate and the exact
				// value share one. The run's histogram as it stands at the
				// end (the p99_run rule) is the whole run.
				v, ok := p.value(t, `job:mqttrr_loadgen_latency_seconds:p99_run{job="loadgen"}`, end)
				if !ok || math.Abs(v-want) > 0.10*want {
					t.Errorf("whole-run p99 (p99_run rule) %.3f ms from Prometheus, report %.3f ms: more than 10%% apart", v*1000, r.Latency.P99)
				}
				t.Logf("whole-run p99: p99_run rule %.3f ms, report %.3f ms", v*1000, r.Latency.P99)
				// The panel reads the histogram's last value in the range
				// (last_over_time) where Prometheus can (2.45 and later);
				// older ones fall back to its increase, which leaves out the
				// requests before the first scrape.
				if _, exact := p.value(t, sub.Replace(fmt.Sprintf(`histogram_quantile(0.99, sum(last_over_time(%s{run_id="$run_id"}[$__range])))`, "mqttrr_loadgen_latency_seconds")), end); exact {
					if math.Abs(p99-want) > 0.10*want {
						t.Errorf("whole-run p99 panel %.3f ms from Prometheus, report %.3f ms: more than 10%% apart", p99*1000, r.Latency.P99)
					}
				} else {
					t.Logf("this Prometheus has no last_over_time of native histograms: the whole-run p99 panel (%.3f ms) is the increase over the range", p99*1000)
				}
			} else {
				checkClassicP99(t, p, sub.Replace(`sum by (le) (last_over_time(mqttrr_loadgen_latency_seconds_bucket{run_id="$run_id"}[$__range]))`), end, p99, want)
			}
			t.Logf("whole-run p99 panel: %s Prometheus %.3f ms, report %.3f ms", p.name, p99*1000, r.Latency.P99)
			checkEveryGrafanaQuery(t, p, selection{runID: runID}, promStart, end, rng, wkURL)
			// The selectors: no fleet; the Run selector (Fleet on All) offers
			// this run.
			if v := variableValues(t, p, "fleet_id", selection{}, promStart, end); len(v) != 0 {
				t.Errorf("Fleet selector offers %v for a single run, want nothing", v)
			}
			if v := variableValues(t, p, "run_id", selection{}, promStart, end); len(v) != 1 || v[0] != runID {
				t.Errorf("Run selector offers %v, want [%s]", v, runID)
			}
		})
	}

	// --- the dashboards after the run ------------------------------------------
	if page != nil {
		var st dashState
		brokertest.Await(t, "the web dashboard showing the final report", obsPace, func() (bool, string) {
			var text string
			return page.eval(`document.getElementById("state").textContent`, &text) == nil &&
				json.Unmarshal([]byte(text), &st) == nil && st.Summary != nil && st.Loadgen != nil && st.Loadgen.Phase == "finished", text
		})
		if s := st.Summary; s.RunID != runID || s.RequestsSent != r.RequestsSent || s.ResponsesMatched != r.ResponsesMatched ||
			s.MatchRate != r.MatchRate || s.P99MS != r.Latency.P99 {
			t.Errorf("web dashboard summary %+v, report sent %d matched %d match %v p99 %v", *s, r.RequestsSent, r.ResponsesMatched, r.MatchRate, r.Latency.P99)
		}
		for id, want := range map[string]string{"summary-sent": strconv.FormatUint(r.RequestsSent, 10),
			"summary-match-rate": strconv.FormatFloat(r.MatchRate, 'f', 6, 64), "summary-books-balanced": "yes"} {
			var text string
			if err := page.eval(fmt.Sprintf(`document.querySelector("#%s .v").textContent`, id), &text); err != nil || text != want {
				t.Errorf("#%s shows %q (%v), want %q", id, text, err, want)
			}
		}
		page.screenshot(t, filepath.Join(art, "dashboard-finished.png"))
	}
	if tmux != "" {
		var screen string
		brokertest.Await(t, "the terminal dashboard showing the finished run", obsPace, func() (bool, string) {
			screen = capture()
			return strings.Contains(screen, "FINISHED") && screenSent(screen) == int64(r.RequestsSent), ""
		})
		writeArtifact(t, filepath.Join(art, "terminal-finished.txt"), screen)
	}

	// --- the loadgen exits: no alert for a normal finish ---------------------------
	_ = lg.cmd.Process.Signal(syscall.SIGTERM)
	if code := lg.wait(t, 60*time.Second); code != 0 {
		t.Errorf("loadgen exit %d after SIGTERM during METRICS_LINGER\n%s", code, tail(lg.errOut.String(), 3000))
	}
	for _, p := range proms {
		var down time.Time
		brokertest.Await(t, p.name+" Prometheus seeing the loadgen target down", obsPace, func() (bool, string) {
			res := p.query(t, `up{job="loadgen"} == 0`, time.Time{}, time.Now())
			if len(res) == 1 {
				down = time.Now()
				return true, ""
			}
			return false, ""
		})
		var states map[string]string
		brokertest.Await(t, p.name+" Prometheus evaluating the alerts after the target went down", obsPace, func() (bool, string) {
			var last time.Time
			states, last = p.alertStates(t)
			return last.After(down), ""
		})
		for _, a := range []string{"MqttRrTargetDown", "MqttRrConnectionsDown", "MqttRrMatchRateLow"} {
			if states[a] != "inactive" {
				t.Errorf("%s Prometheus: %s is %q after a normal finish", p.name, a, states[a])
			}
		}
	}
	if page != nil {
		brokertest.Await(t, "the web dashboard noticing the loadgen has gone", obsPace, func() (bool, string) {
			var st dashState
			var text string
			return page.eval(`document.getElementById("state").textContent`, &text) == nil &&
				json.Unmarshal([]byte(text), &st) == nil && !st.LoadgenUp && st.Summary != nil, text
		})
		page.screenshot(t, filepath.Join(art, "dashboard-after-exit.png"))
		if ex := page.uncaught(); len(ex) > 0 {
			t.Errorf("uncaught JavaScript exceptions: %q", ex)
		}
	}
	if code := w.stop(t); code != 0 {
		t.Errorf("worker exit %d", code)
	}
}

// checkClassicP99: with classic buckets the quantile is resolved to its
// bucket: the estimate lies in the bucket where the cumulative count passes
// 0.99 × count, and so does the report's p99 (HDR values, each counted by
// its bucket's upper end like the exporter does) — or the two are in
// neighbouring buckets whose shared bound's count is within one request of
// the rank (HDR rounds the rank, Prometheus does not).
func checkClassicP99(t *testing.T, p *prom, bucketsExpr string, at time.Time, est, report float64) {
	t.Helper()
	type bucket struct{ le, cum float64 }
	var bs []bucket
	for _, s := range p.query(t, bucketsExpr, time.Time{}, at) {
		le, err := strconv.ParseFloat(s.Metric["le"], 64)
		if err != nil || len(s.Samples) != 1 {
			t.Fatalf("bucket %v: %v", s.Metric, err)
		}
		bs = append(bs, bucket{le, s.Samples[0][1]})
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
	if len(bs) < 2 || !math.IsInf(bs[len(bs)-1].le, 1) {
		t.Fatalf("classic buckets: %v", bs)
	}
	rank := 0.99 * bs[len(bs)-1].cum
	at99 := sort.Search(len(bs), func(i int) bool { return bs[i].cum >= rank })
	holds := func(v float64) int { return sort.Search(len(bs), func(i int) bool { return bs[i].le >= v/1.001 }) }
	lo := 0.0
	if at99 > 0 {
		lo = bs[at99-1].le
	}
	if est < lo || est > bs[at99].le {
		t.Errorf("classic p99 %.4f s outside the bucket (%g, %g] where the count passes the rank", est, lo, bs[at99].le)
	}
	if j := holds(report); j != at99 {
		shared := min(j, at99)
		if j-at99 > 1 || at99-j > 1 || math.Abs(bs[shared].cum-rank) > 1 {
			t.Errorf("report p99 %.4f s in bucket le=%g, Prometheus's in le=%g (rank %.1f, counts %v)", report, bs[j].le, bs[at99].le, rank, bs)
		}
	}
}

// selection is what the dashboard's Fleet and Run selectors are set to: a
// fleet (fleet_id, every run of it) or one single run (run_id). Grafana's
// All is the regular expression .*, which also matches a missing label.
type selection struct{ fleetID, runID string }

func (s selection) vars() []string {
	all := func(v string) string {
		if v == "" {
			return ".*"
		}
		return v
	}
	return []string{"$fleet_id", all(s.fleetID), "$run_id", all(s.runID)}
}

// grafanaVariables returns the dashboard's query variables: name → the
// label_values(selector, label) query.
func grafanaVariables(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("../monitoring/grafana/dashboards/mqtt-rr-bench.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Templating struct {
			List []struct {
				Name, Type, Definition string
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			vars[v.Name] = v.Definition
		}
	}
	return vars
}

var labelValues = regexp.MustCompile(`^label_values\((.+), *([a-z_]+)\)$`)

// variableValues returns what the dashboard's variable name offers, as
// Grafana asks Prometheus for it (the label values API over [start, end]),
// with the other selectors set to sel.
func variableValues(t *testing.T, p *prom, name string, sel selection, start, end time.Time) []string {
	t.Helper()
	def := grafanaVariables(t)[name]
	m := labelValues.FindStringSubmatch(def)
	if m == nil {
		t.Fatalf("dashboard variable %s: %q is not label_values(selector, label)", name, def)
	}
	match := strings.NewReplacer(sel.vars()...).Replace(m[1])
	var values []string
	if err := json.Unmarshal(p.api(t, "/api/v1/label/"+m[2]+"/values", url.Values{"match[]": {match}, "start": {ts(start)}, "end": {ts(end)}}), &values); err != nil {
		t.Fatal(err)
	}
	sort.Strings(values)
	return values
}

// checkEveryGrafanaQuery evaluates every query of the dashboard as Grafana
// would with the selectors set to sel (instant ones at the end, the others
// over the run) and requires data. Queries of worker metrics the worker does
// not export yet are reported, not failed; so are the queries only fleet runs
// answer (fleet_id!="") when sel is a single run, and those only single runs
// answer (fleet_id="") when sel is a fleet.
func checkEveryGrafanaQuery(t *testing.T, p *prom, sel selection, start, end time.Time, rng, workerURL string) {
	t.Helper()
	workerHas := exportedNames(t, workerURL+"/metrics")
	sub := strings.NewReplacer(append([]string{"$__rate_interval", "5s", "$__interval", "1s", "$__range", rng}, sel.vars()...)...)
	var ok, pending, other int
	missing := map[string]bool{}
	for _, q := range grafanaQueries(t) {
		expr := sub.Replace(q.expr)
		var res []promSeries
		if q.instant {
			res = p.query(t, expr, time.Time{}, end)
		} else {
			res = p.query(t, expr, start, end)
		}
		if len(res) > 0 && len(res[0].Samples) > 0 {
			ok++
			continue
		}
		if fleetOnly := strings.Contains(q.expr, `fleet_id!=""`); fleetOnly && sel.fleetID == "" ||
			!fleetOnly && strings.Contains(q.expr, `fleet_id=""`) && sel.fleetID != "" {
			other++
			continue
		}
		var absent []string
		for _, n := range metricName.FindAllString(q.expr, -1) {
			if strings.HasPrefix(n, "mqttrr_worker_") && !workerHas[n] {
				absent = append(absent, n)
			}
		}
		if len(absent) > 0 {
			pending++
			for _, n := range absent {
				missing[n] = true
			}
			continue
		}
		t.Errorf("%s returns no data from %s Prometheus: %s", q.where, p.name, expr)
	}
	var names []string
	for n := range missing {
		names = append(names, n)
	}
	sort.Strings(names)
	t.Logf("%s Prometheus: %d Grafana queries return data, %d are for the other kind of run (fleet or single); %d wait for worker metrics not exported yet: %s",
		p.name, ok, other, pending, strings.Join(names, ", "))
}

func writeArtifact(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.TrimRight(body, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("capture %s", path)
}

// --- a fleet ----------------------------------------------------------------------

// reportCounts are a report's counts (its top level: the measured period;
// its "warmup" object: the warm-up).
type reportCounts struct {
	Scheduled        uint64 `json:"scheduled"`
	RequestsSent     uint64 `json:"requests_sent"`
	ResponsesMatched uint64 `json:"responses_matched"`
	Timeouts         uint64 `json:"timeouts"`
	StillPending     uint64 `json:"still_pending"`
	Skipped          uint64 `json:"skipped"`
	SendFailed       uint64 `json:"send_failed"`
	Late             uint64 `json:"late"`
	Duplicate        uint64 `json:"duplicate"`
	Implausible      uint64 `json:"implausible"`
	Unknown          uint64 `json:"unknown"`
	Malformed        uint64 `json:"malformed"`
}

// obsReport is the part of a fleet member's or the merged report the
// fleet test reads.
type obsReport struct {
	reportCounts
	Warmup   *reportCounts `json:"warmup"`
	Balanced bool          `json:"accounting_balanced"`
	Latency  struct {
		P99 float64 `json:"p99"`
	} `json:"latency_ms"`
	// Runs (a member's report): its run id and fleet index.
	Runs []struct {
		RunID      string `json:"run_id"`
		FleetIndex *int   `json:"fleet_index"`
	} `json:"runs"`
}

func readObsReport(t *testing.T, path string) obsReport {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r obsReport
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return r
}

// countSeries are the report's counts and the series that carry them (by
// period): name{matchers} and the field.
var countSeries = []struct {
	series string
	field  func(c *reportCounts) uint64
}{
	{`mqttrr_loadgen_requests_scheduled_total{`, func(c *reportCounts) uint64 { return c.Scheduled }},
	{`mqttrr_loadgen_requests_sent_total{`, func(c *reportCounts) uint64 { return c.RequestsSent }},
	{`mqttrr_loadgen_responses_matched_total{`, func(c *reportCounts) uint64 { return c.ResponsesMatched }},
	{`mqttrr_loadgen_requests_timed_out_total{`, func(c *reportCounts) uint64 { return c.Timeouts }},
	{`mqttrr_loadgen_requests_skipped_total{`, func(c *reportCounts) uint64 { return c.Skipped }},
	{`mqttrr_loadgen_requests_send_failed_total{`, func(c *reportCounts) uint64 { return c.SendFailed }},
	{`mqttrr_loadgen_responses_unmatched_total{reason="late",`, func(c *reportCounts) uint64 { return c.Late }},
	{`mqttrr_loadgen_responses_unmatched_total{reason="duplicate",`, func(c *reportCounts) uint64 { return c.Duplicate }},
	{`mqttrr_loadgen_responses_unmatched_total{reason="implausible",`, func(c *reportCounts) uint64 { return c.Implausible }},
	{`mqttrr_loadgen_responses_unmatched_total{reason="unknown",`, func(c *reportCounts) uint64 { return c.Unknown }},
	{`mqttrr_loadgen_responses_unmatched_total{reason="malformed",`, func(c *reportCounts) uint64 { return c.Malformed }},
}

// TestObservabilityFleet runs a fleet of three loadgens (FLEET_ID shared,
// FLEET_INDEX 0..2, index 0 coordinating in its own process and writing the
// merged report to FLEET_RESULTS; 3 s of warm-up in a 10 s run) against one
// worker, scraped by a real Prometheus with native histograms and one with
// classic ones, and checks what they make of it:
//
//   - the fleet id selects all three: mqttrr_loadgen_info{fleet_id} has
//     fleet_index 0, 1 and 2, the Fleet selector offers the fleet and the
//     Run selector, set to it, the three run ids of the merged report;
//   - the counts by period equal the reports: period="measured" summed over
//     the fleet is the merged report's scheduled, requests_sent,
//     responses_matched, timeouts, skipped, send_failed, late, duplicate,
//     implausible, unknown and malformed, exactly, and period="warmup" its
//     warmup counts; per run id, each instance's report and warmup counts;
//     the warm-up had traffic, so the counts of both periods are more than
//     the report's;
//   - the _run rules keep an instance that finished earlier: once every
//     instance has finished, loadgen 2 is stopped and Prometheus has seen it
//     down (its series stale, a plain sum no longer has it), the _run rules
//     still equal the merged report (counts, instances 3, match and success
//     rate, p99 within the histogram's resolution), as do the dashboard's
//     whole-run panels with the Fleet selector on the fleet; every dashboard
//     query returns data for the fleet.
func TestObservabilityFleet(t *testing.T) {
	brokertest.NeedTool(t, "prometheus", "apt-get install -y prometheus; .ci/run installs it")
	b := brokertest.Start(t)
	w, waddr := startWorker(t, b.URL())
	const size = 3
	fleetID := fmt.Sprintf("obs-fleet-%d", os.Getpid())
	addrs := make([]string, size)
	for i := range addrs {
		addrs[i] = brokertest.FreeAddr(t)
	}
	native := startPrometheus(t, "native", addrs, waddr, "--enable-feature=native-histograms")
	classic := startPrometheus(t, "classic", addrs, waddr)
	proms := []*prom{native, classic}
	promStart := time.Now()

	results := t.TempDir()
	lgs := make([]*proc, size)
	for i := range lgs {
		env := []string{"BROKER=" + b.URL(), "METRICS_ADDR=" + addrs[i], "VIRTUAL_CLIENTS=100", "INTERVAL_MS=500",
			"DURATION=10s", "WARMUP=3s", "CONNECTIONS=4", "SHARDS=16", "MAX_INFLIGHT_PER_CLIENT=16", "PROGRESS_INTERVAL=1s",
			"METRICS_LINGER=10m", lossy, "FLEET_ID=" + fleetID, fmt.Sprintf("FLEET_SIZE=%d", size), fmt.Sprintf("FLEET_INDEX=%d", i),
			fmt.Sprintf("INSTANCE_ID=%s-%d", fleetID, i), "FLEET_COORDINATOR=self", "FLEET_RESULTS=" + results}
		lgs[i] = start(t, "loadgen-v2", env...)
	}
	// Every instance runs and finishes (then serves its final state for
	// METRICS_LINGER); the coordinator merges their reports.
	for i, lg := range lgs {
		waitLoadgen(t, lg, addrs[i], fmt.Sprintf("loadgen %d sending", i), func(v lgVars) bool { return v.Phase != "connecting" })
	}
	for i, lg := range lgs {
		waitLoadgen(t, lg, addrs[i], fmt.Sprintf("loadgen %d in phase finished", i), func(v lgVars) bool { return v.Phase == "finished" })
	}
	merged := filepath.Join(results, "merged.json")
	waitEvent(t, "the fleet's merged report in FLEET_RESULTS", lgs, func() (bool, string) {
		_, err := os.Stat(merged)
		return err == nil, fmt.Sprint(err)
	})
	m := readObsReport(t, merged)
	members := make([]obsReport, size)
	runIDs := make([]string, size)
	for i := range members {
		members[i] = readObsReport(t, filepath.Join(results, fmt.Sprintf("loadgen-%d.json", i)))
		if len(members[i].Runs) != 1 || members[i].Runs[0].FleetIndex == nil || *members[i].Runs[0].FleetIndex != i || members[i].Warmup == nil {
			t.Fatalf("loadgen-%d.json: runs %+v, warmup %v", i, members[i].Runs, members[i].Warmup)
		}
		runIDs[i] = members[i].Runs[0].RunID
	}
	if !m.Balanced || m.StillPending != 0 || m.RequestsSent == 0 || m.Warmup == nil || len(m.Runs) != size {
		t.Fatalf("merged report: %+v", m)
	}
	var mergedIDs []string
	for _, r := range m.Runs {
		mergedIDs = append(mergedIDs, r.RunID)
	}
	if slices.Sort(mergedIDs); !slices.Equal(mergedIDs, slices.Sorted(slices.Values(runIDs))) {
		t.Fatalf("merged report's runs %v, the members' %v", mergedIDs, runIDs)
	}
	var warm reportCounts
	for _, r := range members {
		warm.RequestsSent += r.Warmup.RequestsSent
	}
	if warm.RequestsSent == 0 {
		t.Fatalf("no request sent in the warm-up: the test checks nothing about it (reports %+v)", members)
	}
	t.Logf("fleet %s: merged sent %d matched %d timeouts %d, p99 %.3f ms; %d sent in the warm-up", fleetID, m.RequestsSent, m.ResponsesMatched, m.Timeouts, m.Latency.P99, warm.RequestsSent)

	// Both Prometheus servers have scraped all three finished (the counts
	// are final from the first such scrape on).
	fleetSel := fmt.Sprintf(`fleet_id=%q`, fleetID)
	for _, p := range proms {
		brokertest.Await(t, p.name+" Prometheus scraping the three instances finished", obsPace, func() (bool, string) {
			v, ok := p.value(t, fmt.Sprintf(`count(mqttrr_loadgen_phase{%s,phase="finished"} == 1)`, fleetSel), time.Now())
			if ok && v == size {
				return true, ""
			}
			var seen []string
			for _, s := range p.query(t, `up{job="loadgen"} or mqttrr_loadgen_phase == 1`, time.Time{}, time.Now()) {
				seen = append(seen, fmt.Sprintf("%v=%v", s.Metric, s.Samples))
			}
			tg := p.api(t, "/api/v1/targets", url.Values{})
			return false, strings.Join(seen, "; ") + "\n" + string(tg)
		})
	}
	end := time.Now()
	rng := fmt.Sprintf("%ds", int(end.Sub(promStart).Seconds())+60)
	sum := func(p *prom, expr string, at time.Time) float64 {
		t.Helper()
		v, ok := p.value(t, expr+" or vector(0)", at)
		if !ok {
			t.Fatalf("%s Prometheus: no value for %s", p.name, expr)
		}
		return v
	}

	for _, p := range proms {
		t.Run("prometheus "+p.name+" counts", func(t *testing.T) {
			// The fleet id selects all three instances, each with its index.
			var idx []string
			for _, s := range p.query(t, fmt.Sprintf(`mqttrr_loadgen_info{%s}`, fleetSel), time.Time{}, end) {
				idx = append(idx, s.Metric["fleet_index"]+"/"+s.Metric["fleet_size"]+" "+s.Metric["run_id"])
			}
			sort.Strings(idx)
			want := make([]string, size)
			for i := range want {
				want[i] = fmt.Sprintf("%d/%d %s", i, size, runIDs[i])
			}
			if strings.Join(idx, ", ") != strings.Join(want, ", ") {
				t.Errorf("mqttrr_loadgen_info{%s}: %v, want %v", fleetSel, idx, want)
			}
			// Summed over the fleet, the measured period is the merged
			// report; per run id, each instance's report and warm-up.
			for _, c := range countSeries {
				expr := fmt.Sprintf(`sum(last_over_time(%s%s,period="measured"}[%s]))`, c.series, fleetSel, rng)
				if v := sum(p, expr, end); v != float64(c.field(&m.reportCounts)) {
					t.Errorf("%s = %v, the merged report %d", expr, v, c.field(&m.reportCounts))
				}
				expr = fmt.Sprintf(`sum(last_over_time(%s%s,period="warmup"}[%s]))`, c.series, fleetSel, rng)
				if v := sum(p, expr, end); v != float64(c.field(m.Warmup)) {
					t.Errorf("%s = %v, the merged report's warmup %d", expr, v, c.field(m.Warmup))
				}
				for i, r := range members {
					for _, period := range []struct {
						name   string
						counts *reportCounts
					}{{"measured", &r.reportCounts}, {"warmup", r.Warmup}} {
						expr := fmt.Sprintf(`sum(last_over_time(%s%s,run_id=%q,period=%q}[%s]))`, c.series, fleetSel, runIDs[i], period.name, rng)
						if v := sum(p, expr, end); v != float64(c.field(period.counts)) {
							t.Errorf("%s = %v, loadgen %d's report %d", expr, v, i, c.field(period.counts))
						}
					}
				}
			}
			if both := sum(p, fmt.Sprintf(`sum(mqttrr_loadgen_requests_sent_total{%s})`, fleetSel), end); both != float64(m.RequestsSent+warm.RequestsSent) {
				t.Errorf("requests sent over both periods %v, want the report's %d + the warm-up's %d", both, m.RequestsSent, warm.RequestsSent)
			}
		})
	}

	// Loadgen 2 ends its linger and exits; Prometheus sees its target down
	// (its series end stale) and evaluates the rules after that.
	if code := lgs[2].stop(t); code != 0 {
		t.Errorf("loadgen 2 exit %d after SIGTERM during METRICS_LINGER\n%s", code, tail(lgs[2].errOut.String(), 3000))
	}
	for _, p := range proms {
		var down time.Time
		brokertest.Await(t, p.name+" Prometheus seeing loadgen 2's target down", obsPace, func() (bool, string) {
			_, ok := p.value(t, fmt.Sprintf(`up{job="loadgen",instance=%q} == 0`, addrs[2]), time.Now())
			down = time.Now()
			return ok, ""
		})
		brokertest.Await(t, p.name+" Prometheus evaluating the rules after that", obsPace, func() (bool, string) {
			return p.lastRuleEvaluation(t, "mqttrr-loadgen.rules").After(down), ""
		})
	}
	end = time.Now()
	rng = fmt.Sprintf("%ds", int(end.Sub(promStart).Seconds())+60)
	settled := float64(m.ResponsesMatched) / float64(m.ResponsesMatched+m.Timeouts)
	success := float64(m.ResponsesMatched) / float64(m.ResponsesMatched+m.Timeouts+m.Skipped+m.SendFailed)
	for _, p := range proms {
		t.Run("prometheus "+p.name+" after loadgen 2 left", func(t *testing.T) {
			// A plain sum has lost loadgen 2 (what the _run rules read before).
			alive := fmt.Sprintf(`sum(mqttrr_loadgen_requests_sent_total{%s,period="measured"})`, fleetSel)
			if v := sum(p, alive, end); v != float64(m.RequestsSent-members[2].RequestsSent) {
				t.Errorf("%s = %v, want loadgen 0 and 1's %d", alive, v, m.RequestsSent-members[2].RequestsSent)
			}
			rule := func(name string) float64 {
				t.Helper()
				v, ok := p.value(t, fmt.Sprintf(`%s{job="loadgen",%s}`, name, fleetSel), end)
				if !ok {
					t.Fatalf("%s{%s}: no value", name, fleetSel)
				}
				return v
			}
			for _, c := range []struct {
				rule string
				want uint64
			}{
				{"job:mqttrr_loadgen_requests_sent:sum_run", m.RequestsSent},
				{"job:mqttrr_loadgen_responses_matched:sum_run", m.ResponsesMatched},
				{"job:mqttrr_loadgen_requests_timed_out:sum_run", m.Timeouts},
				{"job:mqttrr_loadgen_requests_skipped:sum_run", m.Skipped},
				{"job:mqttrr_loadgen_requests_send_failed:sum_run", m.SendFailed},
				{"job:mqttrr_loadgen_instances:count_run", size},
			} {
				if v := rule(c.rule); v != float64(c.want) {
					t.Errorf("%s{%s} = %v, want %d (the merged report)", c.rule, fleetSel, v, c.want)
				}
			}
			if v := rule("job:mqttrr_loadgen_match_rate:ratio_run"); math.Abs(v-settled) > 1e-12 {
				t.Errorf("match rate rule (run) %v, merged report %v", v, settled)
			}
			if v := rule("job:mqttrr_loadgen_success_rate:ratio_run"); math.Abs(v-success) > 1e-12 {
				t.Errorf("success rate rule (run) %v, merged report %v", v, success)
			}
			p99, want := rule("job:mqttrr_loadgen_latency_seconds:p99_run"), m.Latency.P99/1000
			if p.name == "native" {
				// Buckets 9.05% wide: the estimate and the merged report's
				// p99 share one, or neighbouring ones.
				if math.Abs(p99-want) > 0.10*want {
					t.Errorf("p99_run %.3f ms, merged report %.3f ms: more than 10%% apart", p99*1000, m.Latency.P99)
				}
			} else {
				checkClassicP99(t, p, fmt.Sprintf(`sum by (le) (last_over_time(mqttrr_loadgen_latency_seconds_bucket{%s}[%s]))`, fleetSel, rng), end, p99, want)
			}
			t.Logf("p99_run after loadgen 2 left: %s Prometheus %.3f ms, merged report %.3f ms", p.name, p99*1000, m.Latency.P99)

			// The dashboard with the Fleet selector on the fleet.
			sel := selection{fleetID: fleetID}
			if v := variableValues(t, p, "fleet_id", selection{}, promStart, end); len(v) != 1 || v[0] != fleetID {
				t.Errorf("Fleet selector offers %v, want [%s]", v, fleetID)
			}
			ids := slices.Sorted(slices.Values(runIDs))
			if v := variableValues(t, p, "run_id", sel, promStart, end); !slices.Equal(v, ids) {
				t.Errorf("Run selector with the fleet picked offers %v, want %v", v, ids)
			}
			sub := strings.NewReplacer(append([]string{"$__range", rng}, sel.vars()...)...)
			whole := map[string]string{}
			for _, q := range grafanaQueries(t) {
				whole[q.where] = sub.Replace(q.expr)
			}
			for _, c := range []struct {
				panel string
				want  uint64
			}{
				{`panel "Requests sent (whole run)" A`, m.RequestsSent},
				{`panel "Timed out / skipped / send failed (whole run)" A`, m.Timeouts},
				{`panel "Phase" B`, size},
			} {
				if v, _ := p.value(t, whole[c.panel], end); v != float64(c.want) {
					t.Errorf("%s = %v, want %d: %s", c.panel, v, c.want, whole[c.panel])
				}
			}
			if v, _ := p.value(t, whole[`panel "Match rate (whole run, settled)" A`], end); math.Abs(v-settled) > 1e-12 {
				t.Errorf("whole-run match rate panel %v, merged report %v", v, settled)
			}
			checkEveryGrafanaQuery(t, p, sel, promStart, end, rng, "http://"+waddr)
		})
	}

	for i, lg := range lgs[:2] {
		if code := lg.stop(t); code != 0 {
			t.Errorf("loadgen %d exit %d after SIGTERM during METRICS_LINGER\n%s", i, code, tail(lg.errOut.String(), 3000))
		}
	}
	if code := w.stop(t); code != 0 {
		t.Errorf("worker exit %d", code)
	}
}
