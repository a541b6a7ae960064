// Package localrun owns the single-machine orchestration behind `make run`:
// the embedded broker in-process, worker-v2 and loadgen-v2 as child
// processes in their own process groups (killed if this process dies), and
// an orderly stop: loadgen first (it drains and reports), then the worker
// (SIGTERM, graceful), then the broker. While it runs it publishes where the
// endpoints are (state.go), for make stats / dashboard / dashboard-web.
package localrun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/broker"
	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/freeport"
)

// DefaultLinger is the loadgen's METRICS_LINGER under rr-local unless the
// environment sets one: after the report, its endpoints (/report, /metrics,
// /stats) and the worker's stay up this long for make dashboard and make
// dashboard-web; Ctrl-C ends it at once; METRICS_LINGER=0 turns it off.
const DefaultLinger = 60 * time.Second

// Main runs the benchmark and returns the exit status.
func Main(stdout, stderr io.Writer) int {
	addr := envOr("BROKER_ADDR", "127.0.0.1:0")
	b, err := broker.Start(broker.Options{Addr: addr})
	if err != nil {
		fmt.Fprintln(stderr, "rr-local:", err)
		return 1
	}
	defer b.Close()
	fmt.Fprintf(stderr, "rr-local: embedded broker on %s\n", b.Addr())

	bin := os.Getenv("BIN_DIR")
	if bin == "" {
		exe, err := os.Executable()
		if err != nil {
			fmt.Fprintln(stderr, "rr-local:", err)
			return 1
		}
		bin = filepath.Dir(exe)
	}
	// The endpoints: the usual ports when free (what make stats / make
	// dashboard expect), else free ones; either way published in the state
	// file while the run lasts.
	workerHTTP := envOr("HTTP_ADDR", "")
	if workerHTTP == "" {
		workerHTTP = preferredAddr(DefaultWorkerAddr)
	}
	metrics := envOr("METRICS_ADDR", "")
	if metrics == "" {
		metrics = preferredAddr(DefaultLoadgenAddr)
	}
	statePath := envOr("RR_LOCAL_STATE", DefaultStatePath())
	if err := writeState(statePath, State{PID: os.Getpid(), LoadgenURL: "http://" + metrics, WorkerURL: "http://" + workerHTTP, BrokerURL: b.URL()}); err != nil {
		fmt.Fprintf(stderr, "rr-local: endpoints not published (%v); loadgen http://%s, worker http://%s\n", err, metrics, workerHTTP)
	} else {
		defer removeState(statePath, os.Getpid())
		fmt.Fprintf(stderr, "rr-local: endpoints loadgen http://%s, worker http://%s (published in %s for make stats, make dashboard, make dashboard-web)\n", metrics, workerHTTP, statePath)
	}

	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)

	worker := command(filepath.Join(bin, "worker-v2"), stdout, stderr, "MQTT_BROKER="+b.URL(), "HTTP_ADDR="+workerHTTP)
	if err := worker.Start(); err != nil {
		fmt.Fprintln(stderr, "rr-local: start worker:", err)
		return 1
	}
	workerDone := make(chan error, 1)
	go func() { workerDone <- worker.Wait() }()
	defer stopProcess(worker, workerDone, stderr)

	// Wait until the worker is subscribed, so the first requests find it.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := waitReady(ctx, "http://"+workerHTTP+"/ready", workerDone, sig); err != nil {
		fmt.Fprintln(stderr, "rr-local: worker not ready:", err)
		return 1
	}
	fmt.Fprintf(stderr, "rr-local: worker ready (http://%s/stats); starting loadgen (http://%s/metrics)\n", workerHTTP, metrics)

	lgEnv := []string{"BROKER=" + b.URL(), "METRICS_ADDR=" + metrics}
	if linger, set := os.LookupEnv("METRICS_LINGER"); !set || strings.TrimSpace(linger) == "" {
		// The dashboards keep the report after the run (the loadgen says
		// where and for how long).
		lgEnv = append(lgEnv, "METRICS_LINGER="+DefaultLinger.String())
	}
	lg := command(filepath.Join(bin, "loadgen-v2"), stdout, stderr, lgEnv...)
	if err := lg.Start(); err != nil {
		fmt.Fprintln(stderr, "rr-local: start loadgen:", err)
		return 1
	}
	lgDone := make(chan error, 1)
	go func() { lgDone <- lg.Wait() }()
	signals := 0
	for {
		select {
		case err := <-lgDone:
			fmt.Fprintf(stderr, "rr-local: broker dropped %d messages (client queues full)\n", b.Dropped())
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return ee.ExitCode()
			}
			if err != nil {
				fmt.Fprintln(stderr, "rr-local: loadgen:", err)
				return 1
			}
			return 0
		case s := <-sig:
			signals++
			if signals == 1 {
				fmt.Fprintln(stderr, "rr-local: stopping loadgen (it drains and reports, or ends its linger; again to kill)")
				_ = lg.Process.Signal(s)
				continue
			}
			_ = syscall.Kill(-lg.Process.Pid, syscall.SIGKILL)
			<-lgDone
			return 130
		case err := <-workerDone:
			workerDone <- err // for the deferred stop
			fmt.Fprintln(stderr, "rr-local: worker exited early:", err)
			_ = syscall.Kill(-lg.Process.Pid, syscall.SIGKILL)
			<-lgDone
			return 1
		}
	}
}

func command(path string, stdout, stderr io.Writer, env ...string) *exec.Cmd {
	c := exec.Command(path)
	c.Env = append(os.Environ(), env...)
	c.Stdout, c.Stderr = stdout, stderr
	// Own process group (the terminal's Ctrl-C reaches only rr-local, which
	// forwards it in order); killed if rr-local dies.
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return c
}

// stopProcess sends SIGTERM and waits up to 35 s (the worker's shutdown
// timeout), then kills the process group.
func stopProcess(c *exec.Cmd, done chan error, stderr io.Writer) {
	_ = c.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(35 * time.Second):
		fmt.Fprintln(stderr, "rr-local: worker did not stop in time; killing it")
		_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

func waitReady(ctx context.Context, url string, exited chan error, sig chan os.Signal) error {
	client := &http.Client{Timeout: time.Second}
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-exited:
			exited <- err
			return fmt.Errorf("worker exited: %v", err)
		case <-sig:
			return errors.New("interrupted")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// preferredAddr returns addr when its port was free a moment ago, else a
// free loopback address (freeport.Loopback), else "127.0.0.1:0".
func preferredAddr(addr string) string {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		if free, err := freeport.Loopback(); err == nil {
			return free
		}
		return "127.0.0.1:0"
	}
	defer l.Close()
	return l.Addr().String()
}

func envOr(k, def string) string {
	if v := strings.TrimSpace(os.Getenv(k)); v != "" {
		return v
	}
	return def
}

// BrokerOnly runs the embedded broker on BROKER_ADDR (default
// 127.0.0.1:1883) until SIGINT or SIGTERM.
func BrokerOnly(stderr io.Writer) int {
	b, err := broker.Start(broker.Options{Addr: envOr("BROKER_ADDR", "127.0.0.1:1883")})
	if err != nil {
		fmt.Fprintln(stderr, "rr-local broker:", err)
		return 1
	}
	fmt.Fprintf(stderr, "rr-local: embedded broker on %s\n", b.Addr())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	fmt.Fprintf(stderr, "rr-local: broker dropped %d messages\n", b.Dropped())
	_ = b.Close()
	return 0
}
