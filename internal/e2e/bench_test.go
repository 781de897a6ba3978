package e2e

import (
	"fmt"
	"os/exec"
	"testing"
	"time"
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

// BenchmarkDependencies measures a python run with requirements from the
// local index: "install" forces a new install every iteration (a distinct
// requirement set), "cached" reuses one, "none" has no requirements.
func BenchmarkDependencies(b *testing.B) {
	cli := dockerClient(b)
	idx := startPackageIndex(b, cli)
	h := startHostWith(b, cli, idx.env()...)
	code := "from runhost_greet import greet\nprint(greet('b'))"
	b.Run("install", func(b *testing.B) {
		i := 0
		for b.Loop() {
			i++
			res := h.run("python", map[string]any{"code": code, "requirements": []string{fmt.Sprintf("runhost-greet!=9.%d.%d", time.Now().UnixNano(), i)}})
			if res.Install == nil || res.Install.Cached || res.Stdout == "" {
				b.Fatalf("%+v", res)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		req := map[string]any{"code": code, "requirements": []string{"runhost-greet==1.0"}}
		h.run("python", req)
		for b.Loop() {
			if res := h.run("python", req); res.Install == nil || !res.Install.Cached {
				b.Fatalf("%+v", res)
			}
		}
	})
	b.Run("none", func(b *testing.B) {
		for b.Loop() {
			h.run("python", map[string]any{"code": "print(1)"})
		}
	})
}

// BenchmarkDockerfile measures a Dockerfile run: "build" builds every
// iteration (a distinct Dockerfile), "cached" reuses the built image.
func BenchmarkDockerfile(b *testing.B) {
	h := startBuildHost(b)
	df := "FROM runhost/python:3.11\nCOPY app.py /app/\nWORKDIR /app\nCMD [\"python3\", \"app.py\"]\n"
	files := []map[string]string{{"path": "app.py", "content": "print('built')"}}
	b.Run("build", func(b *testing.B) {
		i := 0
		for b.Loop() {
			i++
			res := h.run("dockerfile", map[string]any{"dockerfile": df + fmt.Sprintf("LABEL bench=%d-%d\n", time.Now().UnixNano(), i), "files": files})
			if res.Build == nil || res.Build.Cached || res.Stdout != "built\n" {
				b.Fatalf("%+v", res)
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		req := map[string]any{"dockerfile": df, "files": files}
		h.run("dockerfile", req)
		for b.Loop() {
			if res := h.run("dockerfile", req); res.Build == nil || !res.Build.Cached {
				b.Fatalf("%+v", res)
			}
		}
	})
}
