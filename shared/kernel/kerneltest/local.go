package kerneltest

import (
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/runhost/runhost/shared/kernel"
	"golang.org/x/sys/unix"
)

// Options say how to start a driver.
type Options struct {
	Argv []string // the driver's command line
	Env  []string // added to the environment ("K=V")
	Dir  string   // working directory
}

var cloexecOnce sync.Once

// cloexecInherited marks the descriptors this test process inherited from
// its parent (a shell's, a CI runner's) close-on-exec, so that a driver gets
// exactly fd 0-4, as from init. Go opens its own with close-on-exec already.
func cloexecInherited() {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			unix.CloseOnExec(fd)
		}
	}
}

type local struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	req    *os.File // nil once closed
	exited chan struct{}
}

// StartLocal starts the driver as a child process of the test with fd 0 =
// /dev/null, fd 1 and fd 2 = pipes, fd 3 = requests, fd 4 = events, and
// waits for its ready message. The driver is ended when the test ends.
func StartLocal(t testing.TB, opts Options) *Driver {
	t.Helper()
	cloexecOnce.Do(cloexecInherited)
	pipes := make([]*os.File, 0, 8)
	pipe := func() (*os.File, *os.File) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		pipes = append(pipes, r, w)
		return r, w
	}
	reqR, reqW := pipe()
	evR, evW := pipe()
	outR, outW := pipe()
	errR, errW := pipe()
	cmd := exec.Command(opts.Argv[0], opts.Argv[1:]...)
	cmd.Env = append(os.Environ(), opts.Env...)
	cmd.Dir = opts.Dir
	cmd.Stdout, cmd.Stderr = outW, errW
	cmd.ExtraFiles = []*os.File{reqR, evW}
	// Its own process group, so that the end of the test also ends what a
	// cell forked.
	cmd.SysProcAttr = ownGroup()
	if err := cmd.Start(); err != nil {
		for _, f := range pipes {
			_ = f.Close()
		}
		t.Fatalf("start %q: %v", opts.Argv, err)
	}
	for _, f := range []*os.File{reqR, evW, outW, errW} {
		_ = f.Close()
	}
	l := &local{cmd: cmd, req: reqW, exited: make(chan struct{})}
	d := newDriver(t, l)
	go func() {
		err := kernel.Demux(outR, errR, evR, MaxMessage, d.deliver)
		if err != nil {
			_ = cmd.Process.Kill()
		}
		_ = cmd.Wait()
		close(l.exited)
		d.finish(exitOf(cmd.ProcessState), err)
	}()
	t.Cleanup(d.cleanup)
	d.awaitReady()
	return d
}

// Pid is the driver's process id (local drivers only).
func (d *Driver) Pid() int {
	if l, ok := d.tr.(*local); ok {
		return l.cmd.Process.Pid
	}
	d.t.Fatal("Pid: not a local driver")
	return 0
}

func (l *local) send(body []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.req == nil {
		return errClosed
	}
	return kernel.WriteRaw(l.req, body)
}

func (l *local) interrupt() error { return l.cmd.Process.Signal(syscall.SIGINT) }

func (l *local) closeRequests() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.req == nil {
		return nil
	}
	err := l.req.Close()
	l.req = nil
	return err
}

func (l *local) kill() {
	_ = l.closeRequests()
	select {
	case <-l.exited:
	case <-time.After(10 * time.Second):
	}
	_ = syscall.Kill(-l.cmd.Process.Pid, syscall.SIGKILL)
	<-l.exited
}
