package localrun

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// The endpoints `make run` uses when their ports are free: the same as
// `make up`'s, so the dashboards' defaults reach either.
const (
	DefaultLoadgenAddr = "127.0.0.1:8090"
	DefaultWorkerAddr  = "127.0.0.1:8080"
)

// DefaultStatePath is where rr-local publishes its endpoints unless
// RR_LOCAL_STATE says otherwise: $XDG_RUNTIME_DIR (or /tmp) /
// mqtt-rr-bench-local-UID.env. scripts/dashboard.sh and ops.mk compute the
// same path.
func DefaultStatePath() string {
	dir := os.Getenv("XDG_RUNTIME_DIR")
	if dir == "" {
		dir = "/tmp"
	}
	return filepath.Join(dir, fmt.Sprintf("mqtt-rr-bench-local-%d.env", os.Getuid()))
}

// State is what the state file says: shell-style NAME=value lines that
// scripts read with sed (or source).
type State struct {
	PID        int    // RR_LOCAL_PID: the rr-local process; the file is stale once it is gone
	LoadgenURL string // LOADGEN_URL: loadgen-v2's /metrics, /debug/vars, /debug/histogram, /report
	WorkerURL  string // WORKER_URL: worker-v2's /metrics, /stats
	BrokerURL  string // BROKER_URL: the embedded broker
}

// ErrStateTaken: the state file belongs to another rr-local that still runs.
var ErrStateTaken = errors.New("another rr-local publishes its endpoints there")

// writeState publishes st at path, atomically, unless a live rr-local other
// than st.PID owns the file.
func writeState(path string, st State) error {
	if old, err := ReadState(path); err == nil && old.PID != st.PID && alive(old.PID) {
		return fmt.Errorf("%s: %w (pid %d)", path, ErrStateTaken, old.PID)
	}
	body := fmt.Sprintf("# Written by rr-local (make run) while it runs; removed when it exits.\n"+
		"RR_LOCAL_PID=%d\nLOADGEN_URL=%s\nWORKER_URL=%s\nBROKER_URL=%s\n", st.PID, st.LoadgenURL, st.WorkerURL, st.BrokerURL)
	tmp, err := os.CreateTemp(filepath.Dir(path), ".mqtt-rr-bench-local-*")
	if err != nil {
		return err
	}
	if _, err := tmp.WriteString(body); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}

// removeState removes the state file if pid still owns it.
func removeState(path string, pid int) {
	if st, err := ReadState(path); err == nil && st.PID == pid {
		_ = os.Remove(path)
	}
}

// ReadState reads a state file; fs.ErrNotExist when there is none.
func ReadState(path string) (State, error) {
	f, err := os.Open(path)
	if err != nil {
		return State{}, err
	}
	defer f.Close()
	var st State
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		switch k {
		case "RR_LOCAL_PID":
			st.PID, _ = strconv.Atoi(v)
		case "LOADGEN_URL":
			st.LoadgenURL = v
		case "WORKER_URL":
			st.WorkerURL = v
		case "BROKER_URL":
			st.BrokerURL = v
		}
	}
	if err := sc.Err(); err != nil {
		return State{}, err
	}
	if st.PID <= 0 {
		return State{}, fmt.Errorf("%s: no RR_LOCAL_PID: %w", path, fs.ErrInvalid)
	}
	return st, nil
}

// alive reports whether a process with this pid exists.
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
