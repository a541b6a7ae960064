package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	dir := t.TempDir()
	report := filepath.Join(dir, "step.json")
	if err := os.WriteFile(report, []byte(`{"target_rps":1000,"latency_ms":{"count":1,"p50":1,"p90":2,"p99":3,"p999":4,"max":5},"slo":{"passed":true}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	series := filepath.Join(dir, "timeline.csv")
	if err := os.WriteFile(series, []byte("t_s,workers\n1,10\n2,20\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.svg")
	cases := []struct {
		name   string
		args   []string
		code   int
		stderr string
		svg    bool
	}{
		{name: "no arguments", args: nil, code: 2, stderr: "rr-chart rate"},
		{name: "help", args: []string{"-h"}, code: 0, stderr: "rr-chart spectrum"},
		{name: "unknown chart", args: []string{"pie", "-o", out}, code: 2, stderr: `unknown chart "pie"`},
		{name: "no output", args: []string{"rate", report}, code: 2, stderr: "needs -o FILE"},
		{name: "bad x", args: []string{"rate", "-o", out, "-x", "p99", report}, code: 2, stderr: "unknown x field"},
		{name: "bad flag", args: []string{"rate", "-o", out, "-slo-p99", "fast", report}, code: 2, stderr: "invalid value"},
		{name: "timeline needs one file", args: []string{"timeline", "-o", out}, code: 2, stderr: "one CSV file"},
		{name: "missing report", args: []string{"spectrum", "-o", out, filepath.Join(dir, "none.json")}, code: 1, stderr: "none.json"},
		{name: "rate", args: []string{"rate", "-o", out, "-slo-p99", "50", "-title", "t", report}, code: 0, svg: true},
		{name: "spectrum without histograms", args: []string{"spectrum", "-o", out, report}, code: 0, svg: true},
		{name: "timeline", args: []string{"timeline", "-o", out, series}, code: 0, svg: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_ = os.Remove(out)
			var stderr bytes.Buffer
			if code := run(tc.args, &stderr); code != tc.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tc.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("stderr does not contain %q:\n%s", tc.stderr, stderr.String())
			}
			if !tc.svg {
				return
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			d := xml.NewDecoder(bytes.NewReader(b))
			for {
				if _, err := d.Token(); errors.Is(err, io.EOF) {
					break
				} else if err != nil {
					t.Fatalf("invalid SVG: %v", err)
				}
			}
		})
	}
}

// TestTitleFromReports: every chart's title says, from the reports it draws
// (for a timeline, those after the CSV), the brokers, the offered rate and
// the measured duration with the warm-up.
func TestTitleFromReports(t *testing.T) {
	dir := t.TempDir()
	var reports []string
	for _, b := range []string{"mosquitto", "embedded"} {
		f := filepath.Join(dir, "quick-"+b+".json")
		js := `{"target_rps":10000,"duration_s":8,"config":{"broker":"tcp://u:p@127.0.0.1:1883","warmup":2000000000},"bench":{"broker":"` + b + `"},` +
			`"latency_ms":{"count":1,"p50":1,"p90":2,"p99":3,"p999":4,"max":5},"slo":{"passed":true}}`
		if err := os.WriteFile(f, []byte(js), 0o644); err != nil {
			t.Fatal(err)
		}
		reports = append(reports, f)
	}
	series := filepath.Join(dir, "timeline.csv")
	if err := os.WriteFile(series, []byte("t_s,workers\n1,10\n2,20\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	want := "quick: spectrum — broker mosquitto, embedded · 10k req/s · 8 s measured after a 2 s warm-up"
	for _, args := range [][]string{
		append([]string{"spectrum", "-title", "quick: spectrum"}, reports...),
		append([]string{"rate", "-title", "quick: spectrum"}, reports...),
		append([]string{"timeline", "-title", "quick: spectrum", series}, reports...),
	} {
		out := filepath.Join(dir, args[0]+".svg")
		args = append([]string{args[0], "-o", out}, args[1:]...)
		var stderr bytes.Buffer
		if code := run(args, &stderr); code != 0 {
			t.Fatalf("%v: exit %d\n%s", args, code, stderr.String())
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "<title>"+want+"</title>") || !strings.Contains(string(b), ">broker mosquitto, embedded · 10k req/s · 8 s measured after a 2 s warm-up</text>") {
			t.Errorf("%s: the title lacks %q:\n%.600s", args[0], want, b)
		}
	}
}
