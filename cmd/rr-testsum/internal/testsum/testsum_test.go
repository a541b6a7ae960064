package testsum

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// stream is `go test -json` of a module with a build failure (b), a package
// whose tests pass slowly, skip and fail (a), one without test files (c) and
// a line that is not an event.
const stream = `{"ImportPath":"m/b [m/b.test]","Action":"build-output","Output":"# m/b [m/b.test]\n"}
{"ImportPath":"m/b [m/b.test]","Action":"build-output","Output":"b/b_test.go:3:27: undefined: undefined\n"}
{"ImportPath":"m/b [m/b.test]","Action":"build-fail"}
{"Action":"start","Package":"m/a"}
{"Action":"start","Package":"m/b"}
{"Action":"output","Package":"m/b","Output":"FAIL\tm/b [build failed]\n"}
{"Action":"fail","Package":"m/b","Elapsed":0,"FailedBuild":"m/b [m/b.test]"}
{"Action":"run","Package":"m/a","Test":"TestSlow"}
{"Action":"output","Package":"m/a","Test":"TestSlow","Output":"=== RUN   TestSlow\n"}
{"Action":"pass","Package":"m/a","Test":"TestSlow","Elapsed":3.25}
{"Action":"run","Package":"m/a","Test":"TestQuick"}
{"Action":"pass","Package":"m/a","Test":"TestQuick","Elapsed":0.01}
{"Action":"run","Package":"m/a","Test":"TestSkip"}
{"Action":"output","Package":"m/a","Test":"TestSkip","Output":"=== RUN   TestSkip\n"}
{"Action":"output","Package":"m/a","Test":"TestSkip","Output":"    a_test.go:4: some log\n"}
{"Action":"output","Package":"m/a","Test":"TestSkip","Output":"    a_test.go:4: mosquitto not installed: apt-get install -y mosquitto\n"}
{"Action":"output","Package":"m/a","Test":"TestSkip","Output":"--- SKIP: TestSkip (0.00s)\n"}
{"Action":"skip","Package":"m/a","Test":"TestSkip","Elapsed":0}
{"Action":"run","Package":"m/a","Test":"TestFail"}
{"Action":"run","Package":"m/a","Test":"TestFail/sub"}
{"Action":"output","Package":"m/a","Test":"TestFail/sub","Output":"=== RUN   TestFail/sub\n"}
{"Action":"output","Package":"m/a","Test":"TestFail/sub","Output":"    a_test.go:5: boom\n"}
{"Action":"output","Package":"m/a","Test":"TestFail/sub","Output":"--- FAIL: TestFail/sub (0.00s)\n"}
{"Action":"fail","Package":"m/a","Test":"TestFail/sub","Elapsed":0}
{"Action":"fail","Package":"m/a","Test":"TestFail","Elapsed":0}
{"Action":"fail","Package":"m/a","Elapsed":3.5}
go: downloading example.com/x v1.0.0
{"Action":"output","Package":"m/c","Output":"?   \tm/c\t[no test files]\n"}
{"Action":"skip","Package":"m/c","Elapsed":0}
`

func TestRun(t *testing.T) {
	var out bytes.Buffer
	clock := time.Unix(0, 0)
	now := func() time.Time { clock = clock.Add(90 * time.Second); return clock }
	sum, err := Run(strings.NewReader(stream), &out, Options{Slow: 2 * time.Second, Module: "m", Now: now})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"FAIL  b [m/b.test]: the build failed\n    # m/b [m/b.test]\n    b/b_test.go:3:27: undefined: undefined\n",
		"      a TestSlow (3.2s)\n", // a slow top-level test, as it ends
		"SKIP  a TestSkip: mosquitto not installed: apt-get install -y mosquitto\n",
		"FAIL  a TestFail/sub (0.0s)\n        a_test.go:5: boom\n", // the output, indented
		"FAIL  a                                           3.5s  5 tests, 1 skipped, 2 failed\n",
		"go: downloading example.com/x v1.0.0\n",
		"-     c                                        (no test files)\n",
		"DONE  FAILED: 3 packages, 5 tests, 1 skipped, 2 failed in 1m30s\n",
		"skipped (each says what it lacks):\n  a TestSkip: mosquitto not installed: apt-get install -y mosquitto\n",
		"failed: b, a\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "TestQuick") || strings.Contains(out.String(), "=== RUN") {
		t.Errorf("a quick passing test or go test's framing is shown:\n%s", out.String())
	}
	if sum.OK() || sum.Failed != 2 || sum.Skipped != 1 || sum.Packages != 3 {
		t.Errorf("summary %+v", sum)
	}
}

func TestRunAllPassing(t *testing.T) {
	in := `{"Action":"run","Package":"m/a","Test":"TestA"}
{"Action":"pass","Package":"m/a","Test":"TestA","Elapsed":0.5}
{"Action":"pass","Package":"m/a","Elapsed":0.6}
`
	var out bytes.Buffer
	sum, err := Run(strings.NewReader(in), &out, Options{Slow: time.Second, Module: "m"})
	if err != nil || !sum.OK() {
		t.Fatalf("%+v %v", sum, err)
	}
	if want := "ok    a                                           0.6s  1 tests\n"; !strings.HasPrefix(out.String(), want) || !strings.Contains(out.String(), "DONE  ok: 1 packages, 1 tests, 0 skipped, 0 failed") ||
		!strings.HasSuffix(out.String(), "\ntests: 1 passed, 0 failed, 0 skipped\n") {
		t.Errorf("output:\n%s\nwant it to start with %q", out.String(), want)
	}
}
