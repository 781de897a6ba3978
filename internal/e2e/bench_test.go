package e2e

import (
	"os/exec"
	"testing"
)

// BenchmarkRunPython is one python print(1) run through the HTTP API, end
// to end. Compare with BenchmarkDockerRunRm, the same program and limits
// through `docker run --rm`.
func BenchmarkRunPython(b *testing.B) {
	h := startHost(b)
	req := map[string]any{"code": "print(1)"}
	for b.Loop() {
		res := h.run("python", req)
		if res.Stdout != "1\n" {
			b.Fatalf("stdout %q", res.Stdout)
		}
	}
}

func BenchmarkDockerRunRm(b *testing.B) {
	if _, err := exec.LookPath("docker"); err != nil {
		b.Skip("no docker CLI")
	}
	args := []string{"run", "--rm", "-i", "--network", "none", "--read-only", "--cap-drop", "ALL",
		"--security-opt", "no-new-privileges", "--user", "1000:1000", "--memory", "256m", "--memory-swap", "256m",
		"--cpus", "1", "--pids-limit", "128", "--tmpfs", "/tmp:size=64m", "--log-driver", "none",
		"runhost/python:3.11", "python3", "-c", "print(1)"}
	for b.Loop() {
		out, err := exec.Command("docker", args...).Output()
		if err != nil || string(out) != "1\n" {
			b.Fatalf("docker run: %v %q", err, out)
		}
	}
}
