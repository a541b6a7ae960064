package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mqtt-rr-bench/mqtt-rr-bench/internal/brokertest"
)

// TestMissingToolsAreNamed: `make up` and `make k8s-deploy-kind` on a
// machine that lacks their tools name every missing piece at once, where to
// get it, and how to run the benchmark without it. PATH holds only what make
// and the scripts need, plus stand-ins for the tools a case has.
func TestMissingToolsAreNamed(t *testing.T) {
	basics := []string{"bash", "sh", "env", "cat", "sed", "grep", "dirname", "id", "head", "tr", "make"}
	tests := []struct {
		name, target string
		have         []string // stand-ins on PATH: they exist and fail every command
		want, not    []string
	}{
		{name: "up without Docker", target: "up",
			want: []string{"make up needs Docker with the Compose v2 plugin", "Docker is not installed ('docker' not found)",
				"the Docker Compose v2 plugin is missing", "make run", "make benchmark-quick"},
			not: []string{"No Docker daemon answers"}},
		{name: "up with a docker CLI but no plugin and no daemon", target: "up", have: []string{"docker"},
			want: []string{"the Docker Compose v2 plugin is missing", "No Docker daemon answers", "make run"},
			not:  []string{"Docker is not installed"}},
		{name: "k8s-deploy-kind without kind, kubectl, docker", target: "k8s-deploy-kind",
			want: []string{"make k8s-deploy-kind needs what is not installed here", "kind ('kind' not found)",
				"kubectl ('kubectl' not found)", "docker ('docker' not found)", "make run"},
			not: []string{"make up runs", "make k8s-deploy-1m"}},
		{name: "k8s-deploy-kind with kubectl only", target: "k8s-deploy-kind", have: []string{"kubectl"},
			want: []string{"kind ('kind' not found)", "docker ('docker' not found)", "make k8s-deploy-1m deploys to any cluster", "make run"},
			not:  []string{"kubectl ('kubectl' not found)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, b := range basics {
				p := brokertest.NeedTool(t, b, "make and the scripts need it")
				if err := os.Symlink(p, filepath.Join(dir, b)); err != nil {
					t.Fatal(err)
				}
			}
			for _, h := range tc.have {
				if err := os.WriteFile(filepath.Join(dir, h), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			cmd := exec.Command(filepath.Join(dir, "make"), "--no-print-directory", "-C", "..", tc.target)
			cmd.Env = []string{"PATH=" + dir, "HOME=" + t.TempDir()}
			out, err := cmd.CombinedOutput()
			if code := cmd.ProcessState.ExitCode(); err == nil || code != 2 {
				t.Fatalf("exit %d (%v), want 2 (a failed recipe):\n%s", code, err, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(string(out), n) {
					t.Errorf("output says %q:\n%s", n, out)
				}
			}
		})
	}
}
