package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runhost/runhost/internal/testenv"
)

// process is bin/host running as a real process.
type process struct {
	cmd      *exec.Cmd
	url      string
	instance string
	exited   chan struct{} // closed when the process has exited
	exitErr  error
}

// wait returns the process's exit error once it has exited.
func (p *process) wait() error { <-p.exited; return p.exitErr }

func startProcess(t *testing.T, env ...string) *process {
	t.Helper()
	cli := testenv.RequireDocker(t)
	testenv.RequireImages(t, cli, "runhost/python:3.11")
	bins := testenv.Build(t)
	hostBin := testenv.GoBuild(t, "./cmd/host", t.TempDir(), "host")

	cmd := exec.Command(hostBin)
	cmd.Env = append(os.Environ(),
		"RUNHOST_ADDR=127.0.0.1:0",
		"RUNHOST_PLUGIN_DIR="+bins.PluginDir,
		"RUNHOST_INIT_PATH="+bins.Init,
		"RUNHOST_LOG_FORMAT=json",
		"RUNHOST_SELFTEST_ON_START=false",
		"RUNHOST_POOL=off",
	)
	cmd.Env = append(cmd.Env, env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) == nil && line["@message"] == "runhost listening" {
				p.url = "http://" + line["addr"].(string)
				p.instance = line["instance"].(string)
				close(ready)
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	go func() { p.exitErr = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = p.wait()
	})
	select {
	case <-ready:
	case <-p.exited:
		t.Fatalf("host exited at start: %v", p.exitErr)
	case <-time.After(30 * time.Second):
		t.Fatal("host did not start listening within 30 s")
	}
	t.Cleanup(func() {
		testenv.Eventually(t, 10*time.Second, "containers of the stopped host to be gone", func() bool {
			return len(testenv.Containers(t, cli, "runhost.instance="+p.instance)) == 0
		})
	})
	return p
}

// children returns the pids whose parent is pid.
func children(t *testing.T, pid int) []int {
	t.Helper()
	var out []int
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, s := range stats {
		b, err := os.ReadFile(s)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		rest := string(b[bytes.LastIndexByte(b, ')')+2:])
		fields := strings.Fields(rest)
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			child, _ := strconv.Atoi(filepath.Base(filepath.Dir(s)))
			out = append(out, child)
		}
	}
	return out
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func TestAKilledHostLeavesNothingAfterRestart(t *testing.T) {
	p := startProcess(t)
	cli := testenv.RequireDocker(t)
	go func() {
		resp, err := http.Post(p.url+"/runtimes/python/run", "application/json", strings.NewReader(`{"code":"import time\ntime.sleep(60)","timeout_ms":60000}`))
		if err == nil {
			resp.Body.Close()
		}
	}()
	// The run's container is the running one: the init volume's helper
	// container carries the same labels but is never started and goes at once.
	testenv.Eventually(t, 30*time.Second, "the run's container to be running", func() bool {
		return testenv.AnyRunning(t, cli, "runhost.instance="+p.instance)
	})
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p.wait()
	if left := testenv.Containers(t, cli, "runhost.instance="+p.instance); len(left) == 0 {
		t.Fatal("the killed host's run container is already gone; the test proves nothing")
	}
	// A new host sweeps at start-up: the dead host's container goes at once,
	// not after its 60 s timeout.
	startProcess(t)
	testenv.Eventually(t, 20*time.Second, "the restarted host to sweep the killed host's container", func() bool {
		return len(testenv.Containers(t, cli, "runhost.instance="+p.instance)) == 0
	})
}

func TestPluginsDieWithAKilledHost(t *testing.T) {
	p := startProcess(t)
	plugins := children(t, p.cmd.Process.Pid)
	if len(plugins) < 2 {
		t.Fatalf("want the plugin processes as children of the host, found %v", plugins)
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p.wait()
	testenv.Eventually(t, 10*time.Second, "plugin processes to die with the host", func() bool {
		for _, pid := range plugins {
			if alive(pid) {
				return false
			}
		}
		return true
	})
}

func TestSIGTERMLetsInFlightRunsFinish(t *testing.T) {
	p := startProcess(t, "RUNHOST_SHUTDOWN_TIMEOUT_MS=20000")
	plugins := children(t, p.cmd.Process.Pid)
	type answer struct {
		status int
		body   string
	}
	answered := make(chan answer, 1)
	go func() {
		resp, err := http.Post(p.url+"/runtimes/python/run", "application/json",
			strings.NewReader(`{"code":"import time\ntime.sleep(2)\nprint('finished')"}`))
		if err != nil {
			answered <- answer{body: err.Error()}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		answered <- answer{resp.StatusCode, string(b)}
	}()
	cli := testenv.RequireDocker(t)
	testenv.Eventually(t, 30*time.Second, "the run's container to be running", func() bool {
		return testenv.AnyRunning(t, cli, "runhost.instance="+p.instance)
	})
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	a := <-answered
	if a.status != 200 || !strings.Contains(a.body, `"stdout":"finished\n"`) {
		t.Fatalf("in-flight run during shutdown: %d %s", a.status, a.body)
	}
	if err := p.wait(); err != nil {
		t.Fatalf("host exit after SIGTERM: %v", err)
	}
	for _, pid := range plugins {
		if alive(pid) {
			t.Errorf("plugin %d still running after shutdown", pid)
		}
	}
}

func TestSIGTERMKillsRunsPastTheGracePeriod(t *testing.T) {
	p := startProcess(t, "RUNHOST_SHUTDOWN_TIMEOUT_MS=1000")
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := http.Post(p.url+"/runtimes/python/run", "application/json",
			strings.NewReader(`{"code":"import time\ntime.sleep(60)","timeout_ms":60000}`))
		if err == nil {
			resp.Body.Close()
		}
	}()
	cli := testenv.RequireDocker(t)
	testenv.Eventually(t, 30*time.Second, "the run's container to be running", func() bool {
		return testenv.AnyRunning(t, cli, "runhost.instance="+p.instance)
	})
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
		if p.exitErr != nil {
			t.Fatalf("host exit: %v", p.exitErr)
		}
	case <-time.After(45 * time.Second):
		t.Fatal("host still running 45 s after SIGTERM with a 1 s grace period")
	}
	<-done
	if left := testenv.Containers(t, cli, "runhost.instance="+p.instance); len(left) > 0 {
		t.Fatalf("%d containers left after shutdown", len(left))
	}
}

func TestPluginCheck(t *testing.T) {
	testenv.RequireDocker(t)
	bins := testenv.Build(t)
	hostBin := testenv.GoBuild(t, "./cmd/host", t.TempDir(), "host")
	testBin := testenv.GoBuild(t, "./internal/registry/testdata/testplugin", t.TempDir(), "testplugin")
	dir := t.TempDir()
	for _, name := range []string{"runhost-plugin-hostile", "runhost-plugin-nodesc"} {
		b, _ := os.ReadFile(testBin)
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	check := func(path string) (int, string) {
		cmd := exec.Command(hostBin, "plugin", "check", path)
		cmd.Env = append(os.Environ(), "RUNHOST_INIT_PATH="+bins.Init, "RUNHOST_EGRESS_PATH="+bins.Egress)
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode(), string(out)
		}
		return 0, string(out)
	}
	if code, out := check(filepath.Join(bins.PluginDir, "runhost-plugin-shell")); code != 0 || !strings.Contains(out, "self-test shell 5.2") || !strings.Contains(out, "passes") {
		t.Errorf("a good plugin: exit %d\n%s", code, out)
	}
	if code, out := check(filepath.Join(dir, "runhost-plugin-hostile")); code != 1 || !strings.Contains(out, "FAIL version 1 declares a self-test") {
		t.Errorf("a plugin without self-tests: exit %d\n%s", code, out)
	}
	if code, out := check(filepath.Join(dir, "runhost-plugin-nodesc")); code != 1 || !strings.Contains(out, "invalid description: no versions") {
		t.Errorf("a plugin with a bad description: exit %d\n%s", code, out)
	}
}
