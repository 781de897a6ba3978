package kerneltest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runhost/runhost/shared/kernel"

	"github.com/runhost/runhost/shared/kernel/internal/shimframe"
)

// File is a file the shim writes before it starts the driver.
type File struct {
	Path    string `json:"path"`
	Mode    uint32 `json:"mode"`
	Content []byte `json:"content"`
}

// DockerOptions say how to start a driver inside an image.
type DockerOptions struct {
	Image  string
	Files  []File   // e.g. the driver's source, at an absolute path
	Argv   []string // the driver's command line, inside the container
	Env    []string // added to the image's environment ("K=V")
	Memory string   // the container's memory limit (default 512m)
}

// Label marks every container this package starts.
const Label = "runhost.kerneltest"

// ShimDir is where the shim and the files live inside the container: a
// tmpfs of its own, the only place that may hold an executable.
const ShimDir = "/opt/runhost"

var (
	shimOnce sync.Once
	shimPath string
	shimErr  error
	shimOut  []byte
	counter  atomic.Int64
)

// shim builds kernelshim (static) once per test process.
func shim(t testing.TB) []byte {
	t.Helper()
	shimOnce.Do(func() {
		dir, err := os.MkdirTemp("", "runhost-kernelshim-")
		if err != nil {
			shimErr = err
			return
		}
		shimPath = filepath.Join(dir, "kernelshim")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", shimPath, "github.com/runhost/runhost/shared/kernel/kernelshim")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		shimOut, shimErr = cmd.CombinedOutput()
	})
	if shimErr != nil {
		t.Fatalf("build kernelshim: %v\n%s", shimErr, shimOut)
	}
	b, err := os.ReadFile(shimPath)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type docker struct {
	name   string
	cmd    *exec.Cmd
	mu     sync.Mutex
	stdin  io.WriteCloser // nil once closed
	exited chan struct{}
	stderr bytes.Buffer
}

// StartDocker starts the driver inside a container of opts.Image, with the
// limits of a run (no network, read-only root, no capabilities, user 1000,
// tmpfs /tmp and /code, /code the working directory, HOME=/tmp, 1024 open
// files), and waits
// for its ready message. The container is removed when the test ends.
func StartDocker(t testing.TB, opts DockerOptions) *Driver {
	t.Helper()
	bin := shim(t)
	memory := opts.Memory
	if memory == "" {
		memory = "512m"
	}
	name := fmt.Sprintf("runhost-kerneltest-%d-%d", os.Getpid(), counter.Add(1))
	script := fmt.Sprintf("head -c %d > %s/kernelshim && chmod 700 %s/kernelshim && exec %s/kernelshim", len(bin), ShimDir, ShimDir, ShimDir)
	args := []string{"run", "-i", "--rm", "--name", name, "--label", Label + "=" + strconv.Itoa(os.Getpid()),
		"--network", "none", "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
		"--user", "1000:1000", "--memory", memory, "--memory-swap", memory, "--pids-limit", "256",
		"--tmpfs", "/tmp:rw,noexec,nosuid,nodev,size=256m,mode=1777",
		"--tmpfs", "/code:rw,noexec,nosuid,nodev,size=64m,mode=0755,uid=1000,gid=1000",
		"--tmpfs", ShimDir + ":rw,exec,nosuid,nodev,size=64m,mode=0755,uid=1000,gid=1000",
		"--ipc", "private", "--ulimit", "nofile=1024:1024",
		"--workdir", "/code", "--env", "HOME=/tmp",
		opts.Image, "sh", "-c", script}
	cmd := exec.Command("docker", args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	dk := &docker{name: name, cmd: cmd, stdin: stdin, exited: make(chan struct{})}
	cmd.Stderr = &dk.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("docker run: %v", err)
	}
	d := newDriver(t, dk)
	t.Cleanup(d.cleanup)
	if _, err := stdin.Write(bin); err != nil {
		t.Fatalf("send the shim: %v", err)
	}
	r := bufio.NewReaderSize(stdout, 64<<10)
	// Only after the hello may more bytes follow the shim's: head must not
	// read past them.
	if tag, payload, err := shimframe.Read(r); err != nil || tag != 'H' {
		_ = cmd.Wait()
		t.Fatalf("the shim did not start: tag %q %q, %v; docker: %s", tag, payload, err, dk.stderr.String())
	}
	setup, err := json.Marshal(map[string]any{"argv": opts.Argv, "env": opts.Env, "dir": "/code", "files": opts.Files})
	if err != nil {
		t.Fatal(err)
	}
	if err := dk.frame('S', setup); err != nil {
		t.Fatalf("send the setup: %v", err)
	}
	go dk.read(r, d)
	d.awaitReady()
	return d
}

func (dk *docker) read(r *bufio.Reader, d *Driver) {
	streams := map[byte]kernel.Stream{'O': kernel.Stdout, 'E': kernel.Stderr, 'V': kernel.Events}
	var exit *Exit
	var failure error
	for {
		tag, payload, err := shimframe.Read(r)
		if err != nil {
			if exit == nil && failure == nil {
				failure = fmt.Errorf("the shim's stream ended: %v", err)
			}
			break
		}
		switch tag {
		case 'O', 'E', 'V':
			if err := d.deliver(kernel.Output{Stream: streams[tag], Data: payload}); err != nil {
				failure = err
			}
		case 'X':
			exit = &Exit{}
			if err := json.Unmarshal(payload, exit); err != nil {
				failure = err
			}
		case 'F':
			failure = fmt.Errorf("the shim failed: %s", payload)
		}
	}
	_ = dk.cmd.Wait()
	close(dk.exited)
	if failure != nil && exit == nil {
		failure = fmt.Errorf("%w; docker: %s", failure, dk.stderr.String())
	}
	d.finish(exit, failure)
}

func (dk *docker) frame(tag byte, payload []byte) error {
	dk.mu.Lock()
	defer dk.mu.Unlock()
	if dk.stdin == nil {
		return errClosed
	}
	msg := make([]byte, 5+len(payload))
	msg[0] = tag
	binary.BigEndian.PutUint32(msg[1:], uint32(len(payload)))
	copy(msg[5:], payload)
	_, err := dk.stdin.Write(msg)
	return err
}

func (dk *docker) send(body []byte) error { return dk.frame('R', body) }
func (dk *docker) interrupt() error       { return dk.frame('I', nil) }

func (dk *docker) closeRequests() error {
	err := dk.frame('C', nil)
	if errors.Is(err, errClosed) {
		return nil
	}
	return err
}

func (dk *docker) kill() {
	_ = dk.closeRequests()
	select {
	case <-dk.exited:
	case <-time.After(10 * time.Second):
	}
	dk.mu.Lock()
	if dk.stdin != nil {
		_ = dk.stdin.Close()
		dk.stdin = nil
	}
	dk.mu.Unlock()
	_ = exec.Command("docker", "rm", "-f", dk.name).Run()
	<-dk.exited
}

// leftover names the test's container if the engine still has it.
func (dk *docker) leftover() string {
	out, err := exec.Command("docker", "ps", "-aq", "--filter", "name=^"+dk.name+"$").Output()
	if err != nil {
		return ""
	}
	if id := strings.TrimSpace(string(out)); id != "" {
		return dk.name + " (" + id + ")"
	}
	return ""
}
