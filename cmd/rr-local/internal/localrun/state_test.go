package localrun

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestStateFile: published, read back, refused while another live rr-local
// owns it, taken over from a dead one, removed only by its owner.
func TestStateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "local.env")
	if _, err := ReadState(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("no file: %v", err)
	}
	me := State{PID: os.Getpid(), LoadgenURL: "http://127.0.0.1:8090", WorkerURL: "http://127.0.0.1:8080", BrokerURL: "tcp://127.0.0.1:1"}
	if err := writeState(path, me); err != nil {
		t.Fatal(err)
	}
	got, err := ReadState(path)
	if err != nil || got != me {
		t.Fatalf("read back %+v, %v; want %+v", got, err, me)
	}
	b, _ := os.ReadFile(path)
	for _, line := range []string{"RR_LOCAL_PID=", "LOADGEN_URL=http://127.0.0.1:8090\n", "WORKER_URL=http://127.0.0.1:8080\n"} {
		if !strings.Contains(string(b), line) {
			t.Errorf("file lacks %q:\n%s", line, b)
		}
	}

	// A live other process (this test's parent, say) owns it: refused.
	other := me
	other.PID = os.Getppid()
	if err := writeState(path, State{PID: 1 << 22}); !errors.Is(err, ErrStateTaken) {
		t.Errorf("overwriting a live owner's file: %v", err)
	}
	if err := writeState(path, other); !errors.Is(err, ErrStateTaken) {
		t.Errorf("overwriting a live owner's file: %v", err)
	}
	removeState(path, other.PID) // not the owner: kept
	if _, err := os.Stat(path); err != nil {
		t.Errorf("removed by a non-owner: %v", err)
	}

	// A dead owner's file is taken over.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Skip("no `true` to make a dead pid:", err)
	}
	if err := writeState(path, State{PID: dead.Process.Pid, LoadgenURL: "x"}); err == nil {
		t.Fatal("took over from a live owner")
	}
	removeState(path, me.PID)
	if err := writeState(path, State{PID: dead.Process.Pid, LoadgenURL: "stale"}); err != nil {
		t.Fatal(err)
	}
	if err := writeState(path, me); err != nil {
		t.Errorf("a dead owner's file was not taken over: %v", err)
	}
	removeState(path, me.PID)
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("owner's removal: %v", err)
	}
}

func TestDefaultStatePath(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/1000")
	if p := DefaultStatePath(); !strings.HasPrefix(p, "/run/user/1000/mqtt-rr-bench-local-") || !strings.HasSuffix(p, ".env") {
		t.Errorf("with XDG_RUNTIME_DIR: %s", p)
	}
	t.Setenv("XDG_RUNTIME_DIR", "")
	if p := DefaultStatePath(); !strings.HasPrefix(p, "/tmp/mqtt-rr-bench-local-") {
		t.Errorf("without: %s", p)
	}
}
