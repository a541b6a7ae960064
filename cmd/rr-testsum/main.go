// Command rr-testsum shows the progress of `go test -json` (make test): a
// line per package as it ends, with its duration, tests and skips; a line
// per slow top-level test (progress inside a long package); every skipped
// test with its reason; the output of every failure; and a summary. Its exit
// status is 1 when anything failed.
//
//	go test -json ./... | rr-testsum [-slow 2s]
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/cmd/rr-testsum/internal/testsum"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/cliutil"
	buildinfo "github.com/mqtt-rr-bench/mqtt-rr-bench/internal/metrics"
)

// module is stripped from the package paths shown.
const module = "github.com/mqtt-rr-bench/mqtt-rr-bench"

func main() {
	if cliutil.WantsVersion(os.Args[1:]) {
		fmt.Println(buildinfo.VersionLine("rr-testsum"))
		return
	}
	slow := flag.Duration("slow", 2*time.Second, "print each top-level test that ran at least this long as it ends (0 = none)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: go test -json ./... | rr-testsum [-slow 2s]")
		flag.PrintDefaults()
	}
	flag.Parse()
	sum, err := testsum.Run(os.Stdin, os.Stdout, testsum.Options{Slow: *slow, Module: module})
	if err != nil {
		fmt.Fprintln(os.Stderr, "rr-testsum:", err)
		os.Exit(1)
	}
	if !sum.OK() {
		os.Exit(1)
	}
}
