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

// startPrometheus runs a Prometheus scraping the loadgen and the worker every
// second and evaluating monitoring/alerts.yml every second.
func startPrometheus(t *testing.T, name, loadgenAddr, workerAddr string, flags ...string) *prom {
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
    static_configs: [{targets: [%q]}]
  - job_name: worker
    static_configs: [{targets: [%q]}]
`, rules, loadgenAddr, workerAddr)
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

// TestObservability runs a worker and a loadgen (1000 req/s for 20 s, its
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
	native := startPrometheus(t, "native", laddr, waddr, "--enable-feature=native-histograms")
	classic := startPrometheus(t, "classic", laddr, waddr)
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

	rf := filepath.Join(t.TempDir(), "report.json")
	lg := start(t, "loadgen-v2", "BROKER="+b.URL(), "METRICS_ADDR="+laddr, "VIRTUAL_CLIENTS=1000", "INTERVAL_MS=1000",
		"DURATION=20s", "CONNECTIONS=8", "SHARDS=64", "PROGRESS_INTERVAL=1s", "METRICS_LINGER=10m", "REPORT_FILE="+rf,
		"INSTANCE_ID=obs-lg-0")
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
			case st.Loadgen.RequestsSent > pageFirst.Loadgen.RequestsSent && st.Points["rate"] >= 12 && st.Points["latency"] >= 18 &&
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
			sub := strings.NewReplacer("$__range", rng, "$run_id", runID)
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
			checkEveryGrafanaQuery(t, p, runID, promStart, end, rng, wkURL)
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

// checkEveryGrafanaQuery evaluates every query of the dashboard as Grafana
// would (instant ones at the end, the others over the run) and requires data.
// Queries of worker metrics the worker does not export yet are reported, not
// failed.
func checkEveryGrafanaQuery(t *testing.T, p *prom, runID string, start, end time.Time, rng, workerURL string) {
	t.Helper()
	workerHas := exportedNames(t, workerURL+"/metrics")
	sub := strings.NewReplacer("$__rate_interval", "5s", "$__interval", "1s", "$__range", rng, "$run_id", runID)
	var ok, pending int
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
	t.Logf("%s Prometheus: %d Grafana queries return data; %d wait for worker metrics not exported yet: %s", p.name, ok, pending, strings.Join(names, ", "))
	// The Run selector's values.
	var values []string
	if err := json.Unmarshal(p.api(t, "/api/v1/label/run_id/values", url.Values{"match[]": {"mqttrr_loadgen_info"}}), &values); err != nil {
		t.Fatal(err)
	}
	if len(values) != 1 || values[0] != runID {
		t.Errorf("Run selector (label_values(mqttrr_loadgen_info, run_id)) offers %v, want [%s]", values, runID)
	}
}

func writeArtifact(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.TrimRight(body, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("capture %s", path)
}
