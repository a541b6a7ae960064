// Command rr-chart draws the charts of a benchmark run as SVG files from the
// loadgen's JSON reports (percentiles from the HDR histograms they carry) and
// from time-series CSV. scripts/benchmark.sh calls it for every suite.
//
//	rr-chart rate     -o FILE [-x target_rps|throughput_rps|virtual_clients] [-slo-p99 MS] [-knee X] [-title T] REPORT.json...
//	rr-chart spectrum -o FILE [-title T] REPORT.json...
//	rr-chart timeline -o FILE [-title T] SERIES.csv [REPORT.json...]
//
// Every title gets a second line from the reports it draws (or, for a
// timeline, the reports given after the CSV): their brokers, offered rates
// and measured durations with the warm-up (chart.Describe).
//
// Exit status: 0 ok, 1 a file could not be read or written, 2 bad usage.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/cliutil"
	buildinfo "github.com/mqtt-rr-bench/mqtt-rr-bench/internal/metrics"
	"io"
	"os"
	"strings"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/cmd/rr-chart/internal/chart"
)

const usage = `rr-chart: SVG charts of benchmark results

  rr-chart rate     -o FILE [-x target_rps|throughput_rps|virtual_clients] [-slo-p99 MS] [-knee X] [-title T] REPORT.json...
      latency percentiles (p50, p90, p99, p99.9, max) against the offered rate (or x), one point per report;
      hollow markers: the step missed its SLO
  rr-chart spectrum -o FILE [-title T] REPORT.json...
      percentile spectrum of each report's round-trip histogram (latency against percentile, log 1/(1-q) axis)
  rr-chart timeline -o FILE [-title T] SERIES.csv [REPORT.json...]
      a CSV whose first column is the x axis; every other column a series, "panel/series" headers share a panel
      (e.g. t_s,pool/workers,pool/need_workers,queue_depth); the reports of the run, for the title

Each title gets a line from the reports: brokers, offered rates, measured durations and warm-up.

Exit status: 0 ok, 1 a file could not be read or written, 2 bad usage.`

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

// errUsage marks a command line that cannot be run (exit 2).
var errUsage = errors.New("usage")

func run(args []string, stderr io.Writer) int {
	if cliutil.WantsVersion(args) {
		fmt.Println(buildinfo.VersionLine("rr-chart"))
		return 0
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stderr, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	err := command(args[0], args[1:], stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "rr-chart: %v\n\n%s\n", err, usage)
		return 2
	default:
		fmt.Fprintln(stderr, "rr-chart:", err)
		return 1
	}
}

func command(name string, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "", "output SVG file (required)")
	title := fs.String("title", "", "chart title")
	x := fs.String("x", string(chart.XTarget), "rate: x axis (target_rps, throughput_rps, virtual_clients)")
	slo := fs.Float64("slo-p99", 0, "rate: draw the p99 objective at this many ms (0 = none)")
	knee := fs.Float64("knee", 0, "rate: draw a vertical line at this x (0 = none)")
	switch name {
	case "rate", "spectrum", "timeline":
	default:
		return fmt.Errorf("%w: unknown chart %q", errUsage, name)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if *out == "" {
		return fmt.Errorf("%w: %s needs -o FILE", errUsage, name)
	}
	files := fs.Args()
	if name == "timeline" && len(files) < 1 {
		return fmt.Errorf("%w: timeline takes one CSV file (then the run's reports)", errUsage)
	}
	reports := files
	if name == "timeline" {
		reports = files[1:]
	}
	steps := make([]chart.Step, 0, len(reports))
	for _, f := range reports {
		st, err := chart.ReadStep(f)
		if err != nil {
			return err
		}
		steps = append(steps, st)
	}
	if d := chart.Describe(steps); d != "" {
		*title = strings.TrimSpace(*title + "\n" + d)
	}

	var panels []chart.Plot
	switch name {
	case "rate", "spectrum":
		if name == "spectrum" {
			panels = append(panels, chart.SpectrumPlot(steps))
			break
		}
		p, err := chart.RatePlot(steps, chart.XField(*x), *slo, *knee)
		if err != nil {
			return fmt.Errorf("%w: -x: %v", errUsage, err)
		}
		panels = append(panels, p)
	case "timeline":
		f, err := os.Open(files[0])
		if err != nil {
			return err
		}
		defer f.Close()
		if panels, err = chart.ReadTimeline(f); err != nil {
			return fmt.Errorf("%s: %w", files[0], err)
		}
	}
	var buf bytes.Buffer
	if err := chart.Write(&buf, *title, panels...); err != nil {
		return err
	}
	return os.WriteFile(*out, buf.Bytes(), 0o644)
}
